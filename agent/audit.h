/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The audit log: one JSON object per line, appended to a file (config key
 * `audit-log`, default /var/log/secretd/audit.log; empty disables it).
 * Records say who got which secret version from which writer, never a
 * value:
 *
 *   {"time":"2026-11-28T21:34:14.123Z","event":"deliver","container":"3f..",
 *    "container_name":"web","volume":"app","secret":"db_password",
 *    "version":3,"writer":"a1b2..."}
 *
 * Each line is written with one write(2) on an O_APPEND fd, so lines from
 * concurrent threads (and processes) never interleave.  Absent fields
 * (NULL strings, version 0) are left out of the line.
 */

#include <stdint.h>

#include "secretd/error.h"

enum audit_event_kind {
        AUDIT_DELIVER,   /* "deliver": a secret written into a new instance */
        AUDIT_ROTATE,    /* "rotate": a new version written into a running instance */
        AUDIT_WIPE,      /* "wipe": an instance destroyed */
        AUDIT_REFUSE,    /* "refuse": Create, Mount or a rotation refused; reason says why */
};

struct audit_event {
        enum audit_event_kind kind;
        const char *container;       /* container id, NULL if unknown */
        const char *container_name;  /* NULL if unknown */
        const char *volume;
        const char *secret;          /* NULL for events about a whole instance */
        uint64_t version;            /* 0: not applicable */
        const char *writer;          /* signing writer's key id, NULL if unknown */
        const char *reason;          /* for refusals: the message the user saw */
        const char *instance;        /* mount id, NULL if unknown */
};

struct audit;

/* Open (create 0600, parent directory 0700 if missing) path for appending.
 * path NULL or "" gives a disabled log on which audit_log() does nothing. */
int audit_open(const char *path, struct audit **out, sd_error *err);
void audit_close(struct audit *a);

/* Point the log at path (NULL or "" disables it): the file is opened as
 * audit_open() opens it, then swapped in once no audit_log() is writing.
 * Reopening the same path follows a log rotated by renaming.  On failure
 * the log keeps its file. */
int audit_reopen(struct audit *a, const char *path, sd_error *err);
static inline void audit_closep(struct audit **a) {
        if (*a)
                audit_close(*a);
}
#define _cleanup_audit_ __attribute__((cleanup(audit_closep)))

/* Append one line.  a may be NULL (disabled).  Thread-safe.  A failed write
 * is counted (metrics ERROR_AUDIT) and logged at most once a minute; the
 * return value (0 or negative errno) is for tests. */
int audit_log(struct audit *a, const struct audit_event *ev);

/* Format the line (with "\n") without writing it: malloc()ed text.  For
 * tests and for audit_log itself.  -ENOMEM. */
int audit_format(const struct audit_event *ev, int64_t time_ms, char **line_out);

const char *audit_event_kind_name(enum audit_event_kind k);
