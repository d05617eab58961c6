/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The etcd store backend (etcd[s]://host:port[,host:port...]/prefix), over
 * etcd's v3 JSON gateway (POST /v3/kv/range|put|txn|deleterange, streaming
 * /v3/watch, /v3/auth/authenticate).
 *
 *   <prefix>/secrets/<name>/<%020llu>    one envelope per version
 *   <prefix>/recipients/<name>           one signed recipient entry per agent
 *
 * Fixed-width versions make etcd's byte order the numeric order, so "the
 * latest version" is one range sorted DESCEND by key with limit 1.
 *
 * Nothing etcd answers is trusted: every reply goes through the pure parsers
 * below (declared in store-etcd-internal.h, unit-tested and fuzzed), every
 * key must lie under the prefix and have one of the two shapes above.  A key
 * outside the prefix is an -EPROTO error (etcd answered something that was
 * not asked); a key of another shape inside it is warned about and skipped,
 * as the file backend does with unexpected directory entries.
 *
 * Requests go through the thread-safe transport of secretd/http.h, so the
 * agent's plugin threads call the store at the same time; the client sticks
 * to one member and moves to the next on a connection failure or a 503.
 * The watch runs in its own thread and reports through an eventfd.  Layout,
 * the CAS argument, failover, TLS, authentication and recorded gateway
 * behaviour: docs/store.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base64.h"
#include "fileio.h"
#include "json-read.h"
#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/http.h"
#include "secretd/names.h"
#include "store-etcd-internal.h"
#include "store-internal.h"

#define VERSION_DIGITS 20
#define DEFAULT_PORT "2379"

/* Unary calls: connecting is bounded separately so that a stopped etcd
 * fails at once (refused) and an unroutable one within seconds. */
#define CONNECT_TIMEOUT_MS 3000L
#define REQUEST_TIMEOUT_MS 10000L

/* A reply carries at most one page; the largest page is one envelope
 * (base64: 4/3 of SD_ENVELOPE_MAX_BYTES) or a page of recipient entries. */
#define REPLY_MAX ((size_t) 64 << 20)
#define ERROR_BODY_MAX ((size_t) 64 << 10)
#define KEYS_PAGE 1000
#define VALUES_PAGE 64

/* One watch message can batch many events with their values (the gateway
 * has no keys-only watch); a longer line means events were lost, and the
 * watcher then reports every name. */
#define WATCH_LINE_MAX ((size_t) 64 << 20)
#define WATCH_PENDING_MAX 4096
#define WATCH_WARNINGS_MAX 16
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A CA bundle, certificate, key or credentials file. */
#define OPTION_FILE_MAX ((size_t) 1 << 20)

static inline void sd_etcd_range_donep(struct sd_etcd_range *r) {
        sd_etcd_range_done(r);
}
#define _cleanup_range_ _cleanup_(sd_etcd_range_donep)

static inline void sd_etcd_watch_msg_donep(struct sd_etcd_watch_msg *m) {
        sd_etcd_watch_msg_done(m);
}
#define _cleanup_watch_msg_ _cleanup_(sd_etcd_watch_msg_donep)

static char *str_printf(const char *fmt, ...) SD_PRINTF(1, 2);
static char *str_printf(const char *fmt, ...) {
        char *out = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&out, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : out;
}

static char *escape(const char *in, size_t len, char *out, size_t out_size) {
        return sd_escape_for_message(in, len, out, out_size);
}

/* ------------------------------------------------------------------------
 * Pure parsers.  Field access goes through src/json-read.h, so messages
 * read "etcd range reply: field 'kvs[0].key': missing"; every failure is
 * -EPROTO.
 * ---------------------------------------------------------------------- */

#define WHERE(what, prefix) ((struct sd_peer_json_where) { (what), (prefix), EPROTO })

/* Absent and null both mean "the zero value" on the gateway. */
#define OPTIONAL SD_JSON_NULL_OK

static int load_object(const char *body, size_t len, const char *what, json_t **out, sd_error *err) {
        const struct sd_peer_json_where w = WHERE(what, "");
        return sd_peer_json_load(&w, body, len, true, out, err);
}

/* The base64 byte field obj.field decoded into a malloc()ed NUL-terminated
 * buffer: 1 found, 0 absent (an error with SD_JSON_REQUIRED). */
static int get_bytes(const json_t *obj, const char *field, unsigned flags, size_t max, bool allow_nul,
                     const struct sd_peer_json_where *w, char **out, size_t *len_out, sd_error *err) {
        const char *text = NULL;
        size_t text_len = 0;
        int r = sd_peer_json_string(obj, field, flags, SIZE_MAX, w, &text, &text_len, err);
        if (r <= 0)
                return r;
        size_t cap = text_len / 4 * 3;
        if (cap > max + 2)
                return sd_peer_json_field_error(err, w, field, "decodes to more than %zu bytes", max);
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return sd_error_set(err, ENOMEM, "out of memory");
        long n = sd_b64_decode(text, text_len, buf, cap, SD_B64_STD);
        if (n < 0)
                return sd_peer_json_field_error(err, w, field, "not valid padded base64");
        if ((size_t) n > max)
                return sd_peer_json_field_error(err, w, field, "decodes to more than %zu bytes", max);
        if (!allow_nul && memchr(buf, '\0', (size_t) n))
                return sd_peer_json_field_error(err, w, field, "contains a NUL byte");
        buf[n] = '\0';
        *out = steal_pointer(&buf);
        *len_out = (size_t) n;
        return 1;
}

/* A key: required, decoded, non-empty, no NUL, at most SD_ETCD_KEY_MAX. */
static int get_key(const json_t *obj, const struct sd_peer_json_where *w, char **out, size_t *len_out, sd_error *err) {
        int r = get_bytes(obj, "key", SD_JSON_REQUIRED, SD_ETCD_KEY_MAX, false, w, out, len_out, err);
        if (r < 0)
                return r;
        if (*len_out == 0) {
                free(*out);
                *out = NULL;
                return sd_peer_json_field_error(err, w, "key", "empty key");
        }
        return 0;
}

static int get_header_revision(const json_t *root, bool required, const char *what, int64_t *out, sd_error *err) {
        const struct sd_peer_json_where w = WHERE(what, "");
        const struct sd_peer_json_where hw = WHERE(what, "header.");
        unsigned flags = OPTIONAL | (required ? SD_JSON_REQUIRED : 0);
        json_t *header = NULL;
        int r = sd_peer_json_object(root, "header", flags, &w, &header, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        if (header) {
                r = sd_peer_json_uint63(header, "revision", flags, &hw, &rev, err);
                if (r < 0)
                        return r;
                if (required && rev == 0)
                        return sd_peer_json_field_error(err, &hw, "revision", "is 0; revisions start at 1");
        }
        *out = rev;
        return 0;
}

void sd_etcd_range_done(struct sd_etcd_range *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_kvs; i++) {
                free(r->kvs[i].key);
                free(r->kvs[i].value);
        }
        free(r->kvs);
        *r = (struct sd_etcd_range) { 0 };
}

int sd_etcd_parse_range(const char *body, size_t len, size_t max_value, struct sd_etcd_range *out,
                        sd_error *err) {
        static const char what[] = "etcd range reply";
        const struct sd_peer_json_where w = WHERE(what, "");
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, what, &root, err);
        if (r < 0)
                return r;
        _cleanup_range_ struct sd_etcd_range res = { 0 };
        r = get_header_revision(root, true, what, &res.revision, err);
        if (r < 0)
                return r;
        r = sd_peer_json_bool(root, "more", OPTIONAL, &w, &res.more, err);
        if (r < 0)
                return r;
        r = sd_peer_json_uint63(root, "count", OPTIONAL, &w, &res.count, err);
        if (r < 0)
                return r;

        json_t *kvs = NULL;
        r = sd_peer_json_array(root, "kvs", OPTIONAL, &w, &kvs, err);
        if (r < 0)
                return r;
        size_t n = kvs ? json_array_size(kvs) : 0;
        if (n > 0) {
                res.kvs = calloc(n, sizeof(*res.kvs));
                if (!res.kvs)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                char prefix[32];
                (void) snprintf(prefix, sizeof(prefix), "kvs[%zu].", i);
                const struct sd_peer_json_where kw = WHERE(what, prefix);
                json_t *kv = json_array_get(kvs, i);
                if (!json_is_object(kv)) {
                        prefix[strlen(prefix) - 1] = '\0';
                        return sd_peer_json_field_error(err, &w, prefix, "expected an object, got %s",
                                                   sd_peer_json_type_name(kv));
                }
                struct sd_etcd_kv *e = &res.kvs[res.n_kvs++];
                r = get_key(kv, &kw, &e->key, &e->key_len, err);
                if (r < 0)
                        return r;
                r = get_bytes(kv, "value", 0, max_value, true, &kw, &e->value, &e->value_len, err);
                if (r < 0)
                        return r;
                r = sd_peer_json_uint63(kv, "create_revision", OPTIONAL, &kw, &e->create_revision, err);
                if (r < 0)
                        return r;
                r = sd_peer_json_uint63(kv, "mod_revision", OPTIONAL, &kw, &e->mod_revision, err);
                if (r < 0)
                        return r;
        }
        *out = res;
        res = (struct sd_etcd_range) { 0 };
        return 0;
}

int sd_etcd_parse_txn(const char *body, size_t len, bool *succeeded_out, int64_t *revision_out,
                      sd_error *err) {
        static const char what[] = "etcd txn reply";
        const struct sd_peer_json_where w = WHERE(what, "");
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, what, &root, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        r = get_header_revision(root, true, what, &rev, err);
        if (r < 0)
                return r;
        bool ok = false;
        r = sd_peer_json_bool(root, "succeeded", OPTIONAL, &w, &ok, err);
        if (r < 0)
                return r;
        json_t *responses = NULL;
        r = sd_peer_json_array(root, "responses", OPTIONAL, &w, &responses, err);
        if (r < 0)
                return r;
        /* A success with no response to our one put is not what etcd does. */
        if (ok && json_array_size(responses) != 1)
                return sd_peer_json_field_error(err, &w, "responses", "succeeded with %zu responses, expected 1",
                                           json_array_size(responses));
        *succeeded_out = ok;
        if (revision_out)
                *revision_out = rev;
        return 0;
}

int sd_etcd_parse_auth(const char *body, size_t len, char **token_out, sd_error *err) {
        static const char what[] = "etcd authenticate reply";
        const struct sd_peer_json_where w = WHERE(what, "");
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, what, &root, err);
        if (r < 0)
                return r;
        const char *token = NULL;
        size_t token_len = 0;
        /* It goes into a header line: printable, bounded. */
        r = sd_peer_json_string(root, "token", SD_JSON_REQUIRED | SD_JSON_NONEMPTY | SD_JSON_PRINTABLE,
                               SD_ETCD_TOKEN_MAX, &w, &token, &token_len, err);
        if (r < 0)
                return r;
        char *copy = strndup(token, token_len);
        if (!copy)
                return sd_error_set(err, ENOMEM, "out of memory");
        *token_out = copy;
        return 0;
}

int sd_etcd_parse_deleterange(const char *body, size_t len, int64_t *deleted_out, sd_error *err) {
        static const char what[] = "etcd deleterange reply";
        const struct sd_peer_json_where w = WHERE(what, "");
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, what, &root, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        r = get_header_revision(root, true, what, &rev, err);
        if (r < 0)
                return r;
        int64_t deleted = 0;
        r = sd_peer_json_uint63(root, "deleted", OPTIONAL, &w, &deleted, err);
        if (r < 0)
                return r;
        *deleted_out = deleted;
        return 0;
}

enum sd_etcd_fault sd_etcd_fault_of(int64_t code, const char *message) {
        if (message && strstr(message, "request is too large"))
                return SD_ETCD_FAULT_TOO_LARGE;
        if (message && strstr(message, "user name is empty"))
                return SD_ETCD_FAULT_AUTH_REQUIRED;
        if (message && strstr(message, "authentication failed"))
                return SD_ETCD_FAULT_AUTH_FAILED;
        if (message && strstr(message, "invalid auth token"))
                return SD_ETCD_FAULT_TOKEN;
        /* 3.4 answers these with codes that do not say "try again"
         * (ResourceExhausted, Unknown): the message does. */
        if (message && (strstr(message, "too many requests") || strstr(message, "leader changed") ||
                        strstr(message, "no leader") || strstr(message, "request timed out")))
                return SD_ETCD_FAULT_UNAVAILABLE;
        switch (code) {
        case 3: return SD_ETCD_FAULT_INVALID;
        case 4: return SD_ETCD_FAULT_DEADLINE;
        case 7: return SD_ETCD_FAULT_PERMISSION;
        case 8: return SD_ETCD_FAULT_QUOTA;
        case 11: return SD_ETCD_FAULT_COMPACTED;
        case 14: return SD_ETCD_FAULT_UNAVAILABLE;
        case 16: return SD_ETCD_FAULT_TOKEN;
        default: return SD_ETCD_FAULT_OTHER;
        }
}

