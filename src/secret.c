/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "secretd/secret.h"

int sd_secret_new_with_scratch(size_t len, size_t scratch_len, struct sd_secret **out, unsigned char **scratch_out) {
        if (sodium_init() < 0)
                return -ENOMEM;
        if (len > SIZE_MAX - 1 - scratch_len)
                return -ENOMEM;

        struct sd_secret *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        /* One spare NUL byte so text consumers never run off the end; the
         * memory is guarded, locked and zero-filled by libsodium.  The
         * scratch goes after the value: sodium_free() needs the start of
         * the mapping, which is where the value begins. */
        s->data = sodium_malloc(len + 1 + scratch_len);
        if (!s->data) {
                free(s);
                return -ENOMEM;
        }
        sodium_memzero(s->data, len + 1 + scratch_len);
        s->len = len;
        if (scratch_out)
                *scratch_out = scratch_len ? s->data + len + 1 : NULL;
        *out = s;
        return 0;
}

int sd_secret_new(size_t len, struct sd_secret **out) {
        return sd_secret_new_with_scratch(len, 0, out, NULL);
}

int sd_secret_new_from(const void *data, size_t len, struct sd_secret **out) {
        struct sd_secret *s;
        int r = sd_secret_new(len, &s);
        if (r < 0)
                return r;
        if (len > 0)
                memcpy(s->data, data, len);
        *out = s;
        return 0;
}

void sd_secret_free(struct sd_secret *s) {
        if (!s)
                return;
        /* sodium_free() zeroes before unmapping. */
        sodium_free(s->data);
        free(s);
}

bool sd_secret_equal(const struct sd_secret *a, const struct sd_secret *b) {
        if (!a || !b)
                return a == b;
        if (a->len != b->len)
                return false;
        return a->len == 0 || sodium_memcmp(a->data, b->data, a->len) == 0;
}

int sd_secret_read_fd(int fd, size_t max_len, const char *what, struct sd_secret **out,
                      sd_error *err) {
        /* Grow in locked memory: read into a buffer of capacity cap, and when
         * it fills, move to a bigger sodium_malloc()ed one (the old one is
         * zeroed by sd_secret_free), so plaintext never sits in plain heap. */
        size_t cap = 4096, len = 0;
        _cleanup_secret_ struct sd_secret *buf = NULL;

        if (sd_secret_new(cap, &buf) < 0)
                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", what);

        for (;;) {
                if (len == cap) {
                        if (cap > max_len)
                                break;
                        size_t ncap = cap * 2;
                        if (ncap > max_len + 1)
                                ncap = max_len + 1;
                        struct sd_secret *bigger;
                        if (sd_secret_new(ncap, &bigger) < 0)
                                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", what);
                        memcpy(bigger->data, buf->data, len);
                        sd_secret_free(buf);
                        buf = bigger;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf->data + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return sd_error_set_errno(err, errno, "%s: read failed", what);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max_len)
                        return sd_error_set(err, EFBIG, "%s: value is larger than the limit of %zu bytes",
                                            what, max_len);
        }

        struct sd_secret *result;
        if (sd_secret_new_from(buf->data, len, &result) < 0)
                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", what);
        *out = result;
        return 0;
}
