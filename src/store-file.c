/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file store backend (file:///abs/path).  Layout, the compare-and-swap
 * argument and the crash-safety argument are in docs/store.md:
 *
 *   <root>/                         0700, not a symlink, not group/other-writable
 *   <root>/secrets/<name>/<%020llu>.env   one envelope per version
 *   <root>/recipients/<name>.rec    one signed recipient entry per agent (legacy)
 *   <root>/policy/<%020llu>.env     one realm policy document per version
 *   <root>/proposals/<%020llu>.env  one pending policy version (replaceable)
 *
 * Every access is relative to a directory fd opened with O_NOFOLLOW, so a
 * symlink planted anywhere below the root is never followed: it is reported
 * (warn callback) when a listing meets it and is an -ELOOP error when an
 * operation needs it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/names.h"
#include "store-internal.h"

#define VERSION_DIGITS 20
#define VERSION_SUFFIX ".env"
#define VERSION_FILE_LEN (VERSION_DIGITS + sizeof(VERSION_SUFFIX) - 1)
#define RECIPIENT_SUFFIX ".rec"

/* Envelopes and recipient entries are signed public data; who may read them
 * at all is decided by the root's own mode (0700 when we create it). */
#define STORE_FILE_MODE 0644
#define STORE_DIR_MODE 0755
#define STORE_ROOT_MODE 0700

struct name_watch {
        int wd;
        char *name;
};

struct file_store {
        char *root;         /* absolute path, for messages */
        int root_fd;
        int secrets_fd;     /* -1: absent and not creatable (read-only store) */
        int recipients_fd;  /* likewise */
        int policy_fd;      /* likewise */
        int proposals_fd;   /* likewise */

        int inotify_fd;     /* -1 until sd_store_watch_fd() */
        int secrets_wd;
        int policy_wd;      /* -1 when policy/ is not watched */
        struct name_watch *watches;
        size_t n_watches;
};

static struct file_store *impl_of(struct sd_store *s) {
        return s->impl;
}

/* ---- small helpers ---- */

static void version_file_name(uint64_t version, char out[VERSION_FILE_LEN + 1]) {
        (void) snprintf(out, VERSION_FILE_LEN + 1, "%020" PRIu64 VERSION_SUFFIX, version);
}

/* Exactly 20 digits + ".env", value >= 1: anything else is not a version. */
static bool parse_version_file_name(const char *fname, uint64_t *out) {
        if (strlen(fname) != VERSION_FILE_LEN || strcmp(fname + VERSION_DIGITS, VERSION_SUFFIX) != 0)
                return false;
        uint64_t v = 0;
        for (size_t i = 0; i < VERSION_DIGITS; i++) {
                if (fname[i] < '0' || fname[i] > '9')
                        return false;
                unsigned d = (unsigned) (fname[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (v == 0)
                return false;
        *out = v;
        return true;
}

static bool is_temp_name(const char *fname) {
        return strncmp(fname, SD_TEMP_PREFIX, strlen(SD_TEMP_PREFIX)) == 0;
}

static bool is_dot(const char *fname) {
        return strcmp(fname, ".") == 0 || strcmp(fname, "..") == 0;
}

static bool is_valid_name(const char *name, size_t len) {
        return sd_name_validate("name", name, len, NULL) == 0;
}

/* Open dirfd/name as a directory without following a symlink.  openat()
 * with O_DIRECTORY|O_NOFOLLOW answers ENOTDIR for a symlink, which would
 * hide the planted link, so look again and say -ELOOP. */
static int open_dir_nofollow(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                return fd;
        int e = errno;
        if (e == ENOTDIR || e == ELOOP) {
                struct stat st;
                if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                        return -ELOOP;
        }
        return -e;
}

/* The type of a directory entry, without following it. */
static int entry_type(DIR *d, const struct dirent *de, mode_t *type_out) {
        switch (de->d_type) {
        case DT_REG: *type_out = S_IFREG; return 0;
        case DT_DIR: *type_out = S_IFDIR; return 0;
        case DT_LNK: *type_out = S_IFLNK; return 0;
        case DT_UNKNOWN: break;
        default: *type_out = 0; return 0;  /* fifo, socket, device */
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        *type_out = st.st_mode & S_IFMT;
        return 0;
}

/* A fresh open file description on dirfd: readdir through a dup() would
 * share (and move) the position of the cached fd. */
static DIR *opendir_at(int dirfd, const char *path) {
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        DIR *d = fdopendir(fd);
        if (!d)
                sd_closep(&fd);
        return d;
}

/* The next entry of d other than "." and "..": 1 with *de_out set, 0 at the
 * end, or -errno when reading fails (readdir() tells an error from the end
 * only through errno). */
static int next_entry(DIR *d, struct dirent **de_out) {
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de)
                        return -errno;
                if (!is_dot(de->d_name)) {
                        *de_out = de;
                        return 1;
                }
        }
}

/* Problems that mean the system, not one entry, is failing: stop a listing
 * instead of skipping the entry. */
static bool is_systemic(int r) {
        return r == -ENOMEM || r == -EMFILE || r == -ENFILE || r == -EIO;
}

static int secrets_dir_missing(struct sd_store *s, sd_error *err) {
        return sd_error_set(err, ENOENT, "store '%s': %s/secrets does not exist and cannot be created",
                            s->url, impl_of(s)->root);
}

/* ---- open / free ---- */

static int check_dir_mode(const char *path, const struct stat *st, sd_error *err) {
        if (!S_ISDIR(st->st_mode))
                return sd_error_set(err, ENOTDIR, "file store '%s' is not a directory", path);
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return sd_error_set(err, EPERM,
                                    "file store '%s' has mode %04o: writable by group or others; refusing it (chmod go-w '%s')",
                                    path, (unsigned) (st->st_mode & 07777), path);
        return 0;
}

/* Create <root>/<sub> if we can, then open it.  Returns the fd, -1 when it
 * is absent and cannot be created (a read-only view: reads see an empty
 * store), or a negative errno with err set. */
static int open_area(int root_fd, const char *root, const char *sub, int *fd_out, sd_error *err) {
        if (mkdirat(root_fd, sub, STORE_DIR_MODE) == 0) {
                if (fsync(root_fd) < 0)
                        return sd_error_set_errno(err, errno, "file store '%s': cannot sync after creating %s/",
                                                  root, sub);
        } else if (errno != EEXIST && errno != EACCES && errno != EPERM && errno != EROFS) {
                return sd_error_set_errno(err, errno, "file store '%s': cannot create %s/", root, sub);
        }

        int fd = open_dir_nofollow(root_fd, sub);
        if (fd == -ENOENT) {
                *fd_out = -1;
                return 0;
        }
        if (fd == -ELOOP)
                return sd_error_set(err, ELOOP, "file store '%s': %s is a symbolic link; refusing to follow it",
                                    root, sub);
        if (fd < 0)
                return sd_error_set_errno(err, -fd, "file store '%s': cannot open %s/", root, sub);

        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                sd_closep(&fd);
                return sd_error_set_errno(err, e, "file store '%s': cannot stat %s/", root, sub);
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                sd_closep(&fd);
                return sd_error_set(err, EPERM,
                                    "file store '%s': %s/ has mode %04o: writable by group or others; refusing it",
                                    root, sub, (unsigned) (st.st_mode & 07777));
        }
        *fd_out = fd;
        return 0;
}

static void file_free(void *p) {
        struct file_store *f = p;
        if (!f)
                return;
        sd_closep(&f->root_fd);
        sd_closep(&f->secrets_fd);
        sd_closep(&f->recipients_fd);
        sd_closep(&f->policy_fd);
        sd_closep(&f->proposals_fd);
        sd_closep(&f->inotify_fd);
        for (size_t i = 0; i < f->n_watches; i++)
                free(f->watches[i].name);
        free(f->watches);
        free(f->root);
        free(f);
}

static void file_freep(struct file_store **f) {
        file_free(*f);
        *f = NULL;
}

static int create_root(const char *path, sd_error *err) {
        _cleanup_free_ char *parent = strdup(path);
        if (!parent)
                return sd_error_set(err, ENOMEM, "out of memory");
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = '\0';
                int r = sd_mkdir_p(parent, STORE_DIR_MODE);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "file store '%s': cannot create its parent directory '%s'",
                                                  path, parent);
        } else {
                parent[0] = '/';
                parent[1] = '\0';
        }
        if (mkdir(path, STORE_ROOT_MODE) < 0) {
                if (errno == EEXIST)
                        return 0;
                return sd_error_set_errno(err, errno, "file store '%s': cannot create it", path);
        }
        /* The new root's entry in its parent must survive a crash too. */
        _cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0)
                (void) fsync(pfd);
        return 0;
}

