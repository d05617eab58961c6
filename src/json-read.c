/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json-read.h"
#include "secretd/names.h"

int sd_peer_json_field_error(sd_error *err, const struct sd_peer_json_where *w, const char *key, const char *fmt, ...) {
        char reason[256];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        return sd_error_set(err, w->code, "%s: field '%s%s': %s", w->what, w->prefix ? w->prefix : "", key,
                            reason);
}

const char *sd_peer_json_type_name(const json_t *j) {
        switch (json_typeof(j)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a real number";
        case JSON_TRUE: return "true";
        case JSON_FALSE: return "false";
        case JSON_NULL: return "null";
        }
        return "something else";
}

int sd_peer_json_load(const struct sd_peer_json_where *w, const char *text, size_t len, bool want_object, json_t **out,
                 sd_error *err) {
        json_error_t jerr;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char shown[160];
                sd_escape_json_error(&jerr, shown, sizeof(shown));
                return sd_error_set(err, w->code, "%s: not valid JSON: %s (line %d, column %d)", w->what, shown,
                                    jerr.line, jerr.column);
        }
        if (want_object && !json_is_object(root)) {
                int r = sd_error_set(err, w->code, "%s: expected a JSON object, got %s", w->what,
                                     sd_peer_json_type_name(root));
                json_decref(root);
                return r;
        }
        *out = root;
        return 0;
}

/* The member, or NULL when absent (or null with SD_JSON_NULL_OK); -code
 * when required and absent. */
static int member(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w, json_t **v,
                  sd_error *err) {
        json_t *m = json_object_get(obj, key);
        if (m && json_is_null(m) && (flags & SD_JSON_NULL_OK))
                m = NULL;
        if (!m && (flags & SD_JSON_REQUIRED))
                return sd_peer_json_field_error(err, w, key, "missing");
        *v = m;
        return m ? 1 : 0;
}

int sd_peer_json_string(const json_t *obj, const char *key, unsigned flags, size_t max,
                       const struct sd_peer_json_where *w, const char **s, size_t *len, sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (!json_is_string(v))
                return sd_peer_json_field_error(err, w, key, "expected a string, got %s", sd_peer_json_type_name(v));
        const char *str = json_string_value(v);
        size_t l = json_string_length(v);
        if (l > max)
                return sd_peer_json_field_error(err, w, key, "%zu bytes long; the limit is %zu", l, max);
        if ((flags & SD_JSON_NONEMPTY) && l == 0)
                return sd_peer_json_field_error(err, w, key, "is empty");
        for (size_t i = 0; i < l; i++) {
                unsigned char c = (unsigned char) str[i];
                /* jansson already refuses NUL bytes (no JSON_ALLOW_NUL). */
                if ((flags & SD_JSON_PRINTABLE) && (c < 0x20 || c == 0x7f))
                        return sd_peer_json_field_error(err, w, key, "contains control byte 0x%02x", c);
                if ((flags & SD_JSON_NO_SLASH) && c == '/')
                        return sd_peer_json_field_error(err, w, key, "contains '/'");
        }
        *s = str;
        *len = l;
        return 1;
}

int sd_peer_json_integer(const json_t *obj, const char *key, unsigned flags, long long min, long long max,
                        const struct sd_peer_json_where *w, long long *out, sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (!json_is_integer(v))
                return sd_peer_json_field_error(err, w, key, "expected an integer, got %s", sd_peer_json_type_name(v));
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return sd_peer_json_field_error(err, w, key, "%lld is out of range [%lld, %lld]", (long long) i, min,
                                           max);
        *out = (long long) i;
        return 1;
}

int sd_peer_json_uint63(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                       int64_t *out, sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n < 0)
                        return sd_peer_json_field_error(err, w, key, "%lld is negative", (long long) n);
                *out = (int64_t) n;
                return 1;
        }
        if (!json_is_string(v))
                return sd_peer_json_field_error(err, w, key, "expected an integer or a string of digits, got %s",
                                           sd_peer_json_type_name(v));
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        char shown[64];
        if (len == 0 || len > 19)
                return sd_peer_json_field_error(err, w, key, "'%s' is not an int64 (%zu characters)",
                                           sd_escape_for_message(s, len, shown, sizeof(shown)), len);
        int64_t n = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return sd_peer_json_field_error(err, w, key, "'%s' is not an integer",
                                                   sd_escape_for_message(s, len, shown, sizeof(shown)));
                int d = s[i] - '0';
                if (n > (INT64_MAX - d) / 10)
                        return sd_peer_json_field_error(err, w, key, "'%s' overflows int64",
                                                   sd_escape_for_message(s, len, shown, sizeof(shown)));
                n = n * 10 + d;
        }
        *out = n;
        return 1;
}

int sd_peer_json_bool(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w, bool *out,
                     sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (!json_is_boolean(v))
                return sd_peer_json_field_error(err, w, key, "expected true or false, got %s", sd_peer_json_type_name(v));
        *out = json_is_true(v);
        return 1;
}

int sd_peer_json_object(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                       json_t **out, sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (!json_is_object(v))
                return sd_peer_json_field_error(err, w, key, "expected an object, got %s", sd_peer_json_type_name(v));
        *out = v;
        return 1;
}

int sd_peer_json_array(const json_t *obj, const char *key, unsigned flags, const struct sd_peer_json_where *w,
                      json_t **out, sd_error *err) {
        json_t *v = NULL;
        int r = member(obj, key, flags, w, &v, err);
        if (r <= 0)
                return r;
        if (!json_is_array(v))
                return sd_peer_json_field_error(err, w, key, "expected an array, got %s", sd_peer_json_type_name(v));
        *out = v;
        return 1;
}
