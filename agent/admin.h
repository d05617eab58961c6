/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The admin socket (default /run/secretd/admin.sock, config key
 * `admin-socket`): a read-only HTTP API for root on a 0600 unix socket,
 * peer checked with SO_PEERCRED.
 *
 *   GET /v1/status   agent, store, docker, volumes, instances (JSON)
 *   GET /metrics     Prometheus text (agent/metrics.h)
 *
 * The status setters below are called by the parts that know (store watch,
 * docker events); each is thread-safe and cheap.
 */

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "secretd/error.h"
#include "secretd/keys.h"

#define AGENT_STATUS_MESSAGE_MAX 256

struct agent;

struct agent_status {
        pthread_mutex_t lock;
        int64_t started_mono_ms;          /* CLOCK_MONOTONIC at agent_init */
        const char *driver;               /* not owned; set by daemon.c */
        const char *store_url;            /* not owned; set by daemon.c */

        bool store_ok;
        char store_error[AGENT_STATUS_MESSAGE_MAX];  /* last error, "" if none */
        int64_t store_error_at;           /* unix ms, 0 never */
        int64_t store_ok_at;              /* last successful read/watch, unix ms, 0 never */

        bool docker_connected;
        char docker_error[AGENT_STATUS_MESSAGE_MAX];
        int64_t docker_changed_at;        /* unix ms of the last connect/disconnect */
        int64_t docker_event_at;          /* unix ms of the last event, 0 never */
};

/* Called by agent_init()/agent_done(). */
void agent_status_init(struct agent_status *s);
void agent_status_done(struct agent_status *s);

/* Store state: ok=true records a successful read or watch (message
 * ignored); ok=false records the error message (no secret values: sd_error
 * texts are fine). */
void agent_status_store(struct agent *a, bool ok, const char *message);

/* Docker events connection: connected or not (message: why it dropped,
 * may be NULL). */
void agent_status_docker(struct agent *a, bool connected, const char *message);

/* One docker event received: records its time and counts
 * secretd_docker_events_total. */
void agent_status_docker_event(struct agent *a);

/* Count and audit what the plugin endpoints do (never a value).  m is a
 * struct mount_record (agent.h); writers[i] is the key id of the writer
 * who signed m->versions[i]. */
struct mount_record;
void agent_note_delivery(struct agent *a, const struct mount_record *m,
                         const char (*writers)[SD_KEY_ID_CHARS + 1]);
void agent_note_wipe(struct agent *a, const struct mount_record *m, const char *why);
/* A Create, Mount (instance = mount id) or rotation refused: counts
 * secretd_refusals_total and secretd_errors_total{kind} (see
 * metrics_error_kind_for_code()), audits "refuse" with err->message as the
 * reason. */
void agent_note_refusal(struct agent *a, const char *volume, const char *instance, enum error_kind kind,
                        const sd_error *err);

/* Build the GET /v1/status object.  NULL on out of memory. */
json_t *admin_status_json(struct agent *a);

/* ---- server ---- */

struct admin_server;

/* Create the socket's directory (0700) if missing and bind socket_path
 * (agent_socket_listen(): mode 0600, a stale socket replaced).  Done
 * before the seccomp filter goes on; returns the listening fd. */
int admin_socket_listen(const char *socket_path, sd_error *err);

/* Serve the admin API on listen_fd (taken over).  socket_path is unlinked
 * by admin_server_stop(). */
int admin_server_start(struct agent *a, int listen_fd, const char *socket_path, struct admin_server **out,
                       sd_error *err);
void admin_server_stop(struct admin_server *s);
static inline void admin_server_stopp(struct admin_server **s) {
        admin_server_stop(*s);
}

/* Route one request (method, path) to (status, content type, body).  For
 * the unit tests; the server calls it after the peer check.  *body_out
 * is malloc()ed.  -ENOMEM. */
int admin_dispatch(struct agent *a, const char *method, const char *path, unsigned *status_out,
                   const char **content_type_out, char **body_out);