static int file_open(struct sd_store *s, const char *url, const char *rest, int create,
                     void **impl_out, sd_error *err) {
        /* file://HOST/path is a remote file in RFC 8089; only the empty host
         * (file:///path) is meaningful here. */
        if (rest[0] != '/')
                return sd_error_set(err, EINVAL,
                                    "store URL '%s': a file store needs an absolute path: file:///path/to/store",
                                    url);

        _cleanup_(file_freep) struct file_store *f = calloc(1, sizeof(*f));
        if (!f)
                return sd_error_set(err, ENOMEM, "out of memory");
        f->root_fd = f->secrets_fd = f->recipients_fd = f->policy_fd = f->proposals_fd = f->inotify_fd = -1;
        f->secrets_wd = f->policy_wd = -1;

        f->root = strdup(rest);
        if (!f->root)
                return sd_error_set(err, ENOMEM, "out of memory");
        /* "/x/" would make open() follow a symlink x despite O_NOFOLLOW. */
        for (size_t l = strlen(f->root); l > 1 && f->root[l - 1] == '/'; l--)
                f->root[l - 1] = '\0';

        if (strcmp(f->root, "/") == 0)
                return sd_error_set(err, EINVAL, "store URL '%s': a file store cannot be the root directory",
                                    url);

        if (create) {
                int r = create_root(f->root, err);
                if (r < 0)
                        return r;
        }

        f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (f->root_fd < 0) {
                int e = errno;
                struct stat st;
                if ((e == ENOTDIR || e == ELOOP) && lstat(f->root, &st) == 0 && S_ISLNK(st.st_mode))
                        return sd_error_set(err, EPERM,
                                            "file store '%s' is a symbolic link (mode %04o); refusing it: use the real path",
                                            f->root, (unsigned) (st.st_mode & 07777));
                if (e == ENOENT)
                        return sd_error_set(err, ENOENT, "file store '%s' does not exist", f->root);
                return sd_error_set_errno(err, e, "file store '%s': cannot open it", f->root);
        }
        struct stat st;
        if (fstat(f->root_fd, &st) < 0)
                return sd_error_set_errno(err, errno, "file store '%s': cannot stat it", f->root);
        int r = check_dir_mode(f->root, &st, err);
        if (r < 0)
                return r;

        const struct {
                const char *sub;
                int *fd;
        } areas[] = {
                { "secrets", &f->secrets_fd },
                { "recipients", &f->recipients_fd },
                { "policy", &f->policy_fd },
                { "proposals", &f->proposals_fd },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(areas); i++) {
                r = open_area(f->root_fd, f->root, areas[i].sub, areas[i].fd, err);
                if (r < 0)
                        return r;
        }

        *impl_out = steal_pointer(&f);
        return 0;
}

