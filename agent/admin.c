/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "audit.h"
#include "log.h"
#include "metrics.h"

static int64_t realtime_ms(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t monotonic_ms(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agent_status_init(struct agent_status *s) {
        *s = (struct agent_status) { .started_mono_ms = monotonic_ms() };
        (void) pthread_mutex_init(&s->lock, NULL);
}

void agent_status_done(struct agent_status *s) {
        (void) pthread_mutex_destroy(&s->lock);
}

static void copy_message(char *dst, const char *src) {
        (void) snprintf(dst, AGENT_STATUS_MESSAGE_MAX, "%s", src ? src : "");
}

void agent_status_store(struct agent *a, bool ok, const char *message) {
        struct agent_status *s = &a->status;
        int64_t now = realtime_ms();
        pthread_mutex_lock(&s->lock);
        s->store_ok = ok;
        if (ok) {
                s->store_ok_at = now;
        } else {
                copy_message(s->store_error, message);
                s->store_error_at = now;
        }
        pthread_mutex_unlock(&s->lock);
}

void agent_status_docker(struct agent *a, bool connected, const char *message) {
        struct agent_status *s = &a->status;
        int64_t now = realtime_ms();
        pthread_mutex_lock(&s->lock);
        s->docker_connected = connected;
        s->docker_changed_at = now;
        if (!connected)
                copy_message(s->docker_error, message);
        pthread_mutex_unlock(&s->lock);
}

void agent_status_docker_event(struct agent *a) {
        struct agent_status *s = &a->status;
        int64_t now = realtime_ms();
        metrics_inc(METRIC_EVENTS);
        pthread_mutex_lock(&s->lock);
        s->docker_event_at = now;
        pthread_mutex_unlock(&s->lock);
}

static const char *or_null(const char *s) {
        return s && s[0] ? s : NULL;
}

void agent_note_delivery(struct agent *a, const struct mount_record *m,
                         const char (*writers)[SD_KEY_ID_CHARS + 1]) {
        for (size_t i = 0; i < m->n_versions; i++) {
                metrics_inc(METRIC_DELIVERIES);
                const struct audit_event ev = {
                        .kind = AUDIT_DELIVER,
                        .container = or_null(m->container_id),
                        .container_name = or_null(m->container_name),
                        .volume = m->volume,
                        .instance = m->id,
                        .secret = m->versions[i].name,
                        .version = m->versions[i].version,
                        .writer = writers ? or_null(writers[i]) : NULL,
                };
                (void) audit_log(a->audit, &ev);
        }
}

void agent_note_wipe(struct agent *a, const struct mount_record *m, const char *why) {
        metrics_inc(METRIC_WIPES);
        const struct audit_event ev = {
                .kind = AUDIT_WIPE,
                .container = or_null(m->container_id),
                .container_name = or_null(m->container_name),
                .volume = m->volume,
                .instance = m->id,
                .reason = why,
        };
        (void) audit_log(a->audit, &ev);
}

void agent_note_refusal(struct agent *a, const char *volume, const char *instance, enum error_kind kind,
                        const sd_error *err) {
        metrics_inc(METRIC_REFUSALS);
        metrics_error(kind);
        const struct audit_event ev = {
                .kind = AUDIT_REFUSE,
                .volume = volume,
                .instance = instance,
                .reason = err && err->message[0] ? err->message : "unknown error",
        };
        (void) audit_log(a->audit, &ev);
}

json_t *admin_status_json(struct agent *a) {
        return json_object();
}

int admin_server_start(struct agent *a, const char *socket_path, struct admin_server **out, sd_error *err) {
        return sd_error_set(err, ENOSYS, "admin socket %s: not implemented yet", socket_path);
}

void admin_server_stop(struct admin_server *s) {
}
