/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Docker Engine API client: pure parsers for what dockerd sends, and the I/O
 * that fetches it over the unix socket with libcurl.  See
 * include/secretd/docker.h for the contract and docs/docker-client.md for the
 * dockerd behaviour it relies on.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "secretd/clock.h"
#include "secretd/cleanup.h"
#include "json-read.h"
#include "secretd/docker.h"
#include "secretd/http.h"
#include "secretd/names.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

/* Concatenate NUL-terminated strings (list ends with NULL) into a malloc()ed
 * string; NULL when out of memory. */
static char *str_join(const char *first, ...) {
        va_list ap;
        size_t total = 0;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
                total += strlen(s);
        va_end(ap);

        char *out = malloc(total + 1), *p = out;
        if (!out)
                return NULL;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *)) {
                size_t l = strlen(s);
                memcpy(p, s, l);
                p += l;
        }
        va_end(ap);
        *p = '\0';
        return out;
}

/* Printable ASCII rendering of untrusted bytes, keeping quotes and
 * backslashes (unlike sd_escape_for_message) since Docker's messages and
 * exec command lines are full of them.  Returns true if out holds the input
 * verbatim (nothing escaped, nothing cut). */
static bool render_printable(const char *in, size_t len, char *out, size_t out_size) {
        size_t o = 0;
        bool exact = true;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) in[i];
                char piece[5];
                if (c >= 0x20 && c < 0x7f) {
                        piece[0] = (char) c;
                        piece[1] = '\0';
                } else {
                        (void) snprintf(piece, sizeof(piece), "\\x%02x", c);
                        exact = false;
                }
                size_t pl = strlen(piece);
                if (o + pl + 4 > out_size) {
                        if (o + 4 <= out_size) {
                                memcpy(out + o, "...", 3);
                                o += 3;
                        }
                        exact = false;
                        break;
                }
                memcpy(out + o, piece, pl);
                o += pl;
        }
        out[o] = '\0';
        return exact;
}

