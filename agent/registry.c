/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The volume registry (registry.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "fileio.h"
#include "log.h"
#include "registry.h"
#include "secretd/cleanup.h"
#include "secretd/names.h"
#include "sorted.h"

#define STATE_FILE_MAX ((size_t) 256 << 10)
#define RECENTLY_WIPED 8

struct registry {
        const char *state_dir;
        struct notes *notes;
        struct volume_limits limits;
        struct registry_caps caps;
        struct instances own_instances;   /* when the config gave none */
        const struct instances *instances;
        char *instances_dir;
        int state_fd, volumes_fd, mounts_fd;

        pthread_mutex_t volumes_lock;     /* outermost: one Create or Remove at a time */
        pthread_mutex_t floor_lock;       /* outer: floor decisions and writes */
        struct floor floor;

        pthread_mutex_t lock;             /* inner: the sets below */
        pthread_cond_t idle;              /* a record stopped being busy */
        struct volume **volumes;
        size_t n_volumes;
        struct mount_record **records;
        size_t n_records;
        /* Instances registry_wipe() removed lately (ring): their late
         * Unmount is expected, not a warning. */
        char recently_wiped[RECENTLY_WIPED][MOUNT_ID_MAX + 1];
        unsigned recently_wiped_next;
};

/* ---- small helpers ---- */

static int array_append(void ***array, size_t *n, void *item) {
        void **bigger = reallocarray(*array, *n + 1, sizeof(**array));
        if (!bigger)
                return -ENOMEM;
        bigger[(*n)++] = item;
        *array = bigger;
        return 0;
}

static void array_remove(void **array, size_t *n, const void *item) {
        for (size_t i = 0; i < *n; i++)
                if (array[i] == item) {
                        memmove(&array[i], &array[i + 1], (*n - i - 1) * sizeof(*array));
                        (*n)--;
                        return;
                }
}

static void record_versions_clear(struct mount_record *m) {
        for (size_t i = 0; i < m->n_versions; i++)
                free(m->versions[i].name);
        free(m->versions);
        m->versions = NULL;
        m->n_versions = 0;
}

static void record_free(struct mount_record *m) {
        if (!m)
                return;
        record_versions_clear(m);
        free(m->mountpoint);
        free(m->container_name);
        free(m);
}
static void record_freep(struct mount_record **m) {
        record_free(*m);
}
#define _cleanup_record_ _cleanup_(record_freep)

uint64_t record_version_of(const struct mount_record *m, const char *secret) {
        for (size_t i = 0; i < m->n_versions; i++)
                if (strcmp(m->versions[i].name, secret) == 0)
                        return m->versions[i].version;
        return 0;
}

/* Set (version > 0) or drop (0) the version of secret. */
static int record_set_version(struct mount_record *m, const char *secret, uint64_t version) {
        for (size_t i = 0; i < m->n_versions; i++)
                if (strcmp(m->versions[i].name, secret) == 0) {
                        if (version > 0) {
                                m->versions[i].version = version;
                                return 0;
                        }
                        free(m->versions[i].name);
                        m->versions[i] = m->versions[--m->n_versions];
                        return 0;
                }
        if (version == 0)
                return 0;
        char *name = strdup(secret);
        struct record_version *bigger = name ? reallocarray(m->versions, m->n_versions + 1, sizeof(*bigger)) : NULL;
        if (!bigger) {
                free(name);
                return -ENOMEM;
        }
        m->versions = bigger;
        m->versions[m->n_versions++] = (struct record_version) { .version = version, .name = name };
        return 0;
}

static struct note_instance note_of(const struct mount_record *m) {
        return (struct note_instance) {
                .id = m->id, .volume = m->volume, .container_id = m->container_id, .container_name = m->container_name,
        };
}

/* Lookups: lock held. */
static struct volume *volume_find(struct registry *r, const char *name) {
        for (size_t i = 0; i < r->n_volumes; i++)
                if (strcmp(r->volumes[i]->name, name) == 0)
                        return r->volumes[i];
        return NULL;
}

/* The records are sorted by id: a rotation looks up each of its (maybe
 * thousands of) targets. */
static const char *record_key(const void *item) {
        return ((const struct mount_record *) item)->id;
}

static struct mount_record *record_find(struct registry *r, const char *id) {
        bool found;
        size_t i = sorted_index((void *const *) r->records, r->n_records, id, record_key, &found);
        return found ? r->records[i] : NULL;
}

/* Lock held; id not in the set yet. */
static int record_insert(struct registry *r, struct mount_record *m) {
        bool found;
        size_t i = sorted_index((void *const *) r->records, r->n_records, m->id, record_key, &found);
        return sorted_insert((void ***) &r->records, &r->n_records, i, m);
}

/* Instances of a volume that hold or are about to hold a tmpfs. */
static size_t volume_instances(struct registry *r, const char *name) {
        size_t n = 0;
        for (size_t i = 0; i < r->n_records; i++)
                if (r->records[i]->state != RECORD_DEAD && strcmp(r->records[i]->volume, name) == 0)
                        n++;
        return n;
}

/* What the instances may take from host memory: the size cap of each.  A
 * record whose wipe failed still holds its tmpfs, so it counts too; an
 * instance of a volume no longer defined counts as max-size. */
static uint64_t instances_tmpfs_total(struct registry *r) {
        uint64_t total = 0;
        for (size_t i = 0; i < r->n_records; i++) {
                const struct volume *v = volume_find(r, r->records[i]->volume);
                total += v ? v->spec.size : r->limits.max_size;
        }
        return total;
}

static bool spec_delivers(const struct volume_spec *spec, const char *secret) {
        for (size_t i = 0; i < spec->n_secrets; i++)
                if (strcmp(spec->secrets[i].name, secret) == 0)
                        return true;
        return false;
}

/* ---- resource caps ----
 * A container cannot write to its read-only tmpfs, so host memory and
 * inodes are only spent by the agent on its behalf: per volume, per
 * instance and in total.  Each refusal names the config key to raise.
 * Lock held.  instance: a new tmpfs is about to be made (Mount), else a
 * new definition (Create). */
static int caps_check(struct registry *r, const char *volume, const struct volume_spec *spec, bool instance,
                      sd_error *err) {
        const struct registry_caps *c = &r->caps;
        uint64_t inodes = delivery_nr_inodes(spec);
        if (c->max_inodes && inodes > c->max_inodes)
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': its %zu file(s) need a tmpfs of %" PRIu64 " inodes, "
                                    "more than the %" PRIu64 " allowed by max-inodes",
                                    volume, spec->n_secrets, inodes, c->max_inodes);
        if (!instance) {
                if (c->max_volumes && r->n_volumes >= c->max_volumes)
                        return sd_error_set(err, EDQUOT, "volume '%s': %zu volumes exist, the limit set by max-volumes",
                                            volume, r->n_volumes);
                return 0;
        }
        size_t n = volume_instances(r, volume);
        if (c->max_instances_per_volume && n >= c->max_instances_per_volume)
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': %zu instances (one per container) are mounted, the limit set by "
                                    "max-instances-per-volume",
                                    volume, n);
        uint64_t total = instances_tmpfs_total(r);
        if (c->max_total_tmpfs && (total > c->max_total_tmpfs || spec->size > c->max_total_tmpfs - total))
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': a new tmpfs of %" PRIu64 " bytes would bring the live instances to %" PRIu64
                                    " bytes, over the %" PRIu64 " set by max-total-tmpfs",
                                    volume, spec->size, total + spec->size, c->max_total_tmpfs);
        return 0;
}

