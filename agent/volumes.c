/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

#include "agent.h"
#include "fileio.h"
#include "log.h"
#include "metrics.h"
#include "secretd/client.h"
#include "secretd/config.h"
#include "secretd/tmpfs.h"
#include "userns.h"

#define STATE_FILE_MAX ((size_t) 256 << 10)
#define DELIVERED_FILE "delivered.json"
#define PAGE ((uint64_t) 4096)

/* ---- small helpers ---- */

static void secrets_freep(struct sd_secret *(*values)[VOLUME_SECRETS_MAX]) {
        for (size_t i = 0; i < VOLUME_SECRETS_MAX; i++)
                sd_secret_freep(&(*values)[i]);
}

json_t *plugin_error_reply(const char *message) {
        return json_pack("{s:s}", "Err", message);
}

static json_t *error_reply(const sd_error *err) {
        return plugin_error_reply(err->message[0] ? err->message : "internal error");
}

static int write_json_at(int dirfd, const char *file, const json_t *obj, sd_error *err) {
        _cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return sd_error_set(err, ENOMEM, "%s: out of memory", file);
        size_t len = strlen(text);
        /* The state directory is on tmpfs by default, where fsync costs
         * nothing; elsewhere it keeps records consistent after a crash. */
        return sd_write_file_at(dirfd, file, text, len, 0600, SD_WRITE_REPLACE, err);
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

/* The first 12 characters of a mount id, as docker shows container ids. */
static void format_time(int64_t t, char out[32]) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* ---- registry (callers hold the locks described in agent.h) ---- */

static struct volume *volume_find(struct agent *a, const char *name) {
        for (size_t i = 0; i < a->n_volumes; i++)
                if (strcmp(a->volumes[i]->name, name) == 0)
                        return a->volumes[i];
        return NULL;
}

static struct mount_record *mount_find(struct agent *a, const char *id) {
        for (size_t i = 0; i < a->n_mounts; i++)
                if (strcmp(a->mounts[i]->id, id) == 0)
                        return a->mounts[i];
        return NULL;
}

static size_t volume_instances(struct agent *a, const char *name) {
        size_t n = 0;
        for (size_t i = 0; i < a->n_mounts; i++)
                if (a->mounts[i]->refcount > 0 && strcmp(a->mounts[i]->volume, name) == 0)
                        n++;
        return n;
}

/* What Get, List and Path report as the volume's Mountpoint.  Each Mount
 * gets its own instance, so a volume has no single path; and dockerd
 * caches the first non-empty Path answer for the volume's life and shows
 * it as the Source of every later container, which would point at another
 * container's (maybe long wiped) instance.  Get's Status lists the live
 * instance paths instead. */
static const char volume_mountpoint[] = "";

static int array_append(void ***array, size_t *n, void *item) {
        void **bigger = realloc(*array, (*n + 1) * sizeof(**array));
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

static void mount_record_free(struct mount_record *m) {
        if (m) {
                free(m->mountpoint);
                free(m);
        }
}
static void mount_record_freep(struct mount_record **m) {
        mount_record_free(*m);
}
#define _cleanup_mount_record_ _cleanup_(mount_record_freep)

/* ---- persistence ---- */

static json_t *volume_to_json(const struct volume *v) {
        json_t *opts = volume_spec_to_json(&v->spec);
        if (!opts)
                return NULL;
        return json_pack("{s:s,s:I,s:o}", "Name", v->name, "CreatedAt", (json_int_t) v->created_at,
                         "Opts", opts);
}

static int volume_save(struct agent *a, const struct volume *v, sd_error *err) {
        _cleanup_json_ json_t *obj = volume_to_json(v);
        char file[SD_NAME_MAX + 8];
        if (!obj)
                return sd_error_set(err, ENOMEM, "out of memory");
        (void) snprintf(file, sizeof(file), "%s.json", v->name);
        int r = write_json_at(a->volumes_fd, file, obj, err);
        if (r < 0)
                return sd_error_prefix(err, r, "cannot save volume '%s' in %s/volumes", v->name, a->state_dir);
        return 0;
}

int mount_record_save(struct agent *a, const struct mount_record *m, sd_error *err) {
        _cleanup_json_ json_t *versions = json_object();
        if (!versions)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < m->n_versions; i++)
                if (json_object_set_new(versions, m->versions[i].name,
                                        json_integer((json_int_t) m->versions[i].version)) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *obj = json_pack("{s:s,s:s,s:I,s:I,s:O}", "ID", m->id, "Volume", m->volume,
                                               "Refcount", (json_int_t) m->refcount, "Generation",
                                               (json_int_t) m->generation, "Versions", versions);
        char file[MOUNT_ID_MAX + 8];
        if (!obj || json_object_set_new(obj, "MountedAt", json_integer((json_int_t) m->mounted_at)) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (m->container_id[0] &&
            json_object_update_new(obj, json_pack("{s:s,s:s,s:i}", "ContainerID", m->container_id,
                                                  "ContainerName", m->container_name, "ReloadSignal",
                                                  m->reload_signal)) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        (void) snprintf(file, sizeof(file), "%s.json", m->id);
        int r = write_json_at(a->mounts_fd, file, obj, err);
        if (r < 0)
                return sd_error_prefix(err, r, "cannot save mount record in %s/mounts", a->state_dir);
        return 0;
}

static void mount_record_unlink(struct agent *a, const char *id) {
        char file[MOUNT_ID_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", id);
        if (unlinkat(a->mounts_fd, file, 0) < 0 && errno != ENOENT)
                log_warn("cannot remove mount record %s/mounts/%s: %s", a->state_dir, file, strerror(errno));
}

uint64_t delivered_floor(struct agent *a, const char *secret) {
        json_t *v = json_object_get(a->delivered, secret);
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

/* ---- fetching secrets ---- */

/* Fetch, verify and decrypt the latest version of one secret, turning the
 * library's errors into advice for the operator. */
static int secret_fetch_latest(struct agent *a, const char *volume, const char *name,
                               struct sd_secret **value_out, uint64_t *version_out,
                               char writer_out[SD_KEY_ID_CHARS + 1], sd_error *err) {
        if (!a->store)
                return sd_error_set(err, ENODEV, "volume '%s': no store is open", volume);

        struct sd_envelope_info info = { 0 };
        sd_error sub = { 0 };
        struct sd_secret *value = NULL;
        int r = sd_secret_fetch(a->realm, a->keys, a->n_keys, name, 0, 0, &value, &info, &sub);
        switch (r) {
        case 0:
                break;
        case -ENOKEY:
                return sd_error_set(err, ENOKEY,
                                    "volume '%s': %s; this host is not a recipient of it: an admin runs "
                                    "'secretctl recipient add HOSTNAME %s' (with patterns that cover '%s'), then "
                                    "'secretctl reseal %s'",
                                    volume, sub.message, a->pubkey_line ? a->pubkey_line : "<secretd pubkey>", name,
                                    name);
        case -EKEYREJECTED:
                return sd_error_set(err, EKEYREJECTED,
                                    "volume '%s': %s; an admin allows that writer with 'secretctl writer add', "
                                    "or an admin reseals the secret",
                                    volume, sub.message);
        case -ENOENT:
                return sd_error_set(err, ENOENT, "volume '%s': %s", volume, sub.message);
        default:
                /* Envelope errors already start with "secret 'NAME' version N". */
                if (strncmp(sub.message, "secret '", 8) == 0)
                        return sd_error_set(err, -r, "volume '%s': %s", volume, sub.message);
                return sd_error_set(err, -r, "volume '%s': secret '%s': %s", volume, name,
                                    sub.message[0] ? sub.message : strerror(-r));
        }
        _cleanup_secret_ struct sd_secret *owned = value;
        if (!owned)
                return sd_error_set(err, ENOENT, "volume '%s': secret '%s' was deleted", volume, name);

        uint64_t floor = delivered_floor(a, name);
        if (info.version < floor)
                return sd_error_set(err, ESTALE,
                                    "volume '%s': secret '%s': the store offers version %" PRIu64
                                    " but version %" PRIu64 " was already delivered on this host; refusing a rollback",
                                    volume, name, info.version, floor);
        *value_out = steal_pointer(&owned);
        *version_out = info.version;
        memcpy(writer_out, info.signer_id, SD_KEY_ID_CHARS + 1);
        return 0;
}

/* tmpfs charges whole pages per file, and an update writes the new
 * generation before wiping the old one: the volume must hold twice the
 * page-rounded values. */
static uint64_t tmpfs_bytes_needed(struct sd_secret *const values[], size_t n) {
        uint64_t pages = 0;
        for (size_t i = 0; i < n; i++)
                pages += (values[i]->len + PAGE - 1) / PAGE;
        return 2 * pages * PAGE;
}

static int secrets_fetch_all(struct agent *a, const char *volume, const struct volume_spec *spec,
                             struct sd_secret *values[VOLUME_SECRETS_MAX],
                             uint64_t versions[VOLUME_SECRETS_MAX],
                             char writers[VOLUME_SECRETS_MAX][SD_KEY_ID_CHARS + 1], sd_error *err) {
        for (size_t i = 0; i < spec->n_secrets; i++) {
                int r = secret_fetch_latest(a, volume, spec->secrets[i].name, &values[i], &versions[i],
                                            writers[i], err);
                if (r < 0)
                        return r;
        }
        uint64_t needed = tmpfs_bytes_needed(values, spec->n_secrets);
        if (needed > spec->size)
                return sd_error_set(err, EFBIG,
                                    "volume '%s': its secrets need a tmpfs of %" PRIu64 " bytes "
                                    "(each file rounded up to 4K, twice so an update fits beside the current files) "
                                    "but the volume's size is %" PRIu64 " bytes; recreate it with a larger -o size= (at most %" PRIu64 ")",
                                    volume, needed, spec->size, a->limits.max_size);
        return 0;
}

/* Two generations of files and their directories, the visible symlinks,
 * ..data and its staging link (docs/tmpfs.md "Sizing the caps"). */
static uint64_t instance_nr_inodes(const struct volume_spec *spec) {
        return 4 * (uint64_t) spec->n_secrets + 16;
}

/* What the live instances may take from host memory: the size cap of each.
 * A record whose wipe failed still holds its tmpfs, so it counts too; an
 * instance of a volume no longer defined counts as max-size. */
static uint64_t instances_tmpfs_total(struct agent *a) {
        uint64_t total = 0;
        for (size_t i = 0; i < a->n_mounts; i++) {
                const struct volume *v = volume_find(a, a->mounts[i]->volume);
                total += v ? v->spec.size : a->limits.max_size;
        }
        return total;
}

/* ---- resource caps ----
 * A container cannot write to its read-only tmpfs, so host memory and
 * inodes are only spent by the agent on its behalf: per volume, per
 * instance and in total.  Each refusal names the config key to raise.
 * Callers hold ops_lock.  spec is the volume's; instance: a new tmpfs is
 * about to be made (Mount), else a new definition (Create). */
static int caps_check(struct agent *a, const char *volume, const struct volume_spec *spec, bool instance,
                      sd_error *err) {
        const struct agent_caps *c = &a->caps;
        uint64_t inodes = instance_nr_inodes(spec);
        if (c->max_inodes && inodes > c->max_inodes)
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': its %zu file(s) need a tmpfs of %" PRIu64 " inodes, "
                                    "more than the %" PRIu64 " allowed by max-inodes",
                                    volume, spec->n_secrets, inodes, c->max_inodes);
        if (!instance) {
                if (c->max_volumes && a->n_volumes >= c->max_volumes)
                        return sd_error_set(err, EDQUOT, "volume '%s': %zu volumes exist, the limit set by max-volumes",
                                            volume, a->n_volumes);
                return 0;
        }
        size_t n = volume_instances(a, volume);
        if (c->max_instances_per_volume && n >= c->max_instances_per_volume)
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': %zu instances (one per container) are mounted, the limit set by "
                                    "max-instances-per-volume",
                                    volume, n);
        uint64_t total = instances_tmpfs_total(a);
        if (c->max_total_tmpfs && (total > c->max_total_tmpfs || spec->size > c->max_total_tmpfs - total))
                return sd_error_set(err, EDQUOT,
                                    "volume '%s': a new tmpfs of %" PRIu64 " bytes would bring the live instances to %" PRIu64
                                    " bytes, over the %" PRIu64 " set by max-total-tmpfs",
                                    volume, spec->size, total + spec->size, c->max_total_tmpfs);
        return 0;
}

/* ---- endpoints ---- */

json_t *agent_volume_create(struct agent *a, const struct plugin_create_request *req) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        sd_error err = { 0 };

        struct volume *existing = volume_find(a, req->name);
        if (existing) {
                /* dockerd re-sends Create after a broken connection. */
                if (volume_spec_equal(&existing->spec, &req->spec)) {
                        log_debug("volume '%s' already exists with the same options", req->name);
                        return json_object();
                }
                sd_error_set(&err, EEXIST, "volume '%s' already exists with different options", req->name);
                log_warn("create: %s", err.message);
                return error_reply(&err);
        }
        if (caps_check(a, req->name, &req->spec, false, &err) < 0) {
                log_warn("create: %s", err.message);
                agent_note_refusal(a, req->name, NULL, ERROR_TMPFS, &err);
                return error_reply(&err);
        }

        /* Fetch every secret once now, so a typo, a missing recipient entry
         * or an untrusted writer shows at `docker volume create`, not at
         * the first container start. */
        __attribute__((cleanup(secrets_freep))) struct sd_secret *values[VOLUME_SECRETS_MAX] = { 0 };
        uint64_t versions[VOLUME_SECRETS_MAX] = { 0 };
        char writers[VOLUME_SECRETS_MAX][SD_KEY_ID_CHARS + 1];
        if (secrets_fetch_all(a, req->name, &req->spec, values, versions, writers, &err) < 0) {
                log_warn("create: %s", err.message);
                agent_note_refusal(a, req->name, NULL, metrics_error_kind_for_code(err.code), &err);
                return error_reply(&err);
        }
        secrets_freep(&values);

        _cleanup_free_ struct volume *v = calloc(1, sizeof(*v));
        if (!v)
                return NULL;
        memcpy(v->name, req->name, sizeof(v->name));
        v->spec = req->spec;
        v->created_at = (int64_t) time(NULL);
        if (volume_save(a, v, &err) < 0) {
                log_error("create: %s", err.message);
                return error_reply(&err);
        }
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                if (array_append((void ***) &a->volumes, &a->n_volumes, v) < 0)
                        return NULL;
        }
        log_info("volume '%s' created: %zu secret(s), uid %" PRIu32 ", gid %" PRIu32 ", mode %04" PRIo32
                 ", size %" PRIu64,
                 v->name, v->spec.n_secrets, v->spec.uid, v->spec.gid, v->spec.mode, v->spec.size);
        v = NULL;
        return json_object();
}

json_t *agent_volume_remove(struct agent *a, const struct plugin_name_request *req) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        sd_error err = { 0 };

        struct volume *v = volume_find(a, req->name);
        if (!v) {
                /* Refusing would leave dockerd unable to remove its own
                 * record of the volume forever. */
                log_warn("remove: volume '%s' is not known; nothing to do", req->name);
                return json_object();
        }
        size_t n = volume_instances(a, req->name);
        if (n > 0) {
                sd_error_set(&err, EBUSY, "volume '%s' is still mounted by %zu container(s)", req->name, n);
                log_warn("remove: %s", err.message);
                return error_reply(&err);
        }
        char file[SD_NAME_MAX + 8];
        (void) snprintf(file, sizeof(file), "%s.json", v->name);
        if (unlinkat(a->volumes_fd, file, 0) < 0 && errno != ENOENT) {
                sd_error_set_errno(&err, errno, "volume '%s': cannot remove %s/volumes/%s", v->name,
                                   a->state_dir, file);
                log_error("remove: %s", err.message);
                return error_reply(&err);
        }
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                array_remove((void **) a->volumes, &a->n_volumes, v);
        }
        log_info("volume '%s' removed", v->name);
        free(v);
        return json_object();
}