static bool is_hex64(const char *s, size_t len) {
        if (len != SD_DOCKER_CONTAINER_ID_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Decimal integer in [min, max], optional leading '-', nothing else. */
static bool parse_decimal(const char *s, size_t len, long long min, long long max, long long *out) {
        size_t i = 0;
        bool negative = false;
        long long v = 0;
        if (len > 0 && s[0] == '-') {
                negative = true;
                i = 1;
        }
        if (i == len || len - i > 18)
                return false;
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        if (negative)
                v = -v;
        if (v < min || v > max)
                return false;
        *out = v;
        return true;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

/* ------------------------------------------------------------------------
 * Field access (src/json-read.h) with messages naming the field:
 * "docker event: field 'Actor.ID': missing".  Every failure is -EBADMSG.
 * ---------------------------------------------------------------------- */

#define WHERE(what, prefix) ((struct sd_peer_json_where) { (what), (prefix), EBADMSG })

static int load_json(const char *what, const char *text, size_t len, json_t **out, sd_error *err) {
        const struct sd_peer_json_where w = WHERE(what, "");
        return sd_peer_json_load(&w, text, len, false, out, err);
}

enum {
        STR_REQUIRED = SD_JSON_REQUIRED,
        STR_NONEMPTY = SD_JSON_NONEMPTY,
        STR_PRINTABLE = SD_JSON_PRINTABLE,
        STR_NO_SLASH = SD_JSON_NO_SLASH,
        STR_HEX64 = 1 << 8,      /* a full container id */
};

/* sd_peer_json_string(), plus the container id check. */
static int get_string(const json_t *obj, const char *key, unsigned flags, size_t max,
                      const struct sd_peer_json_where *w, const char **s, size_t *len, sd_error *err) {
        const char *str = NULL;
        size_t l = 0;
        int r = sd_peer_json_string(obj, key, flags & ~(unsigned) STR_HEX64, max, w, &str, &l, err);
        if (r <= 0)
                return r;
        if ((flags & STR_HEX64) && !is_hex64(str, l)) {
                char shown[80];
                (void) render_printable(str, l, shown, sizeof(shown));
                return sd_peer_json_field_error(err, w, key, "'%s' is not a container id (64 lowercase hex digits)",
                                           shown);
        }
        *s = str;
        *len = l;
        return 1;
}

/* get_string() into a fixed buffer of max+1 bytes; "" when absent. */
static int copy_string(const json_t *obj, const char *key, unsigned flags, char *dst, size_t max,
                       const struct sd_peer_json_where *w, sd_error *err) {
        const char *s = NULL;
        size_t l = 0;
        int r = get_string(obj, key, flags, max, w, &s, &l, err);
        if (r < 0)
                return r;
        if (r > 0)
                memcpy(dst, s, l);
        dst[r > 0 ? l : 0] = '\0';
        return r;
}

/* get_string() into a malloc()ed copy; NULL when absent. */
static int dup_string(const json_t *obj, const char *key, unsigned flags, size_t max,
                      const struct sd_peer_json_where *w, char **out, sd_error *err) {
        const char *s = NULL;
        size_t l = 0;
        int r = get_string(obj, key, flags, max, w, &s, &l, err);
        if (r <= 0) {
                *out = NULL;
                return r;
        }
        char *copy = strndup(s, l);
        if (!copy)
                return sd_error_set(err, ENOMEM, "%s: out of memory", w->what);
        *out = copy;
        return 1;
}

/* The reload-signal label of a label map (container labels, or event
 * attributes, which carry all labels).  A bad label is recorded, not fatal:
 * the event or container around it still matters. */
static int get_reload_signal(const json_t *labels, const struct sd_peer_json_where *w, int *signo_out,
                             char *shown, sd_error *err) {
        *signo_out = 0;
        shown[0] = '\0';
        if (!labels)
                return 0;
        json_t *v = json_object_get(labels, SD_DOCKER_RELOAD_SIGNAL_LABEL);
        if (!v)
                return 0;
        if (!json_is_string(v))
                return sd_peer_json_field_error(err, w, SD_DOCKER_RELOAD_SIGNAL_LABEL, "expected a string, got %s",
                                   sd_peer_json_type_name(v));

        const char *s = json_string_value(v);
        size_t l = json_string_length(v);
        (void) render_printable(s, l, shown, SD_DOCKER_LABEL_SHOWN_MAX + 1);
        char buf[32];
        int signo = 0;
        if (l < sizeof(buf) && memchr(s, '\0', l) == NULL) {
                memcpy(buf, s, l);
                buf[l] = '\0';
                if (sd_docker_signal_from_name(buf, &signo, NULL) < 0)
                        signo = -EINVAL;
        } else
                signo = -EINVAL;
        *signo_out = signo;
        return 0;
}

/* ------------------------------------------------------------------------
 * Signals
 * ---------------------------------------------------------------------- */

/* Linux numbers, as dockerd's signal map has them (x86 and arm64 agree). */
static const struct {
        const char *name;
        int signo;
} signal_table[] = {
        { "HUP", 1 },     { "INT", 2 },      { "QUIT", 3 },    { "ILL", 4 },    { "TRAP", 5 },
        { "ABRT", 6 },    { "IOT", 6 },      { "BUS", 7 },     { "FPE", 8 },    { "KILL", 9 },
        { "USR1", 10 },   { "SEGV", 11 },    { "USR2", 12 },   { "PIPE", 13 },  { "ALRM", 14 },
        { "TERM", 15 },   { "STKFLT", 16 },  { "CHLD", 17 },   { "CLD", 17 },   { "CONT", 18 },
        { "STOP", 19 },   { "TSTP", 20 },    { "TTIN", 21 },   { "TTOU", 22 },  { "URG", 23 },
        { "XCPU", 24 },   { "XFSZ", 25 },    { "VTALRM", 26 }, { "PROF", 27 },  { "WINCH", 28 },
        { "IO", 29 },     { "POLL", 29 },    { "PWR", 30 },    { "SYS", 31 },
};

/* dockerd's RTMIN is 34, glibc's SIGRTMIN at run time: they agree on glibc
 * with NPTL, and dockerd's view is the one that reaches the container. */
#define DOCKER_SIGRTMIN 34
#define DOCKER_SIGRTMAX 64

int sd_docker_signal_from_name(const char *name, int *signo_out, sd_error *err) {
        char shown[48];
        if (!name || !*name)
                return sd_error_set(err, EINVAL, "signal name is empty");
        size_t len = strlen(name);
        (void) render_printable(name, len, shown, sizeof(shown));
        if (len > 16)
                return sd_error_set(err, EINVAL, "signal '%s': not a signal (too long)", shown);

        long long n;
        if (name[0] >= '0' && name[0] <= '9') {
                if (!parse_decimal(name, len, 1, DOCKER_SIGRTMAX, &n))
                        return sd_error_set(err, EINVAL, "signal '%s': numbers must be 1 to %d", shown,
                                            DOCKER_SIGRTMAX);
                *signo_out = (int) n;
                return 0;
        }

        char upper[17];
        for (size_t i = 0; i <= len; i++) {
                char c = name[i];
                upper[i] = (c >= 'a' && c <= 'z') ? (char) (c - 'a' + 'A') : c;
        }
        const char *base = upper;
        if (strncmp(base, "SIG", 3) == 0)
                base += 3;

        for (size_t i = 0; i < SD_ARRAY_SIZE(signal_table); i++)
                if (strcmp(base, signal_table[i].name) == 0) {
                        *signo_out = signal_table[i].signo;
                        return 0;
                }

        int rt = 0;
        if (strncmp(base, "RTMIN", 5) == 0) {
                rt = DOCKER_SIGRTMIN;
                if (base[5] == '+' && parse_decimal(base + 6, strlen(base + 6), 1,
                                                    DOCKER_SIGRTMAX - DOCKER_SIGRTMIN, &n))
                        rt += (int) n;
                else if (base[5] != '\0')
                        rt = 0;
        } else if (strncmp(base, "RTMAX", 5) == 0) {
                rt = DOCKER_SIGRTMAX;
                if (base[5] == '-' && parse_decimal(base + 6, strlen(base + 6), 1,
                                                    DOCKER_SIGRTMAX - DOCKER_SIGRTMIN, &n))
                        rt -= (int) n;
                else if (base[5] != '\0')
                        rt = 0;
        }
        if (rt > 0) {
                *signo_out = rt;
                return 0;
        }
        return sd_error_set(err, EINVAL, "signal '%s': unknown signal name", shown);
}

/* ------------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------- */

static const struct {
        const char *name;
        enum sd_docker_action action;
} action_table[] = {
        { "create", SD_DOCKER_ACTION_CREATE },
        { "start", SD_DOCKER_ACTION_START },
        { "restart", SD_DOCKER_ACTION_RESTART },
        { "kill", SD_DOCKER_ACTION_KILL },
        { "die", SD_DOCKER_ACTION_DIE },
        { "stop", SD_DOCKER_ACTION_STOP },
        { "destroy", SD_DOCKER_ACTION_DESTROY },
        { "rename", SD_DOCKER_ACTION_RENAME },
        { "pause", SD_DOCKER_ACTION_PAUSE },
        { "unpause", SD_DOCKER_ACTION_UNPAUSE },
        { "oom", SD_DOCKER_ACTION_OOM },
        { "health_status", SD_DOCKER_ACTION_HEALTH_STATUS },
        { "exec_create", SD_DOCKER_ACTION_EXEC },
        { "exec_start", SD_DOCKER_ACTION_EXEC },
        { "exec_die", SD_DOCKER_ACTION_EXEC },
        { "exec_detach", SD_DOCKER_ACTION_EXEC },
        { "mount", SD_DOCKER_ACTION_MOUNT },
        { "unmount", SD_DOCKER_ACTION_UNMOUNT },
};

static bool is_action_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Action is "verb" or "verb: detail" ("health_status: healthy",
 * "exec_start: sh -c ..."): the verb decides, the detail is informative. */
static int parse_action(const json_t *root, const struct sd_peer_json_where *w, struct sd_docker_event *ev,
                        sd_error *err) {
        const char *s = NULL;
        size_t l = 0;
        /* exec_* details repeat the whole command line: no small bound here,
         * the line limit bounds it. */
        int r = get_string(root, "Action", STR_REQUIRED | STR_NONEMPTY, SIZE_MAX, w, &s, &l, err);
        if (r < 0)
                return r;

        const char *colon = memchr(s, ':', l);
        size_t verb_len = colon ? (size_t) (colon - s) : l;
        char shown[64];
        if (verb_len == 0 || verb_len > SD_DOCKER_ACTION_MAX) {
                (void) render_printable(s, l, shown, sizeof(shown));
                return sd_peer_json_field_error(err, w, "Action", "'%s' does not start with a verb of 1 to %d characters",
                                   shown, SD_DOCKER_ACTION_MAX);
        }
        for (size_t i = 0; i < verb_len; i++)
                if (!is_action_char(s[i])) {
                        (void) render_printable(s, l, shown, sizeof(shown));
                        return sd_peer_json_field_error(err, w, "Action", "'%s': the verb may only hold a-z, 0-9, '_' and '-'",
                                           shown);
                }
        memcpy(ev->action_name, s, verb_len);
        ev->action_name[verb_len] = '\0';

        ev->action = SD_DOCKER_ACTION_OTHER;
        for (size_t i = 0; i < SD_ARRAY_SIZE(action_table); i++)
                if (strcmp(ev->action_name, action_table[i].name) == 0)
                        ev->action = action_table[i].action;

        ev->action_detail[0] = '\0';
        ev->action_detail_truncated = false;
        if (colon) {
                const char *d = colon + 1;
                size_t dl = l - verb_len - 1;
                while (dl > 0 && *d == ' ') {
                        d++;
                        dl--;
                }
                ev->action_detail_truncated =
                        !render_printable(d, dl, ev->action_detail, sizeof(ev->action_detail));
        }
        return 0;
}

static int parse_attr_decimal(const json_t *attrs, const char *key, long long min, long long max,
                              const struct sd_peer_json_where *w, long long *out, sd_error *err) {
        const char *s = NULL;
        size_t l = 0;
        int r = get_string(attrs, key, 0, 32, w, &s, &l, err);
        if (r <= 0)
                return r;
        if (!parse_decimal(s, l, min, max, out)) {
                char shown[48];
                (void) render_printable(s, l, shown, sizeof(shown));
                return sd_peer_json_field_error(err, w, key, "'%s' is not an integer in [%lld, %lld]", shown, min, max);
        }
        return 1;
}

static int parse_container_attributes(const json_t *attrs, const struct sd_peer_json_where *w,
                                      struct sd_docker_event *ev, sd_error *err) {
        int r;
        const char *s = NULL;
        size_t l = 0;
        long long n = 0;

        r = get_string(attrs, "name", STR_PRINTABLE, SD_DOCKER_NAME_MAX, w, &s, &l, err);
        if (r < 0)
                return r;
        if (r > 0) {
                if (l > 0 && s[0] == '/') {
                        s++;
                        l--;
                }
                memcpy(ev->name, s, l);
                ev->name[l] = '\0';
        }

        r = parse_attr_decimal(attrs, "exitCode", INT_MIN, INT_MAX, w, &n, err);
        if (r < 0)
                return r;
        ev->has_exit_code = r > 0;
        ev->exit_code = r > 0 ? (int) n : 0;

        r = parse_attr_decimal(attrs, "signal", 1, DOCKER_SIGRTMAX, w, &n, err);
        if (r < 0)
                return r;
        ev->signal = r > 0 ? (int) n : 0;

        return get_reload_signal(attrs, w, &ev->reload_signal, ev->reload_signal_label, err);
}

static int parse_volume_attributes(const json_t *attrs, const struct sd_peer_json_where *w,
                                   struct sd_docker_event *ev, sd_error *err) {
        bool mount_like = ev->action == SD_DOCKER_ACTION_MOUNT || ev->action == SD_DOCKER_ACTION_UNMOUNT;
        int r;

        r = copy_string(attrs, "driver", STR_PRINTABLE, ev->driver, SD_DOCKER_DRIVER_MAX, w, err);
        if (r < 0)
                return r;
        /* Without it a mount cannot be tied to a container: exactly what the
         * agent reads these events for. */
        r = copy_string(attrs, "container", STR_HEX64 | (mount_like ? STR_REQUIRED : 0),
                        ev->container_id, SD_DOCKER_CONTAINER_ID_LEN, w, err);
        if (r < 0)
                return r;
        r = copy_string(attrs, "destination", STR_PRINTABLE, ev->destination, SD_DOCKER_PATH_MAX, w,
                        err);
        if (r < 0)
                return r;

        const char *s = NULL;
        size_t l = 0;
        r = get_string(attrs, "read/write", 0, 8, w, &s, &l, err);
        if (r < 0)
                return r;
        ev->rw = -1;
        if (r > 0) {
                if (l == 4 && memcmp(s, "true", 4) == 0)
                        ev->rw = 1;
                else if (l == 5 && memcmp(s, "false", 5) == 0)
                        ev->rw = 0;
                else
                        return sd_peer_json_field_error(err, w, "read/write", "expected \"true\" or \"false\"");
        }
        return 0;
}

int sd_docker_event_parse(const char *line, size_t len, struct sd_docker_event *out, sd_error *err) {
        const struct sd_peer_json_where top = { "docker event", "", EBADMSG };
        const struct sd_peer_json_where actor_w = { "docker event", "Actor.", EBADMSG };
        const struct sd_peer_json_where attr_w = { "docker event", "Actor.Attributes.", EBADMSG };
        _cleanup_json_ json_t *root = NULL;
        int r;

        r = load_json("docker event", line, len, &root, err);
        if (r < 0)
                return r;
        if (!json_is_object(root))
                return sd_error_set(err, EBADMSG, "docker event: expected a JSON object, got %s",
                                    sd_peer_json_type_name(root));

        /* Large (the destination path); built here and copied out only whole. */
        _cleanup_free_ struct sd_docker_event *ev = calloc(1, sizeof(*ev));
        if (!ev)
                return sd_error_set(err, ENOMEM, "docker event: out of memory");
        ev->rw = -1;

        r = copy_string(root, "Type", STR_REQUIRED | STR_NONEMPTY | STR_PRINTABLE, ev->type_name,
                        SD_DOCKER_TYPE_MAX, &top, err);
        if (r < 0)
                return r;
        if (strcmp(ev->type_name, "container") == 0)
                ev->type = SD_DOCKER_EVENT_CONTAINER;
        else if (strcmp(ev->type_name, "volume") == 0)
                ev->type = SD_DOCKER_EVENT_VOLUME;
        else
                ev->type = SD_DOCKER_EVENT_OTHER;

        r = parse_action(root, &top, ev, err);
        if (r < 0)
                return r;

        json_t *actor = json_object_get(root, "Actor");
        if (!actor)
                return sd_peer_json_field_error(err, &top, "Actor", "missing");
        if (!json_is_object(actor))
                return sd_peer_json_field_error(err, &top, "Actor", "expected an object, got %s", sd_peer_json_type_name(actor));

        switch (ev->type) {
        case SD_DOCKER_EVENT_CONTAINER:
                r = copy_string(actor, "ID", STR_REQUIRED | STR_HEX64, ev->actor_id,
                                SD_DOCKER_CONTAINER_ID_LEN, &actor_w, err);
                break;
        case SD_DOCKER_EVENT_VOLUME:
                r = copy_string(actor, "ID", STR_REQUIRED | STR_NONEMPTY | STR_PRINTABLE | STR_NO_SLASH,
                                ev->actor_id, SD_DOCKER_ID_MAX, &actor_w, err);
                break;
        case SD_DOCKER_EVENT_OTHER: {
                /* Image references and the like: not acted upon, kept for
                 * messages only. */
                const char *s = NULL;
                size_t l = 0;
                r = get_string(actor, "ID", STR_REQUIRED, SIZE_MAX, &actor_w, &s, &l, err);
                if (r > 0)
                        (void) render_printable(s, l, ev->actor_id, sizeof(ev->actor_id));
                break;
        }
        }
        if (r < 0)
                return r;

        json_t *attrs = NULL;
        r = sd_peer_json_object(actor, "Attributes", SD_JSON_NULL_OK, &actor_w, &attrs, err);
        if (r < 0)
                return r;
        /* Absent and null Attributes read as none. */
        _cleanup_json_ json_t *no_attrs = NULL;
        if (!attrs) {
                attrs = no_attrs = json_object();
                if (!attrs)
                        return sd_error_set(err, ENOMEM, "docker event: out of memory");
        }

        if (ev->type == SD_DOCKER_EVENT_CONTAINER)
                r = parse_container_attributes(attrs, &attr_w, ev, err);
        else if (ev->type == SD_DOCKER_EVENT_VOLUME)
                r = parse_volume_attributes(attrs, &attr_w, ev, err);
        if (r < 0)
                return r;

        long long t = 0, tn = 0;
        r = sd_peer_json_integer(root, "time", SD_JSON_REQUIRED, 0, INT64_MAX / 1000000000, &top, &t, err);
        if (r < 0)
                return r;
        r = sd_peer_json_integer(root, "timeNano", 0, 0, INT64_MAX, &top, &tn, err);
        if (r < 0)
                return r;
        ev->time = t;
        ev->time_nano = r > 0 ? tn : t * 1000000000LL;

        *out = *ev;
        return 0;
}

void sd_docker_event_since(const struct sd_docker_event *ev, char since[SD_DOCKER_SINCE_MAX]) {
        (void) snprintf(since, SD_DOCKER_SINCE_MAX, "%lld.%09lld",
                        (long long) (ev->time_nano / 1000000000LL),
                        (long long) (ev->time_nano % 1000000000LL));
}

/* ------------------------------------------------------------------------
 * Containers
 * ---------------------------------------------------------------------- */

static void mounts_free(struct sd_docker_mount *m, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(m[i].name);
                free(m[i].destination);
                free(m[i].driver);
        }
        free(m);
}

void sd_docker_container_clear(struct sd_docker_container *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_names; i++)
                free(c->names[i]);
        free(c->names);
        mounts_free(c->mounts, c->n_mounts);
        *c = (struct sd_docker_container) { 0 };
}

void sd_docker_container_list_clear(struct sd_docker_container_list *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                sd_docker_container_clear(&l->items[i]);
        free(l->items);
        l->items = NULL;
        l->n = 0;
}

static enum sd_docker_state state_from_string(const char *s, size_t len) {
        static const struct {
                const char *name;
                enum sd_docker_state state;
        } states[] = {
                { "created", SD_DOCKER_STATE_CREATED },       { "running", SD_DOCKER_STATE_RUNNING },
                { "paused", SD_DOCKER_STATE_PAUSED },         { "restarting", SD_DOCKER_STATE_RESTARTING },
                { "removing", SD_DOCKER_STATE_REMOVING },     { "exited", SD_DOCKER_STATE_EXITED },
                { "dead", SD_DOCKER_STATE_DEAD },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(states); i++)
                if (strlen(states[i].name) == len && memcmp(states[i].name, s, len) == 0)
                        return states[i].state;
        return SD_DOCKER_STATE_UNKNOWN;
}

static int parse_mount(const json_t *m, const struct sd_peer_json_where *w, struct sd_docker_mount *out,
                       sd_error *err) {
        if (!json_is_object(m))
                return sd_error_set(err, EBADMSG, "%s: field '%s': expected an object, got %s", w->what,
                                    w->prefix, sd_peer_json_type_name(m));
        char prefix[64];
        (void) snprintf(prefix, sizeof(prefix), "%.60s.", w->prefix);
        const struct sd_peer_json_where mw = { w->what, prefix, EBADMSG };

        const char *s = NULL;
        size_t l = 0;
        int r = get_string(m, "Type", STR_REQUIRED | STR_NONEMPTY, 32, &mw, &s, &l, err);
        if (r < 0)
                return r;
        enum sd_docker_mount_type type = SD_DOCKER_MOUNT_OTHER;
        if (l == 6 && memcmp(s, "volume", 6) == 0)
                type = SD_DOCKER_MOUNT_VOLUME;
        else if (l == 4 && memcmp(s, "bind", 4) == 0)
                type = SD_DOCKER_MOUNT_BIND;
        else if (l == 5 && memcmp(s, "tmpfs", 5) == 0)
                type = SD_DOCKER_MOUNT_TMPFS;

        _cleanup_free_ char *name = NULL, *destination = NULL, *driver = NULL;
        /* Volume names reach messages and lookups: same rules as in events. */
        r = dup_string(m, "Name", STR_PRINTABLE | STR_NO_SLASH, SD_DOCKER_NAME_MAX, &mw, &name, err);
        if (r < 0)
                return r;
        if (type == SD_DOCKER_MOUNT_VOLUME && !name)
                return sd_peer_json_field_error(err, &mw, "Name", "missing for a volume mount");
        r = dup_string(m, "Destination", STR_REQUIRED | STR_NONEMPTY | STR_PRINTABLE, SD_DOCKER_PATH_MAX,
                       &mw, &destination, err);
        if (r < 0)
                return r;
        r = dup_string(m, "Driver", STR_PRINTABLE, SD_DOCKER_DRIVER_MAX, &mw, &driver, err);
        if (r < 0)
                return r;
        bool rw = false;
        r = sd_peer_json_bool(m, "RW", SD_JSON_REQUIRED, &mw, &rw, err);
        if (r < 0)
                return r;

        /* dockerd sends "Name":"" / "Driver":"" on some bind mounts. */
        if (name && !*name)
                name = mfree(name);
        if (driver && !*driver)
                driver = mfree(driver);

        *out = (struct sd_docker_mount) {
                .type = type,
                .name = steal_pointer(&name),
                .destination = steal_pointer(&destination),
                .driver = steal_pointer(&driver),
                .rw = rw,
        };
        return 0;
}

static int parse_mounts(const json_t *parent, const struct sd_peer_json_where *w, bool null_ok,
                        struct sd_docker_mount **out, size_t *n_out, sd_error *err) {
        json_t *arr = json_object_get(parent, "Mounts");
        if (!arr)
                return sd_peer_json_field_error(err, w, "Mounts", "missing");
        if (null_ok && json_is_null(arr)) {
                *out = NULL;
                *n_out = 0;
                return 0;
        }
        if (!json_is_array(arr))
                return sd_peer_json_field_error(err, w, "Mounts", "expected an array, got %s", sd_peer_json_type_name(arr));

        size_t n = json_array_size(arr);
        struct sd_docker_mount *mounts = n ? calloc(n, sizeof(*mounts)) : NULL;
        if (n && !mounts)
                return sd_error_set(err, ENOMEM, "%s: out of memory", w->what);
        for (size_t i = 0; i < n; i++) {
                char prefix[64];
                (void) snprintf(prefix, sizeof(prefix), "%.30sMounts[%zu]", w->prefix, i);
                const struct sd_peer_json_where mw = { w->what, prefix, EBADMSG };
                int r = parse_mount(json_array_get(arr, i), &mw, &mounts[i], err);
                if (r < 0) {
                        mounts_free(mounts, i);
                        return r;
                }
        }
        *out = mounts;
        *n_out = n;
        return 0;
}

/* Names: ["/web", "/other/alias"]; stored without the leading '/'. */
static int add_name(struct sd_docker_container *c, const char *s, size_t l, const struct sd_peer_json_where *w,
                    sd_error *err) {
        if (l > 0 && s[0] == '/') {
                s++;
                l--;
        }
        char **names = realloc(c->names, (c->n_names + 1) * sizeof(*names));
        if (!names)
                return sd_error_set(err, ENOMEM, "%s: out of memory", w->what);
        c->names = names;
        names[c->n_names] = strndup(s, l);
        if (!names[c->n_names])
                return sd_error_set(err, ENOMEM, "%s: out of memory", w->what);
        c->n_names++;
        return 0;
}

static int parse_list_item(const json_t *item, const struct sd_peer_json_where *w, struct sd_docker_container *out,
                           sd_error *err) {
        if (!json_is_object(item))
                return sd_error_set(err, EBADMSG, "%s: element '%s': expected an object, got %s",
                                    w->what, w->prefix, sd_peer_json_type_name(item));
        char prefix[64];
        (void) snprintf(prefix, sizeof(prefix), "%.60s.", w->prefix);
        const struct sd_peer_json_where iw = { w->what, prefix, EBADMSG };
        _cleanup_docker_container_ struct sd_docker_container c = { 0 };
        int r;

        r = copy_string(item, "Id", STR_REQUIRED | STR_HEX64, c.id, SD_DOCKER_CONTAINER_ID_LEN, &iw, err);
        if (r < 0)
                return r;

        json_t *names = json_object_get(item, "Names");
        if (!names)
                return sd_peer_json_field_error(err, &iw, "Names", "missing");
        if (!json_is_array(names))
                return sd_peer_json_field_error(err, &iw, "Names", "expected an array, got %s", sd_peer_json_type_name(names));
        for (size_t i = 0; i < json_array_size(names); i++) {
                json_t *n = json_array_get(names, i);
                char key[32];
                (void) snprintf(key, sizeof(key), "Names[%zu]", i);
                if (!json_is_string(n))
                        return sd_peer_json_field_error(err, &iw, key, "expected a string, got %s", sd_peer_json_type_name(n));
                /* Checked through a one-member view so the message names it. */
                const char *s = json_string_value(n);
                size_t l = json_string_length(n);
                if (l > SD_DOCKER_NAME_MAX + 1)
                        return sd_peer_json_field_error(err, &iw, key, "%zu bytes long; the limit is %d", l,
                                           SD_DOCKER_NAME_MAX + 1);
                for (size_t k = 0; k < l; k++)
                        if ((unsigned char) s[k] < 0x20 || s[k] == 0x7f)
                                return sd_peer_json_field_error(err, &iw, key, "contains control byte 0x%02x",
                                                   (unsigned char) s[k]);
                r = add_name(&c, s, l, w, err);
                if (r < 0)
                        return r;
        }

        const char *s = NULL;
        size_t l = 0;
        r = get_string(item, "State", STR_REQUIRED, 32, &iw, &s, &l, err);
        if (r < 0)
                return r;
        c.state = state_from_string(s, l);
        c.running = c.state == SD_DOCKER_STATE_RUNNING || c.state == SD_DOCKER_STATE_PAUSED ||
                    c.state == SD_DOCKER_STATE_RESTARTING;

        json_t *labels = NULL;
        r = sd_peer_json_object(item, "Labels", SD_JSON_NULL_OK, &iw, &labels, err);
        if (r < 0)
                return r;
        char lprefix[96];
        (void) snprintf(lprefix, sizeof(lprefix), "%.60sLabels.", prefix);
        const struct sd_peer_json_where lw = { w->what, lprefix, EBADMSG };
        r = get_reload_signal(labels, &lw, &c.reload_signal, c.reload_signal_label, err);
        if (r < 0)
                return r;

        r = parse_mounts(item, &iw, false, &c.mounts, &c.n_mounts, err);
        if (r < 0)
                return r;

        *out = c;
        c = (struct sd_docker_container) { 0 };
        return 0;
}

int sd_docker_containers_parse(const char *json, size_t len, struct sd_docker_container_list *out,
                               sd_error *err) {
        const char *what = "docker containers";
        _cleanup_json_ json_t *root = NULL;
        int r = load_json(what, json, len, &root, err);
        if (r < 0)
                return r;
        if (!json_is_array(root))
                return sd_error_set(err, EBADMSG, "%s: expected a JSON array, got %s", what,
                                    sd_peer_json_type_name(root));

        _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
        size_t n = json_array_size(root);
        if (n > 0) {
                list.items = calloc(n, sizeof(*list.items));
                if (!list.items)
                        return sd_error_set(err, ENOMEM, "%s: out of memory for %zu containers", what, n);
        }
        for (size_t i = 0; i < n; i++) {
                char prefix[64];
                (void) snprintf(prefix, sizeof(prefix), "[%zu]", i);
                const struct sd_peer_json_where w = { what, prefix, EBADMSG };
                r = parse_list_item(json_array_get(root, i), &w, &list.items[i], err);
                if (r < 0)
                        return r;
                list.n = i + 1;
        }
        *out = list;
        list = (struct sd_docker_container_list) { 0 };
        return 0;
}

int sd_docker_container_inspect_parse(const char *json, size_t len, struct sd_docker_container *out,
                                      sd_error *err) {
        const char *what = "docker inspect";
        const struct sd_peer_json_where top = { what, "", EBADMSG };
        const struct sd_peer_json_where state_w = { what, "State.", EBADMSG };
        const struct sd_peer_json_where config_w = { what, "Config.", EBADMSG };
        const struct sd_peer_json_where labels_w = { what, "Config.Labels.", EBADMSG };
        _cleanup_json_ json_t *root = NULL;
        _cleanup_docker_container_ struct sd_docker_container c = { 0 };
        const char *s = NULL;
        size_t l = 0;
        int r;

        r = load_json(what, json, len, &root, err);
        if (r < 0)
                return r;
        if (!json_is_object(root))
                return sd_error_set(err, EBADMSG, "%s: expected a JSON object, got %s", what,
                                    sd_peer_json_type_name(root));

        r = copy_string(root, "Id", STR_REQUIRED | STR_HEX64, c.id, SD_DOCKER_CONTAINER_ID_LEN, &top, err);
        if (r < 0)
                return r;
        r = get_string(root, "Name", STR_REQUIRED | STR_PRINTABLE, SD_DOCKER_NAME_MAX + 1, &top, &s, &l,
                       err);
        if (r < 0)
                return r;
        r = add_name(&c, s, l, &top, err);
        if (r < 0)
                return r;

        json_t *state = json_object_get(root, "State");
        if (!state)
                return sd_peer_json_field_error(err, &top, "State", "missing");
        if (!json_is_object(state))
                return sd_peer_json_field_error(err, &top, "State", "expected an object, got %s", sd_peer_json_type_name(state));
        r = get_string(state, "Status", STR_REQUIRED, 32, &state_w, &s, &l, err);
        if (r < 0)
                return r;
        c.state = state_from_string(s, l);
        r = sd_peer_json_bool(state, "Running", SD_JSON_REQUIRED, &state_w, &c.running, err);
        if (r < 0)
                return r;
        long long pid = 0;
        r = sd_peer_json_integer(state, "Pid", SD_JSON_REQUIRED, 0, INT_MAX, &state_w, &pid, err);
        if (r < 0)
                return r;
        c.pid = (int) pid;
        r = copy_string(state, "StartedAt", STR_REQUIRED | STR_PRINTABLE, c.started_at,
                        SD_DOCKER_TIMESTAMP_MAX, &state_w, err);
        if (r < 0)
                return r;

        json_t *config = json_object_get(root, "Config");
        if (!config)
                return sd_peer_json_field_error(err, &top, "Config", "missing");
        if (!json_is_object(config))
                return sd_peer_json_field_error(err, &top, "Config", "expected an object, got %s", sd_peer_json_type_name(config));
        json_t *labels = NULL;
        r = sd_peer_json_object(config, "Labels", SD_JSON_NULL_OK, &config_w, &labels, err);
        if (r < 0)
                return r;
        r = get_reload_signal(labels, &labels_w, &c.reload_signal, c.reload_signal_label, err);
        if (r < 0)
                return r;

        r = parse_mounts(root, &top, true, &c.mounts, &c.n_mounts, err);
        if (r < 0)
                return r;

        *out = c;
        c = (struct sd_docker_container) { 0 };
        return 0;
}

/* ------------------------------------------------------------------------
 * HTTP errors
 * ---------------------------------------------------------------------- */

static const char *status_text(long status) {
        switch (status) {
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 409: return "Conflict";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "unexpected status";
        }
}

int sd_docker_error_from_response(const char *method, const char *path, long status,
                                  const char *body, size_t len, sd_error *err) {
        int code;
        switch (status) {
        case 400: code = EINVAL; break;
        case 401:
        case 403: code = EACCES; break;
        case 404: code = ENOENT; break;
        case 409: code = EBUSY; break;
        default: code = EPROTO; break;
        }

        char shown[320];
        const char *message = status_text(status);
        json_error_t jerr;
        _cleanup_json_ json_t *root = body && len ? json_loadb(body, len, 0, &jerr) : NULL;
        json_t *m = root && json_is_object(root) ? json_object_get(root, "message") : NULL;
        if (m && json_is_string(m) && json_string_length(m) > 0) {
                (void) render_printable(json_string_value(m), json_string_length(m), shown, sizeof(shown));
                message = shown;
        }
        return sd_error_set(err, code, "docker: %s %s: %ld %s", method, path, status, message);
}

/* ------------------------------------------------------------------------
 * Client: requests over the socket through the one transport (http.h)
 * ---------------------------------------------------------------------- */

struct sd_docker {
        char socket_path[SD_DOCKER_SOCKET_PATH_MAX + 1];
        long connect_ms;
        long request_ms;
        struct sd_http *http;
};

static int docker_http_new(struct sd_docker *d, struct sd_http **out, sd_error *err) {
        char peer[SD_DOCKER_SOCKET_PATH_MAX + 16];
        (void) snprintf(peer, sizeof(peer), "docker at %s", d->socket_path);
        const struct sd_http_options o = {
                .peer = peer,
                .unreachable_hint = " (is dockerd running?)",
                .unix_socket = d->socket_path,
                .connect_timeout_ms = d->connect_ms,
                .request_timeout_ms = d->request_ms,
        };
        return sd_http_new(&o, out, err);
}

int sd_docker_new(const char *host, struct sd_docker **out, sd_error *err) {
        const char *path = host ? host : SD_DOCKER_DEFAULT_SOCKET;
        char shown[160];

        if (strncmp(path, "unix://", 7) == 0)
                path += 7;
        else if (strstr(path, "://")) {
                (void) render_printable(host, strlen(host), shown, sizeof(shown));
                return sd_error_set(err, EINVAL, "docker host '%s': only unix:// sockets are supported", shown);
        }
        (void) render_printable(path, strlen(path), shown, sizeof(shown));
        if (path[0] != '/')
                return sd_error_set(err, EINVAL, "docker socket '%s': not an absolute path", shown);
        size_t len = strlen(path);
        if (len > SD_DOCKER_SOCKET_PATH_MAX)
                return sd_error_set(err, ENAMETOOLONG,
                                    "docker socket '%s': %zu bytes long; a unix socket path holds at most %d",
                                    shown, len, SD_DOCKER_SOCKET_PATH_MAX);

        _cleanup_free_ struct sd_docker *d = calloc(1, sizeof(*d));
        if (!d)
                return sd_error_set(err, ENOMEM, "docker: out of memory");
        memcpy(d->socket_path, path, len + 1);
        d->connect_ms = 5000;
        d->request_ms = 30000;
        int r = docker_http_new(d, &d->http, err);
        if (r < 0)
                return r;
        *out = steal_pointer(&d);
        return 0;
}

void sd_docker_free(struct sd_docker *d) {
        if (!d)
                return;
        sd_http_free(d->http);
        free(d);
}

void sd_docker_set_timeouts(struct sd_docker *d, long connect_ms, long request_ms) {
        long old_connect = d->connect_ms, old_request = d->request_ms;
        if (connect_ms > 0)
                d->connect_ms = connect_ms;
        if (request_ms > 0)
                d->request_ms = request_ms;
        /* The transport is immutable: make a new one (no thread shares this
         * client yet); out of memory keeps the old one and its timeouts. */
        struct sd_http *fresh = NULL;
        if (docker_http_new(d, &fresh, NULL) < 0) {
                d->connect_ms = old_connect;
                d->request_ms = old_request;
                return;
        }
        sd_http_free(d->http);
        d->http = fresh;
}

const char *sd_docker_socket_path(const struct sd_docker *d) {
        return d->socket_path;
}

/* One request/response exchange on /v1.41<url_path>; shown_path is what
 * messages show.  *body_out is malloc()ed, NUL-terminated, possibly empty. */
static int docker_request(const struct sd_docker *d, const char *method, const char *shown_path,
                          const char *url_path, long *status_out, char **body_out, size_t *len_out,
                          sd_error *err) {
        char what[160];
        (void) snprintf(what, sizeof(what), "%s %s", method, shown_path);
        _cleanup_free_ char *path = str_join("/" SD_DOCKER_API_VERSION, url_path, NULL);
        if (!path)
                return sd_error_set(err, ENOMEM, "docker: out of memory");
        const struct sd_http_request rq = {
                .method = method,
                .path = path,
                .what = what,
                .max_reply = SD_DOCKER_RESPONSE_MAX,
        };
        struct sd_http_reply reply = { 0 };
        int r = sd_http_request(d->http, &rq, &reply, err);
        if (r < 0)
                return r;
        *status_out = reply.status;
        *len_out = reply.len;
        *body_out = reply.body;
        return 0;
}


/* Container ids and names as dockerd allows them; nothing that needs URL
 * escaping or could change the path. */
static int check_container_ref(const char *id, sd_error *err) {
        char shown[80];
        size_t len = id ? strlen(id) : 0;
        if (len == 0)
                return sd_error_set(err, EINVAL, "container id is empty");
        (void) render_printable(id, len, shown, sizeof(shown));
        if (len > SD_DOCKER_NAME_MAX)
                return sd_error_set(err, EINVAL, "container '%s': %zu bytes long; the limit is %d", shown, len,
                                    SD_DOCKER_NAME_MAX);
        for (size_t i = 0; i < len; i++) {
                char c = id[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return sd_error_set(err, EINVAL, "container '%s': not a container id or name", shown);
        }
        return 0;
}

/* filters_json must be a JSON object; returns it URL-escaped. */
static int escape_filters(const char *filters_json, char **out, sd_error *err) {
        json_error_t jerr;
        _cleanup_json_ json_t *f = json_loads(filters_json, JSON_REJECT_DUPLICATES, &jerr);
        char shown[160];
        if (!f || !json_is_object(f))
                return sd_error_set(err, EINVAL, "docker filters: not a JSON object: %s",
                                    f ? "wrong type" : sd_escape_json_error(&jerr, shown, sizeof(shown)));
        char *e = sd_http_escape(filters_json);
        if (!e)
                return sd_error_set(err, ENOMEM, "docker filters: out of memory");
        *out = e;
        return 0;
}

int sd_docker_ping(struct sd_docker *d, sd_error *err) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        long status = 0;
        int r = docker_request(d, "GET", "/_ping", "/_ping", &status, &body, &len, err);
        if (r < 0)
                return r;
        if (status != 200) {
                /* Whatever the status (an old daemon says 400 "client version
                 * 1.41 is too new"), this daemon is not one we can talk to. */
                (void) sd_docker_error_from_response("GET", "/_ping", status, body, len, err);
                if (err)
                        err->code = EPROTO;
                return -EPROTO;
        }
        if (len < 2 || memcmp(body, "OK", 2) != 0)
                return sd_error_set(err, EPROTO, "docker: GET /_ping: unexpected answer (not \"OK\")");
        return 0;
}

int sd_docker_userns_remapped(struct sd_docker *d, bool *remapped_out, sd_error *err) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        long status = 0;
        int r = docker_request(d, "GET", "/info", "/info", &status, &body, &len, err);
        if (r < 0)
                return r;
        if (status != 200) {
                (void) sd_docker_error_from_response("GET", "/info", status, body, len, err);
                if (err)
                        err->code = EPROTO;
                return -EPROTO;
        }
        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(body, len, 0, &jerr);
        if (!root || !json_is_object(root))
                return sd_error_set(err, EPROTO, "docker: GET /info: not a JSON object");
        /* dockerd lists "name=userns" among its security options when it
         * runs with --userns-remap (API 1.41, all 20.10+ daemons). */
        json_t *opts = json_object_get(root, "SecurityOptions");
        bool remapped = false;
        size_t i;
        json_t *o;
        json_array_foreach(opts, i, o) {
                const char *s = json_string_value(o);
                if (s && (strcmp(s, "name=userns") == 0 || strncmp(s, "name=userns,", 12) == 0))
                        remapped = true;
        }
        *remapped_out = remapped;
        return 0;
}

