/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "secretd/cleanup.h"

int sd_write_all(int fd, const void *data, size_t len) {
        const unsigned char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int sd_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     int flags, sd_error *err) {
        char tmp[NAME_MAX + 1];
        _cleanup_close_ int fd = -1;

        for (int attempt = 0; fd < 0; attempt++) {
                if (snprintf(tmp, sizeof(tmp), SD_TEMP_PREFIX "%08x%08x", randombytes_random(),
                             randombytes_random()) >= (int) sizeof(tmp))
                        return sd_error_set(err, ENAMETOOLONG, "%s: name too long", name);
                fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0 && (errno != EEXIST || attempt > 16))
                        return sd_error_set_errno(err, errno, "%s: cannot create a temporary file", name);
        }

        int r = sd_write_all(fd, data, len);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && !(flags & SD_WRITE_NO_SYNC) && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return sd_error_set_errno(err, -r, "%s: cannot write", name);
        }

        unsigned rflags = (flags & SD_WRITE_REPLACE) ? 0 : RENAME_NOREPLACE;
        if (renameat2(dirfd, tmp, dirfd, name, rflags) < 0) {
                int e = errno;
                (void) unlinkat(dirfd, tmp, 0);
                if (e == EEXIST)
                        return sd_error_set(err, EEXIST, "%s: already exists", name);
                return sd_error_set_errno(err, e, "%s: cannot publish", name);
        }
        if (!(flags & SD_WRITE_NO_SYNC) && fsync(dirfd) < 0)
                return sd_error_set_errno(err, errno, "%s: cannot sync its directory", name);
        return 0;
}

int sd_read_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len_out,
                    sd_error *err) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno == ELOOP)
                        return sd_error_set(err, ELOOP, "%s: is a symbolic link; refusing to follow it", name);
                return sd_error_set_errno(err, errno, "%s: cannot open", name);
        }
        return sd_read_fd(fd, name, max, out, len_out, err);
}

int sd_read_fd(int fd, const char *name, size_t max, char **out, size_t *len_out, sd_error *err) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "%s: cannot stat", name);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "%s: not a regular file", name);
        if ((size_t) st.st_size > max)
                return sd_error_set(err, EFBIG, "%s: %lld bytes, larger than the limit of %zu",
                                    name, (long long) st.st_size, max);

        size_t cap = (size_t) st.st_size + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
        for (;;) {
                if (len + 1 == cap) {
                        /* The file grew after fstat; it cannot pass max. */
                        if (cap > max)
                                return sd_error_set(err, EFBIG, "%s: larger than the limit of %zu", name, max);
                        char *bigger = realloc(buf, cap * 2 > max + 1 ? max + 1 : cap * 2);
                        if (!bigger)
                                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
                        buf = bigger;
                        cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                }
                ssize_t n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return sd_error_set_errno(err, errno, "%s: read failed", name);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        *out = steal_pointer(&buf);
        if (len_out)
                *len_out = len;
        return 0;
}

int sd_open_dir_at(int dirfd, const char *name, bool create, mode_t mode) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 || errno != ENOENT || !create)
                return fd >= 0 ? fd : -errno;
        if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd >= 0 ? fd : -errno;
}

int sd_mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int sd_open_parent(const char *path, bool create, mode_t parent_mode, const char **base_out,
                   sd_error *err) {
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        if (*base == '\0')
                return sd_error_set(err, EINVAL, "%s: not a file path", path);

        _cleanup_free_ char *dir = NULL;
        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, (size_t) (slash - path));
        if (!dir)
                return sd_error_set(err, ENOMEM, "out of memory");

        if (create) {
                int r = sd_mkdir_p(dir, parent_mode);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "%s: cannot create directory", dir);
        }
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "%s: cannot open directory", dir);
        *base_out = base;
        return fd;
}
