/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's volume registry and the plugin endpoints behind the HTTP
 * server (plugin.c).  Layout of the state directory (default /run/secretd,
 * mode 0700):
 *
 *   volumes/<name>.json     volume definitions: name, creation time,
 *                           canonical options (secret names, never values)
 *   mounts/<id>.json        one live tmpfs instance: volume, reference
 *                           count, generation, delivered versions
 *   delivered.json          per secret, the highest version ever delivered
 *                           on this host (rollback floor), unless the
 *                           floor-file key puts it elsewhere (by default
 *                           /var/lib/secretd/delivered.json: it must
 *                           survive a reboot, and /run does not)
 *   instances/<id>/{rw,ro}  the tmpfs instances (include/secretd/tmpfs.h)
 *
 * Locking: MHD runs handlers on several threads.  ops_lock serialises the
 * operations that touch the store, tmpfs or state files (Create, Mount,
 * Unmount, Remove); reg_lock guards the in-memory registry and is held only
 * briefly, so Get/List/Path never wait behind a slow store.  A writer of the
 * registry holds both (ops_lock first).
 */

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "admin.h"
#include "request.h"
#include "secretd/docker.h"
#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/store.h"
#include "secretd/realm.h"

struct volume {
        char name[SD_NAME_MAX + 1];
        struct volume_spec spec;
        int64_t created_at;               /* unix seconds */
};

struct delivered_version {
        char name[SD_NAME_MAX + 1];
        uint64_t version;
};

struct mount_record {
        char id[MOUNT_ID_MAX + 1];
        char volume[SD_NAME_MAX + 1];
        unsigned refcount;                /* 0: wipe failed, instance is dead */
        uint64_t generation;
        size_t n_versions;
        struct delivered_version versions[VOLUME_SECRETS_MAX];
        char *mountpoint;                 /* the read-only path given to dockerd */
        int64_t mounted_at;               /* unix seconds of the Mount that made it */
        /* The container holding it, learnt from the events stream or the
         * reconcile (events.c); "" until linked.  Persisted, so a restarted
         * agent still knows whom to signal and when to wipe. */
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char container_name[SD_DOCKER_NAME_MAX + 1];
        /* Label secretd.reload-signal of that container: 0 absent, > 0 the
         * signal number, -EINVAL present but not a signal. */
        int reload_signal;
};

/* Resource caps (config keys max-volumes, ...).  A Create or Mount that
 * would pass one is refused with a message naming the key; 0 = no cap. */
struct agent_caps {
        uint64_t max_volumes;
        uint64_t max_instances_per_volume;
        uint64_t max_inodes;              /* nr_inodes of one instance */
        uint64_t max_total_tmpfs;         /* bytes: size caps of all live instances */
};

struct agent {
        /* Set by the caller before agent_state_open(); not owned. */
        const char *state_dir;
        struct sd_store *store;           /* NULL: Create and Mount fail */
        struct sd_realm *realm;           /* the pinned realm envelopes are verified against */
        const struct sd_box_keypair *keys; /* box key pairs envelopes are opened with */
        size_t n_keys;
        const char *pubkey_line;          /* "sda1:...", for messages */
        struct volume_limits limits;
        struct agent_caps caps;
        const char *floor_file;           /* rollback floor; NULL: <state_dir>/delivered.json */
        const char *docker_socket;        /* for the user namespace query (userns.c) */
        unsigned connection_timeout;      /* plugin connections, seconds; 0: 150 */

        /* Owned. */
        char *instances_dir;
        int state_fd, volumes_fd, mounts_fd;
        int floor_fd;                     /* directory of the floor file */
        const char *floor_name;           /* its last component */
        pthread_mutex_t ops_lock, reg_lock;
        struct volume **volumes;
        size_t n_volumes;
        struct mount_record **mounts;
        size_t n_mounts;
        json_t *delivered;                /* secret name -> highest version */
        /* Instances agent_mount_wipe() removed lately (ring, under
         * ops_lock): their late Unmount is expected, not a warning. */
        char recently_wiped[8][MOUNT_ID_MAX + 1];
        unsigned recently_wiped_next;

        /* Admin socket and audit (admin.h, audit.h). */
        struct audit *audit;              /* NULL: audit log disabled; not owned */
        struct agent_status status;
};

