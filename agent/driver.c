/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Docker volume plugin endpoints (driver.h). */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "driver.h"
#include "fileio.h"
#include "httpd.h"
#include "log.h"
#include "notes.h"
#include "registry.h"
#include "request.h"
#include "secretd/cleanup.h"

#define PLUGIN_CONTENT_TYPE "application/vnd.docker.plugins.v1+json"

/* dockerd waits up to 2 minutes for Create and Mount; an idle keep-alive
 * connection is dropped well before anything piles up. */
#define CONNECTION_TIMEOUT_S 150
/* dockerd opens one connection per call and a `docker compose up` of many
 * services calls in parallel; each connection is a thread with its own
 * stack, so the cap stays well below RLIMIT_NOFILE (1024) and keeps memory
 * bounded.  tests/integration/test-sockets.sh holds 200 at once. */
#define CONNECTION_LIMIT 256
/* libmicrohttpd's per-connection pool holds the headers and its read
 * buffer (bodies are copied out as they arrive, up to PLUGIN_BODY_MAX).
 * Above 32 KiB it mmaps the pool and munmaps it at close: a TLB shootdown
 * on every core for each of dockerd's calls; at 32 KiB it is malloc()ed. */
#define CONNECTION_MEMORY 32768
/* A Mount that lost the race against a rotation of one of its secrets
 * fetches again; more than this many losses in a row is a store that
 * changes faster than it can be read. */
#define MOUNT_ATTEMPTS 3

/* What Get, List and Path report as the volume's Mountpoint.  Each Mount
 * gets its own instance, so a volume has no single path; and dockerd
 * caches the first non-empty Path answer for the volume's life and shows
 * it as the Source of every later container, which would point at another
 * container's (maybe long wiped) instance.  Get's Status lists the live
 * instance paths instead. */
static const char volume_mountpoint[] = "";

json_t *driver_error_reply(const char *message) {
        return json_pack("{s:s}", "Err", message);
}

static json_t *error_reply(const sd_error *err) {
        return driver_error_reply(err->message[0] ? err->message : "internal error");
}

static void format_time(int64_t t, char out[32]) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* ---- fetching a volume's secrets ---- */

/* A volume's secrets, fetched: each distinct secret once (a secret may be
 * delivered under several file names). */
struct volume_fetch {
        size_t n;                                   /* = spec->n_secrets */
        size_t first[VOLUME_SECRETS_MAX];           /* entry i uses fetched[first[i]] */
        struct fetched fetched[VOLUME_SECRETS_MAX];
        uint64_t seen[VOLUME_SECRETS_MAX];          /* the floor before the fetch */
        uint64_t versions[VOLUME_SECRETS_MAX];      /* by spec entry */
};

static void volume_fetch_release(struct delivery *d, struct volume_fetch *vf) {
        for (size_t i = 0; i < vf->n; i++)
                delivery_release(d, &vf->fetched[i]);
}

/* Fetch (steps 1-2) every secret of spec and check the size, retrying an
 * unreachable store until deadline_ms (delivery_fetch_until).  On failure:
 * refusal noted (instance: the mount id or NULL), err prefixed with the
 * volume, vf released. */
