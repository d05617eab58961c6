/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's log: one line per event on stderr, written with a single
 * write(2) so lines from concurrent handler threads never interleave.
 *
 *   stderr is the journal:  "<6>volume 'x' created ..."
 *   anywhere else:          "2025-01-31T12:34:56.789Z secretd[info]: volume 'x' created ..."
 *
 * Under systemd (stderr connected to journald, which the JOURNAL_STREAM
 * variable says: its "DEVICE:INODE" is stderr's) each line starts with the
 * sd-daemon(3) priority prefix, <3> error, <4> warning, <6> info, <7>
 * debug, and journald adds the time, the pid and the name.  Elsewhere (a
 * terminal, a file, a test's log) the line carries its own UTC timestamp
 * and level.  Nothing logged ever contains a secret value: messages are
 * built from names, versions, paths and sd_error texts, which never hold
 * plaintext.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/config.h"
#include "secretd/error.h"

/* Longest line written, newline included; longer messages are cut. */
#define LOG_LINE_MAX 1024

/* Choose the line format from JOURNAL_STREAM and stderr.  Called once at
 * the start of `secretd run`, before any thread; until then lines are in
 * the plain format. */
void log_open(void);

void log_set_level(enum sd_log_level level);
enum sd_log_level log_get_level(void);
void log_at(enum sd_log_level level, const char *fmt, ...) SD_PRINTF(2, 3);

#define log_error(...) log_at(SD_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(SD_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(SD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(SD_LOG_DEBUG, __VA_ARGS__)

/* The pieces log_at() is made of, for tests. */

/* True if journal_stream (JOURNAL_STREAM's value, may be NULL) is
 * "DEVICE:INODE" in decimal and names the file open on fd. */
bool log_stream_is_journal(const char *journal_stream, int fd);

/* Format one line into line[LOG_LINE_MAX]: the journal's "<N>" prefix, or
 * the timestamp of realtime_ms and the level; CR and LF in the message
 * become spaces; always ends with '\n'.  Returns its length. */
size_t log_format_line(char line[LOG_LINE_MAX], bool journal, int64_t realtime_ms, enum sd_log_level level,
                       const char *fmt, va_list ap) SD_PRINTF(5, 0);
