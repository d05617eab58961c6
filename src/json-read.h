/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Readers of JSON fields from peers (dockerd, etcd), with one message
 * style:
 *
 *     <what>: field '<prefix><key>': <reason>
 *     docker event: field 'Actor.ID': missing
 *     etcd range reply: field 'kvs[0].mod_revision': 'x1' is not an integer
 *
 * `what` names the document, `prefix` the path down to the object holding
 * the field, `code` the errno every failure returns (-EBADMSG for dockerd's
 * events, -EPROTO for etcd's replies).  Nothing here trusts a type or a
 * length: each reader checks both.  Getters return 1 when the field is
 * there, 0 when it is absent (or null, for the optional ones), a negative
 * code otherwise; outputs are set only when 1 is returned.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"

struct sd_peer_json_where {
        const char *what;
        const char *prefix;
        int code;           /* positive errno for every failure */
};

enum {
        SD_JSON_REQUIRED = 1 << 0,   /* absent (or null) is an error */
        SD_JSON_NONEMPTY = 1 << 1,   /* strings: "" is an error */
        SD_JSON_PRINTABLE = 1 << 2,  /* strings: no control bytes (log and message safety) */
        SD_JSON_NO_SLASH = 1 << 3,   /* strings: no '/' */
        SD_JSON_NULL_OK = 1 << 4,    /* null reads as absent */
};

/* "<what>: field '<prefix><key>': <reason>"; returns -w->code. */
int sd_peer_json_field_error(sd_error *err, const struct sd_peer_json_where *w, const char *key, const char *fmt, ...)
        SD_PRINTF(4, 5);

/* "an object", "a string", ... for messages. */
const char *sd_peer_json_type_name(const json_t *j);

/* Parse text[0..len) refusing duplicate keys (two readers of the same
 * document must not disagree).  "<what>: not valid JSON: <reason> (line L,
 * column C)".  With want_object, anything but an object is refused too. */
int sd_peer_json_load(const struct sd_peer_json_where *w, const char *text, size_t len, bool want_object, json_t **out,
                 sd_error *err);

int sd_peer_json_string(const json_t *obj, const char *key, unsigned flags, size_t max,
                       const struct sd_peer_json_where *w, const char **s, size_t *len, sd_error *err);

/* A JSON integer in [min, max]. */
int sd_peer_json_integer(const json_t *obj, const char *key, unsigned flags, long long min, long long max,
                        const struct sd_peer_json_where *w, long long *out, sd_error *err);

/* A non-negative int64 written as a JSON integer or as a string of 1 to 19
 * digits (etcd's gateway writes int64 as strings): no sign, no blanks, no
 * fraction, no overflow. */
int sd_peer_json_uint63(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                       int64_t *out, sd_error *err);

int sd_peer_json_bool(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w, bool *out,
                     sd_error *err);

/* An object or array member (borrowed reference). */
int sd_peer_json_object(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                       json_t **out, sd_error *err);
int sd_peer_json_array(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                      json_t **out, sd_error *err);