/* ---- persistence ---- */

static int write_json_at(int dirfd, const char *file, const json_t *obj, int flags, sd_error *err) {
        _cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return sd_error_set(err, ENOMEM, "%s: out of memory", file);
        return sd_write_file_at(dirfd, file, text, strlen(text), 0600, SD_WRITE_REPLACE | flags, err);
}

static int read_json_at(int dirfd, const char *file, json_t **out, sd_error *err) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = sd_read_file_at(dirfd, file, STATE_FILE_MAX, &text, &len, err);
        if (r < 0)
                return r;
        json_error_t jerr;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_object(root)) {
                json_decref(root);
                return sd_error_set(err, EBADMSG, "%s: not a JSON object", file);
        }
        *out = root;
        return 0;
}

static int volume_save(struct registry *r, const struct volume *v, sd_error *err) {
        json_t *opts = volume_spec_to_json(&v->spec);
        _cleanup_json_ json_t *obj =
                opts ? json_pack("{s:s,s:I,s:o}", "Name", v->name, "CreatedAt", (json_int_t) v->created_at, "Opts", opts)
                     : NULL;
        if (!obj)
                return sd_error_set(err, ENOMEM, "out of memory");
        char file[SD_NAME_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", v->name);
        /* Definitions must survive a reboot when state-dir is on a disk:
         * fsync'd. */
        int q = write_json_at(r->volumes_fd, file, obj, 0, err);
        if (q < 0)
                return sd_error_prefix(err, q, "cannot save volume '%s' in %s/volumes", v->name, r->state_dir);
        return 0;
}

static int record_save(struct registry *r, const struct mount_record *m, sd_error *err) {
        _cleanup_json_ json_t *versions = json_object();
        if (!versions)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < m->n_versions; i++)
                if (json_object_set_new(versions, m->versions[i].name,
                                        json_integer((json_int_t) m->versions[i].version)) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        unsigned refcount = m->state == RECORD_DEAD ? 0 : m->refcount;
        _cleanup_json_ json_t *obj = json_pack("{s:s,s:s,s:I,s:I,s:O,s:I}", "ID", m->id, "Volume", m->volume,
                                               "Refcount", (json_int_t) refcount, "Generation",
                                               (json_int_t) m->generation, "Versions", versions, "MountedAt",
                                               (json_int_t) m->mounted_at);
        if (!obj)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (m->container_id[0] &&
            json_object_update_new(obj, json_pack("{s:s,s:s,s:i}", "ContainerID", m->container_id,
                                                  "ContainerName", m->container_name ? m->container_name : "",
                                                  "ReloadSignal", m->reload_signal)) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        char file[MOUNT_ID_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", m->id);
        /* No fsync: a record only matters while its tmpfs is mounted, and
         * no mount outlives the power loss an fsync would guard against
         * (an agent crash leaves the page cache intact). */
        int q = write_json_at(r->mounts_fd, file, obj, SD_WRITE_NO_SYNC, err);
        if (q < 0)
                return sd_error_prefix(err, q, "cannot save mount record in %s/mounts", r->state_dir);
        return 0;
}

static void record_unlink(struct registry *r, const char *id) {
        char file[MOUNT_ID_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", id);
        if (unlinkat(r->mounts_fd, file, 0) < 0 && errno != ENOENT)
                log_warn("cannot remove mount record %s/mounts/%s: %s", r->state_dir, file, strerror(errno));
}

static void instance_destroy_logged(struct registry *r, const char *id, const char *why) {
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(id, sid);
        int q = instances_destroy(r->instances, id, &err);
        if (q < 0 && q != -ENOENT)
                log_error("instance %s (%s): cannot destroy: %s", sid, why, err.message);
        else if (q == 0)
                log_info("instance %s destroyed (%s)", sid, why);
}

/* ---- busy marks ---- */

/* Lock held: the record of id once nobody holds it busy (NULL: none).
 * Looked up again after each wait: its holder may have freed it. */
static struct mount_record *record_find_idle(struct registry *r, const char *id) {
        for (;;) {
                struct mount_record *m = record_find(r, id);
                if (!m || !m->busy)
                        return m;
                (void) pthread_cond_wait(&r->idle, &r->lock);
        }
}

struct mount_record *registry_acquire(struct registry *r, const char *id) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        struct mount_record *m = record_find_idle(r, id);
        if (!m || m->state != RECORD_LIVE)
                return NULL;
        m->busy = true;
        return m;
}

void registry_release(struct registry *r, struct mount_record *m) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        m->busy = false;
        (void) pthread_cond_broadcast(&r->idle);
}

/* Drop a busy record from the set and free it. */
static void record_drop(struct registry *r, struct mount_record *m) {
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                array_remove((void **) r->records, &r->n_records, m);
                (void) pthread_cond_broadcast(&r->idle);
        }
        record_free(m);
}

/* ---- the one wipe ---- */

/* Wipe busy record m: zero and destroy its tmpfs, then forget it.  Every
 * wipe (Unmount, the events thread) comes here, so each is logged,
 * counted and audited once.  On a tmpfs error the record stays DEAD (no
 * references) so a restart or the next Mount of the id finishes it. */
static int instance_wipe(struct registry *r, struct mount_record *m, const char *why, bool remember,
                         sd_error *err) {
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(m->id, sid);
        int q = instances_destroy(r->instances, m->id, err);
        if (q < 0 && q != -ENOENT) {
                {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                        m->state = RECORD_DEAD;
                        m->refcount = 0;
                }
                sd_error tmp = { 0 };
                if (record_save(r, m, &tmp) < 0)
                        log_error("instance %s: %s", sid, tmp.message);
                metrics_error(ERROR_TMPFS);
                registry_release(r, m);
                return q;
        }
        record_unlink(r, m->id);
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                if (remember)
                        memcpy(r->recently_wiped[r->recently_wiped_next++ % RECENTLY_WIPED], m->id, sizeof(m->id));
        }
        const struct note_instance in = note_of(m);
        note_wipe(r->notes, &in, why);
        record_drop(r, m);
        return 0;
}

