/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rollback floor (floor.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "floor.h"
#include "log.h"
#include "secretd/cleanup.h"
#include "secretd/names.h"
#include "sorted.h"

#define LEGACY_FILE "delivered.json"

struct floor_entry {
        uint64_t version;
        char name[];
};

/* What one entry adds to the file: "name":version plus a comma. */
static size_t entry_bytes(const char *name, uint64_t version) {
        char digits[24];
        return strlen(name) + 3 + (size_t) snprintf(digits, sizeof(digits), "%" PRIu64, version) + 1;
}

static const char *entry_key(const void *item) {
        return ((const struct floor_entry *) item)->name;
}

/* Index of name, or where it would go (*found false). */
static size_t entry_search(const struct floor *f, const char *name, bool *found) {
        return sorted_index((void *const *) f->entries, f->n_entries, name, entry_key, found);
}

uint64_t floor_get(const struct floor *f, const char *secret) {
        bool found;
        size_t i = entry_search(f, secret, &found);
        return found ? f->entries[i]->version : 0;
}

/* Set name's floor to version. */
static int entry_set(struct floor *f, const char *name, uint64_t version) {
        bool found;
        size_t i = entry_search(f, name, &found);
        if (found) {
                f->file_bytes += entry_bytes(name, version) - entry_bytes(name, f->entries[i]->version);
                f->entries[i]->version = version;
                return 0;
        }
        size_t len = strlen(name);
        struct floor_entry *e = malloc(sizeof(*e) + len + 1);
        if (!e)
                return -ENOMEM;
        e->version = version;
        memcpy(e->name, name, len + 1);
        if (sorted_insert((void ***) &f->entries, &f->n_entries, i, e) < 0) {
                free(e);
                return -ENOMEM;
        }
        f->file_bytes += entry_bytes(name, version);
        return 0;
}

static void entries_free(struct floor *f) {
        for (size_t i = 0; i < f->n_entries; i++)
                free(f->entries[i]);
        free(f->entries);
        f->entries = NULL;
        f->n_entries = 0;
        f->file_bytes = 2;
}

/* ---- reading: every way a file can fail to be vouched for ---- */

static void mark_broken(struct floor *f, int code, const char *path, const char *reason, const char *fix) {
        f->broken = -code;
        (void) snprintf(f->why, sizeof(f->why),
                        "rollback floor %s: %s; refusing to deliver secrets until it is fixed: %s", path, reason,
                        fix);
}

#define FIX_RESTORE "restore it from a backup, or stop the agent and move it away (every secret's current version is then accepted once as the new floor)"

/* Read dirfd/file into *root (NULL when it does not exist).  A file that
 * cannot be vouched for marks the floor broken and returns 0. */
static int floor_file_read(struct floor *f, int dirfd, const char *file, const char *path, json_t **root,
                           sd_error *err) {
        *root = NULL;
        /* O_NONBLOCK: a FIFO planted at the name must not hang the open. */
        _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ELOOP) {
                        mark_broken(f, ELOOP, path, "it is a symbolic link",
                                    "replace the link with the file itself (the agent never follows a link there)");
                        return 0;
                }
                char reason[256];
                (void) snprintf(reason, sizeof(reason), "cannot open it: %s", strerror(errno));
                mark_broken(f, errno, path, reason, "make it a readable regular file owned by root, mode 0600");
                return 0;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "rollback floor %s: cannot stat", path);
        char reason[256];
        if (!S_ISREG(st.st_mode)) {
                mark_broken(f, EINVAL, path, "it is not a regular file", FIX_RESTORE);
                return 0;
        }
        if (st.st_uid != geteuid()) {
                (void) snprintf(reason, sizeof(reason), "it is owned by uid %u, not by this agent's uid %u",
                                (unsigned) st.st_uid, (unsigned) geteuid());
                mark_broken(f, EPERM, path, reason,
                            "check who changed it, then chown it to the agent's user (root) and chmod 0600");
                return 0;
        }
        if (st.st_mode & 022) {
                (void) snprintf(reason, sizeof(reason), "it has mode %04o: writable by group or others",
                                (unsigned) (st.st_mode & 07777));
                mark_broken(f, EPERM, path, reason, "check who changed it, then chmod 0600");
                return 0;
        }
        if ((uint64_t) st.st_size > FLOOR_FILE_MAX) {
                (void) snprintf(reason, sizeof(reason), "it is %lld bytes, larger than the limit of %zu",
                                (long long) st.st_size, FLOOR_FILE_MAX);
                mark_broken(f, EFBIG, path, reason, FIX_RESTORE);
                return 0;
        }
        _cleanup_free_ char *text = malloc((size_t) st.st_size + 1);
        if (!text)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, text + len, (size_t) st.st_size + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        (void) snprintf(reason, sizeof(reason), "cannot read it: %s", strerror(errno));
                        mark_broken(f, errno, path, reason, FIX_RESTORE);
                        return 0;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > (size_t) st.st_size) {
                        /* Only the agent writes it, by rename: a file
                         * growing under the read is not one of ours. */
                        mark_broken(f, EBUSY, path, "it grew while it was read", FIX_RESTORE);
                        return 0;
                }
        }
        json_error_t jerr;
        _cleanup_json_ json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj || !json_is_object(obj)) {
                (void) snprintf(reason, sizeof(reason), "not a JSON object of secret names and versions (%s)",
                                obj ? "another JSON value" : jerr.text);
                mark_broken(f, EBADMSG, path, reason, FIX_RESTORE);
                return 0;
        }
        const char *name;
        json_t *version;
        json_object_foreach(obj, name, version) {
                if (sd_name_validate("secret name", name, strlen(name), NULL) < 0 || !json_is_integer(version) ||
                    json_integer_value(version) <= 0) {
                        char shown[48];
                        (void) snprintf(reason, sizeof(reason), "entry '%s' is not a secret name with a version",
                                        sd_escape_for_message(name, strlen(name), shown, sizeof(shown)));
                        mark_broken(f, EBADMSG, path, reason, FIX_RESTORE);
                        return 0;
                }
        }
        *root = steal_pointer(&obj);
        return 0;
}

