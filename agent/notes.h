/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the agent tells its operators about what it did and how its
 * connections are: the counters (metrics.h), the audit log (audit.h) and
 * the store/docker state that GET /v1/status serves (admin.h).  Each kind
 * of event is counted and audited by exactly one function here, which every
 * path that does it calls (Mount, rotation, Unmount and the events thread
 * wipe through the same note_wipe()).  Nothing noted ever holds a value.
 *
 * Every function is thread-safe and cheap (a short mutex for the state
 * fields, C11 atomics for counters, one write(2) per audit line).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "secretd/store.h"
#include "secretd/names.h"
#include "secretd/policy.h"

struct audit;
struct sd_realm;

#define NOTES_MESSAGE_MAX 256

/* The connection states shown by the admin API. */
struct notes_state {
        int64_t started_mono_ms;          /* CLOCK_MONOTONIC at notes_init */
        const char *driver;               /* not owned */
        const char *store_url;            /* not owned */

        bool store_ok;
        char store_error[NOTES_MESSAGE_MAX];  /* last error, "" if none */
        int64_t store_error_at;           /* unix ms, 0 never */
        int64_t store_ok_at;              /* last successful read or watch, unix ms, 0 never */

        bool docker_connected;
        char docker_error[NOTES_MESSAGE_MAX];
        int64_t docker_changed_at;        /* unix ms of the last connect/disconnect */
        int64_t docker_event_at;          /* unix ms of the last event, 0 never */

        /* The store's own view (sd_store_health: the member in use,
         * failovers, last contact, reachable), filled in by
         * notes_state_get() when a store was set with notes_set_store(). */
        bool have_health;
        struct sd_store_health health;

        /* The local cache of envelopes (cache.h). */
        const char *cache_dir;            /* not owned; NULL: no cache */
        size_t cache_entries;
        int64_t cache_delivered_at;       /* unix ms a Mount or Create last used it, 0 never */
};

/* The realm policy the agent verifies against now (status "realm"). */
struct notes_realm {
        char id[SD_REALM_ID_SHORT_CHARS + 1];  /* "" before the first verified policy */
        uint64_t policy_version;
        int64_t policy_created;           /* unix seconds, the policy's own field */
        int64_t applied_at;               /* unix ms this agent started using it */
        char recipient[SD_NAME_MAX + 1];  /* this host's name among its recipients, "" none */
};

/* A secret whose newest version in the store failed verification, so what
 * containers get is older (status "stale"). */
struct notes_stale {
        char secret[SD_NAME_MAX + 1];
        uint64_t newest;                  /* the store's newest version, refused */
        uint64_t served;                  /* the newest version that verified, 0 if none was found */
        int64_t since_ms;                 /* unix ms of the first refusal */
        char reason[NOTES_MESSAGE_MAX];
};

struct notes {
        struct audit *audit;              /* NULL: audit log off; not owned */
        struct sd_store *store;           /* for its health; NULL: none; not owned */
        pthread_mutex_t lock;             /* guards state and the fields below */
        struct notes_state state;
        struct notes_realm realm;
        struct notes_stale **stale;       /* sorted by secret (sorted.h) */
        size_t n_stale;
};

void notes_init(struct notes *n, struct audit *audit, const char *driver, const char *store_url);
void notes_done(struct notes *n);

/* A copy of the state fields, taken under the lock (and the store's
 * health, asked outside it). */
void notes_state_get(struct notes *n, struct notes_state *out);

/* The store whose health status and metrics show (before any thread
 * reads the notes). */
void notes_set_store(struct notes *n, struct sd_store *store);
/* The local cache's directory (not owned) and its number of entries. */
void notes_cache(struct notes *n, const char *dir, size_t entries);
/* A Mount or Create took a secret from the local cache because the store
 * was unreachable: secretd_cache_deliveries_total and its time. */
void note_cache_delivery(struct notes *n);

/* Store reads: ok records a successful read or watch (message ignored);
 * !ok records the message (sd_error texts, never values). */
void notes_store(struct notes *n, bool ok, const char *message);
/* Docker events stream up or down (message: why it dropped, may be NULL). */
void notes_docker(struct notes *n, bool connected, const char *message);
/* One docker event received: its time, and secretd_docker_events_total. */
void notes_docker_event(struct notes *n);

/* One tmpfs instance, as the audit log names it.  Strings may be NULL or
 * "" for unknown (a container is known once the events thread linked it). */
struct note_instance {
        const char *id;
        const char *volume;
        const char *container_id;
        const char *container_name;
};

/* A secret written into a new instance at Mount: secretd_deliveries_total
 * and a "deliver" line. */
void note_delivery(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                   const char *writer);

/* A new version (or, with reason, a removal) written into a running
 * instance: a "rotate" line.  The caller counts secretd_rotations_total once
 * per rotation with note_rotations(). */
void note_rotation(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                   const char *writer, const char *reason);
void note_rotations(struct notes *n, size_t n_instances, double seconds);

/* An instance wiped (Unmount or the events thread): secretd_wipes_total and
 * a "wipe" line. */
void note_wipe(struct notes *n, const struct note_instance *in, const char *why);

/* A secret delivered at Mount (or rotated into a running instance) at an
 * older version than the store's newest, which failed verification: what
 * note_delivery() (or note_rotation()) does, plus
 * secretd_stale_deliveries_total, and reason on the audit line. */
void note_stale_delivery(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                         const char *writer, bool rotation, const char *reason);

/* ---- what GET /v1/status shows beyond the connections ---- */

/* The realm's current policy (nothing before one is verified), and the
 * recipient name in it of the first of this host's keys that has one. */
void notes_realm_policy(struct notes *n, struct sd_realm *realm, const unsigned char (*box_pks)[SD_BOX_PK_BYTES],
                        size_t n_box_pks);
void notes_realm_get(struct notes *n, struct notes_realm *out);

/* A secret's newest version refused (newest, served as above; reason the
 * message, without values) or verified again (cleared).  The first refusal's
 * time is kept while the secret stays stale. */
void notes_stale_set(struct notes *n, const char *secret, uint64_t newest, uint64_t served, const char *reason);
void notes_stale_clear(struct notes *n, const char *secret);
/* A copy of the stale secrets, sorted (malloc()ed; NULL and 0 for none).
 * -ENOMEM. */
int notes_stale_list(struct notes *n, struct notes_stale **out, size_t *n_out);

/* A Create, Mount or rotation refused: secretd_refusals_total and
 * secretd_errors_total{kind} once, and one "refuse" line per instance of
 * in[0..n_in) (one line without an instance when n_in is 0), naming volume
 * (when in has none) and secret (may be NULL), with message as the reason. */
void note_refusal(struct notes *n, enum error_kind kind, const char *volume, const char *secret,
                  const struct note_instance *in, size_t n_in, const char *message);