int registry_unmount(struct registry *r, const char *volume, const char *id, sd_error *err) {
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(id, sid);
        struct mount_record *m = NULL;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                m = record_find_idle(r, id);
                if (!m) {
                        bool wiped_lately = false;
                        for (size_t i = 0; i < RECENTLY_WIPED; i++)
                                wiped_lately = wiped_lately || strcmp(r->recently_wiped[i], id) == 0;
                        if (wiped_lately) {
                                log_info("unmount %s of volume '%s': already wiped when its container went", sid,
                                         volume);
                                return 0;
                        }
                        /* dockerd keeps retrying an Unmount that fails; an
                         * unknown id has nothing left to wipe. */
                        log_warn("unmount %s of volume '%s': no such mount; nothing to do", sid, volume);
                        return 0;
                }
                m->busy = true;
        }
        if (strcmp(m->volume, volume) != 0)
                log_warn("unmount %s: asked for volume '%s' but the mount belongs to '%s'", sid, volume, m->volume);
        if (m->state == RECORD_LIVE && m->refcount > 1) {
                unsigned left;
                {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                        left = --m->refcount;
                }
                sd_error sub = { 0 };
                if (record_save(r, m, &sub) < 0)
                        log_error("unmount %s: %s", sid, sub.message);
                log_info("unmount %s of volume '%s': %u reference(s) left", sid, m->volume, left);
                registry_release(r, m);
                return 0;
        }
        char volume_name[SD_NAME_MAX + 1];
        memcpy(volume_name, m->volume, sizeof(volume_name));
        int q = instance_wipe(r, m, "unmount", false, err);
        if (q < 0) {
                sd_error_prefix(err, q, "volume '%s': cannot wipe its tmpfs", volume_name);
                log_error("unmount %s: %s", sid, err->message);
                return q;
        }
        log_info("unmount %s of volume '%s': tmpfs wiped", sid, volume_name);
        return 0;
}

int registry_wipe(struct registry *r, const char *id, const char *expect_container, unsigned expect_refcount,
                  const char *why) {
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(id, sid);
        struct mount_record *m;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                m = record_find_idle(r, id);
                if (!m)
                        return -ENOENT;
                /* The caller decided from a snapshot taken without the
                 * lock; a Mount since then (docker cp, a restart reusing
                 * the id) makes the instance live again. */
                unsigned refcount = m->state == RECORD_DEAD ? 0 : m->refcount;
                if (m->state == RECORD_RESERVED || strcmp(m->container_id, expect_container) != 0 ||
                    refcount != expect_refcount)
                        return -EBUSY;
                m->busy = true;
        }
        char volume[SD_NAME_MAX + 1];
        memcpy(volume, m->volume, sizeof(volume));
        sd_error err = { 0 };
        int q = instance_wipe(r, m, why, true, &err);
        if (q < 0) {
                log_error("instance %s of volume '%s' (%s): cannot wipe: %s", sid, volume, why, err.message);
                return q;
        }
        log_info("wiped instance %s of volume '%s': %s", sid, volume, why);
        return 0;
}

/* ---- volumes ---- */

static int volume_check_locked(struct registry *r, const char *name, const struct volume_spec *spec,
                               sd_error *err) {
        struct volume *existing = volume_find(r, name);
        if (existing) {
                if (volume_spec_equal(&existing->spec, spec))
                        return 1;
                return sd_error_set(err, EEXIST, "volume '%s' already exists with different options", name);
        }
        return caps_check(r, name, spec, false, err);
}

int registry_volume_check(struct registry *r, const char *name, const struct volume_spec *spec, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        return volume_check_locked(r, name, spec, err);
}

