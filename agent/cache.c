/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The local cache of envelopes (cache.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "fileio.h"
#include "log.h"
#include "notes.h"
#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/names.h"
#include "secretd/store.h"
#include "sorted.h"

#define DIGEST_BYTES crypto_generichash_BYTES
#define VERSION_DIGITS 20
#define SUFFIX ".env"
/* "<name>.<20 digits>.env" */
#define ENTRY_FILE_MAX (SD_NAME_MAX + 1 + VERSION_DIGITS + sizeof(SUFFIX))

struct entry {
        uint64_t version;
        unsigned char digest[DIGEST_BYTES];  /* of the bytes last written or read */
        char name[];
};

struct cache {
        struct cache_config cfg;
        char *dir;
        int dirfd;
        int stand_in_fd;
        struct envelope_source source;
        pthread_mutex_t lock;                /* guards the entries */
        pthread_mutex_t write_lock;          /* one write at a time; taken before lock */
        struct entry **entries;              /* sorted by name */
        size_t n_entries;
};

static const char *entry_key(const void *item) {
        return ((const struct entry *) item)->name;
}

static void entry_file(const char *name, uint64_t version, char out[ENTRY_FILE_MAX]) {
        (void) snprintf(out, ENTRY_FILE_MAX, "%s.%0*" PRIu64 SUFFIX, name, VERSION_DIGITS, version);
}

/* The secret name and version of an entry's file name; false for anything
 * else. */
static bool entry_parse(const char *file, char name[SD_NAME_MAX + 1], uint64_t *version) {
        size_t len = strlen(file), tail = 1 + VERSION_DIGITS + strlen(SUFFIX);
        if (len <= tail || len - tail > SD_NAME_MAX || strcmp(file + len - strlen(SUFFIX), SUFFIX) != 0)
                return false;
        const char *dot = file + len - tail, *digits = dot + 1;
        if (*dot != '.')
                return false;
        uint64_t v = 0;
        for (size_t i = 0; i < VERSION_DIGITS; i++) {
                unsigned d = (unsigned) (digits[i] - '0');
                if (d > 9 || v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        memcpy(name, file, (size_t) (dot - file));
        name[dot - file] = '\0';
        if (v == 0 || sd_name_validate("secret name", name, strlen(name), NULL) < 0)
                return false;
        *version = v;
        return true;
}

static void digest_of(const char *data, size_t len, unsigned char out[DIGEST_BYTES]) {
        crypto_generichash(out, DIGEST_BYTES, (const unsigned char *) data, len, NULL, 0);
}

/* Lock held. */
static struct entry *entry_find(struct cache *c, const char *name) {
        bool found;
        size_t i = sorted_index((void *const *) c->entries, c->n_entries, name, entry_key, &found);
        return found ? c->entries[i] : NULL;
}

/* Lock held: set name's entry; -ENOMEM. */
static int entry_set(struct cache *c, const char *name, uint64_t version, const unsigned char digest[DIGEST_BYTES]) {
        bool found;
        size_t i = sorted_index((void *const *) c->entries, c->n_entries, name, entry_key, &found);
        struct entry *e;
        if (found) {
                e = c->entries[i];
        } else {
                size_t len = strlen(name);
                e = calloc(1, sizeof(*e) + len + 1);
                if (!e)
                        return -ENOMEM;
                memcpy(e->name, name, len + 1);
                if (sorted_insert((void ***) &c->entries, &c->n_entries, i, e) < 0) {
                        free(e);
                        return -ENOMEM;
                }
        }
        e->version = version;
        memcpy(e->digest, digest, DIGEST_BYTES);
        return 0;
}

/* Lock held. */
static void entry_drop(struct cache *c, const char *name) {
        bool found;
        size_t i = sorted_index((void *const *) c->entries, c->n_entries, name, entry_key, &found);
        if (!found)
                return;
        free(c->entries[i]);
        memmove(&c->entries[i], &c->entries[i + 1], (c->n_entries - i - 1) * sizeof(*c->entries));
        c->n_entries--;
}

static void entries_noted(struct cache *c) {
        if (c->cfg.notes)
                notes_cache(c->cfg.notes, c->dir, cache_entries(c));
}

size_t cache_entries(struct cache *c) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
        return c->n_entries;
}

static void unlink_entry(struct cache *c, const char *name, uint64_t version) {
        char file[ENTRY_FILE_MAX];
        entry_file(name, version, file);
        if (unlinkat(c->dirfd, file, 0) < 0 && errno != ENOENT)
                log_warn("cache: cannot remove %s/%s: %s", c->dir, file, strerror(errno));
}

/* Read an entry file: a regular file owned by this user, not writable by
 * group or others, at most an envelope's size.  err names the entry. */
static int entry_read_file(struct cache *c, const char *file, char **data_out, size_t *len_out, sd_error *err) {
        /* O_NONBLOCK: a FIFO planted at the name must not hang the read. */
        _cleanup_close_ int fd = openat(c->dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "cache entry %s/%s: cannot open it%s", c->dir, file,
                                          errno == ELOOP ? " (a symbolic link; refusing to follow it)" : "");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "cache entry %s/%s: cannot stat it", c->dir, file);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "cache entry %s/%s: not a regular file; refusing it", c->dir, file);
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return sd_error_set(err, EPERM,
                                    "cache entry %s/%s: owned by uid %u with mode %04o; refusing it (entries are "
                                    "written by this agent, owned by uid %u, mode 0600)",
                                    c->dir, file, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777),
                                    (unsigned) geteuid());
        char name[128];
        (void) snprintf(name, sizeof(name), "cache entry %s", file);
        return sd_read_fd(fd, name, SD_ENVELOPE_MAX_BYTES, data_out, len_out, err);
}

