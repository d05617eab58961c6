/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Rotation thread: store watch -> verified fetch -> new generation in every
 * instance -> debounced reload signals.  rotate.h has the contract. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "delivery.h"
#include "log.h"
#include "metrics.h"
#include "notes.h"
#include "registry.h"
#include "rotate.h"
#include "secretd/clock.h"
#include "secretd/docker.h"
#include "secretd/realm.h"

/* Below this many instances one thread publishes; above, two (the host
 * this was measured on has two cores; each publish is ~0.1 ms of
 * syscalls, so threads only pay off for large fan-outs). */
#define PARALLEL_MIN_TARGETS 64
#define PUBLISH_THREADS 2
/* A watch that keeps failing is retried after this long. */
#define WATCH_RETRY_MS 1000
/* A rotation that lost the race against a Mount delivering an even newer
 * version fetches again, this many times at most. */
#define ROTATE_ATTEMPTS 3

struct pending_signal {
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char container_name[SD_DOCKER_NAME_MAX + 1];
        int signo;
        int64_t first_ms, last_ms;       /* CLOCK_MONOTONIC */
};

/* The last refusal warned about, per secret: a forged latest version is
 * seen again at every spurious watch event until a good put supersedes it,
 * and one warning (and one audit line) per cause is enough. */
struct refusal {
        char name[SD_NAME_MAX + 1];
        char message[SD_ERROR_MESSAGE_MAX];
};

struct changed_names {
        char **names;
        size_t n;
        bool oom;
};

struct rotator {
        struct rotator_config cfg;
        struct sd_docker *docker;        /* NULL: no reload signals */
        int stop_fd;                     /* eventfd */
        int watch_fd;                    /* borrowed from the store; -1: none */
        pthread_t thread;
        bool running;

        struct pending_signal *pending;
        size_t n_pending;
        struct refusal *refusals;
        size_t n_refusals;
        /* The policy version every served secret was last checked
         * against (a change re-checks them all). */
        uint64_t policy_checked;

        /* Waiting for the store (rotate.h): names to try again first, and
         * whether every served secret is to be re-checked too. */
        struct changed_names retry;
        bool resync_all;
        int64_t resync_due_ms;           /* CLOCK_MONOTONIC; 0: nothing scheduled */
        int resync_backoff_ms;
        bool unreachable_warned;         /* once per outage */
};

/* What one rotation came to. */
enum rotate_outcome {
        ROTATE_DONE,                     /* delivered, already current, refused, nothing to do */
        ROTATE_UNREACHABLE,              /* the store did not answer: try again later */
};

/* What happened to one instance in one rotation. */
enum target_outcome {
        TARGET_GONE,                     /* unmounted meanwhile */
        TARGET_CURRENT,                  /* already had this version */
        TARGET_KEPT,                     /* tombstone, on-delete=keep: files unchanged */
        TARGET_WRITTEN,                  /* new generation published */
        TARGET_SAME,                     /* the value it held: version recorded, no file changed */
        TARGET_FAILED,
};

struct target_result {
        enum target_outcome outcome;
        bool save;                       /* the record changed: write it */
        bool removed;                    /* tombstone, on-delete=remove */
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char container_name[SD_DOCKER_NAME_MAX + 1];
        int reload_signal;
        sd_error err;
};

/* A volume's spec and tmpfs parameters (owner mapped: userns.h), worked
 * out once per rotation, not once per instance. */
struct spec_entry {
        char volume[SD_NAME_MAX + 1];
        struct volume_spec *spec;        /* NULL: the volume is gone */
        struct sd_tmpfs_params params;
        int params_r;                    /* delivery_params() result */
        sd_error params_err;
};

struct publish_job {
        struct rotator *rot;
        const char *secret;
        const struct fetched *f;
        const struct rotation_target *targets;
        struct target_result *results;
        size_t n;
        struct spec_entry *specs;
        size_t n_specs;
        void (*step)(struct publish_job *job, const struct rotation_target *t, struct target_result *res);
        atomic_size_t next;
        /* Whether the new value equals what instances at a version hold,
         * asked of one instance per version (several publish threads). */
        pthread_mutex_t same_lock;
        struct same_answer {
                uint64_t version;
                bool same;
        } same[8];
        size_t n_same;
};

static void changed_add(void *userdata, const char *name);
static void changed_done(struct changed_names *c);

/* ---- reload signals ---- */

