/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The etcd store backend (etcd://host:port/prefix), over etcd's v3 JSON
 * gateway (POST /v3/kv/range|put|txn|deleterange, streaming /v3/watch).
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
 * One libcurl easy handle per store, reused under a mutex (the agent calls
 * the store from several plugin threads); the watch runs in its own thread
 * with its own handle and reports through an eventfd.  Layout, the CAS
 * argument and recorded gateway behaviour: docs/store.md.
 */
#include <curl/curl.h>
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "config.h"
#include "secretd/cleanup.h"
#include "secretd/docker.h"
#include "secretd/envelope.h"
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

static inline void sd_curl_easy_cleanupp(CURL **h) {
        if (*h)
                curl_easy_cleanup(*h);
}
#define _cleanup_curl_ _cleanup_(sd_curl_easy_cleanupp)

static inline void sd_curl_slist_freep(struct curl_slist **l) {
        if (*l)
                curl_slist_free_all(*l);
}
#define _cleanup_slist_ _cleanup_(sd_curl_slist_freep)

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
 * Pure parsers
 * ---------------------------------------------------------------------- */

static int get_object(json_t *parent, const char *field, bool required, const char *where, json_t **out,
                      sd_error *err) {
        json_t *v = json_object_get(parent, field);
        if (!v || json_is_null(v)) {
                if (required)
                        return sd_error_set(err, EPROTO, "%s: no '%s'", where, field);
                *out = NULL;
                return 0;
        }
        if (!json_is_object(v))
                return sd_error_set(err, EPROTO, "%s: '%s' is not an object", where, field);
        *out = v;
        return 0;
}

/* The gateway writes int64 as a JSON string ("42") and omits zero; older
 * and hand-written peers send numbers.  Both are accepted, nothing else:
 * no sign, no blanks, no fraction, no overflow. */
static int get_int64(json_t *obj, const char *field, const char *where, int64_t *out, sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!v || json_is_null(v)) {
                *out = 0;
                return 0;
        }
        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n < 0)
                        return sd_error_set(err, EPROTO, "%s: '%s' is negative", where, field);
                *out = (int64_t) n;
                return 0;
        }
        if (!json_is_string(v))
                return sd_error_set(err, EPROTO, "%s: '%s' is neither an integer nor a string", where, field);
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 19)
                return sd_error_set(err, EPROTO, "%s: '%s' is not an int64 (%zu characters)", where, field,
                                    len);
        int64_t n = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9') {
                        char shown[64];
                        return sd_error_set(err, EPROTO, "%s: '%s' is not an integer: '%s'", where, field,
                                            escape(s, len, shown, sizeof(shown)));
                }
                int d = s[i] - '0';
                if (n > (INT64_MAX - d) / 10)
                        return sd_error_set(err, EPROTO, "%s: '%s' overflows int64", where, field);
                n = n * 10 + d;
        }
        *out = n;
        return 0;
}

static int get_bool(json_t *obj, const char *field, const char *where, bool *out, sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!v || json_is_null(v)) {
                *out = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return sd_error_set(err, EPROTO, "%s: '%s' is not a boolean", where, field);
        *out = json_is_true(v);
        return 0;
}

/* Decode a base64 byte field into a malloc()ed NUL-terminated buffer. */
static int get_bytes(json_t *v, const char *where, const char *field, size_t max, bool allow_nul, char **out,
                     size_t *len_out, sd_error *err) {
        if (!json_is_string(v))
                return sd_error_set(err, EPROTO, "%s: '%s' is not a string", where, field);
        const char *text = json_string_value(v);
        size_t text_len = json_string_length(v);
        size_t cap = text_len / 4 * 3;
        if (cap > max + 2)
                return sd_error_set(err, EPROTO, "%s: '%s' decodes to more than %zu bytes", where, field, max);
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return sd_error_set(err, ENOMEM, "out of memory");
        long n = sd_b64_decode(text, text_len, buf, cap, SD_B64_STD);
        if (n < 0)
                return sd_error_set(err, EPROTO, "%s: '%s' is not valid padded base64", where, field);
        if ((size_t) n > max)
                return sd_error_set(err, EPROTO, "%s: '%s' decodes to more than %zu bytes", where, field, max);
        if (!allow_nul && memchr(buf, '\0', (size_t) n))
                return sd_error_set(err, EPROTO, "%s: '%s' contains a NUL byte", where, field);
        buf[n] = '\0';
        *out = steal_pointer(&buf);
        *len_out = (size_t) n;
        return 0;
}

static int load_object(const char *body, size_t len, const char *what, json_t **out, sd_error *err) {
        json_error_t jerr;
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char shown[160];
                return sd_error_set(err, EPROTO, "%s is not JSON: %s (at byte %d)", what,
                                    sd_escape_json_error(&jerr, shown, sizeof(shown)), jerr.position);
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return sd_error_set(err, EPROTO, "%s is not a JSON object", what);
        }
        *out = root;
        return 0;
}