/* Zero the agent and set up its locks; then fill the caller's fields. */
void agent_init(struct agent *a);
void agent_done(struct agent *a);

/* Create the state directory (0700) and its subdirectories, load volume
 * definitions and mount records, adopt instances that are still mounted
 * and destroy the rest.  Each adoption and removal is logged. */
int agent_state_open(struct agent *a, sd_error *err);

/* Plugin endpoints.  Each returns the JSON reply object (with "Err" on
 * failure), or NULL on out of memory. */
json_t *agent_volume_create(struct agent *a, const struct plugin_create_request *req);
json_t *agent_volume_remove(struct agent *a, const struct plugin_name_request *req);
json_t *agent_volume_mount(struct agent *a, const struct plugin_mount_request *req);
json_t *agent_volume_unmount(struct agent *a, const struct plugin_mount_request *req);
json_t *agent_volume_get(struct agent *a, const struct plugin_name_request *req);
json_t *agent_volume_path(struct agent *a, const struct plugin_name_request *req);
json_t *agent_volume_list(struct agent *a);

/* Link the live instance `id` to a container (events.c) and persist it.
 * 1 if the record changed, 0 if it already said so, -ENOENT if the
 * instance is gone. */
int agent_mount_link(struct agent *a, const char *id, const char *container_id, const char *container_name,
                     int reload_signal, sd_error *err);

/* Wipe instance `id` and drop its record without an Unmount (its container
 * is gone), but only if it is still linked to expect_container ("" for
 * unlinked) with expect_refcount references: the caller decided from a
 * snapshot and a Mount in between makes it live again (-EBUSY).  0 wiped
 * (logged at info with `why`), -ENOENT no such record, else the tmpfs
 * error (logged; the record stays with no references). */
int agent_mount_wipe(struct agent *a, const char *id, const char *expect_container, unsigned expect_refcount,
                     const char *why);

/* {"Err": message}, for handlers and the HTTP layer. */
json_t *plugin_error_reply(const char *message);

/* For rotate.c, with ops_lock held: persist a mount record; the rollback
 * floor of one secret; raise the floor of spec's secrets to versions[]
 * (never lowers it). */
int mount_record_save(struct agent *a, const struct mount_record *m, sd_error *err);
uint64_t delivered_floor(struct agent *a, const char *secret);
int delivered_raise(struct agent *a, const struct volume_spec *spec, const uint64_t versions[], sd_error *err);

/* ---- HTTP server (plugin.c) ---- */

struct plugin_server;

/* Create plugin_dir (0755) if missing, remove a stale socket at
 * <plugin_dir>/<driver>.sock (only a socket nobody listens on), bind it,
 * chmod 0600 and listen.  Returns the listening fd; *path_out is
 * malloc()ed. */
int plugin_socket_listen(const char *plugin_dir, const char *driver, char **path_out, sd_error *err);

/* Bind a unix socket at path (its directory must exist), mode 0600 from
 * the start, and listen; a stale socket nobody answers on is replaced, a
 * live one or a non-socket is an error.  Returns the listening fd.  Shared
 * by the plugin and admin sockets. */
int agent_socket_listen(const char *path, sd_error *err);

/* The uid of the peer of an MHD connection on a unix socket
 * (SO_PEERCRED). */
struct MHD_Connection;
int agent_peer_uid(struct MHD_Connection *c, uid_t *uid_out);

/* Unlink socket_path (first: a socket nobody answers stalls its clients),
 * stop mhd, free socket_path.  Shared by the plugin and admin servers. */
struct MHD_Daemon;
void agent_socket_server_stop(struct MHD_Daemon *mhd, char *socket_path);

/* Serve the plugin protocol on listen_fd (taken over, closed by stop).
 * socket_path is unlinked by plugin_server_stop(). */
int plugin_server_start(struct agent *a, int listen_fd, const char *socket_path,
                        struct plugin_server **out, sd_error *err);
void plugin_server_stop(struct plugin_server *s);

/* Route one request: path such as "/VolumeDriver.Mount", the body, and the
 * HTTP status to answer with.  Returns the reply object (never NULL unless
 * out of memory). */
json_t *plugin_dispatch(struct agent *a, const char *path, const char *body, size_t len,
                        unsigned *status);
