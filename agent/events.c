/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Container lifecycle from dockerd's events stream (events.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "metrics.h"
#include "notes.h"
#include "registry.h"
#include "secretd/clock.h"
#include "secretd/docker.h"
#include "secretd/tmpfs.h"
#include "userns.h"

/* Reconnect backoff: dockerd restarts in a second or two. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* dockerd sends Unmount right after `die`; only an instance still there
 * this long afterwards missed it. */
#define DIE_CHECK_DELAY_MS 5000
/* A Mount comes before its container exists in a usable form (created,
 * not yet started): an unlinked instance this young is left alone. */
#define UNLINKED_GRACE_S 30
#define RECONCILE_PERIOD_MS 30000
#define PENDING_DIE_MAX 256

struct pending_die {
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        int64_t due_ms;   /* CLOCK_MONOTONIC */
};

struct events {
        struct events_config cfg;
        char *driver;
        struct sd_docker *docker;
        int stop_fd;
        bool events_started, timer_started;
        pthread_t events_thread, timer_thread;

        /* work_lock serialises event handling, die checks and reconciles;
         * the timer sleeps on wake with it released. */
        pthread_mutex_t work_lock;
        pthread_cond_t wake;
        bool stopping;
        bool connected;               /* the stream is up */
        struct pending_die pending[PENDING_DIE_MAX];
        size_t n_pending;

        /* Events thread only. */
        char since[SD_DOCKER_SINCE_MAX];
        bool connected_this_run;
        bool ever_connected;
};

static void wipe(struct events *e, const struct record_view *r, const char *why) {
        /* Counted and audited by the registry's one wipe. */
        int rc = registry_wipe(e->cfg.registry, r->id, r->container_id, r->refcount, why);
        if (rc == -EBUSY) {
                char sid[SD_SHORT_ID_CHARS + 1];
                log_debug("instance %s changed since it was checked (mounted again); not wiped",
                          sd_short_id(r->id, sid));
        }
}

static void link_instance(struct events *e, const char *id, const char *container_id, const char *name,
                          int reload_signal) {
        sd_error err = { 0 };
        int r = registry_link(e->cfg.registry, id, container_id, name, reload_signal, &err);
        if (r < 0 && r != -ENOENT) {
                char sid[SD_SHORT_ID_CHARS + 1];
                metrics_error(ERROR_STATE);
                log_error("instance %s: cannot record its container: %s", sd_short_id(id, sid), err.message);
        }
}

struct mount_at {
        const char *destination;
        dev_t dev;
        bool found;
};

/* The last match wins: a later mount shadows an earlier one. */
static int mount_at_seen(void *userdata, const struct sd_mount_entry *e) {
        struct mount_at *m = userdata;
        if (strcmp(e->mount_point, m->destination) == 0) {
                m->dev = e->dev;
                m->found = true;
        }
        return 0;
}

/* The device mounted at `destination` inside process pid (the container's
 * init), from its mount table. */
static int container_mount_dev(int pid, const char *destination, dev_t *dev_out) {
        struct mount_at m = { .destination = destination };
        int r = sd_mount_table_foreach((pid_t) pid, mount_at_seen, &m);
        if (r < 0)
                return r;
        if (!m.found)
                return -ENOENT;
        *dev_out = m.dev;
        return 0;
}

static bool is_our_mount(const struct events *e, const struct sd_docker_mount *m, const char *volume) {
        return m->type == SD_DOCKER_MOUNT_VOLUME && m->driver && strcmp(m->driver, e->driver) == 0 &&
               m->name && (!volume || strcmp(m->name, volume) == 0);
}

/* The volume's unlinked instances might belong to a container whose mount
 * could not be read: none of them may be taken for unused. */
static void mark_unsure(struct record_views *views, const char *volume) {
        for (size_t j = 0; j < views->n; j++)
                if (!views->items[j].container_id[0] && strcmp(views->items[j].volume, volume) == 0)
                        views->items[j].unsure = true;
}

/* Link the unlinked records among *views that a running container holds,
 * by tmpfs device; records it could not check are marked unsure. */
