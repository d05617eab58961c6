/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The store: an untrusted place that holds envelopes, realm policy versions,
 * pending policy proposals and (legacy) recipient entries as opaque bytes.
 * It never sees plaintext and the library never trusts what it returns
 * (callers verify every envelope and every policy version).
 *
 * URLs:
 *   file:///var/lib/secretd/store   a directory on this host (the default)
 *   etcd://host:2379[,host:2379...]/prefix    etcd v3 JSON gateway
 *   etcds://host:2379[,...]/prefix  the same over TLS (struct sd_store_options)
 *
 * Every backend offers the same operations, so callers never know which one
 * they hold.  Versions start at 1 and have no gaps: put() of version N
 * succeeds only if N is 1 with no versions stored, or N-1 is the latest;
 * anything else is a lost compare-and-swap and fails with -EEXIST, which
 * callers handle by re-reading the latest version and retrying.
 *
 * Threads: once sd_store_open() has returned, every call below may be made
 * from several threads at once on one store (the agent runs Mounts in
 * parallel): both backends keep no per-call state in the store, the etcd
 * backend's transport and token are shared under a lock that is never held
 * across I/O.  Exceptions: sd_store_set_warn() must be called before the
 * store is shared, sd_store_free() after every other call has returned,
 * and sd_store_watch_fd()/sd_store_watch_read() belong to one thread (the
 * one that polls the fd).  The warn callback may be called from any thread
 * that makes a call.
 *
 * Errors that mean "transient, retry later (with backoff)": see
 * sd_store_error_is_transient().  Every other error is final for that call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

#define SD_STORE_DEFAULT_URL "file:///var/lib/secretd/store"

struct sd_store;  /* opaque */

/* Options of the network backends.  Paths are read once, at open (never
 * again: renewed certificates need a new open, i.e. an agent restart). */
struct sd_store_options {
        const char *etcd_ca;         /* PEM CA bundle for etcds://; NULL: the system's CAs */
        const char *etcd_cert;       /* PEM client certificate, with etcd_key */
        const char *etcd_key;        /* its PEM private key */
        const char *etcd_auth_file;  /* "user = NAME" / "password = PW" (docs/store.md) */
};

/* Open the store at url.  -EINVAL for an unknown scheme or malformed URL,
 * -ENOENT if a file store directory does not exist and create is false,
 * -EPERM if a file store directory is writable by group/others or is a
 * symlink.  A file store directory is created (0700) when create is true.
 * Same as sd_store_open_with(url, create, NULL, out, err). */
int sd_store_open(const char *url, int create, struct sd_store **out, sd_error *err);

/* sd_store_open() with options (o may be NULL).  Besides the above:
 *   -EINVAL  etcd-ca/cert/key with a URL that is not etcds://, a cert
 *            without its key, any etcd option with a file:// URL, a
 *            malformed etcd-auth-file (naming the line)
 *   -EPERM   etcd_key or etcd_auth_file is a symlink, not owned by this
 *            process's effective uid (root for the agent), or open to group
 *            or others (the message names the file, its owner and mode)
 *   -ENOENT, -EACCES  a file that cannot be opened
 * Nothing is sent to etcd here; the first call authenticates. */
int sd_store_open_with(const char *url, int create, const struct sd_store_options *o, struct sd_store **out,
                       sd_error *err);
void sd_store_free(struct sd_store *s);
static inline void sd_store_freep(struct sd_store **s) {
        sd_store_free(*s);
        *s = NULL;
}
#define _cleanup_store_ _cleanup_(sd_store_freep)

/* Where non-fatal problems go (leftover temp files, unreadable entries that
 * a list skipped).  Default: dropped. */
void sd_store_set_warn(struct sd_store *s, sd_warn_fn fn, void *userdata);

/* URL as given to sd_store_open (for messages). */
const char *sd_store_url(const struct sd_store *s);

/* Store data[0..len) as version `version` of name, if and only if that is the
 * next version (see above).  Crash-safe: a reader sees the whole envelope or
 * nothing.  -EEXIST on a lost compare-and-swap. */
int sd_store_put(struct sd_store *s, const char *name, uint64_t version,
                 const char *data, size_t len, sd_error *err);

/* Fetch version `version` of name (0: the latest).  *data_out is malloc()ed
 * and NUL-terminated; *version_out (may be NULL) is the version returned.
 * -ENOENT if there is no such secret or version. */
int sd_store_get(struct sd_store *s, const char *name, uint64_t version,
                 char **data_out, size_t *len_out, uint64_t *version_out, sd_error *err);

/* Latest version of name; -ENOENT if none. */
int sd_store_latest(struct sd_store *s, const char *name, uint64_t *version_out, sd_error *err);

struct sd_store_name {
        char *name;
        uint64_t latest;
};

/* All secret names (including ones whose latest version is a tombstone),
 * sorted by name.  Free with sd_store_names_free(). */
int sd_store_list(struct sd_store *s, struct sd_store_name **out, size_t *n_out, sd_error *err);
void sd_store_names_free(struct sd_store_name *names, size_t n);

