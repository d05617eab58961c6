/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "secretd/cleanup.h"

int sd_buf_reserve(struct sd_buf *b, size_t want) {
        if (want > b->max)
                want = b->max;
        if (want + 1 <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < want + 1)
                cap = cap > SIZE_MAX / 2 ? want + 1 : cap * 2;
        /* cap - 1, not max + 1: max may be SIZE_MAX. */
        if (cap - 1 > b->max)
                cap = b->max + 1;
        char *p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        b->data[b->len] = '\0';
        return 0;
}

int sd_buf_append(struct sd_buf *b, const void *data, size_t n) {
        if (n > b->max - b->len)
                return -EFBIG;
        int r = sd_buf_reserve(b, b->len + n);
        if (r < 0)
                return r;
        memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int sd_buf_read_fd(struct sd_buf *b, int fd) {
        for (;;) {
                /* One byte beyond max tells a file that is too large from one
                 * that fills the buffer exactly. */
                if (b->len + 1 >= b->cap) {
                        if (b->len >= b->max) {
                                char probe;
                                ssize_t n = read(fd, &probe, 1);
                                if (n < 0 && errno == EINTR)
                                        continue;
                                if (n < 0)
                                        return -errno;
                                return n == 0 ? 0 : -EFBIG;
                        }
                        int r = sd_buf_reserve(b, b->len + (b->cap ? b->cap : 4096));
                        if (r < 0)
                                return r;
                }
                ssize_t n = read(fd, b->data + b->len, b->cap - 1 - b->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                b->len += (size_t) n;
                b->data[b->len] = '\0';
        }
}

char *sd_buf_steal(struct sd_buf *b) {
        char *out = b->data ? b->data : strdup("");
        if (out)
                *b = (struct sd_buf) { .max = b->max };
        return out;
}

void sd_buf_done(struct sd_buf *b) {
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

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

        _cleanup_buf_ struct sd_buf buf = { .max = max };
        int r = sd_buf_reserve(&buf, (size_t) st.st_size);
        if (r >= 0)
                r = sd_buf_read_fd(&buf, fd);
        /* -EFBIG here: the file grew after fstat. */
        if (r == -EFBIG)
                return sd_error_set(err, EFBIG, "%s: larger than the limit of %zu", name, max);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
        if (r < 0)
                return sd_error_set_errno(err, -r, "%s: read failed", name);
        size_t len = buf.len;
        char *data = sd_buf_steal(&buf);
        if (!data)
                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
        *out = data;
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
