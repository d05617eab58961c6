/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The volume registry: the one owner of the volume definitions, the mount
 * records (one per tmpfs instance), their state files and the rollback
 * floor.  Layout of the state directory (default /run/secretd, 0700):
 *
 *   volumes/<name>.json     volume definitions: name, creation time,
 *                           canonical options (secret names, never values)
 *   mounts/<id>.json        one tmpfs instance: volume, reference count,
 *                           generation, delivered versions, its container
 *   instances/<id>/{rw,ro}  the tmpfs instances (instances.h)
 *   (the rollback floor: floor.h)
 *
 * Locking.  `lock` guards the in-memory sets and is held only to read or
 * change them: never across the store, the network, a tmpfs call or a
 * state file write (only a Remove's unlink of its definition runs under
 * it, so no Mount reserves an instance of a volume going away).  A mount record has a `busy` mark instead: whoever holds it
 * (registry_acquire() or a Mount's reservation) is the only one doing I/O
 * for that id; others wanting the same id wait on `idle`.  So a Mount
 * fetching secrets for one id never delays an Unmount or a wipe of
 * another.  `floor_lock` serialises the rollback floor's decisions and
 * writes (with fsync) and is taken before `lock`, never after; wipes and
 * Get/List never take it.  `volumes_lock`, outermost, makes Create and
 * Remove one at a time.
 *
 * A Mount of a new id:
 *   registry_mount_reserve()  a record in state RESERVED, busy: a second
 *                             Mount of the id waits for the first to end,
 *                             then reuses its instance (or, if it failed,
 *                             starts over); the caps count it already;
 *   (fetch and verify, no lock: delivery.h)
 *   registry_mount_decide()   under floor_lock: every version against the
 *                             floor (floor_decide), the floor raised and
 *                             the versions set on the record, so a
 *                             rotation from then on includes this instance
 *                             (and waits for it to be written);
 *   (create and write the tmpfs, no lock)
 *   registry_mount_finish()   record saved, instance LIVE, busy cleared;
 *   or registry_mount_abandon() on any failure.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "floor.h"
#include "instances.h"
#include "notes.h"
#include "request.h"
#include "secretd/docker.h"
#include "secretd/error.h"

/* Resource caps (config keys max-volumes, ...).  A Create or Mount that
 * would pass one is refused with a message naming the key; 0 = no cap. */
struct registry_caps {
        uint64_t max_volumes;
        uint64_t max_instances_per_volume;
        uint64_t max_inodes;              /* nr_inodes of one instance */
        uint64_t max_total_tmpfs;         /* bytes: size caps of all live instances */
};

struct volume {
        char name[SD_NAME_MAX + 1];
        int64_t created_at;               /* unix seconds */
        struct volume_spec spec;
};

struct record_version {
        uint64_t version;
        char *name;                       /* secret name */
};

enum record_state {
        RECORD_RESERVED,                  /* a Mount is making it; not in snapshots */
        RECORD_LIVE,                      /* mounted, refcount > 0 */
        RECORD_DEAD,                      /* its wipe failed; refcount 0 */
};

/* One tmpfs instance.  Read outside registry.c only under `lock` (the
 * registry_visit_* callbacks) or while holding it busy. */
struct mount_record {
        char id[MOUNT_ID_MAX + 1];
        char volume[SD_NAME_MAX + 1];
        enum record_state state;
        bool busy;
        unsigned refcount;
        uint64_t generation;
        int64_t mounted_at;               /* unix seconds of the Mount that made it */
        char *mountpoint;                 /* the read-only path given to dockerd */
        size_t n_versions;
        struct record_version *versions;  /* delivered versions, by secret */
        /* The container holding it, learnt from the events stream or the
         * reconcile (events.c); "" / NULL until linked.  Persisted. */
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char *container_name;
        /* Label secretd.reload-signal: 0 absent, > 0 the signal number,
         * -EINVAL present but not a signal. */
        int reload_signal;
};

struct registry_config {
        const char *state_dir;
        const char *floor_file;           /* NULL: <state_dir>/delivered.json */
        const struct instances *instances;  /* NULL: the tmpfs below <state_dir>/instances */
        struct notes *notes;
        struct volume_limits limits;
        struct registry_caps caps;
};

struct registry;

/* Create the state directory (0700) and its subdirectories, load the
 * floor, volume definitions and mount records, adopt instances that are
 * still mounted and destroy the rest (each adoption and removal logged).
 * The strings and pointers in cfg must outlive the registry. */
int registry_open(const struct registry_config *cfg, struct registry **out, sd_error *err);
void registry_free(struct registry *r);

const struct instances *registry_instances(const struct registry *r);
/* The size limits in force now (a copy: SIGHUP may change them). */
struct volume_limits registry_limits(struct registry *r);
/* SIGHUP: new limits and caps for the Creates and Mounts from now on.
 * Volumes and instances that exist keep their sizes, even above a lowered
 * max-size; the caps count them as before. */
void registry_set_limits(struct registry *r, const struct volume_limits *limits, const struct registry_caps *caps);

/* ---- volumes ---- */

/* Create: 1 if the same definition exists (dockerd re-sends Create), 0 if
 * the name is free and within max-volumes and max-inodes; -EEXIST (other
 * options), -EDQUOT (a cap), with a message. */
int registry_volume_check(struct registry *r, const char *name, const struct volume_spec *spec, sd_error *err);
/* Save and add the definition; checks again (a Create of the same name may
 * have raced): 1 the same one was added meanwhile, 0 added, < 0 error. */
int registry_volume_add(struct registry *r, const char *name, const struct volume_spec *spec, sd_error *err);
/* Remove: 0 removed, 1 not known (nothing to do), -EBUSY still mounted. */
int registry_volume_remove(struct registry *r, const char *name, sd_error *err);

/* Call fn with every volume and every record (any state; callers pick)
 * under the lock: fn must be quick and must not block or call back. */
typedef void (*registry_visit_fn)(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                                  const struct mount_record *const *records, size_t n_records);
void registry_visit(struct registry *r, registry_visit_fn fn, void *userdata);

/* Does any instance's volume deliver secret?  (A rotation with no instance
 * to update reads nothing from the store.) */
bool registry_delivers(struct registry *r, const char *secret);

/* The figures /metrics shows as gauges, at one moment. */
struct registry_gauges {
        uint64_t volumes;                 /* defined */
        uint64_t instances;               /* LIVE */
        uint64_t dead_instances;          /* DEAD: a wipe failed, the tmpfs stays */
        uint64_t tmpfs_size_bytes;        /* size caps of all instances: what max-total-tmpfs bounds */
        uint64_t tmpfs_used_bytes;        /* what their tmpfs hold now (statvfs), dead ones included */
};
/* 0, or -ENOMEM.  The in-use figure is read from each tmpfs without the
 * registry's lock. */
int registry_gauges_get(struct registry *r, struct registry_gauges *out);

/* ---- Mount ---- */

struct mount_reservation {
        struct mount_record *record;      /* busy; NULL once finished or abandoned */
        struct volume_spec *spec;         /* a copy of the volume's, malloc()ed: the caller frees it */
        bool instance_made;               /* the tmpfs exists: abandon destroys it */
};

/* 1: id is a live instance of this volume (docker cp mounts again with
 * the running container's id): one more reference, saved, and its path in
 * *mountpoint_out (malloc()ed).  0: reserved, res filled.  Errors (with a
 * message for the reply): -ENOENT no such volume, -EEXIST id used by
 * another volume, -EDQUOT a cap, a state file error. */
int registry_mount_reserve(struct registry *r, const char *volume, const char *id, struct mount_reservation *res,
                           char **mountpoint_out, sd_error *err);

/* The rollback rule for the fetched versions (versions[i] of
 * res->spec->secrets[i].name, seen[i] the floor before the fetch), then the
 * floor raised and the versions set on the record.  floor_decide()'s codes;
 * on -EAGAIN, *stale_out (may be NULL) is the first secret to fetch
 * again. */
int registry_mount_decide(struct registry *r, struct mount_reservation *res, const uint64_t versions[],
                          const uint64_t seen[], size_t *stale_out, sd_error *err);

/* The tmpfs is written at mountpoint (taken over): save the record, make
 * it live, release it. */
int registry_mount_finish(struct registry *r, struct mount_reservation *res, char *mountpoint, sd_error *err);
/* Give up: destroy the instance if it was made, drop the record, release
 * it.  NULL-safe on a finished reservation. */
void registry_mount_abandon(struct registry *r, struct mount_reservation *res, const char *why);

/* A live instance (not except_id) that holds version of secret, to copy
 * the file from (struct sd_tmpfs_file's source): its id, the file the
 * secret is delivered as, its generation.  false if none. */
struct instance_source {
        char id[MOUNT_ID_MAX + 1];
        char file[SD_NAME_MAX + 1];
        uint64_t generation;
};
bool registry_find_source(struct registry *r, const char *secret, uint64_t version, const char *except_id,
                          struct instance_source *out);

/* The floor of a secret as it is now (the "seen" above). */
uint64_t registry_floor(struct registry *r, const char *secret);
/* floor_decide() on its own (Create, which records nothing). */
int registry_floor_decide(struct registry *r, const char *secret, uint64_t version, uint64_t seen, sd_error *err);

/* ---- Unmount and wipes ---- */

/* Unmount of id: one reference less; at zero the instance is wiped.  0
 * (also: no such id, or wiped lately by the events thread; both logged),
 * or the wipe error (the record stays with no references). */
int registry_unmount(struct registry *r, const char *volume, const char *id, sd_error *err);

/* Wipe instance id without an Unmount (its container is gone), only if it
 * is still linked to expect_container ("" for unlinked) with
 * expect_refcount references: the caller decided from a snapshot.  0 wiped,
 * -ENOENT no such record, -EBUSY changed since the snapshot, else the
 * tmpfs error (logged; the record stays with no references). */
int registry_wipe(struct registry *r, const char *id, const char *expect_container, unsigned expect_refcount,
                  const char *why);

/* ---- the events thread ---- */

/* One record as seen at one moment (a copy: no lock is held while the
 * caller asks dockerd about it). */
struct record_view {
        char id[MOUNT_ID_MAX + 1];
        char volume[SD_NAME_MAX + 1];
        unsigned refcount;
        int64_t mounted_at;
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char container_name[SD_DOCKER_NAME_MAX + 1];
        char *mountpoint;
        bool unsure;                      /* scratch for the reconcile (events.c) */
};

struct record_views {
        struct record_view *items;
        size_t n;
};

/* Every LIVE or DEAD record.  -ENOMEM. */
int registry_views(struct registry *r, struct record_views *out);
void record_views_clear(struct record_views *v);
#define _cleanup_record_views_ _cleanup_(record_views_clear)

/* Link live instance id to a container and persist it.  1 changed, 0
 * already so, -ENOENT not a live instance, else a state file error. */
int registry_link(struct registry *r, const char *id, const char *container_id, const char *container_name,
                  int reload_signal, sd_error *err);

/* ---- rotation ---- */

/* One instance a rotation must update: a copy of what the rotation needs
 * from its record at the time it was collected. */
struct rotation_target {
        char id[MOUNT_ID_MAX + 1];
        char volume[SD_NAME_MAX + 1];
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char container_name[SD_DOCKER_NAME_MAX + 1];
};

/* The instances a rotation of secret would look at now (for the audit
 * lines of a refused one).  -ENOMEM. */
int registry_rotation_targets(struct registry *r, const char *secret, struct rotation_target **targets_out,
                              size_t *n_out);

/* floor_decide() for secret at version (seen: the floor before the fetch)
 * and, if deliverable, the floor raised and the LIVE or RESERVED instances
 * whose volume delivers secret collected (*targets_out malloc()ed, maybe
 * none).  Reservations that have not decided yet are left out: their
 * decide will see the raised floor and fetch again. */
int registry_rotation_begin(struct registry *r, const char *secret, uint64_t version, uint64_t seen,
                            struct rotation_target **targets_out, size_t *n_out, sd_error *err);

/* Hold a record busy for I/O on it (waits while someone else holds it).
 * NULL if there is no LIVE record of that id any more. */
struct mount_record *registry_acquire(struct registry *r, const char *id);
void registry_release(struct registry *r, struct mount_record *m);

/* While holding m: the version of secret it has (0: not delivered), its
 * volume's spec copied to *spec (false: the volume is gone). */
uint64_t record_version_of(const struct mount_record *m, const char *secret);
bool registry_volume_spec(struct registry *r, const char *volume, struct volume_spec *spec);

/* While holding m: set its generation and the version of secret (0:
 * removed from the instance), in memory. */
int registry_record_rotated(struct registry *r, struct mount_record *m, uint64_t generation, const char *secret,
                            uint64_t version, sd_error *err);
/* While holding m: write its record file (a rotation saves after every
 * instance has its new files: they are what a container waits for). */
int registry_record_save(struct registry *r, struct mount_record *m, sd_error *err);