static void signal_schedule(struct rotator *r, const char *container_id, const char *container_name, int signo) {
        if (!r->docker || !container_id[0] || signo <= 0)
                return;
        int64_t now = sd_monotonic_ms();
        for (size_t i = 0; i < r->n_pending; i++)
                if (strcmp(r->pending[i].container_id, container_id) == 0) {
                        r->pending[i].last_ms = now;
                        r->pending[i].signo = signo;
                        return;
                }
        struct pending_signal *bigger = reallocarray(r->pending, r->n_pending + 1, sizeof(*bigger));
        if (!bigger) {
                log_error("reload signal for container %s: out of memory", container_name);
                return;
        }
        r->pending = bigger;
        struct pending_signal *p = &r->pending[r->n_pending++];
        *p = (struct pending_signal) { .signo = signo, .first_ms = now, .last_ms = now };
        (void) snprintf(p->container_id, sizeof(p->container_id), "%s", container_id);
        (void) snprintf(p->container_name, sizeof(p->container_name), "%s", container_name);
}

static int64_t signal_due_ms(const struct pending_signal *p) {
        int64_t quiet = p->last_ms + ROTATE_SIGNAL_QUIET_MS;
        int64_t latest = p->first_ms + ROTATE_SIGNAL_MAX_DELAY_MS;
        return quiet < latest ? quiet : latest;
}

static void signal_send(struct rotator *r, const struct pending_signal *p) {
        char number[16], sid[SD_SHORT_ID_CHARS + 1];
        sd_error err = { 0 };
        (void) snprintf(number, sizeof(number), "%d", p->signo);
        sd_short_id(p->container_id, sid);
        int q = sd_docker_kill(r->docker, p->container_id, number, &err);
        if (q == 0) {
                metrics_inc(METRIC_SIGNALS);
                log_info("container %s (%s): sent signal %d after a rotation", p->container_name, sid, p->signo);
                return;
        }
        metrics_error(ERROR_SIGNAL);
        if (q == -ENOENT || q == -EBUSY)
                log_info("container %s (%s): no reload signal sent, the container is gone or not running: %s",
                         p->container_name, sid, err.message);
        else
                log_warn("container %s (%s): cannot send signal %d after a rotation: %s", p->container_name, sid,
                         p->signo, err.message);
}

/* Send what is due (everything with flush); returns the poll timeout until
 * the next one, -1 for none. */
static int signals_run(struct rotator *r, bool flush) {
        int64_t now = sd_monotonic_ms();
        int64_t next = -1;
        for (size_t i = 0; i < r->n_pending;) {
                int64_t due = signal_due_ms(&r->pending[i]);
                if (flush || due <= now) {
                        struct pending_signal p = r->pending[i];
                        r->pending[i] = r->pending[--r->n_pending];
                        signal_send(r, &p);
                        continue;
                }
                if (next < 0 || due < next)
                        next = due;
                i++;
        }
        if (next < 0)
                return -1;
        int64_t wait = next - sd_monotonic_ms();
        return wait < 0 ? 0 : (int) wait;
}

/* ---- refusals ---- */

/* true if this refusal of secret was not warned about yet. */
static bool refusal_is_new(struct rotator *r, const char *secret, const char *message) {
        for (size_t i = 0; i < r->n_refusals; i++)
                if (strcmp(r->refusals[i].name, secret) == 0) {
                        if (strcmp(r->refusals[i].message, message) == 0)
                                return false;
                        (void) snprintf(r->refusals[i].message, sizeof(r->refusals[i].message), "%s", message);
                        return true;
                }
        struct refusal *bigger = reallocarray(r->refusals, r->n_refusals + 1, sizeof(*bigger));
        if (!bigger)
                return true;
        r->refusals = bigger;
        struct refusal *f = &r->refusals[r->n_refusals++];
        (void) snprintf(f->name, sizeof(f->name), "%s", secret);
        (void) snprintf(f->message, sizeof(f->message), "%s", message);
        return true;
}

static void refusal_forget(struct rotator *r, const char *secret) {
        for (size_t i = 0; i < r->n_refusals; i++)
                if (strcmp(r->refusals[i].name, secret) == 0) {
                        r->refusals[i] = r->refusals[--r->n_refusals];
                        return;
                }
}

/* Warn, count and audit a refused rotation once per cause; the instances
 * that keep their version are those delivering the secret now (instead:
 * an older version that verifies is delivered instead of the refused
 * one, 0 none). */
