/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secretctl status: what the local agent reports on its admin socket
 * (GET /v1/status, docs/agent.md "Admin API").  Read-only; needs root,
 * because the socket is 0600 root and the agent checks the peer's uid.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "secretd/cleanup.h"
#include "secretd/config.h"
#include "secretd/http.h"
#include "secretctl.h"

/* The status of a host with thousands of volumes is a few MiB at most. */
#define STATUS_BODY_MAX ((size_t) 16 << 20)
#define STATUS_TIMEOUT_MS 10000L

struct status_options {
        bool json;
        const char *socket_path;          /* --admin-socket, else $SECRETD_ADMIN_SOCKET */
        const char *config_path;          /* --config */
};

static int status_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct status_options *o = userdata;
        if (opt == 'j')
                o->json = true;
        else if (opt == 'S')
                o->socket_path = arg;
        else if (opt == 'c')
                o->config_path = arg;
        return 0;
}

/* GET /v1/status on the socket; the body (NUL-terminated) into *body_out. */
static int fetch_status(struct ctl_context *ctx, const char *path, char **body_out) {
        char peer[160];
        (void) snprintf(peer, sizeof(peer), "the secretd agent at %s", path);
        const struct sd_http_options ho = {
                .peer = peer,
                .unreachable_hint = "; is it running? are you root?",
                .unix_socket = path,
                .request_timeout_ms = STATUS_TIMEOUT_MS,
                .user_agent = "secretctl/" SECRETD_VERSION,
        };
        _cleanup_http_ struct sd_http *http = NULL;
        int r = sd_http_new(&ho, &http, &ctx->err);
        if (r < 0)
                return r;
        const struct sd_http_request rq = {
                .method = "GET",
                .path = "/v1/status",
                .what = "GET /v1/status",
                .max_reply = STATUS_BODY_MAX,
        };
        _cleanup_http_reply_ struct sd_http_reply reply = { 0 };
        r = sd_http_request(http, &rq, &reply, &ctx->err);
        if (r == -EACCES) {
                char why[SD_ERROR_MESSAGE_MAX];
                (void) snprintf(why, sizeof(why), "%s", ctx->err.message);
                return sd_error_set(&ctx->err, EACCES, "%s; are you root?", why);
        }
        if (r < 0)
                return r;
        if (reply.status == 403)
                return sd_error_set(&ctx->err, EACCES,
                                    "the secretd agent at %s refused the request: permission denied (only root may "
                                    "use the admin socket; are you root?)",
                                    path);
        if (reply.status != 200)
                return sd_error_set(&ctx->err, EPROTO, "the secretd agent at %s answered HTTP %ld to GET /v1/status",
                                    path, reply.status);
        if (reply.len == 0)
                return sd_error_set(&ctx->err, EPROTO, "the secretd agent at %s sent an empty status", path);
        *body_out = steal_pointer(&reply.body);
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
        /* etcd: the member in use and the failovers; a file store has
         * no members and no cache. */
        if (strncmp(str(store, "url"), "file:", 5) != 0 && str(store, "endpoint")[0]) {
                printf("           member %s, %lld failover(s)", str(store, "endpoint"), num(store, "failovers"));
                const json_t *since = json_object_get(store, "seconds_since_contact");
                if (json_is_number(since)) {
                        char ago[32];
                        format_duration((long long) json_number_value(since), ago);
                        printf(", last contact %s ago", ago);
                }
                putchar('\n');
        }
        const json_t *cache = json_object_get(store, "cache");
        if (json_is_object(cache)) {
                printf("cache:     %s: %lld entr%s, %lld secret(s) served from it", str(cache, "dir"),
                       num(cache, "entries"), num(cache, "entries") == 1 ? "y" : "ies", num(cache, "deliveries"));
                if (str(cache, "last_delivery_at")[0])
                        printf(", last at %s", str(cache, "last_delivery_at"));
                putchar('\n');
        }
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

static void print_realm(const json_t *realm) {
        if (!json_is_object(realm)) {
                printf("realm:     no policy verified yet\n");
                return;
        }
        printf("realm:     %s policy v%lld (created %s, applied here %s)", str(realm, "id"),
               num(realm, "policy_version"), str(realm, "policy_created"), str(realm, "applied_at"));
        if (str(realm, "recipient")[0])
                printf(", this host is recipient '%s'", str(realm, "recipient"));
        else
                printf(", this host is not a recipient");
        putchar('\n');
}

/* A secret whose newest version does not verify: containers get an older
 * one, which an operator must know. */
static void print_stale(const json_t *stale) {
        size_t i;
        const json_t *e;
        json_array_foreach(stale, i, e) {
                printf("stale:     %s: newest v%lld does not verify", str(e, "secret"), num(e, "newest"));
                if (json_integer_value(json_object_get(e, "served")) > 0)
                        printf(", serving v%lld", num(e, "served"));
                else
                        printf(", no older version verifies");
                printf(" (since %s): %s\n", str(e, "since"), str(e, "reason"));
        }
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
                { "config", required_argument, NULL, 'c' },
                { NULL, 0, NULL, 0 },
        };
        const char *env = secure_getenv("SECRETD_ADMIN_SOCKET");
        struct status_options o = { .socket_path = env && env[0] ? env : NULL };
        int r = ctl_parse_options(ctx, &ctl_verb_status, argc, argv, "", options, status_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "status", "takes no arguments");
        /* Else the socket the agent serves: its configuration file's
         * admin-socket, read as the agent reads it. */
        _cleanup_config_ struct sd_config cfg = { 0 };
        if (!o.socket_path) {
                if (sd_config_init(&cfg) < 0)
                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                r = sd_config_load_agent_file(&cfg, o.config_path, &ctx->err);
                if (r < 0)
                        return r;
                o.socket_path = cfg.admin_socket;
        }
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
        print_realm(json_object_get(status, "realm"));
        print_stale(json_object_get(status, "stale"));
        print_volumes(json_object_get(status, "volumes"));
        print_instances(json_object_get(status, "instances"));
        return 0;
}