int registry_volume_add(struct registry *r, const char *name, const struct volume_spec *spec, sd_error *err) {
        _cleanup_free_ struct volume *v = calloc(1, sizeof(*v));
        if (!v)
                return sd_error_set(err, ENOMEM, "out of memory");
        (void) snprintf(v->name, sizeof(v->name), "%s", name);
        v->spec = *spec;
        v->created_at = (int64_t) time(NULL);
        /* One Create or Remove at a time, so the definition file can be
         * written (with fsync) without the registry lock. */
        _cleanup_unlock_ pthread_mutex_t *serial = sd_lock(&r->volumes_lock);
        int q = registry_volume_check(r, name, spec, err);
        if (q != 0)
                return q;
        q = volume_save(r, v, err);
        if (q < 0)
                return q;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        if (array_append((void ***) &r->volumes, &r->n_volumes, v) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        v = NULL;
        return 0;
}

int registry_volume_remove(struct registry *r, const char *name, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *serial = sd_lock(&r->volumes_lock);
        /* The unlink is under the registry lock too: a Mount must not
         * reserve an instance of a volume that is going away. */
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        struct volume *v = volume_find(r, name);
        if (!v)
                return 1;
        size_t n = volume_instances(r, name);
        if (n > 0)
                return sd_error_set(err, EBUSY, "volume '%s' is still mounted by %zu container(s)", name, n);
        char file[SD_NAME_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", v->name);
        if (unlinkat(r->volumes_fd, file, 0) < 0 && errno != ENOENT)
                return sd_error_set_errno(err, errno, "volume '%s': cannot remove %s/volumes/%s", v->name,
                                          r->state_dir, file);
        array_remove((void **) r->volumes, &r->n_volumes, v);
        free(v);
        return 0;
}

bool registry_volume_spec(struct registry *r, const char *volume, struct volume_spec *spec) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        const struct volume *v = volume_find(r, volume);
        if (v)
                *spec = v->spec;
        return v != NULL;
}

void registry_visit(struct registry *r, registry_visit_fn fn, void *userdata) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        fn(userdata, (const struct volume *const *) r->volumes, r->n_volumes,
           (const struct mount_record *const *) r->records, r->n_records);
}

/* The ids of the records holding a tmpfs, copied under the lock so their
 * tmpfs can be asked outside it (no lock across I/O). */
typedef char record_id[MOUNT_ID_MAX + 1];

static int gauges_counts(struct registry *r, struct registry_gauges *out, record_id **ids_out, size_t *n_out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        *out = (struct registry_gauges) { .volumes = r->n_volumes, .tmpfs_size_bytes = instances_tmpfs_total(r) };
        _cleanup_free_ record_id *ids = r->n_records ? calloc(r->n_records, sizeof(*ids)) : NULL;
        if (r->n_records && !ids)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < r->n_records; i++) {
                const struct mount_record *m = r->records[i];
                if (m->state == RECORD_LIVE)
                        out->instances++;
                else if (m->state == RECORD_DEAD)
                        out->dead_instances++;
                else
                        continue;
                memcpy(ids[n++], m->id, sizeof(ids[0]));
        }
        *ids_out = steal_pointer(&ids);
        *n_out = n;
        return 0;
}

int registry_gauges_get(struct registry *r, struct registry_gauges *out) {
        _cleanup_free_ record_id *ids = NULL;
        size_t n = 0;
        int q = gauges_counts(r, out, &ids, &n);
        if (q < 0)
                return q;
        /* An instance wiped meanwhile (-ENOENT, -ENOTCONN) holds nothing. */
        for (size_t i = 0; i < n; i++) {
                uint64_t bytes = 0;
                if (instances_used_bytes(r->instances, ids[i], &bytes) == 0)
                        out->tmpfs_used_bytes += bytes;
        }
        return 0;
}

bool registry_delivers(struct registry *r, const char *secret) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        for (size_t i = 0; i < r->n_records; i++) {
                const struct volume *v = volume_find(r, r->records[i]->volume);
                if (r->records[i]->state != RECORD_DEAD && v && spec_delivers(&v->spec, secret))
                        return true;
        }
        return false;
}

/* ---- Mount ---- */

static struct mount_record *record_new(const char *id, const char *volume) {
        struct mount_record *m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        (void) snprintf(m->id, sizeof(m->id), "%s", id);
        (void) snprintf(m->volume, sizeof(m->volume), "%s", volume);
        return m;
}

int registry_mount_reserve(struct registry *r, const char *volume, const char *id, struct mount_reservation *res,
                           char **mountpoint_out, sd_error *err) {
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(id, sid);
        *res = (struct mount_reservation) { 0 };
        _cleanup_free_ struct volume_spec *spec = malloc(sizeof(*spec));
        if (!spec)
                return sd_error_set(err, ENOMEM, "out of memory");

        struct mount_record *m;
        bool was_dead = false;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                /* A Mount of this id in flight (dockerd retried), or a
                 * rotation writing it: its outcome decides. */
                m = record_find_idle(r, id);
                const struct volume *v = volume_find(r, volume);
                if (!v)
                        return sd_error_set(err, ENOENT, "no such volume '%s'", volume);
                if (m && m->state == RECORD_LIVE) {
                        if (strcmp(m->volume, volume) != 0)
                                return sd_error_set(err, EEXIST, "mount id %s is already in use by volume '%s'", sid,
                                                    m->volume);
                        /* `docker cp` mounts again with the ID of the
                         * running container's mount: share the instance,
                         * count references. */
                        m->busy = true;
                        m->refcount++;
                } else {
                        if (m) {
                                /* A record whose wipe failed earlier: finish
                                 * it, then start over. */
                                m->busy = true;
                                was_dead = true;
                        } else {
                                int q = caps_check(r, volume, &v->spec, true, err);
                                if (q < 0)
                                        return q;
                                m = record_new(id, volume);
                                if (!m || record_insert(r, m) < 0) {
                                        free(m);
                                        return sd_error_set(err, ENOMEM, "out of memory");
                                }
                                m->state = RECORD_RESERVED;
                                m->busy = true;
                        }
                        *spec = v->spec;
                }
        }

        if (m->state == RECORD_LIVE) {
                int q = record_save(r, m, err);
                if (q < 0) {
                        {
                                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                                m->refcount--;
                        }
                        registry_release(r, m);
                        return q;
                }
                char *mountpoint = strdup(m->mountpoint);
                unsigned refs = m->refcount;
                registry_release(r, m);
                if (!mountpoint)
                        return sd_error_set(err, ENOMEM, "out of memory");
                log_info("mount %s of volume '%s': instance reused (%u references)", sid, volume, refs);
                *mountpoint_out = mountpoint;
                return 1;
        }
        if (was_dead) {
                instance_destroy_logged(r, id, "left over from a failed unmount");
                record_unlink(r, id);
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                /* Out of the set while the caps are counted, as a new
                 * instance would be; nobody else can see it meanwhile. */
                array_remove((void **) r->records, &r->n_records, m);
                int q = caps_check(r, volume, spec, true, err);
                if (q < 0 || record_insert(r, m) < 0) {
                        (void) pthread_cond_broadcast(&r->idle);
                        record_free(m);
                        return q < 0 ? q : sd_error_set(err, ENOMEM, "out of memory");
                }
                record_versions_clear(m);
                free(m->container_name);
                m->container_name = NULL;
                m->container_id[0] = '\0';
                m->reload_signal = 0;
                m->generation = 0;
                m->refcount = 0;
                m->state = RECORD_RESERVED;
        }
        res->record = m;
        res->spec = steal_pointer(&spec);
        return 0;
}

