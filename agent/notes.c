/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Counters, audit lines and connection states (notes.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "notes.h"
#include "secretd/clock.h"
#include "secretd/cleanup.h"
#include "secretd/realm.h"
#include "sorted.h"

void notes_init(struct notes *n, struct audit *audit, const char *driver, const char *store_url) {
        *n = (struct notes) {
                .audit = audit,
                .state = { .started_mono_ms = sd_monotonic_ms(), .driver = driver, .store_url = store_url },
        };
        (void) pthread_mutex_init(&n->lock, NULL);
}

void notes_done(struct notes *n) {
        for (size_t i = 0; i < n->n_stale; i++)
                free(n->stale[i]);
        free(n->stale);
        n->stale = NULL;
        n->n_stale = 0;
        (void) pthread_mutex_destroy(&n->lock);
}

void notes_state_get(struct notes *n, struct notes_state *out) {
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
                *out = n->state;
        }
        if (n->store) {
                sd_store_health(n->store, &out->health);
                out->have_health = true;
        }
}

void notes_set_store(struct notes *n, struct sd_store *store) {
        n->store = store;
}

void notes_cache(struct notes *n, const char *dir, size_t entries) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        n->state.cache_dir = dir;
        n->state.cache_entries = entries;
}

void note_cache_delivery(struct notes *n) {
        int64_t now = sd_realtime_ms();
        metrics_inc(METRIC_CACHE_DELIVERIES);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        n->state.cache_delivered_at = now;
}

static void copy_message(char dst[NOTES_MESSAGE_MAX], const char *src) {
        (void) snprintf(dst, NOTES_MESSAGE_MAX, "%s", src ? src : "");
}

void notes_store(struct notes *n, bool ok, const char *message) {
        int64_t now = sd_realtime_ms();
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        n->state.store_ok = ok;
        if (ok) {
                n->state.store_ok_at = now;
        } else {
                copy_message(n->state.store_error, message);
                n->state.store_error_at = now;
        }
}

void notes_docker(struct notes *n, bool connected, const char *message) {
        int64_t now = sd_realtime_ms();
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        n->state.docker_connected = connected;
        n->state.docker_changed_at = now;
        if (!connected)
                copy_message(n->state.docker_error, message);
}

void notes_docker_event(struct notes *n) {
        int64_t now = sd_realtime_ms();
        metrics_inc(METRIC_EVENTS);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        n->state.docker_event_at = now;
}

static const char *or_null(const char *s) {
        return s && s[0] ? s : NULL;
}

static struct audit_event instance_event(enum audit_event_kind kind, const struct note_instance *in) {
        return (struct audit_event) {
                .kind = kind,
                .container = or_null(in->container_id),
                .container_name = or_null(in->container_name),
                .volume = in->volume,
                .instance = or_null(in->id),
        };
}

static void delivery_line(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                          const char *writer, const char *reason) {
        metrics_inc(METRIC_DELIVERIES);
        struct audit_event ev = instance_event(AUDIT_DELIVER, in);
        ev.secret = secret;
        ev.version = version;
        ev.writer = or_null(writer);
        ev.reason = reason;
        (void) audit_log(n->audit, &ev);
}

void note_delivery(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                   const char *writer) {
        delivery_line(n, in, secret, version, writer, NULL);
}

void note_stale_delivery(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                         const char *writer, bool rotation, const char *reason) {
        metrics_inc(METRIC_STALE_DELIVERIES);
        if (rotation)
                note_rotation(n, in, secret, version, writer, reason);
        else
                delivery_line(n, in, secret, version, writer, reason);
}

void note_rotation(struct notes *n, const struct note_instance *in, const char *secret, uint64_t version,
                   const char *writer, const char *reason) {
        struct audit_event ev = instance_event(AUDIT_ROTATE, in);
        ev.secret = secret;
        ev.version = version;
        ev.writer = or_null(writer);
        ev.reason = reason;
        (void) audit_log(n->audit, &ev);
}

void note_rotations(struct notes *n, size_t n_instances, double seconds) {
        (void) n;
        metrics_add(METRIC_ROTATIONS, n_instances);
        metrics_observe_rotation(seconds);
}