static int volume_fetch_all(struct driver *drv, const char *volume, const char *instance,
                            const struct volume_spec *spec, int64_t deadline_ms, struct volume_fetch *vf,
                            sd_error *err) {
        /* What was verified before need not be opened again: Create
         * wants no value, a Mount copies it from an instance if one has
         * it. */
        *vf = (struct volume_fetch) { .n = spec->n_secrets };
        size_t lengths[VOLUME_SECRETS_MAX];
        for (size_t i = 0; i < spec->n_secrets; i++) {
                const char *name = spec->secrets[i].name;
                size_t j = 0;
                while (j < i && strcmp(spec->secrets[j].name, name) != 0)
                        j++;
                vf->first[i] = j;
                if (j == i) {
                        vf->seen[i] = registry_floor(drv->registry, name);
                        enum delivery_step step;
                        sd_error sub = { 0 };
                        int r = delivery_fetch_until(drv->delivery, name,
                                                     DELIVERY_REUSE_VERIFIED | DELIVERY_NEWEST_VERIFIED, vf->seen[i],
                                                     deadline_ms, &vf->fetched[i], &step, &sub);
                        if (r < 0) {
                                volume_fetch_release(drv->delivery, vf);
                                sd_error_set(err, -r, "volume '%s': %s", volume, sub.message);
                                const struct note_instance in = { .id = instance, .volume = volume };
                                if (delivery_error_is_transient(step, r)) {
                                        /* Not a refusal: the store could not be asked. */
                                        metrics_error(ERROR_STORE);
                                        return r;
                                }
                                note_refusal(drv->notes, delivery_error_kind(step, r), volume, NULL, &in,
                                             instance ? 1 : 0, err->message);
                                return r;
                        }
                } else {
                        vf->seen[i] = vf->seen[j];
                }
                vf->versions[i] = vf->fetched[j].version;
                lengths[i] = vf->fetched[j].len;
        }
        int r = delivery_check_size(volume, spec, lengths, registry_limits(drv->registry).max_size, err);
        if (r < 0) {
                volume_fetch_release(drv->delivery, vf);
                const struct note_instance in = { .id = instance, .volume = volume };
                note_refusal(drv->notes, delivery_error_kind(DELIVERY_WRITE, r), volume, NULL, &in, instance ? 1 : 0,
                             err->message);
        }
        return r;
}

/* Secrets taken from a stand-in for the store (the local cache, while the
 * store is unreachable): counted, and said once per Create or Mount. */
static void note_stand_ins(struct driver *drv, const char *what, const char *volume, const struct volume_spec *spec,
                           const struct volume_fetch *vf) {
        char names[512];
        size_t used = 0, n = 0;
        names[0] = '\0';
        for (size_t i = 0; i < spec->n_secrets; i++) {
                const struct fetched *f = &vf->fetched[i];
                if (vf->first[i] != i || !f->stand_in)
                        continue;
                n++;
                note_cache_delivery(drv->notes);
                int k = snprintf(names + used, sizeof(names) - used, "%s%s v%" PRIu64, used ? ", " : "", f->secret,
                                 f->version);
                if (k > 0 && (size_t) k < sizeof(names) - used)
                        used += (size_t) k;
        }
        if (n > 0)
                log_warn("%s of volume '%s': the store is unreachable; %zu secret(s) from the local cache: %s (newer "
                         "versions follow once the store answers)",
                         what, volume, n, names);
}

/* A floor decision refused (not -EAGAIN): noted, err prefixed. */
static void decide_refused(struct driver *drv, const char *volume, const char *instance, int r, sd_error *err) {
        sd_error_prefix(err, r, "volume '%s'", volume);
        const struct note_instance in = { .id = instance, .volume = volume };
        note_refusal(drv->notes, delivery_error_kind(DELIVERY_DECIDE, r), volume, NULL, &in, instance ? 1 : 0,
                     err->message);
}

/* The files of a new instance: each value that was opened, or a copy
 * from a live instance that holds that version (no open needed); with
 * no such instance, or if the copy fails (the source changed meanwhile),
 * the envelope is opened after all. */
static int write_instance(struct driver *drv, const char *id, const struct volume_spec *spec,
                          const struct sd_tmpfs_params *params, struct volume_fetch *vf, char **mountpoint_out,
                          sd_error *err) {
        struct sd_tmpfs_file files[VOLUME_SECRETS_MAX];
        struct instance_source sources[VOLUME_SECRETS_MAX];
        for (unsigned attempt = 0;; attempt++) {
                bool copies = false;
                for (size_t i = 0; i < spec->n_secrets; i++) {
                        struct fetched *f = &vf->fetched[vf->first[i]];
                        files[i] = (struct sd_tmpfs_file) { .name = spec->secrets[i].file, .value = f->value };
                        if (!f->unopened)
                                continue;
                        if (attempt == 0 && registry_find_source(drv->registry, f->secret, f->version, id, &sources[i])) {
                                files[i].source_id = sources[i].id;
                                files[i].source_name = sources[i].file;
                                files[i].source_generation = sources[i].generation;
                                files[i].source_len = f->len;
                                copies = true;
                                continue;
                        }
                        int r = delivery_open_fetched(drv->delivery, f, err);
                        if (r < 0)
                                return r;
                        files[i].value = f->value;
                }
                int r = delivery_write_new(drv->delivery, id, params, files, spec->n_secrets, mountpoint_out, err);
                if (r == 0 || !copies || !(r == -ESTALE || r == -ENOENT || r == -EBADMSG))
                        return r;
                char sid[SD_SHORT_ID_CHARS + 1];
                log_debug("mount %s: %s; opening the envelopes instead", sd_short_id(id, sid), err->message);
                sd_error_clear(err);
        }
}

