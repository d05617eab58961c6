/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clocks in milliseconds.  Deadlines, timeouts and durations use the
 * monotonic clock (it never jumps with NTP or date(1)); timestamps that a
 * person or another host reads (audit lines, status) use the real-time
 * clock.
 */

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static inline int64_t sd_clock_ms(clockid_t clock) {
        struct timespec ts;
        (void) clock_gettime(clock, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t sd_monotonic_ms(void) {
        return sd_clock_ms(CLOCK_MONOTONIC);
}

static inline int64_t sd_realtime_ms(void) {
        return sd_clock_ms(CLOCK_REALTIME);
}

/* Monotonic seconds with sub-millisecond resolution, for measured latencies. */
static inline double sd_monotonic_seconds(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* "2025-01-31T12:34:56.789Z": RFC 3339 / ISO 8601 in UTC with
 * milliseconds, the time format of everything a person or a log shipper
 * reads (log lines, audit lines, status).  UTC: the same on every host
 * and in every season, and it sorts as text. */
#define SD_TIMESTAMP_MAX 32

static inline void sd_format_timestamp_ms(int64_t unix_ms, char out[SD_TIMESTAMP_MAX]) {
        time_t secs = (time_t) (unix_ms / 1000);
        struct tm tm;
        size_t n;
        if (unix_ms < 0 || !gmtime_r(&secs, &tm) ||
            (n = strftime(out, SD_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
                n = (size_t) snprintf(out, SD_TIMESTAMP_MAX, "1970-01-01T00:00:00");
        (void) snprintf(out + n, SD_TIMESTAMP_MAX - n, ".%03dZ", (int) (unix_ms < 0 ? 0 : unix_ms % 1000));
}