static int fault_errno(enum sd_etcd_fault f) {
        switch (f) {
        case SD_ETCD_FAULT_TOO_LARGE: return EFBIG;
        case SD_ETCD_FAULT_AUTH_REQUIRED:
        case SD_ETCD_FAULT_AUTH_FAILED:
        case SD_ETCD_FAULT_TOKEN:
        case SD_ETCD_FAULT_PERMISSION: return EACCES;
        case SD_ETCD_FAULT_DEADLINE: return ETIMEDOUT;
        case SD_ETCD_FAULT_QUOTA: return ENOSPC;
        case SD_ETCD_FAULT_COMPACTED: return ESTALE;
        case SD_ETCD_FAULT_UNAVAILABLE: return EAGAIN;
        case SD_ETCD_FAULT_INVALID:
        case SD_ETCD_FAULT_OTHER:
        case SD_ETCD_FAULT_NONE: break;
        }
        return EPROTO;
}

int sd_etcd_error_from_body(const char *endpoint, const char *what, long http_status, const char *body,
                            size_t len, enum sd_etcd_fault *fault_out, sd_error *err) {
        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        char shown[160];
        if (fault_out)
                *fault_out = SD_ETCD_FAULT_OTHER;
        if (!root || !json_is_object(root))
                return sd_error_set(err, EPROTO, "etcd at %s: %s: HTTP %ld with a body that is not an etcd error: '%s'",
                                    endpoint, what, http_status, escape(body, len < 120 ? len : 120, shown,
                                                                        sizeof(shown)));

        json_t *error = json_object_get(root, "error");
        json_t *message = json_object_get(root, "message");
        json_t *code = json_object_get(root, "code");
        /* The streaming form nests everything under "error". */
        if (json_is_object(error)) {
                message = json_object_get(error, "message");
                code = json_object_get(error, "grpc_code");
                if (!code)
                        code = json_object_get(error, "code");
        } else if (!json_is_string(message) && json_is_string(error)) {
                message = error;
        }
        if (!json_is_string(message))
                return sd_error_set(err, EPROTO, "etcd at %s: %s: HTTP %ld with an error body without a message",
                                    endpoint, what, http_status);
        int64_t c = json_is_integer(code) ? (int64_t) json_integer_value(code) : -1;
        const char *m = json_string_value(message);
        escape(m, json_string_length(message), shown, sizeof(shown));
        enum sd_etcd_fault f = sd_etcd_fault_of(c, m);
        if (fault_out)
                *fault_out = f;
        if (f == SD_ETCD_FAULT_TOO_LARGE)
                return sd_error_set(err, EFBIG,
                                    "etcd at %s: %s: refused as too large ('%s'; etcd accepts requests up to "
                                    "--max-request-bytes, 1.5 MiB by default)",
                                    endpoint, what, shown);
        return sd_error_set(err, fault_errno(f), "etcd at %s: %s: %s (code %" PRId64 ", HTTP %ld)", endpoint, what,
                            shown, c, http_status);
}

void sd_etcd_watch_msg_done(struct sd_etcd_watch_msg *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_events; i++)
                free(m->events[i].key);
        free(m->events);
        m->events = NULL;
        m->n_events = 0;
}

int sd_etcd_parse_watch(const char *endpoint, const char *line, size_t len, struct sd_etcd_watch_msg *out,
                        sd_error *err) {
        static const char what[] = "etcd watch message";
        const struct sd_peer_json_where w = WHERE(what, "");
        const struct sd_peer_json_where rw = WHERE(what, "result.");
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(line, len, what, &root, err);
        if (r < 0)
                return r;
        if (json_object_get(root, "error"))
                return sd_etcd_error_from_body(endpoint, "watch", 200, line, len, NULL, err);

        json_t *result = NULL;
        r = sd_peer_json_object(root, "result", SD_JSON_REQUIRED | OPTIONAL, &w, &result, err);
        if (r < 0)
                return r;
        _cleanup_watch_msg_ struct sd_etcd_watch_msg m = { 0 };
        r = get_header_revision(result, false, what, &m.revision, err);
        if (r < 0)
                return r;
        bool created = false, canceled = false;
        r = sd_peer_json_bool(result, "created", OPTIONAL, &rw, &created, err);
        if (r < 0)
                return r;
        r = sd_peer_json_bool(result, "canceled", OPTIONAL, &rw, &canceled, err);
        if (r < 0)
                return r;
        r = sd_peer_json_uint63(result, "compact_revision", OPTIONAL, &rw, &m.compact_revision, err);
        if (r < 0)
                return r;
        const char *reason = NULL;
        size_t reason_len = 0;
        r = sd_peer_json_string(result, "cancel_reason", OPTIONAL, SIZE_MAX, &rw, &reason, &reason_len, err);
        if (r < 0)
                return r;
        if (r > 0) {
                escape(reason, reason_len, m.cancel_reason, sizeof(m.cancel_reason));
                /* "rpc error: code = PermissionDenied desc = etcdserver:
                 * permission denied" */
                m.cancel_fault = strstr(reason, "PermissionDenied") ? SD_ETCD_FAULT_PERMISSION
                               : strstr(reason, "Unauthenticated") || strstr(reason, "invalid auth token")
                                       ? SD_ETCD_FAULT_TOKEN
                                       : SD_ETCD_FAULT_OTHER;
        }
        m.kind = canceled ? SD_ETCD_WATCH_CANCELED : created ? SD_ETCD_WATCH_CREATED : SD_ETCD_WATCH_EVENTS;

        json_t *events = NULL;
        r = sd_peer_json_array(result, "events", OPTIONAL, &rw, &events, err);
        if (r < 0)
                return r;
        size_t n = events ? json_array_size(events) : 0;
        if (n > 0) {
                m.events = calloc(n, sizeof(*m.events));
                if (!m.events)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                char prefix[48], kv_prefix[48];
                (void) snprintf(prefix, sizeof(prefix), "result.events[%zu].", i);
                (void) snprintf(kv_prefix, sizeof(kv_prefix), "result.events[%zu].kv.", i);
                const struct sd_peer_json_where ew = WHERE(what, prefix);
                const struct sd_peer_json_where kw = WHERE(what, kv_prefix);
                json_t *ev = json_array_get(events, i);
                if (!json_is_object(ev)) {
                        prefix[strlen(prefix) - 1] = '\0';
                        return sd_peer_json_field_error(err, &w, prefix, "expected an object, got %s",
                                                   sd_peer_json_type_name(ev));
                }
                struct sd_etcd_watch_event *e = &m.events[m.n_events++];
                const char *type = NULL;
                size_t type_len = 0;
                r = sd_peer_json_string(ev, "type", OPTIONAL, 16, &ew, &type, &type_len, err);
                if (r < 0)
                        return r;
                /* PUT is the zero value, hence usually absent. */
                if (r > 0) {
                        if (type_len == 6 && memcmp(type, "DELETE", 6) == 0)
                                e->is_delete = true;
                        else if (type_len != 3 || memcmp(type, "PUT", 3) != 0)
                                return sd_peer_json_field_error(err, &ew, "type", "unknown type");
                }
                json_t *kv = NULL;
                r = sd_peer_json_object(ev, "kv", SD_JSON_REQUIRED | OPTIONAL, &ew, &kv, err);
                if (r < 0)
                        return r;
                r = get_key(kv, &kw, &e->key, &e->key_len, err);
                if (r < 0)
                        return r;
                r = sd_peer_json_uint63(kv, "mod_revision", OPTIONAL, &kw, &e->mod_revision, err);
                if (r < 0)
                        return r;
        }
        *out = m;
        m.events = NULL;
        m.n_events = 0;
        return 0;
}

/* Exactly VERSION_DIGITS digits, value >= 1. */
static int parse_version_digits(const char *digits, size_t n_digits, const char *shown, uint64_t *out,
                                sd_error *err) {
        if (n_digits != VERSION_DIGITS)
                return sd_error_set(err, EBADMSG, "etcd key '%s': the version is not %d digits", shown, VERSION_DIGITS);
        uint64_t v = 0;
        for (size_t i = 0; i < VERSION_DIGITS; i++) {
                if (digits[i] < '0' || digits[i] > '9')
                        return sd_error_set(err, EBADMSG, "etcd key '%s': the version is not %d digits", shown,
                                            VERSION_DIGITS);
                unsigned d = (unsigned) (digits[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return sd_error_set(err, EBADMSG, "etcd key '%s': the version overflows", shown);
                v = v * 10 + d;
        }
        if (v == 0)
                return sd_error_set(err, EBADMSG, "etcd key '%s': version 0 does not exist", shown);
        *out = v;
        return 0;
}

int sd_etcd_key_parse(const char *prefix, const char *key, size_t key_len, struct sd_etcd_key *out,
                      sd_error *err) {
        char shown[160], shown_prefix[96];
        size_t plen = strlen(prefix);
        escape(key, key_len, shown, sizeof(shown));
        escape(prefix, plen, shown_prefix, sizeof(shown_prefix));
        if (key_len <= plen + 1 || memcmp(key, prefix, plen) != 0 || key[plen] != '/')
                return sd_error_set(err, EPROTO, "etcd returned key '%s' outside the prefix '%s'", shown,
                                    shown_prefix);
        if (memchr(key, '\0', key_len))
                return sd_error_set(err, EBADMSG, "etcd key '%s' contains a NUL byte", shown);

        const char *rest = key + plen + 1;
        size_t rest_len = key_len - plen - 1;
        static const char secrets[] = "secrets/", recipients[] = "recipients/", policy[] = "policy/",
                          proposals[] = "proposals/";
        struct sd_etcd_key k = { 0 };
        int r;
        if (rest_len > strlen(secrets) && memcmp(rest, secrets, strlen(secrets)) == 0) {
                const char *name = rest + strlen(secrets);
                size_t left = rest_len - strlen(secrets);
                const char *slash = memchr(name, '/', left);
                if (!slash)
                        return sd_error_set(err, EBADMSG, "etcd key '%s' under secrets/ has no version", shown);
                size_t name_len = (size_t) (slash - name);
                if (name_len > SD_NAME_MAX || sd_name_validate("name", name, name_len, NULL) < 0)
                        return sd_error_set(err, EBADMSG, "etcd key '%s': not a valid secret name", shown);
                r = parse_version_digits(slash + 1, left - name_len - 1, shown, &k.version, err);
                if (r < 0)
                        return r;
                k.kind = SD_ETCD_KEY_SECRET;
                memcpy(k.name, name, name_len);
        } else if (rest_len > strlen(recipients) && memcmp(rest, recipients, strlen(recipients)) == 0) {
                const char *name = rest + strlen(recipients);
                size_t name_len = rest_len - strlen(recipients);
                if (name_len > SD_NAME_MAX || sd_name_validate("name", name, name_len, NULL) < 0)
                        return sd_error_set(err, EBADMSG, "etcd key '%s': not a valid recipient name", shown);
                k.kind = SD_ETCD_KEY_RECIPIENT;
                memcpy(k.name, name, name_len);
        } else if (rest_len > strlen(policy) && memcmp(rest, policy, strlen(policy)) == 0) {
                r = parse_version_digits(rest + strlen(policy), rest_len - strlen(policy), shown, &k.version, err);
                if (r < 0)
                        return r;
                k.kind = SD_ETCD_KEY_POLICY;
        } else if (rest_len > strlen(proposals) && memcmp(rest, proposals, strlen(proposals)) == 0) {
                r = parse_version_digits(rest + strlen(proposals), rest_len - strlen(proposals), shown, &k.version,
                                         err);
                if (r < 0)
                        return r;
                k.kind = SD_ETCD_KEY_PROPOSAL;
        } else {
                return sd_error_set(err, EBADMSG,
                                    "etcd key '%s' under the prefix '%s' is neither secrets/<name>/<version>, "
                                    "policy/<version>, proposals/<version> nor recipients/<name>",
                                    shown, shown_prefix);
        }
        *out = k;
        return 0;
}

static bool is_host_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '-';
}

static bool is_prefix_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '-' || c == '_';
}

void sd_etcd_url_done(struct sd_etcd_url *u) {
        for (size_t i = 0; i < u->n_endpoints; i++)
                free(u->endpoints[i]);
        free(u->prefix);
        *u = (struct sd_etcd_url) { 0 };
}

