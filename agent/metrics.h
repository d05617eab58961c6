/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Process-wide counters and the rotation latency histogram, served as
 * Prometheus text on the admin socket (GET /metrics, docs/agent.md).
 * Every function is safe to call from any thread at any time (C11 atomics,
 * no locks, no allocation), including before anything is set up: the
 * counters are static and start at zero.
 */

#include <stdio.h>

enum metric {
        METRIC_DELIVERIES,          /* secretd_deliveries_total: secrets written into an instance */
        METRIC_ROTATIONS,           /* secretd_rotations_total: secrets rotated into a running instance */
        METRIC_WIPES,               /* secretd_wipes_total: instances wiped (tmpfs destroyed) */
        METRIC_REFUSALS,            /* secretd_refusals_total: Create/Mount/rotation refused */
        METRIC_EVENTS,              /* secretd_docker_events_total: docker events received */
        METRIC_DOCKER_RECONNECTS,   /* secretd_docker_reconnects_total */
        METRIC_STORE_RECONNECTS,    /* secretd_store_watch_reconnects_total */
        METRIC_SIGNALS,             /* secretd_signals_sent_total: signals sent to containers */
        METRIC_STORE_CHANGES,       /* secretd_store_changes_total: store change notifications */
        METRIC_CACHE_DELIVERIES,    /* secretd_cache_deliveries_total: secrets taken from the local cache */
        METRIC_STALE_DELIVERIES,    /* secretd_stale_deliveries_total: an older version delivered because the newest does not verify */
        METRIC_POLICY_CHANGES,      /* secretd_policy_changes_total: realm policy versions applied live */
        METRIC_SAME_VALUE,          /* secretd_same_value_versions_total: new versions recorded without a file swap */
        METRIC_COUNT_,
};

enum error_kind {
        ERROR_STORE,                /* store unreachable, read failed */
        ERROR_VERIFY,               /* signature, trust, decryption, name binding */
        ERROR_ROLLBACK,             /* version below the delivered floor */
        ERROR_TMPFS,                /* tmpfs create/publish/destroy */
        ERROR_DOCKER,               /* docker API call failed */
        ERROR_PLUGIN,               /* bad plugin request */
        ERROR_SIGNAL,               /* signalling a container failed */
        ERROR_STATE,                /* state file write/read */
        ERROR_AUDIT,                /* audit log write failed */
        ERROR_KIND_COUNT_,
};

/* Add one to a counter / to secretd_errors_total{kind="..."}. */
void metrics_inc(enum metric m);
void metrics_add(enum metric m, unsigned long long n);
void metrics_error(enum error_kind k);

/* One rotation took `seconds` from the store change to the last file
 * published (secretd_rotation_duration_seconds histogram).  Negative or NaN
 * values count as 0. */
void metrics_observe_rotation(double seconds);

/* Read a counter (tests, status). */
unsigned long long metrics_get(enum metric m);
unsigned long long metrics_get_error(enum error_kind k);

/* "store", "verify", ... as used in the kind label. */
const char *metrics_error_kind_name(enum error_kind k);

/* Write the Prometheus text exposition (format 0.0.4) of every metric.
 * Returns 0 or -EIO if the stream failed. */
int metrics_render(FILE *out);

/* Same into a malloc()ed NUL-terminated buffer; -ENOMEM. */
int metrics_render_string(char **text_out, size_t *len_out);
/* Same, followed by what extra (may be NULL) writes: gauges kept outside
 * this module (the store's and the cache's, admin.c). */
int metrics_render_string_with(int (*extra)(void *ctx, FILE *out), void *ctx, char **text_out, size_t *len_out);

/* Zero everything (tests only). */
void metrics_reset(void);