int delivered_raise(struct agent *a, const struct volume_spec *spec, const uint64_t versions[],
                           sd_error *err) {
        _cleanup_json_ json_t *next = json_deep_copy(a->delivered);
        if (!next)
                return sd_error_set(err, ENOMEM, "out of memory");
        bool changed = false;
        for (size_t i = 0; i < spec->n_secrets; i++) {
                if (versions[i] <= delivered_floor(a, spec->secrets[i].name))
                        continue;
                if (json_object_set_new(next, spec->secrets[i].name, json_integer((json_int_t) versions[i])) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
                changed = true;
        }
        if (!changed)
                return 0;
        int r = write_json_at(a->floor_fd, a->floor_name, next, err);
        if (r < 0)
                return sd_error_prefix(err, r, "cannot record delivered versions in %s",
                                       a->floor_file ? a->floor_file : a->state_dir);
        json_decref(a->delivered);
        a->delivered = steal_pointer(&next);
        return 0;
}

static void instance_destroy_logged(struct agent *a, const char *id, const char *why) {
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        int r = sd_tmpfs_instance_destroy(a->instances_dir, id, &err);
        if (r < 0 && r != -ENOENT)
                log_error("instance %s (%s): cannot destroy: %s", sd_short_id(id, sid), why, err.message);
        else if (r == 0)
                log_info("instance %s destroyed (%s)", sd_short_id(id, sid), why);
}

json_t *agent_volume_mount(struct agent *a, const struct plugin_mount_request *req) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(req->id, sid);

        struct volume *v = volume_find(a, req->name);
        if (!v) {
                sd_error_set(&err, ENOENT, "no such volume '%s'", req->name);
                log_warn("mount %s: %s", sid, err.message);
                return error_reply(&err);
        }

        struct mount_record *live = mount_find(a, req->id);
        if (live && live->refcount > 0) {
                if (strcmp(live->volume, req->name) != 0) {
                        sd_error_set(&err, EEXIST, "mount id %s is already in use by volume '%s'", sid, live->volume);
                        log_warn("mount: %s", err.message);
                        return error_reply(&err);
                }
                /* `docker cp` mounts again with the ID of the running
                 * container's mount: share the instance, count references. */
                struct mount_record next = *live;
                next.refcount++;
                if (mount_record_save(a, &next, &err) < 0) {
                        log_error("mount %s: %s", sid, err.message);
                        return error_reply(&err);
                }
                {
                        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                        live->refcount = next.refcount;
                }
                log_info("mount %s of volume '%s': instance reused (%u references)", sid, req->name,
                         live->refcount);
                return json_pack("{s:s}", "Mountpoint", live->mountpoint);
        }
        if (live) {
                /* A record whose wipe failed earlier: finish it, start over. */
                instance_destroy_logged(a, req->id, "left over from a failed unmount");
                mount_record_unlink(a, req->id);
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                array_remove((void **) a->mounts, &a->n_mounts, live);
                mount_record_free(live);
        }

        if (caps_check(a, req->name, &v->spec, true, &err) < 0) {
                log_warn("mount %s: %s", sid, err.message);
                agent_note_refusal(a, req->name, req->id, ERROR_TMPFS, &err);
                return error_reply(&err);
        }
        __attribute__((cleanup(secrets_freep))) struct sd_secret *values[VOLUME_SECRETS_MAX] = { 0 };
        uint64_t versions[VOLUME_SECRETS_MAX] = { 0 };
        char writers[VOLUME_SECRETS_MAX][SD_KEY_ID_CHARS + 1];
        if (secrets_fetch_all(a, req->name, &v->spec, values, versions, writers, &err) < 0) {
                log_warn("mount %s: %s", sid, err.message);
                agent_note_refusal(a, req->name, req->id, metrics_error_kind_for_code(err.code), &err);
                return error_reply(&err);
        }
        /* Raise the rollback floor before anything becomes visible: every
         * version here verified, so a later failure leaves it harmlessly
         * high. */
        if (delivered_raise(a, &v->spec, versions, &err) < 0) {
                log_error("mount %s: %s", sid, err.message);
                return error_reply(&err);
        }

        /* Under dockerd's --userns-remap the owner must be the host id
         * the container sees as spec.uid (userns.h). */
        uid_t host_uid;
        gid_t host_gid;
        sd_error warning = { 0 };
        if (userns_host_ids(a, v->spec.uid, v->spec.gid, &host_uid, &host_gid, &warning, &err) < 0) {
                log_error("mount %s of volume '%s': %s", sid, req->name, err.message);
                return error_reply(&err);
        }
        if (warning.message[0])
                log_warn("mount %s of volume '%s': %s", sid, req->name, warning.message);
        if (host_uid != (uid_t) v->spec.uid || host_gid != (gid_t) v->spec.gid)
                log_debug("mount %s: user namespace remap: uid %" PRIu32 " -> %u, gid %" PRIu32 " -> %u", sid,
                          v->spec.uid, (unsigned) host_uid, v->spec.gid, (unsigned) host_gid);
        const struct sd_tmpfs_params params = {
                .size_bytes = v->spec.size,
                .nr_inodes = instance_nr_inodes(&v->spec),
                .uid = host_uid,
                .gid = host_gid,
                .mode = (mode_t) v->spec.mode,
        };
        struct sd_tmpfs_file files[VOLUME_SECRETS_MAX];
        for (size_t i = 0; i < v->spec.n_secrets; i++)
                files[i] = (struct sd_tmpfs_file) { .name = v->spec.secrets[i].file, .value = values[i] };

        _cleanup_mount_record_ struct mount_record *m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        int r = sd_tmpfs_instance_create(a->instances_dir, req->id, &params, &m->mountpoint, &err);
        if (r == -EEXIST) {
                /* An instance without a record: a crash between create and
                 * record.  It holds nothing anyone is using. */
                instance_destroy_logged(a, req->id, "found without a mount record");
                sd_error_clear(&err);
                r = sd_tmpfs_instance_create(a->instances_dir, req->id, &params, &m->mountpoint, &err);
        }
        if (r < 0) {
                log_error("mount %s of volume '%s': %s", sid, req->name, err.message);
                agent_note_refusal(a, req->name, req->id, ERROR_TMPFS, &err);
                return error_reply(&err);
        }
        r = sd_tmpfs_instance_publish(a->instances_dir, req->id, &params, files, v->spec.n_secrets, 1, &err);
        if (r < 0) {
                sd_error_prefix(&err, r, "volume '%s'", req->name);
                log_error("mount %s: %s", sid, err.message);
                agent_note_refusal(a, req->name, req->id, ERROR_TMPFS, &err);
                instance_destroy_logged(a, req->id, "mount failed");
                return error_reply(&err);
        }
        secrets_freep(&values);

        memcpy(m->id, req->id, sizeof(m->id));
        memcpy(m->volume, req->name, sizeof(m->volume));
        m->refcount = 1;
        m->generation = 1;
        m->mounted_at = (int64_t) time(NULL);
        m->n_versions = v->spec.n_secrets;
        for (size_t i = 0; i < v->spec.n_secrets; i++) {
                memcpy(m->versions[i].name, v->spec.secrets[i].name, sizeof(m->versions[i].name));
                m->versions[i].version = versions[i];
        }
        _cleanup_json_ json_t *reply = json_pack("{s:s}", "Mountpoint", m->mountpoint);
        if (!reply || mount_record_save(a, m, &err) < 0) {
                log_error("mount %s: %s", sid, err.message[0] ? err.message : "out of memory");
                instance_destroy_logged(a, req->id, "mount failed");
                return reply ? error_reply(&err) : NULL;
        }
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                if (array_append((void ***) &a->mounts, &a->n_mounts, m) < 0) {
                        mount_record_unlink(a, req->id);
                        instance_destroy_logged(a, req->id, "mount failed");
                        return NULL;
                }
        }
        char delivered[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < m->n_versions && used < sizeof(delivered); i++) {
                int n = snprintf(delivered + used, sizeof(delivered) - used, "%s%s v%" PRIu64, i ? ", " : "",
                                 m->versions[i].name, m->versions[i].version);
                if (n < 0)
                        break;
                used += (size_t) n;
        }
        log_info("mount %s of volume '%s': delivered %s at %s", sid, req->name, delivered, m->mountpoint);
        agent_note_delivery(a, m, (const char (*)[SD_KEY_ID_CHARS + 1]) writers);
        m = NULL;
        return steal_pointer(&reply);
}

