/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Names of secrets (and of recipients) become file names in the store and in
 * every container's /run/secrets, so they are restricted to
 *     [A-Za-z0-9][A-Za-z0-9._-]{0,127}   and never contain ".."
 */

#include <jansson.h>
#include <stddef.h>
#include <string.h>

#include "secretd/error.h"

#define SD_NAME_MAX 128

/* 0 if name[0..len) is a valid name; else -EINVAL with a message naming the
 * (escaped, printable) input and the rule it breaks.  `what` is the noun used
 * in the message ("secret name", "recipient name", "file name").  len lets
 * callers pass input with embedded NULs; use strlen() for C strings. */
int sd_name_validate(const char *what, const char *name, size_t len, sd_error *err);

/* Write a printable, quoted-safe rendering of untrusted bytes into out
 * (at most out_size-1 chars; non-printables as \xNN, long input elided with
 * "..."), for error messages.  Returns out. */
char *sd_escape_for_message(const char *in, size_t len, char *out, size_t out_size);

/* jansson's parse error text quotes the offending input raw (newlines,
 * control bytes, anything): render it like sd_escape_for_message, with its
 * ' quotes shown as " so they are not escaped.  Every parser of outside
 * JSON uses this, so a hostile body cannot break a log line.  Returns out. */
char *sd_escape_json_error(const json_error_t *jerr, char *out, size_t out_size);

/* The first 12 characters of a long hex id (a container id, a mount id), as
 * docker shows them: for log lines and messages.  Returns out. */
#define SD_SHORT_ID_CHARS 12
static inline const char *sd_short_id(const char *id, char out[SD_SHORT_ID_CHARS + 1]) {
        size_t n = strnlen(id, SD_SHORT_ID_CHARS);
        memcpy(out, id, n);
        out[n] = '\0';
        return out;
}