/* ---- endpoints ---- */

static json_t *on_create(struct driver *drv, const struct plugin_create_request *req) {
        sd_error err = { 0 };
        int r = registry_volume_check(drv->registry, req->name, &req->spec, &err);
        if (r == 1) {
                /* dockerd re-sends Create after a broken connection. */
                log_debug("volume '%s' already exists with the same options", req->name);
                return json_object();
        }
        if (r < 0) {
                log_warn("create: %s", err.message);
                if (r == -EDQUOT)
                        note_refusal(drv->notes, ERROR_TMPFS, req->name, NULL, NULL, 0, err.message);
                return error_reply(&err);
        }

        /* Fetch every secret once now, so a typo, a missing recipient entry
         * or an untrusted writer shows at `docker volume create`, not at
         * the first container start. */
        _cleanup_free_ struct volume_fetch *vf = malloc(sizeof(*vf));
        if (!vf)
                return NULL;
        int64_t deadline = delivery_retry_deadline(drv->delivery);
        for (unsigned attempt = 1;; attempt++) {
                r = volume_fetch_all(drv, req->name, NULL, &req->spec, deadline, vf, &err);
                if (r < 0) {
                        log_warn("create: %s", err.message);
                        return error_reply(&err);
                }
                for (size_t i = 0; r == 0 && i < vf->n; i++)
                        if (vf->first[i] == i)
                                r = registry_floor_decide(drv->registry, req->spec.secrets[i].name, vf->versions[i],
                                                          vf->seen[i], &err);
                if (r == 0)
                        note_stand_ins(drv, "create", req->name, &req->spec, vf);
                volume_fetch_release(drv->delivery, vf);
                if (r != -EAGAIN || attempt == MOUNT_ATTEMPTS)
                        break;
                sd_error_clear(&err);
        }
        if (r < 0) {
                decide_refused(drv, req->name, NULL, r, &err);
                log_warn("create: %s", err.message);
                return error_reply(&err);
        }

        r = registry_volume_add(drv->registry, req->name, &req->spec, &err);
        if (r < 0) {
                log_error("create: %s", err.message);
                return error_reply(&err);
        }
        if (r == 0)
                log_info("volume '%s' created: %zu secret(s), uid %" PRIu32 ", gid %" PRIu32 ", mode %04" PRIo32
                         ", size %" PRIu64,
                         req->name, req->spec.n_secrets, req->spec.uid, req->spec.gid, req->spec.mode, req->spec.size);
        return json_object();
}

static json_t *on_remove(struct driver *drv, const struct plugin_name_request *req) {
        sd_error err = { 0 };
        int r = registry_volume_remove(drv->registry, req->name, &err);
        if (r == 1) {
                /* Refusing would leave dockerd unable to remove its own
                 * record of the volume forever. */
                log_warn("remove: volume '%s' is not known; nothing to do", req->name);
                return json_object();
        }
        if (r < 0) {
                if (r == -EBUSY)
                        log_warn("remove: %s", err.message);
                else
                        log_error("remove: %s", err.message);
                return error_reply(&err);
        }
        log_info("volume '%s' removed", req->name);
        return json_object();
}

/* "db_password v3, api_key v1" for the log. */
static void delivered_text(const struct volume_spec *spec, const struct volume_fetch *vf, char *out, size_t size) {
        size_t used = 0;
        out[0] = '\0';
        for (size_t i = 0; i < spec->n_secrets && used < size; i++) {
                if (vf->first[i] != i)
                        continue;
                int n = snprintf(out + used, size - used, "%s%s v%" PRIu64, used ? ", " : "", spec->secrets[i].name,
                                 vf->versions[i]);
                if (n < 0)
                        break;
                used += (size_t) n;
        }
}