static void link_by_device(struct events *e, const char *container_id, struct record_views *views) {
        _cleanup_docker_container_ struct sd_docker_container c = { 0 };
        sd_error err = { 0 };
        char scid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(container_id, scid);
        int r = sd_docker_inspect_container(e->docker, container_id, &c, &err);
        if (r < 0) {
                if (r != -ENOENT) {
                        metrics_error(ERROR_DOCKER);
                        log_warn("container %s: %s", scid, err.message);
                        for (size_t j = 0; j < views->n; j++)
                                views->items[j].unsure = true;
                }
                return;
        }
        if (!c.running)
                return;
        for (size_t i = 0; i < c.n_mounts; i++) {
                const struct sd_docker_mount *m = &c.mounts[i];
                if (!is_our_mount(e, m, NULL))
                        continue;
                dev_t dev = 0;
                int q = c.pid > 0 ? container_mount_dev(c.pid, m->destination, &dev) : -ESRCH;
                if (q < 0) {
                        log_debug("container %s: cannot read its mount at %s: %s", scid, m->destination,
                                  strerror(-q));
                        mark_unsure(views, m->name);
                        continue;
                }
                for (size_t j = 0; j < views->n; j++) {
                        struct record_view *v = &views->items[j];
                        struct stat st;
                        if (v->container_id[0] || v->refcount == 0 || strcmp(v->volume, m->name) != 0 ||
                            stat(v->mountpoint, &st) < 0 || st.st_dev != dev)
                                continue;
                        const char *name = c.n_names > 0 ? c.names[0] : "";
                        link_instance(e, v->id, c.id, name, c.reload_signal);
                        memcpy(v->container_id, c.id, sizeof(v->container_id));
                        (void) snprintf(v->container_name, sizeof(v->container_name), "%s", name);
                }
        }
}

static const struct sd_docker_container *list_find(const struct sd_docker_container_list *l, const char *id) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->items[i].id, id) == 0)
                        return &l->items[i];
        return NULL;
}

/* Compare the container list with the mount records (see events.h).
 * Callers hold work_lock. */
static void reconcile(struct events *e, const char *why) {
        sd_error err = { 0 };
        /* Records first: every link in the snapshot was made before the
         * list is asked for, so its container is in the list unless it is
         * really gone. */
        _cleanup_record_views_ struct record_views views = { 0 };
        if (registry_views(e->cfg.registry, &views) < 0) {
                log_error("reconcile (%s): out of memory", why);
                return;
        }
        _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
        int r = sd_docker_list_containers(e->docker, NULL, &list, &err);
        if (r < 0) {
                metrics_error(ERROR_DOCKER);
                log_warn("reconcile (%s): %s", why, err.message);
                return;
        }
        log_debug("reconcile (%s): %zu container(s), %zu instance(s)", why, list.n, views.n);
        if (views.n == 0)
                return;

        /* Linked instances: their container must still be there. */
        bool any_unlinked = false;
        for (size_t i = 0; i < views.n; i++) {
                struct record_view *v = &views.items[i];
                char msg[SD_DOCKER_NAME_MAX + 96], scid[SD_SHORT_ID_CHARS + 1];
                if (!v->container_id[0]) {
                        any_unlinked = any_unlinked || v->refcount > 0;
                        continue;
                }
                const struct sd_docker_container *c = list_find(&list, v->container_id);
                sd_short_id(v->container_id, scid);
                if (!c) {
                        (void) snprintf(msg, sizeof(msg), "container %s (%s) no longer exists", scid,
                                        v->container_name);
                        wipe(e, v, msg);
                } else if (c->state == SD_DOCKER_STATE_EXITED || c->state == SD_DOCKER_STATE_DEAD) {
                        /* Created/unknown states are left alone: a
                         * container being started is "created". */
                        (void) snprintf(msg, sizeof(msg), "container %s (%s) is not running", scid,
                                        v->container_name);
                        wipe(e, v, msg);
                }
        }
        if (!any_unlinked)
                return;

        /* Unlinked instances: find the running container holding each. */
        for (size_t i = 0; i < list.n; i++) {
                const struct sd_docker_container *c = &list.items[i];
                bool ours = false;
                for (size_t k = 0; k < c->n_mounts && !ours; k++)
                        ours = is_our_mount(e, &c->mounts[k], NULL);
                if (!ours || !c->running)
                        continue;
                /* Only worth an inspect if some unlinked record is of a
                 * volume this container mounts. */
                bool wanted = false;
                for (size_t j = 0; j < views.n && !wanted; j++)
                        for (size_t k = 0; k < c->n_mounts && !wanted; k++)
                                wanted = !views.items[j].container_id[0] &&
                                         is_our_mount(e, &c->mounts[k], views.items[j].volume);
                if (wanted)
                        link_by_device(e, c->id, &views);
        }
        /* A container still being started is "created" (or restarting)
         * from before its Mount until it runs, which on a loaded host can
         * take longer than the grace: the unlinked instances of its
         * volumes may be its own. */
        for (size_t i = 0; i < list.n; i++) {
                const struct sd_docker_container *c = &list.items[i];
                if (c->state != SD_DOCKER_STATE_CREATED && c->state != SD_DOCKER_STATE_RESTARTING)
                        continue;
                for (size_t k = 0; k < c->n_mounts; k++)
                        if (is_our_mount(e, &c->mounts[k], NULL))
                                mark_unsure(&views, c->mounts[k].name);
        }
        int64_t now = (int64_t) time(NULL);
        for (size_t i = 0; i < views.n; i++) {
                struct record_view *v = &views.items[i];
                if (v->container_id[0])
                        continue;
                if (v->refcount == 0) {
                        wipe(e, v, "its last unmount did not finish");
                        continue;
                }
                if (v->unsure || now - v->mounted_at < UNLINKED_GRACE_S)
                        continue;
                wipe(e, v, "no running container holds it");
        }
}