json_t *agent_volume_unmount(struct agent *a, const struct plugin_mount_request *req) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(req->id, sid);

        struct mount_record *m = mount_find(a, req->id);
        bool wiped_lately = false;
        for (size_t i = 0; i < sizeof(a->recently_wiped) / sizeof(a->recently_wiped[0]); i++)
                wiped_lately = wiped_lately || strcmp(a->recently_wiped[i], req->id) == 0;
        if (!m && wiped_lately) {
                log_info("unmount %s of volume '%s': already wiped when its container went", sid, req->name);
                return json_object();
        }
        if (!m) {
                /* dockerd keeps retrying an Unmount that fails; an unknown
                 * id has nothing left to wipe. */
                log_warn("unmount %s of volume '%s': no such mount; nothing to do", sid, req->name);
                return json_object();
        }
        if (strcmp(m->volume, req->name) != 0)
                log_warn("unmount %s: asked for volume '%s' but the mount belongs to '%s'", sid, req->name,
                         m->volume);
        if (m->refcount > 1) {
                {
                        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                        m->refcount--;
                }
                if (mount_record_save(a, m, &err) < 0)
                        log_error("unmount %s: %s", sid, err.message);
                log_info("unmount %s of volume '%s': %u reference(s) left", sid, m->volume, m->refcount);
                return json_object();
        }

        int r = sd_tmpfs_instance_destroy(a->instances_dir, req->id, &err);
        if (r < 0 && r != -ENOENT) {
                /* Keep the record with no references so a restart or the
                 * next Mount of this id finishes the wipe. */
                {
                        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                        m->refcount = 0;
                }
                sd_error tmp = { 0 };
                if (mount_record_save(a, m, &tmp) < 0)
                        log_error("unmount %s: %s", sid, tmp.message);
                sd_error_prefix(&err, r, "volume '%s': cannot wipe its tmpfs", m->volume);
                log_error("unmount %s: %s", sid, err.message);
                metrics_error(ERROR_TMPFS);
                return error_reply(&err);
        }
        mount_record_unlink(a, req->id);
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                array_remove((void **) a->mounts, &a->n_mounts, m);
        }
        log_info("unmount %s of volume '%s': tmpfs wiped", sid, m->volume);
        agent_note_wipe(a, m, "unmount");
        mount_record_free(m);
        return json_object();
}

