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

#include "audit.h"
#include "log.h"
#include "metrics.h"
#include "rotate.h"
#include "secretd/clock.h"
#include "secretd/client.h"
#include "secretd/docker.h"
#include "secretd/tmpfs.h"
#include "userns.h"

/* Below this many instances one thread publishes; above, two (the host
 * this was measured on has two cores; each publish is ~0.1 ms of
 * syscalls, so threads only pay off for large fan-outs). */
#define PARALLEL_MIN_TARGETS 64
#define PUBLISH_THREADS 2
/* A watch that keeps failing is retried after this long. */
#define WATCH_RETRY_MS 1000

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
        struct agent *a;
        struct sd_docker *docker;        /* NULL: no reload signals */
        int stop_fd;                     /* eventfd */
        int watch_fd;                    /* borrowed from the store; -1: none */
        pthread_t thread;
        bool running;

        struct pending_signal *pending;
        size_t n_pending;
        struct refusal *refusals;
        size_t n_refusals;
};

/* One instance to update for one rotation. */
struct target {
        struct mount_record *m;          /* registry entry; written under reg_lock */
        const struct volume *v;
        const struct delivered_version *entry;   /* this secret's entry; NULL: not delivered */
        bool remove;                     /* tombstone + on-delete=remove */
        uid_t owner_uid;                 /* host ids for new files (userns.h) */
        gid_t owner_gid;
        uint64_t generation;             /* published, on success */
        int r;
        sd_error err;
};

struct publish_job {
        struct agent *a;
        struct target *targets;
        size_t n;
        const char *secret;
        const struct sd_secret *value;   /* NULL: removing */
        atomic_size_t next;
};

static const char *or_null(const char *s) {
        return s && s[0] ? s : NULL;
}

/* ---- registry lookups (ops_lock held) ---- */

static const struct volume *volume_lookup(struct agent *a, const char *name) {
        for (size_t i = 0; i < a->n_volumes; i++)
                if (strcmp(a->volumes[i]->name, name) == 0)
                        return a->volumes[i];
        return NULL;
}

static bool spec_delivers(const struct volume_spec *spec, const char *secret) {
        for (size_t i = 0; i < spec->n_secrets; i++)
                if (strcmp(spec->secrets[i].name, secret) == 0)
                        return true;
        return false;
}

static const struct delivered_version *record_entry(const struct mount_record *m, const char *secret) {
        for (size_t i = 0; i < m->n_versions; i++)
                if (strcmp(m->versions[i].name, secret) == 0)
                        return &m->versions[i];
        return NULL;
}

/* reg_lock held. */
static void record_set_version(struct mount_record *m, const char *secret, uint64_t version) {
        for (size_t i = 0; i < m->n_versions; i++)
                if (strcmp(m->versions[i].name, secret) == 0) {
                        m->versions[i].version = version;
                        return;
                }
        if (m->n_versions < VOLUME_SECRETS_MAX) {
                struct delivered_version *dv = &m->versions[m->n_versions++];
                (void) snprintf(dv->name, sizeof(dv->name), "%s", secret);
                dv->version = version;
        }
}

/* reg_lock held.  An entry-less secret is one whose file is not in the
 * instance (removed after a tombstone with on-delete=remove). */
static void record_drop(struct mount_record *m, const char *secret) {
        for (size_t i = 0; i < m->n_versions; i++)
                if (strcmp(m->versions[i].name, secret) == 0) {
                        m->versions[i] = m->versions[--m->n_versions];
                        return;
                }
}