static int entry_compare(const void *a, const void *b) {
        const struct floor_entry *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

/* The first file into an empty floor: appended, then sorted once (one
 * insertion at a time would move the array 100,000 times). */
static int load(struct floor *f, const json_t *root) {
        size_t n = json_object_size(root);
        if (n == 0)
                return 0;
        f->entries = calloc(n, sizeof(*f->entries));
        if (!f->entries)
                return -ENOMEM;
        const char *name;
        json_t *version;
        json_object_foreach((json_t *) root, name, version) {
                size_t len = strlen(name);
                struct floor_entry *e = malloc(sizeof(*e) + len + 1);
                if (!e)
                        return -ENOMEM;
                e->version = (uint64_t) json_integer_value(version);
                memcpy(e->name, name, len + 1);
                f->entries[f->n_entries++] = e;
                f->file_bytes += entry_bytes(name, e->version);
        }
        /* Keys are unique: the parser rejects duplicates. */
        qsort(f->entries, f->n_entries, sizeof(*f->entries), entry_compare);
        return 0;
}

/* Merge a read file into the entries; *raised tells whether it added. */
static int merge(struct floor *f, const json_t *root, bool *raised) {
        const char *name;
        json_t *version;
        json_object_foreach((json_t *) root, name, version) {
                uint64_t v = (uint64_t) json_integer_value(version);
                if (v <= floor_get(f, name))
                        continue;
                if (entry_set(f, name, v) < 0)
                        return -ENOMEM;
                *raised = true;
        }
        return 0;
}

/* ---- writing ---- */

static int floor_write(struct floor *f, sd_error *err) {
        _cleanup_free_ char *text = malloc(f->file_bytes + 1);
        if (!text)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t used = 0;
        text[used++] = '{';
        for (size_t i = 0; i < f->n_entries; i++) {
                /* Names passed sd_name_validate(): nothing to escape. */
                int n = snprintf(text + used, f->file_bytes + 1 - used, "%s\"%s\":%" PRIu64, i ? "," : "",
                                 f->entries[i]->name, f->entries[i]->version);
                if (n < 0 || (size_t) n >= f->file_bytes + 1 - used)
                        return sd_error_set(err, EOVERFLOW, "rollback floor %s: internal size error", f->path);
                used += (size_t) n;
        }
        text[used++] = '}';
        /* fsync: the floor must survive a power loss, or a reboot would
         * forget what was delivered. */
        int r = sd_write_file_at(f->dirfd, f->name, text, used, 0600, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "cannot record delivered versions in %s", f->path);
        return 0;
}

/* Put name's floor back to version (0: no entry), undoing a raise. */
static void entry_restore(struct floor *f, const char *name, uint64_t version) {
        bool found;
        size_t i = entry_search(f, name, &found);
        if (!found)
                return;
        f->file_bytes -= entry_bytes(name, f->entries[i]->version);
        if (version > 0) {
                f->entries[i]->version = version;
                f->file_bytes += entry_bytes(name, version);
                return;
        }
        free(f->entries[i]);
        memmove(&f->entries[i], &f->entries[i + 1], (f->n_entries - i - 1) * sizeof(*f->entries));
        f->n_entries--;
}

int floor_raise(struct floor *f, const char *const secrets[], const uint64_t versions[], size_t n, sd_error *err) {
        if (f->broken)
                return sd_error_set(err, EUCLEAN, "%s", f->why);
        /* Raise in memory with an undo log, write, and undo if the write
         * fails: memory never holds a floor the file does not. */
        _cleanup_free_ uint64_t *old = calloc(n ? n : 1, sizeof(*old));
        if (!old)
                return sd_error_set(err, ENOMEM, "out of memory");
        int r = 0;
        bool any = false;
        size_t applied = 0;
        for (; applied < n; applied++) {
                old[applied] = floor_get(f, secrets[applied]);
                if (versions[applied] <= old[applied]) {
                        old[applied] = UINT64_MAX;
                        continue;
                }
                if (entry_set(f, secrets[applied], versions[applied]) < 0) {
                        old[applied] = UINT64_MAX;
                        r = sd_error_set(err, ENOMEM, "out of memory");
                        break;
                }
                any = true;
        }
        if (r == 0 && !any)
                return 0;
        if (r == 0 && f->file_bytes > FLOOR_FILE_MAX)
                r = sd_error_set(err, EFBIG,
                                 "rollback floor %s: recording these versions would make it larger than %zu bytes "
                                 "(it holds %zu secrets); refusing to deliver them",
                                 f->path, FLOOR_FILE_MAX, f->n_entries);
        if (r == 0)
                r = floor_write(f, err);
        if (r < 0)
                while (applied-- > 0)
                        if (old[applied] != UINT64_MAX)
                                entry_restore(f, secrets[applied], old[applied]);
        return r;
}

int floor_decide(const struct floor *f, const char *secret, uint64_t version, uint64_t seen, sd_error *err) {
        if (f->broken)
                return sd_error_set(err, EUCLEAN, "%s", f->why);
        if (version < seen)
                return sd_error_set(err, ESTALE,
                                    "secret '%s': the store offers version %" PRIu64 " but version %" PRIu64
                                    " was already delivered on this host; refusing a rollback",
                                    secret, version, seen);
        uint64_t now = floor_get(f, secret);
        if (version < now)
                return sd_error_set(err, EAGAIN,
                                    "secret '%s': version %" PRIu64 " was delivered while version %" PRIu64
                                    " was being fetched",
                                    secret, now, version);
        return 0;
}

/* ---- opening ---- */

static int check_floor_dir(int fd, const char *path, sd_error *err) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "floor-file %s: its directory", path);
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return sd_error_set(err, EPERM,
                                    "floor-file %s: its directory is owned by uid %u with mode %04o; it must be "
                                    "owned by this agent and not writable by group or others",
                                    path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
        return 0;
}