static void refuse_as(struct rotator *r, const char *secret, enum error_kind kind, const char *message,
                      uint64_t instead) {
        if (!refusal_is_new(r, secret, message)) {
                log_debug("rotation of secret '%s' still refused: %s", secret, message);
                return;
        }
        struct rotation_target *targets = NULL;
        size_t n = 0;
        (void) registry_rotation_targets(r->cfg.registry, secret, &targets, &n);
        struct note_instance *in = n ? calloc(n, sizeof(*in)) : NULL;
        for (size_t i = 0; in && i < n; i++)
                in[i] = (struct note_instance) {
                        .id = targets[i].id, .volume = targets[i].volume, .container_id = targets[i].container_id,
                        .container_name = targets[i].container_name,
                };
        if (instead)
                log_warn("rotation of secret '%s' refused: %s; %zu instance(s) get version %" PRIu64
                         ", the newest that verifies (on-unverifiable = previous)",
                         secret, message, n, instead);
        else
                log_warn("rotation of secret '%s' refused: %s; %zu instance(s) keep their current version", secret,
                         message, n);
        note_refusal(r->cfg.notes, kind, NULL, secret, in, in ? n : 0, message);
        free(in);
        free(targets);
}

static void refuse(struct rotator *r, const char *secret, enum error_kind kind, const char *message) {
        refuse_as(r, secret, kind, message, 0);
}

/* ---- publishing ---- */

static const struct spec_entry *spec_of(const struct publish_job *job, const char *volume) {
        for (size_t i = 0; i < job->n_specs; i++)
                if (strcmp(job->specs[i].volume, volume) == 0)
                        return &job->specs[i];
        return NULL;
}

static bool record_has(void *ctx, const char *secret) {
        return record_version_of(ctx, secret) > 0;
}

/* Does the instance (held, at version have of the secret) hold the new
 * value already?  Instances at one version hold one value, so one of them
 * is asked per version.  Unknown (a file that cannot be read) is "no": the
 * files are then published as for any new value. */
static bool holds_new_value(struct publish_job *job, const struct mount_record *m, const struct volume_spec *spec,
                            uint64_t have) {
        const struct fetched *f = job->f;
        if (f->tombstone || !f->value || have == 0)
                return false;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&job->same_lock);
                for (size_t i = 0; i < job->n_same; i++)
                        if (job->same[i].version == have)
                                return job->same[i].same;
        }
        const char *file = NULL;
        for (size_t i = 0; i < spec->n_secrets && !file; i++)
                if (strcmp(spec->secrets[i].name, job->secret) == 0)
                        file = spec->secrets[i].file;
        if (!file)
                return false;
        sd_error err = { 0 };
        int q = delivery_same_value(job->rot->cfg.delivery, m->id, file, m->generation, f->value, &err);
        if (q < 0) {
                char sid[SD_SHORT_ID_CHARS + 1];
                log_debug("rotation of secret '%s': instance %s: cannot compare with the new value (%s); publishing it",
                          job->secret, sd_short_id(m->id, sid), err.message);
                return false;
        }
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&job->same_lock);
        if (job->n_same < SD_ARRAY_SIZE(job->same))
                job->same[job->n_same++] = (struct same_answer) { .version = have, .same = q == 1 };
        return q == 1;
}