bool registry_find_source(struct registry *r, const char *secret, uint64_t version, const char *except_id,
                          struct instance_source *out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        for (size_t i = 0; i < r->n_records; i++) {
                const struct mount_record *m = r->records[i];
                /* One busy with a rotation is about to change. */
                if (m->state != RECORD_LIVE || m->busy || strcmp(m->id, except_id) == 0 ||
                    record_version_of(m, secret) != version)
                        continue;
                const struct volume *v = volume_find(r, m->volume);
                for (size_t j = 0; v && j < v->spec.n_secrets; j++)
                        if (strcmp(v->spec.secrets[j].name, secret) == 0) {
                                memcpy(out->id, m->id, sizeof(out->id));
                                memcpy(out->file, v->spec.secrets[j].file, sizeof(out->file));
                                out->generation = m->generation;
                                return true;
                        }
        }
        return false;
}

uint64_t registry_floor(struct registry *r, const char *secret) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->floor_lock);
        return floor_get(&r->floor, secret);
}

int registry_floor_decide(struct registry *r, const char *secret, uint64_t version, uint64_t seen, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->floor_lock);
        return floor_decide(&r->floor, secret, version, seen, err);
}

int registry_mount_decide(struct registry *r, struct mount_reservation *res, const uint64_t versions[],
                          const uint64_t seen[], size_t *stale_out, sd_error *err) {
        const struct volume_spec *spec = res->spec;
        const char *names[VOLUME_SECRETS_MAX];
        _cleanup_unlock_ pthread_mutex_t *floor_held = sd_lock(&r->floor_lock);
        for (size_t i = 0; i < spec->n_secrets; i++) {
                names[i] = spec->secrets[i].name;
                int q = floor_decide(&r->floor, names[i], versions[i], seen[i], err);
                if (q < 0) {
                        if (stale_out)
                                *stale_out = i;
                        return q;
                }
        }
        /* Raised before anything becomes visible: every version here
         * verified, so a later failure leaves it harmlessly high. */
        int q = floor_raise(&r->floor, names, versions, spec->n_secrets, err);
        if (q < 0)
                return q;
        /* From here on a rotation of one of these secrets includes this
         * instance (it waits for the Mount to finish writing it). */
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        struct mount_record *m = res->record;
        record_versions_clear(m);
        for (size_t i = 0; i < spec->n_secrets; i++)
                if (record_set_version(m, names[i], versions[i]) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int registry_mount_finish(struct registry *r, struct mount_reservation *res, char *mountpoint, sd_error *err) {
        struct mount_record *m = res->record;
        _cleanup_free_ char *owned = mountpoint;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                free(m->mountpoint);
                m->mountpoint = steal_pointer(&owned);
                m->generation = 1;
                m->refcount = 1;
                m->mounted_at = (int64_t) time(NULL);
        }
        int q = record_save(r, m, err);
        if (q < 0)
                return q;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                m->state = RECORD_LIVE;
                m->busy = false;
                (void) pthread_cond_broadcast(&r->idle);
        }
        res->record = NULL;
        return 0;
}

void registry_mount_abandon(struct registry *r, struct mount_reservation *res, const char *why) {
        struct mount_record *m = res->record;
        if (!m)
                return;
        res->record = NULL;
        if (res->instance_made)
                instance_destroy_logged(r, m->id, why);
        record_drop(r, m);
}

/* ---- events ---- */

void record_views_clear(struct record_views *v) {
        for (size_t i = 0; i < v->n; i++)
                free(v->items[i].mountpoint);
        free(v->items);
        *v = (struct record_views) { 0 };
}

int registry_views(struct registry *r, struct record_views *out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        struct record_views v = { 0 };
        if (r->n_records > 0) {
                v.items = calloc(r->n_records, sizeof(*v.items));
                if (!v.items)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < r->n_records; i++) {
                const struct mount_record *m = r->records[i];
                if (m->state == RECORD_RESERVED)
                        continue;
                struct record_view *rv = &v.items[v.n];
                memcpy(rv->id, m->id, sizeof(rv->id));
                memcpy(rv->volume, m->volume, sizeof(rv->volume));
                rv->refcount = m->state == RECORD_DEAD ? 0 : m->refcount;
                rv->mounted_at = m->mounted_at;
                memcpy(rv->container_id, m->container_id, sizeof(rv->container_id));
                (void) snprintf(rv->container_name, sizeof(rv->container_name), "%s",
                                m->container_name ? m->container_name : "");
                rv->mountpoint = strdup(m->mountpoint ? m->mountpoint : "");
                if (!rv->mountpoint) {
                        record_views_clear(&v);
                        return -ENOMEM;
                }
                v.n++;
        }
        *out = v;
        return 0;
}

