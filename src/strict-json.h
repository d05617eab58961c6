/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Strict readers for the JSON records secretd signs or keeps (envelopes,
 * recipient entries, policies, realm records, archives): one JSON object,
 * duplicate members refused, exactly the expected members, integers that
 * survive any JSON reader, canonical base64.  Every refusal is -EBADMSG with
 * "malformed WHAT: field 'F' ..." naming the field; input is never echoed
 * raw.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/names.h"

/* Integers must survive a round trip through any JSON reader, including
 * ones that hold numbers as doubles. */
#define SD_JSON_INT_LIMIT ((uint64_t) 1 << 53)

/* Parse json[0..len) (at most max bytes) as one object. */
int sd_json_load_object(const char *json, size_t len, size_t max, const char *what, json_t **out,
                        sd_error *err);

/* Exactly the members in `allowed`, each present; field_prefix ("" or
 * "writers[2].") is prepended to the field names in messages. */
int sd_json_check_members(json_t *obj, const char *what, const char *const *allowed, size_t n_allowed,
                          const char *field_prefix, sd_error *err);

/* An integer field from min to 2^53-1. */
int sd_json_get_uint(json_t *obj, const char *what, const char *field, uint64_t min, uint64_t *out,
                     sd_error *err);
int sd_json_get_string(json_t *obj, const char *what, const char *field, const char **out, size_t *len_out,
                       sd_error *err);
/* A base64 (standard, padded) field of exactly n bytes; field_shown names it
 * in messages ("recipients[0].key"). */
int sd_json_get_b64_exact(json_t *obj, const char *what, const char *field, const char *field_shown, void *out,
                          size_t n, sd_error *err);
/* Member "format" is an integer equal to `expected`, the only format this
 * reader knows. */
int sd_json_get_format(json_t *obj, const char *what, uint64_t expected, sd_error *err);

/* obj as compact JSON, members in the order they were set, malloc()ed and
 * NUL-terminated; *len_out (may be NULL) is its length.  -ENOMEM. */
int sd_json_dump_compact(json_t *obj, char **out, size_t *len_out);

/* A valid name (sd_name_validate with kind_of_name) in member `field`. */
int sd_json_get_name(json_t *obj, const char *what, const char *field, const char *field_shown,
                     const char *kind_of_name, char out[SD_NAME_MAX + 1], sd_error *err);