/* ---- reading a name directory ---- */

static int open_name_dir(struct sd_store *s, const char *name, int *fd_out, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->secrets_fd < 0)
                return sd_error_set(err, ENOENT, "store '%s': secret '%s' not found", s->url, name);
        int fd = open_dir_nofollow(f->secrets_fd, name);
        if (fd == -ENOENT)
                return sd_error_set(err, ENOENT, "store '%s': secret '%s' not found", s->url, name);
        if (fd == -ELOOP)
                return sd_error_set(err, ELOOP, "store '%s': secrets/%s is a symbolic link; refusing to follow it",
                                    s->url, name);
        if (fd < 0)
                return sd_error_set_errno(err, -fd, "store '%s': cannot open secrets/%s", s->url, name);
        *fd_out = fd;
        return 0;
}

struct version_scan {
        uint64_t latest;       /* 0: none */
        uint64_t *versions;    /* only when collect */
        size_t n, cap;
        bool collect;
};

/* Walk one version directory (label: its path below the root, for
 * messages: "secrets/db", "policy").  Version files count; temp files and strays are
 * reported and skipped; a version-named symlink or non-file is an error,
 * because skipping it would make the next put collide with it forever. */
static int scan_versions(struct sd_store *s, const char *label, int name_fd, struct version_scan *scan,
                         sd_error *err) {
        _cleanup_closedir_ DIR *d = opendir_at(name_fd, ".");
        if (!d)
                return sd_error_set_errno(err, errno, "store '%s': cannot read %s", s->url, label);

        for (;;) {
                struct dirent *de;
                int r = next_entry(d, &de);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "store '%s': cannot read %s", s->url, label);
                if (r == 0)
                        break;

                uint64_t v;
                if (is_temp_name(de->d_name)) {
                        sd_store_warnf(s, "%s/%s: temporary file skipped (a put in progress, or left by an interrupted one)",
                                       label, de->d_name);
                        continue;
                }
                if (!parse_version_file_name(de->d_name, &v)) {
                        char shown[64];
                        sd_escape_for_message(de->d_name, strlen(de->d_name), shown, sizeof(shown));
                        sd_store_warnf(s, "%s/%s: unexpected entry skipped", label, shown);
                        continue;
                }
                mode_t type;
                r = entry_type(d, de, &type);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "store '%s': cannot stat %s/%s",
                                                  s->url, label, de->d_name);
                if (type == S_IFLNK)
                        return sd_error_set(err, ELOOP,
                                            "store '%s': %s/%s is a symbolic link; refusing to follow it",
                                            s->url, label, de->d_name);
                if (type != S_IFREG)
                        return sd_error_set(err, EINVAL, "store '%s': %s/%s is not a regular file",
                                            s->url, label, de->d_name);

                if (v > scan->latest)
                        scan->latest = v;
                if (scan->collect) {
                        if (scan->n == scan->cap) {
                                size_t ncap = scan->cap ? scan->cap * 2 : 16;
                                uint64_t *bigger = reallocarray(scan->versions, ncap, sizeof(*bigger));
                                if (!bigger)
                                        return sd_error_set(err, ENOMEM, "out of memory");
                                scan->versions = bigger;
                                scan->cap = ncap;
                        }
                        scan->versions[scan->n++] = v;
                }
        }
        return 0;
}

/* A version directory's path below the root and what messages call its
 * content: "secrets/db" and "secret 'db'", or "policy" and "policy". */
struct version_dir {
        int fd;
        char label[SD_NAME_MAX + 16];
        char subject[SD_NAME_MAX + 16];
};

static void secret_dir(struct version_dir *d, int fd, const char *name) {
        d->fd = fd;
        (void) snprintf(d->label, sizeof(d->label), "secrets/%s", name);
        (void) snprintf(d->subject, sizeof(d->subject), "secret '%s'", name);
}

static int latest_in(struct sd_store *s, const struct version_dir *d, uint64_t *out, sd_error *err) {
        struct version_scan scan = { 0 };
        int r = scan_versions(s, d->label, d->fd, &scan, err);
        if (r < 0)
                return r;
        if (scan.latest == 0)
                return sd_error_set(err, ENOENT, "store '%s': %s not found", s->url, d->subject);
        *out = scan.latest;
        return 0;
}

/* ---- put: the compare-and-swap ---- */

static int conflict(struct sd_store *s, const char *subject, uint64_t version, const char *why,
                    sd_error *err) {
        return sd_error_set(err, EEXIST, "store '%s': %s version %" PRIu64 ": conflict: %s", s->url, subject,
                            version, why);
}

/*
 * Why no gap and no duplicate can arise although "version-1 exists" and
 * "publish version" are two separate steps:
 *
 * Invariant: the version files of a name are always exactly {1..k} for some
 * k >= 0.  Nothing ever removes a version file (a delete is a tombstone
 * version), so once a writer has seen version N-1 it still exists when that
 * writer's rename runs.  The rename is renameat2(RENAME_NOREPLACE), which
 * the kernel performs atomically: of all writers renaming onto N, exactly
 * one succeeds and the rest get EEXIST.  So a successful publish of N
 * happens in a state where N-1 is present and N is absent; with the
 * invariant that state is {1..N-1}, and afterwards it is {1..N}.  For N = 1
 * the check is "no version file at all"; a writer that published 1 between
 * our check and our rename makes our rename fail, and nobody can publish 2
 * before 1 exists.  A loser's staged temp file is unlinked, so its payload
 * never appears under any version: each successful put is one file, once.
 */
