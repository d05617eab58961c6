/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One error convention for all of secretd.
 *
 * A function that can fail returns a negative errno-style code (0 or a
 * positive count on success) and, when the caller passes a non-NULL
 * `sd_error *err` as its last argument, fills it with a one-line message
 * that names the thing and the reason:
 *
 *     secret 'db_password' version 4: signed by unknown writer 3f9a1b2c4d5e6f70
 *
 * Library code never prints, logs or exits; the front end (secretctl, the
 * agent) reports the message once.  Messages never contain secret values.
 *
 * Codes used across the library (callers may switch on them):
 *   -EINVAL        bad input (name, option, size, syntax)
 *   -EFBIG         a value over its size limit
 *   -ENOENT        no such secret, version, key or entry
 *   -EEXIST        compare-and-swap lost, or refusing to overwrite
 *   -EBADMSG       malformed or tampered envelope / record
 *   -EKEYREJECTED  signed by a writer that is not trusted
 *   -ENOKEY        this key is not a recipient of the envelope
 *   -EPROTO        a peer (store, dockerd) answered something unexpected
 *   -EIO, -ENOMEM  and other errno values from the system
 */

#include <stdarg.h>
#include <stddef.h>

#define SD_PRINTF(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))

#define SD_ERROR_MESSAGE_MAX 512

typedef struct sd_error {
        int code;                            /* positive errno value; 0 when unset */
        char message[SD_ERROR_MESSAGE_MAX];  /* NUL-terminated, one line */
} sd_error;

/* Fill err (if non-NULL) with code and a formatted message.  code may be
 * given positive or negative; the return value is always -|code|, so
 * `return sd_error_set(err, EINVAL, "...")` reads naturally. */
int sd_error_set(sd_error *err, int code, const char *fmt, ...) SD_PRINTF(3, 4);
int sd_error_setv(sd_error *err, int code, const char *fmt, va_list ap) SD_PRINTF(3, 0);

/* Like sd_error_set, appending ": strerror(code)". */
int sd_error_set_errno(sd_error *err, int code, const char *fmt, ...) SD_PRINTF(3, 4);

/* Prepend "prefix: " to an already-set message, keeping its code.  Returns
 * -err->code (or `code` if err is NULL/unset) so a caller can add context and
 * propagate in one statement. */
int sd_error_prefix(sd_error *err, int code, const char *fmt, ...) SD_PRINTF(3, 4);

void sd_error_clear(sd_error *err);

/* Callback through which the library reports non-fatal problems (an
 * untrusted recipient entry skipped, a leftover temp file in the store).
 * The front end decides whether and how to print them. */
typedef void (*sd_warn_fn)(void *userdata, const char *message);
