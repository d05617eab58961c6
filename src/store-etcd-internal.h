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
 * what was wrong: "etcd range reply: field 'kvs[0].key': missing") or
 * -ENOMEM; it never trusts a length or a type.
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

/* A /v3/auth/authenticate reply: {"header":…,"token":"…"}.  The token
 * (printable, 1..SD_ETCD_TOKEN_MAX bytes: it goes into a header line) into
 * a malloc()ed *token_out. */
#define SD_ETCD_TOKEN_MAX 4096
int sd_etcd_parse_auth(const char *body, size_t len, char **token_out, sd_error *err);

/* A /v3/kv/deleterange reply: *deleted is 0 when absent. */
int sd_etcd_parse_deleterange(const char *body, size_t len, int64_t *deleted_out, sd_error *err);

/* What an etcd error is about, from its gRPC code and message (etcd 3.4
 * answers, recorded in docs/store.md). */
enum sd_etcd_fault {
        SD_ETCD_FAULT_NONE = 0,
        SD_ETCD_FAULT_OTHER,
        SD_ETCD_FAULT_INVALID,        /* InvalidArgument (3): we sent something etcd refused */
        SD_ETCD_FAULT_TOO_LARGE,      /* "request is too large" */
        SD_ETCD_FAULT_AUTH_REQUIRED,  /* auth is on and no token was sent: "user name is empty" (3) */
        SD_ETCD_FAULT_AUTH_FAILED,    /* "authentication failed, invalid user ID or password" (3): a
                                       * wrong password and an unknown user get this same answer */
        SD_ETCD_FAULT_TOKEN,          /* "invalid auth token" (16): expired or revoked, authenticate again */
        SD_ETCD_FAULT_PERMISSION,     /* PermissionDenied (7): the user's roles do not cover the key */
        SD_ETCD_FAULT_DEADLINE,       /* DeadlineExceeded (4) */
        SD_ETCD_FAULT_QUOTA,          /* ResourceExhausted (8): "database space exceeded" */
        SD_ETCD_FAULT_COMPACTED,      /* OutOfRange (11) */
        SD_ETCD_FAULT_UNAVAILABLE,    /* Unavailable (14), "leader changed", "no leader", "too many
                                       * requests", "request timed out": try again, maybe elsewhere */
};

enum sd_etcd_fault sd_etcd_fault_of(int64_t code, const char *message);

/* An error body {"error","message","code"} (or the stream form
 * {"error":{"grpc_code","http_code","message"}}) answered with HTTP status
 * http_status to `what` (e.g. "range secrets/db").  Always returns a
 * negative code and fills err with "etcd at <endpoint>: <what>: <message>";
 * *fault_out (may be NULL) says what it is about:
 *   TOO_LARGE                                   -EFBIG
 *   INVALID, OTHER, or no JSON                  -EPROTO
 *   COMPACTED                                   -ESTALE
 *   QUOTA                                       -ENOSPC
 *   AUTH_REQUIRED, AUTH_FAILED, TOKEN, PERMISSION   -EACCES
 *   UNAVAILABLE                                 -EAGAIN
 *   DEADLINE                                    -ETIMEDOUT */
int sd_etcd_error_from_body(const char *endpoint, const char *what, long http_status, const char *body,
                            size_t len, enum sd_etcd_fault *fault_out, sd_error *err);

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
        enum sd_etcd_fault cancel_fault;  /* PERMISSION, TOKEN or OTHER when canceled with a reason */
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

/* Most endpoints in one URL. */
#define SD_ETCD_ENDPOINTS_MAX 16

struct sd_etcd_url {
        char *endpoints[SD_ETCD_ENDPOINTS_MAX];   /* "host:port", in the order given */
        size_t n_endpoints;
        char *prefix;
};
void sd_etcd_url_done(struct sd_etcd_url *u);

/* Split the part of an etcd:// or etcds:// URL after "://" into endpoints
 * and a normalised prefix: host:port[,host:port...]/prefix.  host is a DNS
 * name, IPv4 or [IPv6]; port defaults to 2379; an endpoint may not repeat;
 * at most SD_ETCD_ENDPOINTS_MAX.  The prefix is the path without leading
 * or trailing '/', non-empty, made of [A-Za-z0-9._-] segments separated by
 * single '/', no "." or ".." segment.  Userinfo ("user:pw@"), a query or a
 * fragment is -EINVAL (credentials never come from a URL).  *out is
 * overwritten on success. */
int sd_etcd_url_parse(const char *rest, struct sd_etcd_url *out, sd_error *err);

/* Largest credentials file read. */
#define SD_ETCD_AUTH_FILE_MAX ((size_t) 4096)
#define SD_ETCD_USER_MAX 128
#define SD_ETCD_PASSWORD_MAX 512

/* The etcd-auth-file format:
 *     # comment lines and blank lines are ignored
 *     user = app
 *     password = the password, to the end of the line
 * Both keys exactly once; spaces around '=' and at the ends of the line are
 * dropped; a user name is printable ASCII without spaces; the password may
 * hold anything but a NUL, CR or LF.  *user_out is malloc()ed,
 * *password_out sodium_malloc()ed (free it with sodium_free).  -EINVAL
 * naming the line on anything else; the password never appears in a
 * message. */
int sd_etcd_auth_parse(const char *text, size_t len, char **user_out, char **password_out, sd_error *err);