int agent_mount_link(struct agent *a, const char *id, const char *container_id, const char *container_name,
                     int reload_signal, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        char sid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(id, sid);
        struct mount_record *m = mount_find(a, id);
        if (!m || m->refcount == 0)
                return sd_error_set(err, ENOENT, "instance %s: no such live mount", sid);
        if (strcmp(m->container_id, container_id) == 0 && strcmp(m->container_name, container_name) == 0 &&
            m->reload_signal == reload_signal)
                return 0;
        struct mount_record next = *m;
        (void) snprintf(next.container_id, sizeof(next.container_id), "%s", container_id);
        (void) snprintf(next.container_name, sizeof(next.container_name), "%s", container_name);
        next.reload_signal = reload_signal;
        int r = mount_record_save(a, &next, err);
        if (r < 0)
                return r;
        bool relinked = m->container_id[0] && strcmp(m->container_id, container_id) != 0;
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                memcpy(m->container_id, next.container_id, sizeof(m->container_id));
                memcpy(m->container_name, next.container_name, sizeof(m->container_name));
                m->reload_signal = reload_signal;
        }
        char scid[SD_SHORT_ID_CHARS + 1];
        log_info("instance %s of volume '%s' %s container %s (%s)", sid, m->volume,
                 relinked ? "relinked to" : "belongs to", sd_short_id(container_id, scid), container_name);
        return 1;
}

