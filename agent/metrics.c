/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Counters as C11 atomics: handler threads, the events thread and the
 * rotation thread bump them without a lock, and a scrape reads each with
 * one relaxed load (a scrape is not a snapshot across metrics; Prometheus
 * does not need one).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "secretd/cleanup.h"

static const struct metric_info {
        const char *name;
        const char *help;
} metric_info[METRIC_COUNT_] = {
        [METRIC_DELIVERIES] = { "secretd_deliveries_total",
                                "Secrets written into a new per-container tmpfs at Mount." },
        [METRIC_ROTATIONS] = { "secretd_rotations_total",
                               "New secret versions written into a running container's tmpfs." },
        [METRIC_WIPES] = { "secretd_wipes_total", "Per-container tmpfs instances wiped." },
        [METRIC_REFUSALS] = { "secretd_refusals_total",
                              "Volume creations, mounts and rotations refused." },
        [METRIC_EVENTS] = { "secretd_docker_events_total", "Docker events received." },
        [METRIC_DOCKER_RECONNECTS] = { "secretd_docker_reconnects_total",
                                       "Reconnections of the Docker events stream." },
        [METRIC_STORE_RECONNECTS] = { "secretd_store_watch_reconnects_total",
                                      "Reconnections of the store watch." },
        [METRIC_SIGNALS] = { "secretd_signals_sent_total",
                             "Reload signals sent to containers after a rotation." },
        [METRIC_STORE_CHANGES] = { "secretd_store_changes_total",
                                   "Change notifications received from the store watch." },
        [METRIC_CACHE_DELIVERIES] = { "secretd_cache_deliveries_total",
                                      "Secrets a Mount or Create took from the local cache while the store was "
                                      "unreachable." },
        [METRIC_STALE_DELIVERIES] = { "secretd_stale_deliveries_total",
                                      "Secrets delivered at an older version because the newest one does not verify." },
        [METRIC_POLICY_CHANGES] = { "secretd_policy_changes_total",
                                    "Realm policy versions applied while running." },
        [METRIC_SAME_VALUE] = { "secretd_same_value_versions_total",
                                "New versions with the value an instance already held, recorded without a file swap." },
};

static const char *const error_kind_names[ERROR_KIND_COUNT_] = {
        [ERROR_STORE] = "store",   [ERROR_VERIFY] = "verify", [ERROR_ROLLBACK] = "rollback",
        [ERROR_TMPFS] = "tmpfs",   [ERROR_DOCKER] = "docker", [ERROR_PLUGIN] = "plugin",
        [ERROR_SIGNAL] = "signal", [ERROR_STATE] = "state",   [ERROR_AUDIT] = "audit",
};

/* Upper bounds in seconds, 1 ms to 10 s: a rotation is a store read, a
 * verify and a few small tmpfs writes; seconds mean a slow store. */
static const double rotation_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1,     2.5,  5,     10 };
#define ROTATION_BUCKETS SD_ARRAY_SIZE(rotation_bounds)

static atomic_ullong counters[METRIC_COUNT_];
static atomic_ullong errors[ERROR_KIND_COUNT_];
/* Per bucket (not cumulative) counts; the last slot is above 10 s.  The sum
 * is kept in microseconds so it stays an integer atomic. */
static atomic_ullong rotation_counts[ROTATION_BUCKETS + 1];
static atomic_ullong rotation_sum_us;

void metrics_inc(enum metric m) {
        metrics_add(m, 1);
}

