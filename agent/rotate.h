/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Rotation: keep every mounted instance current while its secrets change
 * (design.md points 3 and 4; docs/agent.md "Rotation").
 *
 * One thread polls the store's watch fd and a stop eventfd.  For each
 * secret name the store reports changed:
 *
 *   1. no instance's volume delivers it: nothing to do (no store read);
 *   2. fetch, verify and decrypt the latest version ONCE (delivery.h);
 *   3. the registry decides on it against the rollback floor (a version
 *      below it is refused; one that a concurrent Mount already topped is
 *      fetched again), raises the floor and names the instances to update;
 *   4. each instance behind that version gets a new generation
 *      (sd_tmpfs_instance_update: the changed files are written, the others
 *      hard-linked over) and its record the new generation and version,
 *      spread over two threads for large fan-outs; each instance is held
 *      busy in the registry only while it is written, so an Unmount waits
 *      for at most that one write.
 *
 * A tombstone keeps the files at their last value (a warning) unless the
 * volume says on-delete=remove, which publishes the set without them.  An
 * envelope that fails (forged, corrupted, untrusted signer, not for this
 * host, rollback) never replaces a file: warned once per version, counted
 * in metrics (refusals, errors{kind=verify|rollback|store}) and audited.
 *
 * A store that cannot be reached (delivery_error_is_transient: refused,
 * timed out, reset, etcd's 503 "leader changed") is not a refusal: the
 * rotation is counted as a store error (errors{kind=store}), warned about
 * once per outage, and the name is tried again with backoff (100 ms doubling
 * to 5 s) until its version is delivered or known to be gone.  A fetch the
 * local cache answered (cache.h) counts as unreachable too: it cannot know
 * of newer versions, so rotation neither takes nor verifies its bytes
 * (DELIVERY_STORE_ONLY).  Each time the cache stood in for the store (a Mount
 * during an outage), and when the watch itself fails, the next pass also
 * re-checks every secret an instance delivers, since what was served may
 * be older than the store's latest; a pass stops at the first secret the
 * store does not answer for and goes on from there at the next try.
 *
 * A new version whose value is the one an instance holds already (a
 * reseal: same value, new data key and recipients) changes no file: the
 * instance's record gets the new version, its generation stays, no signal
 * is sent.
 *
 * Realm policy changes: the watch reports SD_STORE_POLICY_NAME; the realm
 * is walked again (sd_realm_refresh) and every secret an instance delivers
 * is rotated as if it had changed, against the new policy: a version
 * refused before because its writer was unknown is delivered now, a
 * version of a writer removed meanwhile is refused (the instances keep
 * what they have).  When the latest version does not verify and
 * on-unverifiable is "previous", the newest one that does and is not
 * below the floor is delivered (delivery.h), and the refusal of the latest
 * is warned about once.
 *
 * Reload signals: an instance linked to a container (events.c) whose label
 * secretd.reload-signal names a signal gets it through dockerd's kill API
 * after each rotation, debounced per container: sent once no further
 * rotation arrived for ROTATE_SIGNAL_QUIET_MS, but at most
 * ROTATE_SIGNAL_MAX_DELAY_MS after the first pending one.
 */

#include "secretd/error.h"
#include "secretd/store.h"

#define ROTATE_SIGNAL_QUIET_MS 250
#define ROTATE_SIGNAL_MAX_DELAY_MS 1000
#define ROTATE_RETRY_FIRST_MS 100
#define ROTATE_RETRY_MAX_MS 5000

struct cache;
struct delivery;
struct notes;
struct registry;
struct sd_realm;

struct rotator_config {
        struct registry *registry;
        struct delivery *delivery;
        struct notes *notes;
        struct sd_store *store;           /* watched; NULL: no rotation */
        const char *docker_socket;        /* where sd_docker_kill goes; NULL: no reload signals */
        struct cache *cache;              /* its stand-ins start a re-check of what is served; NULL: none */
        struct sd_realm *realm;           /* walked again when the policy changes; NULL: not */
};

struct rotator;

/* Start the rotation thread.  A store without watch support is logged and
 * gives a rotator that does nothing (*out still set). */
int rotator_start(const struct rotator_config *cfg, struct rotator **out, sd_error *err);

/* A rotator without its thread, for unit tests: rotator_rotate() then
 * does what the thread does for one changed name. */
int rotator_new(const struct rotator_config *cfg, struct rotator **out, sd_error *err);

/* Rotate one changed secret (detected: sd_monotonic_seconds() when the
 * change was seen, for the latency histogram).  The thread calls it. */
void rotator_rotate(struct rotator *r, const char *secret, double detected);

/* Run the retries and re-checks that wait for the store now, due or not
 * (the thread runs them when due): for unit tests. */
void rotator_resync(struct rotator *r);
/* Names waiting for a retry, plus 1 if every served secret is to be
 * re-checked: for unit tests. */
size_t rotator_resync_pending(const struct rotator *r);

/* Signal the thread through its eventfd, join it, send signals still
 * pending, free everything.  NULL is fine. */
void rotator_stop(struct rotator *r);