/* Wipe the instances still linked to a container that died (after
 * DIE_CHECK_DELAY_MS) or was destroyed.  Callers hold work_lock. */
static void container_gone(struct events *e, const char *container_id, bool destroyed) {
        _cleanup_record_views_ struct record_views views = { 0 };
        if (registry_views(e->cfg.registry, &views) < 0)
                return;
        bool any = false;
        for (size_t i = 0; i < views.n && !any; i++)
                any = strcmp(views.items[i].container_id, container_id) == 0;
        if (!any)
                return;
        char scid[SD_SHORT_ID_CHARS + 1];
        sd_short_id(container_id, scid);
        if (!destroyed) {
                /* A restart policy or `docker start` may have brought it
                 * back; a running container keeps its instances. */
                _cleanup_docker_container_ struct sd_docker_container c = { 0 };
                sd_error err = { 0 };
                int r = sd_docker_inspect_container(e->docker, container_id, &c, &err);
                if (r == -ENOENT)
                        destroyed = true;
                else if (r < 0) {
                        metrics_error(ERROR_DOCKER);
                        log_warn("container %s died; cannot check it (%s); the next reconcile will", scid,
                                 err.message);
                        return;
                } else if (c.running) {
                        log_debug("container %s died and runs again; its instances stay", scid);
                        return;
                }
        }
        for (size_t i = 0; i < views.n; i++) {
                struct record_view *v = &views.items[i];
                if (strcmp(v->container_id, container_id) != 0)
                        continue;
                char msg[SD_DOCKER_NAME_MAX + 96];
                (void) snprintf(msg, sizeof(msg), "container %s (%s) %s without an Unmount", scid,
                                v->container_name, destroyed ? "was destroyed" : "died");
                wipe(e, v, msg);
        }
}

/* ---- event handling (events thread, work_lock held) ---- */

