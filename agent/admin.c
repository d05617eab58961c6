/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The admin socket: read-only status and metrics for root, served by
 * libmicrohttpd on a 0600 unix socket next to the state (protocols.md
 * section 4 for the MHD facts).  Nothing here can change the agent's state
 * and nothing returned holds a secret value: names, versions, ids, times
 * and error messages only.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

#include "admin.h"
#include "fileio.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "notes.h"
#include "registry.h"
#include "secretd/config.h"
#include "secretd/clock.h"
#include "secretd/cleanup.h"

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

static json_t *status_agent_json(const struct notes_state *st) {
        int64_t uptime_ms = sd_monotonic_ms() - st->started_mono_ms;
        return json_pack("{s:s,s:I,s:I,s:o}", "version", SECRETD_VERSION, "pid", (json_int_t) getpid(),
                         "uptime_seconds", (json_int_t) (uptime_ms / 1000), "driver",
                         string_or_null(st->driver));
}

/* Seconds since the store last answered a call, or < 0 for never. */
static double seconds_since_contact(const struct notes_state *st) {
        if (!st->have_health || st->health.last_contact_ms <= 0)
                return -1;
        double s = (double) (sd_realtime_ms() - st->health.last_contact_ms) / 1e3;
        return s < 0 ? 0 : s;
}

/* degraded: the last call could not reach the store (sd_store_health);
 * Mounts then take what the local cache holds. */
static const char *store_state(const struct notes_state *st) {
        if (st->have_health && !st->health.reachable)
                return "degraded";
        return st->store_ok ? "ok" : st->store_error_at > 0 ? "error" : "unknown";
}

static json_t *status_cache_json(const struct notes_state *st) {
        if (!st->cache_dir)
                return json_null();
        return json_pack("{s:s,s:I,s:o,s:I}", "dir", st->cache_dir, "entries", (json_int_t) st->cache_entries,
                         "last_delivery_at", time_json(st->cache_delivered_at), "deliveries",
                         (json_int_t) metrics_get(METRIC_CACHE_DELIVERIES));
}

static json_t *status_store_json(const struct notes_state *st) {
        _cleanup_json_ json_t *store = json_pack(
                "{s:o,s:s,s:o,s:o,s:o,s:I}", "url", string_or_null(st->store_url), "state", store_state(st),
                "last_error", string_or_null(st->store_error), "last_error_at", time_json(st->store_error_at),
                "last_ok_at", time_json(st->store_ok_at), "watch_reconnects",
                (json_int_t) metrics_get(METRIC_STORE_RECONNECTS));
        if (!store)
                return NULL;
        double since = seconds_since_contact(st);
        json_t *health = st->have_health
                                 ? json_pack("{s:s,s:I,s:o,s:o}", "endpoint", st->health.endpoint, "failovers",
                                             (json_int_t) st->health.failovers, "last_contact_at",
                                             time_json(st->health.last_contact_ms), "seconds_since_contact",
                                             since < 0 ? json_null() : json_real(since))
                                 : json_pack("{s:n,s:I,s:n,s:n}", "endpoint", "failovers", (json_int_t) 0,
                                             "last_contact_at", "seconds_since_contact");
        if (!health || json_object_update(store, health) < 0 ||
            json_object_set_new(store, "cache", status_cache_json(st)) < 0) {
                json_decref(health);
                return NULL;
        }
        json_decref(health);
        return steal_pointer(&store);
}

/* Prometheus label value: backslash, double quote and line feed escaped. */
static void label_value(FILE *out, const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', out);
                if (*s == '\n') {
                        fputs("\\n", out);
                        continue;
                }
                fputc(*s, out);
        }
}

/* The store's and the cache's gauges, after the counters. */
static int store_metrics_render(void *ctx, FILE *out) {
        struct notes *notes = ctx;
        if (!notes)
                return 0;
        struct notes_state st;
        notes_state_get(notes, &st);
        if (st.have_health) {
                fprintf(out,
                        "# HELP secretd_store_up 1 while the store answers, 0 while it is unreachable (degraded).\n"
                        "# TYPE secretd_store_up gauge\nsecretd_store_up %d\n",
                        st.health.reachable ? 1 : 0);
                double since = seconds_since_contact(&st);
                if (since >= 0)
                        fprintf(out,
                                "# HELP secretd_store_seconds_since_contact Seconds since the store last answered.\n"
                                "# TYPE secretd_store_seconds_since_contact gauge\n"
                                "secretd_store_seconds_since_contact %.3f\n",
                                since);
                fprintf(out,
                        "# HELP secretd_store_failovers_total Moves of the store client to another etcd member.\n"
                        "# TYPE secretd_store_failovers_total counter\nsecretd_store_failovers_total %" PRIu64 "\n"
                        "# HELP secretd_store_endpoint_info The store member in use.\n"
                        "# TYPE secretd_store_endpoint_info gauge\nsecretd_store_endpoint_info{endpoint=\"",
                        st.health.failovers);
                label_value(out, st.health.endpoint);
                fputs("\"} 1\n", out);
        }
        if (st.cache_dir)
                fprintf(out,
                        "# HELP secretd_cache_entries Envelopes kept in the local cache.\n"
                        "# TYPE secretd_cache_entries gauge\nsecretd_cache_entries %zu\n",
                        st.cache_entries);
        return ferror(out) ? -EIO : 0;
}