/* Every stored version of name, ascending, malloc()ed. -ENOENT if none. */
int sd_store_history(struct sd_store *s, const char *name, uint64_t **versions_out,
                     size_t *n_out, sd_error *err);

/* ---- realm policy versions ----
 *
 * One document per version, versions 1, 2, 3, ... without gaps, with the
 * same compare-and-swap rule as secret versions: put N succeeds only if N
 * is 1 and none is stored, or N-1 is the latest.  Nothing here verifies a
 * policy: include/secretd/realm.h does. */

/* The name the watch reports for a change of the policy: '@' can never be
 * in a secret name. */
#define SD_STORE_POLICY_NAME "@policy"

int sd_store_policy_put(struct sd_store *s, uint64_t version, const char *data, size_t len, sd_error *err);
/* version 0: the latest.  -ENOENT if there is no such version (or none). */
int sd_store_policy_get(struct sd_store *s, uint64_t version, char **data_out, size_t *len_out,
                        uint64_t *version_out, sd_error *err);
/* -ENOENT if the store has no policy. */
int sd_store_policy_latest(struct sd_store *s, uint64_t *version_out, sd_error *err);
/* Every stored version, ascending (n 0 and NULL when there is none). */
int sd_store_policy_history(struct sd_store *s, uint64_t **versions_out, size_t *n_out, sd_error *err);

/* ---- policy proposals ----
 *
 * A proposal is a policy version waiting for more admin signatures:
 * one replaceable blob per proposed version, as untrusted as the rest. */
int sd_store_proposal_put(struct sd_store *s, uint64_t version, const char *data, size_t len, sd_error *err);
/* -ENOENT if there is none for that version. */
int sd_store_proposal_get(struct sd_store *s, uint64_t version, char **data_out, size_t *len_out, sd_error *err);
int sd_store_proposal_remove(struct sd_store *s, uint64_t version, sd_error *err);

/* ---- recipients registry (legacy) ----
 *
 * Before realms, recipients were loose entries signed by writers.  Only
 * `secretctl realm init` still reads them, to import them into the first
 * policy version. */

struct sd_store_blob {
        char *name;
        char *data;   /* NUL-terminated */
        size_t len;
};

/* Create or replace the entry under name. */
int sd_store_recipient_put(struct sd_store *s, const char *name, const char *data, size_t len,
                           sd_error *err);
/* -ENOENT if absent. */
int sd_store_recipient_remove(struct sd_store *s, const char *name, sd_error *err);
/* All entries, sorted by name. Free with sd_store_blobs_free(). */
int sd_store_recipient_list(struct sd_store *s, struct sd_store_blob **out, size_t *n_out,
                            sd_error *err);
void sd_store_blobs_free(struct sd_store_blob *blobs, size_t n);

/* ---- health ----
 *
 * What the agent shows in status and /metrics.  store.c records, for every
 * call, whether the store answered: a call that succeeded or failed with a
 * final error (not found, conflict, refused) counts as contact; a
 * transient error (sd_store_error_is_transient) marks it unreachable. */
struct sd_store_health {
        char endpoint[280];      /* the etcd member in use ("host:port"), or the file store's path */
        uint64_t failovers;      /* times the client moved to another member */
        int64_t last_contact_ms; /* CLOCK_REALTIME ms of the last call etcd answered; 0: none yet */
        bool reachable;          /* the last call reached the store (true before any call) */
};
void sd_store_health(struct sd_store *s, struct sd_store_health *out);

/* True for the errors that say "the store is unavailable right now; retry,
 * with backoff": -ECONNREFUSED (no member listening or resolvable),
 * -ETIMEDOUT (no answer in time), -ECONNRESET (the connection broke),
 * -EAGAIN (etcd answered 503 Unavailable: no leader, "leader changed"
 * during an election, too many requests), -EHOSTUNREACH, -ENETUNREACH.
 * False for everything else, which retrying cannot fix: -EACCES (TLS or
 * credentials refused, no permission), -EPROTO (a malformed answer, a TLS
 * certificate that does not verify), -EBADMSG/-EKEYREJECTED/-ENOKEY
 * (verification), -ENOENT, -EEXIST, -EINVAL, -EFBIG, -ENOSPC (etcd's
 * quota), -ESTALE (compacted), -ENOMEM. */
bool sd_store_error_is_transient(int negative_errno);

/* ---- watch ----
 *
 * A backend that can watch returns a pollable fd; when it is readable,
 * sd_store_watch_read() drains it and calls fn once per secret name that
 * changed (maybe spuriously; callers re-read the latest version), and with
 * SD_STORE_POLICY_NAME when a policy version was added.  Proposals and
 * recipient entries are not reported.
 * -EOPNOTSUPP from a backend without watch support.
 */
typedef void (*sd_store_change_fn)(void *userdata, const char *name);
int sd_store_watch_fd(struct sd_store *s, int *fd_out, sd_error *err);
int sd_store_watch_read(struct sd_store *s, sd_store_change_fn fn, void *userdata, sd_error *err);