int floor_open(struct floor *f, const char *floor_file, int state_fd, const char *state_dir, sd_error *err) {
        *f = (struct floor) { .dirfd = -1, .file_bytes = 2 };
        _cleanup_free_ char *legacy_path = NULL;
        if (asprintf(&legacy_path, "%s/%s", state_dir, LEGACY_FILE) < 0) {
                legacy_path = NULL;
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        bool in_state_dir = !floor_file || strcmp(floor_file, legacy_path) == 0;
        if (in_state_dir) {
                f->dirfd = fcntl(state_fd, F_DUPFD_CLOEXEC, 3);
                if (f->dirfd < 0)
                        return sd_error_set_errno(err, errno, "state directory %s", state_dir);
                f->name = strdup(LEGACY_FILE);
                f->path = steal_pointer(&legacy_path);
        } else {
                const char *base;
                int fd = sd_open_parent(floor_file, true, 0700, &base, err);
                if (fd < 0)
                        return sd_error_prefix(err, fd, "floor-file");
                f->dirfd = fd;
                int r = check_floor_dir(fd, floor_file, err);
                if (r < 0)
                        return r;
                f->name = strdup(base);
                f->path = strdup(floor_file);
        }
        if (!f->name || !f->path)
                return sd_error_set(err, ENOMEM, "out of memory");

        _cleanup_json_ json_t *main_root = NULL, *legacy_root = NULL;
        int r = floor_file_read(f, f->dirfd, f->name, f->path, &main_root, err);
        if (r < 0)
                return r;
        if (!in_state_dir && !f->broken) {
                r = floor_file_read(f, state_fd, LEGACY_FILE, legacy_path, &legacy_root, err);
                if (r < 0)
                        return r;
        }
        if (f->broken) {
                entries_free(f);
                log_error("%s", f->why);
                return 0;
        }
        bool raised = false;
        if (main_root && load(f, main_root) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (legacy_root && merge(f, legacy_root, &raised) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (raised) {
                sd_error sub = { 0 };
                if (f->file_bytes > FLOOR_FILE_MAX || floor_write(f, &sub) < 0)
                        log_error("floor-file %s: %s", f->path,
                                  sub.message[0] ? sub.message : "merging the old floor would make it too large");
                else
                        log_info("rollback floor from %s merged into %s", legacy_path, f->path);
        }
        return 0;
}

void floor_close(struct floor *f) {
        entries_free(f);
        sd_closep(&f->dirfd);
        free(f->name);
        free(f->path);
        f->name = f->path = NULL;
}