/* One "host[:port]" of the list; shown is the whole URL for messages. */
static int parse_endpoint(const char *s, size_t len, const char *shown, char **out, sd_error *err) {
        size_t host_len = 0;
        if (len == 0)
                return sd_error_set(err, EINVAL, "store URL '%s': an empty endpoint in the list", shown);
        if (s[0] == '[') {
                const char *close = memchr(s, ']', len);
                if (!close)
                        return sd_error_set(err, EINVAL, "store URL '%s': unterminated [IPv6] host", shown);
                host_len = (size_t) (close - s) + 1;
                for (size_t i = 1; i + 1 < host_len; i++)
                        if (!strchr("0123456789abcdefABCDEF:.", s[i]))
                                return sd_error_set(err, EINVAL, "store URL '%s': bad IPv6 host", shown);
                if (host_len == 2)
                        return sd_error_set(err, EINVAL, "store URL '%s': empty host", shown);
        } else {
                while (host_len < len && is_host_char(s[host_len]))
                        host_len++;
                if (host_len == 0)
                        return sd_error_set(err, EINVAL, "store URL '%s': no host", shown);
        }
        const char *port = DEFAULT_PORT;
        size_t port_len = strlen(DEFAULT_PORT);
        if (host_len < len) {
                if (s[host_len] != ':')
                        return sd_error_set(err, EINVAL, "store URL '%s': bad character in the host", shown);
                port = s + host_len + 1;
                port_len = len - host_len - 1;
                unsigned long p = 0;
                if (port_len == 0 || port_len > 5)
                        return sd_error_set(err, EINVAL, "store URL '%s': bad port", shown);
                for (size_t i = 0; i < port_len; i++) {
                        if (port[i] < '0' || port[i] > '9')
                                return sd_error_set(err, EINVAL, "store URL '%s': bad port", shown);
                        p = p * 10 + (unsigned long) (port[i] - '0');
                }
                if (p == 0 || p > 65535)
                        return sd_error_set(err, EINVAL, "store URL '%s': port out of range", shown);
        }
        char *e = str_printf("%.*s:%.*s", (int) host_len, s, (int) port_len, port);
        if (!e)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = e;
        return 0;
}

int sd_etcd_url_parse(const char *rest, struct sd_etcd_url *out, sd_error *err) {
        char shown[256];
        escape(rest, strlen(rest), shown, sizeof(shown));
        const char *slash = strchr(rest, '/');
        size_t auth_len = slash ? (size_t) (slash - rest) : strlen(rest);
        if (memchr(rest, '@', auth_len))
                /* Not echoed: what precedes '@' is likely a password. */
                return sd_error_set(err, EINVAL,
                                    "etcd store URL: credentials do not belong in a URL (it shows in argv and "
                                    "logs); use etcd-auth-file");
        if (strpbrk(rest, "?#"))
                return sd_error_set(err, EINVAL, "store URL '%s': a query or fragment is not supported", shown);
        if (!slash)
                return sd_error_set(err, EINVAL,
                                    "store URL '%s' has no key prefix; expected etcd://host:port[,host:port...]/prefix",
                                    shown);

        _cleanup_(sd_etcd_url_done) struct sd_etcd_url u = { 0 };
        for (const char *p = rest; p <= slash;) {
                const char *comma = memchr(p, ',', (size_t) (slash - p));
                const char *end = comma ? comma : slash;
                if (u.n_endpoints == SD_ETCD_ENDPOINTS_MAX)
                        return sd_error_set(err, EINVAL, "store URL '%s': more than %d endpoints", shown,
                                            SD_ETCD_ENDPOINTS_MAX);
                char *e = NULL;
                int r = parse_endpoint(p, (size_t) (end - p), shown, &e, err);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < u.n_endpoints; i++)
                        if (strcmp(u.endpoints[i], e) == 0) {
                                int q = sd_error_set(err, EINVAL, "store URL '%s': endpoint %s is listed twice", shown,
                                                     e);
                                free(e);
                                return q;
                        }
                u.endpoints[u.n_endpoints++] = e;
                p = end + 1;
        }

        /* prefix: segments of [A-Za-z0-9._-] joined by single '/'; trailing
         * slashes dropped so "p/" and "p" name the same keys. */
        const char *path = slash + 1;
        size_t path_len = strlen(path);
        while (path_len > 0 && path[path_len - 1] == '/')
                path_len--;
        if (path_len == 0)
                return sd_error_set(err, EINVAL,
                                    "store URL '%s' has an empty key prefix; expected etcd://host:port/prefix", shown);
        if (path_len > SD_ETCD_PREFIX_MAX)
                return sd_error_set(err, EINVAL, "store URL '%s': the prefix is over %d bytes", shown,
                                    SD_ETCD_PREFIX_MAX);
        size_t seg_start = 0;
        for (size_t i = 0; i <= path_len; i++) {
                if (i == path_len || path[i] == '/') {
                        size_t seg = i - seg_start;
                        if (seg == 0 || (seg == 1 && path[seg_start] == '.') ||
                            (seg == 2 && path[seg_start] == '.' && path[seg_start + 1] == '.'))
                                return sd_error_set(err, EINVAL,
                                                    "store URL '%s': empty, '.' or '..' component in the prefix", shown);
                        seg_start = i + 1;
                } else if (!is_prefix_char(path[i])) {
                        return sd_error_set(err, EINVAL,
                                            "store URL '%s': the prefix may hold only letters, digits, '.', '-', '_' "
                                            "and '/'",
                                            shown);
                }
        }
        u.prefix = strndup(path, path_len);
        if (!u.prefix)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = u;
        u = (struct sd_etcd_url) { 0 };
        return 0;
}

static bool is_blank_char(char c) {
        return c == ' ' || c == '\t';
}

int sd_etcd_auth_parse(const char *text, size_t len, char **user_out, char **password_out, sd_error *err) {
        if (len > SD_ETCD_AUTH_FILE_MAX)
                return sd_error_set(err, EINVAL, "etcd-auth-file: %zu bytes; the limit is %zu", len,
                                    SD_ETCD_AUTH_FILE_MAX);
        if (memchr(text, '\0', len))
                return sd_error_set(err, EINVAL, "etcd-auth-file: contains a NUL byte");
        _cleanup_free_ char *user = NULL;
        char *password = NULL;
        int line_no = 0;
        for (size_t pos = 0; pos < len;) {
                const char *line = text + pos;
                const char *nl = memchr(line, '\n', len - pos);
                size_t l = nl ? (size_t) (nl - line) : len - pos;
                pos += l + (nl ? 1 : 0);
                line_no++;
                if (l > 0 && line[l - 1] == '\r')
                        l--;
                size_t b = 0;
                while (b < l && is_blank_char(line[b]))
                        b++;
                while (l > b && is_blank_char(line[l - 1]))
                        l--;
                if (b == l || line[b] == '#')
                        continue;
                const char *eq = memchr(line + b, '=', l - b);
                if (!eq) {
                        sodium_free(password);
                        return sd_error_set(err, EINVAL, "etcd-auth-file line %d: expected 'user = NAME' or "
                                            "'password = PASSWORD'", line_no);
                }
                size_t key_end = (size_t) (eq - line);
                while (key_end > b && is_blank_char(line[key_end - 1]))
                        key_end--;
                size_t v = (size_t) (eq - line) + 1;
                while (v < l && is_blank_char(line[v]))
                        v++;
                size_t key_len = key_end - b, value_len = l - v;
                const char *value = line + v;
                /* A CR left inside a line (not the one before LF) would end
                 * up in a header or a password nobody can type. */
                if (memchr(line, '\r', l)) {
                        sodium_free(password);
                        return sd_error_set(err, EINVAL, "etcd-auth-file line %d: contains a carriage return",
                                            line_no);
                }
                if (key_len == 4 && memcmp(line + b, "user", 4) == 0) {
                        char shown[64];
                        if (user) {
                                sodium_free(password);
                                return sd_error_set(err, EINVAL, "etcd-auth-file line %d: 'user' given twice", line_no);
                        }
                        if (value_len == 0 || value_len > SD_ETCD_USER_MAX) {
                                sodium_free(password);
                                return sd_error_set(err, EINVAL, "etcd-auth-file line %d: the user name must be 1 to %d "
                                                    "bytes", line_no, SD_ETCD_USER_MAX);
                        }
                        for (size_t i = 0; i < value_len; i++)
                                if ((unsigned char) value[i] <= 0x20 || (unsigned char) value[i] >= 0x7f) {
                                        sodium_free(password);
                                        return sd_error_set(err, EINVAL,
                                                            "etcd-auth-file line %d: user '%s' holds a space or a "
                                                            "non-printable byte",
                                                            line_no, escape(value, value_len, shown, sizeof(shown)));
                                }
                        user = strndup(value, value_len);
                        if (!user) {
                                sodium_free(password);
                                return sd_error_set(err, ENOMEM, "out of memory");
                        }
                } else if (key_len == 8 && memcmp(line + b, "password", 8) == 0) {
                        if (password) {
                                sodium_free(password);
                                return sd_error_set(err, EINVAL, "etcd-auth-file line %d: 'password' given twice",
                                                    line_no);
                        }
                        if (value_len == 0 || value_len > SD_ETCD_PASSWORD_MAX)
                                return sd_error_set(err, EINVAL, "etcd-auth-file line %d: the password must be 1 to %d "
                                                    "bytes", line_no, SD_ETCD_PASSWORD_MAX);
                        password = sodium_malloc(value_len + 1);
                        if (!password)
                                return sd_error_set(err, ENOMEM, "out of memory");
                        memcpy(password, value, value_len);
                        password[value_len] = '\0';
                } else {
                        char shown[32];
                        sodium_free(password);
                        return sd_error_set(err, EINVAL, "etcd-auth-file line %d: unknown key '%s' (expected user or "
                                            "password)", line_no, escape(line + b, key_len, shown, sizeof(shown)));
                }
        }
        if (!user || !password) {
                sodium_free(password);
                return sd_error_set(err, EINVAL, "etcd-auth-file: needs both 'user = NAME' and 'password = PASSWORD'");
        }
        *user_out = steal_pointer(&user);
        *password_out = password;
        return 0;
}

/* ------------------------------------------------------------------------
 * The store: endpoints, credentials, one call with failover
 * ---------------------------------------------------------------------- */

struct etcd_watch;

struct etcd_endpoint {
        char *name;           /* host:port */
        char *base_url;       /* http(s)://host:port */
        char *peer;           /* "etcd at host:port", for messages */
};

struct etcd_store {
        struct sd_store *s;   /* for warnings; valid as long as the store */
        struct etcd_endpoint ep[SD_ETCD_ENDPOINTS_MAX];
        size_t n_ep;
        char *prefix;         /* normalised, no trailing '/' */
        bool tls;
        struct sd_http *http; /* thread-safe: requests from any thread */

        /* TLS material handed to libcurl from memory, read and checked once
         * at open (before the agent's seccomp filter; never re-read). */
        char *ca_pem, *cert_pem, *key_pem;   /* key_pem: sodium_malloc() */
        size_t ca_len, cert_len, key_len;
        char *cert_path;

        /* Credentials (etcd-auth-file); password in sodium_malloc() memory. */
        char *user;
        char *password;

        pthread_mutex_t lock; /* guards the fields below */
        size_t current;       /* the member we stick to */
        uint64_t failovers;
        char *token;          /* NULL: none yet (or auth off) */
        bool auth_off;        /* the cluster said auth is not enabled */

        struct etcd_watch *watch;
};

static struct etcd_store *impl_of(struct sd_store *s) {
        return s->impl;
}

static size_t current_endpoint(struct etcd_store *es) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        return es->current;
}

/* The member in use, for messages (names never change once open). */
static const char *endpoint_name(struct etcd_store *es) {
        return es->ep[current_endpoint(es)].name;
}

static json_t *b64_json(const char *bytes, size_t len) {
        _cleanup_free_ char *enc = sd_b64_encode(bytes, len, SD_B64_STD);
        return enc ? json_string(enc) : NULL;
}

static json_t *b64_json_str(const char *s) {
        return b64_json(s, strlen(s));
}


/* idx failed with a connection-level error: move on to the next member
 * (once per failure: concurrent callers that failed on the same member
 * do not skip the next one). */
static void note_failover(struct etcd_store *es, size_t idx) {
        if (es->n_ep < 2)
                return;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        if (es->current == idx) {
                es->current = (idx + 1) % es->n_ep;
                es->failovers++;
        }
}

static void stick_to(struct etcd_store *es, size_t idx) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        es->current = idx;
}

