/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The local cache of envelopes, so that containers still start while the
 * store is unreachable (config key cache-dir, default
 * /var/lib/secretd/cache; docs/agent.md "Store outages").  It keeps the
 * newest verified envelope of every secret the agent serves, exactly the
 * bytes the store returned (ciphertext: signed and sealed, as public as the
 * store), one file per secret:
 *
 *   <cache-dir>/                                 0700, owned by the agent
 *   <cache-dir>/<name>.<20-digit version>.env    0600, the envelope as stored
 *
 * It is an envelope source (delivery.h) in front of another one, the
 * store: a get goes to the store, and only when the store is unreachable
 * (sd_store_error_is_transient) does the cache answer, with its entry of
 * that name, returning 1 and naming the entry ("cache entry PATH (the store
 * is unreachable: ...)").  What it answers is verified exactly like what
 * the store answers, and a refusal names the entry.  Store bytes that
 * verified come back through the source's `verified` hook and replace an
 * older entry.
 *
 * Rollback: it never yields, and never keeps, a version below the rollback
 * floor (cfg.floor); an entry found below it is removed, and so is the
 * entry a failed write would have replaced.
 *
 * Files: the directory is opened once (O_NOFOLLOW) and must be owned by the
 * agent's user with no permission for group or others (the names of the
 * secrets are the host's business); entries are read relative to it with
 * O_NOFOLLOW and must be regular files owned by the agent, not writable by
 * others; a new version is staged, fsync'ed and renamed into place
 * (sd_write_file_at) before the old one is unlinked, so a crash leaves both
 * and the next start keeps the higher.  Leftover staging files are removed
 * at start.
 *
 * The file store needs no cache: it is on this host, and a disk that cannot
 * read it could not read a cache beside it.  daemon.c opens one for etcd
 * stores only.
 *
 * Thread-safe: Mounts read and keep entries at the same time; writes (one
 * per new version) are serialised.
 */

#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "secretd/error.h"

struct notes;

struct cache_config {
        const char *dir;                      /* absolute; created 0700 if missing */
        const struct envelope_source *inner;  /* what it stands in for (the store) */
        /* The rollback floor of a secret now (registry_floor). */
        uint64_t (*floor)(void *ctx, const char *name);
        void *floor_ctx;
        struct notes *notes;                  /* the entry count for status; may be NULL */
};

struct cache;

/* Open (create) the directory and load its entries: a higher version of a
 * name replaces a lower one, entries below the floor and staging files are
 * removed, anything else is warned about and left alone.  -EPERM when the
 * directory is a symbolic link, is not owned by this user or grants group
 * or others any permission (the message names it and the fix). */
int cache_open(const struct cache_config *cfg, struct cache **out, sd_error *err);
void cache_free(struct cache *c);

/* The envelope source to give delivery (valid as long as c). */
const struct envelope_source *cache_source(struct cache *c);

/* An eventfd that becomes readable each time the cache stood in for the
 * store: what it gave may be older than the store's latest, so the
 * rotation thread re-checks what is served once the store answers again. */
int cache_stand_in_fd(const struct cache *c);

/* Entries now (for status). */
size_t cache_entries(struct cache *c);