static void publish_one(struct publish_job *job, const struct rotation_target *t, struct target_result *res) {
        struct registry *reg = job->rot->cfg.registry;
        const struct fetched *f = job->f;
        struct mount_record *m = registry_acquire(reg, t->id);
        if (!m) {
                res->outcome = TARGET_GONE;
                return;
        }
        memcpy(res->container_id, m->container_id, sizeof(res->container_id));
        (void) snprintf(res->container_name, sizeof(res->container_name), "%s",
                        m->container_name ? m->container_name : "");
        res->reload_signal = m->reload_signal;

        uint64_t have = record_version_of(m, job->secret);
        bool behind = !f->tombstone ? have < f->version : have && have < f->version;
        const struct spec_entry *entry = spec_of(job, t->volume);
        const struct volume_spec *spec = entry ? entry->spec : NULL;
        if (!behind || !spec) {
                res->outcome = TARGET_CURRENT;
                registry_release(reg, m);
                return;
        }
        res->removed = f->tombstone && spec->on_delete == VOLUME_ON_DELETE_REMOVE;
        uint64_t generation = m->generation;
        if (f->tombstone && !res->removed) {
                /* Tombstones with the default on-delete=keep change no file. */
                res->outcome = TARGET_KEPT;
        } else if (holds_new_value(job, m, spec, have)) {
                /* A reseal: the container keeps its files, so nothing it
                 * holds open or has resolved changes under it. */
                res->outcome = TARGET_SAME;
        } else {
                int q = entry->params_r;
                if (q < 0)
                        res->err = entry->params_err;
                else
                        q = delivery_write_update(job->rot->cfg.delivery, m->id, spec, &entry->params, m->generation,
                                                  job->secret, res->removed ? NULL : f->value, record_has, m,
                                                  &generation, &res->err);
                if (q < 0) {
                        res->outcome = TARGET_FAILED;
                        metrics_error(delivery_error_kind(DELIVERY_WRITE, q));
                        registry_release(reg, m);
                        return;
                }
                res->outcome = TARGET_WRITTEN;
        }
        sd_error sub = { 0 };
        if (registry_record_rotated(reg, m, generation, job->secret, res->removed ? 0 : f->version, &sub) < 0) {
                metrics_error(ERROR_STATE);
                log_error("rotation of secret '%s': %s", job->secret, sub.message);
        }
        res->save = true;
        const struct note_instance in = {
                .id = t->id, .volume = t->volume, .container_id = res->container_id,
                .container_name = res->container_name,
        };
        if (res->outcome == TARGET_WRITTEN && f->newest > f->version)
                note_stale_delivery(job->rot->cfg.notes, &in, job->secret, f->version, f->writer, true, f->stale_reason);
        else if (res->outcome == TARGET_WRITTEN)
                note_rotation(job->rot->cfg.notes, &in, job->secret, f->version, f->writer,
                              res->removed ? "deleted: file removed (on-delete=remove)" : NULL);
        else if (res->outcome == TARGET_SAME)
                note_rotation(job->rot->cfg.notes, &in, job->secret, f->version, f->writer,
                              "same value as the version held: files unchanged");
        registry_release(reg, m);
}

/* The record files, once every instance has its files. */
static void save_one(struct publish_job *job, const struct rotation_target *t, struct target_result *res) {
        struct registry *reg = job->rot->cfg.registry;
        if (!res->save)
                return;
        struct mount_record *m = registry_acquire(reg, t->id);
        if (!m)
                return;
        sd_error err = { 0 };
        if (registry_record_save(reg, m, &err) < 0) {
                metrics_error(ERROR_STATE);
                log_error("rotation of secret '%s': %s", job->secret, err.message);
        }
        registry_release(reg, m);
}

static void *publish_worker(void *userdata) {
        struct publish_job *job = userdata;
        for (;;) {
                size_t i = atomic_fetch_add(&job->next, 1);
                if (i >= job->n)
                        return NULL;
                job->step(job, &job->targets[i], &job->results[i]);
        }
}

/* Each publish touches only its own instance (held busy in the registry,
 * and the tmpfs's own flock), so the instances are shared out between
 * threads; so are the record saves, in a second pass. */
static void publish_all(struct publish_job *job, void (*step)(struct publish_job *, const struct rotation_target *,
                                                               struct target_result *)) {
        job->step = step;
        atomic_store(&job->next, 0);
        pthread_t helpers[PUBLISH_THREADS - 1];
        size_t n_helpers = 0;
        if (job->n >= PARALLEL_MIN_TARGETS)
                for (size_t i = 0; i < PUBLISH_THREADS - 1; i++) {
                        if (pthread_create(&helpers[n_helpers], NULL, publish_worker, job) != 0)
                                break;
                        n_helpers++;
                }
        (void) publish_worker(job);
        for (size_t i = 0; i < n_helpers; i++)
                (void) pthread_join(helpers[i], NULL);
}

/* The specs of the targets' volumes and their parameters, once each. */
static int specs_collect(struct publish_job *job) {
        for (size_t i = 0; i < job->n; i++) {
                const char *volume = job->targets[i].volume;
                bool seen = false;
                for (size_t j = 0; j < job->n_specs && !seen; j++)
                        seen = strcmp(job->specs[j].volume, volume) == 0;
                if (seen)
                        continue;
                struct spec_entry *bigger = reallocarray(job->specs, job->n_specs + 1, sizeof(*bigger));
                if (!bigger)
                        return -ENOMEM;
                job->specs = bigger;
                struct spec_entry *e = &job->specs[job->n_specs++];
                *e = (struct spec_entry) { 0 };
                (void) snprintf(e->volume, sizeof(e->volume), "%s", volume);
                e->spec = malloc(sizeof(*e->spec));
                if (!e->spec)
                        return -ENOMEM;
                if (!registry_volume_spec(job->rot->cfg.registry, volume, e->spec)) {
                        free(e->spec);
                        e->spec = NULL;
                        continue;
                }
                e->params_r = delivery_params(job->rot->cfg.delivery, e->spec, &e->params, &e->params_err);
        }
        return 0;
}

