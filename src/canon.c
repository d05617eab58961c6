/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"

void sd_canon_raw(struct sd_canon *c, const void *p, size_t n) {
        if (c->buf && n > 0)
                memcpy(c->buf + c->len, p, n);
        c->len += n;
}

void sd_canon_u32(struct sd_canon *c, uint32_t v) {
        unsigned char b[4] = { (unsigned char) (v >> 24), (unsigned char) (v >> 16), (unsigned char) (v >> 8),
                               (unsigned char) v };
        sd_canon_raw(c, b, sizeof(b));
}

void sd_canon_u64(struct sd_canon *c, uint64_t v) {
        sd_canon_u32(c, (uint32_t) (v >> 32));
        sd_canon_u32(c, (uint32_t) v);
}

void sd_canon_bytes(struct sd_canon *c, const void *p, size_t n) {
        sd_canon_u32(c, (uint32_t) n);
        sd_canon_raw(c, p, n);
}

void sd_canon_str(struct sd_canon *c, const char *s) {
        sd_canon_bytes(c, s, strlen(s));
}

int sd_canon_allocate(struct sd_canon *c, size_t *len_out) {
        size_t len = c->len;
        *c = (struct sd_canon) { .buf = malloc(len ? len : 1) };
        if (!c->buf)
                return -ENOMEM;
        *len_out = len;
        return 0;
}