static void stale_reasons_free(char *(*reasons)[VOLUME_SECRETS_MAX]) {
        for (size_t i = 0; i < VOLUME_SECRETS_MAX; i++)
                free((*reasons)[i]);
}

static json_t *on_mount(struct driver *drv, const struct plugin_mount_request *req) {
        sd_error err = { 0 };
        char sid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(req->id, sid);

        struct mount_reservation res;
        _cleanup_free_ char *mountpoint = NULL;
        int r = registry_mount_reserve(drv->registry, req->name, req->id, &res, &mountpoint, &err);
        if (r == 1)
                return json_pack("{s:s}", "Mountpoint", mountpoint);
        if (r < 0) {
                log_warn("mount %s: %s", sid, err.message);
                if (r == -EDQUOT)
                        note_refusal(drv->notes, ERROR_TMPFS, req->name, NULL,
                                     &(struct note_instance) { .id = req->id, .volume = req->name }, 1, err.message);
                return error_reply(&err);
        }
        _cleanup_free_ struct volume_spec *spec = res.spec;
        _cleanup_free_ struct volume_fetch *vf = malloc(sizeof(*vf));
        if (!vf) {
                registry_mount_abandon(drv->registry, &res, "out of memory");
                return NULL;
        }
        int64_t deadline = delivery_retry_deadline(drv->delivery);
        for (unsigned attempt = 1;; attempt++) {
                r = volume_fetch_all(drv, req->name, req->id, spec, deadline, vf, &err);
                if (r < 0) {
                        log_warn("mount %s: %s", sid, err.message);
                        registry_mount_abandon(drv->registry, &res, "mount failed");
                        return error_reply(&err);
                }
                size_t stale = 0;
                r = registry_mount_decide(drv->registry, &res, vf->versions, vf->seen, &stale, &err);
                if (r == 0)
                        break;
                volume_fetch_release(drv->delivery, vf);
                if (r == -EAGAIN && attempt < MOUNT_ATTEMPTS) {
                        log_debug("mount %s: %s; fetching again", sid, err.message);
                        sd_error_clear(&err);
                        continue;
                }
                decide_refused(drv, req->name, req->id, r, &err);
                log_warn("mount %s: %s", sid, err.message);
                registry_mount_abandon(drv->registry, &res, "mount failed");
                return error_reply(&err);
        }

        struct sd_tmpfs_params params;
        r = delivery_params(drv->delivery, spec, &params, &err);
        if (r < 0) {
                log_error("mount %s of volume '%s': %s", sid, req->name, err.message);
                volume_fetch_release(drv->delivery, vf);
                registry_mount_abandon(drv->registry, &res, "mount failed");
                return error_reply(&err);
        }
        r = write_instance(drv, req->id, spec, &params, vf, &mountpoint, &err);
        char delivered[512];
        delivered_text(spec, vf, delivered, sizeof(delivered));
        char writers[VOLUME_SECRETS_MAX][SD_KEY_ID_CHARS + 1];
        /* Why an entry's newest version was passed over (NULL: it was not). */
        __attribute__((cleanup(stale_reasons_free))) char *stale_reasons[VOLUME_SECRETS_MAX] = { 0 };
        uint64_t newest[VOLUME_SECRETS_MAX];
        for (size_t i = 0; i < spec->n_secrets; i++) {
                struct fetched *f = &vf->fetched[vf->first[i]];
                memcpy(writers[i], f->writer, sizeof(writers[i]));
                newest[i] = f->newest;
                if (vf->first[i] == i && f->newest > f->version)
                        stale_reasons[i] = steal_pointer(&f->stale_reason);
        }
        if (r == 0) {
                char what[SD_SHORT_ID_CHARS + 16];
                (void) snprintf(what, sizeof(what), "mount %s", sid);
                note_stand_ins(drv, what, req->name, spec, vf);
        }
        /* The files are written (or not): the plaintext goes now. */
        volume_fetch_release(drv->delivery, vf);
        if (r < 0) {
                sd_error_prefix(&err, r, "volume '%s'", req->name);
                log_error("mount %s: %s", sid, err.message);
                note_refusal(drv->notes, delivery_error_kind(DELIVERY_WRITE, r), req->name, NULL,
                             &(struct note_instance) { .id = req->id, .volume = req->name }, 1, err.message);
                registry_mount_abandon(drv->registry, &res, "mount failed");
                return error_reply(&err);
        }
        res.instance_made = true;
        _cleanup_json_ json_t *reply = json_pack("{s:s}", "Mountpoint", mountpoint);
        if (!reply) {
                registry_mount_abandon(drv->registry, &res, "mount failed");
                return NULL;
        }
        char *shown = steal_pointer(&mountpoint);
        const char *path = json_string_value(json_object_get(reply, "Mountpoint"));
        r = registry_mount_finish(drv->registry, &res, shown, &err);
        if (r < 0) {
                log_error("mount %s: %s", sid, err.message);
                registry_mount_abandon(drv->registry, &res, "mount failed");
                return error_reply(&err);
        }
        log_info("mount %s of volume '%s': delivered %s at %s", sid, req->name, delivered, path);
        const struct note_instance in = { .id = req->id, .volume = req->name };
        for (size_t i = 0; i < spec->n_secrets; i++) {
                if (vf->first[i] != i)
                        continue;
                if (!stale_reasons[i]) {
                        note_delivery(drv->notes, &in, spec->secrets[i].name, vf->versions[i], writers[i]);
                        continue;
                }
                log_warn("mount %s of volume '%s': secret '%s' version %" PRIu64 " does not verify (%s); delivered "
                         "version %" PRIu64 ", the newest that does (on-unverifiable = previous)",
                         sid, req->name, spec->secrets[i].name, newest[i], stale_reasons[i], vf->versions[i]);
                note_stale_delivery(drv->notes, &in, spec->secrets[i].name, vf->versions[i], writers[i], false,
                                    stale_reasons[i]);
        }
        return steal_pointer(&reply);
}