static void specs_free(struct publish_job *job) {
        for (size_t i = 0; i < job->n_specs; i++)
                free(job->specs[i].spec);
        free(job->specs);
}

/* ---- waiting for the store ---- */

static void resync_schedule(struct rotator *r) {
        if (r->resync_due_ms)
                return;
        if (r->resync_backoff_ms < ROTATE_RETRY_FIRST_MS)
                r->resync_backoff_ms = ROTATE_RETRY_FIRST_MS;
        r->resync_due_ms = sd_monotonic_ms() + r->resync_backoff_ms;
        r->resync_backoff_ms = r->resync_backoff_ms * 2 > ROTATE_RETRY_MAX_MS ? ROTATE_RETRY_MAX_MS
                                                                              : r->resync_backoff_ms * 2;
}

/* The store did not answer for secret: a store error, not a refusal; the
 * name is tried again. */
static void rotation_unreachable(struct rotator *r, const char *secret, const char *message) {
        metrics_error(ERROR_STORE);
        if (!r->unreachable_warned) {
                log_warn("rotation of secret '%s': %s; trying again with backoff until the store answers", secret,
                         message);
                r->unreachable_warned = true;
        } else {
                log_debug("rotation of secret '%s': %s; trying again", secret, message);
        }
        changed_add(&r->retry, secret);
        resync_schedule(r);
}

/* registry_visit: the secrets of every volume (rotate_secret skips what
 * no instance delivers). */
static void served_visit(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                         const struct mount_record *const *records, size_t n_records);

static enum rotate_outcome rotate_secret(struct rotator *r, const char *secret, double detected);

void rotator_resync(struct rotator *r) {
        __attribute__((cleanup(changed_done))) struct changed_names names = r->retry;
        bool all = r->resync_all;
        r->retry = (struct changed_names) { 0 };
        r->resync_all = false;
        r->resync_due_ms = 0;
        if (all)
                registry_visit(r->cfg.registry, served_visit, &names);
        if (names.oom) {
                log_error("rotation: out of memory; some secrets may be re-checked late");
                r->resync_all = true;
        }
        double detected = sd_monotonic_seconds();
        for (size_t i = 0; i < names.n; i++) {
                if (rotate_secret(r, names.names[i], detected) == ROTATE_UNREACHABLE) {
                        /* Still unreachable: the rest waits for the next
                         * try, without a store call each. */
                        for (size_t j = i + 1; j < names.n; j++)
                                changed_add(&r->retry, names.names[j]);
                        return;
                }
        }
        r->resync_backoff_ms = ROTATE_RETRY_FIRST_MS;
        if (r->unreachable_warned && !r->retry.n && !r->resync_all) {
                log_info("the store answers again: %zu secret(s) re-checked%s", names.n,
                         all ? " (every secret an instance delivers)" : "");
                r->unreachable_warned = false;
        }
}

size_t rotator_resync_pending(const struct rotator *r) {
        return r->retry.n + (r->resync_all ? 1 : 0);
}

/* ---- one rotation ---- */

/* Fetch the latest version and have the registry decide on it; on success
 * (0) *f holds it and *targets the instances to bring up to it; 1: the
 * store did not answer (noted, to be tried again). */
static int rotation_fetch(struct rotator *r, const char *secret, struct fetched *f, struct rotation_target **targets,
                          size_t *n) {
        struct delivery *d = r->cfg.delivery;
        for (unsigned attempt = 1;; attempt++) {
                uint64_t seen = registry_floor(r->cfg.registry, secret);
                enum delivery_step step;
                sd_error err = { 0 };
                int q = delivery_fetch_verified(d, secret,
                                                DELIVERY_ALLOW_TOMBSTONE | DELIVERY_NEWEST_VERIFIED | DELIVERY_STORE_ONLY,
                                                seen, f, &step, &err);
                if (q < 0 && delivery_error_is_transient(step, q)) {
                        rotation_unreachable(r, secret, err.message);
                        return 1;
                }
                if (q < 0) {
                        refuse(r, secret, delivery_error_kind(step, q), err.message);
                        return q;
                }
                /* Instances at the floor keep what they have. */
                if (f->newest > f->version)
                        refuse_as(r, secret, ERROR_VERIFY, f->stale_reason ? f->stale_reason : "does not verify",
                                  f->version > seen ? f->version : 0);
                q = registry_rotation_begin(r->cfg.registry, secret, f->version, seen, targets, n, &err);
                if (q == 0)
                        return 0;
                delivery_release(d, f);
                if (q == -EAGAIN && attempt < ROTATE_ATTEMPTS) {
                        log_debug("rotation of secret '%s': %s; fetching again", secret, err.message);
                        continue;
                }
                refuse(r, secret, delivery_error_kind(DELIVERY_DECIDE, q), err.message);
                return q;
        }
}

