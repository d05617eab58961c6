/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The admin socket (default /run/secretd/admin.sock, config key
 * `admin-socket`): a read-only HTTP API for root on a 0600 unix socket,
 * peer checked with SO_PEERCRED (httpd.h).
 *
 *   GET /v1/status   agent, store, docker, volumes, instances (JSON)
 *   GET /metrics     Prometheus text (agent/metrics.h)
 *
 * With metrics-listen set, GET /metrics alone is also served on a loopback
 * TCP socket, to any local peer (Prometheus runs as its own user): the
 * figures are counts and states, and the status (names, containers) stays
 * on the root-only socket.
 *
 * Nothing here can change the agent's state and nothing returned holds a
 * secret value: names, versions, ids, times and error messages only.
 */

#include <jansson.h>
#include <stdbool.h>

#include "secretd/error.h"

struct httpd;
struct notes;
struct registry;

struct admin {
        struct registry *registry;        /* NULL: no volumes or instances to show */
        struct notes *notes;
        bool metrics_only;                /* the metrics-listen server: GET /metrics, nothing else */
};

/* Build the GET /v1/status object.  NULL on out of memory. */
json_t *admin_status_json(struct registry *reg, struct notes *notes);

/* The GET /metrics text: the counters (metrics.h), the store's and the
 * local cache's gauges (notes; none without), then the registry's gauges
 * (volumes, instances, tmpfs size caps; zero without a registry).
 * *text_out malloc()ed.  -ENOMEM. */
int admin_metrics_text(struct registry *reg, struct notes *notes, char **text_out);

/* Route one request (method, path) to (status, content type, body).  For
 * the unit tests; the server calls it after the peer check.  *body_out
 * is malloc()ed.  -ENOMEM. */
int admin_dispatch(struct admin *adm, const char *method, const char *path, unsigned *status_out,
                   const char **content_type_out, char **body_out);

/* Create the socket's directory (0700) if missing and bind socket_path
 * (httpd_listen(): mode 0600, a stale socket replaced).  Done before the
 * seccomp filter goes on; returns the listening fd. */
int admin_socket_listen(const char *socket_path, sd_error *err);

/* Serve the admin API on listen_fd (taken over).  socket_path is unlinked
 * by httpd_stop(). */
int admin_serve(struct admin *adm, int listen_fd, const char *socket_path, struct httpd **out, sd_error *err);

/* Bind the metrics-listen address (sd_config_loopback_address: loopback
 * only) and listen.  Done before the seccomp filter goes on; returns the
 * listening fd. */
int admin_metrics_listen(const char *listen_address, sd_error *err);

/* Serve GET /metrics alone on listen_fd (taken over), to any local peer;
 * adm->metrics_only must be set. */
int admin_serve_metrics(struct admin *adm, int listen_fd, struct httpd **out, sd_error *err);