static json_t *on_unmount(struct driver *drv, const struct plugin_mount_request *req) {
        sd_error err = { 0 };
        if (registry_unmount(drv->registry, req->name, req->id, &err) < 0)
                return error_reply(&err);
        return json_object();
}

/* ---- Get, List, Path: from memory, never waiting behind the store ---- */

struct get_job {
        const char *name;
        json_t *reply;
        bool found;
};

static void get_visit(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                      const struct mount_record *const *records, size_t n_records) {
        struct get_job *job = userdata;
        const struct volume *v = NULL;
        for (size_t i = 0; !v && i < n_volumes; i++)
                if (strcmp(volumes[i]->name, job->name) == 0)
                        v = volumes[i];
        if (!v)
                return;
        job->found = true;
        _cleanup_json_ json_t *secrets = volume_spec_secret_names(&v->spec);
        _cleanup_json_ json_t *delivered = json_object();
        _cleanup_json_ json_t *mountpoints = json_array();
        if (!secrets || !delivered || !mountpoints)
                return;
        size_t n = 0;
        for (size_t i = 0; i < n_records; i++) {
                const struct mount_record *m = records[i];
                if (m->state != RECORD_LIVE || strcmp(m->volume, v->name) != 0)
                        continue;
                n++;
                if (json_array_append_new(mountpoints, json_string(m->mountpoint)) < 0)
                        return;
                for (size_t j = 0; j < m->n_versions; j++) {
                        json_t *cur = json_object_get(delivered, m->versions[j].name);
                        if (cur && (uint64_t) json_integer_value(cur) >= m->versions[j].version)
                                continue;
                        if (json_object_set_new(delivered, m->versions[j].name,
                                                json_integer((json_int_t) m->versions[j].version)) < 0)
                                return;
                }
        }
        json_t *opts = volume_spec_to_json(&v->spec);
        if (!opts)
                return;
        char created[32];
        format_time(v->created_at, created);
        job->reply = json_pack("{s:{s:s,s:s,s:s,s:{s:O,s:O,s:I,s:O,s:o}}}", "Volume", "Name", v->name, "Mountpoint",
                               volume_mountpoint, "CreatedAt", created, "Status", "secrets", secrets, "delivered",
                               delivered, "instances", (json_int_t) n, "mountpoints", mountpoints, "opts", opts);
}