int agent_mount_wipe(struct agent *a, const char *id, const char *expect_container, unsigned expect_refcount,
                     const char *why) {
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(id, sid);
        struct mount_record *m = mount_find(a, id);
        if (!m)
                return -ENOENT;
        /* The caller decided from a snapshot taken without the lock; a
         * Mount since then (docker cp, a restart reusing the id) makes
         * the instance live again. */
        if (strcmp(m->container_id, expect_container) != 0 || m->refcount != expect_refcount)
                return -EBUSY;
        int r = sd_tmpfs_instance_destroy(a->instances_dir, id, &err);
        if (r < 0 && r != -ENOENT) {
                {
                        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                        m->refcount = 0;
                }
                sd_error tmp = { 0 };
                if (mount_record_save(a, m, &tmp) < 0)
                        log_error("instance %s: %s", sid, tmp.message);
                log_error("instance %s of volume '%s' (%s): cannot wipe: %s", sid, m->volume, why, err.message);
                return r;
        }
        mount_record_unlink(a, id);
        {
                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                array_remove((void **) a->mounts, &a->n_mounts, m);
        }
        size_t slots = sizeof(a->recently_wiped) / sizeof(a->recently_wiped[0]);
        memcpy(a->recently_wiped[a->recently_wiped_next++ % slots], m->id, sizeof(m->id));
        log_info("wiped instance %s of volume '%s': %s", sid, m->volume, why);
        mount_record_free(m);
        return 0;
}