static int get_header_revision(json_t *root, bool required, const char *what, int64_t *out, sd_error *err) {
        json_t *header = NULL;
        int r = get_object(root, "header", required, what, &header, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        if (header) {
                char where[96];
                (void) snprintf(where, sizeof(where), "%s header", what);
                r = get_int64(header, "revision", where, &rev, err);
                if (r < 0)
                        return r;
        }
        if (required && rev <= 0)
                return sd_error_set(err, EPROTO, "%s: header has no revision", what);
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
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, "etcd range reply", &root, err);
        if (r < 0)
                return r;
        _cleanup_range_ struct sd_etcd_range res = { 0 };
        r = get_header_revision(root, true, "etcd range reply", &res.revision, err);
        if (r < 0)
                return r;
        r = get_bool(root, "more", "etcd range reply", &res.more, err);
        if (r < 0)
                return r;
        r = get_int64(root, "count", "etcd range reply", &res.count, err);
        if (r < 0)
                return r;

        json_t *kvs = json_object_get(root, "kvs");
        if (kvs && !json_is_null(kvs)) {
                if (!json_is_array(kvs))
                        return sd_error_set(err, EPROTO, "etcd range reply: 'kvs' is not an array");
                size_t n = json_array_size(kvs);
                if (n > 0) {
                        res.kvs = calloc(n, sizeof(*res.kvs));
                        if (!res.kvs)
                                return sd_error_set(err, ENOMEM, "out of memory");
                }
                for (size_t i = 0; i < n; i++) {
                        char where[64];
                        (void) snprintf(where, sizeof(where), "etcd range reply kvs[%zu]", i);
                        json_t *kv = json_array_get(kvs, i);
                        if (!json_is_object(kv))
                                return sd_error_set(err, EPROTO, "%s is not an object", where);
                        struct sd_etcd_kv *e = &res.kvs[res.n_kvs++];
                        json_t *key = json_object_get(kv, "key");
                        if (!key)
                                return sd_error_set(err, EPROTO, "%s has no key", where);
                        r = get_bytes(key, where, "key", SD_ETCD_KEY_MAX, false, &e->key, &e->key_len, err);
                        if (r < 0)
                                return r;
                        if (e->key_len == 0)
                                return sd_error_set(err, EPROTO, "%s: empty key", where);
                        json_t *value = json_object_get(kv, "value");
                        if (value) {
                                r = get_bytes(value, where, "value", max_value, true, &e->value, &e->value_len,
                                              err);
                                if (r < 0)
                                        return r;
                        }
                        r = get_int64(kv, "create_revision", where, &e->create_revision, err);
                        if (r < 0)
                                return r;
                        r = get_int64(kv, "mod_revision", where, &e->mod_revision, err);
                        if (r < 0)
                                return r;
                }
        }
        *out = res;
        res = (struct sd_etcd_range) { 0 };
        return 0;
}

int sd_etcd_parse_txn(const char *body, size_t len, bool *succeeded_out, int64_t *revision_out,
                      sd_error *err) {
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, "etcd txn reply", &root, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        r = get_header_revision(root, true, "etcd txn reply", &rev, err);
        if (r < 0)
                return r;
        bool ok = false;
        r = get_bool(root, "succeeded", "etcd txn reply", &ok, err);
        if (r < 0)
                return r;
        json_t *responses = json_object_get(root, "responses");
        if (responses && !json_is_null(responses) && !json_is_array(responses))
                return sd_error_set(err, EPROTO, "etcd txn reply: 'responses' is not an array");
        /* A success with no response to our one put is not what etcd does. */
        if (ok && json_array_size(responses) != 1)
                return sd_error_set(err, EPROTO, "etcd txn reply: succeeded with %zu responses, expected 1",
                                    json_array_size(responses));
        *succeeded_out = ok;
        if (revision_out)
                *revision_out = rev;
        return 0;
}

