/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "secretd/config.h"

/* Exit codes of the secretd command (docs/agent.md lists them). */
enum {
        DAEMON_EXIT_OK = 0,
        DAEMON_EXIT_FAILURE = 1,     /* start-up or runtime failure */
        DAEMON_EXIT_USAGE = 2,       /* bad command line */
        DAEMON_EXIT_CONFIG = 3,      /* bad configuration file or value */
        DAEMON_EXIT_EXISTS = 4,      /* init: key exists, no --force */
};

/* Run the daemon in the foreground until SIGTERM/SIGINT; returns the exit
 * code. */
int daemon_run(const struct sd_config *cfg);