static int put_version_in(struct sd_store *s, const struct version_dir *d, bool fresh, uint64_t version,
                          const char *data, size_t len, sd_error *err) {
        char fname[VERSION_FILE_LEN + 1];
        if (version == 1) {
                if (!fresh) {
                        struct version_scan scan = { 0 };
                        int r = scan_versions(s, d->label, d->fd, &scan, err);
                        if (r < 0)
                                return r;
                        if (scan.latest != 0) {
                                char why[96];
                                (void) snprintf(why, sizeof(why), "the latest version is already %" PRIu64,
                                                scan.latest);
                                return conflict(s, d->subject, version, why, err);
                        }
                }
        } else {
                version_file_name(version - 1, fname);
                struct stat st;
                if (fstatat(d->fd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                return sd_error_set_errno(err, errno, "store '%s': cannot stat %s/%s", s->url,
                                                          d->label, fname);
                        uint64_t latest = 0;
                        int r = latest_in(s, d, &latest, err);
                        if (r < 0 && r != -ENOENT)
                                return r;
                        char why[96];
                        (void) snprintf(why, sizeof(why), "the latest version is %" PRIu64 ", not %" PRIu64,
                                        latest, version - 1);
                        return conflict(s, d->subject, version, why, err);
                }
                if (S_ISLNK(st.st_mode))
                        return sd_error_set(err, ELOOP, "store '%s': %s/%s is a symbolic link; refusing to follow it",
                                            s->url, d->label, fname);
                if (!S_ISREG(st.st_mode))
                        return sd_error_set(err, EINVAL, "store '%s': %s/%s is not a regular file", s->url, d->label,
                                            fname);
        }

        version_file_name(version, fname);
        int r = sd_write_file_at(d->fd, fname, data, len, STORE_FILE_MODE, 0, err);
        if (r == -EEXIST)
                return conflict(s, d->subject, version, "another writer stored this version first", err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': %s", s->url, d->label);
        return 0;
}

static int file_put(struct sd_store *s, const char *name, uint64_t version, const char *data,
                    size_t len, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->secrets_fd < 0)
                return secrets_dir_missing(s, err);

        bool created = false;
        char subject[SD_NAME_MAX + 16];
        (void) snprintf(subject, sizeof(subject), "secret '%s'", name);
        _cleanup_close_ int name_fd = open_dir_nofollow(f->secrets_fd, name);
        if (name_fd == -ENOENT) {
                if (version != 1)
                        return conflict(s, subject, version, "the secret has no versions yet", err);
                if (mkdirat(f->secrets_fd, name, STORE_DIR_MODE) == 0)
                        created = true;
                else if (errno != EEXIST)
                        return sd_error_set_errno(err, errno, "store '%s': cannot create secrets/%s",
                                                  s->url, name);
                if (created && fsync(f->secrets_fd) < 0)
                        return sd_error_set_errno(err, errno, "store '%s': cannot sync secrets/ after creating %s/",
                                                  s->url, name);
                name_fd = open_dir_nofollow(f->secrets_fd, name);
        }
        if (name_fd == -ELOOP)
                return sd_error_set(err, ELOOP, "store '%s': secrets/%s is a symbolic link; refusing to follow it",
                                    s->url, name);
        if (name_fd < 0)
                return sd_error_set_errno(err, -name_fd, "store '%s': cannot open secrets/%s", s->url, name);
        struct version_dir d;
        secret_dir(&d, name_fd, name);
        return put_version_in(s, &d, created, version, data, len, err);
}

/* ---- get / latest / history / list ---- */

static int get_version_in(struct sd_store *s, const struct version_dir *d, uint64_t version, char **data_out,
                          size_t *len_out, uint64_t *version_out, sd_error *err) {
        if (version == 0) {
                int r = latest_in(s, d, &version, err);
                if (r < 0)
                        return r;
        }

        char fname[VERSION_FILE_LEN + 1];
        version_file_name(version, fname);
        struct stat st;
        if (fstatat(d->fd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "store '%s': %s has no version %" PRIu64, s->url,
                                            d->subject, version);
                return sd_error_set_errno(err, errno, "store '%s': cannot stat %s/%s", s->url, d->label, fname);
        }
        if (S_ISLNK(st.st_mode))
                return sd_error_set(err, ELOOP, "store '%s': %s/%s is a symbolic link; refusing to follow it",
                                    s->url, d->label, fname);

        /* The content is returned as it is: a truncated or forged envelope
         * is the envelope layer's to reject, with a better message. */
        int r = sd_read_file_at(d->fd, fname, SD_ENVELOPE_MAX_BYTES, data_out, len_out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': %s", s->url, d->label);
        *version_out = version;
        return 0;
}

static int file_get(struct sd_store *s, const char *name, uint64_t version, char **data_out,
                    size_t *len_out, uint64_t *version_out, sd_error *err) {
        _cleanup_close_ int name_fd = -1;
        int r = open_name_dir(s, name, &name_fd, err);
        if (r < 0)
                return r;
        struct version_dir d;
        secret_dir(&d, name_fd, name);
        return get_version_in(s, &d, version, data_out, len_out, version_out, err);
}

static int file_latest(struct sd_store *s, const char *name, uint64_t *version_out, sd_error *err) {
        _cleanup_close_ int name_fd = -1;
        int r = open_name_dir(s, name, &name_fd, err);
        if (r < 0)
                return r;
        struct version_dir d;
        secret_dir(&d, name_fd, name);
        return latest_in(s, &d, version_out, err);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Every version in d, ascending (n 0 when there is none). */
static int versions_in(struct sd_store *s, const struct version_dir *d, uint64_t **versions_out, size_t *n_out,
                       sd_error *err) {
        struct version_scan scan = { .collect = true };
        int r = scan_versions(s, d->label, d->fd, &scan, err);
        _cleanup_free_ uint64_t *versions = scan.versions;
        if (r < 0)
                return r;
        if (scan.n > 1)
                qsort(versions, scan.n, sizeof(*versions), cmp_u64);
        *versions_out = steal_pointer(&versions);
        *n_out = scan.n;
        return 0;
}

static int file_history(struct sd_store *s, const char *name, uint64_t **versions_out, size_t *n_out,
                        sd_error *err) {
        _cleanup_close_ int name_fd = -1;
        int r = open_name_dir(s, name, &name_fd, err);
        if (r < 0)
                return r;
        struct version_dir d;
        secret_dir(&d, name_fd, name);
        _cleanup_free_ uint64_t *versions = NULL;
        size_t n = 0;
        r = versions_in(s, &d, &versions, &n, err);
        if (r < 0)
                return r;
        if (n == 0)
                return sd_error_set(err, ENOENT, "store '%s': secret '%s' not found", s->url, name);
        *versions_out = steal_pointer(&versions);
        *n_out = n;
        return 0;
}

static int cmp_store_name(const void *a, const void *b) {
        return strcmp(((const struct sd_store_name *) a)->name, ((const struct sd_store_name *) b)->name);
}

struct name_list {
        struct sd_store_name *items;
        size_t n, cap;
};

static void name_list_done(struct name_list *l) {
        sd_store_names_free(l->items, l->n);
}

static int name_list_add(struct name_list *l, const char *name, uint64_t latest) {
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                struct sd_store_name *bigger = reallocarray(l->items, ncap, sizeof(*bigger));
                if (!bigger)
                        return -ENOMEM;
                l->items = bigger;
                l->cap = ncap;
        }
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        l->items[l->n++] = (struct sd_store_name) { .name = copy, .latest = latest };
        return 0;
}

/* One entry of secrets/: the name, if it is a readable name directory with
 * at least one version; everything else is reported and skipped. */
static int list_one(struct sd_store *s, DIR *d, const struct dirent *de, struct name_list *l,
                    sd_error *err) {
        const char *name = de->d_name;
        char shown[64];
        sd_escape_for_message(name, strlen(name), shown, sizeof(shown));

        if (is_temp_name(name)) {
                sd_store_warnf(s, "secrets/%s: temporary file skipped", shown);
                return 0;
        }
        if (!is_valid_name(name, strlen(name))) {
                sd_store_warnf(s, "secrets/%s: unexpected entry skipped (not a valid secret name)", shown);
                return 0;
        }
        mode_t type;
        int r = entry_type(d, de, &type);
        if (r < 0) {
                sd_store_warnf(s, "secrets/%s: cannot stat it; skipped", name);
                return 0;
        }
        if (type == S_IFLNK) {
                sd_store_warnf(s, "secrets/%s is a symbolic link; skipped, not followed", name);
                return 0;
        }
        if (type != S_IFDIR) {
                sd_store_warnf(s, "secrets/%s is not a directory; skipped", name);
                return 0;
        }

        _cleanup_close_ int name_fd = open_dir_nofollow(impl_of(s)->secrets_fd, name);
        if (name_fd < 0) {
                if (is_systemic(name_fd))
                        return sd_error_set_errno(err, -name_fd, "store '%s': cannot open secrets/%s",
                                                  s->url, name);
                /* Gone since readdir (not something this store does) or swapped for a link. */
                if (name_fd != -ENOENT)
                        sd_store_warnf(s, "secrets/%s: cannot open it (%s); skipped", name,
                                       strerror(-name_fd));
                return 0;
        }
        uint64_t latest = 0;
        sd_error sub = { 0 };
        struct version_dir vd;
        secret_dir(&vd, name_fd, name);
        r = latest_in(s, &vd, &latest, &sub);
        if (r == -ENOENT)
                /* A name directory without versions: a first put in progress or
                 * one interrupted between mkdir and rename.  Nothing to list. */
                return 0;
        if (r < 0) {
                if (is_systemic(r)) {
                        if (err)
                                *err = sub;
                        return r;
                }
                sd_store_warnf(s, "secret '%s' skipped: %s", name, sub.message);
                return 0;
        }
        if (name_list_add(l, name, latest) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int file_list(struct sd_store *s, struct sd_store_name **out, size_t *n_out, sd_error *err) {
        struct file_store *f = impl_of(s);
        _cleanup_(name_list_done) struct name_list l = { 0 };
        if (f->secrets_fd < 0) {
                *out = NULL;
                *n_out = 0;
                return 0;
        }
        _cleanup_closedir_ DIR *d = opendir_at(f->secrets_fd, ".");
        if (!d)
                return sd_error_set_errno(err, errno, "store '%s': cannot read secrets/", s->url);
        for (;;) {
                struct dirent *de;
                int r = next_entry(d, &de);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "store '%s': cannot read secrets/", s->url);
                if (r == 0)
                        break;
                r = list_one(s, d, de, &l, err);
                if (r < 0)
                        return r;
        }
        if (l.n > 1)
                qsort(l.items, l.n, sizeof(*l.items), cmp_store_name);
        *out = steal_pointer(&l.items);
        *n_out = l.n;
        l.n = 0;
        return 0;
}

/* ---- the realm's areas: policy versions and proposals ---- */

/* The directory of an area, or -ENOENT (with err) when it is absent and
 * could not be created (a read-only store). */
static int area_dir(struct sd_store *s, enum sd_store_area area, struct version_dir *d, sd_error *err) {
        struct file_store *f = impl_of(s);
        bool policy = area == SD_STORE_AREA_POLICY;
        d->fd = policy ? f->policy_fd : f->proposals_fd;
        (void) snprintf(d->label, sizeof(d->label), "%s", policy ? "policy" : "proposals");
        (void) snprintf(d->subject, sizeof(d->subject), "%s", policy ? "policy" : "policy proposal");
        if (d->fd < 0)
                return sd_error_set(err, ENOENT, "store '%s': %s/%s does not exist and cannot be created", s->url,
                                    f->root, d->label);
        return 0;
}

static int file_area_put(struct sd_store *s, enum sd_store_area area, uint64_t version, const char *data,
                         size_t len, sd_error *err) {
        struct version_dir d;
        int r = area_dir(s, area, &d, err);
        if (r < 0)
                return r;
        if (area == SD_STORE_AREA_POLICY)
                return put_version_in(s, &d, false, version, data, len, err);
        char fname[VERSION_FILE_LEN + 1];
        version_file_name(version, fname);
        /* rename() replaces a planted symlink itself, never its target. */
        r = sd_write_file_at(d.fd, fname, data, len, STORE_FILE_MODE, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': %s", s->url, d.label);
        return 0;
}

static int file_area_get(struct sd_store *s, enum sd_store_area area, uint64_t version, char **data_out,
                         size_t *len_out, uint64_t *version_out, sd_error *err) {
        struct version_dir d;
        sd_error why = { 0 };
        if (area_dir(s, area, &d, &why) < 0)
                return sd_error_set(err, ENOENT, "store '%s': no %s", s->url, area == SD_STORE_AREA_POLICY
                                                                                ? "realm policy" : "policy proposal");
        return get_version_in(s, &d, version, data_out, len_out, version_out, err);
}

static int file_area_list(struct sd_store *s, enum sd_store_area area, uint64_t **versions_out, size_t *n_out,
                          sd_error *err) {
        struct version_dir d;
        sd_error why = { 0 };
        if (area_dir(s, area, &d, &why) < 0) {
                *versions_out = NULL;
                *n_out = 0;
                return 0;
        }
        return versions_in(s, &d, versions_out, n_out, err);
}

static int file_area_remove(struct sd_store *s, enum sd_store_area area, uint64_t version, sd_error *err) {
        struct version_dir d;
        int r = area_dir(s, area, &d, err);
        if (r < 0)
                return r;
        char fname[VERSION_FILE_LEN + 1];
        version_file_name(version, fname);
        if (unlinkat(d.fd, fname, 0) < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "store '%s': no %s for version %" PRIu64, s->url, d.subject,
                                            version);
                return sd_error_set_errno(err, errno, "store '%s': cannot remove %s/%s", s->url, d.label, fname);
        }
        if (fsync(d.fd) < 0)
                return sd_error_set_errno(err, errno, "store '%s': cannot sync %s/", s->url, d.label);
        return 0;
}

/* ---- recipients ---- */

static int recipient_file_name(const char *name, char out[SD_NAME_MAX + sizeof(RECIPIENT_SUFFIX)]) {
        int n = snprintf(out, SD_NAME_MAX + sizeof(RECIPIENT_SUFFIX), "%s" RECIPIENT_SUFFIX, name);
        return n < 0 || (size_t) n >= SD_NAME_MAX + sizeof(RECIPIENT_SUFFIX) ? -ENAMETOOLONG : 0;
}

static int file_recipient_put(struct sd_store *s, const char *name, const char *data, size_t len,
                              sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->recipients_fd < 0)
                return sd_error_set(err, ENOENT, "store '%s': %s/recipients does not exist and cannot be created",
                                    s->url, f->root);
        char fname[SD_NAME_MAX + sizeof(RECIPIENT_SUFFIX)];
        if (recipient_file_name(name, fname) < 0)
                return sd_error_set(err, ENAMETOOLONG, "recipient name '%s' is too long", name);
        /* rename() replaces a planted symlink itself, never its target. */
        int r = sd_write_file_at(f->recipients_fd, fname, data, len, STORE_FILE_MODE, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': recipients", s->url);
        return 0;
}

static int file_recipient_remove(struct sd_store *s, const char *name, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->recipients_fd < 0)
                return sd_error_set(err, ENOENT, "store '%s': recipient '%s' not found", s->url, name);
        char fname[SD_NAME_MAX + sizeof(RECIPIENT_SUFFIX)];
        if (recipient_file_name(name, fname) < 0)
                return sd_error_set(err, ENAMETOOLONG, "recipient name '%s' is too long", name);
        if (unlinkat(f->recipients_fd, fname, 0) < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "store '%s': recipient '%s' not found", s->url, name);
                return sd_error_set_errno(err, errno, "store '%s': cannot remove recipients/%s", s->url, fname);
        }
        if (fsync(f->recipients_fd) < 0)
                return sd_error_set_errno(err, errno, "store '%s': cannot sync recipients/", s->url);
        return 0;
}

static int cmp_blob(const void *a, const void *b) {
        return strcmp(((const struct sd_store_blob *) a)->name, ((const struct sd_store_blob *) b)->name);
}

struct blob_list {
        struct sd_store_blob *items;
        size_t n, cap;
};

static void blob_list_done(struct blob_list *l) {
        sd_store_blobs_free(l->items, l->n);
}

static int recipient_one(struct sd_store *s, DIR *d, const struct dirent *de, struct blob_list *l,
                         sd_error *err) {
        const char *fname = de->d_name;
        char shown[64];
        sd_escape_for_message(fname, strlen(fname), shown, sizeof(shown));
        size_t flen = strlen(fname), slen = strlen(RECIPIENT_SUFFIX);

        if (is_temp_name(fname)) {
                sd_store_warnf(s, "recipients/%s: temporary file skipped (a put in progress, or left by an interrupted one)",
                               shown);
                return 0;
        }
        if (flen <= slen || strcmp(fname + flen - slen, RECIPIENT_SUFFIX) != 0 ||
            !is_valid_name(fname, flen - slen)) {
                sd_store_warnf(s, "recipients/%s: unexpected entry skipped", shown);
                return 0;
        }
        mode_t type;
        if (entry_type(d, de, &type) == 0 && type == S_IFLNK) {
                sd_store_warnf(s, "recipients/%s is a symbolic link; skipped, not followed", fname);
                return 0;
        }

        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sd_error sub = { 0 };
        int r = sd_read_file_at(dirfd(d), fname, SD_ENVELOPE_MAX_BYTES, &data, &len, &sub);
        if (r < 0) {
                if (is_systemic(r)) {
                        if (err)
                                *err = sub;
                        return r;
                }
                if (r != -ENOENT)  /* removed since readdir: simply gone */
                        sd_store_warnf(s, "recipients/%s skipped: %s", fname, sub.message);
                return 0;
        }

        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                struct sd_store_blob *bigger = reallocarray(l->items, ncap, sizeof(*bigger));
                if (!bigger)
                        return sd_error_set(err, ENOMEM, "out of memory");
                l->items = bigger;
                l->cap = ncap;
        }
        char *name = strndup(fname, flen - slen);
        if (!name)
                return sd_error_set(err, ENOMEM, "out of memory");
        l->items[l->n++] = (struct sd_store_blob) { .name = name, .data = steal_pointer(&data), .len = len };
        return 0;
}

