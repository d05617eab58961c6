/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a store backend implements.  src/store.c parses the URL, picks the
 * backend by scheme, checks every argument (names, version > 0, sizes) and
 * keeps output parameters untouched on failure, so a backend:
 *   - receives only names that passed sd_name_validate(), versions >= 1 and
 *     data of at most SD_ENVELOPE_MAX_BYTES;
 *   - may write its outputs even when it then fails (store.c passes
 *     temporaries and copies them out only on success);
 *   - reports non-fatal problems with sd_store_warnf(), never by printing;
 *   - fills err with a message that names the store URL and the object.
 *
 * Adding a backend (etcd) is one struct sd_store_backend and one line in the
 * scheme table in store.c; callers of include/secretd/store.h never change.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/store.h"

/* The areas a realm keeps beside the secrets. */
enum sd_store_area {
        SD_STORE_AREA_POLICY,      /* policy versions: compare-and-swap, never removed */
        SD_STORE_AREA_PROPOSALS,   /* pending versions: replaceable, removable */
};

struct sd_store_backend {
        /* url is the full URL; rest is what follows "scheme://".  On success
         * *impl_out is the backend's private state (given back as s->impl).
         * s->url is already set (warn is not yet: sd_store_set_warn() comes
         * after open), and so is s->open_options (never NULL; valid during
         * open only).  A backend that takes no options is never given any:
         * store.c refuses them. */
        int (*open)(struct sd_store *s, const char *url, const char *rest, int create,
                    void **impl_out, sd_error *err);
        void (*free)(void *impl);

        /* The compare-and-swap: store data as version `version` of name if
         * and only if (version == 1 and name has no versions) or (version-1
         * exists and version does not).  Atomic against every other writer
         * of the same store, on this host or another; a loser gets -EEXIST
         * with a message containing "conflict".  Versions are never removed,
         * so "version-1 exists" stays true once seen.  An etcd backend does
         * this as one txn: compare create_revision(key(version-1)) > 0
         * (omitted for version 1: no version exists without version 1) and
         * create_revision(key(version)) == 0, success = request_put. */
        int (*put)(struct sd_store *s, const char *name, uint64_t version, const char *data,
                   size_t len, sd_error *err);

        /* version 0: the latest.  -ENOENT for no such name or version. */
        int (*get)(struct sd_store *s, const char *name, uint64_t version, char **data_out,
                   size_t *len_out, uint64_t *version_out, sd_error *err);
        int (*latest)(struct sd_store *s, const char *name, uint64_t *version_out, sd_error *err);
        /* Sorted by name (strcmp). */
        int (*list)(struct sd_store *s, struct sd_store_name **out, size_t *n_out, sd_error *err);
        /* Ascending; -ENOENT if none. */
        int (*history)(struct sd_store *s, const char *name, uint64_t **versions_out,
                       size_t *n_out, sd_error *err);

        int (*recipient_put)(struct sd_store *s, const char *name, const char *data, size_t len,
                             sd_error *err);
        int (*recipient_remove)(struct sd_store *s, const char *name, sd_error *err);
        /* Sorted by name (strcmp). */
        int (*recipient_list)(struct sd_store *s, struct sd_store_blob **out, size_t *n_out,
                              sd_error *err);

        /* The realm's areas (include/secretd/store.h).  For
         * SD_STORE_AREA_POLICY put is the compare-and-swap above (a loser
         * gets -EEXIST "conflict"); for SD_STORE_AREA_PROPOSALS it creates
         * or replaces.  get: version 0 is the latest; -ENOENT for none.
         * list: ascending, n 0 when empty (not an error).  remove: -ENOENT
         * when absent; only proposals are ever removed. */
        int (*area_put)(struct sd_store *s, enum sd_store_area area, uint64_t version, const char *data,
                        size_t len, sd_error *err);
        int (*area_get)(struct sd_store *s, enum sd_store_area area, uint64_t version, char **data_out,
                        size_t *len_out, uint64_t *version_out, sd_error *err);
        int (*area_list)(struct sd_store *s, enum sd_store_area area, uint64_t **versions_out, size_t *n_out,
                         sd_error *err);
        int (*area_remove)(struct sd_store *s, enum sd_store_area area, uint64_t version, sd_error *err);

        /* May be NULL: store.c answers -EOPNOTSUPP.  watch_fd returns an fd
         * the backend owns (closed by free) that polls readable when
         * watch_read has something to report; watch_read never blocks.  A
         * network backend can hand out an eventfd or pipe that its transfer
         * code signals. */
        int (*watch_fd)(struct sd_store *s, int *fd_out, sd_error *err);
        int (*watch_read)(struct sd_store *s, sd_store_change_fn fn, void *userdata,
                          sd_error *err);

        /* May be NULL.  Fills out->endpoint and out->failovers; store.c
         * keeps the rest. */
        void (*health)(struct sd_store *s, struct sd_store_health *out);
};

struct sd_store {
        char *url;
        const struct sd_store_backend *backend;
        void *impl;
        sd_warn_fn warn;
        void *warn_userdata;

        const struct sd_store_options *open_options;

        pthread_mutex_t health_lock;  /* guards the two below */
        int64_t last_contact_ms;
        bool unreachable;
};

/* Report a non-fatal problem through the store's warn callback, prefixed
 * with "store '<url>': ". */
void sd_store_warnf(struct sd_store *s, const char *fmt, ...) SD_PRINTF(2, 3);

extern const struct sd_store_backend sd_store_file_backend;
extern const struct sd_store_backend sd_store_etcd_backend;