void note_wipe(struct notes *n, const struct note_instance *in, const char *why) {
        metrics_inc(METRIC_WIPES);
        struct audit_event ev = instance_event(AUDIT_WIPE, in);
        ev.reason = why;
        (void) audit_log(n->audit, &ev);
}

void note_refusal(struct notes *n, enum error_kind kind, const char *volume, const char *secret,
                  const struct note_instance *in, size_t n_in, const char *message) {
        metrics_inc(METRIC_REFUSALS);
        metrics_error(kind);
        const char *reason = message && message[0] ? message : "unknown error";
        if (n_in == 0) {
                const struct audit_event ev = {
                        .kind = AUDIT_REFUSE, .volume = volume, .secret = secret, .reason = reason,
                };
                (void) audit_log(n->audit, &ev);
                return;
        }
        for (size_t i = 0; i < n_in; i++) {
                struct audit_event ev = instance_event(AUDIT_REFUSE, &in[i]);
                ev.secret = secret;
                ev.reason = reason;
                (void) audit_log(n->audit, &ev);
        }
}

/* ---- status beyond the connections ---- */

void notes_realm_policy(struct notes *n, struct sd_realm *realm, const unsigned char (*box_pks)[SD_BOX_PK_BYTES],
                        size_t n_box_pks) {
        _cleanup_policy_ struct sd_policy *p = realm ? sd_realm_policy(realm) : NULL;
        if (!p)
                return;
        const char *recipient = NULL;
        for (size_t i = 0; i < n_box_pks && !recipient; i++) {
                enum sd_policy_list which;
                const struct sd_policy_entry *e = sd_policy_find_box_key(p, box_pks[i], &which);
                if (e && which == SD_POLICY_RECIPIENTS)
                        recipient = e->name;
        }
        int64_t now = sd_realtime_ms();
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        struct notes_realm *r = &n->realm;
        if (r->policy_version != sd_policy_version(p) || !r->id[0])
                r->applied_at = now;
        sd_realm_id_short(sd_policy_realm(p), r->id);
        r->policy_version = sd_policy_version(p);
        r->policy_created = sd_policy_created(p);
        (void) snprintf(r->recipient, sizeof(r->recipient), "%s", recipient ? recipient : "");
}

void notes_realm_get(struct notes *n, struct notes_realm *out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        *out = n->realm;
}

static const char *stale_key(const void *item) {
        return ((const struct notes_stale *) item)->secret;
}

void notes_stale_set(struct notes *n, const char *secret, uint64_t newest, uint64_t served, const char *reason) {
        int64_t now = sd_realtime_ms();
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        bool found;
        size_t i = sorted_index((void *const *) n->stale, n->n_stale, secret, stale_key, &found);
        if (!found) {
                struct notes_stale *e = calloc(1, sizeof(*e));
                /* Out of memory: status misses one stale secret; the log
                 * and the audit line still say it. */
                if (!e || sorted_insert((void ***) &n->stale, &n->n_stale, i, e) < 0) {
                        free(e);
                        return;
                }
                e->since_ms = now;
                (void) snprintf(e->secret, sizeof(e->secret), "%s", secret);
        }
        struct notes_stale *e = n->stale[i];
        bool same_newest = found && e->newest == newest;
        if (!same_newest)
                e->since_ms = now;
        /* A refusal that did not look for an older version (a rotation)
         * keeps what an earlier one found for the same newest version. */
        if (served || !same_newest)
                e->served = served;
        e->newest = newest;
        copy_message(e->reason, reason);
}

void notes_stale_clear(struct notes *n, const char *secret) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        bool found;
        size_t i = sorted_index((void *const *) n->stale, n->n_stale, secret, stale_key, &found);
        if (!found)
                return;
        free(n->stale[i]);
        memmove(&n->stale[i], &n->stale[i + 1], (n->n_stale - i - 1) * sizeof(*n->stale));
        n->n_stale--;
}

int notes_stale_list(struct notes *n, struct notes_stale **out, size_t *n_out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&n->lock);
        struct notes_stale *copy = NULL;
        if (n->n_stale) {
                copy = calloc(n->n_stale, sizeof(*copy));
                if (!copy)
                        return -ENOMEM;
                for (size_t i = 0; i < n->n_stale; i++)
                        copy[i] = *n->stale[i];
        }
        *out = copy;
        *n_out = n->n_stale;
        return 0;
}