void metrics_add(enum metric m, unsigned long long n) {
        if ((unsigned) m < METRIC_COUNT_)
                atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

void metrics_error(enum error_kind k) {
        if ((unsigned) k < ERROR_KIND_COUNT_)
                atomic_fetch_add_explicit(&errors[k], 1, memory_order_relaxed);
}

void metrics_observe_rotation(double seconds) {
        if (!(seconds > 0))   /* also NaN */
                seconds = 0;
        size_t i = 0;
        while (i < ROTATION_BUCKETS && seconds > rotation_bounds[i])
                i++;
        /* Bucket first, then the sum: a scrape racing this sees a count
         * consistent with the buckets, which is what +Inf == _count needs. */
        atomic_fetch_add_explicit(&rotation_counts[i], 1, memory_order_relaxed);
        double us = seconds * 1e6;
        unsigned long long add = us > 1e15 ? 1000000000000000ULL : (unsigned long long) (us + 0.5);
        atomic_fetch_add_explicit(&rotation_sum_us, add, memory_order_relaxed);
}

unsigned long long metrics_get(enum metric m) {
        if ((unsigned) m >= METRIC_COUNT_)
                return 0;
        return atomic_load_explicit(&counters[m], memory_order_relaxed);
}

unsigned long long metrics_get_error(enum error_kind k) {
        if ((unsigned) k >= ERROR_KIND_COUNT_)
                return 0;
        return atomic_load_explicit(&errors[k], memory_order_relaxed);
}

const char *metrics_error_kind_name(enum error_kind k) {
        if ((unsigned) k >= ERROR_KIND_COUNT_)
                return "?";
        return error_kind_names[k];
}

void metrics_reset(void) {
        for (size_t i = 0; i < METRIC_COUNT_; i++)
                atomic_store(&counters[i], 0);
        for (size_t i = 0; i < ERROR_KIND_COUNT_; i++)
                atomic_store(&errors[i], 0);
        for (size_t i = 0; i <= ROTATION_BUCKETS; i++)
                atomic_store(&rotation_counts[i], 0);
        atomic_store(&rotation_sum_us, 0);
}

int metrics_render(FILE *out) {
        for (size_t i = 0; i < METRIC_COUNT_; i++)
                fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", metric_info[i].name,
                        metric_info[i].help, metric_info[i].name, metric_info[i].name, metrics_get((enum metric) i));

        fputs("# HELP secretd_errors_total Errors by kind.\n# TYPE secretd_errors_total counter\n", out);
        for (size_t k = 0; k < ERROR_KIND_COUNT_; k++)
                fprintf(out, "secretd_errors_total{kind=\"%s\"} %llu\n", error_kind_names[k],
                        metrics_get_error((enum error_kind) k));

        /* Read the buckets once; _count is their total, so +Inf and _count
         * agree even while rotations are being observed. */
        unsigned long long counts[ROTATION_BUCKETS + 1], cumulative = 0;
        for (size_t i = 0; i <= ROTATION_BUCKETS; i++)
                counts[i] = atomic_load_explicit(&rotation_counts[i], memory_order_relaxed);
        unsigned long long sum_us = atomic_load_explicit(&rotation_sum_us, memory_order_relaxed);
        fputs("# HELP secretd_rotation_duration_seconds Time from a store change to the new version "
              "published in a container's tmpfs.\n"
              "# TYPE secretd_rotation_duration_seconds histogram\n",
              out);
        for (size_t i = 0; i < ROTATION_BUCKETS; i++) {
                cumulative += counts[i];
                fprintf(out, "secretd_rotation_duration_seconds_bucket{le=\"%g\"} %llu\n", rotation_bounds[i],
                        cumulative);
        }
        cumulative += counts[ROTATION_BUCKETS];
        fprintf(out, "secretd_rotation_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cumulative);
        fprintf(out, "secretd_rotation_duration_seconds_sum %llu.%06llu\n", sum_us / 1000000, sum_us % 1000000);
        fprintf(out, "secretd_rotation_duration_seconds_count %llu\n", cumulative);
        return ferror(out) ? -EIO : 0;
}

int metrics_render_string(char **text_out, size_t *len_out) {
        return metrics_render_string_with(NULL, NULL, text_out, len_out);
}

int metrics_render_string_with(int (*extra)(void *ctx, FILE *out), void *ctx, char **text_out, size_t *len_out) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        int r = metrics_render(f);
        if (r == 0 && extra)
                r = extra(ctx, f);
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                return r;
        }
        *text_out = text;
        if (len_out)
                *len_out = len;
        return 0;
}