static int file_recipient_list(struct sd_store *s, struct sd_store_blob **out, size_t *n_out,
                               sd_error *err) {
        struct file_store *f = impl_of(s);
        _cleanup_(blob_list_done) struct blob_list l = { 0 };
        if (f->recipients_fd < 0) {
                *out = NULL;
                *n_out = 0;
                return 0;
        }
        _cleanup_closedir_ DIR *d = opendir_at(f->recipients_fd, ".");
        if (!d)
                return sd_error_set_errno(err, errno, "store '%s': cannot read recipients/", s->url);
        for (;;) {
                struct dirent *de;
                int r = next_entry(d, &de);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "store '%s': cannot read recipients/", s->url);
                if (r == 0)
                        break;
                r = recipient_one(s, d, de, &l, err);
                if (r < 0)
                        return r;
        }
        if (l.n > 1)
                qsort(l.items, l.n, sizeof(*l.items), cmp_blob);
        *out = steal_pointer(&l.items);
        *n_out = l.n;
        l.n = 0;
        return 0;
}

/* ---- watch ----
 *
 * One inotify watch on secrets/ (a new name directory) and one on each name
 * directory (a version renamed into place: IN_MOVED_TO; IN_CREATE as well
 * for files written in place by hand).  inotify_add_watch() takes a path, so
 * each directory is opened with O_NOFOLLOW first and watched through its
 * /proc/self/fd link: the inode watched is the one we checked.
 */

