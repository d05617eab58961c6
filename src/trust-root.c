/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/cleanup.h"
#include "secretd/trust-root.h"

/* As the kernel's own limit on one path resolution (MAXSYMLINKS). */
#define TRUST_ROOT_LINKS_MAX 40

struct walk {
        const char *what;    /* "config", "trusted-writers" */
        const char *path;    /* as given, for messages */
        uid_t euid;
        bool followed_link;  /* the file is not where path says */
        sd_error *err;
};

static bool owner_ok(const struct walk *w, uid_t uid) {
        return uid == 0 || uid == w->euid;
}

/* A regular file or directory others could write: group or other write
 * bits.  A POSIX ACL granting write to someone shows in the group bits (they
 * are its mask), so it is caught here too. */
static bool writable_by_others(const struct stat *st) {
        return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

enum subject {
        SUBJECT_FILE,
        SUBJECT_DIRECTORY,
        SUBJECT_LINK,
};

/* One message: what is wrong with `at` and the command that mends it. */
static int refuse(const struct walk *w, enum subject kind, const char *at, const struct stat *st,
                  bool bad_owner, bool bad_mode) {
        char owner[96] = "", mode[96] = "", wanted[48], chown_to[24];
        if (w->euid == 0) {
                snprintf(wanted, sizeof(wanted), "root");
                snprintf(chown_to, sizeof(chown_to), "root:root");
        } else {
                snprintf(wanted, sizeof(wanted), "root or uid %u (this process)", (unsigned) w->euid);
                snprintf(chown_to, sizeof(chown_to), "%u", (unsigned) w->euid);
        }
        if (bad_owner)
                snprintf(owner, sizeof(owner), "owned by uid %u, not %s", (unsigned) st->st_uid, wanted);
        if (bad_mode)
                snprintf(mode, sizeof(mode), "mode %04o (group or others can write %s)",
                         (unsigned) (st->st_mode & 07777), kind == SUBJECT_DIRECTORY ? "in it" : "it");

        /* Messages are cut at SD_ERROR_MESSAGE_MAX anyway. */
        char fix[SD_ERROR_MESSAGE_MAX] = "";
        int used = 0;
        if (bad_owner)
                used = snprintf(fix, sizeof(fix), "chown %s%s %s", kind == SUBJECT_LINK ? "-h " : "", chown_to, at);
        if (bad_mode && used >= 0 && (size_t) used < sizeof(fix))
                snprintf(fix + used, sizeof(fix) - (size_t) used, "%schmod go-w %s", bad_owner ? " && " : "", at);
        const char *problems_joint = bad_owner && bad_mode ? ", and " : "";

        switch (kind) {
        case SUBJECT_FILE:
                if (!w->followed_link)
                        return sd_error_set(w->err, EPERM, "%s %s is %s%s%s; it is a root of trust: %s", w->what,
                                            w->path, owner, problems_joint, mode, fix);
                return sd_error_set(w->err, EPERM, "%s %s: the file it leads to, %s, is %s%s%s; it is a root of trust: %s",
                                    w->what, w->path, at, owner, problems_joint, mode, fix);
        case SUBJECT_DIRECTORY:
                return sd_error_set(w->err, EPERM,
                                    "%s %s: directory %s is %s%s%s, so the file could be replaced; it holds a root of trust: %s",
                                    w->what, w->path, at, owner, problems_joint, mode, fix);
        case SUBJECT_LINK:
        default:
                return sd_error_set(w->err, EPERM,
                                    "%s %s: symbolic link %s is %s, so it could be pointed elsewhere; it leads to a root of trust: %s",
                                    w->what, w->path, at, owner, fix);
        }
}

static int check_dir(const struct walk *w, const struct stat *st, const char *at) {
        if (!S_ISDIR(st->st_mode))
                return sd_error_set(w->err, EINVAL, "%s %s: %s is not a directory", w->what, w->path, at);
        /* Sticky (/tmp, 1777): others may add names, but only an entry's
         * owner (or the directory's, or root) may rename or remove it, and
         * the walk checks every entry it takes from here. */
        bool bad_owner = !owner_ok(w, st->st_uid);
        bool bad_mode = writable_by_others(st) && !(st->st_mode & S_ISVTX);
        if (bad_owner || bad_mode)
                return refuse(w, SUBJECT_DIRECTORY, at, st, bad_owner, bad_mode);
        return 0;
}

/* "/" + name, or dir + "/" + name. */
static char *path_join(const char *dir, const char *name) {
        char *out = NULL;
        if (asprintf(&out, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name) < 0)
                return NULL;
        return out;
}

/* dir without its last component ("/a/b" -> "/a", "/a" -> "/", "/" -> "/"). */
static char *path_parent(const char *dir) {
        const char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return strdup("/");
        return strndup(dir, (size_t) (slash - dir));
}

/* Open and check "/" into *dirfd and *here. */
static int walk_from_root(const struct walk *w, int *dirfd, char **here) {
        _cleanup_close_ int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: cannot open /", w->what, w->path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: cannot stat /", w->what, w->path);
        int r = check_dir(w, &st, "/");
        if (r < 0)
                return r;
        char *root = strdup("/");
        if (!root)
                return sd_error_set(w->err, ENOMEM, "out of memory");
        sd_closep(dirfd);
        *dirfd = steal_fd(&fd);
        free(*here);
        *here = root;
        return 0;
}

