/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>

#include "base64.h"

static int sodium_variant(enum sd_b64 v) {
        return v == SD_B64_STD ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_URLSAFE_NO_PADDING;
}

char *sd_b64_encode(const void *bin, size_t len, enum sd_b64 variant) {
        int v = sodium_variant(variant);
        size_t cap = sodium_base64_ENCODED_LEN(len, v);
        char *out = malloc(cap);
        if (!out)
                return NULL;
        sodium_bin2base64(out, cap, bin, len, v);
        return out;
}

long sd_b64_decode(const char *text, size_t text_len, void *bin, size_t max, enum sd_b64 variant) {
        size_t bin_len = 0;
        const char *end = NULL;
        if (max > LONG_MAX)
                return -EINVAL;
        if (sodium_base642bin(bin, max, text, text_len, NULL, &bin_len, &end, sodium_variant(variant)) != 0)
                return -EINVAL;
        if (end != text + text_len)
                return -EINVAL;
        return (long) bin_len;
}

int sd_b64_decode_exact(const char *text, size_t text_len, void *bin, size_t len, enum sd_b64 variant) {
        long n = sd_b64_decode(text, text_len, bin, len, variant);
        return n == (long) len ? 0 : -EINVAL;
}
