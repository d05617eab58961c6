/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static bool reserve(struct sd_strbuf *b, size_t more) {
        if (b->failed)
                return false;
        if (b->len + more + 1 <= b->cap)
                return true;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + more + 1) {
                if (cap > ((size_t) -1) / 2) {
                        b->failed = true;
                        return false;
                }
                cap *= 2;
        }
        char *bigger = realloc(b->s, cap);
        if (!bigger) {
                b->failed = true;
                return false;
        }
        b->s = bigger;
        b->cap = cap;
        return true;
}

void sd_strbuf_add(struct sd_strbuf *b, const char *s, size_t n) {
        if (!reserve(b, n))
                return;
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

void sd_strbuf_adds(struct sd_strbuf *b, const char *s) {
        sd_strbuf_add(b, s, strlen(s));
}

void sd_strbuf_printf(struct sd_strbuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->failed = true;
                return;
        }
        if (!reserve(b, (size_t) n))
                return;
        va_start(ap, fmt);
        (void) vsnprintf(b->s + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

void sd_strbuf_indent(struct sd_strbuf *b, size_t n) {
        if (!reserve(b, n))
                return;
        memset(b->s + b->len, ' ', n);
        b->len += n;
        b->s[b->len] = '\0';
}

char *sd_strbuf_steal(struct sd_strbuf *b, size_t *len_out) {
        if (!b->failed && !b->s)
                reserve(b, 0);
        if (b->failed) {
                sd_strbuf_free(b);
                return NULL;
        }
        b->s[b->len] = '\0';
        char *s = b->s;
        if (len_out)
                *len_out = b->len;
        *b = (struct sd_strbuf) { 0 };
        return s;
}

void sd_strbuf_free(struct sd_strbuf *b) {
        free(b->s);
        *b = (struct sd_strbuf) { 0 };
}
