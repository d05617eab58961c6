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

/* A command-line option of `secretd run`: its name is the config key. */
struct daemon_flag {
        const char *key;
        const char *value;
};

/* Where `secretd run` takes its configuration from: the built-in
 * defaults, the file, then the flags over it.  SIGHUP builds it again from
 * the same source, so a flag keeps overriding the file after a reload. */
struct daemon_config_source {
        const char *config_path;   /* NULL: SD_CONFIG_DEFAULT_PATH, which may be missing */
        const struct daemon_flag *flags;
        size_t n_flags;
};

/* Build *cfg from src, checked (sd_config_check).  On failure *cfg is
 * freed and the message names the file and line or the flag. */
int daemon_config_load(const struct daemon_config_source *src, struct sd_config *cfg, sd_error *err);

/* Run the daemon in the foreground until SIGTERM/SIGINT; returns the exit
 * code.  cfg was built from src. */
int daemon_run(const struct sd_config *cfg, const struct daemon_config_source *src);
