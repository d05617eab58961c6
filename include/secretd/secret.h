/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Plaintext has its own type.  The bytes live in sodium_malloc()ed memory:
 * locked (never swapped), guarded, and zeroed by sd_secret_free().  Compare
 * with sd_secret_equal() (constant time).  Never print `data`.
 */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

/* Largest value the library accepts (1 MiB); front ends may set lower. */
#define SD_VALUE_MAX ((size_t) 1 << 20)

struct sd_secret {
        unsigned char *data;  /* sodium_malloc()ed, len bytes (+1 NUL, not counted) */
        size_t len;
};

/* Allocate a zero-filled secret of len bytes.  -ENOMEM on failure (also when
 * the memory cannot be locked: RLIMIT_MEMLOCK). */
int sd_secret_new(size_t len, struct sd_secret **out);

/* The same, with scratch_len more zeroed bytes after the value's NUL in the
 * same guarded, locked mapping (*scratch_out points at them): room for the
 * key that decrypts the value, so an open maps and locks one region, not
 * two.  The caller zeroes the scratch once done with it; sd_secret_free()
 * zeroes it again with the rest. */
int sd_secret_new_with_scratch(size_t len, size_t scratch_len, struct sd_secret **out, unsigned char **scratch_out);

/* Copy len bytes into a new secret. */
int sd_secret_new_from(const void *data, size_t len, struct sd_secret **out);

/* Read all of fd (until EOF) into a new secret.  More than max_len bytes:
 * -EFBIG, naming `what` ("standard input", a file name) in err. The staging
 * buffers are locked and zeroed as well. */
int sd_secret_read_fd(int fd, size_t max_len, const char *what, struct sd_secret **out, sd_error *err);

/* Zero and free; NULL is fine. */
void sd_secret_free(struct sd_secret *s);

static inline void sd_secret_freep(struct sd_secret **s) {
        sd_secret_free(*s);
        *s = NULL;
}
#define _cleanup_secret_ _cleanup_(sd_secret_freep)

/* Constant-time equality of length and content. */
bool sd_secret_equal(const struct sd_secret *a, const struct sd_secret *b);