static json_t *on_get(struct driver *drv, const struct plugin_name_request *req) {
        struct get_job job = { .name = req->name };
        registry_visit(drv->registry, get_visit, &job);
        /* Only an unknown volume gets Err: dockerd takes any Err as "does
         * not exist" and purges its own record of the volume. */
        if (!job.found)
                return driver_error_reply("no such volume");
        return job.reply;
}

struct list_job {
        const char *name;   /* Path: the one volume asked for */
        json_t *reply;
        bool found;
};

static void list_visit(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                       const struct mount_record *const *records, size_t n_records) {
        struct list_job *job = userdata;
        (void) records;
        (void) n_records;
        if (job->name) {
                for (size_t i = 0; i < n_volumes; i++)
                        job->found = job->found || strcmp(volumes[i]->name, job->name) == 0;
                return;
        }
        _cleanup_json_ json_t *list = json_array();
        if (!list)
                return;
        for (size_t i = 0; i < n_volumes; i++)
                if (json_array_append_new(list, json_pack("{s:s,s:s}", "Name", volumes[i]->name, "Mountpoint",
                                                          volume_mountpoint)) < 0)
                        return;
        job->reply = json_pack("{s:O}", "Volumes", list);
}

static json_t *on_list(struct driver *drv) {
        struct list_job job = { 0 };
        registry_visit(drv->registry, list_visit, &job);
        return job.reply;
}

static json_t *on_path(struct driver *drv, const struct plugin_name_request *req) {
        struct list_job job = { .name = req->name };
        registry_visit(drv->registry, list_visit, &job);
        if (!job.found) {
                char msg[SD_NAME_MAX + 32];
                (void) snprintf(msg, sizeof(msg), "no such volume '%s'", req->name);
                return driver_error_reply(msg);
        }
        return json_pack("{s:s}", "Mountpoint", volume_mountpoint);
}

/* ---- routing ---- */

typedef json_t *(*endpoint_fn)(struct driver *drv, const char *body, size_t len, unsigned *status);

static json_t *bad_request(const sd_error *err, unsigned *status) {
        *status = MHD_HTTP_BAD_REQUEST;
        log_warn("bad request: %s", err->message);
        return driver_error_reply(err->message);
}

static json_t *ep_activate(struct driver *drv, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        (void) drv;
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        log_info("activated by dockerd");
        return json_pack("{s:[s]}", "Implements", "VolumeDriver");
}

static json_t *ep_capabilities(struct driver *drv, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        (void) drv;
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        return json_pack("{s:{s:s}}", "Capabilities", "Scope", "local");
}

static json_t *ep_list(struct driver *drv, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        return on_list(drv);
}

static json_t *ep_create(struct driver *drv, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        _cleanup_free_ struct plugin_create_request *req = malloc(sizeof(*req));
        if (!req)
                return NULL;
        const struct volume_limits limits = registry_limits(drv->registry);
        if (plugin_parse_create_request(body, len, &limits, req, &err) < 0)
                return bad_request(&err, status);
        return on_create(drv, req);
}

#define NAME_ENDPOINT(fn, op)                                                                  \
        static json_t *fn(struct driver *drv, const char *body, size_t len, unsigned *status) { \
                sd_error err = { 0 };                                                          \
                struct plugin_name_request req;                                                \
                if (plugin_parse_name_request(body, len, &req, &err) < 0)                      \
                        return bad_request(&err, status);                                      \
                return op(drv, &req);                                                          \
        }
#define MOUNT_ENDPOINT(fn, op)                                                                 \
        static json_t *fn(struct driver *drv, const char *body, size_t len, unsigned *status) { \
                sd_error err = { 0 };                                                          \
                struct plugin_mount_request req;                                               \
                if (plugin_parse_mount_request(body, len, &req, &err) < 0)                     \
                        return bad_request(&err, status);                                      \
                return op(drv, &req);                                                          \
        }

NAME_ENDPOINT(ep_remove, on_remove)
NAME_ENDPOINT(ep_get, on_get)
NAME_ENDPOINT(ep_path, on_path)
MOUNT_ENDPOINT(ep_mount, on_mount)
MOUNT_ENDPOINT(ep_unmount, on_unmount)

