/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Container lifecycle (design.md point 4): the agent follows dockerd's
 * events stream to learn which container holds each tmpfs instance, and
 * wipes an instance whose container died or was removed without the
 * Unmount that normally does it (agent down at the time, dockerd crash).
 *
 *   - A volume `mount` event of our driver names the container; the
 *     instance is linked to it (mount record: container id, name,
 *     secretd.reload-signal label), persisted so a restart keeps it.
 *   - Container `destroy`: every instance linked to it is wiped at once.
 *     Container `die`: the Unmount normally follows within milliseconds;
 *     if the instance is still there a few seconds later and the container
 *     is not running, it is wiped.
 *   - After every (re)connect, after a lost event, and every 30 s: the
 *     container list is compared with the mount records.  Linked to a
 *     container that is gone or exited: wiped.  Unlinked: linked to the
 *     running container whose /run/secrets has the instance's tmpfs device
 *     (dockerd's Mounts.Source cannot tell: it shows what the volume's
 *     shared adapter last got); held by no running container for more
 *     than 30 s: wiped (a Mount precedes its container's start).
 *
 * Nothing live is ever wiped: every wipe is decided on a snapshot and
 * applied only if the record is unchanged (registry_wipe()), and a
 * container that dockerd reports running, or that is still being started
 * (created, restarting), keeps its instances.
 *
 * After each (re)connect the user namespace answer is refreshed
 * (userns_refresh): a dockerd restart may have changed it.
 *
 * Two threads: the events stream (sd_docker_events_run with a stop eventfd,
 * reconnecting with backoff and since=) and a timer for the delayed die
 * checks and the periodic reconcile.  Their work is serialised.
 */

#include "secretd/error.h"

struct notes;
struct registry;
struct userns;

struct events_config {
        struct registry *registry;
        struct notes *notes;
        struct userns *userns;            /* refreshed at each connect; may be NULL */
        const char *docker_socket;
        const char *driver;               /* our volume driver's name */
};

struct events;

/* Start following dockerd at cfg->docker_socket for instances of volume
 * driver cfg->driver (both strings are copied).  Fails only for a bad
 * socket path, out of memory, or threads that cannot start; dockerd being
 * down is retried in the background. */
int events_start(const struct events_config *cfg, struct events **out, sd_error *err);

/* Stop both threads (promptly, even in the middle of a reconnect backoff)
 * and free everything.  NULL is fine. */
void events_stop(struct events *e);