static struct target *targets_collect(struct agent *a, const char *secret, size_t *n_out) {
        struct target *targets = NULL;
        size_t n = 0;
        for (size_t i = 0; i < a->n_mounts; i++) {
                struct mount_record *m = a->mounts[i];
                if (m->refcount == 0)
                        continue;
                const struct volume *v = volume_lookup(a, m->volume);
                if (!v || !spec_delivers(&v->spec, secret))
                        continue;
                struct target *bigger = reallocarray(targets, n + 1, sizeof(*targets));
                if (!bigger) {
                        free(targets);
                        *n_out = 0;
                        return NULL;
                }
                targets = bigger;
                targets[n++] = (struct target) { .m = m, .v = v, .entry = record_entry(m, secret) };
        }
        *n_out = n;
        return targets;
}

/* ---- publishing ---- */

/* New files must be owned like Mount owned them: under dockerd's
 * --userns-remap that is the mapped host id, not the volume's uid.  Ask
 * once per distinct uid/gid pair in this rotation (it costs a GET /info),
 * not once per instance. */
static void resolve_owners(struct agent *a, struct target *targets, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const struct volume_spec *spec = &targets[i].v->spec;
                size_t j = 0;
                while (j < i && !(targets[j].v->spec.uid == spec->uid && targets[j].v->spec.gid == spec->gid))
                        j++;
                if (j < i) {
                        targets[i].owner_uid = targets[j].owner_uid;
                        targets[i].owner_gid = targets[j].owner_gid;
                        continue;
                }
                sd_error warning = { 0 }, err = { 0 };
                targets[i].owner_uid = (uid_t) spec->uid;
                targets[i].owner_gid = (gid_t) spec->gid;
                if (userns_host_ids(a, spec->uid, spec->gid, &targets[i].owner_uid, &targets[i].owner_gid,
                                    &warning, &err) < 0)
                        log_warn("rotation: owner for uid %" PRIu32 ": %s; keeping the volume's ids", spec->uid,
                                 err.message);
                else if (warning.message[0])
                        log_warn("rotation: %s", warning.message);
        }
}

static void publish_one(struct publish_job *job, struct target *t) {
        const struct volume_spec *spec = &t->v->spec;
        const struct sd_tmpfs_params params = {
                .size_bytes = spec->size,
                .nr_inodes = 4 * (uint64_t) spec->n_secrets + 16,   /* used by create only */
                .uid = t->owner_uid,
                .gid = t->owner_gid,
                .mode = (mode_t) spec->mode,
        };
        struct sd_tmpfs_file files[VOLUME_SECRETS_MAX];
        size_t n = 0;
        for (size_t i = 0; i < spec->n_secrets; i++) {
                const struct volume_secret *s = &spec->secrets[i];
                if (strcmp(s->name, job->secret) == 0) {
                        if (job->value)
                                files[n++] = (struct sd_tmpfs_file) { .name = s->file, .value = job->value };
                } else if (record_entry(t->m, s->name)) {
                        /* Unchanged: hard-linked over from the current generation. */
                        files[n++] = (struct sd_tmpfs_file) { .name = s->file, .value = NULL };
                }
        }
        uint64_t generation = t->m->generation + 1;
        t->r = sd_tmpfs_instance_update(job->a->instances_dir, t->m->id, &params, files, n, generation, &t->err);
        if (t->r == -ESTALE) {
                /* The instance is ahead of its record: a crash between a
                 * publish and the record save. */
                uint64_t current = 0;
                if (sd_tmpfs_instance_generation(job->a->instances_dir, t->m->id, &current) == 0) {
                        generation = current + 1;
                        sd_error_clear(&t->err);
                        t->r = sd_tmpfs_instance_update(job->a->instances_dir, t->m->id, &params, files, n,
                                                        generation, &t->err);
                }
        }
        if (t->r == 0)
                t->generation = generation;
}

static void *publish_worker(void *userdata) {
        struct publish_job *job = userdata;
        for (;;) {
                size_t i = atomic_fetch_add(&job->next, 1);
                if (i >= job->n)
                        return NULL;
                publish_one(job, &job->targets[i]);
        }
}

/* Each publish touches only its own instance (and its own flock), so the
 * instances are shared out between threads; the registry is not written
 * here. */
