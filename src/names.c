/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "secretd/names.h"

char *sd_escape_for_message(const char *in, size_t len, char *out, size_t out_size) {
        size_t o = 0;
        if (out_size == 0)
                return out;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) in[i];
                char piece[5];
                if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
                        piece[0] = (char) c, piece[1] = '\0';
                else
                        (void) snprintf(piece, sizeof(piece), "\\x%02x", c);
                size_t pl = strlen(piece);
                if (o + pl + 4 > out_size) {
                        /* Keep room for "..." so a cut name is visibly cut. */
                        if (o + 4 <= out_size) {
                                memcpy(out + o, "...", 3);
                                o += 3;
                        }
                        break;
                }
                memcpy(out + o, piece, pl);
                o += pl;
        }
        out[o] = '\0';
        return out;
}

char *sd_escape_json_error(const json_error_t *jerr, char *out, size_t out_size) {
        char raw[sizeof(jerr->text)];
        size_t raw_len = strnlen(jerr->text, sizeof(jerr->text) - 1);
        memcpy(raw, jerr->text, raw_len);
        for (size_t i = 0; i < raw_len; i++)
                if (raw[i] == '\'')
                        raw[i] = '"';
        return sd_escape_for_message(raw, raw_len, out, out_size);
}

static bool is_alnum(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int sd_name_validate(const char *what, const char *name, size_t len, sd_error *err) {
        char shown[64];

        if (!name || len == 0)
                return sd_error_set(err, EINVAL, "%s is empty", what);

        sd_escape_for_message(name, len, shown, sizeof(shown));

        if (len > SD_NAME_MAX)
                return sd_error_set(err, EINVAL, "%s '%s' is %zu bytes long; the limit is %d",
                                    what, shown, len, SD_NAME_MAX);

        if (!is_alnum((unsigned char) name[0]))
                return sd_error_set(err, EINVAL, "%s '%s' must start with a letter or digit",
                                    what, shown);

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) name[i];
                if (c == '\0')
                        return sd_error_set(err, EINVAL, "%s '%s' contains a NUL byte", what, shown);
                if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
                        char bad[32];
                        if (c >= 0x20 && c < 0x7f)
                                (void) snprintf(bad, sizeof(bad), "'%c'", c);
                        else
                                (void) snprintf(bad, sizeof(bad), "byte 0x%02x", c);
                        return sd_error_set(err, EINVAL,
                                            "%s '%s' contains %s; only letters, digits, '.', '_' and '-' are allowed",
                                            what, shown, bad);
                }
                if (c == '.' && i + 1 < len && name[i + 1] == '.')
                        return sd_error_set(err, EINVAL, "%s '%s' contains '..'", what, shown);
        }
        return 0;
}
