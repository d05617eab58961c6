/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's log: one line per event on stderr, "secretd[LEVEL]: message",
 * written with a single write(2) so lines from concurrent handler threads
 * never interleave.  Under systemd the journal adds time and priority.
 * Nothing logged ever contains a secret value: messages are built from
 * names, versions, paths and sd_error texts, which never hold plaintext.
 */

#include "secretd/config.h"
#include "secretd/error.h"

void log_set_level(enum sd_log_level level);
enum sd_log_level log_get_level(void);
void log_at(enum sd_log_level level, const char *fmt, ...) SD_PRINTF(2, 3);

#define log_error(...) log_at(SD_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(SD_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(SD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(SD_LOG_DEBUG, __VA_ARGS__)
