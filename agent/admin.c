/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The admin socket: read-only status and metrics for root, served by
 * libmicrohttpd on a 0600 unix socket next to the state (protocols.md
 * section 4 for the MHD facts).  Nothing here can change the agent's state
 * and nothing returned holds a secret value: names, versions, ids, times
 * and error messages only.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

#include "agent.h"
#include "audit.h"
#include "fileio.h"
#include "log.h"
#include "metrics.h"
#include "secretd/clock.h"
#include "secretd/cleanup.h"

void agent_status_init(struct agent_status *s) {
        *s = (struct agent_status) { .started_mono_ms = sd_monotonic_ms() };
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
        int64_t now = sd_realtime_ms();
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
        int64_t now = sd_realtime_ms();
        pthread_mutex_lock(&s->lock);
        s->docker_connected = connected;
        s->docker_changed_at = now;
        if (!connected)
                copy_message(s->docker_error, message);
        pthread_mutex_unlock(&s->lock);
}

void agent_status_docker_event(struct agent *a) {
        struct agent_status *s = &a->status;
        int64_t now = sd_realtime_ms();
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
        /* Every secret was just read from the store and verified. */
        agent_status_store(a, true, NULL);
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
        if (kind == ERROR_STORE && err && err->code != ENOENT && err->code != EFBIG)
                agent_status_store(a, false, err->message);
        const struct audit_event ev = {
                .kind = AUDIT_REFUSE,
                .volume = volume,
                .instance = instance,
                .reason = err && err->message[0] ? err->message : "unknown error",
        };
        (void) audit_log(a->audit, &ev);
}

/* ---- status ---- */

/* RFC 3339 UTC with milliseconds, or JSON null for "never". */
static json_t *time_json(int64_t unix_ms) {
        if (unix_ms <= 0)
                return json_null();
        time_t secs = (time_t) (unix_ms / 1000);
        struct tm tm;
        char text[40];
        size_t n;
        if (!gmtime_r(&secs, &tm) || (n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
                return json_null();
        (void) snprintf(text + n, sizeof(text) - n, ".%03dZ", (int) (unix_ms % 1000));
        return json_string(text);
}

static json_t *string_or_null(const char *s) {
        return s && s[0] ? json_string(s) : json_null();
}

static json_t *status_agent_json(struct agent *a, const struct agent_status *st) {
        int64_t uptime_ms = sd_monotonic_ms() - st->started_mono_ms;
        return json_pack("{s:s,s:I,s:I,s:o}", "version", SECRETD_VERSION, "pid", (json_int_t) getpid(),
                         "uptime_seconds", (json_int_t) (uptime_ms / 1000), "driver",
                         string_or_null(st->driver));
}

static json_t *status_store_json(const struct agent_status *st) {
        const char *state = st->store_ok ? "ok" : st->store_error_at > 0 ? "error" : "unknown";
        return json_pack("{s:o,s:s,s:o,s:o,s:o,s:I}", "url", string_or_null(st->store_url), "state", state,
                         "last_error", string_or_null(st->store_error), "last_error_at",
                         time_json(st->store_error_at), "last_ok_at", time_json(st->store_ok_at),
                         "watch_reconnects", (json_int_t) metrics_get(METRIC_STORE_RECONNECTS));
}

static json_t *status_docker_json(const struct agent_status *st) {
        const char *state = st->docker_connected ? "connected"
                            : st->docker_changed_at > 0 ? "disconnected"
                                                        : "unknown";
        return json_pack("{s:s,s:o,s:o,s:o,s:I,s:I}", "state", state, "since", time_json(st->docker_changed_at),
                         "last_error", string_or_null(st->docker_connected ? NULL : st->docker_error),
                         "last_event_at", time_json(st->docker_event_at), "events",
                         (json_int_t) metrics_get(METRIC_EVENTS), "reconnects",
                         (json_int_t) metrics_get(METRIC_DOCKER_RECONNECTS));
}

static json_t *volume_json(const struct volume *v) {
        _cleanup_json_ json_t *secrets = json_array();
        if (!secrets)
                return NULL;
        for (size_t i = 0; i < v->spec.n_secrets; i++) {
                /* One secret may be delivered under several file names. */
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || strcmp(v->spec.secrets[j].name, v->spec.secrets[i].name) == 0;
                if (!seen && json_array_append_new(secrets, json_string(v->spec.secrets[i].name)) < 0)
                        return NULL;
        }
        json_t *opts = volume_spec_to_json(&v->spec);
        if (!opts)
                return NULL;
        return json_pack("{s:s,s:O,s:o,s:o}", "name", v->name, "secrets", secrets, "opts", opts, "created_at",
                         time_json(v->created_at * 1000));
}

static json_t *instance_json(const struct mount_record *m) {
        _cleanup_json_ json_t *delivered = json_object();
        if (!delivered)
                return NULL;
        for (size_t i = 0; i < m->n_versions; i++)
                if (json_object_set_new(delivered, m->versions[i].name,
                                        json_integer((json_int_t) m->versions[i].version)) < 0)
                        return NULL;
        /* refcount 0 is a dead instance whose wipe failed: it is listed so
         * an operator sees it, and says so. */
        return json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:b,s:o,s:O}", "id", m->id, "volume", m->volume,
                         "container_id", string_or_null(m->container_id), "container_name",
                         string_or_null(m->container_name), "refcount", (json_int_t) m->refcount, "generation",
                         (json_int_t) m->generation, "live", m->refcount > 0, "mounted_at",
                         time_json(m->mounted_at * 1000), "delivered", delivered);
}

