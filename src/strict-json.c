/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "strict-json.h"

/* jansson reports an out-of-range number without saying which member held
 * it.  The error position is just past the number: walk back over it and the
 * ':' to the member name, so the message can name the field.  Best effort,
 * for the message only. */
static void guess_member_before(const char *json, size_t len, int position, char *out, size_t out_size) {
        out[0] = '\0';
        if (position <= 0 || (size_t) position > len)
                return;
        size_t i = (size_t) position;
        while (i > 0 && strchr("0123456789+-.eE", json[i - 1]))
                i--;
        while (i > 0 && strchr(" \t\r\n", json[i - 1]))
                i--;
        if (i == 0 || json[i - 1] != ':')
                return;
        i--;
        while (i > 0 && strchr(" \t\r\n", json[i - 1]))
                i--;
        if (i == 0 || json[i - 1] != '"')
                return;
        size_t end = --i;
        while (i > 0 && json[i - 1] != '"' && end - i < 32)
                i--;
        if (i == 0 || json[i - 1] != '"')
                return;
        sd_escape_for_message(json + i, end - i, out, out_size);
}

int sd_json_load_object(const char *json, size_t len, size_t max, const char *what, json_t **out,
                        sd_error *err) {
        if (len > max)
                return sd_error_set(err, EBADMSG, "malformed %s: %zu bytes is over the limit of %zu bytes", what,
                                    len, max);
        if (!json)
                return sd_error_set(err, EBADMSG, "malformed %s: no input", what);
        json_error_t jerr;
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char text[128];
                sd_escape_json_error(&jerr, text, sizeof(text));
                if (json_error_code(&jerr) == json_error_numeric_overflow) {
                        char member[40];
                        guess_member_before(json, len, jerr.position, member, sizeof(member));
                        if (member[0])
                                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' is out of range (%s)",
                                                    what, member, text);
                }
                return sd_error_set(err, EBADMSG, "malformed %s: invalid JSON at line %d column %d: %s", what,
                                    jerr.line, jerr.column, text);
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return sd_error_set(err, EBADMSG, "malformed %s: not a JSON object", what);
        }
        *out = root;
        return 0;
}

int sd_json_check_members(json_t *obj, const char *what, const char *const *allowed, size_t n_allowed,
                          const char *field_prefix, sd_error *err) {
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value) {
                bool known = false;
                for (size_t i = 0; i < n_allowed && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (!known) {
                        char shown[40];
                        sd_escape_for_message(key, strlen(key), shown, sizeof(shown));
                        return sd_error_set(err, EBADMSG, "malformed %s: unknown field '%s%s'", what, field_prefix,
                                            shown);
                }
        }
        for (size_t i = 0; i < n_allowed; i++)
                if (!json_object_get(obj, allowed[i]))
                        return sd_error_set(err, EBADMSG, "malformed %s: missing field '%s%s'", what, field_prefix,
                                            allowed[i]);
        return 0;
}

int sd_json_get_uint(json_t *obj, const char *what, const char *field, uint64_t min, uint64_t *out,
                     sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_integer(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be an integer", what, field);
        json_int_t i = json_integer_value(v);
        if (i < 0 || (uint64_t) i < min || (uint64_t) i >= SD_JSON_INT_LIMIT)
                return sd_error_set(err, EBADMSG,
                                    "malformed %s: field '%s' is %lld; it must be from %" PRIu64 " to 2^53-1", what,
                                    field, (long long) i, min);
        *out = (uint64_t) i;
        return 0;
}

int sd_json_get_format(json_t *obj, const char *what, uint64_t expected, sd_error *err) {
        uint64_t format = 0;
        int r = sd_json_get_uint(obj, what, "format", 0, &format, err);
        if (r < 0)
                return r;
        if (format != expected)
                return sd_error_set(err, EBADMSG, "malformed %s: field 'format' is %" PRIu64 "; only format %" PRIu64
                                    " is supported", what, format, expected);
        return 0;
}

int sd_json_dump_compact(json_t *obj, char **out, size_t *len_out) {
        char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        *out = text;
        if (len_out)
                *len_out = strlen(text);
        return 0;
}

int sd_json_get_string(json_t *obj, const char *what, const char *field, const char **out, size_t *len_out,
                       sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be a string", what, field);
        *out = json_string_value(v);
        *len_out = json_string_length(v);
        return 0;
}

int sd_json_get_b64_exact(json_t *obj, const char *what, const char *field, const char *field_shown, void *out,
                          size_t n, sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be a base64 string", what,
                                    field_shown);
        if (sd_b64_decode_exact(json_string_value(v), json_string_length(v), out, n, SD_B64_STD) < 0)
                return sd_error_set(err, EBADMSG,
                                    "malformed %s: field '%s' must be %zu bytes in standard base64 with padding",
                                    what, field_shown, n);
        return 0;
}

int sd_json_get_name(json_t *obj, const char *what, const char *field, const char *field_shown,
                     const char *kind_of_name, char out[SD_NAME_MAX + 1], sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be a string", what, field_shown);
        const char *name = json_string_value(v);
        size_t name_len = json_string_length(v);
        sd_error name_err = { 0 };
        if (sd_name_validate(kind_of_name, name, name_len, &name_err) < 0)
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s': %s", what, field_shown,
                                    name_err.message);
        memcpy(out, name, name_len);
        out[name_len] = '\0';
        return 0;
}