#define NAME_DIR_EVENTS (IN_MOVED_TO | IN_CREATE | IN_ONLYDIR)
#define POLICY_DIR_EVENTS (IN_MOVED_TO | IN_CREATE | IN_ONLYDIR)
#define SECRETS_DIR_EVENTS (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

static int inotify_watch_fd(int inotify_fd, int dir_fd, uint32_t mask) {
        char path[64];
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", dir_fd);
        int wd = inotify_add_watch(inotify_fd, path, mask);
        return wd >= 0 ? wd : -errno;
}

static int watch_name(struct sd_store *s, const char *name, sd_error *err) {
        struct file_store *f = impl_of(s);
        _cleanup_close_ int fd = open_dir_nofollow(f->secrets_fd, name);
        if (fd == -ELOOP) {
                sd_store_warnf(s, "secrets/%s is a symbolic link; not watched, not followed", name);
                return 0;
        }
        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return sd_error_set_errno(err, -fd, "store '%s': cannot open secrets/%s to watch it",
                                          s->url, name);
        int wd = inotify_watch_fd(f->inotify_fd, fd, NAME_DIR_EVENTS);
        if (wd < 0)
                return sd_error_set_errno(err, -wd, "store '%s': cannot watch secrets/%s", s->url, name);

        /* The same directory seen twice (a create event for a name we
         * already found by scanning) gives the same wd. */
        for (size_t i = 0; i < f->n_watches; i++)
                if (f->watches[i].wd == wd)
                        return 0;
        struct name_watch *bigger = reallocarray(f->watches, f->n_watches + 1, sizeof(*bigger));
        if (!bigger)
                return sd_error_set(err, ENOMEM, "out of memory");
        f->watches = bigger;
        char *copy = strdup(name);
        if (!copy)
                return sd_error_set(err, ENOMEM, "out of memory");
        f->watches[f->n_watches++] = (struct name_watch) { .wd = wd, .name = copy };
        return 0;
}