/* ---- the envelope source ---- */

/* The entry of name to stand in for the store, if there is one that may
 * be given: its bytes, version and file name.  Otherwise why not, as a
 * clause for the store's error message. */
static int stand_in_read(struct cache *c, const char *name, uint64_t version, char **data_out, size_t *len_out,
                         uint64_t *version_out, char file[ENTRY_FILE_MAX], sd_error *why) {
        uint64_t have;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                const struct entry *e = entry_find(c, name);
                if (!e)
                        return sd_error_set(why, ENOENT, "the local cache has no copy of it");
                have = e->version;
        }
        if (version != 0 && version != have)
                return sd_error_set(why, ENOENT, "the local cache holds version %" PRIu64 ", not %" PRIu64, have,
                                    version);
        uint64_t floor = c->cfg.floor ? c->cfg.floor(c->cfg.floor_ctx, name) : 0;
        if (have < floor) {
                {
                        _cleanup_unlock_ pthread_mutex_t *write_held = sd_lock(&c->write_lock);
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                        const struct entry *e = entry_find(c, name);
                        if (e && e->version == have) {
                                unlink_entry(c, name, have);
                                entry_drop(c, name);
                        }
                }
                entries_noted(c);
                log_warn("cache: secret '%s' version %" PRIu64 " is below the rollback floor (version %" PRIu64
                         " was delivered on this host); entry removed",
                         name, have, floor);
                return sd_error_set(why, ESTALE,
                                    "the local cache held version %" PRIu64 ", below the rollback floor %" PRIu64, have,
                                    floor);
        }
        entry_file(name, have, file);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = entry_read_file(c, file, &data, &len, why);
        if (r < 0)
                return r;
        /* Remember what was read: if the file was changed behind our
         * back, the next verified store copy of this version replaces it. */
        unsigned char digest[DIGEST_BYTES];
        digest_of(data, len, digest);
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                struct entry *e = entry_find(c, name);
                if (e && e->version == have)
                        memcpy(e->digest, digest, DIGEST_BYTES);
        }
        *data_out = steal_pointer(&data);
        *len_out = len;
        if (version_out)
                *version_out = have;
        return 0;
}