int sd_etcd_parse_deleterange(const char *body, size_t len, int64_t *deleted_out, sd_error *err) {
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(body, len, "etcd deleterange reply", &root, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        r = get_header_revision(root, true, "etcd deleterange reply", &rev, err);
        if (r < 0)
                return r;
        int64_t deleted = 0;
        r = get_int64(root, "deleted", "etcd deleterange reply", &deleted, err);
        if (r < 0)
                return r;
        *deleted_out = deleted;
        return 0;
}

static int map_grpc_code(int64_t code, const char *message) {
        if (message && strstr(message, "request is too large"))
                return EFBIG;
        switch (code) {
        case 3: return EPROTO;          /* InvalidArgument */
        case 4: return ETIMEDOUT;       /* DeadlineExceeded */
        case 7: return EACCES;          /* PermissionDenied */
        case 8: return ENOSPC;          /* ResourceExhausted: the backend quota */
        case 11: return ESTALE;         /* OutOfRange: revision compacted */
        case 14: return EAGAIN;         /* Unavailable: no leader, shutting down */
        case 16: return EACCES;         /* Unauthenticated */
        default: return EPROTO;
        }
}

int sd_etcd_error_from_body(const char *endpoint, const char *what, long http_status, const char *body,
                            size_t len, sd_error *err) {
        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        char shown[160];
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
        int e = map_grpc_code(c, m);
        if (e == EFBIG)
                return sd_error_set(err, EFBIG,
                                    "etcd at %s: %s: refused as too large ('%s'; etcd accepts requests up to "
                                    "--max-request-bytes, 1.5 MiB by default)",
                                    endpoint, what, shown);
        return sd_error_set(err, e, "etcd at %s: %s: %s (code %" PRId64 ", HTTP %ld)", endpoint, what, shown, c,
                            http_status);
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
        _cleanup_json_ json_t *root = NULL;
        int r = load_object(line, len, "etcd watch message", &root, err);
        if (r < 0)
                return r;
        if (json_object_get(root, "error"))
                return sd_etcd_error_from_body(endpoint, "watch", 200, line, len, err);

        json_t *result = NULL;
        r = get_object(root, "result", true, "etcd watch message", &result, err);
        if (r < 0)
                return r;
        _cleanup_watch_msg_ struct sd_etcd_watch_msg m = { 0 };
        r = get_header_revision(result, false, "etcd watch message", &m.revision, err);
        if (r < 0)
                return r;
        bool created = false, canceled = false;
        r = get_bool(result, "created", "etcd watch message", &created, err);
        if (r < 0)
                return r;
        r = get_bool(result, "canceled", "etcd watch message", &canceled, err);
        if (r < 0)
                return r;
        r = get_int64(result, "compact_revision", "etcd watch message", &m.compact_revision, err);
        if (r < 0)
                return r;
        json_t *reason = json_object_get(result, "cancel_reason");
        if (reason && !json_is_null(reason)) {
                if (!json_is_string(reason))
                        return sd_error_set(err, EPROTO, "etcd watch message: 'cancel_reason' is not a string");
                escape(json_string_value(reason), json_string_length(reason), m.cancel_reason,
                       sizeof(m.cancel_reason));
        }
        m.kind = canceled ? SD_ETCD_WATCH_CANCELED : created ? SD_ETCD_WATCH_CREATED : SD_ETCD_WATCH_EVENTS;

        json_t *events = json_object_get(result, "events");
        if (events && !json_is_null(events)) {
                if (!json_is_array(events))
                        return sd_error_set(err, EPROTO, "etcd watch message: 'events' is not an array");
                size_t n = json_array_size(events);
                if (n > 0) {
                        m.events = calloc(n, sizeof(*m.events));
                        if (!m.events)
                                return sd_error_set(err, ENOMEM, "out of memory");
                }
                for (size_t i = 0; i < n; i++) {
                        char where[64];
                        (void) snprintf(where, sizeof(where), "etcd watch message events[%zu]", i);
                        json_t *ev = json_array_get(events, i);
                        if (!json_is_object(ev))
                                return sd_error_set(err, EPROTO, "%s is not an object", where);
                        struct sd_etcd_watch_event *e = &m.events[m.n_events++];
                        json_t *type = json_object_get(ev, "type");
                        /* PUT is the zero value, hence usually absent. */
                        if (type && !json_is_null(type)) {
                                if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
                                        e->is_delete = true;
                                else if (!json_is_string(type) || strcmp(json_string_value(type), "PUT") != 0)
                                        return sd_error_set(err, EPROTO, "%s: unknown type", where);
                        }
                        json_t *kv = NULL;
                        r = get_object(ev, "kv", true, where, &kv, err);
                        if (r < 0)
                                return r;
                        json_t *key = json_object_get(kv, "key");
                        if (!key)
                                return sd_error_set(err, EPROTO, "%s has no key", where);
                        r = get_bytes(key, where, "key", SD_ETCD_KEY_MAX, false, &e->key, &e->key_len, err);
                        if (r < 0)
                                return r;
                        if (e->key_len == 0)
                                return sd_error_set(err, EPROTO, "%s: empty key", where);
                        r = get_int64(kv, "mod_revision", where, &e->mod_revision, err);
                        if (r < 0)
                                return r;
                }
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

int sd_etcd_url_parse(const char *rest, char **endpoint_out, char **prefix_out, sd_error *err) {
        char shown[256];
        escape(rest, strlen(rest), shown, sizeof(shown));
        const char *slash = strchr(rest, '/');
        size_t auth_len = slash ? (size_t) (slash - rest) : strlen(rest);
        if (memchr(rest, '@', auth_len))
                /* Not echoed: what precedes '@' is likely a password. */
                return sd_error_set(err, EINVAL,
                                    "etcd store URL: credentials do not belong in a URL (it shows in argv and "
                                    "logs)");
        if (strpbrk(rest, "?#"))
                return sd_error_set(err, EINVAL, "store URL 'etcd://%s': a query or fragment is not supported",
                                    shown);
        if (!slash)
                return sd_error_set(err, EINVAL,
                                    "store URL 'etcd://%s' has no key prefix; expected etcd://host:port/prefix",
                                    shown);

        /* host: a DNS name or IPv4 literal, or an [IPv6] literal. */
        size_t host_len = 0;
        if (auth_len > 0 && rest[0] == '[') {
                const char *close = memchr(rest, ']', auth_len);
                if (!close)
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': unterminated [IPv6] host", shown);
                host_len = (size_t) (close - rest) + 1;
                for (size_t i = 1; i + 1 < host_len; i++)
                        if (!strchr("0123456789abcdefABCDEF:.", rest[i]))
                                return sd_error_set(err, EINVAL, "store URL 'etcd://%s': bad IPv6 host", shown);
                if (host_len == 2)
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': empty host", shown);
        } else {
                while (host_len < auth_len && is_host_char(rest[host_len]))
                        host_len++;
                if (host_len == 0)
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': no host", shown);
        }
        const char *port = DEFAULT_PORT;
        size_t port_len = strlen(DEFAULT_PORT);
        if (host_len < auth_len) {
                if (rest[host_len] != ':')
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': bad character in the host",
                                            shown);
                port = rest + host_len + 1;
                port_len = auth_len - host_len - 1;
                unsigned long p = 0;
                if (port_len == 0 || port_len > 5)
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': bad port", shown);
                for (size_t i = 0; i < port_len; i++) {
                        if (port[i] < '0' || port[i] > '9')
                                return sd_error_set(err, EINVAL, "store URL 'etcd://%s': bad port", shown);
                        p = p * 10 + (unsigned long) (port[i] - '0');
                }
                if (p == 0 || p > 65535)
                        return sd_error_set(err, EINVAL, "store URL 'etcd://%s': port out of range", shown);
        }

        /* prefix: segments of [A-Za-z0-9._-] joined by single '/'; trailing
         * slashes dropped so "p/" and "p" name the same keys. */
        const char *path = slash + 1;
        size_t path_len = strlen(path);
        while (path_len > 0 && path[path_len - 1] == '/')
                path_len--;
        if (path_len == 0)
                return sd_error_set(err, EINVAL,
                                    "store URL 'etcd://%s' has an empty key prefix; expected etcd://host:port/prefix",
                                    shown);
        if (path_len > SD_ETCD_PREFIX_MAX)
                return sd_error_set(err, EINVAL, "store URL 'etcd://%s': the prefix is over %d bytes", shown,
                                    SD_ETCD_PREFIX_MAX);
        size_t seg_start = 0;
        for (size_t i = 0; i <= path_len; i++) {
                if (i == path_len || path[i] == '/') {
                        size_t seg = i - seg_start;
                        if (seg == 0 || (seg == 1 && path[seg_start] == '.') ||
                            (seg == 2 && path[seg_start] == '.' && path[seg_start + 1] == '.'))
                                return sd_error_set(err, EINVAL,
                                                    "store URL 'etcd://%s': empty, '.' or '..' component in the prefix",
                                                    shown);
                        seg_start = i + 1;
                } else if (!is_prefix_char(path[i])) {
                        return sd_error_set(err, EINVAL,
                                            "store URL 'etcd://%s': the prefix may hold only letters, digits, '.', "
                                            "'-', '_' and '/'",
                                            shown);
                }
        }

        _cleanup_free_ char *endpoint = str_printf("%.*s:%.*s", (int) host_len, rest, (int) port_len, port);
        _cleanup_free_ char *prefix = strndup(path, path_len);
        if (!endpoint || !prefix)
                return sd_error_set(err, ENOMEM, "out of memory");
        *endpoint_out = steal_pointer(&endpoint);
        *prefix_out = steal_pointer(&prefix);
        return 0;
}

/* ------------------------------------------------------------------------
 * HTTP
 * ---------------------------------------------------------------------- */

struct reply_buf {
        char *data;
        size_t len, cap, max;
        bool too_big;
        bool no_memory;
};

static size_t reply_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct reply_buf *b = userdata;
        size_t n = size * nmemb;
        if (n > b->max - b->len) {
                b->too_big = true;
                return 0;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *d = realloc(b->data, cap);
                if (!d) {
                        b->no_memory = true;
                        return 0;
                }
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static int transport_error(const char *endpoint, const char *what, CURLcode rc, const char *errbuf,
                           const struct reply_buf *b, sd_error *err) {
        const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
        if (b && b->too_big)
                return sd_error_set(err, EPROTO, "etcd at %s: %s: reply over %zu bytes", endpoint, what, b->max);
        if (b && b->no_memory)
                return sd_error_set(err, ENOMEM, "etcd at %s: %s: out of memory", endpoint, what);
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
                return sd_error_set(err, ECONNREFUSED, "etcd at %s is unreachable: %s", endpoint, why);
        case CURLE_COULDNT_RESOLVE_HOST:
                return sd_error_set(err, EHOSTUNREACH, "etcd at %s is unreachable: %s", endpoint, why);
        case CURLE_OPERATION_TIMEDOUT:
                return sd_error_set(err, ETIMEDOUT, "etcd at %s did not answer (%s): %s", endpoint, what, why);
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                return sd_error_set(err, ECONNRESET, "etcd at %s: %s: connection lost: %s", endpoint, what, why);
        default:
                return sd_error_set(err, EIO, "etcd at %s: %s: %s", endpoint, what, why);
        }
}

#define SETOPT(h, opt, val)                                                                   \
        do {                                                                                  \
                CURLcode _rc = curl_easy_setopt((h), (opt), (val));                          \
                if (_rc != CURLE_OK)                                                          \
                        return sd_error_set(err, EIO, "etcd: setting " #opt ": %s",          \
                                            curl_easy_strerror(_rc));                         \
        } while (0)

/* Options every handle of ours carries, unary or streaming. */
static int easy_setup(CURL *h, char *errbuf, sd_error *err) {
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(h, CURLOPT_PROTOCOLS_STR, "http");
#endif
        /* An http_proxy in the environment must not route the store. */
        SETOPT(h, CURLOPT_PROXY, "");
        SETOPT(h, CURLOPT_NOSIGNAL, 1L);
        SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        SETOPT(h, CURLOPT_USERAGENT, "secretd/" SECRETD_VERSION);
        SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(h, CURLOPT_TCP_KEEPIDLE, 10L);
        SETOPT(h, CURLOPT_TCP_KEEPINTVL, 5L);
        return 0;
}

/* Prepare h for one POST of body to url. */
static int easy_prepare(CURL *h, const char *url, const char *body, struct curl_slist *headers,
                        curl_write_callback write_fn, void *write_data, long timeout_ms, sd_error *err) {
        SETOPT(h, CURLOPT_URL, url);
        SETOPT(h, CURLOPT_POST, 1L);
        SETOPT(h, CURLOPT_POSTFIELDS, body);
        SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
        SETOPT(h, CURLOPT_HTTPHEADER, headers);
        SETOPT(h, CURLOPT_WRITEFUNCTION, write_fn);
        SETOPT(h, CURLOPT_WRITEDATA, write_data);
        SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        return 0;
}

/* ------------------------------------------------------------------------
 * The store
 * ---------------------------------------------------------------------- */

struct etcd_watch;

struct etcd_store {
        struct sd_store *s;   /* for warnings; valid as long as the store */
        char *endpoint;       /* host:port, for messages */
        char *base_url;       /* http://host:port */
        char *prefix;         /* normalised, no trailing '/' */

        pthread_mutex_t lock; /* guards easy: the agent's plugin threads share the store */
        CURL *easy;
        struct curl_slist *headers;
        char errbuf[CURL_ERROR_SIZE];

        struct etcd_watch *watch;
};

static struct etcd_store *impl_of(struct sd_store *s) {
        return s->impl;
}

static json_t *b64_json(const char *bytes, size_t len) {
        _cleanup_free_ char *enc = sd_b64_encode(bytes, len, SD_B64_STD);
        return enc ? json_string(enc) : NULL;
}

static json_t *b64_json_str(const char *s) {
        return b64_json(s, strlen(s));
}

/* POST req (a JSON object) to path; *body_out is the 200 reply.  Any other
 * status becomes the mapped error of its body. */
static int etcd_call(struct etcd_store *es, const char *path, json_t *req, const char *what, char **body_out,
                     size_t *len_out, sd_error *err) {
        _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
        _cleanup_free_ char *url = str_printf("%s%s", es->base_url, path);
        if (!body || !url)
                return sd_error_set(err, ENOMEM, "out of memory");

        _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&es->lock);
        _cleanup_free_ char *reply_data = NULL;
        struct reply_buf b = { .max = REPLY_MAX };
        es->errbuf[0] = '\0';
        int r = easy_prepare(es->easy, url, body, es->headers, reply_write, &b, REQUEST_TIMEOUT_MS, err);
        if (r < 0)
                return r;
        CURLcode rc = curl_easy_perform(es->easy);
        reply_data = b.data;
        if (rc != CURLE_OK)
                return transport_error(es->endpoint, what, rc, es->errbuf, &b, err);
        long status = 0;
        (void) curl_easy_getinfo(es->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return sd_etcd_error_from_body(es->endpoint, what, status, reply_data ? reply_data : "", b.len,
                                               err);
        if (!reply_data) {
                reply_data = strdup("");
                if (!reply_data)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        *body_out = steal_pointer(&reply_data);
        *len_out = b.len;
        return 0;
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
                return sd_error_prefix(err, r, "etcd at %s: %s", es->endpoint, what);
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
                                            es->endpoint, what);
                const struct sd_etcd_kv *last = &rr.kvs[rr.n_kvs - 1];
                /* A hostile peer must not keep us paging for ever: each page
                 * must move forward and stay below range_end. */
                if (bytes_cmp(last->key, last->key_len, from, from_len) < 0 ||
                    bytes_cmp(last->key, last->key_len, end, strlen(end)) >= 0)
                        return sd_error_set(err, EPROTO, "etcd at %s: %s: a page ended outside the range asked",
                                            es->endpoint, what);
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

static void etcd_free(void *impl);

static int etcd_open(struct sd_store *s, const char *url, const char *rest, int create, void **impl_out,
                     sd_error *err) {
        (void) url;
        (void) create;  /* an etcd prefix needs no creation */
        _cleanup_free_ char *endpoint = NULL, *prefix = NULL;
        int r = sd_etcd_url_parse(rest, &endpoint, &prefix, err);
        if (r < 0)
                return r;
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK)
                return sd_error_set(err, EIO, "etcd: curl_global_init: %s", curl_easy_strerror(rc));

        struct etcd_store *es = calloc(1, sizeof(*es));
        if (!es) {
                curl_global_cleanup();
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        (void) pthread_mutex_init(&es->lock, NULL);
        es->s = s;
        es->endpoint = steal_pointer(&endpoint);
        es->prefix = steal_pointer(&prefix);
        es->base_url = str_printf("http://%s", es->endpoint);
        es->easy = curl_easy_init();
        es->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (!es->base_url || !es->easy || !es->headers) {
                etcd_free(es);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        r = easy_setup(es->easy, es->errbuf, err);
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
        if (es->easy)
                curl_easy_cleanup(es->easy);
        if (es->headers)
                curl_slist_free_all(es->headers);
        (void) pthread_mutex_destroy(&es->lock);
        free(es->endpoint);
        free(es->base_url);
        free(es->prefix);
        free(es);
        curl_global_cleanup();
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

        _cleanup_free_ char *body = NULL;
        size_t body_len = 0;
        int r = etcd_call(es, "/v3/kv/txn", req, what, &body, &body_len, err);
        if (r < 0)
                return r;
        r = sd_etcd_parse_txn(body, body_len, succeeded, NULL, err);
        if (r < 0)
                return sd_error_prefix(err, r, "etcd at %s", es->endpoint);
        return 0;
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
                                    es->endpoint, escape(kv->key, kv->key_len, shown, sizeof(shown)), ls->name);
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
                                    es->endpoint, escape(rr.kvs[0].key, rr.kvs[0].key_len, shown, sizeof(shown)),
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
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside secrets/", es->endpoint,
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
                                       es->endpoint);
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
                                       es->endpoint);
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
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside recipients/", es->endpoint,
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
                return sd_error_set(err, EPROTO, "etcd at %s returned key '%s' outside the range asked", es->endpoint,
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
                                    es->endpoint, escape(rr.kvs[0].key, rr.kvs[0].key_len, shown, sizeof(shown)), key);
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
                return sd_error_prefix(err, r, "store '%s': etcd at %s", s->url, es->endpoint);
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
                return sd_error_prefix(err, r, "store '%s': etcd at %s", s->url, es->endpoint);
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
 * nothing; after a compaction (the stream is canceled with
 * compact_revision) it cannot know what it missed, so it reads the current
 * revision, watches from there, and asks watch_read to report every name
 * (which the caller's re-read then settles).  Reconnects back off from
 * 100 ms to 5 s; free() wakes the thread through stop_fd and joins it.
 * ---------------------------------------------------------------------- */

struct etcd_watch {
        char *endpoint, *prefix, *watch_url, *range_url;
        int event_fd;          /* handed out; readable when there is news */
        int stop_fd;
        pthread_t thread;
        bool started;

        pthread_mutex_t lock;  /* guards the fields below */
        char **names;
        size_t n_names;
        bool resync;           /* report every name */
        char *warnings[WATCH_WARNINGS_MAX];
        size_t n_warnings;

        /* thread only */
        int64_t next_revision;
        bool failure_reported; /* a "reconnecting" warning is out */
        char errbuf[CURL_ERROR_SIZE];
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
        _cleanup_unlock_ pthread_mutex_t *locked = sd_lock(&w->lock);
        if (w->n_warnings < WATCH_WARNINGS_MAX)
                w->warnings[w->n_warnings++] = msg;
        else
                free(msg);
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
        STREAM_FAILED,         /* transport or protocol error: back off, resume */
        STREAM_COMPACTED,      /* resume point compacted: re-read the revision, resync */
        STREAM_STOPPED,
};

struct watch_stream {
        struct etcd_watch *w;
        CURL *easy;
        long status;
        bool status_known;
        struct reply_buf error_body;
        struct sd_line_buffer lines;
        enum stream_end end;
        bool canceled;
        bool got_created;
        sd_error err;
};

static int watch_line(void *userdata, const char *line, size_t len, const sd_error *overlong) {
        struct watch_stream *st = userdata;
        struct etcd_watch *w = st->w;
        if (overlong) {
                /* The events in it are lost: report every name. */
                watch_request_resync(w);
                watch_signal(w);
                (void) sd_error_set(&st->err, EPROTO, "etcd at %s: watch message over %zu bytes", w->endpoint,
                                    WATCH_LINE_MAX);
                return -EPROTO;
        }
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
                len--;
        if (len == 0)
                return 0;
        _cleanup_watch_msg_ struct sd_etcd_watch_msg m = { 0 };
        int r = sd_etcd_parse_watch(w->endpoint, line, len, &m, &st->err);
        if (r < 0) {
                if (r == -EPROTO && st->err.code == EPROTO && !strstr(st->err.message, "etcd at"))
                        (void) sd_error_prefix(&st->err, r, "etcd at %s", w->endpoint);
                /* A malformed message may have carried events. */
                watch_request_resync(w);
                watch_signal(w);
                return r;
        }
        if (m.kind == SD_ETCD_WATCH_CANCELED) {
                st->canceled = true;
                if (m.compact_revision > 0) {
                        st->end = STREAM_COMPACTED;
                        (void) sd_error_set(&st->err, ESTALE,
                                            "etcd at %s: watch from revision %" PRId64
                                            " canceled: compacted up to revision %" PRId64,
                                            w->endpoint, w->next_revision, m.compact_revision);
                } else {
                        (void) sd_error_set(&st->err, ECANCELED, "etcd at %s: watch canceled: %s", w->endpoint,
                                            m.cancel_reason[0] ? m.cancel_reason : "no reason given");
                }
                return -ECANCELED;
        }
        if (m.kind == SD_ETCD_WATCH_CREATED) {
                st->got_created = true;
                if (w->failure_reported) {
                        watch_warn(w, "etcd watch at %s restored (from revision %" PRId64 ")", w->endpoint,
                                   w->next_revision);
                        watch_signal(w);
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
                if (sd_etcd_key_parse(w->prefix, e->key, e->key_len, &k, &why) < 0) {
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

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct watch_stream *st = userdata;
        size_t n = size * nmemb;
        if (!st->status_known) {
                (void) curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &st->status);
                st->status_known = true;
        }
        if (st->status != 200)
                return reply_write(ptr, size, nmemb, &st->error_body);
        int r = sd_line_buffer_feed(&st->lines, ptr, n, watch_line, st, &st->err);
        return r < 0 ? 0 : n;
}

/* Drive one transfer on easy until it ends or stop_fd fires.  Returns 1 if
 * stopped, else 0 with *rc the transfer's result. */
static int perform_until_stop(struct etcd_watch *w, CURLM *multi, CURL *easy, CURLcode *rc) {
        if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
                *rc = CURLE_OUT_OF_MEMORY;
                return 0;
        }
        int stopped = 0;
        *rc = CURLE_OK;
        for (;;) {
                int running = 0;
                if (curl_multi_perform(multi, &running) != CURLM_OK) {
                        *rc = CURLE_RECV_ERROR;
                        break;
                }
                if (!running) {
                        int left = 0;
                        for (CURLMsg *m; (m = curl_multi_info_read(multi, &left));)
                                if (m->msg == CURLMSG_DONE && m->easy_handle == easy)
                                        *rc = m->data.result;
                        break;
                }
                struct curl_waitfd extra = { .fd = w->stop_fd, .events = CURL_WAIT_POLLIN };
                if (curl_multi_poll(multi, &extra, 1, 1000, NULL) != CURLM_OK) {
                        *rc = CURLE_RECV_ERROR;
                        break;
                }
                if (extra.revents & CURL_WAIT_POLLIN) {
                        stopped = 1;
                        break;
                }
        }
        (void) curl_multi_remove_handle(multi, easy);
        return stopped;
}

static enum stream_end watch_stream_once(struct etcd_watch *w, CURLM *multi, CURL *easy, struct curl_slist *headers,
                                         bool *created_out, sd_error *err) {
        _cleanup_free_ char *key = str_printf("%s/", w->prefix);
        _cleanup_free_ char *end = str_printf("%s0", w->prefix);
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
        struct watch_stream st = { .w = w, .easy = easy, .error_body = { .max = ERROR_BODY_MAX },
                                   .end = STREAM_FAILED };
        sd_line_buffer_init(&st.lines, WATCH_LINE_MAX);
        _cleanup_free_ char *error_data = NULL;

        /* No total timeout: the stream is meant to last; TCP keepalive (set
         * in easy_setup) notices a peer that vanished. */
        int r = easy_prepare(easy, w->watch_url, body, headers, watch_write, &st, 0L, err);
        if (r < 0) {
                sd_line_buffer_done(&st.lines);
                return STREAM_FAILED;
        }
        CURLcode rc = CURLE_OK;
        int stopped = perform_until_stop(w, multi, easy, &rc);
        error_data = st.error_body.data;
        sd_line_buffer_done(&st.lines);
        *created_out = st.got_created;
        if (stopped)
                return STREAM_STOPPED;
        if (st.err.code != 0) {
                *err = st.err;
                return st.end;
        }
        if (st.status_known && st.status != 200) {
                (void) sd_etcd_error_from_body(w->endpoint, "watch", st.status, error_data ? error_data : "",
                                               st.error_body.len, err);
                return STREAM_FAILED;
        }
        if (rc == CURLE_OK)
                (void) sd_error_set(err, ECONNRESET, "etcd at %s: watch stream ended", w->endpoint);
        else
                (void) transport_error(w->endpoint, "watch", rc, w->errbuf, &st.error_body, err);
        return STREAM_FAILED;
}

/* The current revision, with the thread's handle (a count-only range). */
static int watch_current_revision(struct etcd_watch *w, CURLM *multi, CURL *easy, struct curl_slist *headers,
                                  int64_t *out, sd_error *err) {
        _cleanup_free_ char *key = str_printf("%s/", w->prefix);
        _cleanup_free_ char *end = str_printf("%s0", w->prefix);
        _cleanup_json_ json_t *req = key && end ? json_pack("{s:o,s:o,s:b}", "key", b64_json_str(key), "range_end",
                                                            b64_json_str(end), "count_only", 1)
                                                : NULL;
        _cleanup_free_ char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct reply_buf b = { .max = ERROR_BODY_MAX };
        int r = easy_prepare(easy, w->range_url, body, headers, reply_write, &b, REQUEST_TIMEOUT_MS, err);
        if (r < 0)
                return r;
        CURLcode rc = CURLE_OK;
        int stopped = perform_until_stop(w, multi, easy, &rc);
        _cleanup_free_ char *data = b.data;
        if (stopped)
                return sd_error_set(err, ECANCELED, "stopped");
        if (rc != CURLE_OK)
                return transport_error(w->endpoint, "range revision", rc, NULL, &b, err);
        long status = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return sd_etcd_error_from_body(w->endpoint, "range revision", status, data ? data : "", b.len, err);
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        r = sd_etcd_parse_range(data ? data : "", b.len, 0, &rr, err);
        if (r < 0)
                return sd_error_prefix(err, r, "etcd at %s", w->endpoint);
        *out = rr.revision;
        return 0;
}

static bool wait_stop(struct etcd_watch *w, int ms) {
        struct pollfd p = { .fd = w->stop_fd, .events = POLLIN };
        return poll(&p, 1, ms) > 0;
}

static void *watch_thread(void *userdata) {
        struct etcd_watch *w = userdata;
        _cleanup_curl_ CURL *easy = curl_easy_init();
        CURLM *multi = curl_multi_init();
        _cleanup_slist_ struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
        sd_error err = { 0 };
        if (!easy || !multi || !headers || easy_setup(easy, w->errbuf, &err) < 0) {
                watch_warn(w, "etcd watch at %s cannot start: %s", w->endpoint,
                           err.code ? err.message : "out of memory");
                watch_signal(w);
                if (multi)
                        (void) curl_multi_cleanup(multi);
                return NULL;
        }
        int backoff = BACKOFF_MIN_MS;
        for (;;) {
                sd_error_clear(&err);
                if (w->next_revision == 0) {
                        /* No resume point (compacted, or etcd was down when
                         * the watch began): start from now and report every
                         * name, since what changed before is unknown. */
                        int64_t rev = 0;
                        int r = watch_current_revision(w, multi, easy, headers, &rev, &err);
                        if (r == -ECANCELED)
                                break;
                        if (r == 0) {
                                w->next_revision = rev + 1;
                                watch_request_resync(w);
                                watch_signal(w);
                                continue;
                        }
                } else {
                        bool created = false;
                        enum stream_end end = watch_stream_once(w, multi, easy, headers, &created, &err);
                        if (end == STREAM_STOPPED)
                                break;
                        if (created)
                                backoff = BACKOFF_MIN_MS;
                        if (end == STREAM_COMPACTED) {
                                watch_warn(w, "%s; reporting every secret and watching from the current revision",
                                           err.message);
                                watch_signal(w);
                                w->next_revision = 0;
                                continue;
                        }
                }
                if (!w->failure_reported) {
                        watch_warn(w, "%s; reconnecting", err.message);
                        watch_signal(w);
                        w->failure_reported = true;
                }
                if (wait_stop(w, backoff))
                        break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
        (void) curl_multi_cleanup(multi);
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
        free(w->endpoint);
        free(w->prefix);
        free(w->watch_url);
        free(w->range_url);
        free(w);
}

static inline void watch_stopp(struct etcd_watch **w) {
        watch_stop(*w);
}

static int etcd_watch_fd(struct sd_store *s, int *fd_out, sd_error *err) {
        struct etcd_store *es = impl_of(s);
        if (es->watch) {
                *fd_out = es->watch->event_fd;
                return 0;
        }
        /* Start after what the caller can read now: it re-reads after
         * getting the fd, and every later change is an event. */
        _cleanup_free_ char *key = str_printf("%s/", es->prefix);
        _cleanup_free_ char *end = str_printf("%s0", es->prefix);
        if (!key || !end)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_range_ struct sd_etcd_range rr = { 0 };
        struct range_opts o = { .key = key, .key_len = strlen(key), .range_end = end, .count_only = true };
        sd_error why = { 0 };
        int r = etcd_range(es, &o, "range revision", &rr, &why);
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
        w->endpoint = strdup(es->endpoint);
        w->prefix = strdup(es->prefix);
        w->watch_url = str_printf("%s/v3/watch", es->base_url);
        w->range_url = str_printf("%s/v3/kv/range", es->base_url);
        if (!w->endpoint || !w->prefix || !w->watch_url || !w->range_url)
                return sd_error_set(err, ENOMEM, "out of memory");
        w->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->event_fd < 0 || w->stop_fd < 0)
                return sd_error_set_errno(err, errno, "store '%s': watch: eventfd", s->url);
        w->next_revision = r < 0 ? 0 : rr.revision + 1;

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
};
