/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal: a growing text buffer.  Allocation failures are sticky: build
 * the whole text, then check `failed` once.  For text that holds no secret
 * value (plaintext lives in struct sd_secret). */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/error.h"

struct sd_strbuf {
        char *s;          /* NUL-terminated once anything was added */
        size_t len, cap;
        bool failed;
};

void sd_strbuf_add(struct sd_strbuf *b, const char *s, size_t n);
void sd_strbuf_adds(struct sd_strbuf *b, const char *s);
void sd_strbuf_printf(struct sd_strbuf *b, const char *fmt, ...) SD_PRINTF(2, 3);
/* n spaces. */
void sd_strbuf_indent(struct sd_strbuf *b, size_t n);
/* The text (malloc()ed, "" if empty) and its length; the buffer is reset.
 * NULL if an allocation failed. */
char *sd_strbuf_steal(struct sd_strbuf *b, size_t *len_out);
void sd_strbuf_free(struct sd_strbuf *b);