const struct ctl_verb ctl_verb_status = {
        .name = "status",
        .summary = "show what the local secretd agent is serving (root)",
        .run = cmd_status,
        .help =
        "Usage: secretctl status [--json] [--admin-socket PATH] [--config PATH]\n"
        "\n"
        "Asks the secretd agent on this host for its status over its admin socket\n"
        "(GET /v1/status) and prints a summary: the agent (version, pid, uptime,\n"
        "driver), the store (ok, degraded while unreachable, or the last error;\n"
        "for etcd the member in use, failovers and the time since the last\n"
        "contact), the local cache of envelopes, the Docker events connection,\n"
        "the realm policy version verified and when this agent applied it, one\n"
        "\"stale\" line per secret whose newest version does not verify (and the\n"
        "older version served instead, see on-unverifiable in secretd.conf(5)),\n"
        "one line per volume (secrets and options) and one line per tmpfs instance\n"
        "(container, references, generation and the secret versions delivered).\n"
        "No secret value is ever part of the status.  The admin socket serves only\n"
        "root.  The store and identity options do not apply.\n"
        "\n"
        "Options:\n"
        "  --json                print the agent's JSON as received\n"
        "  --admin-socket PATH   the agent's admin socket (default $SECRETD_ADMIN_SOCKET,\n"
        "                        else admin-socket in the agent's configuration file)\n"
        "  --config PATH         the agent's configuration file (default\n"
        "                        " SD_CONFIG_DEFAULT_PATH "; checked as the agent checks\n"
        "                        it: root-owned, not writable by group or others)\n"
        "  -h, --help            show this help\n"
        "\n"
        "Examples:\n"
        "  sudo secretctl status\n"
        "  sudo secretctl status --json | jq '.instances[] | {container_name, delivered}'\n"
        "  sudo secretctl status --config /etc/secretd/test.conf\n"
        "\n"
        "Exit status:\n"
        "  0  the status was printed\n"
        "  1  the agent cannot be reached (no socket, not running, permission denied:\n"
        "     not root) or sent something that is not a status; or the configuration\n"
        "     file is not root's to change (the message says how to fix it)\n"
        "  2  usage error, or an invalid configuration file (file, line and key named)\n"
        "  3  the --config file does not exist\n",
};