static void policy_changed(struct rotator *r, double detected);

void rotator_rotate(struct rotator *r, const char *secret, double detected) {
        if (strcmp(secret, SD_STORE_POLICY_NAME) == 0) {
                policy_changed(r, detected);
                return;
        }
        (void) rotate_secret(r, secret, detected);
}

static enum rotate_outcome rotate_secret(struct rotator *r, const char *secret, double detected) {
        if (!registry_delivers(r->cfg.registry, secret)) {
                log_debug("store: secret '%s' changed; no instance delivers it", secret);
                return ROTATE_DONE;
        }
        struct fetched f = { 0 };
        _cleanup_free_ struct rotation_target *targets = NULL;
        size_t n = 0;
        int q = rotation_fetch(r, secret, &f, &targets, &n);
        if (q > 0)
                return ROTATE_UNREACHABLE;
        if (q < 0)
                return ROTATE_DONE;
        if (f.newest == f.version)
                refusal_forget(r, secret);
        if (n == 0) {
                log_debug("store: secret '%s' changed; no instance delivers it", secret);
                delivery_release(r->cfg.delivery, &f);
                return ROTATE_DONE;
        }

        _cleanup_free_ struct target_result *results = calloc(n, sizeof(*results));
        struct publish_job job = {
                .rot = r, .secret = secret, .f = &f, .targets = targets, .results = results, .n = n,
        };
        atomic_init(&job.next, 0);
        (void) pthread_mutex_init(&job.same_lock, NULL);
        if (!results || specs_collect(&job) < 0) {
                specs_free(&job);
                (void) pthread_mutex_destroy(&job.same_lock);
                delivery_release(r->cfg.delivery, &f);
                metrics_error(ERROR_STATE);
                log_error("rotation of secret '%s': out of memory", secret);
                return ROTATE_DONE;
        }
        publish_all(&job, publish_one);
        double seconds = sd_monotonic_seconds() - detected;
        publish_all(&job, save_one);
        specs_free(&job);
        (void) pthread_mutex_destroy(&job.same_lock);
        uint64_t version = f.version;
        bool tombstone = f.tombstone;
        char writer[SD_KEY_ID_CHARS + 1];
        memcpy(writer, f.writer, sizeof(writer));
        delivery_release(r->cfg.delivery, &f);

        size_t n_written = 0, n_kept = 0, n_tried = 0, n_same = 0;
        for (size_t i = 0; i < n; i++) {
                struct target_result *t = &results[i];
                char sid[SD_SHORT_ID_CHARS + 1];
                sd_short_id(targets[i].id, sid);
                switch (t->outcome) {
                case TARGET_GONE:
                case TARGET_CURRENT:
                        continue;
                case TARGET_KEPT:
                        n_kept++;
                        continue;
                case TARGET_SAME:
                        n_same++;
                        continue;
                case TARGET_FAILED:
                        n_tried++;
                        log_error("rotation of secret '%s' version %" PRIu64 " into instance %s of volume '%s': %s",
                                  secret, version, sid, targets[i].volume, t->err.message);
                        continue;
                case TARGET_WRITTEN:
                        n_tried++;
                        n_written++;
                        signal_schedule(r, t->container_id, t->container_name, t->reload_signal);
                        continue;
                }
        }
        if (n_kept > 0)
                log_warn("secret '%s' was deleted in version %" PRIu64 " (by %s); %zu instance(s) keep its last value "
                         "(volume option on-delete=remove would remove the file)",
                         secret, version, writer, n_kept);
        if (n_same > 0) {
                metrics_add(METRIC_SAME_VALUE, n_same);
                log_info("secret '%s' version %" PRIu64 " (by %s) has the value %zu instance(s) held: recorded without "
                         "a file swap",
                         secret, version, writer, n_same);
        }
        if (n_tried == 0) {
                if (n_kept == 0 && n_same == 0)
                        log_debug("store: secret '%s' version %" PRIu64 " is already in every instance", secret,
                                  version);
                return ROTATE_DONE;
        }
        note_rotations(r->cfg.notes, n_written, seconds);
        if (tombstone)
                log_warn("secret '%s' was deleted in version %" PRIu64 " (by %s); its file was removed from %zu "
                         "instance(s) (on-delete=remove)",
                         secret, version, writer, n_written);
        else
                log_info("secret '%s' version %" PRIu64 " (by %s) rotated into %zu of %zu instance(s) in %.1f ms",
                         secret, version, writer, n_written, n_tried, seconds * 1e3);
        return ROTATE_DONE;
}