/* Step from *dirfd into its subdirectory (or "..") `name`, checked. */
static int walk_into(const struct walk *w, int *dirfd, char **here, const char *name) {
        bool up = strcmp(name, "..") == 0;
        _cleanup_free_ char *at = up ? path_parent(*here) : path_join(*here, name);
        if (!at)
                return sd_error_set(w->err, ENOMEM, "out of memory");
        _cleanup_close_ int fd = openat(*dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOTDIR)
                        return sd_error_set(w->err, EINVAL, "%s %s: %s is not a directory", w->what, w->path, at);
                return sd_error_set_errno(w->err, errno, "%s %s: cannot open directory %s", w->what, w->path, at);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: cannot stat %s", w->what, w->path, at);
        int r = check_dir(w, &st, at);
        if (r < 0)
                return r;
        sd_closep(dirfd);
        *dirfd = steal_fd(&fd);
        free(*here);
        *here = steal_pointer(&at);
        return 0;
}

/* The last component: a regular file, checked on the opened fd. */
static int open_file(const struct walk *w, int dirfd, const char *at, const char *name) {
        /* O_NONBLOCK: a FIFO swapped in since the fstatat must not hang the
         * start; it fails the S_ISREG check below. */
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: cannot open %s", w->what, w->path, at);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: cannot stat %s", w->what, w->path, at);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(w->err, EINVAL, "%s %s: %s is not a regular file", w->what, w->path, at);
        bool bad_owner = !owner_ok(w, st.st_uid);
        bool bad_mode = writable_by_others(&st);
        if (bad_owner || bad_mode)
                return refuse(w, SUBJECT_FILE, at, &st, bad_owner, bad_mode);
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return sd_error_set_errno(w->err, errno, "%s %s: fcntl", w->what, w->path);
        return steal_fd(&fd);
}

int sd_trust_root_open(const char *path, const char *what, sd_error *err) {
        struct walk w = { .what = what, .path = path ? path : "", .euid = geteuid(), .err = err };
        if (!path || !*path)
                return sd_error_set(err, EINVAL, "%s: no path given", what);

        /* The components still to walk, relative to dirfd; rewritten when a
         * symbolic link splices its target in. */
        _cleanup_free_ char *pending = NULL;
        if (path[0] == '/') {
                pending = strdup(path);
        } else {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (!cwd)
                        return sd_error_set_errno(err, errno, "%s %s: cannot find the current directory", what, path);
                pending = path_join(cwd, path);
        }
        if (!pending)
                return sd_error_set(err, ENOMEM, "out of memory");

        _cleanup_close_ int dirfd = -1;
        _cleanup_free_ char *here = NULL;
        int r = walk_from_root(&w, &dirfd, &here);
        if (r < 0)
                return r;

        unsigned links = 0;
        const char *p = pending;
        for (;;) {
                while (*p == '/')
                        p++;
                if (*p == '\0')
                        return sd_error_set(err, EINVAL, "%s %s: %s is a directory, not a file", what, path, here);
                const char *end = strchrnul(p, '/');
                size_t len = (size_t) (end - p);
                if (len > NAME_MAX)
                        return sd_error_set(err, ENAMETOOLONG, "%s %s: a component is longer than %d bytes", what,
                                            path, NAME_MAX);
                char name[NAME_MAX + 1];
                memcpy(name, p, len);
                name[len] = '\0';
                const char *rest = end;
                while (*rest == '/')
                        rest++;
                bool last = *rest == '\0';
                p = rest;

                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                        if (name[1] == '.' && (r = walk_into(&w, &dirfd, &here, name)) < 0)
                                return r;
                        if (last)
                                return sd_error_set(err, EINVAL, "%s %s: %s is a directory, not a file", what, path,
                                                    here);
                        continue;
                }

                _cleanup_free_ char *at = path_join(here, name);
                if (!at)
                        return sd_error_set(err, ENOMEM, "out of memory");
                struct stat st;
                if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                return sd_error_set(err, ENOENT, "%s %s: %s does not exist", what, path, at);
                        return sd_error_set_errno(err, errno, "%s %s: cannot stat %s", what, path, at);
                }

                if (S_ISLNK(st.st_mode)) {
                        /* Its directory has passed; the link itself must be
                         * root's, or its owner could re-point it from a
                         * sticky directory. */
                        if (!owner_ok(&w, st.st_uid))
                                return refuse(&w, SUBJECT_LINK, at, &st, true, false);
                        if (++links > TRUST_ROOT_LINKS_MAX)
                                return sd_error_set(err, ELOOP, "%s %s: more than %d symbolic links", what, path,
                                                    TRUST_ROOT_LINKS_MAX);
                        char target[PATH_MAX];
                        ssize_t n = readlinkat(dirfd, name, target, sizeof(target));
                        if (n < 0)
                                return sd_error_set_errno(err, errno, "%s %s: cannot read link %s", what, path, at);
                        if ((size_t) n >= sizeof(target) || n == 0)
                                return sd_error_set(err, EINVAL, "%s %s: link %s has an empty or overlong target",
                                                    what, path, at);
                        target[n] = '\0';
                        char *spliced = NULL;
                        if (asprintf(&spliced, "%s%s%s", target, last ? "" : "/", rest) < 0)
                                return sd_error_set(err, ENOMEM, "out of memory");
                        free(pending);
                        pending = spliced;
                        w.followed_link = true;
                        p = pending;
                        if (target[0] == '/' && (r = walk_from_root(&w, &dirfd, &here)) < 0)
                                return r;
                        continue;
                }

                if (!last) {
                        r = walk_into(&w, &dirfd, &here, name);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        return sd_error_set(err, EINVAL, "%s %s: %s is not a regular file", what, path, at);
                return open_file(&w, dirfd, at, name);
        }
}

int sd_trust_root_check(const char *path, const char *what, sd_error *err) {
        int fd = sd_trust_root_open(path, what, err);
        if (fd < 0)
                return fd;
        (void) close(fd);
        return 0;
}