static int cache_get(void *ctx, const char *name, uint64_t version, char **data_out, size_t *len_out,
                     uint64_t *version_out, sd_error *err) {
        struct cache *c = ctx;
        int r = c->cfg.inner->get(c->cfg.inner->ctx, name, version, data_out, len_out, version_out, err);
        if (r >= 0 || !sd_store_error_is_transient(r))
                return r;
        char unreachable[SD_ERROR_MESSAGE_MAX];
        (void) snprintf(unreachable, sizeof(unreachable), "%s", err->message);
        char file[ENTRY_FILE_MAX];
        sd_error why = { 0 };
        if (stand_in_read(c, name, version, data_out, len_out, version_out, file, &why) < 0)
                return sd_error_set(err, r, "%s; %s", unreachable, why.message);
        const uint64_t one = 1;
        if (write(c->stand_in_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_warn("cache: cannot signal a stand-in: %s", strerror(errno));
        log_debug("cache: secret '%s' from %s/%s: the store is unreachable", name, c->dir, file);
        (void) sd_error_set(err, r, "cache entry %s/%s (the store is unreachable: %s)", c->dir, file, unreachable);
        return 1;
}

/* Store bytes that verified: kept when newer than the entry (or the same
 * version with other bytes: an entry changed behind our back). */
static void cache_verified(void *ctx, const char *name, uint64_t version, const char *data, size_t len) {
        struct cache *c = ctx;
        unsigned char digest[DIGEST_BYTES];
        digest_of(data, len, digest);
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                const struct entry *e = entry_find(c, name);
                if (e && (e->version > version ||
                          (e->version == version && sodium_memcmp(e->digest, digest, DIGEST_BYTES) == 0)))
                        return;
        }
        if (c->cfg.floor && version < c->cfg.floor(c->cfg.floor_ctx, name))
                return;

        _cleanup_unlock_ pthread_mutex_t *write_held = sd_lock(&c->write_lock);
        uint64_t old = 0;
        {
                /* Another Mount may have kept a newer one meanwhile. */
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                const struct entry *e = entry_find(c, name);
                if (e && (e->version > version ||
                          (e->version == version && sodium_memcmp(e->digest, digest, DIGEST_BYTES) == 0)))
                        return;
                old = e ? e->version : 0;
        }
        char file[ENTRY_FILE_MAX];
        entry_file(name, version, file);
        sd_error err = { 0 };
        int r = sd_write_file_at(c->dirfd, file, data, len, 0600, SD_WRITE_REPLACE, &err);
        if (r < 0) {
                /* The older entry goes too: the cache never keeps what may
                 * now be below the floor. */
                log_warn("cache: cannot keep secret '%s' version %" PRIu64 " in %s: %s%s", name, version, c->dir,
                         err.message, old ? "; its older entry is removed" : "");
                if (old) {
                        unlink_entry(c, name, old);
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                        entry_drop(c, name);
                }
                entries_noted(c);
                return;
        }
        if (old && old != version)
                unlink_entry(c, name, old);
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&c->lock);
                if (entry_set(c, name, version, digest) < 0) {
                        /* Without an index entry the file would never be
                         * read or replaced: remove it. */
                        unlink_entry(c, name, version);
                        entry_drop(c, name);
                }
        }
        log_debug("cache: secret '%s' version %" PRIu64 " kept in %s/%s", name, version, c->dir, file);
        entries_noted(c);
}

const struct envelope_source *cache_source(struct cache *c) {
        return &c->source;
}

int cache_stand_in_fd(const struct cache *c) {
        return c->stand_in_fd;
}

/* ---- opening ---- */