/* A connection-level failure: another member may well answer. */
static bool fails_over(int r) {
        return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ECONNRESET || r == -EAGAIN;
}

/* Append s as a JSON string (quoted, escaped) at out[*pos]; out has room
 * for 6 bytes per input byte plus 2. */
static void json_quote_into(char *out, size_t *pos, const char *s) {
        size_t p = *pos;
        out[p++] = '"';
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if (*c == '"' || *c == '\\') {
                        out[p++] = '\\';
                        out[p++] = (char) *c;
                } else if (*c < 0x20) {
                        static const char hex[] = "0123456789abcdef";
                        memcpy(out + p, "\\u00", 4);
                        out[p + 4] = hex[*c >> 4];
                        out[p + 5] = hex[*c & 15];
                        p += 6;
                } else {
                        out[p++] = (char) *c;
                }
        }
        out[p++] = '"';
        *pos = p;
}

/* POST /v3/auth/authenticate on member idx; stores the token.  The request
 * body holds the password: built in locked memory, never logged. */
static int authenticate(struct etcd_store *es, size_t idx, sd_error *err) {
        const struct etcd_endpoint *ep = &es->ep[idx];
        size_t cap = 32 + 6 * (strlen(es->user) + strlen(es->password)) + 4;
        char *body = sodium_malloc(cap);
        if (!body)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t pos = 0;
        memcpy(body, "{\"name\":", 8);
        pos = 8;
        json_quote_into(body, &pos, es->user);
        memcpy(body + pos, ",\"password\":", 12);
        pos += 12;
        json_quote_into(body, &pos, es->password);
        body[pos++] = '}';
        body[pos] = '\0';

        char what[160];
        (void) snprintf(what, sizeof(what), "authenticating as user '%s'", es->user);
        const struct sd_http_request rq = { .method = "POST", .base = ep->base_url, .path = "/v3/auth/authenticate",
                                            .what = what, .body = body, .body_len = pos, .max_reply = ERROR_BODY_MAX,
                                            .timeout_ms = REQUEST_TIMEOUT_MS, .peer = ep->peer };
        _cleanup_http_reply_ struct sd_http_reply reply = { 0 };
        int r = sd_http_request(es->http, &rq, &reply, err);
        sodium_free(body);
        if (r < 0)
                return r;
        if (reply.status != 200) {
                enum sd_etcd_fault f = SD_ETCD_FAULT_NONE;
                sd_error why = { 0 };
                r = sd_etcd_error_from_body(ep->name, what, reply.status, reply.body, reply.len, &f, &why);
                if (f == SD_ETCD_FAULT_AUTH_FAILED)
                        /* etcd 3.4 gives a wrong password and an unknown user the
                         * same answer, on purpose. */
                        return sd_error_set(err, EACCES,
                                            "etcd at %s: authentication as user '%s' failed: wrong password or no "
                                            "such user (etcd does not say which); check etcd-auth-file",
                                            ep->name, es->user);
                if (strstr(why.message, "authentication is not enabled")) {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
                        es->auth_off = true;
                        return 0;
                }
                if (err)
                        *err = why;
                return r;
        }
        char *copy = NULL;
        r = sd_etcd_parse_auth(reply.body, reply.len, &copy, err);
        if (r < 0)
                return sd_error_prefix(err, r, "etcd at %s", ep->name);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        free(es->token);
        es->token = copy;
        return 0;
}

/* The token to send (a malloc()ed copy) or NULL without credentials;
 * authenticates on member idx when there is none. */
static int token_for(struct etcd_store *es, size_t idx, char **out, sd_error *err) {
        *out = NULL;
        if (!es->user)
                return 0;
        for (int round = 0; round < 2; round++) {
                {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
                        if (es->auth_off)
                                return 0;
                        if (es->token) {
                                *out = strdup(es->token);
                                return *out ? 0 : sd_error_set(err, ENOMEM, "out of memory");
                        }
                }
                if (round == 0) {
                        int r = authenticate(es, idx, err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Drop a token etcd called invalid (expired, or revoked by a restart of
 * the member that issued it), unless another thread replaced it already. */
static void token_invalidate(struct etcd_store *es, const char *used) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        if (es->token && used && strcmp(es->token, used) == 0) {
                free(es->token);
                es->token = NULL;
        }
}

/* The message for an etcd error that is about who we are. */
static int access_error(struct etcd_store *es, size_t idx, const char *what, enum sd_etcd_fault f, const sd_error *why,
                        sd_error *err) {
        const char *ep = es->ep[idx].name;
        if (f == SD_ETCD_FAULT_AUTH_REQUIRED && !es->user)
                return sd_error_set(err, EACCES,
                                    "etcd at %s: %s: etcd has authentication enabled and no credentials are "
                                    "configured (etcd-auth-file)",
                                    ep, what);
        if (f == SD_ETCD_FAULT_PERMISSION)
                return sd_error_set(err, EACCES,
                                    "etcd at %s: %s: user '%s' has no permission on the prefix '%s/' (grant its role "
                                    "readwrite on it: etcdctl role grant-permission --prefix=true ROLE readwrite %s/)",
                                    ep, what, es->user ? es->user : "(none)", es->prefix, es->prefix);
        if (err)
                *err = *why;
        return -why->code;
}

/*
 * POST req to path, sticking to the current member and moving to the next
 * one on a connection-level failure or 503 (no leader, leader changed).
 * An expired or revoked token is replaced once.  *body_out is the 200
 * reply.
 *
 * idempotent: whether the request may be sent again after its outcome
 * became unknown (sent, then a timeout, a reset or a 503).  For the one
 * that may not (the put txn) the call stops there and sets *unknown_out;
 * a refused connection (nothing was sent) still moves on.
 */
static int etcd_call_ex(struct etcd_store *es, const char *path, json_t *req, const char *what, bool idempotent,
                        char **body_out, size_t *len_out, bool *unknown_out, sd_error *err) {
        _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
        if (!body)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (unknown_out)
                *unknown_out = false;
        size_t start = current_endpoint(es);
        int token_retries = 0;
        sd_error last = { 0 };
        for (size_t tries = 0; tries < es->n_ep;) {
                size_t idx = (start + tries) % es->n_ep;
                const struct etcd_endpoint *ep = &es->ep[idx];
                _cleanup_free_ char *token = NULL;
                sd_error e = { 0 };
                int r = token_for(es, idx, &token, &e);
                if (r < 0) {
                        if (!fails_over(r)) {
                                if (err)
                                        *err = e;
                                return r;
                        }
                        note_failover(es, idx);
                        last = e;
                        tries++;
                        continue;
                }
                const struct sd_http_request rq = { .method = "POST", .base = ep->base_url, .path = path, .what = what,
                                                    .body = body, .body_len = strlen(body), .authorization = token,
                                                    .max_reply = REPLY_MAX, .timeout_ms = REQUEST_TIMEOUT_MS,
                                                    .peer = ep->peer };
                _cleanup_http_reply_ struct sd_http_reply reply = { 0 };
                r = sd_http_request(es->http, &rq, &reply, &e);
                if (r >= 0 && reply.status == 200) {
                        stick_to(es, idx);
                        *len_out = reply.len;
                        *body_out = steal_pointer(&reply.body);
                        return 0;
                }
                enum sd_etcd_fault f = SD_ETCD_FAULT_NONE;
                if (r >= 0)
                        r = sd_etcd_error_from_body(ep->name, what, reply.status, reply.body, reply.len, &f, &e);
                if (f == SD_ETCD_FAULT_TOKEN && token_retries++ < 2) {
                        token_invalidate(es, token);
                        continue;
                }
                /* Authentication was turned on since we were told it was
                 * off: authenticate from now on. */
                if (f == SD_ETCD_FAULT_AUTH_REQUIRED && es->user && !token && token_retries++ < 2) {
                        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
                        es->auth_off = false;
                        continue;
                }
                if (f == SD_ETCD_FAULT_AUTH_REQUIRED || f == SD_ETCD_FAULT_PERMISSION)
                        return access_error(es, idx, what, f, &e, err);
                if (!fails_over(r)) {
                        if (err)
                                *err = e;
                        return r;
                }
                note_failover(es, idx);
                if (!idempotent && r != -ECONNREFUSED) {
                        if (unknown_out)
                                *unknown_out = true;
                        if (err)
                                *err = e;
                        return r;
                }
                last = e;
                tries++;
        }
        if (err)
                *err = last;
        return -last.code;
}

static int etcd_call(struct etcd_store *es, const char *path, json_t *req, const char *what, char **body_out,
                     size_t *len_out, sd_error *err) {
        return etcd_call_ex(es, path, req, what, true, body_out, len_out, NULL, err);
}

/* Range [key, range_end) (range_end NULL: the key alone).  A reply whose
 * parse fails names etcd's endpoint. */
struct range_opts {
        const char *key;
        size_t key_len;
        const char *range_end;     /* NUL-terminated, or NULL */
        int64_t limit;
        int64_t revision;
        bool keys_only, count_only, descend;
        size_t max_value;
};

static int etcd_range(struct etcd_store *es, const struct range_opts *o, const char *what,
                      struct sd_etcd_range *out, sd_error *err) {
        _cleanup_json_ json_t *req = json_object();
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        int fail = json_object_set_new(req, "key", b64_json(o->key, o->key_len));
        if (o->range_end)
                fail |= json_object_set_new(req, "range_end", b64_json_str(o->range_end));
        if (o->limit > 0)
                fail |= json_object_set_new(req, "limit", json_integer(o->limit));
        if (o->revision > 0)
                fail |= json_object_set_new(req, "revision", json_integer(o->revision));
        if (o->keys_only)
                fail |= json_object_set_new(req, "keys_only", json_true());
        if (o->count_only)
                fail |= json_object_set_new(req, "count_only", json_true());
        if (o->descend) {
                fail |= json_object_set_new(req, "sort_order", json_string("DESCEND"));
                fail |= json_object_set_new(req, "sort_target", json_string("KEY"));
        }
        if (fail)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        int r = etcd_call(es, "/v3/kv/range", req, what, &body, &len, err);
        if (r < 0)
                return r;
        r = sd_etcd_parse_range(body, len, o->max_value ? o->max_value : SD_ENVELOPE_MAX_BYTES, out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "etcd at %s: %s", endpoint_name(es), what);
        return 0;
}

static char *version_key(const struct etcd_store *es, const char *name, uint64_t version) {
        return str_printf("%s/secrets/%s/%0*" PRIu64, es->prefix, name, VERSION_DIGITS, version);
}

/* Walk every key of [start, end) page by page at one revision; fn sees each
 * kv.  Pages continue after the last key seen (key + "\0"). */
static int bytes_cmp(const char *a, size_t a_len, const char *b, size_t b_len) {
        int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
        if (c != 0)
                return c;
        return a_len < b_len ? -1 : a_len > b_len;
}

typedef int (*kv_fn)(struct etcd_store *es, const struct sd_etcd_kv *kv, void *userdata, sd_error *err);

static int range_each(struct etcd_store *es, const char *start, const char *end, bool keys_only, int64_t page,
                      const char *what, kv_fn fn, void *userdata, sd_error *err) {
        _cleanup_free_ char *from = strdup(start);
        if (!from)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t from_len = strlen(from);
        int64_t revision = 0;
        for (;;) {
                _cleanup_range_ struct sd_etcd_range rr = { 0 };
                struct range_opts o = { .key = from, .key_len = from_len, .range_end = end, .limit = page,
                                        .revision = revision, .keys_only = keys_only };
                int r = etcd_range(es, &o, what, &rr, err);
                if (r < 0)
                        return r;
                if (revision == 0)
                        revision = rr.revision;
                for (size_t i = 0; i < rr.n_kvs; i++) {
                        r = fn(es, &rr.kvs[i], userdata, err);
                        if (r < 0)
                                return r;
                }
                if (!rr.more)
                        return 0;
                if (rr.n_kvs == 0)
                        return sd_error_set(err, EPROTO, "etcd at %s: %s: 'more' set on an empty page",
                                            endpoint_name(es), what);
                const struct sd_etcd_kv *last = &rr.kvs[rr.n_kvs - 1];
                /* A hostile peer must not keep us paging for ever: each page
                 * must move forward and stay below range_end. */
                if (bytes_cmp(last->key, last->key_len, from, from_len) < 0 ||
                    bytes_cmp(last->key, last->key_len, end, strlen(end)) >= 0)
                        return sd_error_set(err, EPROTO, "etcd at %s: %s: a page ended outside the range asked",
                                            endpoint_name(es), what);
                /* The next page starts right after the last key: key + "\0". */
                char *next = malloc(last->key_len + 2);
                if (!next)
                        return sd_error_set(err, ENOMEM, "out of memory");
                memcpy(next, last->key, last->key_len);
                next[last->key_len] = '\0';
                next[last->key_len + 1] = '\0';
                free(from);
                from = next;
                from_len = last->key_len + 1;
        }
}

/* Classify kv->key; keys of another shape are warned about and skipped
 * (return 1), keys outside the prefix are an error. */
static int classify(struct etcd_store *es, const char *key, size_t key_len, struct sd_etcd_key *out,
                    sd_error *err) {
        sd_error why = { 0 };
        int r = sd_etcd_key_parse(es->prefix, key, key_len, out, &why);
        if (r == -EBADMSG) {
                sd_store_warnf(es->s, "%s; skipped", why.message);
                return 1;
        }
        if (r < 0) {
                if (err)
                        *err = why;
                return r;
        }
        return 0;
}

/* Read a file named by an option into memory.  A private one (a key, a
 * password) must be a regular file, not a symlink, owned by this process's
 * user (root for the agent) and closed to group and others: anyone else
 * who can write it can impersonate us, anyone who can read it can too. */
static int read_option_file(const char *option, const char *path, bool private, char **out, size_t *len_out,
                            sd_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (private ? O_NOFOLLOW : 0));
        if (fd < 0) {
                if (errno == ELOOP)
                        return sd_error_set(err, EPERM, "%s %s: is a symbolic link; name the file itself", option,
                                            path);
                return sd_error_set_errno(err, errno, "%s %s: cannot open", option, path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "%s %s: cannot stat", option, path);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "%s %s: not a regular file", option, path);
        if (private && (st.st_uid != geteuid() || (st.st_mode & 0077) != 0))
                return sd_error_set(err, EPERM,
                                    "%s %s: owned by uid %u with mode %04o; it must be owned by uid %u and mode 0600 "
                                    "(chown %u %s && chmod 0600 %s)",
                                    option, path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777),
                                    (unsigned) geteuid(), (unsigned) geteuid(), path, path);
        if ((size_t) st.st_size > OPTION_FILE_MAX)
                return sd_error_set(err, EFBIG, "%s %s: larger than %zu bytes", option, path, OPTION_FILE_MAX);
        _cleanup_buf_ struct sd_buf buf = { .max = OPTION_FILE_MAX };
        /* One allocation of the final size: no copy of a key left behind
         * by realloc. */
        int r = sd_buf_reserve(&buf, (size_t) st.st_size);
        if (r >= 0)
                r = sd_buf_read_fd(&buf, fd);
        if (r < 0) {
                if (buf.data)
                        sodium_memzero(buf.data, buf.cap);
                return sd_error_set_errno(err, -r, "%s %s: cannot read", option, path);
        }
        char *copy = private ? sodium_malloc(buf.len + 1) : malloc(buf.len + 1);
        if (copy) {
                memcpy(copy, buf.data ? buf.data : "", buf.len);
                copy[buf.len] = '\0';
        }
        if (buf.data)
                sodium_memzero(buf.data, buf.cap);
        if (!copy)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = copy;
        *len_out = buf.len;
        return 0;
}

static void etcd_free(void *impl);

static int etcd_open(struct sd_store *s, const char *url, const char *rest, int create, void **impl_out,
                     sd_error *err) {
        (void) create;  /* an etcd prefix needs no creation */
        const struct sd_store_options *o = s->open_options;
        bool tls = strncmp(url, "etcds://", 8) == 0;
        if (!tls && (o->etcd_ca || o->etcd_cert || o->etcd_key))
                return sd_error_set(err, EINVAL,
                                    "store '%s': etcd-ca, etcd-cert and etcd-key need an etcds:// URL (TLS)", url);
        if (!o->etcd_cert != !o->etcd_key)
                return sd_error_set(err, EINVAL, "store '%s': etcd-cert and etcd-key go together", url);

        _cleanup_(sd_etcd_url_done) struct sd_etcd_url u = { 0 };
        int r = sd_etcd_url_parse(rest, &u, err);
        if (r < 0)
                return r;
        /* The key and the password live in sodium_malloc() memory. */
        if (sodium_init() < 0)
                return sd_error_set(err, EIO, "store '%s': libsodium failed to initialise", url);

        struct etcd_store *es = calloc(1, sizeof(*es));
        if (!es)
                return sd_error_set(err, ENOMEM, "out of memory");
        (void) pthread_mutex_init(&es->lock, NULL);
        es->s = s;
        es->tls = tls;
        es->prefix = steal_pointer(&u.prefix);
        for (size_t i = 0; i < u.n_endpoints; i++) {
                struct etcd_endpoint *ep = &es->ep[es->n_ep++];
                ep->name = steal_pointer(&u.endpoints[i]);
                ep->base_url = str_printf("%s://%s", tls ? "https" : "http", ep->name);
                ep->peer = str_printf("etcd at %s", ep->name);
                if (!ep->base_url || !ep->peer) {
                        etcd_free(es);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
        }
        u.n_endpoints = 0;

        if (o->etcd_ca)
                r = read_option_file("etcd-ca", o->etcd_ca, false, &es->ca_pem, &es->ca_len, err);
        if (r >= 0 && o->etcd_cert)
                r = read_option_file("etcd-cert", o->etcd_cert, false, &es->cert_pem, &es->cert_len, err);
        if (r >= 0 && o->etcd_key)
                r = read_option_file("etcd-key", o->etcd_key, true, &es->key_pem, &es->key_len, err);
        if (r >= 0 && o->etcd_auth_file) {
                char *text = NULL;
                size_t len = 0;
                r = read_option_file("etcd-auth-file", o->etcd_auth_file, true, &text, &len, err);
                if (r >= 0) {
                        r = sd_etcd_auth_parse(text, len, &es->user, &es->password, err);
                        if (r < 0)
                                (void) sd_error_prefix(err, r, "%s", o->etcd_auth_file);
                        sodium_free(text);
                }
        }
        es->cert_path = o->etcd_cert ? strdup(o->etcd_cert) : NULL;
        if (r >= 0 && o->etcd_cert && !es->cert_path)
                r = sd_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
                etcd_free(es);
                return r;
        }

        char peer[96];
        (void) snprintf(peer, sizeof(peer), "etcd at %s", es->ep[0].name);
        const struct sd_http_pem ca = { es->ca_pem, es->ca_len }, cert = { es->cert_pem, es->cert_len },
                                 key = { es->key_pem, es->key_len };
        const struct sd_http_options ho = {
                .peer = peer,
                .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                .request_timeout_ms = REQUEST_TIMEOUT_MS,
                .https = tls,
                .ca = es->ca_pem ? &ca : NULL,
                .client_cert = es->cert_pem ? &cert : NULL,
                .client_key = es->key_pem ? &key : NULL,
                .client_cert_name = es->cert_path,
        };
        r = sd_http_new(&ho, &es->http, err);
        if (r < 0) {
                etcd_free(es);
                return r;
        }
        *impl_out = es;
        return 0;
}

static void watch_stop(struct etcd_watch *w);

static void etcd_free(void *impl) {
        struct etcd_store *es = impl;
        if (!es)
                return;
        watch_stop(es->watch);
        sd_http_free(es->http);
        for (size_t i = 0; i < es->n_ep; i++) {
                free(es->ep[i].name);
                free(es->ep[i].base_url);
                free(es->ep[i].peer);
        }
        (void) pthread_mutex_destroy(&es->lock);
        free(es->prefix);
        free(es->ca_pem);
        free(es->cert_pem);
        sodium_free(es->key_pem);
        free(es->cert_path);
        free(es->user);
        sodium_free(es->password);
        free(es->token);
        free(es);
}

static void etcd_health(struct sd_store *s, struct sd_store_health *out) {
        struct etcd_store *es = impl_of(s);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&es->lock);
        (void) snprintf(out->endpoint, sizeof(out->endpoint), "%s", es->ep[es->current].name);
        out->failovers = es->failovers;
}