json_t *admin_status_json(struct agent *a) {
        struct agent_status st;
        pthread_mutex_lock(&a->status.lock);
        st = a->status;
        pthread_mutex_unlock(&a->status.lock);

        _cleanup_json_ json_t *volumes = json_array();
        _cleanup_json_ json_t *instances = json_array();
        if (!volumes || !instances)
                return NULL;
        {
                /* reg_lock only: a status request must not wait behind a
                 * Mount stuck on a slow store. */
                pthread_mutex_lock(&a->reg_lock);
                bool ok = true;
                for (size_t i = 0; ok && i < a->n_volumes; i++)
                        ok = json_array_append_new(volumes, volume_json(a->volumes[i])) == 0;
                for (size_t i = 0; ok && i < a->n_mounts; i++)
                        ok = json_array_append_new(instances, instance_json(a->mounts[i])) == 0;
                pthread_mutex_unlock(&a->reg_lock);
                if (!ok)
                        return NULL;
        }
        return json_pack("{s:o,s:o,s:o,s:O,s:O}", "agent", status_agent_json(a, &st), "store",
                         status_store_json(&st), "docker", status_docker_json(&st), "volumes", volumes,
                         "instances", instances);
}

/* ---- routing ---- */

#define CONTENT_JSON "application/json"
#define CONTENT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

static int json_body(json_t *obj, char **body_out) {
        _cleanup_json_ json_t *owned = obj;
        if (!owned)
                return -ENOMEM;
        char *text = json_dumps(owned, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *body = realloc(text, len + 2);
        if (!body) {
                free(text);
                return -ENOMEM;
        }
        body[len] = '\n';
        body[len + 1] = '\0';
        *body_out = body;
        return 0;
}

static int error_body(const char *message, char **body_out) {
        return json_body(json_pack("{s:s}", "error", message), body_out);
}

int admin_dispatch(struct agent *a, const char *method, const char *path, unsigned *status_out,
                   const char **content_type_out, char **body_out) {
        bool is_status = strcmp(path, "/v1/status") == 0;
        bool is_metrics = strcmp(path, "/metrics") == 0;
        *content_type_out = CONTENT_JSON;
        if (!is_status && !is_metrics) {
                *status_out = MHD_HTTP_NOT_FOUND;
                return error_body("not found: the admin API serves GET /v1/status and GET /metrics", body_out);
        }
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
                *status_out = MHD_HTTP_METHOD_NOT_ALLOWED;
                return error_body("method not allowed: the admin API is read-only; use GET", body_out);
        }
        *status_out = MHD_HTTP_OK;
        if (is_status)
                return json_body(admin_status_json(a), body_out);
        *content_type_out = CONTENT_PROMETHEUS;
        return metrics_render_string(body_out, NULL);
}

