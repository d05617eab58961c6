/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The canonical byte encoding every signed or authenticated record uses
 * (docs/envelope.md "Canonical encodings"): big-endian u32/u64, and every
 * variable-length field as u32(length) || bytes, so no two different
 * records encode to the same bytes.
 *
 * One function builds both the size and the bytes: run the encoder once
 * with buf NULL (it only counts), sd_canon_allocate(), run it again.
 */

#include <stddef.h>
#include <stdint.h>

struct sd_canon {
        unsigned char *buf;   /* NULL while counting */
        size_t len;
};

void sd_canon_raw(struct sd_canon *c, const void *p, size_t n);
void sd_canon_u32(struct sd_canon *c, uint32_t v);
void sd_canon_u64(struct sd_canon *c, uint64_t v);
/* u32(n) || p[0..n).  Callers bound n far below 4 GiB (their parsers cap
 * the input). */
void sd_canon_bytes(struct sd_canon *c, const void *p, size_t n);
void sd_canon_str(struct sd_canon *c, const char *s);

/* After a counting pass: a buffer of the counted size (at least 1 byte) for
 * the writing pass; *len_out is the final length.  -ENOMEM. */
int sd_canon_allocate(struct sd_canon *c, size_t *len_out);