static json_t *status_docker_json(const struct notes_state *st) {
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
        _cleanup_json_ json_t *secrets = volume_spec_secret_names(&v->spec);
        json_t *opts = secrets ? volume_spec_to_json(&v->spec) : NULL;
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
        bool live = m->state == RECORD_LIVE;
        /* A dead instance (its wipe failed) is listed so an operator sees
         * it, and says so. */
        return json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:b,s:o,s:O}", "id", m->id, "volume", m->volume,
                         "container_id", string_or_null(m->container_id), "container_name",
                         string_or_null(m->container_name), "refcount", (json_int_t) (live ? m->refcount : 0),
                         "generation", (json_int_t) m->generation, "live", live, "mounted_at",
                         time_json(m->mounted_at * 1000), "delivered", delivered);
}

static json_t *status_realm_json(struct notes *notes) {
        struct notes_realm r;
        notes_realm_get(notes, &r);
        if (!r.id[0])
                return json_null();
        return json_pack("{s:s,s:I,s:o,s:o,s:o}", "id", r.id, "policy_version", (json_int_t) r.policy_version,
                         "policy_created", time_json(r.policy_created * 1000), "applied_at", time_json(r.applied_at),
                         "recipient", string_or_null(r.recipient));
}

/* Secrets whose newest version does not verify, so containers get an
 * older one (or none). */