static int open_dir(const char *dir, sd_error *err) {
        int r = sd_mkdir_p(dir, 0700);
        if (r < 0)
                return sd_error_set_errno(err, -r, "cache-dir %s: cannot create it", dir);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ELOOP || errno == ENOTDIR)
                        return sd_error_set(err, EPERM,
                                            "cache-dir %s: a symbolic link or not a directory; refusing it (make it a "
                                            "directory owned by root, mode 0700)",
                                            dir);
                return sd_error_set_errno(err, errno, "cache-dir %s: cannot open it", dir);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                r = sd_error_set_errno(err, errno, "cache-dir %s: cannot stat it", dir);
                (void) close(fd);
                return r;
        }
        /* Like the floor's directory, nobody else may plant or swap a file
         * in it; unlike it, nobody else may list it either: its file names
         * are the names of the secrets this host serves. */
        if (st.st_uid != geteuid() || (st.st_mode & 077)) {
                (void) close(fd);
                return sd_error_set(err, EPERM,
                                    "cache-dir %s: owned by uid %u with mode %04o; it must be owned by this agent "
                                    "(uid %u) with no access for group or others (chown %u %s && chmod 0700 %s)",
                                    dir, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777), (unsigned) geteuid(),
                                    (unsigned) geteuid(), dir, dir);
        }
        return fd;
}

/* Load one directory entry into the index. */
static void load_one(struct cache *c, const char *file) {
        if (strncmp(file, SD_TEMP_PREFIX, strlen(SD_TEMP_PREFIX)) == 0) {
                /* A write interrupted by a crash: never published. */
                if (unlinkat(c->dirfd, file, 0) == 0)
                        log_info("cache: removed %s/%s, left by an interrupted write", c->dir, file);
                return;
        }
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        if (!entry_parse(file, name, &version)) {
                char shown[96];
                log_warn("cache: %s/%s is not a cache entry; left alone", c->dir,
                         sd_escape_for_message(file, strlen(file), shown, sizeof(shown)));
                return;
        }
        uint64_t floor = c->cfg.floor ? c->cfg.floor(c->cfg.floor_ctx, name) : 0;
        if (version < floor) {
                log_info("cache: secret '%s' version %" PRIu64 " is below the rollback floor %" PRIu64 "; removed",
                         name, version, floor);
                unlink_entry(c, name, version);
                return;
        }
        const struct entry *e = entry_find(c, name);
        if (e && e->version > version) {
                unlink_entry(c, name, version);
                return;
        }
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sd_error err = { 0 };
        if (entry_read_file(c, file, &data, &len, &err) < 0) {
                log_warn("%s; left alone", err.message);
                return;
        }
        unsigned char digest[DIGEST_BYTES];
        digest_of(data, len, digest);
        if (e)
                unlink_entry(c, name, e->version);
        if (entry_set(c, name, version, digest) < 0)
                log_error("cache: out of memory");
}

int cache_open(const struct cache_config *cfg, struct cache **out, sd_error *err) {
        struct cache *c = calloc(1, sizeof(*c));
        if (!c)
                return sd_error_set(err, ENOMEM, "out of memory");
        c->cfg = *cfg;
        c->dirfd = -1;
        c->stand_in_fd = -1;
        (void) pthread_mutex_init(&c->lock, NULL);
        (void) pthread_mutex_init(&c->write_lock, NULL);
        c->source = (struct envelope_source) { .get = cache_get, .verified = cache_verified, .ctx = c };
        c->dir = strdup(cfg->dir);
        if (!c->dir) {
                cache_free(c);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        c->dirfd = open_dir(cfg->dir, err);
        if (c->dirfd < 0) {
                int r = c->dirfd;
                cache_free(c);
                return r;
        }
        c->stand_in_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->stand_in_fd < 0) {
                int r = sd_error_set_errno(err, errno, "cache: cannot create an eventfd");
                cache_free(c);
                return r;
        }
        int fd = fcntl(c->dirfd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                int r = sd_error_set_errno(err, errno, "cache-dir %s: cannot list it", c->dir);
                if (fd >= 0)
                        (void) close(fd);
                cache_free(c);
                return r;
        }
        _cleanup_closedir_ DIR *listing = d;
        for (struct dirent *de; (de = readdir(listing));)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        load_one(c, de->d_name);
        entries_noted(c);
        *out = c;
        return 0;
}

void cache_free(struct cache *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_entries; i++)
                free(c->entries[i]);
        free(c->entries);
        sd_closep(&c->dirfd);
        sd_closep(&c->stand_in_fd);
        (void) pthread_mutex_destroy(&c->write_lock);
        (void) pthread_mutex_destroy(&c->lock);
        free(c->dir);
        free(c);
}
