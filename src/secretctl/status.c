/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secretctl status: what the local agent reports on its admin socket
 * (GET /v1/status, docs/agent.md "Admin API").  Read-only; needs root,
 * because the socket is 0600 root and the agent checks the peer's uid.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "secretd/cleanup.h"
#include "secretctl.h"

#define STATUS_DEFAULT_SOCKET "/run/secretd/admin.sock"
/* The status of a host with thousands of volumes is a few MiB at most. */
#define STATUS_BODY_MAX ((size_t) 16 << 20)
#define STATUS_TIMEOUT_MS 10000L

struct status_options {
        bool json;
        const char *socket_path;
};

static int status_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct status_options *o = userdata;
        if (opt == 'j')
                o->json = true;
        else if (opt == 'S')
                o->socket_path = arg;
        return 0;
}

static inline void curl_easy_cleanupp(CURL **h) {
        if (*h)
                curl_easy_cleanup(*h);
}

struct body {
        char *data;
        size_t len;
        bool too_big;
};

static void body_free(struct body *b) {
        free(b->data);
}

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nmemb;
        if (n > STATUS_BODY_MAX - b->len) {
                b->too_big = true;
                return 0;
        }
        char *bigger = realloc(b->data, b->len + n + 1);
        if (!bigger)
                return 0;
        memcpy(bigger + b->len, ptr, n);
        b->data = bigger;
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static int unreachable(struct ctl_context *ctx, const char *path, const char *reason) {
        return sd_error_set(&ctx->err, ECONNREFUSED,
                            "cannot reach the secretd agent at %s: %s; is it running? are you root?", path, reason);
}

/* GET /v1/status on the socket; the body (NUL-terminated) into *body_out. */
static int fetch_status(struct ctl_context *ctx, const char *path, char **body_out) {
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        if (!h)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        _cleanup_(body_free) struct body b = { 0 };
        char curl_error[CURL_ERROR_SIZE] = "";
        if (curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, path) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_URL, "http://localhost/v1/status") != CURLE_OK ||
            /* An http_proxy in the environment must not send the request
             * elsewhere. */
            curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, STATUS_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_USERAGENT, "secretctl/" SECRETD_VERSION) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_error) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_WRITEDATA, &b) != CURLE_OK)
                return sd_error_set(&ctx->err, ENOMEM, "cannot set up the request to %s", path);

        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
                long os_errno = 0;
                (void) curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
                if (b.too_big)
                        return sd_error_set(&ctx->err, EFBIG, "the secretd agent at %s sent a status over %zu bytes",
                                            path, STATUS_BODY_MAX);
                if (rc == CURLE_COULDNT_CONNECT && os_errno != 0)
                        return unreachable(ctx, path, strerror((int) os_errno));
                return unreachable(ctx, path, curl_error[0] ? curl_error : curl_easy_strerror(rc));
        }
        long code = 0;
        (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code == 403)
                return sd_error_set(&ctx->err, EACCES,
                                    "the secretd agent at %s refused the request: permission denied (only root may "
                                    "use the admin socket; are you root?)",
                                    path);
        if (code != 200)
                return sd_error_set(&ctx->err, EPROTO, "the secretd agent at %s answered HTTP %ld to GET /v1/status",
                                    path, code);
        if (!b.data)
                return sd_error_set(&ctx->err, EPROTO, "the secretd agent at %s sent an empty status", path);
        *body_out = steal_pointer(&b.data);
        return 0;
}

static const char *str(const json_t *obj, const char *key) {
        const char *s = json_string_value(json_object_get(obj, key));
        return s ? s : "";
}

static long long num(const json_t *obj, const char *key) {
        return (long long) json_integer_value(json_object_get(obj, key));
}