static json_t *status_stale_json(struct notes *notes) {
        struct notes_stale *stale = NULL;
        size_t n = 0;
        if (notes_stale_list(notes, &stale, &n) < 0)
                return NULL;
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (json_array_append_new(list,
                                          json_pack("{s:s,s:I,s:o,s:o,s:s}", "secret", stale[i].secret, "newest",
                                                    (json_int_t) stale[i].newest, "served",
                                                    stale[i].served ? json_integer((json_int_t) stale[i].served)
                                                                    : json_null(),
                                                    "since", time_json(stale[i].since_ms), "reason",
                                                    stale[i].reason)) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        free(stale);
        return list;
}

struct status_job {
        json_t *volumes, *instances;
        bool ok;
};

static void status_visit(void *userdata, const struct volume *const *volumes, size_t n_volumes,
                         const struct mount_record *const *records, size_t n_records) {
        struct status_job *job = userdata;
        job->ok = true;
        for (size_t i = 0; job->ok && i < n_volumes; i++)
                job->ok = json_array_append_new(job->volumes, volume_json(volumes[i])) == 0;
        for (size_t i = 0; job->ok && i < n_records; i++)
                if (records[i]->state != RECORD_RESERVED)
                        job->ok = json_array_append_new(job->instances, instance_json(records[i])) == 0;
}

json_t *admin_status_json(struct registry *reg, struct notes *notes) {
        struct notes_state st;
        notes_state_get(notes, &st);
        _cleanup_json_ json_t *volumes = json_array();
        _cleanup_json_ json_t *instances = json_array();
        if (!volumes || !instances)
                return NULL;
        /* The registry lock only, for as long as copying takes: a status
         * request never waits behind a Mount stuck on a slow store. */
        struct status_job job = { .volumes = volumes, .instances = instances };
        if (reg)
                registry_visit(reg, status_visit, &job);
        else
                job.ok = true;
        if (!job.ok)
                return NULL;
        return json_pack("{s:o,s:o,s:o,s:o,s:o,s:O,s:O}", "agent", status_agent_json(&st), "store",
                         status_store_json(&st), "docker", status_docker_json(&st), "realm", status_realm_json(notes),
                         "stale", status_stale_json(notes), "volumes", volumes, "instances", instances);
}

/* ---- /metrics ---- */

/* The registry's gauges, read at scrape time (the counters of metrics.h
 * are bumped as things happen; these are states), after the counters. */
int admin_metrics_text(struct registry *reg, struct notes *notes, char **text_out) {
        _cleanup_free_ char *counters = NULL;
        int r = metrics_render_string_with(store_metrics_render, notes, &counters, NULL);
        if (r < 0)
                return r;
        struct registry_gauges g = { 0 };
        if (reg && (r = registry_gauges_get(reg, &g)) < 0)
                return r;
#define GAUGE(name, help) "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %" PRIu64 "\n"
        static const char gauges_fmt[] =
                "%s" GAUGE("secretd_volumes", "Volumes defined (docker volume create).")
                GAUGE("secretd_instances", "Per-container tmpfs instances mounted.")
                GAUGE("secretd_dead_instances", "Instances whose wipe failed; their tmpfs is still mounted.")
                GAUGE("secretd_tmpfs_size_bytes",
                      "Size caps of all tmpfs instances: the host memory they may take, bounded by max-total-tmpfs.")
                GAUGE("secretd_tmpfs_used_bytes", "Bytes the tmpfs instances hold now (their used blocks).");
        if (asprintf(text_out, gauges_fmt, counters, g.volumes, g.instances, g.dead_instances, g.tmpfs_size_bytes,
                     g.tmpfs_used_bytes) < 0)
                return -ENOMEM;
#undef GAUGE
        return 0;
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

int admin_dispatch(struct admin *adm, const char *method, const char *path, unsigned *status_out,
                   const char **content_type_out, char **body_out) {
        bool is_status = strcmp(path, "/v1/status") == 0 && !adm->metrics_only;
        bool is_metrics = strcmp(path, "/metrics") == 0;
        *content_type_out = CONTENT_JSON;
        if (!is_status && !is_metrics && adm->metrics_only) {
                *status_out = MHD_HTTP_NOT_FOUND;
                return error_body("not found: metrics-listen serves only GET /metrics", body_out);
        }
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
                return json_body(admin_status_json(adm->registry, adm->notes), body_out);
        *content_type_out = CONTENT_PROMETHEUS;
        return admin_metrics_text(adm->registry, adm->notes, body_out);
}

/* ---- the socket ---- */

#define ADMIN_CONNECTION_TIMEOUT_S 10
#define ADMIN_CONNECTION_LIMIT 16
#define ADMIN_CONNECTION_MEMORY 16384

static char *admin_error_body(const char *message) {
        char *body = NULL;
        return error_body(message, &body) == 0 ? body : NULL;
}

static void handle(void *userdata, const struct httpd_request *req, struct httpd_reply *reply) {
        struct admin *adm = userdata;
        unsigned status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        const char *content_type = CONTENT_JSON;
        char *body = NULL;
        (void) admin_dispatch(adm, req->method, req->url, &status, &content_type, &body);
        log_debug("admin: %s %s -> %u", req->method, req->url, status);
        *reply = (struct httpd_reply) {
                .status = status,
                .content_type = content_type,
                .body = body,
                .allow = status == MHD_HTTP_METHOD_NOT_ALLOWED ? MHD_HTTP_METHOD_GET : NULL,
        };
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
        return httpd_listen(socket_path, ADMIN_CONNECTION_LIMIT, err);
}

static int serve(struct admin *adm, int listen_fd, const char *socket_path, bool any_local_peer, struct httpd **out,
                 sd_error *err) {
        const struct httpd_options o = {
                .what = any_local_peer ? "metrics" : "admin",
                .any_local_peer = any_local_peer,
                .handler = handle,
                .userdata = adm,
                .error_body = admin_error_body,
                .error_content_type = CONTENT_JSON,
                /* Any method reaches admin_dispatch, which answers 405;
                 * bodies are drained and ignored. */
                .method = NULL,
                .max_body = 0,
                /* One polling thread: every answer is built from memory in
                 * microseconds, and a stuck client only holds its own
                 * connection until the timeout. */
                .thread_per_connection = false,
                .connection_limit = ADMIN_CONNECTION_LIMIT,
                .connection_timeout = ADMIN_CONNECTION_TIMEOUT_S,
                .connection_memory = ADMIN_CONNECTION_MEMORY,
        };
        return httpd_start(&o, listen_fd, socket_path, out, err);
}

int admin_serve(struct admin *adm, int listen_fd, const char *socket_path, struct httpd **out, sd_error *err) {
        return serve(adm, listen_fd, socket_path, false, out, err);
}

int admin_serve_metrics(struct admin *adm, int listen_fd, struct httpd **out, sd_error *err) {
        return serve(adm, listen_fd, NULL, true, out, err);
}

int admin_metrics_listen(const char *listen_address, sd_error *err) {
        struct sockaddr_storage addr;
        socklen_t len;
        int r = sd_config_loopback_address(listen_address, &addr, &len, err);
        if (r < 0)
                return r;
        return httpd_listen_tcp((const struct sockaddr *) &addr, len, listen_address, ADMIN_CONNECTION_LIMIT, err);
}
