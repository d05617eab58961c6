/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The pure half of the etcd backend (src/store-etcd.c): parsers of what the
 * etcd v3 JSON gateway answers, and of the keys it hands back.  No I/O, no
 * global state, so tests/unit/test-store-etcd.c and
 * tests/fuzz/fuzz-etcd-response.c call them on recorded or hostile bytes.
 *
 * Gateway facts they rely on (etcd 3.4, recorded in docs/store.md):
 *   - int64 fields are JSON strings ("42"); numbers are accepted as well;
 *   - fields with their zero value are omitted: no "kvs" in an empty range,
 *     no "succeeded" in a failed txn, no "type" on a PUT watch event, no
 *     "more" when false;
 *   - key and value are standard base64 with padding.
 * Every parser returns 0 or -EPROTO (malformed or hostile input, err names
 * what was wrong) or -ENOMEM; it never trusts a length or a type.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/names.h"

/* Largest decoded key accepted from etcd (ours are at most a prefix, a
 * name and 20 digits). */
#define SD_ETCD_KEY_MAX 1024
/* Longest prefix accepted in an etcd:// URL. */
#define SD_ETCD_PREFIX_MAX 256

struct sd_etcd_kv {
        char *key;             /* decoded, NUL-terminated (keys with a NUL are refused) */
        size_t key_len;
        char *value;           /* decoded, NUL-terminated; NULL when the reply had none */
        size_t value_len;
        int64_t create_revision;
        int64_t mod_revision;
};

struct sd_etcd_range {
        int64_t revision;      /* header.revision */
        struct sd_etcd_kv *kvs;
        size_t n_kvs;
        bool more;
        int64_t count;
};

/* A /v3/kv/range reply.  header.revision is required; kvs, more and count
 * may be absent.  Values are decoded only when present; max_value bounds a
 * decoded value (larger: -EPROTO). */
int sd_etcd_parse_range(const char *body, size_t len, size_t max_value, struct sd_etcd_range *out,
                        sd_error *err);
void sd_etcd_range_done(struct sd_etcd_range *r);

/* A /v3/kv/txn reply: *succeeded is false when the field is absent (the
 * gateway omits false). */
int sd_etcd_parse_txn(const char *body, size_t len, bool *succeeded_out, int64_t *revision_out,
                      sd_error *err);

/* A /v3/kv/deleterange reply: *deleted is 0 when absent. */
int sd_etcd_parse_deleterange(const char *body, size_t len, int64_t *deleted_out, sd_error *err);

/* An error body {"error","message","code"} (or the stream form
 * {"error":{"grpc_code","http_code","message"}}) answered with HTTP status
 * http_status to `what` (e.g. "range secrets/db").  Always returns a
 * negative code and fills err with "etcd at <endpoint>: <what>: <message>":
 *   "request is too large"          -EFBIG
 *   InvalidArgument (3)             -EPROTO (we sent something etcd refused)
 *   OutOfRange (11, compacted)      -ESTALE
 *   ResourceExhausted (8)           -ENOSPC (etcd's quota: "database space exceeded")
 *   Unauthenticated (16), PermissionDenied (7)   -EACCES
 *   Unavailable (14)                -EAGAIN
 *   DeadlineExceeded (4)            -ETIMEDOUT
 *   anything else, or no JSON       -EPROTO */
int sd_etcd_error_from_body(const char *endpoint, const char *what, long http_status, const char *body,
                            size_t len, sd_error *err);

enum sd_etcd_watch_kind {
        SD_ETCD_WATCH_CREATED,   /* "created": true */
        SD_ETCD_WATCH_EVENTS,    /* events (maybe none: a progress notification) */
        SD_ETCD_WATCH_CANCELED,  /* "canceled": true; compact_revision > 0 after a compaction */
};

struct sd_etcd_watch_event {
        char *key;             /* decoded, NUL-terminated */
        size_t key_len;
        bool is_delete;
        int64_t mod_revision;
};

struct sd_etcd_watch_msg {
        enum sd_etcd_watch_kind kind;
        int64_t revision;          /* header.revision; 0 when absent (canceled messages lack it) */
        int64_t compact_revision;
        char cancel_reason[128];   /* escaped for messages */
        struct sd_etcd_watch_event *events;
        size_t n_events;
};

/* One line of the /v3/watch stream.  A line {"error":…} is returned as a
 * negative code through sd_etcd_error_from_body(endpoint, "watch", 200, …). */
int sd_etcd_parse_watch(const char *endpoint, const char *line, size_t len, struct sd_etcd_watch_msg *out,
                        sd_error *err);
void sd_etcd_watch_msg_done(struct sd_etcd_watch_msg *m);

enum sd_etcd_key_kind {
        SD_ETCD_KEY_SECRET,      /* <prefix>/secrets/<name>/<20 digits> */
        SD_ETCD_KEY_RECIPIENT,   /* <prefix>/recipients/<name> */
        SD_ETCD_KEY_POLICY,      /* <prefix>/policy/<20 digits> */
        SD_ETCD_KEY_PROPOSAL,    /* <prefix>/proposals/<20 digits> */
};

struct sd_etcd_key {
        enum sd_etcd_key_kind kind;
        char name[SD_NAME_MAX + 1];  /* secrets and recipients */
        uint64_t version;          /* secrets, policy, proposals: >= 1 */
};

/* Classify a key etcd returned, for the store whose prefix is `prefix`
 * (normalised: no trailing '/').
 *   -EPROTO  the key is not under "<prefix>/" at all (etcd answered outside
 *            what was asked): "etcd returned key '…' outside the prefix '…'"
 *   -EBADMSG the key is under the prefix but has no shape of ours (bad name,
 *            not 20 digits, version 0, extra components): callers warn and
 *            skip it. */
int sd_etcd_key_parse(const char *prefix, const char *key, size_t key_len, struct sd_etcd_key *out,
                      sd_error *err);

/* Split the part of an etcd:// URL after "etcd://" into host:port and a
 * normalised prefix.  host is a DNS name, IPv4 or [IPv6]; port defaults to
 * 2379; the prefix is the path without leading or trailing '/', must be
 * non-empty, made of [A-Za-z0-9._-] segments separated by single '/', no
 * "." or ".." segment.  Userinfo ("user:pw@"), a query or a fragment is
 * -EINVAL (credentials never come from a URL). */
int sd_etcd_url_parse(const char *rest, char **endpoint_out, char **prefix_out, sd_error *err);