/* key holds exactly our bytes (1), other bytes (-EEXIST), or nothing (0).
 * Envelopes and signed records carry a random nonce or a signature, so equal
 * bytes are ours. */
static int read_back(struct etcd_store *es, const char *key, const char *data, size_t len, sd_error *err) {
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct range_opts o = { .key = key, .key_len = strlen(key) };
        int r = etcd_range(es, &o, "range (reading back a put)", &rr, err);
        if (r < 0)
                return r;
        if (rr.n_kvs == 0)
                return 0;
        const struct sd_etcd_kv *kv = &rr.kvs[0];
        if (kv->key_len != strlen(key) || memcmp(kv->key, key, kv->key_len) != 0)
                return sd_error_set(err, EPROTO, "etcd at %s answered another key when reading back '%s'",
                                    endpoint_name(es), key);
        size_t got = kv->value ? kv->value_len : 0;
        return got == len && (len == 0 || memcmp(kv->value, data, len) == 0) ? 1 : -EEXIST;
}

/*
 * The compare-and-swap, one /v3/kv/txn:
 *   compare create_revision(<name>/<N-1>) > 0     (omitted for N = 1)
 *       and create_revision(<name>/<N>)   == 0    (a missing key compares as 0)
 *   success: put <name>/<N>
 * Why two racing writers can leave neither a gap nor a duplicate:
 *   - etcd applies txns one at a time in revision order, each compare and
 *     its put in one step, so "check, then put" has no window between them;
 *   - invariant: the versions of a name are exactly {1..k}.  Nothing of
 *     ours deletes a version (a delete is a tombstone version), so N-1 seen
 *     present stays present;
 *   - a txn for N succeeds only while N-1 exists and N does not, i.e. while
 *     the set is {1..N-1}, and leaves {1..N}.  For N = 1 "1 is absent"
 *     means, by the invariant, "no version at all";
 *   - of two writers racing for N, the second txn to apply sees N present
 *     (create_revision > 0) and fails: its payload is never stored.
 * A failed txn is -EEXIST "conflict"; sd_secret_put() re-reads and retries.
 *
 * When the txn's outcome is unknown (sent, then a timeout, a reset, or a
 * 503 "leader changed"; it may still be applied), it is never simply sent
 * again: version N is read back first (on the next member).  Our bytes
 * there: it was applied, success.  Other bytes: we lost, -EEXIST.
 * Nothing: the txn is sent again, which is safe because it is conditional
 * (if the first one lands meanwhile, the second fails and the next read
 * back finds our bytes).
 */
/* The compare-and-swap above for any versioned key: store key iff prev
 * (NULL for version 1) exists and key does not.  *succeeded is false when
 * the compare failed. */
static int txn_put_next(struct etcd_store *es, const char *key, const char *prev, const char *what,
                        const char *data, size_t len, bool *succeeded, sd_error *err) {
        _cleanup_json_ json_t *req = json_object();
        json_t *compare = json_array(), *success = json_array();
        if (!req || json_object_set_new(req, "compare", compare) || json_object_set_new(req, "success", success))
                return sd_error_set(err, ENOMEM, "out of memory");
        int fail = 0;
        if (prev)
                fail |= json_array_append_new(compare, json_pack("{s:o,s:s,s:s,s:s}", "key", b64_json_str(prev),
                                                                 "target", "CREATE", "result", "GREATER",
                                                                 "create_revision", "0"));
        fail |= json_array_append_new(compare, json_pack("{s:o,s:s,s:s,s:s}", "key", b64_json_str(key), "target",
                                                         "CREATE", "result", "EQUAL", "create_revision", "0"));
        fail |= json_array_append_new(success, json_pack("{s:{s:o,s:o}}", "request_put", "key",
                                                         b64_json_str(key), "value", b64_json(data, len)));
        if (fail)
                return sd_error_set(err, ENOMEM, "out of memory");

        for (int attempt = 0;; attempt++) {
                _cleanup_free_ char *body = NULL;
                size_t body_len = 0;
                bool unknown = false;
                int r = etcd_call_ex(es, "/v3/kv/txn", req, what, false, &body, &body_len, &unknown, err);
                if (r >= 0) {
                        bool ok = false;
                        r = sd_etcd_parse_txn(body, body_len, &ok, NULL, err);
                        if (r < 0)
                                return sd_error_prefix(err, r, "etcd at %s", endpoint_name(es));
                        if (ok || attempt == 0) {
                                *succeeded = ok;
                                return 0;
                        }
                        /* Lost, unless an earlier attempt of ours landed. */
                        r = read_back(es, key, data, len, err);
                        if (r < 0 && r != -EEXIST)
                                return r;
                        *succeeded = r == 1;
                        return 0;
                }
                if (!unknown)
                        return r;
                if (attempt >= 3)
                        return sd_error_prefix(err, r, "%s: the outcome stayed unknown", what);
                r = read_back(es, key, data, len, err);
                if (r == 1 || r == -EEXIST) {
                        *succeeded = r == 1;
                        return 0;
                }
                if (r < 0)
                        return sd_error_prefix(err, r, "%s: the outcome is unknown and reading it back failed", what);
                /* Nothing there: sending the conditional txn again is safe. */
        }
}