struct changed {
        char **names;
        size_t n;
};

static void changed_done(struct changed *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->names[i]);
        free(c->names);
}

static int changed_add(struct changed *c, const char *name) {
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->names[i], name) == 0)
                        return 0;
        char **bigger = reallocarray(c->names, c->n + 1, sizeof(*bigger));
        if (!bigger)
                return -ENOMEM;
        c->names = bigger;
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        c->names[c->n++] = copy;
        return 0;
}

/* Watch every name directory that exists now; with c, report each as
 * changed (after an overflow, when events were lost). */
static int watch_all_names(struct sd_store *s, struct changed *c, sd_error *err) {
        _cleanup_closedir_ DIR *d = opendir_at(impl_of(s)->secrets_fd, ".");
        if (!d)
                return sd_error_set_errno(err, errno, "store '%s': cannot read secrets/", s->url);
        for (;;) {
                struct dirent *de;
                int r = next_entry(d, &de);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "store '%s': cannot read secrets/", s->url);
                if (r == 0)
                        return 0;
                if (!is_valid_name(de->d_name, strlen(de->d_name)))
                        continue;
                r = watch_name(s, de->d_name, err);
                if (r < 0)
                        return r;
                if (c && changed_add(c, de->d_name) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
}

static int file_watch_fd(struct sd_store *s, int *fd_out, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->inotify_fd >= 0) {
                *fd_out = f->inotify_fd;
                return 0;
        }
        if (f->secrets_fd < 0)
                return secrets_dir_missing(s, err);

        f->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (f->inotify_fd < 0)
                return sd_error_set_errno(err, errno, "store '%s': cannot create an inotify instance", s->url);
        /* Watch secrets/ before scanning it, so a name created during the
         * scan is either found by the scan or reported by an event. */
        f->secrets_wd = inotify_watch_fd(f->inotify_fd, f->secrets_fd, SECRETS_DIR_EVENTS);
        int r = f->secrets_wd;
        if (r < 0)
                (void) sd_error_set_errno(err, -r, "store '%s': cannot watch secrets/", s->url);
        if (r >= 0 && f->policy_fd >= 0) {
                f->policy_wd = inotify_watch_fd(f->inotify_fd, f->policy_fd, POLICY_DIR_EVENTS);
                r = f->policy_wd;
                if (r < 0)
                        (void) sd_error_set_errno(err, -r, "store '%s': cannot watch policy/", s->url);
        }
        if (r >= 0)
                r = watch_all_names(s, NULL, err);
        if (r < 0) {
                sd_closep(&f->inotify_fd);
                f->secrets_wd = f->policy_wd = -1;
                for (size_t i = 0; i < f->n_watches; i++)
                        free(f->watches[i].name);
                f->n_watches = 0;
                return r;
        }
        *fd_out = f->inotify_fd;
        return 0;
}