static void on_volume_mount(struct events *e, const struct sd_docker_event *ev) {
        _cleanup_record_views_ struct record_views views = { 0 };
        if (registry_views(e->cfg.registry, &views) < 0)
                return;
        /* Already linked (a replayed event, or the reconcile got there). */
        for (size_t i = 0; i < views.n; i++)
                if (strcmp(views.items[i].container_id, ev->container_id) == 0 &&
                    strcmp(views.items[i].volume, ev->actor_id) == 0)
                        return;
        /* The Mount that made the instance came just before this event.
         * With one unlinked instance of the volume mounted around then,
         * that is it; with several (containers starting side by side), the
         * container's start event links them by tmpfs device. */
        const struct record_view *candidate = NULL;
        size_t n = 0;
        for (size_t i = 0; i < views.n; i++) {
                const struct record_view *v = &views.items[i];
                if (v->container_id[0] || v->refcount == 0 || strcmp(v->volume, ev->actor_id) != 0)
                        continue;
                if (v->mounted_at > ev->time + 1 || v->mounted_at < ev->time - 10)
                        continue;
                candidate = v;
                n++;
        }
        if (n != 1) {
                log_debug("volume '%s' mounted for container %.12s: %zu candidate instance(s); "
                          "linking at its start", ev->actor_id, ev->container_id, n);
                return;
        }
        /* The name and the reload label come with the container, not the
         * volume event.  A container that is not being started (gone,
         * exited) makes this a replayed old event whose instance is long
         * wiped: the lone candidate is someone else's. */
        _cleanup_docker_container_ struct sd_docker_container c = { 0 };
        sd_error err = { 0 };
        if (sd_docker_inspect_container(e->docker, ev->container_id, &c, &err) < 0) {
                log_debug("container %.12s: %s", ev->container_id, err.message);
                return;
        }
        if (c.state != SD_DOCKER_STATE_CREATED && !c.running)
                return;
        if (c.running && c.pid > 0) {
                /* Already up (a replay): its mount tells for sure. */
                link_by_device(e, c.id, &views);
                return;
        }
        link_instance(e, candidate->id, c.id, c.n_names > 0 ? c.names[0] : "", c.reload_signal);
}

static void on_container_start(struct events *e, const struct sd_docker_event *ev) {
        _cleanup_record_views_ struct record_views views = { 0 };
        if (registry_views(e->cfg.registry, &views) < 0)
                return;
        bool any_unlinked = false;
        for (size_t i = 0; i < views.n; i++) {
                const struct record_view *v = &views.items[i];
                if (strcmp(v->container_id, ev->actor_id) == 0)
                        /* The event carries the current name and labels. */
                        link_instance(e, v->id, ev->actor_id, ev->name, ev->reload_signal);
                any_unlinked = any_unlinked || (!v->container_id[0] && v->refcount > 0);
        }
        if (any_unlinked)
                link_by_device(e, ev->actor_id, &views);
}

static void on_container_rename(struct events *e, const struct sd_docker_event *ev) {
        _cleanup_record_views_ struct record_views views = { 0 };
        if (registry_views(e->cfg.registry, &views) < 0)
                return;
        for (size_t i = 0; i < views.n; i++)
                if (strcmp(views.items[i].container_id, ev->actor_id) == 0)
                        link_instance(e, views.items[i].id, ev->actor_id, ev->name, ev->reload_signal);
}

static void schedule_die_check(struct events *e, const char *container_id) {
        for (size_t i = 0; i < e->n_pending; i++)
                if (strcmp(e->pending[i].container_id, container_id) == 0)
                        return;
        if (e->n_pending == PENDING_DIE_MAX) {
                /* A storm of deaths: the reconcile catches the rest. */
                log_debug("too many containers died at once; container %.12s is left to the reconcile",
                          container_id);
                return;
        }
        struct pending_die *p = &e->pending[e->n_pending++];
        (void) snprintf(p->container_id, sizeof(p->container_id), "%.64s", container_id);
        p->due_ms = sd_monotonic_ms() + DIE_CHECK_DELAY_MS;
        (void) pthread_cond_signal(&e->wake);
}