static int etcd_put(struct sd_store *s, const char *name, uint64_t version, const char *data, size_t len,
                    sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *key = version_key(es, name, version);
        _cleanup_free_ char *prev = version > 1 ? version_key(es, name, version - 1) : NULL;
        if (!key || (version > 1 && !prev))
                return sd_error_set(err, ENOMEM, "out of memory");

        char what[96];
        (void) snprintf(what, sizeof(what), "txn put version %" PRIu64, version);
        bool succeeded = false;
        int r = txn_put_next(es, key, prev, what, data, len, &succeeded, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': secret '%s'", s->url, name);
        if (!succeeded)
                return sd_error_set(err, EEXIST,
                                    "store '%s': secret '%s': version %" PRIu64
                                    ": conflict (another writer stored it first, or version %" PRIu64
                                    " does not exist)",
                                    s->url, name, version, version - 1);
        return 0;
}

/* Append a version to a growable array. */
static int versions_push(uint64_t **versions, size_t *n, size_t *cap, uint64_t version, sd_error *err) {
        if (*n == *cap) {
                size_t bigger = *cap ? *cap * 2 : 64;
                uint64_t *v = reallocarray(*versions, bigger, sizeof(*v));
                if (!v)
                        return sd_error_set(err, ENOMEM, "out of memory");
                *versions = v;
                *cap = bigger;
        }
        (*versions)[(*n)++] = version;
        return 0;
}

struct latest_scan {
        const char *name;
        uint64_t latest;
        uint64_t *versions;   /* history only */
        size_t n, cap;
        bool collect;
};

static int latest_scan_kv(struct etcd_store *es, const struct sd_etcd_kv *kv, void *userdata, sd_error *err) {
        struct latest_scan *ls = userdata;
        struct sd_etcd_key k;
        int r = classify(es, kv->key, kv->key_len, &k, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (k.kind != SD_ETCD_KEY_SECRET || strcmp(k.name, ls->name) != 0) {
                char shown[160];
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside the range of secret '%s'",
                                    endpoint_name(es), escape(kv->key, kv->key_len, shown, sizeof(shown)), ls->name);
        }
        if (k.version > ls->latest)
                ls->latest = k.version;
        if (ls->collect)
                return versions_push(&ls->versions, &ls->n, &ls->cap, k.version, err);
        return 0;
}

static int name_range(const struct etcd_store *es, const char *name, char **start, char **end) {
        /* "<name>/" .. "<name>0": '0' is the byte after '/'. */
        *start = str_printf("%s/secrets/%s/", es->prefix, name);
        *end = str_printf("%s/secrets/%s0", es->prefix, name);
        return *start && *end ? 0 : -ENOMEM;
}

/* Every version key of name (keys only), warning about foreign shapes. */
static int scan_name(struct etcd_store *es, const char *name, struct latest_scan *ls, sd_error *err) {
        _cleanup_free_ char *start = NULL, *end = NULL;
        if (name_range(es, name, &start, &end) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        ls->name = name;
        return range_each(es, start, end, true, KEYS_PAGE, "range versions", latest_scan_kv, ls, err);
}

/* The newest key of name: one range, DESCEND by key, limit 1.  Returns 1
 * with *found_out false when that key is not a version key of ours (the
 * caller then scans, which warns and skips it). */
static int newest_kv(struct etcd_store *es, const char *name, bool with_value, struct sd_etcd_range *rr,
                     struct sd_etcd_key *key_out, sd_error *err) {
        _cleanup_free_ char *start = NULL, *end = NULL;
        if (name_range(es, name, &start, &end) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct range_opts o = { .key = start, .key_len = strlen(start), .range_end = end, .limit = 1,
                                .keys_only = !with_value, .descend = true };
        int r = etcd_range(es, &o, "range latest version", rr, err);
        if (r < 0)
                return r;
        if (rr->n_kvs == 0)
                return 0;
        struct sd_etcd_key k;
        sd_error why = { 0 };
        r = sd_etcd_key_parse(es->prefix, rr->kvs[0].key, rr->kvs[0].key_len, &k, &why);
        if (r == -EPROTO) {
                *err = why;
                return r;
        }
        if (r < 0 || k.kind != SD_ETCD_KEY_SECRET || strcmp(k.name, name) != 0)
                return 2;
        *key_out = k;
        return 1;
}

static int etcd_latest(struct sd_store *s, const char *name, uint64_t *version_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct sd_etcd_key k;
        int r = newest_kv(es, name, false, &rr, &k, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': secret '%s'", s->url, name);
        if (r == 1) {
                *version_out = k.version;
                return 0;
        }
        uint64_t latest = 0;
        if (r == 2) {
                struct latest_scan ls = { 0 };
                r = scan_name(es, name, &ls, err);
                if (r < 0)
                        return sd_error_prefix(err, r, "store '%s': secret '%s'", s->url, name);
                latest = ls.latest;
        }
        if (latest == 0)
                return sd_error_set(err, ENOENT, "store '%s': no secret '%s'", s->url, name);
        *version_out = latest;
        return 0;
}

static int get_exact(struct etcd_store *es, const char *name, uint64_t version, char **data_out,
                     size_t *len_out, sd_error *err) {
        _cleanup_free_ char *key = version_key(es, name, version);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct range_opts o = { .key = key, .key_len = strlen(key) };
        int r = etcd_range(es, &o, "range version", &rr, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': secret '%s' version %" PRIu64, es->s->url, name,
                                       version);
        if (rr.n_kvs == 0)
                return sd_error_set(err, ENOENT, "store '%s': secret '%s' has no version %" PRIu64, es->s->url,
                                    name, version);
        if (rr.n_kvs != 1 || rr.kvs[0].key_len != strlen(key) || memcmp(rr.kvs[0].key, key, rr.kvs[0].key_len)) {
                char shown[160];
                return sd_error_set(err, EPROTO, "store '%s': etcd at %s answered key '%s' for '%s'", es->s->url,
                                    endpoint_name(es), escape(rr.kvs[0].key, rr.kvs[0].key_len, shown, sizeof(shown)),
                                    key);
        }
        /* An absent value is an empty one (the gateway omits empty bytes);
         * the envelope layer rejects it with a clear message. */
        char *data = rr.kvs[0].value ? steal_pointer(&rr.kvs[0].value) : strdup("");
        if (!data)
                return sd_error_set(err, ENOMEM, "out of memory");
        *data_out = data;
        *len_out = rr.kvs[0].value_len;
        return 0;
}

static int etcd_get(struct sd_store *s, const char *name, uint64_t version, char **data_out, size_t *len_out,
                    uint64_t *version_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        if (version == 0) {
                /* Latest and its value in one round trip. */
                _cleanup_range_ struct sd_etcd_range rr = { 0 };
                struct sd_etcd_key k;
                int r = newest_kv(es, name, true, &rr, &k, err);
                if (r < 0)
                        return sd_error_prefix(err, r, "store '%s': secret '%s'", s->url, name);
                if (r == 0)
                        return sd_error_set(err, ENOENT, "store '%s': no secret '%s'", s->url, name);
                if (r == 1) {
                        char *data = rr.kvs[0].value ? steal_pointer(&rr.kvs[0].value) : strdup("");
                        if (!data)
                                return sd_error_set(err, ENOMEM, "out of memory");
                        *data_out = data;
                        *len_out = rr.kvs[0].value_len;
                        *version_out = k.version;
                        return 0;
                }
                r = etcd_latest(s, name, &version, err);
                if (r < 0)
                        return r;
        }
        int r = get_exact(es, name, version, data_out, len_out, err);
        if (r < 0)
                return r;
        *version_out = version;
        return 0;
}

static int etcd_history(struct sd_store *s, const char *name, uint64_t **versions_out, size_t *n_out,
                        sd_error *err) {
        struct etcd_store *es = impl_of(s);
        struct latest_scan ls = { .collect = true };
        int r = scan_name(es, name, &ls, err);
        if (r < 0) {
                free(ls.versions);
                return sd_error_prefix(err, r, "store '%s': secret '%s'", s->url, name);
        }
        if (ls.n == 0) {
                free(ls.versions);
                return sd_error_set(err, ENOENT, "store '%s': no secret '%s'", s->url, name);
        }
        /* Keys come sorted and fixed-width, hence ascending already. */
        *versions_out = ls.versions;
        *n_out = ls.n;
        return 0;
}

struct name_list {
        struct sd_store_name *names;
        size_t n, cap;
};

static int name_list_kv(struct etcd_store *es, const struct sd_etcd_kv *kv, void *userdata, sd_error *err) {
        struct name_list *nl = userdata;
        struct sd_etcd_key k;
        int r = classify(es, kv->key, kv->key_len, &k, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (k.kind != SD_ETCD_KEY_SECRET) {
                char shown[160];
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside secrets/", endpoint_name(es),
                                    escape(kv->key, kv->key_len, shown, sizeof(shown)));
        }
        /* A name's keys are contiguous in key order. */
        if (nl->n > 0 && strcmp(nl->names[nl->n - 1].name, k.name) == 0) {
                if (k.version > nl->names[nl->n - 1].latest)
                        nl->names[nl->n - 1].latest = k.version;
                return 0;
        }
        if (nl->n == nl->cap) {
                size_t cap = nl->cap ? nl->cap * 2 : 32;
                struct sd_store_name *v = reallocarray(nl->names, cap, sizeof(*v));
                if (!v)
                        return sd_error_set(err, ENOMEM, "out of memory");
                nl->names = v;
                nl->cap = cap;
        }
        char *copy = strdup(k.name);
        if (!copy)
                return sd_error_set(err, ENOMEM, "out of memory");
        nl->names[nl->n++] = (struct sd_store_name) { .name = copy, .latest = k.version };
        return 0;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(((const struct sd_store_name *) a)->name, ((const struct sd_store_name *) b)->name);
}

static int etcd_list(struct sd_store *s, struct sd_store_name **out, size_t *n_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *start = str_printf("%s/secrets/", es->prefix);
        _cleanup_free_ char *end = str_printf("%s/secrets0", es->prefix);
        if (!start || !end)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct name_list nl = { 0 };
        int r = range_each(es, start, end, true, KEYS_PAGE, "range secrets", name_list_kv, &nl, err);
        if (r < 0) {
                sd_store_names_free(nl.names, nl.n);
                return sd_error_prefix(err, r, "store '%s'", s->url);
        }
        if (nl.n > 1)
                qsort(nl.names, nl.n, sizeof(*nl.names), cmp_names);
        *out = nl.names;
        *n_out = nl.n;
        return 0;
}

static int etcd_recipient_put(struct sd_store *s, const char *name, const char *data, size_t len,
                              sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *key = str_printf("%s/recipients/%s", es->prefix, name);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *req = json_pack("{s:o,s:o}", "key", b64_json_str(key), "value", b64_json(data, len));
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        int r = etcd_call(es, "/v3/kv/put", req, "put recipient", &body, &body_len, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': recipient '%s'", s->url, name);
        /* Only the shape is checked: a put reply carries just a header. */
        _cleanup_json_ json_t *root = NULL;
        r = load_object(body, body_len, "etcd put reply", &root, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': recipient '%s': etcd at %s", s->url, name,
                                       endpoint_name(es));
        return 0;
}

static int etcd_recipient_remove(struct sd_store *s, const char *name, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *key = str_printf("%s/recipients/%s", es->prefix, name);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *req = json_pack("{s:o}", "key", b64_json_str(key));
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        int r = etcd_call(es, "/v3/kv/deleterange", req, "delete recipient", &body, &body_len, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': recipient '%s'", s->url, name);
        int64_t deleted = 0;
        r = sd_etcd_parse_deleterange(body, body_len, &deleted, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': recipient '%s': etcd at %s", s->url, name,
                                       endpoint_name(es));
        if (deleted == 0)
                return sd_error_set(err, ENOENT, "store '%s': no recipient '%s'", s->url, name);
        return 0;
}

struct blob_list {
        struct sd_store_blob *blobs;
        size_t n, cap;
};

static int blob_list_kv(struct etcd_store *es, const struct sd_etcd_kv *kv, void *userdata, sd_error *err) {
        struct blob_list *bl = userdata;
        struct sd_etcd_key k;
        int r = classify(es, kv->key, kv->key_len, &k, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (k.kind != SD_ETCD_KEY_RECIPIENT) {
                char shown[160];
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside recipients/", endpoint_name(es),
                                    escape(kv->key, kv->key_len, shown, sizeof(shown)));
        }
        if (bl->n == bl->cap) {
                size_t cap = bl->cap ? bl->cap * 2 : 16;
                struct sd_store_blob *v = reallocarray(bl->blobs, cap, sizeof(*v));
                if (!v)
                        return sd_error_set(err, ENOMEM, "out of memory");
                bl->blobs = v;
                bl->cap = cap;
        }
        _cleanup_free_ char *name = strdup(k.name);
        _cleanup_free_ char *data = NULL;
        if (kv->value) {
                data = malloc(kv->value_len + 1);
                if (data) {
                        memcpy(data, kv->value, kv->value_len);
                        data[kv->value_len] = '\0';
                }
        } else {
                data = strdup("");
        }
        if (!name || !data)
                return sd_error_set(err, ENOMEM, "out of memory");
        bl->blobs[bl->n++] = (struct sd_store_blob) { .name = steal_pointer(&name), .data = steal_pointer(&data),
                                                      .len = kv->value ? kv->value_len : 0 };
        return 0;
}

static int cmp_blobs(const void *a, const void *b) {
        return strcmp(((const struct sd_store_blob *) a)->name, ((const struct sd_store_blob *) b)->name);
}

static int etcd_recipient_list(struct sd_store *s, struct sd_store_blob **out, size_t *n_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *start = str_printf("%s/recipients/", es->prefix);
        _cleanup_free_ char *end = str_printf("%s/recipients0", es->prefix);
        if (!start || !end)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct blob_list bl = { 0 };
        int r = range_each(es, start, end, false, VALUES_PAGE, "range recipients", blob_list_kv, &bl, err);
        if (r < 0) {
                sd_store_blobs_free(bl.blobs, bl.n);
                return sd_error_prefix(err, r, "store '%s'", s->url);
        }
        if (bl.n > 1)
                qsort(bl.blobs, bl.n, sizeof(*bl.blobs), cmp_blobs);
        *out = bl.blobs;
        *n_out = bl.n;
        return 0;
}

/* ---- the realm's areas: <prefix>/policy/<20 digits>, <prefix>/proposals/<20 digits> ---- */

static const char *area_dir_name(enum sd_store_area area) {
        return area == SD_STORE_AREA_POLICY ? "policy" : "proposals";
}

static const char *area_subject(enum sd_store_area area) {
        return area == SD_STORE_AREA_POLICY ? "policy" : "policy proposal";
}

static char *area_key(const struct etcd_store *es, enum sd_store_area area, uint64_t version) {
        return str_printf("%s/%s/%0*" PRIu64, es->prefix, area_dir_name(area), VERSION_DIGITS, version);
}

struct area_scan {
        enum sd_etcd_key_kind kind;
        uint64_t *versions;
        size_t n, cap;
};

static int area_scan_kv(struct etcd_store *es, const struct sd_etcd_kv *kv, void *userdata, sd_error *err) {
        struct area_scan *as = userdata;
        struct sd_etcd_key k;
        int r = classify(es, kv->key, kv->key_len, &k, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (k.kind != as->kind) {
                char shown[160];
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside the range asked", endpoint_name(es),
                                    escape(kv->key, kv->key_len, shown, sizeof(shown)));
        }
        return versions_push(&as->versions, &as->n, &as->cap, k.version, err);
}

static int etcd_area_list(struct sd_store *s, enum sd_store_area area, uint64_t **versions_out, size_t *n_out,
                          sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *start = str_printf("%s/%s/", es->prefix, area_dir_name(area));
        _cleanup_free_ char *end = str_printf("%s/%s0", es->prefix, area_dir_name(area));
        if (!start || !end)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct area_scan as = { .kind = area == SD_STORE_AREA_POLICY ? SD_ETCD_KEY_POLICY : SD_ETCD_KEY_PROPOSAL };
        int r = range_each(es, start, end, true, KEYS_PAGE, "range policy versions", area_scan_kv, &as, err);
        if (r < 0) {
                free(as.versions);
                return sd_error_prefix(err, r, "store '%s'", s->url);
        }
        /* Keys come sorted and fixed-width, hence ascending already. */
        *versions_out = as.versions;
        *n_out = as.n;
        return 0;
}

static int etcd_area_get(struct sd_store *s, enum sd_store_area area, uint64_t version, char **data_out,
                         size_t *len_out, uint64_t *version_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        if (version == 0) {
                _cleanup_free_ uint64_t *versions = NULL;
                size_t n = 0;
                int r = etcd_area_list(s, area, &versions, &n, err);
                if (r < 0)
                        return r;
                if (n == 0)
                        return sd_error_set(err, ENOENT, "store '%s': no %s", s->url, area_subject(area));
                version = versions[n - 1];
        }
        _cleanup_free_ char *key = area_key(es, area, version);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct range_opts o = { .key = key, .key_len = strlen(key) };
        int r = etcd_range(es, &o, "range policy version", &rr, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': %s v%" PRIu64, s->url, area_subject(area), version);
        if (rr.n_kvs == 0)
                return sd_error_set(err, ENOENT, "store '%s': no %s v%" PRIu64, s->url, area_subject(area), version);
        if (rr.n_kvs != 1 || rr.kvs[0].key_len != strlen(key) || memcmp(rr.kvs[0].key, key, rr.kvs[0].key_len)) {
                char shown[160];
                return sd_error_set(err, EPROTO, "store '%s': etcd at %s answered key '%s' for '%s'", s->url,
                                    endpoint_name(es), escape(rr.kvs[0].key, rr.kvs[0].key_len, shown, sizeof(shown)), key);
        }
        char *data = rr.kvs[0].value ? steal_pointer(&rr.kvs[0].value) : strdup("");
        if (!data)
                return sd_error_set(err, ENOMEM, "out of memory");
        *data_out = data;
        *len_out = rr.kvs[0].value_len;
        *version_out = version;
        return 0;
}

static int etcd_area_put(struct sd_store *s, enum sd_store_area area, uint64_t version, const char *data,
                         size_t len, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *key = area_key(es, area, version);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (area == SD_STORE_AREA_POLICY) {
                _cleanup_free_ char *prev = version > 1 ? area_key(es, area, version - 1) : NULL;
                if (version > 1 && !prev)
                        return sd_error_set(err, ENOMEM, "out of memory");
                bool succeeded = false;
                int r = txn_put_next(es, key, prev, "txn put policy version", data, len, &succeeded, err);
                if (r < 0)
                        return sd_error_prefix(err, r, "store '%s': policy v%" PRIu64, s->url, version);
                if (!succeeded)
                        return sd_error_set(err, EEXIST,
                                            "store '%s': policy version %" PRIu64
                                            ": conflict (another admin stored it first, or version %" PRIu64
                                            " does not exist)",
                                            s->url, version, version - 1);
                return 0;
        }
        _cleanup_json_ json_t *req = json_pack("{s:o,s:o}", "key", b64_json_str(key), "value", b64_json(data, len));
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        int r = etcd_call(es, "/v3/kv/put", req, "put policy proposal", &body, &body_len, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': policy proposal v%" PRIu64, s->url, version);
        _cleanup_json_ json_t *root = NULL;
        r = load_object(body, body_len, "etcd put reply", &root, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': etcd at %s", s->url, endpoint_name(es));
        return 0;
}

static int etcd_area_remove(struct sd_store *s, enum sd_store_area area, uint64_t version, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        _cleanup_free_ char *key = area_key(es, area, version);
        if (!key)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *req = json_pack("{s:o}", "key", b64_json_str(key));
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        int r = etcd_call(es, "/v3/kv/deleterange", req, "delete policy proposal", &body, &body_len, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': %s v%" PRIu64, s->url, area_subject(area), version);
        int64_t deleted = 0;
        r = sd_etcd_parse_deleterange(body, body_len, &deleted, err);
        if (r < 0)
                return sd_error_prefix(err, r, "store '%s': etcd at %s", s->url, endpoint_name(es));
        if (deleted == 0)
                return sd_error_set(err, ENOENT, "store '%s': no %s v%" PRIu64, s->url, area_subject(area), version);
        return 0;
}

/* ------------------------------------------------------------------------
 * Watch
 *
 * A thread runs POST /v3/watch over "<prefix>/" and turns events into
 * secret names in a queue, then signals an eventfd (the fd handed out).
 * It resumes after the last mod_revision seen, so a reconnect loses
 * nothing, on whichever member answers: revisions are cluster-wide, so the
 * stream resumes on another member where it stopped on the first.  After
 * a compaction (the stream is canceled with compact_revision) it cannot
 * know what it missed, so it reads the current revision, watches from
 * there, and asks watch_read to report every name (which the caller's
 * re-read then settles).  A failed member is left for the next one at
 * once; once every member has failed in a row, reconnects back off from
 * 100 ms to 5 s.  free() wakes the thread through stop_fd and joins it.
 * ---------------------------------------------------------------------- */

struct etcd_watch {
        struct etcd_store *es;  /* outlives the watch: etcd_free stops it first */
        int event_fd;           /* handed out; readable when there is news */
        int stop_fd;
        pthread_t thread;
        bool started;

        pthread_mutex_t lock;   /* guards the fields below */
        char **names;
        size_t n_names;
        bool resync;            /* report every name */
        char *warnings[WATCH_WARNINGS_MAX];
        size_t n_warnings;

        /* thread only */
        int64_t next_revision;
        bool failure_reported;  /* a "reconnecting" warning is out */
};

static void watch_signal(struct etcd_watch *w) {
        uint64_t one = 1;
        (void) !write(w->event_fd, &one, sizeof(one));
}

/* Queue a warning for watch_read to pass to the store's warn callback
 * (called from the caller's thread, never from ours). */
static void watch_warn(struct etcd_watch *w, const char *fmt, ...) SD_PRINTF(2, 3);
static void watch_warn(struct etcd_watch *w, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        {
                _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&w->lock);
                if (w->n_warnings < WATCH_WARNINGS_MAX) {
                        w->warnings[w->n_warnings++] = msg;
                        msg = NULL;
                }
        }
        free(msg);
        watch_signal(w);
}

static void watch_queue_name(struct etcd_watch *w, const char *name) {
        _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&w->lock);
        if (w->resync)
                return;
        for (size_t i = 0; i < w->n_names; i++)
                if (strcmp(w->names[i], name) == 0)
                        return;
        char **v = w->n_names < WATCH_PENDING_MAX ? reallocarray(w->names, w->n_names + 1, sizeof(*v)) : NULL;
        char *copy = v ? strdup(name) : NULL;
        if (v)
                w->names = v;
        if (!copy) {
                /* Too many or out of memory: report everything instead. */
                w->resync = true;
                return;
        }
        w->names[w->n_names++] = copy;
}

static void watch_request_resync(struct etcd_watch *w) {
        _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&w->lock);
        w->resync = true;
}

enum stream_end {
        STREAM_FAILED,         /* transport or protocol error: next member, back off, resume */
        STREAM_COMPACTED,      /* resume point compacted: re-read the revision, resync */
        STREAM_TOKEN,          /* the token expired or was revoked: authenticate, resume */
        STREAM_STOPPED,
};

struct watch_stream {
        struct etcd_watch *w;
        const char *endpoint;
        enum stream_end end;
        bool got_created;
        sd_error err;          /* why the stream ended, when a line ended it */
};

static int watch_line(void *userdata, const char *line, size_t len, const sd_error *broken, sd_error *err) {
        struct watch_stream *st = userdata;
        struct etcd_watch *w = st->w;
        (void) err;
        if (broken) {
                /* The events in it are lost: report every name. */
                watch_request_resync(w);
                watch_signal(w);
                if (broken->code == EBADMSG)
                        return 0;  /* the stream's end follows */
                (void) sd_error_set(&st->err, EPROTO, "etcd at %s: watch message over %zu bytes", st->endpoint,
                                    WATCH_LINE_MAX);
                return -EPROTO;
        }
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
                len--;
        if (len == 0)
                return 0;
        _cleanup_watch_msg_ struct sd_etcd_watch_msg m = { 0 };
        int r = sd_etcd_parse_watch(st->endpoint, line, len, &m, &st->err);
        if (r < 0) {
                if (r == -EPROTO && st->err.code == EPROTO && !strstr(st->err.message, "etcd at"))
                        (void) sd_error_prefix(&st->err, r, "etcd at %s", st->endpoint);
                /* A malformed message may have carried events. */
                watch_request_resync(w);
                watch_signal(w);
                return r;
        }
        if (m.kind == SD_ETCD_WATCH_CANCELED) {
                if (m.compact_revision > 0) {
                        st->end = STREAM_COMPACTED;
                        (void) sd_error_set(&st->err, ESTALE,
                                            "etcd at %s: watch from revision %" PRId64
                                            " canceled: compacted up to revision %" PRId64,
                                            st->endpoint, w->next_revision, m.compact_revision);
                } else if (m.cancel_fault == SD_ETCD_FAULT_TOKEN) {
                        st->end = STREAM_TOKEN;
                        (void) sd_error_set(&st->err, EACCES, "etcd at %s: watch canceled: %s", st->endpoint,
                                            m.cancel_reason);
                } else if (m.cancel_fault == SD_ETCD_FAULT_PERMISSION) {
                        const sd_error why = { EACCES, "" };
                        (void) access_error(w->es, current_endpoint(w->es), "watch", SD_ETCD_FAULT_PERMISSION, &why,
                                            &st->err);
                } else {
                        (void) sd_error_set(&st->err, ECANCELED, "etcd at %s: watch canceled: %s", st->endpoint,
                                            m.cancel_reason[0] ? m.cancel_reason : "no reason given");
                }
                return -ECANCELED;
        }
        if (m.kind == SD_ETCD_WATCH_CREATED) {
                st->got_created = true;
                if (w->failure_reported) {
                        watch_warn(w, "etcd watch at %s restored (from revision %" PRId64 ")", st->endpoint,
                                   w->next_revision);
                        w->failure_reported = false;
                }
                return 0;
        }
        bool any = false;
        for (size_t i = 0; i < m.n_events; i++) {
                const struct sd_etcd_watch_event *e = &m.events[i];
                if (e->mod_revision >= w->next_revision && e->mod_revision < INT64_MAX)
                        w->next_revision = e->mod_revision + 1;
                struct sd_etcd_key k;
                sd_error why = { 0 };
                if (sd_etcd_key_parse(w->es->prefix, e->key, e->key_len, &k, &why) < 0) {
                        watch_warn(w, "watch: %s; skipped", why.message);
                        continue;
                }
                if (k.kind == SD_ETCD_KEY_SECRET) {
                        watch_queue_name(w, k.name);
                        any = true;
                } else if (k.kind == SD_ETCD_KEY_POLICY) {
                        watch_queue_name(w, SD_STORE_POLICY_NAME);
                        any = true;
                }
        }
        if (any)
                watch_signal(w);
        return 0;
}

/* One stream on member idx, from w->next_revision. */
static enum stream_end watch_stream_once(struct etcd_watch *w, size_t idx, bool *created_out, sd_error *err) {
        struct etcd_store *es = w->es;
        const struct etcd_endpoint *ep = &es->ep[idx];
        _cleanup_free_ char *key = str_printf("%s/", es->prefix);
        _cleanup_free_ char *end = str_printf("%s0", es->prefix);
        if (!key || !end) {
                (void) sd_error_set(err, ENOMEM, "out of memory");
                return STREAM_FAILED;
        }
        _cleanup_json_ json_t *req = json_pack("{s:{s:o,s:o,s:I}}", "create_request", "key", b64_json_str(key),
                                               "range_end", b64_json_str(end), "start_revision",
                                               (json_int_t) w->next_revision);
        _cleanup_free_ char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body) {
                (void) sd_error_set(err, ENOMEM, "out of memory");
                return STREAM_FAILED;
        }
        _cleanup_free_ char *token = NULL;
        int r = token_for(es, idx, &token, err);
        if (r < 0)
                return STREAM_FAILED;

        struct watch_stream st = { .w = w, .endpoint = ep->name, .end = STREAM_FAILED };
        const struct sd_http_stream_handler h = { .line = watch_line, .userdata = &st };
        const struct sd_http_request rq = { .method = "POST", .base = ep->base_url, .path = "/v3/watch",
                                            .what = "watch", .body = body, .body_len = strlen(body),
                                            .authorization = token, .timeout_ms = REQUEST_TIMEOUT_MS,
                                            .peer = ep->peer };
        _cleanup_http_reply_ struct sd_http_reply refused = { 0 };
        r = sd_http_stream(es->http, &rq, WATCH_LINE_MAX, &h, w->stop_fd, &refused, err);
        *created_out = st.got_created;
        if (r == 0)
                return STREAM_STOPPED;
        if (st.err.code != 0) {
                *err = st.err;
                if (st.end == STREAM_TOKEN)
                        token_invalidate(es, token);
                return st.end;
        }
        if (r == -EPROTO && refused.status != 0) {
                enum sd_etcd_fault f = SD_ETCD_FAULT_NONE;
                sd_error why = { 0 };
                (void) sd_etcd_error_from_body(ep->name, "watch", refused.status, refused.body, refused.len, &f, &why);
                if (f == SD_ETCD_FAULT_TOKEN) {
                        token_invalidate(es, token);
                        *err = why;
                        return STREAM_TOKEN;
                }
                (void) access_error(es, idx, "watch", f, &why, err);
        }
        return STREAM_FAILED;
}

static bool wait_stop(struct etcd_watch *w, int ms) {
        struct pollfd p = { .fd = w->stop_fd, .events = POLLIN };
        return poll(&p, 1, ms) > 0;
}

/* The current revision of the prefix (a count-only range). */
static int current_revision(struct etcd_store *es, int64_t *out, sd_error *err);

static void *watch_thread(void *userdata) {
        struct etcd_watch *w = userdata;
        struct etcd_store *es = w->es;
        sd_error err = { 0 };
        int backoff = BACKOFF_MIN_MS;
        size_t failures_in_a_row = 0;
        int token_retries = 0;
        for (;;) {
                sd_error_clear(&err);
                size_t idx = current_endpoint(es);
                if (w->next_revision == 0) {
                        /* No resume point (compacted, or etcd was down when
                         * the watch began): start from now and report every
                         * name, since what changed before is unknown. */
                        int64_t rev = 0;
                        if (current_revision(es, &rev, &err) == 0) {
                                w->next_revision = rev + 1;
                                watch_request_resync(w);
                                watch_signal(w);
                                continue;
                        }
                        failures_in_a_row = es->n_ep;  /* etcd_call tried every member */
                } else {
                        bool created = false;
                        enum stream_end end = watch_stream_once(w, idx, &created, &err);
                        if (end == STREAM_STOPPED)
                                break;
                        if (created) {
                                backoff = BACKOFF_MIN_MS;
                                failures_in_a_row = 0;
                        }
                        if (end == STREAM_COMPACTED) {
                                watch_warn(w, "%s; reporting every secret and watching from the current revision",
                                           err.message);
                                w->next_revision = 0;
                                continue;
                        }
                        if (end == STREAM_TOKEN && token_retries++ < 2)
                                continue;  /* authenticate again at once */
                        if (created)
                                token_retries = 0;
                        failures_in_a_row++;
                        if (fails_over(-err.code) && es->n_ep > 1) {
                                note_failover(es, idx);
                                watch_warn(w, "%s; resuming from revision %" PRId64 " on %s", err.message,
                                           w->next_revision, es->ep[current_endpoint(es)].name);
                        }
                }
                if (failures_in_a_row < es->n_ep)
                        continue;
                if (!w->failure_reported) {
                        watch_warn(w, "%s; reconnecting", err.message);
                        w->failure_reported = true;
                }
                if (wait_stop(w, backoff))
                        break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                failures_in_a_row = 0;
        }
        return NULL;
}

static void watch_stop(struct etcd_watch *w) {
        if (!w)
                return;
        if (w->started) {
                uint64_t one = 1;
                (void) !write(w->stop_fd, &one, sizeof(one));
                (void) pthread_join(w->thread, NULL);
        }
        if (w->event_fd >= 0)
                (void) close(w->event_fd);
        if (w->stop_fd >= 0)
                (void) close(w->stop_fd);
        for (size_t i = 0; i < w->n_names; i++)
                free(w->names[i]);
        free(w->names);
        for (size_t i = 0; i < w->n_warnings; i++)
                free(w->warnings[i]);
        (void) pthread_mutex_destroy(&w->lock);
        free(w);
}

static inline void watch_stopp(struct etcd_watch **w) {
        watch_stop(*w);
}

static int current_revision(struct etcd_store *es, int64_t *out, sd_error *err) {
        _cleanup_free_ char *key = str_printf("%s/", es->prefix);
        _cleanup_free_ char *end = str_printf("%s0", es->prefix);
        if (!key || !end)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct range_opts o = { .key = key, .key_len = strlen(key), .range_end = end, .count_only = true };
        int r = etcd_range(es, &o, "range revision", &rr, err);
        if (r < 0)
                return r;
        *out = rr.revision;
        return 0;
}

static int etcd_watch_fd(struct sd_store *s, int *fd_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        if (es->watch) {
                *fd_out = es->watch->event_fd;
                return 0;
        }
        /* Start after what the caller can read now: it re-reads after
         * getting the fd, and every later change is an event. */
        int64_t rev = 0;
        sd_error why = { 0 };
        int r = current_revision(es, &rev, &why);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "store '%s': watch: out of memory", s->url);
        /* etcd down now must not mean "never watched": the thread finds
         * the revision once etcd answers and then reports every name. */
        if (r < 0)
                sd_store_warnf(s, "watch: %s; watching once etcd answers", why.message);

        _cleanup_(watch_stopp) struct etcd_watch *w = calloc(1, sizeof(*w));
        if (!w)
                return sd_error_set(err, ENOMEM, "out of memory");
        w->event_fd = w->stop_fd = -1;
        (void) pthread_mutex_init(&w->lock, NULL);
        w->es = es;
        w->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->event_fd < 0 || w->stop_fd < 0)
                return sd_error_set_errno(err, errno, "store '%s': watch: eventfd", s->url);
        w->next_revision = r < 0 ? 0 : rev + 1;

        /* Signals stay with the caller's threads. */
        sigset_t all, old;
        sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&w->thread, NULL, watch_thread, w);
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0)
                return sd_error_set_errno(err, r, "store '%s': watch: starting the thread", s->url);
        w->started = true;
        es->watch = steal_pointer(&w);
        *fd_out = es->watch->event_fd;
        return 0;
}

static int etcd_watch_read(struct sd_store *s, sd_store_change_fn fn, void *userdata, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        struct etcd_watch *w = es->watch;
        if (!w)
                return sd_error_set(err, EINVAL, "store '%s': watch_read before watch_fd", s->url);
        uint64_t count;
        (void) !read(w->event_fd, &count, sizeof(count));

        char **names = NULL, *warnings[WATCH_WARNINGS_MAX];
        size_t n_names = 0, n_warnings = 0;
        bool resync = false;
        {
                _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&w->lock);
                names = steal_pointer(&w->names);
                n_names = w->n_names;
                w->n_names = 0;
                n_warnings = w->n_warnings;
                memcpy(warnings, w->warnings, n_warnings * sizeof(*warnings));
                w->n_warnings = 0;
                resync = w->resync;
                w->resync = false;
        }
        for (size_t i = 0; i < n_warnings; i++) {
                sd_store_warnf(s, "%s", warnings[i]);
                free(warnings[i]);
        }
        int r = 0;
        if (resync) {
                struct sd_store_name *all = NULL;
                size_t n_all = 0;
                r = etcd_list(s, &all, &n_all, err);
                if (r < 0) {
                        /* Try again at the next read. */
                        watch_request_resync(w);
                        watch_signal(w);
                } else {
                        for (size_t i = 0; i < n_all; i++)
                                fn(userdata, all[i].name);
                        sd_store_names_free(all, n_all);
                        fn(userdata, SD_STORE_POLICY_NAME);
                }
        }
        for (size_t i = 0; i < n_names; i++) {
                if (r == 0 && !resync)
                        fn(userdata, names[i]);
                free(names[i]);
        }
        free(names);
        return r;
}

const struct sd_store_backend sd_store_etcd_backend = {
        .open = etcd_open,
        .free = etcd_free,
        .put = etcd_put,
        .get = etcd_get,
        .latest = etcd_latest,
        .list = etcd_list,
        .history = etcd_history,
        .recipient_put = etcd_recipient_put,
        .recipient_remove = etcd_recipient_remove,
        .recipient_list = etcd_recipient_list,
        .area_put = etcd_area_put,
        .area_get = etcd_area_get,
        .area_list = etcd_area_list,
        .area_remove = etcd_area_remove,
        .watch_fd = etcd_watch_fd,
        .watch_read = etcd_watch_read,
        .health = etcd_health,
};