json_t *agent_volume_get(struct agent *a, const struct plugin_name_request *req) {
        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);

        /* Only an unknown volume gets Err: dockerd takes any Err as "does
         * not exist" and purges its own record of the volume. */
        struct volume *v = volume_find(a, req->name);
        if (!v)
                return plugin_error_reply("no such volume");

        size_t n = volume_instances(a, v->name);
        _cleanup_json_ json_t *secrets = json_array();
        _cleanup_json_ json_t *delivered = json_object();
        _cleanup_json_ json_t *mountpoints = json_array();
        if (!secrets || !delivered || !mountpoints)
                return NULL;
        for (size_t i = 0; i < v->spec.n_secrets; i++) {
                /* One secret may be delivered under several file names. */
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || strcmp(v->spec.secrets[j].name, v->spec.secrets[i].name) == 0;
                if (!seen && json_array_append_new(secrets, json_string(v->spec.secrets[i].name)) < 0)
                        return NULL;
        }
        for (size_t i = 0; i < a->n_mounts; i++) {
                const struct mount_record *m = a->mounts[i];
                if (m->refcount == 0 || strcmp(m->volume, v->name) != 0)
                        continue;
                if (json_array_append_new(mountpoints, json_string(m->mountpoint)) < 0)
                        return NULL;
                for (size_t j = 0; j < m->n_versions; j++) {
                        json_t *cur = json_object_get(delivered, m->versions[j].name);
                        if (cur && (uint64_t) json_integer_value(cur) >= m->versions[j].version)
                                continue;
                        if (json_object_set_new(delivered, m->versions[j].name,
                                                json_integer((json_int_t) m->versions[j].version)) < 0)
                                return NULL;
                }
        }
        json_t *opts = volume_spec_to_json(&v->spec);
        if (!opts)
                return NULL;
        char created[32];
        format_time(v->created_at, created);
        return json_pack("{s:{s:s,s:s,s:s,s:{s:O,s:O,s:I,s:O,s:o}}}", "Volume", "Name", v->name, "Mountpoint",
                         volume_mountpoint, "CreatedAt", created, "Status", "secrets", secrets, "delivered",
                         delivered, "instances", (json_int_t) n, "mountpoints", mountpoints, "opts", opts);
}

json_t *agent_volume_path(struct agent *a, const struct plugin_name_request *req) {
        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
        struct volume *v = volume_find(a, req->name);
        if (!v) {
                char msg[SD_NAME_MAX + 32];
                (void) snprintf(msg, sizeof(msg), "no such volume '%s'", req->name);
                return plugin_error_reply(msg);
        }
        return json_pack("{s:s}", "Mountpoint", volume_mountpoint);
}

json_t *agent_volume_list(struct agent *a) {
        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
        _cleanup_json_ json_t *list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < a->n_volumes; i++)
                if (json_array_append_new(list, json_pack("{s:s,s:s}", "Name", a->volumes[i]->name,
                                                          "Mountpoint", volume_mountpoint)) < 0)
                        return NULL;
        return json_pack("{s:O}", "Volumes", list);
}

/* ---- start-up: load and reconcile ---- */

void agent_init(struct agent *a) {
        *a = (struct agent) { .state_fd = -1, .volumes_fd = -1, .mounts_fd = -1, .floor_fd = -1 };
        (void) pthread_mutex_init(&a->ops_lock, NULL);
        (void) pthread_mutex_init(&a->reg_lock, NULL);
        agent_status_init(&a->status);
}

void agent_done(struct agent *a) {
        for (size_t i = 0; i < a->n_volumes; i++)
                free(a->volumes[i]);
        free(a->volumes);
        for (size_t i = 0; i < a->n_mounts; i++)
                mount_record_free(a->mounts[i]);
        free(a->mounts);
        json_decref(a->delivered);
        free(a->instances_dir);
        sd_closep(&a->state_fd);
        sd_closep(&a->volumes_fd);
        sd_closep(&a->mounts_fd);
        sd_closep(&a->floor_fd);
        agent_status_done(&a->status);
        (void) pthread_mutex_destroy(&a->ops_lock);
        (void) pthread_mutex_destroy(&a->reg_lock);
        a->volumes = NULL;
        a->mounts = NULL;
        a->delivered = NULL;
        a->instances_dir = NULL;
        a->n_volumes = a->n_mounts = 0;
}

/* "<name>.json" -> name, or NULL for anything else (temp files, strays). */
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
                if (strncmp(de->d_name, SD_TEMP_PREFIX, strlen(SD_TEMP_PREFIX)) == 0) {
                        if (unlinkat(dirfd, de->d_name, 0) == 0)
                                log_info("removed leftover temporary file %s/%s", what, de->d_name);
                }
}