static int handle_event(void *userdata, const struct sd_docker_event *ev, sd_error *err) {
        struct events *e = userdata;
        (void) err;
        notes_docker_event(e->cfg.notes);
        log_debug("docker event: %s %s %.12s", ev->type_name, ev->action_name, ev->actor_id);
        {
                _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
                if (ev->type == SD_DOCKER_EVENT_VOLUME && ev->action == SD_DOCKER_ACTION_MOUNT &&
                    strcmp(ev->driver, e->driver) == 0)
                        on_volume_mount(e, ev);
                else if (ev->type == SD_DOCKER_EVENT_CONTAINER) {
                        switch (ev->action) {
                        case SD_DOCKER_ACTION_START:
                                on_container_start(e, ev);
                                break;
                        case SD_DOCKER_ACTION_RENAME:
                                on_container_rename(e, ev);
                                break;
                        case SD_DOCKER_ACTION_DIE:
                                schedule_die_check(e, ev->actor_id);
                                break;
                        case SD_DOCKER_ACTION_DESTROY:
                                container_gone(e, ev->actor_id, true);
                                break;
                        default:
                                break;
                        }
                }
        }
        sd_docker_event_since(ev, e->since);
        return 0;
}

static int handle_connected(void *userdata, sd_error *err) {
        struct events *e = userdata;
        (void) err;
        e->connected_this_run = true;
        if (e->ever_connected) {
                metrics_inc(METRIC_DOCKER_RECONNECTS);
                log_info("docker events: reconnected to %s%s%s", sd_docker_socket_path(e->docker),
                         e->since[0] ? "; replaying from " : "", e->since);
        } else
                log_info("docker events: following %s", sd_docker_socket_path(e->docker));
        e->ever_connected = true;
        notes_docker(e->cfg.notes, true, NULL);
        /* dockerd may have restarted with another --userns-remap: ask
         * again, once, now rather than at every Mount. */
        if (e->cfg.userns) {
                sd_error warning = { 0 };
                if (userns_refresh(e->cfg.userns, &warning) < 0)
                        log_warn("%s; the next Mount asks again", warning.message);
        }
        _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
        e->connected = true;
        reconcile(e, "connected");
        return 0;
}

static int handle_bad_line(void *userdata, const sd_error *why, sd_error *err) {
        struct events *e = userdata;
        (void) err;
        log_warn("docker events: an event was lost (%s); reconciling", why->message);
        _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
        reconcile(e, "lost event");
        return 0;
}

/* Sleep ms unless stop_fd becomes readable: true when stopping. */
static bool wait_stop(int stop_fd, int ms) {
        struct pollfd p = { .fd = stop_fd, .events = POLLIN };
        for (;;) {
                int r = poll(&p, 1, ms);
                if (r >= 0)
                        return r > 0;
                if (errno != EINTR)
                        return true;
        }
}