/* ---- HTTP ---- */

#define ADMIN_CONNECTION_TIMEOUT_S 10
#define ADMIN_CONNECTION_LIMIT 16
#define ADMIN_CONNECTION_MEMORY 16384

struct admin_server {
        struct MHD_Daemon *mhd;
        struct agent *agent;
        char *socket_path;
};

/* Marks a connection whose headers were seen; its body, if any, is
 * drained and ignored. */
static char request_seen;

static enum MHD_Result send_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                                  char *body) {
        _cleanup_free_ char *owned = body;
        if (!owned) {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                content_type = CONTENT_JSON;
                owned = strdup("{\"error\": \"secretd: out of memory\"}\n");
                if (!owned)
                        return MHD_NO;
        }
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(owned), owned, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct admin_server *s = cls;
        if (!*con_cls) {
                /* The socket is 0600, but a loosened mode or a passed fd
                 * must not open the agent's inventory to anyone. */
                uid_t uid = (uid_t) -1;
                if (agent_peer_uid(c, &uid) < 0 || uid != 0) {
                        log_warn("admin: refused %s %s from uid %d: only root may use the admin socket", method,
                                 url, (int) uid);
                        char *body = NULL;
                        (void) error_body("permission denied: the secretd admin socket serves only root", &body);
                        return send_reply(c, MHD_HTTP_FORBIDDEN, CONTENT_JSON, body);
                }
                *con_cls = &request_seen;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        unsigned status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        const char *content_type = CONTENT_JSON;
        char *body = NULL;
        (void) admin_dispatch(s->agent, method, url, &status, &content_type, &body);
        log_debug("admin: %s %s -> %u", method, url, status);
        return send_reply(c, status, content_type, body);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) SD_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char line[512];
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        log_debug("admin: libmicrohttpd: %s", line);
}

int admin_socket_listen(const char *socket_path, sd_error *err) {
        _cleanup_free_ char *dir = strdup(socket_path);
        if (!dir)
                return sd_error_set(err, ENOMEM, "out of memory");
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return sd_error_set(err, EINVAL, "admin socket %s: not an absolute path below a directory",
                                    socket_path);
        *slash = '\0';
        int r = sd_mkdir_p(dir, 0700);
        if (r < 0)
                return sd_error_set_errno(err, -r, "admin socket directory %s: cannot create", dir);
        return agent_socket_listen(socket_path, err);
}

int admin_server_start(struct agent *a, int listen_fd, const char *socket_path, struct admin_server **out,
                       sd_error *err) {
        _cleanup_close_ int fd = listen_fd;
        _cleanup_free_ struct admin_server *s = calloc(1, sizeof(*s));
        if (!s)
                return sd_error_set(err, ENOMEM, "out of memory");
        s->agent = a;
        s->socket_path = strdup(socket_path);
        if (!s->socket_path)
                return sd_error_set(err, ENOMEM, "out of memory");
        /* One polling thread: every answer is built from memory in
         * microseconds, and a stuck client only holds its own connection
         * until the timeout. */
        s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                  on_request, s,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                  MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) ADMIN_CONNECTION_TIMEOUT_S,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) ADMIN_CONNECTION_LIMIT,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) ADMIN_CONNECTION_MEMORY,
                                  MHD_OPTION_END);
        if (!s->mhd) {
                free(s->socket_path);
                return sd_error_set(err, EIO, "admin socket %s: libmicrohttpd failed to start", socket_path);
        }
        fd = -1;  /* MHD closes it in MHD_stop_daemon */
        *out = steal_pointer(&s);
        return 0;
}

void admin_server_stop(struct admin_server *s) {
        if (!s)
                return;
        agent_socket_server_stop(s->mhd, s->socket_path);
        free(s);
}
