/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clocks in milliseconds.  Deadlines, timeouts and durations use the
 * monotonic clock (it never jumps with NTP or date(1)); timestamps that a
 * person or another host reads (audit lines, status) use the real-time
 * clock.
 */

#include <stdint.h>
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
