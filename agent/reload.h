/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SIGHUP: the configuration read again, from the same file and flags as at
 * start (daemon_config_load), and applied to the running agent where that
 * is safe without a restart:
 *
 *   log-level, on-unverifiable, default-size, max-size, max-volumes,
 *   max-instances-per-volume, max-inodes, max-total-tmpfs, audit-log
 *   (always reopened, so a log rotated by renaming is followed).
 *
 * Every other key names something the agent holds open or has handed out
 * (sockets, the store, the key, the realm, the state and its mounts): a
 * changed value is logged as waiting for a restart and the running value
 * stays.  A file that does not load changes nothing.
 */

#include "secretd/config.h"

struct audit;
struct delivery;
struct registry;

struct reload_targets {
        struct registry *registry;
        struct delivery *delivery;
        struct audit *audit;
};

/* The keys a reload applies (file spelling). */
bool reload_key_is_live(const char *key);

/* Apply *next over the running agent.  started: the configuration the agent
 * started with (what restart-only keys still hold); applied: the one the
 * last reload applied (started before any).  Logs what changed, what waits
 * for a restart, or why nothing was applied.  0, or negative errno when
 * nothing was applied. */
int reload_apply(const struct reload_targets *t, const struct sd_config *started, const struct sd_config *applied,
                 const struct sd_config *next);