static void publish_all(struct publish_job *job) {
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

/* ---- reload signals ---- */

static void signal_schedule(struct rotator *r, const struct mount_record *m) {
        if (!r->docker || !m->container_id[0] || m->reload_signal <= 0)
                return;
        int64_t now = sd_monotonic_ms();
        for (size_t i = 0; i < r->n_pending; i++)
                if (strcmp(r->pending[i].container_id, m->container_id) == 0) {
                        r->pending[i].last_ms = now;
                        r->pending[i].signo = m->reload_signal;
                        return;
                }
        struct pending_signal *bigger = reallocarray(r->pending, r->n_pending + 1, sizeof(*bigger));
        if (!bigger) {
                log_error("reload signal for container %s: out of memory", m->container_name);
                return;
        }
        r->pending = bigger;
        struct pending_signal *p = &r->pending[r->n_pending++];
        *p = (struct pending_signal) { .signo = m->reload_signal, .first_ms = now, .last_ms = now };
        memcpy(p->container_id, m->container_id, sizeof(p->container_id));
        memcpy(p->container_name, m->container_name, sizeof(p->container_name));
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

static enum error_kind fetch_error_kind(int code) {
        switch (code) {
        case -ENOENT:
        case -EIO:
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -ETIMEDOUT:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case -EAGAIN:
        case -ENOMEM:
                return ERROR_STORE;
        default:
                return ERROR_VERIFY;
        }
}

static void refuse(struct rotator *r, const char *secret, const struct target *targets, size_t n,
                   enum error_kind kind, const char *message) {
        if (!refusal_is_new(r, secret, message)) {
                log_debug("rotation of secret '%s' still refused: %s", secret, message);
                return;
        }
        metrics_inc(METRIC_REFUSALS);
        metrics_error(kind);
        log_warn("rotation of secret '%s' refused: %s; %zu instance(s) keep their current version", secret,
                 message, n);
        for (size_t i = 0; i < n; i++) {
                const struct mount_record *m = targets[i].m;
                const struct audit_event ev = {
                        .kind = AUDIT_REFUSE,
                        .container = or_null(m->container_id),
                        .container_name = or_null(m->container_name),
                        .volume = m->volume,
                        .secret = secret,
                        .reason = message,
                        .instance = m->id,
                };
                (void) audit_log(r->a->audit, &ev);
        }
}

/* ---- one rotation ---- */

static void rotate_secret(struct rotator *r, const char *secret, double detected) {
        struct agent *a = r->a;
        _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&a->ops_lock);

        size_t n = 0;
        _cleanup_free_ struct target *targets = targets_collect(a, secret, &n);
        if (n == 0) {
                log_debug("store: secret '%s' changed; no instance delivers it", secret);
                return;
        }

        struct sd_envelope_info info = { 0 };
        sd_error err = { 0 };
        _cleanup_secret_ struct sd_secret *value = NULL;
        int q = sd_secret_fetch(a->realm, a->keys, a->n_keys, secret, 0, 1, &value, &info, &err);
        if (q < 0) {
                agent_status_store(a, fetch_error_kind(q) != ERROR_STORE, err.message);
                refuse(r, secret, targets, n, fetch_error_kind(q), err.message[0] ? err.message : strerror(-q));
                return;
        }
        agent_status_store(a, true, NULL);

        uint64_t floor = delivered_floor(a, secret);
        if (info.version < floor) {
                char message[SD_ERROR_MESSAGE_MAX];
                (void) snprintf(message, sizeof(message),
                                "the store offers version %" PRIu64 " but version %" PRIu64
                                " was already delivered on this host; refusing a rollback",
                                info.version, floor);
                refuse(r, secret, targets, n, ERROR_ROLLBACK, message);
                return;
        }
        refusal_forget(r, secret);

        /* Which instances are behind, and what they get. */
        size_t n_behind = 0;
        for (size_t i = 0; i < n; i++) {
                struct target *t = &targets[i];
                bool behind = !info.tombstone ? !t->entry || t->entry->version < info.version
                                              : t->entry && t->entry->version < info.version;
                if (!behind)
                        continue;
                t->remove = info.tombstone && t->v->spec.on_delete == VOLUME_ON_DELETE_REMOVE;
                targets[n_behind++] = *t;
        }
        if (n_behind == 0) {
                log_debug("store: secret '%s' version %" PRIu64 " is already in every instance", secret, info.version);
                return;
        }

        /* Raise the floor before anything becomes visible (as Mount does). */
        {
                struct volume_spec one = { .n_secrets = 1 };
                (void) snprintf(one.secrets[0].name, sizeof(one.secrets[0].name), "%s", secret);
                const uint64_t versions[1] = { info.version };
                if (delivered_raise(a, &one, versions, &err) < 0) {
                        metrics_error(ERROR_STATE);
                        log_error("rotation of secret '%s' version %" PRIu64 ": %s; not delivered", secret,
                                  info.version, err.message);
                        return;
                }
        }

        /* Tombstones with the default on-delete=keep change no file. */
        size_t n_publish = 0, n_kept = 0;
        for (size_t i = 0; i < n_behind; i++) {
                if (info.tombstone && !targets[i].remove) {
                        n_kept++;
                        {
                                _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                                record_set_version(targets[i].m, secret, info.version);
                        }
                        if (mount_record_save(a, targets[i].m, &err) < 0) {
                                metrics_error(ERROR_STATE);
                                log_error("rotation of secret '%s': %s", secret, err.message);
                        }
                        continue;
                }
                targets[n_publish++] = targets[i];
        }
        if (n_kept > 0)
                log_warn("secret '%s' was deleted in version %" PRIu64 " (by %s); %zu instance(s) keep its last value "
                         "(volume option on-delete=remove would remove the file)",
                         secret, info.version, info.signer_id, n_kept);
        if (n_publish == 0)
                return;
        resolve_owners(a, targets, n_publish);

        struct publish_job job = {
                .a = a, .targets = targets, .n = n_publish, .secret = secret, .value = value,
        };
        atomic_init(&job.next, 0);
        publish_all(&job);
        double seconds = sd_monotonic_seconds() - detected;
        sd_secret_freep(&value);

        size_t n_ok = 0;
        for (size_t i = 0; i < n_publish; i++) {
                struct target *t = &targets[i];
                char sid[SD_SHORT_ID_CHARS + 1];
                sd_short_id(t->m->id, sid);
                if (t->r < 0) {
                        metrics_error(ERROR_TMPFS);
                        log_error("rotation of secret '%s' version %" PRIu64 " into instance %s of volume '%s': %s",
                                  secret, info.version, sid, t->m->volume, t->err.message);
                        continue;
                }
                n_ok++;
                {
                        _cleanup_unlock_ pthread_mutex_t *reg = sd_lock(&a->reg_lock);
                        t->m->generation = t->generation;
                        if (t->remove)
                                record_drop(t->m, secret);
                        else
                                record_set_version(t->m, secret, info.version);
                }
                if (mount_record_save(a, t->m, &err) < 0) {
                        metrics_error(ERROR_STATE);
                        log_error("rotation of secret '%s' into instance %s: %s", secret, sid, err.message);
                }
                const struct audit_event ev = {
                        .kind = AUDIT_ROTATE,
                        .container = or_null(t->m->container_id),
                        .container_name = or_null(t->m->container_name),
                        .volume = t->m->volume,
                        .secret = secret,
                        .version = info.version,
                        .writer = info.signer_id,
                        .reason = t->remove ? "deleted: file removed (on-delete=remove)" : NULL,
                        .instance = t->m->id,
                };
                (void) audit_log(a->audit, &ev);
                signal_schedule(r, t->m);
        }
        metrics_add(METRIC_ROTATIONS, n_ok);
        metrics_observe_rotation(seconds);
        if (info.tombstone)
                log_warn("secret '%s' was deleted in version %" PRIu64 " (by %s); its file was removed from %zu "
                         "instance(s) (on-delete=remove)",
                         secret, info.version, info.signer_id, n_ok);
        else
                log_info("secret '%s' version %" PRIu64 " (by %s) rotated into %zu of %zu instance(s) in %.1f ms",
                         secret, info.version, info.signer_id, n_ok, n_publish, seconds * 1e3);
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
        {
                /* The store handle is shared with the plugin handlers,
                 * which use it under ops_lock. */
                _cleanup_unlock_ pthread_mutex_t *ops = sd_lock(&r->a->ops_lock);
                q = sd_store_watch_read(r->a->store, changed_add, &changed, &err);
        }
        if (q < 0) {
                metrics_error(ERROR_STORE);
                agent_status_store(r->a, false, err.message);
                log_warn("store watch: %s; retrying", err.message);
                struct pollfd pfd = { .fd = r->stop_fd, .events = POLLIN };
                (void) poll(&pfd, 1, WATCH_RETRY_MS);
                return;
        }
        if (changed.oom)
                log_error("store watch: out of memory; some changes may be picked up late");
        metrics_add(METRIC_STORE_CHANGES, changed.n);
        for (size_t i = 0; i < changed.n; i++)
                rotate_secret(r, changed.names[i], detected);
}

static void *rotator_main(void *userdata) {
        struct rotator *r = userdata;
        int timeout = -1;
        for (;;) {
                struct pollfd fds[2] = {
                        { .fd = r->stop_fd, .events = POLLIN },
                        { .fd = r->watch_fd, .events = POLLIN },
                };
                int q = poll(fds, 2, timeout);
                if (q < 0 && errno != EINTR) {
                        log_error("rotation: poll: %s", strerror(errno));
                        break;
                }
                if (q > 0 && fds[0].revents)
                        break;
                if (q > 0 && fds[1].revents)
                        watch_drain(r);
                timeout = signals_run(r, false);
        }
        (void) signals_run(r, true);
        return NULL;
}

int rotator_start(struct agent *a, const char *docker_socket, struct rotator **out, sd_error *err) {
        _cleanup_free_ struct rotator *r = calloc(1, sizeof(*r));
        if (!r)
                return sd_error_set(err, ENOMEM, "out of memory");
        r->a = a;
        r->stop_fd = -1;
        r->watch_fd = -1;

        int watch_fd = -1;
        sd_error sub = { 0 };
        int q = a->store ? sd_store_watch_fd(a->store, &watch_fd, &sub) : -EOPNOTSUPP;
        if (q < 0) {
                log_warn("store %s cannot be watched (%s): running containers will not get new versions; "
                         "new containers still get the latest one",
                         a->store ? sd_store_url(a->store) : "(none)", sub.message[0] ? sub.message : strerror(-q));
                *out = steal_pointer(&r);
                return 0;
        }
        r->watch_fd = watch_fd;

        if (docker_socket) {
                q = sd_docker_new(docker_socket, &r->docker, &sub);
                if (q < 0)
                        log_warn("reload signals disabled: %s", sub.message);
        }
        r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->stop_fd < 0) {
                sd_docker_free(r->docker);
                return sd_error_set_errno(err, errno, "rotation: cannot create an eventfd");
        }
        q = pthread_create(&r->thread, NULL, rotator_main, r);
        if (q != 0) {
                sd_docker_free(r->docker);
                (void) close(r->stop_fd);
                return sd_error_set_errno(err, q, "rotation: cannot start its thread");
        }
        r->running = true;
        log_info("watching store %s for new versions", sd_store_url(a->store));
        *out = steal_pointer(&r);
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
        free(r);
}
