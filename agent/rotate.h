/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Rotation: keep every mounted instance current while its secrets change
 * (design.md points 3 and 4; docs/agent.md "Rotation").
 *
 * One thread polls the store's watch fd and a stop eventfd.  For each
 * secret name the store reports changed:
 *
 *   1. under ops_lock, find every live instance whose volume delivers it;
 *      none: nothing to do (no store read);
 *   2. fetch, verify and decrypt the latest version ONCE;
 *   3. refuse a version below the rollback floor (delivered.json); an
 *      instance already at that version is skipped, so an equal version
 *      is a no-op;
 *   4. raise the floor, then publish a new generation to every instance
 *      (sd_tmpfs_instance_update: the changed files are written, the
 *      others hard-linked over), spread over two threads for large fan-outs;
 *   5. persist the new generation and versions in each mount record.
 *
 * A tombstone keeps the files at their last value (a warning) unless the
 * volume says on-delete=remove, which publishes the set without them.  An
 * envelope that fails (forged, corrupted, untrusted signer, not for this
 * host, rollback) never replaces a file: warned once per version, counted
 * in metrics (refusals, errors{kind=verify|rollback|store}) and audited.
 *
 * Reload signals: an instance linked to a container (events.c) whose label
 * secretd.reload-signal names a signal gets it through dockerd's kill API
 * after each rotation, debounced per container: sent once no further
 * rotation arrived for ROTATE_SIGNAL_QUIET_MS, but at most
 * ROTATE_SIGNAL_MAX_DELAY_MS after the first pending one.
 */

#include "agent.h"
#include "secretd/error.h"

#define ROTATE_SIGNAL_QUIET_MS 250
#define ROTATE_SIGNAL_MAX_DELAY_MS 1000

struct rotator;

/* Start the rotation thread.  docker_socket (copied; NULL: no reload
 * signals) is where sd_docker_kill goes.  A store without watch support
 * is logged and gives a rotator that does nothing (*out still set). */
int rotator_start(struct agent *a, const char *docker_socket, struct rotator **out, sd_error *err);

/* Signal the thread through its eventfd, join it, send signals still
 * pending, free everything.  NULL is fine. */
void rotator_stop(struct rotator *r);