static int volume_load(struct agent *a, const char *file, struct volume **out, sd_error *err) {
        char stem[SD_NAME_MAX + 1];
        if (!json_file_stem(file, stem, sizeof(stem)))
                return sd_error_set(err, EINVAL, "%s: not a volume definition file name", file);
        _cleanup_json_ json_t *root = NULL;
        int r = read_json_at(a->volumes_fd, file, &root, err);
        if (r < 0)
                return r;
        const char *name = json_string_value(json_object_get(root, "Name"));
        json_t *created = json_object_get(root, "CreatedAt");
        if (!name || strcmp(name, stem) != 0 || volume_name_validate(name, strlen(name), err) < 0 ||
            !json_is_integer(created))
                return sd_error_set(err, EBADMSG, "%s: malformed volume definition", file);
        _cleanup_free_ struct volume *v = calloc(1, sizeof(*v));
        if (!v)
                return sd_error_set(err, ENOMEM, "out of memory");
        /* A volume made under a larger max-size keeps its size. */
        const struct volume_limits any = { .default_size = a->limits.default_size, .max_size = SD_SIZE_MAX };
        r = volume_opts_parse(json_object_get(root, "Opts"), &any, &v->spec, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", file);
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
static int mount_record_link_load(const json_t *root, struct mount_record *m) {
        const char *cid = json_string_value(json_object_get(root, "ContainerID"));
        const char *cname = json_string_value(json_object_get(root, "ContainerName"));
        json_t *sig = json_object_get(root, "ReloadSignal");
        if (!cid)
                return 0;
        if (!container_id_valid(cid) || !cname || strlen(cname) > SD_DOCKER_NAME_MAX ||
            !json_is_integer(sig) || json_integer_value(sig) < -EINVAL || json_integer_value(sig) > 64)
                return -EBADMSG;
        for (const char *p = cname; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return -EBADMSG;
        memcpy(m->container_id, cid, strlen(cid) + 1);
        memcpy(m->container_name, cname, strlen(cname) + 1);
        m->reload_signal = (int) json_integer_value(sig);
        return 0;
}

static int mount_record_load(struct agent *a, const char *file, struct mount_record **out, sd_error *err) {
        char stem[MOUNT_ID_MAX + 1];
        if (!json_file_stem(file, stem, sizeof(stem)))
                return sd_error_set(err, EINVAL, "%s: not a mount record file name", file);
        _cleanup_json_ json_t *root = NULL;
        int r = read_json_at(a->mounts_fd, file, &root, err);
        if (r < 0)
                return r;
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

        _cleanup_mount_record_ struct mount_record *m = calloc(1, sizeof(*m));
        if (!m)
                return sd_error_set(err, ENOMEM, "out of memory");
        memcpy(m->id, id, strlen(id) + 1);
        memcpy(m->volume, volume, strlen(volume) + 1);
        m->refcount = (unsigned) json_integer_value(refcount);
        m->generation = (uint64_t) json_integer_value(generation);
        const char *key;
        json_t *value;
        json_object_foreach(versions, key, value) {
                if (sd_name_validate("secret name", key, strlen(key), NULL) < 0 || !json_is_integer(value))
                        return sd_error_set(err, EBADMSG, "%s: malformed mount record", file);
                struct delivered_version *dv = &m->versions[m->n_versions++];
                memcpy(dv->name, key, strlen(key) + 1);
                dv->version = (uint64_t) json_integer_value(value);
        }
        json_t *mounted_at = json_object_get(root, "MountedAt");
        if (json_is_integer(mounted_at))
                m->mounted_at = (int64_t) json_integer_value(mounted_at);
        if (mount_record_link_load(root, m) < 0)
                return sd_error_set(err, EBADMSG, "%s: malformed container link", file);
        if (sd_tmpfs_instance_ro_path(a->instances_dir, m->id, &m->mountpoint) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = steal_pointer(&m);
        return 0;
}

static int load_volumes(struct agent *a, sd_error *err) {
        int fd = dup(a->volumes_fd);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "%s/volumes", a->state_dir);
        _cleanup_closedir_ DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return sd_error_set_errno(err, errno, "%s/volumes", a->state_dir);
        }
        remove_temp_files(a->volumes_fd, d, "volumes");
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct volume *v = NULL;
                sd_error sub = { 0 };
                if (volume_load(a, de->d_name, &v, &sub) < 0) {
                        log_error("%s/volumes: skipping %s", a->state_dir, sub.message);
                        continue;
                }
                if (array_append((void ***) &a->volumes, &a->n_volumes, v) < 0) {
                        free(v);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                log_debug("loaded volume '%s'", v->name);
        }
        return 0;
}

static int load_mounts(struct agent *a, sd_error *err) {
        int fd = dup(a->mounts_fd);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "%s/mounts", a->state_dir);
        _cleanup_closedir_ DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return sd_error_set_errno(err, errno, "%s/mounts", a->state_dir);
        }
        remove_temp_files(a->mounts_fd, d, "mounts");
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                struct mount_record *m = NULL;
                sd_error sub = { 0 };
                char sid[SD_SHORT_ID_CHARS + 1];
                if (mount_record_load(a, de->d_name, &m, &sub) < 0) {
                        char stem[MOUNT_ID_MAX + 1];
                        log_error("%s/mounts: dropping %s", a->state_dir, sub.message);
                        if (json_file_stem(de->d_name, stem, sizeof(stem)) &&
                            mount_id_validate(stem, strlen(stem), NULL) == 0)
                                instance_destroy_logged(a, stem, "its mount record is unreadable");
                        (void) unlinkat(a->mounts_fd, de->d_name, 0);
                        continue;
                }
                sd_short_id(m->id, sid);
                int mounted = sd_tmpfs_instance_is_mounted(a->instances_dir, m->id);
                if (mounted < 0) {
                        /* Unsure: keep it.  Wiping a running container's
                         * secrets is worse than an instance that its
                         * Unmount will still remove. */
                        log_warn("instance %s: cannot tell whether it is mounted (%s); adopting it", sid,
                                 strerror(-mounted));
                        mounted = 1;
                }
                if (m->refcount == 0 || mounted != 1) {
                        instance_destroy_logged(a, m->id, m->refcount == 0 ? "its last unmount did not finish"
                                                                           : "no longer mounted");
                        mount_record_unlink(a, m->id);
                        mount_record_free(m);
                        continue;
                }
                if (!volume_find(a, m->volume))
                        log_warn("instance %s belongs to unknown volume '%s'; keeping it until its unmount",
                                 sid, m->volume);
                if (array_append((void ***) &a->mounts, &a->n_mounts, m) < 0) {
                        mount_record_free(m);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                log_info("adopted instance %s of volume '%s' (%u reference(s))", sid, m->volume, m->refcount);
        }
        return 0;
}