static void *events_thread(void *arg) {
        struct events *e = arg;
        const struct sd_docker_events_handler h = {
                .connected = handle_connected,
                .event = handle_event,
                .bad_line = handle_bad_line,
                .userdata = e,
        };
        int backoff = BACKOFF_MIN_MS;
        int last_failure = 0;   /* the failure already logged, 0 when up */
        for (;;) {
                sd_error err = { 0 };
                e->connected_this_run = false;
                int r = sd_docker_events_run(e->docker, e->since[0] ? e->since : NULL, NULL, &h, e->stop_fd, &err);
                if (r == 0)
                        break;
                {
                        _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
                        e->connected = false;
                }
                if (e->connected_this_run) {
                        backoff = BACKOFF_MIN_MS;
                        last_failure = r;
                        log_warn("docker events: disconnected from %s: %s; reconnecting",
                                 sd_docker_socket_path(e->docker), err.message[0] ? err.message : strerror(-r));
                        notes_docker(e->cfg.notes, false, err.message);
                } else if (r != last_failure) {
                        /* Once per kind of failure, not once per retry. */
                        last_failure = r;
                        log_warn("docker events: cannot follow %s: %s; retrying every %d s at most",
                                 sd_docker_socket_path(e->docker), err.message[0] ? err.message : strerror(-r),
                                 BACKOFF_MAX_MS / 1000);
                        notes_docker(e->cfg.notes, false, err.message);
                }
                if (r == -EACCES || r == -EPROTO || r == -EINVAL)
                        metrics_error(ERROR_DOCKER);
                if (wait_stop(e->stop_fd, backoff))
                        break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
        return NULL;
}

static void *timer_thread(void *arg) {
        struct events *e = arg;
        _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
        int64_t next_reconcile = sd_monotonic_ms() + RECONCILE_PERIOD_MS;
        while (!e->stopping) {
                int64_t now = sd_monotonic_ms();
                for (size_t i = 0; i < e->n_pending;) {
                        if (e->pending[i].due_ms > now) {
                                i++;
                                continue;
                        }
                        char cid[SD_DOCKER_CONTAINER_ID_LEN + 1];
                        memcpy(cid, e->pending[i].container_id, sizeof(cid));
                        e->pending[i] = e->pending[--e->n_pending];
                        container_gone(e, cid, false);
                }
                if (now >= next_reconcile) {
                        if (e->connected)
                                reconcile(e, "periodic");
                        next_reconcile = now + RECONCILE_PERIOD_MS;
                }
                int64_t due = next_reconcile;
                for (size_t i = 0; i < e->n_pending; i++)
                        if (e->pending[i].due_ms < due)
                                due = e->pending[i].due_ms;
                struct timespec ts = { .tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000 };
                (void) pthread_cond_timedwait(&e->wake, &e->work_lock, &ts);
        }
        return NULL;
}

void events_stop(struct events *e) {
        if (!e)
                return;
        const uint64_t one = 1;
        if (e->stop_fd >= 0 && write(e->stop_fd, &one, sizeof(one)) < 0)
                log_error("docker events: cannot signal the stop: %s", strerror(errno));
        {
                _cleanup_unlock_ pthread_mutex_t *work = sd_lock(&e->work_lock);
                e->stopping = true;
                (void) pthread_cond_signal(&e->wake);
        }
        if (e->events_started)
                (void) pthread_join(e->events_thread, NULL);
        if (e->timer_started)
                (void) pthread_join(e->timer_thread, NULL);
        sd_docker_free(e->docker);
        sd_closep(&e->stop_fd);
        (void) pthread_cond_destroy(&e->wake);
        (void) pthread_mutex_destroy(&e->work_lock);
        free(e->driver);
        free(e);
}

static void events_stopp(struct events **e) {
        events_stop(*e);
}

int events_start(const struct events_config *cfg, struct events **out, sd_error *err) {
        __attribute__((cleanup(events_stopp))) struct events *e = calloc(1, sizeof(*e));
        if (!e)
                return sd_error_set(err, ENOMEM, "out of memory");
        e->cfg = *cfg;
        const char *docker_socket = cfg->docker_socket, *driver = cfg->driver;
        e->stop_fd = -1;
        (void) pthread_mutex_init(&e->work_lock, NULL);
        pthread_condattr_t ca;
        (void) pthread_condattr_init(&ca);
        (void) pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        (void) pthread_cond_init(&e->wake, &ca);
        (void) pthread_condattr_destroy(&ca);
        e->driver = strdup(driver);
        if (!e->driver)
                return sd_error_set(err, ENOMEM, "out of memory");
        int r = sd_docker_new(docker_socket, &e->docker, err);
        if (r < 0)
                return sd_error_prefix(err, r, "docker-socket");
        /* A handler in a slow docker call delays the stop by that long. */
        sd_docker_set_timeouts(e->docker, 2000, 10000);
        e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (e->stop_fd < 0)
                return sd_error_set_errno(err, errno, "docker events: eventfd");
        r = pthread_create(&e->events_thread, NULL, events_thread, e);
        if (r != 0)
                return sd_error_set_errno(err, r, "docker events: cannot start a thread");
        e->events_started = true;
        r = pthread_create(&e->timer_thread, NULL, timer_thread, e);
        if (r != 0)
                return sd_error_set_errno(err, r, "docker events: cannot start a thread");
        e->timer_started = true;
        *out = steal_pointer(&e);
        return 0;
}