int registry_link(struct registry *r, const char *id, const char *container_id, const char *container_name,
                  int reload_signal, sd_error *err) {
        char sid[SD_SHORT_ID_CHARS + 1];
        (void) sd_short_id(id, sid);
        struct mount_record *m = registry_acquire(r, id);
        if (!m)
                return sd_error_set(err, ENOENT, "instance %s: no such live mount", sid);
        if (strcmp(m->container_id, container_id) == 0 && m->container_name &&
            strcmp(m->container_name, container_name) == 0 && m->reload_signal == reload_signal) {
                registry_release(r, m);
                return 0;
        }
        char *name = strdup(container_name);
        if (!name) {
                registry_release(r, m);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        char old_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char *old_name;
        int old_signal;
        bool relinked = m->container_id[0] && strcmp(m->container_id, container_id) != 0;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                memcpy(old_id, m->container_id, sizeof(old_id));
                old_name = m->container_name;
                old_signal = m->reload_signal;
                (void) snprintf(m->container_id, sizeof(m->container_id), "%s", container_id);
                m->container_name = name;
                m->reload_signal = reload_signal;
        }
        int q = record_save(r, m, err);
        if (q < 0) {
                {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                        memcpy(m->container_id, old_id, sizeof(old_id));
                        m->container_name = old_name;
                        m->reload_signal = old_signal;
                }
                free(name);
                registry_release(r, m);
                return q;
        }
        free(old_name);
        char scid[SD_SHORT_ID_CHARS + 1];
        log_info("instance %s of volume '%s' %s container %s (%s)", sid, m->volume,
                 relinked ? "relinked to" : "belongs to", sd_short_id(container_id, scid), container_name);
        registry_release(r, m);
        return 1;
}

/* ---- rotation ---- */

/* Lock held: the instances a rotation of secret must look at. */
static int targets_collect(struct registry *r, const char *secret, struct rotation_target **targets_out,
                           size_t *n_out) {
        struct rotation_target *targets = NULL;
        size_t n = 0;
        for (size_t i = 0; i < r->n_records; i++) {
                const struct mount_record *m = r->records[i];
                /* A reservation that has not decided yet will see the
                 * raised floor and fetch again. */
                if (m->state == RECORD_DEAD || (m->state == RECORD_RESERVED && m->n_versions == 0))
                        continue;
                const struct volume *v = volume_find(r, m->volume);
                if (!v || !spec_delivers(&v->spec, secret))
                        continue;
                struct rotation_target *bigger = reallocarray(targets, n + 1, sizeof(*targets));
                if (!bigger) {
                        free(targets);
                        return -ENOMEM;
                }
                targets = bigger;
                struct rotation_target *t = &targets[n++];
                memcpy(t->id, m->id, sizeof(t->id));
                memcpy(t->volume, m->volume, sizeof(t->volume));
                memcpy(t->container_id, m->container_id, sizeof(t->container_id));
                (void) snprintf(t->container_name, sizeof(t->container_name), "%s",
                                m->container_name ? m->container_name : "");
        }
        *targets_out = targets;
        *n_out = n;
        return 0;
}

int registry_rotation_targets(struct registry *r, const char *secret, struct rotation_target **targets_out,
                              size_t *n_out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        return targets_collect(r, secret, targets_out, n_out);
}