int sd_docker_list_containers(struct sd_docker *d, const char *filters_json,
                              struct sd_docker_container_list *out, sd_error *err) {
        _cleanup_free_ char *escaped = NULL, *url_path = NULL, *body = NULL;
        int r;
        if (filters_json) {
                r = escape_filters(filters_json, &escaped, err);
                if (r < 0)
                        return r;
        }
        url_path = str_join("/containers/json?all=1", escaped ? "&filters=" : "", escaped ? escaped : "",
                            NULL);
        if (!url_path)
                return sd_error_set(err, ENOMEM, "docker: out of memory");

        size_t len = 0;
        long status = 0;
        r = docker_request(d, "GET", "/containers/json", url_path, &status, &body, &len, err);
        if (r < 0)
                return r;
        if (status != 200)
                return sd_docker_error_from_response("GET", "/containers/json", status, body, len, err);
        r = sd_docker_containers_parse(body, len, out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "docker: GET /containers/json");
        return 0;
}

int sd_docker_inspect_container(struct sd_docker *d, const char *id, struct sd_docker_container *out,
                                sd_error *err) {
        int r = check_container_ref(id, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = str_join("/containers/", id, "/json", NULL), *body = NULL;
        if (!path)
                return sd_error_set(err, ENOMEM, "docker: out of memory");

        size_t len = 0;
        long status = 0;
        r = docker_request(d, "GET", path, path, &status, &body, &len, err);
        if (r < 0)
                return r;
        if (status != 200)
                return sd_docker_error_from_response("GET", path, status, body, len, err);
        r = sd_docker_container_inspect_parse(body, len, out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "docker: GET %s", path);
        return 0;
}

int sd_docker_kill(struct sd_docker *d, const char *id, const char *signal_name, sd_error *err) {
        int r = check_container_ref(id, err);
        if (r < 0)
                return r;
        int signo = 0;
        r = sd_docker_signal_from_name(signal_name, &signo, err);
        if (r < 0)
                return r;

        char query[32];
        (void) snprintf(query, sizeof(query), "/kill?signal=%d", signo);
        _cleanup_free_ char *shown_path = str_join("/containers/", id, "/kill", NULL);
        _cleanup_free_ char *url_path = str_join("/containers/", id, query, NULL);
        _cleanup_free_ char *body = NULL;
        if (!shown_path || !url_path)
                return sd_error_set(err, ENOMEM, "docker: out of memory");

        size_t len = 0;
        long status = 0;
        r = docker_request(d, "POST", shown_path, url_path, &status, &body, &len, err);
        if (r < 0)
                return r;
        if (status == 204 || status == 200)
                return 0;
        r = sd_docker_error_from_response("POST", shown_path, status, body, len, err);
        /* 409 here is always "Container ... is not running". */
        if (status == 409) {
                if (err)
                        err->code = ESRCH;
                return -ESRCH;
        }
        return r;
}

/* ------------------------------------------------------------------------
 * Events stream: sd_http_stream() with an event parser per line
 * ---------------------------------------------------------------------- */

struct events_stream {
        const struct sd_docker_events_handler *h;
};

static bool is_blank(const char *line, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
                        return false;
        return true;
}

static int events_opened(void *userdata, sd_error *err) {
        struct events_stream *s = userdata;
        return s->h->connected ? s->h->connected(s->h->userdata, err) : 0;
}

static int events_line(void *userdata, const char *line, size_t len, const sd_error *broken, sd_error *err) {
        struct events_stream *s = userdata;
        if (broken) {
                if (!s->h->bad_line)
                        return 0;
                if (broken->code != EBADMSG)
                        return s->h->bad_line(s->h->userdata, broken, err);
                sd_error why = { 0 };
                (void) sd_error_set(&why, EBADMSG, "docker event: stream ended inside an event (%zu bytes)", len);
                return s->h->bad_line(s->h->userdata, &why, err);
        }
        if (is_blank(line, len))
                return 0;

        struct sd_docker_event ev;
        sd_error why = { 0 };
        if (sd_docker_event_parse(line, len, &ev, &why) < 0)
                return s->h->bad_line ? s->h->bad_line(s->h->userdata, &why, err) : 0;
        return s->h->event(s->h->userdata, &ev, err);
}

static bool since_valid(const char *since) {
        size_t i = 0, digits = 0;
        while (since[i] >= '0' && since[i] <= '9')
                i++, digits++;
        if (digits == 0 || digits > 19)
                return false;
        if (since[i] == '\0')
                return true;
        if (since[i] != '.')
                return false;
        i++;
        digits = 0;
        while (since[i] >= '0' && since[i] <= '9')
                i++, digits++;
        return digits >= 1 && digits <= 9 && since[i] == '\0';
}

int sd_docker_events_run(struct sd_docker *d, const char *since, const char *filters_json,
                         const struct sd_docker_events_handler *h, int stop_fd, sd_error *err) {
        int r;
        if (!h || !h->event)
                return sd_error_set(err, EINVAL, "docker: GET /events: no event handler");
        if (since && !since_valid(since)) {
                char shown[48];
                (void) render_printable(since, strlen(since), shown, sizeof(shown));
                return sd_error_set(err, EINVAL, "docker: GET /events: since '%s' is not seconds[.nanoseconds]",
                                    shown);
        }
        _cleanup_free_ char *escaped = NULL;
        r = escape_filters(filters_json ? filters_json : "{\"type\":[\"container\",\"volume\"]}", &escaped,
                           err);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = str_join("/" SD_DOCKER_API_VERSION "/events?filters=", escaped,
                                             since ? "&since=" : "", since ? since : "", NULL);
        if (!path)
                return sd_error_set(err, ENOMEM, "docker: out of memory");

        struct events_stream s = { .h = h };
        const struct sd_http_stream_handler sh = { .opened = events_opened, .line = events_line, .userdata = &s };
        const struct sd_http_request rq = { .method = "GET", .path = path, .what = "GET /events" };
        _cleanup_http_reply_ struct sd_http_reply refused = { 0 };
        r = sd_http_stream(d->http, &rq, SD_DOCKER_EVENT_LINE_MAX, &sh, stop_fd, &refused, err);
        if (r == -EPROTO && refused.status != 0)
                return sd_docker_error_from_response("GET", "/events", refused.status, refused.body, refused.len,
                                                     err);
        return r;
}