/* ---- realm policy changes ---- */

static void changed_add(void *userdata, const char *name);
static void changed_done(struct changed_names *c);

/* Under the registry lock: the secret names of every volume. */
static void served_visit(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                         const struct mount_record *const *records, size_t n_records) {
        (void) records;
        (void) n_records;
        for (size_t i = 0; i < n_volumes; i++)
                for (size_t j = 0; j < volumes[i]->spec.n_secrets; j++)
                        changed_add(userdata, volumes[i]->spec.secrets[j].name);
}

/* The store says the policy changed: walk the chain again, and when the
 * version differs from the one every served secret was checked against,
 * check them all again (a writer added or removed, patterns changed). */
static void policy_changed(struct rotator *r, double detected) {
        if (!r->cfg.realm)
                return;
        sd_error err = { 0 };
        int q = sd_realm_refresh(r->cfg.realm, &err);
        _cleanup_policy_ struct sd_policy *p = sd_realm_policy(r->cfg.realm);
        uint64_t version = p ? sd_policy_version(p) : 0;
        if (q < 0) {
                /* A version that does not verify is warned about by the
                 * realm (and not adopted); this is an error of the walk. */
                metrics_error(ERROR_STORE);
                log_warn("realm policy changed in the store but cannot be verified now: %s; keeping policy v%" PRIu64,
                         err.message, version);
                return;
        }
        delivery_note_realm(r->cfg.delivery);
        if (version == r->policy_checked) {
                log_debug("store: realm policy v%" PRIu64 " already applied", version);
                return;
        }
        uint64_t before = r->policy_checked;
        r->policy_checked = version;
        metrics_inc(METRIC_POLICY_CHANGES);
        __attribute__((cleanup(changed_done))) struct changed_names served = { 0 };
        registry_visit(r->cfg.registry, served_visit, &served);
        if (served.oom)
                log_error("realm policy v%" PRIu64 ": out of memory; some secrets are checked again only at their next change",
                          version);
        log_info("realm policy v%" PRIu64 " applied (was v%" PRIu64 "): checking the %zu secret(s) of this host's "
                 "volumes against it",
                 version, before, served.n);
        for (size_t i = 0; i < served.n; i++)
                rotator_rotate(r, served.names[i], detected);
}

/* ---- the thread ---- */

static void changed_add(void *userdata, const char *name) {
        struct changed_names *c = userdata;
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->names[i], name) == 0)
                        return;
        char *copy = strdup(name);
        char **bigger = copy ? reallocarray(c->names, c->n + 1, sizeof(*bigger)) : NULL;
        if (!bigger) {
                free(copy);
                c->oom = true;
                return;
        }
        c->names = bigger;
        c->names[c->n++] = copy;
}

static void changed_done(struct changed_names *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->names[i]);
        free(c->names);
}

static void watch_drain(struct rotator *r) {
        double detected = sd_monotonic_seconds();
        __attribute__((cleanup(changed_done))) struct changed_names changed = { 0 };
        sd_error err = { 0 };
        int q;
        /* Only this thread reads the watch; the plugin threads only get
         * envelopes, which the backends allow at the same time. */
        q = sd_store_watch_read(r->cfg.store, changed_add, &changed, &err);
        if (q < 0) {
                metrics_error(ERROR_STORE);
                notes_store(r->cfg.notes, false, err.message);
                log_warn("store watch: %s; retrying", err.message);
                /* Changes may have gone unreported: re-check what is
                 * served. */
                r->resync_all = true;
                resync_schedule(r);
                struct pollfd pfd = { .fd = r->stop_fd, .events = POLLIN };
                (void) poll(&pfd, 1, WATCH_RETRY_MS);
                return;
        }
        if (changed.oom)
                log_error("store watch: out of memory; some changes may be picked up late");
        metrics_add(METRIC_STORE_CHANGES, changed.n);
        for (size_t i = 0; i < changed.n; i++)
                rotator_rotate(r, changed.names[i], detected);
}