static const struct endpoint {
        const char *path;
        endpoint_fn fn;
} endpoints[] = {
        { "/Plugin.Activate", ep_activate },
        { "/VolumeDriver.Capabilities", ep_capabilities },
        { "/VolumeDriver.Create", ep_create },
        { "/VolumeDriver.Remove", ep_remove },
        { "/VolumeDriver.Mount", ep_mount },
        { "/VolumeDriver.Unmount", ep_unmount },
        { "/VolumeDriver.Get", ep_get },
        { "/VolumeDriver.List", ep_list },
        { "/VolumeDriver.Path", ep_path },
};

json_t *driver_dispatch(struct driver *drv, const char *path, const char *body, size_t len, unsigned *status) {
        *status = MHD_HTTP_OK;
        for (size_t i = 0; i < SD_ARRAY_SIZE(endpoints); i++)
                if (strcmp(endpoints[i].path, path) == 0) {
                        log_debug("request %s", path);
                        json_t *reply = endpoints[i].fn(drv, body, len, status);
                        /* With a 200, dockerd shows a bare Err; with any
                         * other status it says "VolumeDriver.Create: Err",
                         * which tells the user who is speaking. */
                        const char *e = json_string_value(json_object_get(reply, "Err"));
                        if (*status == MHD_HTTP_OK && e && e[0])
                                *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                        return reply;
                }
        char shown[64], msg[128];
        sd_escape_for_message(path, strlen(path), shown, sizeof(shown));
        (void) snprintf(msg, sizeof(msg), "unknown endpoint '%s'", shown);
        log_warn("%s", msg);
        *status = MHD_HTTP_NOT_FOUND;
        return driver_error_reply(msg);
}

/* ---- the socket ---- */

static char *error_body(const char *message) {
        _cleanup_json_ json_t *obj = driver_error_reply(message);
        return obj ? json_dumps(obj, JSON_COMPACT) : NULL;
}

static void handle(void *userdata, const struct httpd_request *req, struct httpd_reply *reply) {
        struct driver *drv = userdata;
        unsigned status = MHD_HTTP_OK;
        _cleanup_json_ json_t *obj = driver_dispatch(drv, req->url, req->body, req->len, &status);
        reply->status = status;
        reply->content_type = PLUGIN_CONTENT_TYPE;
        reply->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
}

int driver_socket_path(const char *plugin_dir, const char *driver_name, char **path_out) {
        char *path;
        if (asprintf(&path, "%s/%s.sock", plugin_dir, driver_name) < 0)
                return -ENOMEM;
        *path_out = path;
        return 0;
}

int driver_socket_listen(const char *plugin_dir, const char *driver_name, char **path_out, sd_error *err) {
        int r = sd_mkdir_p(plugin_dir, 0755);
        if (r < 0)
                return sd_error_set_errno(err, -r, "plugin directory %s: cannot create", plugin_dir);
        _cleanup_free_ char *path = NULL;
        if (driver_socket_path(plugin_dir, driver_name, &path) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        int fd = httpd_listen(path, CONNECTION_LIMIT, err);
        if (fd < 0)
                return fd;
        *path_out = steal_pointer(&path);
        return fd;
}

int driver_serve(struct driver *drv, int listen_fd, const char *socket_path, unsigned connection_timeout,
                 struct httpd **out, sd_error *err) {
        const struct httpd_options o = {
                .what = "plugin",
                .handler = handle,
                .userdata = drv,
                .error_body = error_body,
                .error_content_type = PLUGIN_CONTENT_TYPE,
                .method = MHD_HTTP_METHOD_POST,
                .max_body = PLUGIN_BODY_MAX,
                /* One thread per connection: a Mount waiting on a slow
                 * store must not hold up Get, which dockerd calls around
                 * every container start. */
                .thread_per_connection = true,
                .connection_limit = CONNECTION_LIMIT,
                .connection_timeout = connection_timeout ? connection_timeout : CONNECTION_TIMEOUT_S,
                .connection_memory = CONNECTION_MEMORY,
        };
        return httpd_start(&o, listen_fd, socket_path, out, err);
}