static const char *watched_name(struct file_store *f, int wd) {
        for (size_t i = 0; i < f->n_watches; i++)
                if (f->watches[i].wd == wd)
                        return f->watches[i].name;
        return NULL;
}

static void forget_watch(struct file_store *f, int wd) {
        for (size_t i = 0; i < f->n_watches; i++)
                if (f->watches[i].wd == wd) {
                        free(f->watches[i].name);
                        f->watches[i] = f->watches[--f->n_watches];
                        return;
                }
}

static int handle_event(struct sd_store *s, const struct inotify_event *ev, struct changed *c,
                        bool *overflow, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (ev->mask & IN_Q_OVERFLOW) {
                *overflow = true;
                return 0;
        }
        if (ev->wd == f->secrets_wd) {
                if (!(ev->mask & IN_ISDIR) || !(ev->mask & (IN_CREATE | IN_MOVED_TO)) || ev->len == 0)
                        return 0;
                if (!is_valid_name(ev->name, strlen(ev->name)))
                        return 0;
                /* Watch first, then report: the caller's re-read then sees
                 * every version published before the watch existed, and
                 * later ones raise their own events. */
                int r = watch_name(s, ev->name, err);
                if (r < 0)
                        return r;
                return changed_add(c, ev->name) < 0 ? sd_error_set(err, ENOMEM, "out of memory") : 0;
        }
        if (ev->wd == f->policy_wd) {
                uint64_t v;
                if (ev->len == 0 || (ev->mask & IN_ISDIR) || !parse_version_file_name(ev->name, &v))
                        return 0;
                return changed_add(c, SD_STORE_POLICY_NAME) < 0 ? sd_error_set(err, ENOMEM, "out of memory") : 0;
        }
        if (ev->mask & IN_IGNORED) {
                forget_watch(f, ev->wd);
                return 0;
        }
        const char *name = watched_name(f, ev->wd);
        uint64_t v;
        if (!name || ev->len == 0 || (ev->mask & IN_ISDIR) || !parse_version_file_name(ev->name, &v))
                return 0;
        return changed_add(c, name) < 0 ? sd_error_set(err, ENOMEM, "out of memory") : 0;
}

static int file_watch_read(struct sd_store *s, sd_store_change_fn fn, void *userdata, sd_error *err) {
        struct file_store *f = impl_of(s);
        if (f->inotify_fd < 0)
                return sd_error_set(err, EINVAL, "store '%s': sd_store_watch_read() before sd_store_watch_fd()",
                                    s->url);

        _cleanup_(changed_done) struct changed c = { 0 };
        bool overflow = false;
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        for (;;) {
                ssize_t n = read(f->inotify_fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return sd_error_set_errno(err, errno, "store '%s': reading inotify events failed", s->url);
                }
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) (void *) p;
                        int r = handle_event(s, ev, &c, &overflow, err);
                        if (r < 0)
                                return r;
                        p += sizeof(*ev) + ev->len;
                }
        }
        if (overflow) {
                /* Events were lost: every name, and the policy, may have
                 * changed. */
                int r = watch_all_names(s, &c, err);
                if (r < 0)
                        return r;
                if (changed_add(&c, SD_STORE_POLICY_NAME) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < c.n; i++)
                fn(userdata, c.names[i]);
        return 0;
}

const struct sd_store_backend sd_store_file_backend = {
        .open = file_open,
        .free = file_free,
        .put = file_put,
        .get = file_get,
        .latest = file_latest,
        .list = file_list,
        .history = file_history,
        .recipient_put = file_recipient_put,
        .recipient_remove = file_recipient_remove,
        .recipient_list = file_recipient_list,
        .area_put = file_area_put,
        .area_get = file_area_get,
        .area_list = file_area_list,
        .area_remove = file_area_remove,
        .watch_fd = file_watch_fd,
        .watch_read = file_watch_read,
};