/* The cache stood in for the store: what it gave may be older than the
 * store's latest. */
static void stand_in_drain(struct rotator *r, int fd) {
        uint64_t count;
        if (read(fd, &count, sizeof(count)) != (ssize_t) sizeof(count))
                return;
        r->resync_all = true;
        resync_schedule(r);
}

static void *rotator_main(void *userdata) {
        struct rotator *r = userdata;
        int timeout = -1;
        int stand_in_fd = r->cfg.cache ? cache_stand_in_fd(r->cfg.cache) : -1;
        for (;;) {
                struct pollfd fds[3] = {
                        { .fd = r->stop_fd, .events = POLLIN },
                        { .fd = r->watch_fd, .events = POLLIN },
                        { .fd = stand_in_fd, .events = POLLIN },
                };
                int q = poll(fds, 3, timeout);
                if (q < 0 && errno != EINTR) {
                        log_error("rotation: poll: %s", strerror(errno));
                        break;
                }
                if (q > 0 && fds[0].revents)
                        break;
                if (q > 0 && fds[2].revents)
                        stand_in_drain(r, stand_in_fd);
                if (q > 0 && fds[1].revents)
                        watch_drain(r);
                if (r->resync_due_ms && sd_monotonic_ms() >= r->resync_due_ms)
                        rotator_resync(r);
                timeout = signals_run(r, false);
                if (r->resync_due_ms) {
                        int64_t wait = r->resync_due_ms - sd_monotonic_ms();
                        if (wait < 0)
                                wait = 0;
                        if (timeout < 0 || wait < timeout)
                                timeout = (int) wait;
                }
        }
        (void) signals_run(r, true);
        return NULL;
}

int rotator_new(const struct rotator_config *cfg, struct rotator **out, sd_error *err) {
        _cleanup_free_ struct rotator *r = calloc(1, sizeof(*r));
        if (!r)
                return sd_error_set(err, ENOMEM, "out of memory");
        r->cfg = *cfg;
        r->stop_fd = -1;
        r->watch_fd = -1;
        if (cfg->realm) {
                _cleanup_policy_ struct sd_policy *p = sd_realm_policy(cfg->realm);
                r->policy_checked = p ? sd_policy_version(p) : 0;
        }
        if (cfg->docker_socket) {
                sd_error sub = { 0 };
                if (sd_docker_new(cfg->docker_socket, &r->docker, &sub) < 0)
                        log_warn("reload signals disabled: %s", sub.message);
        }
        *out = steal_pointer(&r);
        return 0;
}

int rotator_start(const struct rotator_config *cfg, struct rotator **out, sd_error *err) {
        struct rotator *r = NULL;
        int q = rotator_new(cfg, &r, err);
        if (q < 0)
                return q;
        int watch_fd = -1;
        sd_error sub = { 0 };
        q = cfg->store ? sd_store_watch_fd(cfg->store, &watch_fd, &sub) : -EOPNOTSUPP;
        if (q < 0) {
                log_warn("store %s cannot be watched (%s): running containers will not get new versions; "
                         "new containers still get the latest one",
                         cfg->store ? sd_store_url(cfg->store) : "(none)", sub.message[0] ? sub.message : strerror(-q));
                *out = r;
                return 0;
        }
        r->watch_fd = watch_fd;
        r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->stop_fd < 0) {
                q = sd_error_set_errno(err, errno, "rotation: cannot create an eventfd");
                rotator_stop(r);
                return q;
        }
        q = pthread_create(&r->thread, NULL, rotator_main, r);
        if (q != 0) {
                q = sd_error_set_errno(err, q, "rotation: cannot start its thread");
                rotator_stop(r);
                return q;
        }
        r->running = true;
        log_info("watching store %s for new versions", sd_store_url(cfg->store));
        *out = r;
        return 0;
}

void rotator_stop(struct rotator *r) {
        if (!r)
                return;
        if (r->running) {
                const uint64_t one = 1;
                if (write(r->stop_fd, &one, sizeof(one)) != (ssize_t) sizeof(one))
                        log_error("rotation: cannot signal its thread to stop: %s", strerror(errno));
                else
                        (void) pthread_join(r->thread, NULL);
        }
        if (r->stop_fd >= 0)
                (void) close(r->stop_fd);
        sd_docker_free(r->docker);
        free(r->pending);
        free(r->refusals);
        changed_done(&r->retry);
        free(r);
}