static void format_duration(long long secs, char out[32]) {
        if (secs >= 86400)
                (void) snprintf(out, 32, "%lldd%02lldh", secs / 86400, secs % 86400 / 3600);
        else if (secs >= 3600)
                (void) snprintf(out, 32, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
        else if (secs >= 60)
                (void) snprintf(out, 32, "%lldm%02llds", secs / 60, secs % 60);
        else
                (void) snprintf(out, 32, "%llds", secs);
}

static void print_agent(const json_t *agent) {
        char up[32];
        format_duration(num(agent, "uptime_seconds"), up);
        printf("agent:     secretd %s, pid %lld, up %s, driver '%s'\n", str(agent, "version"), num(agent, "pid"), up,
               str(agent, "driver"));
}

static void print_store(const json_t *store) {
        const char *state = str(store, "state");
        printf("store:     %s: %s", str(store, "url"), state);
        if (strcmp(state, "ok") == 0 && str(store, "last_ok_at")[0])
                printf(" (last read %s)", str(store, "last_ok_at"));
        if (strcmp(state, "ok") != 0 && str(store, "last_error")[0])
                printf(": %s (at %s)", str(store, "last_error"), str(store, "last_error_at"));
        if (num(store, "watch_reconnects") > 0)
                printf(", %lld watch reconnect(s)", num(store, "watch_reconnects"));
        putchar('\n');
}

static void print_docker(const json_t *docker) {
        const char *state = str(docker, "state");
        printf("docker:    %s", state);
        if (str(docker, "since")[0])
                printf(" since %s", str(docker, "since"));
        if (strcmp(state, "disconnected") == 0 && str(docker, "last_error")[0])
                printf(": %s", str(docker, "last_error"));
        printf(", %lld event(s)", num(docker, "events"));
        if (str(docker, "last_event_at")[0])
                printf(", last at %s", str(docker, "last_event_at"));
        printf(", %lld reconnect(s)\n", num(docker, "reconnects"));
}

static void print_volumes(const json_t *volumes) {
        printf("volumes:   %zu\n", json_array_size(volumes));
        size_t i;
        const json_t *v;
        json_array_foreach(volumes, i, v) {
                printf("  %s  secrets:", str(v, "name"));
                size_t j;
                const json_t *s;
                json_array_foreach(json_object_get(v, "secrets"), j, s)
                        printf("%s %s", j ? "," : "", json_string_value(s) ? json_string_value(s) : "?");
                const json_t *opts = json_object_get(v, "opts");
                const char *key;
                const json_t *value;
                printf("  opts:");
                json_object_foreach((json_t *) opts, key, value) {
                        if (strcmp(key, "secrets") != 0 && json_is_string(value))
                                printf(" %s=%s", key, json_string_value(value));
                }
                putchar('\n');
        }
}

static void print_instances(const json_t *instances) {
        printf("instances: %zu\n", json_array_size(instances));
        size_t i;
        const json_t *m;
        json_array_foreach(instances, i, m) {
                const char *cid = str(m, "container_id");
                printf("  %.12s  volume %s  container %.12s", str(m, "id"), str(m, "volume"), cid[0] ? cid : "?");
                if (str(m, "container_name")[0])
                        printf(" (%s)", str(m, "container_name"));
                printf("  refs %lld  generation %lld", num(m, "refcount"), num(m, "generation"));
                if (!json_is_true(json_object_get(m, "live")))
                        printf("  DEAD (wipe failed)");
                printf("  delivered:");
                const char *key;
                const json_t *value;
                bool first = true;
                json_object_foreach((json_t *) json_object_get(m, "delivered"), key, value) {
                        printf("%s %s v%lld", first ? "" : ",", key, (long long) json_integer_value(value));
                        first = false;
                }
                putchar('\n');
        }
}

static int cmd_status(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "admin-socket", required_argument, NULL, 'S' },
                { NULL, 0, NULL, 0 },
        };
        const char *env = secure_getenv("SECRETD_ADMIN_SOCKET");
        struct status_options o = { .socket_path = env && env[0] ? env : STATUS_DEFAULT_SOCKET };
        int r = ctl_parse_options(ctx, &ctl_verb_status, argc, argv, "", options, status_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "status", "takes no arguments");
        if (o.socket_path[0] != '/')
                return ctl_usage_error(ctx, "status", "--admin-socket '%s' is not an absolute path", o.socket_path);

        _cleanup_free_ char *body = NULL;
        r = fetch_status(ctx, o.socket_path, &body);
        if (r < 0)
                return r;
        json_error_t jerr;
        _cleanup_json_ json_t *status = json_loads(body, 0, &jerr);
        if (!json_is_object(status))
                return sd_error_set(&ctx->err, EPROTO, "the secretd agent at %s sent a status that is not a JSON object: %s",
                                    o.socket_path, status ? "wrong type" : jerr.text);
        if (o.json) {
                fputs(body, stdout);
                return 0;
        }
        print_agent(json_object_get(status, "agent"));
        print_store(json_object_get(status, "store"));
        print_docker(json_object_get(status, "docker"));
        print_volumes(json_object_get(status, "volumes"));
        print_instances(json_object_get(status, "instances"));
        return 0;
}

const struct ctl_verb ctl_verb_status = {
        .name = "status",
        .summary = "show what the local secretd agent is serving (root)",
        .run = cmd_status,
        .help =
        "Usage: secretctl status [--json] [--admin-socket PATH]\n"
        "\n"
        "Asks the secretd agent on this host for its status over its admin socket\n"
        "(GET /v1/status) and prints a summary: the agent (version, pid, uptime,\n"
        "driver), the store (ok or the last error), the Docker events connection,\n"
        "one line per volume (secrets and options) and one line per tmpfs instance\n"
        "(container, references, generation and the secret versions delivered).\n"
        "No secret value is ever part of the status.  The admin socket serves only\n"
        "root.  The store and identity options do not apply.\n"
        "\n"
        "Options:\n"
        "  --json                print the agent's JSON as received\n"
        "  --admin-socket PATH   the agent's admin socket (default $SECRETD_ADMIN_SOCKET,\n"
        "                        else " STATUS_DEFAULT_SOCKET ")\n"
        "  -h, --help            show this help\n"
        "\n"
        "Examples:\n"
        "  sudo secretctl status\n"
        "  sudo secretctl status --json | jq '.instances[] | {container_name, delivered}'\n"
        "  secretctl status --admin-socket /run/secretd-test/admin.sock\n"
        "\n"
        "Exit status:\n"
        "  0  the status was printed\n"
        "  1  the agent cannot be reached (no socket, not running, permission denied:\n"
        "     not root) or sent something that is not a status\n"
        "  2  usage error\n",
};