int registry_rotation_begin(struct registry *r, const char *secret, uint64_t version, uint64_t seen,
                            struct rotation_target **targets_out, size_t *n_out, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *floor_held = sd_lock(&r->floor_lock);
        int q = floor_decide(&r->floor, secret, version, seen, err);
        if (q < 0)
                return q;
        /* Both under floor_lock: a Mount decides either before (and is
         * collected here) or after (and sees the raised floor). */
        struct rotation_target *targets = NULL;
        size_t n = 0;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                if (targets_collect(r, secret, &targets, &n) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        if (n > 0) {
                /* Raised before anything becomes visible (as a Mount does);
                 * nothing is recorded when no instance delivers it. */
                const char *names[1] = { secret };
                q = floor_raise(&r->floor, names, &version, 1, err);
                if (q < 0) {
                        free(targets);
                        return q;
                }
        }
        *targets_out = targets;
        *n_out = n;
        return 0;
}

int registry_record_rotated(struct registry *r, struct mount_record *m, uint64_t generation, const char *secret,
                            uint64_t version, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        m->generation = generation;
        if (record_set_version(m, secret, version) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int registry_record_save(struct registry *r, struct mount_record *m, sd_error *err) {
        return record_save(r, m, err);
}

/* ---- start-up: load and reconcile ---- */

/* "<name>.json" -> name, or false for anything else (temp files, strays). */
static bool json_file_stem(const char *file, char *stem, size_t stem_size) {
        size_t len = strlen(file);
        if (len <= 5 || strcmp(file + len - 5, ".json") != 0 || len - 5 >= stem_size)
                return false;
        memcpy(stem, file, len - 5);
        stem[len - 5] = '\0';
        return true;
}

/* Leftover staging files of an interrupted write. */
static void remove_temp_files(int dirfd, DIR *d, const char *what) {
        struct dirent *de;
        rewinddir(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, SD_TEMP_PREFIX, strlen(SD_TEMP_PREFIX)) == 0 &&
                    unlinkat(dirfd, de->d_name, 0) == 0)
                        log_info("removed leftover temporary file %s/%s", what, de->d_name);
}

static int volume_load(struct registry *r, const char *file, struct volume **out, sd_error *err) {
        char stem[SD_NAME_MAX + 1];
        if (!json_file_stem(file, stem, sizeof(stem)))
                return sd_error_set(err, EINVAL, "%s: not a volume definition file name", file);
        _cleanup_json_ json_t *root = NULL;
        int q = read_json_at(r->volumes_fd, file, &root, err);
        if (q < 0)
                return q;
        const char *name = json_string_value(json_object_get(root, "Name"));
        json_t *created = json_object_get(root, "CreatedAt");
        if (!name || strcmp(name, stem) != 0 || volume_name_validate(name, strlen(name), err) < 0 ||
            !json_is_integer(created))
                return sd_error_set(err, EBADMSG, "%s: malformed volume definition", file);
        _cleanup_free_ struct volume *v = calloc(1, sizeof(*v));
        if (!v)
                return sd_error_set(err, ENOMEM, "out of memory");
        /* A volume made under a larger max-size keeps its size. */
        const struct volume_limits any = { .default_size = r->limits.default_size, .max_size = SD_SIZE_MAX };
        q = volume_opts_parse(json_object_get(root, "Opts"), &any, &v->spec, err);
        if (q < 0)
                return sd_error_prefix(err, q, "%s", file);
        memcpy(v->name, name, strlen(name) + 1);
        v->created_at = (int64_t) json_integer_value(created);
        *out = steal_pointer(&v);
        return 0;
}

static bool container_id_valid(const char *id) {
        if (strlen(id) != SD_DOCKER_CONTAINER_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* ContainerID/ContainerName/ReloadSignal: absent until events.c links the
 * instance to its container. */
static int record_link_load(const json_t *root, struct mount_record *m) {
        const char *cid = json_string_value(json_object_get(root, "ContainerID"));
        const char *cname = json_string_value(json_object_get(root, "ContainerName"));
        json_t *sig = json_object_get(root, "ReloadSignal");
        if (!cid)
                return 0;
        if (!container_id_valid(cid) || !cname || strlen(cname) > SD_DOCKER_NAME_MAX || !json_is_integer(sig) ||
            json_integer_value(sig) < -EINVAL || json_integer_value(sig) > 64)
                return -EBADMSG;
        for (const char *p = cname; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return -EBADMSG;
        m->container_name = strdup(cname);
        if (!m->container_name)
                return -ENOMEM;
        memcpy(m->container_id, cid, strlen(cid) + 1);
        m->reload_signal = (int) json_integer_value(sig);
        return 0;
}

static int record_load(struct registry *r, const char *file, struct mount_record **out, sd_error *err) {
        char stem[MOUNT_ID_MAX + 1];
        if (!json_file_stem(file, stem, sizeof(stem)))
                return sd_error_set(err, EINVAL, "%s: not a mount record file name", file);
        _cleanup_json_ json_t *root = NULL;
        int q = read_json_at(r->mounts_fd, file, &root, err);
        if (q < 0)
                return q;
        const char *id = json_string_value(json_object_get(root, "ID"));
        const char *volume = json_string_value(json_object_get(root, "Volume"));
        json_t *refcount = json_object_get(root, "Refcount");
        json_t *generation = json_object_get(root, "Generation");
        json_t *versions = json_object_get(root, "Versions");
        if (!id || strcmp(id, stem) != 0 || mount_id_validate(id, strlen(id), NULL) < 0 || !volume ||
            volume_name_validate(volume, strlen(volume), NULL) < 0 || !json_is_integer(refcount) ||
            json_integer_value(refcount) < 0 || json_integer_value(refcount) > 1000000 ||
            !json_is_integer(generation) || !json_is_object(versions) ||
            json_object_size(versions) > VOLUME_SECRETS_MAX)
                return sd_error_set(err, EBADMSG, "%s: malformed mount record", file);

        _cleanup_record_ struct mount_record *m = record_new(id, volume);
        if (!m)
                return sd_error_set(err, ENOMEM, "out of memory");
        m->refcount = (unsigned) json_integer_value(refcount);
        m->state = m->refcount > 0 ? RECORD_LIVE : RECORD_DEAD;
        m->generation = (uint64_t) json_integer_value(generation);
        const char *key;
        json_t *value;
        json_object_foreach(versions, key, value) {
                if (sd_name_validate("secret name", key, strlen(key), NULL) < 0 || !json_is_integer(value) ||
                    json_integer_value(value) <= 0)
                        return sd_error_set(err, EBADMSG, "%s: malformed mount record", file);
                if (record_set_version(m, key, (uint64_t) json_integer_value(value)) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        json_t *mounted_at = json_object_get(root, "MountedAt");
        if (json_is_integer(mounted_at))
                m->mounted_at = (int64_t) json_integer_value(mounted_at);
        q = record_link_load(root, m);
        if (q == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (q < 0)
                return sd_error_set(err, EBADMSG, "%s: malformed container link", file);
        if (instances_ro_path(r->instances, m->id, &m->mountpoint) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = steal_pointer(&m);
        return 0;
}

static DIR *opendir_at(int dirfd) {
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return NULL;
        DIR *d = fdopendir(fd);
        if (!d)
                (void) close(fd);
        return d;
}

static int load_volumes(struct registry *r, sd_error *err) {
        _cleanup_closedir_ DIR *d = opendir_at(r->volumes_fd);
        if (!d)
                return sd_error_set_errno(err, errno, "%s/volumes", r->state_dir);
        remove_temp_files(r->volumes_fd, d, "volumes");
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct volume *v = NULL;
                sd_error sub = { 0 };
                if (volume_load(r, de->d_name, &v, &sub) < 0) {
                        log_error("%s/volumes: skipping %s", r->state_dir, sub.message);
                        continue;
                }
                if (array_append((void ***) &r->volumes, &r->n_volumes, v) < 0) {
                        free(v);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                log_debug("loaded volume '%s'", v->name);
        }
        return 0;
}

static int load_mounts(struct registry *r, sd_error *err) {
        _cleanup_closedir_ DIR *d = opendir_at(r->mounts_fd);
        if (!d)
                return sd_error_set_errno(err, errno, "%s/mounts", r->state_dir);
        remove_temp_files(r->mounts_fd, d, "mounts");
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct mount_record *m = NULL;
                sd_error sub = { 0 };
                char sid[SD_SHORT_ID_CHARS + 1];
                if (record_load(r, de->d_name, &m, &sub) < 0) {
                        char stem[MOUNT_ID_MAX + 1];
                        log_error("%s/mounts: dropping %s", r->state_dir, sub.message);
                        if (json_file_stem(de->d_name, stem, sizeof(stem)) &&
                            mount_id_validate(stem, strlen(stem), NULL) == 0)
                                instance_destroy_logged(r, stem, "its mount record is unreadable");
                        (void) unlinkat(r->mounts_fd, de->d_name, 0);
                        continue;
                }
                (void) sd_short_id(m->id, sid);
                int mounted = instances_is_mounted(r->instances, m->id);
                if (mounted < 0) {
                        /* Unsure: keep it.  Wiping a running container's
                         * secrets is worse than an instance that its
                         * Unmount will still remove. */
                        log_warn("instance %s: cannot tell whether it is mounted (%s); adopting it", sid,
                                 strerror(-mounted));
                        mounted = 1;
                }
                if (m->state == RECORD_DEAD || mounted != 1) {
                        instance_destroy_logged(r, m->id, m->state == RECORD_DEAD ? "its last unmount did not finish"
                                                                                  : "no longer mounted");
                        record_unlink(r, m->id);
                        record_free(m);
                        continue;
                }
                if (!volume_find(r, m->volume))
                        log_warn("instance %s belongs to unknown volume '%s'; keeping it until its unmount", sid,
                                 m->volume);
                if (record_insert(r, m) < 0) {
                        record_free(m);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                log_info("adopted instance %s of volume '%s' (%u reference(s))", sid, m->volume, m->refcount);
        }
        return 0;
}

static int destroy_orphan_instances(struct registry *r, sd_error *err) {
        char **ids = NULL;
        size_t n = 0;
        int q = instances_list(r->instances, &ids, &n, err);
        if (q < 0)
                return q;
        for (size_t i = 0; i < n; i++)
                if (!record_find(r, ids[i]))
                        instance_destroy_logged(r, ids[i], "no mount record");
        sd_tmpfs_ids_free(ids, n);
        return 0;
}

static int open_state_subdir(struct registry *r, const char *name, sd_error *err) {
        int fd = sd_open_dir_at(r->state_fd, name, true, 0700);
        if (fd < 0)
                return sd_error_set_errno(err, -fd, "%s/%s: cannot create or open", r->state_dir, name);
        return fd;
}

static int state_open(struct registry *r, const struct registry_config *cfg, sd_error *err) {
        int q = sd_mkdir_p(r->state_dir, 0700);
        if (q < 0)
                return sd_error_set_errno(err, -q, "state directory %s: cannot create", r->state_dir);
        r->state_fd = open(r->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (r->state_fd < 0)
                return sd_error_set_errno(err, errno, "state directory %s: cannot open", r->state_dir);
        struct stat st;
        if (fstat(r->state_fd, &st) < 0)
                return sd_error_set_errno(err, errno, "state directory %s", r->state_dir);
        if (st.st_uid != geteuid())
                return sd_error_set(err, EPERM, "state directory %s is owned by uid %u, not by this agent",
                                    r->state_dir, (unsigned) st.st_uid);
        if ((st.st_mode & 07777) != 0700 && fchmod(r->state_fd, 0700) < 0)
                return sd_error_set_errno(err, errno, "state directory %s: cannot chmod 0700", r->state_dir);

        q = open_state_subdir(r, "volumes", err);
        if (q < 0)
                return q;
        r->volumes_fd = q;
        q = open_state_subdir(r, "mounts", err);
        if (q < 0)
                return q;
        r->mounts_fd = q;
        q = open_state_subdir(r, "instances", err);
        if (q < 0)
                return q;
        (void) close(q);
        if (asprintf(&r->instances_dir, "%s/instances", r->state_dir) < 0) {
                r->instances_dir = NULL;
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        if (cfg->instances) {
                r->instances = cfg->instances;
        } else {
                instances_tmpfs(&r->own_instances, r->instances_dir);
                r->instances = &r->own_instances;
        }

        q = floor_open(&r->floor, cfg->floor_file, r->state_fd, r->state_dir, err);
        if (q < 0)
                return q;
        q = load_volumes(r, err);
        if (q < 0)
                return q;
        q = load_mounts(r, err);
        if (q < 0)
                return q;
        q = destroy_orphan_instances(r, err);
        if (q < 0)
                return q;
        log_info("state %s: %zu volume(s), %zu live instance(s)", r->state_dir, r->n_volumes, r->n_records);
        return 0;
}

int registry_open(const struct registry_config *cfg, struct registry **out, sd_error *err) {
        struct registry *r = calloc(1, sizeof(*r));
        if (!r)
                return sd_error_set(err, ENOMEM, "out of memory");
        *r = (struct registry) {
                .state_dir = cfg->state_dir,
                .notes = cfg->notes,
                .limits = cfg->limits,
                .caps = cfg->caps,
                .state_fd = -1,
                .volumes_fd = -1,
                .mounts_fd = -1,
                .floor = { .dirfd = -1 },
        };
        (void) pthread_mutex_init(&r->lock, NULL);
        (void) pthread_mutex_init(&r->floor_lock, NULL);
        (void) pthread_mutex_init(&r->volumes_lock, NULL);
        (void) pthread_cond_init(&r->idle, NULL);
        int q = state_open(r, cfg, err);
        if (q < 0) {
                registry_free(r);
                return q;
        }
        *out = r;
        return 0;
}

void registry_free(struct registry *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_volumes; i++)
                free(r->volumes[i]);
        free(r->volumes);
        for (size_t i = 0; i < r->n_records; i++)
                record_free(r->records[i]);
        free(r->records);
        floor_close(&r->floor);
        free(r->instances_dir);
        sd_closep(&r->state_fd);
        sd_closep(&r->volumes_fd);
        sd_closep(&r->mounts_fd);
        (void) pthread_cond_destroy(&r->idle);
        (void) pthread_mutex_destroy(&r->lock);
        (void) pthread_mutex_destroy(&r->floor_lock);
        (void) pthread_mutex_destroy(&r->volumes_lock);
        free(r);
}

const struct instances *registry_instances(const struct registry *r) {
        return r->instances;
}

struct volume_limits registry_limits(struct registry *r) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        return r->limits;
}

void registry_set_limits(struct registry *r, const struct volume_limits *limits, const struct registry_caps *caps) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        r->limits = *limits;
        r->caps = *caps;
}