static int destroy_orphan_instances(struct agent *a, sd_error *err) {
        char **ids = NULL;
        size_t n = 0;
        int r = sd_tmpfs_instance_list(a->instances_dir, &ids, &n, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!mount_find(a, ids[i]))
                        instance_destroy_logged(a, ids[i], "no mount record");
        sd_tmpfs_ids_free(ids, n);
        return 0;
}

static int open_state_subdir(struct agent *a, const char *name, sd_error *err) {
        int fd = sd_open_dir_at(a->state_fd, name, true, 0700);
        if (fd < 0)
                return sd_error_set_errno(err, -fd, "%s/%s: cannot create or open", a->state_dir, name);
        return fd;
}

/* A floor file's versions, or an empty floor when it is missing or
 * unreadable: losing the floor only weakens rollback protection back to
 * what a fresh host has; refusing to start would stop every container that
 * needs a secret. */
static json_t *floor_read(int dirfd, const char *file, const char *shown_path) {
        json_t *floor = NULL;
        sd_error sub = { 0 };
        int r = read_json_at(dirfd, file, &floor, &sub);
        if (r < 0 && r != -ENOENT)
                log_error("%s: %s; rollback floor starts empty", shown_path, sub.message);
        return floor ? floor : json_object();
}

/* The rollback floor lives in floor-file (by default under /var/lib: a
 * floor on /run is gone after a reboot, and with it the memory of what was
 * delivered), else in the state directory.  Its directory must be ours and
 * closed to others: whoever can replace the file can lower the floor.  A
 * floor left in the state directory by an older agent is merged in. */
static int floor_open(struct agent *a, sd_error *err) {
        _cleanup_free_ char *legacy_path = NULL;
        if (asprintf(&legacy_path, "%s/%s", a->state_dir, DELIVERED_FILE) < 0) {
                legacy_path = NULL;
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        if (!a->floor_file || strcmp(a->floor_file, legacy_path) == 0) {
                a->floor_fd = fcntl(a->state_fd, F_DUPFD_CLOEXEC, 3);
                if (a->floor_fd < 0)
                        return sd_error_set_errno(err, errno, "state directory %s", a->state_dir);
                a->floor_name = DELIVERED_FILE;
                a->delivered = floor_read(a->floor_fd, a->floor_name, legacy_path);
                return a->delivered ? 0 : sd_error_set(err, ENOMEM, "out of memory");
        }

        const char *base;
        int fd = sd_open_parent(a->floor_file, true, 0700, &base, err);
        if (fd < 0)
                return sd_error_prefix(err, fd, "floor-file");
        a->floor_fd = fd;
        a->floor_name = base;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "floor-file %s: its directory", a->floor_file);
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return sd_error_set(err, EPERM,
                                    "floor-file %s: its directory is owned by uid %u with mode %04o; it must be "
                                    "owned by this agent and not writable by group or others",
                                    a->floor_file, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));

        a->delivered = floor_read(a->floor_fd, a->floor_name, a->floor_file);
        _cleanup_json_ json_t *legacy = floor_read(a->state_fd, DELIVERED_FILE, legacy_path);
        if (!a->delivered || !legacy)
                return sd_error_set(err, ENOMEM, "out of memory");
        const char *name;
        json_t *version;
        bool raised = false;
        json_object_foreach(legacy, name, version) {
                if (!json_is_integer(version) || json_integer_value(version) <= 0 ||
                    (uint64_t) json_integer_value(version) <= delivered_floor(a, name))
                        continue;
                if (json_object_set(a->delivered, name, version) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
                raised = true;
        }
        if (raised) {
                sd_error sub = { 0 };
                if (write_json_at(a->floor_fd, a->floor_name, a->delivered, &sub) < 0)
                        log_error("floor-file %s: %s", a->floor_file, sub.message);
                else
                        log_info("rollback floor from %s merged into %s", legacy_path, a->floor_file);
        }
        return 0;
}

int agent_state_open(struct agent *a, sd_error *err) {
        int r = sd_mkdir_p(a->state_dir, 0700);
        if (r < 0)
                return sd_error_set_errno(err, -r, "state directory %s: cannot create", a->state_dir);
        a->state_fd = open(a->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (a->state_fd < 0)
                return sd_error_set_errno(err, errno, "state directory %s: cannot open", a->state_dir);
        struct stat st;
        if (fstat(a->state_fd, &st) < 0)
                return sd_error_set_errno(err, errno, "state directory %s", a->state_dir);
        if (st.st_uid != geteuid())
                return sd_error_set(err, EPERM, "state directory %s is owned by uid %u, not by this agent",
                                    a->state_dir, (unsigned) st.st_uid);
        if ((st.st_mode & 07777) != 0700 && fchmod(a->state_fd, 0700) < 0)
                return sd_error_set_errno(err, errno, "state directory %s: cannot chmod 0700", a->state_dir);

        r = open_state_subdir(a, "volumes", err);
        if (r < 0)
                return r;
        a->volumes_fd = r;
        r = open_state_subdir(a, "mounts", err);
        if (r < 0)
                return r;
        a->mounts_fd = r;
        r = open_state_subdir(a, "instances", err);
        if (r < 0)
                return r;
        (void) close(r);
        if (asprintf(&a->instances_dir, "%s/instances", a->state_dir) < 0) {
                a->instances_dir = NULL;
                return sd_error_set(err, ENOMEM, "out of memory");
        }

        r = floor_open(a, err);
        if (r < 0)
                return r;

        r = load_volumes(a, err);
        if (r < 0)
                return r;
        r = load_mounts(a, err);
        if (r < 0)
                return r;
        r = destroy_orphan_instances(a, err);
        if (r < 0)
                return r;
        log_info("state %s: %zu volume(s), %zu live instance(s)", a->state_dir, a->n_volumes, a->n_mounts);
        return 0;
}
