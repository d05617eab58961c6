/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Strict base64 over libsodium's codec: whole input consumed, no whitespace. */

#include <stddef.h>

enum sd_b64 {
        SD_B64_STD,          /* standard alphabet with padding (envelopes, etcd) */
        SD_B64_URL_NOPAD,    /* URL-safe, no padding (key lines) */
};

/* malloc()ed NUL-terminated encoding, or NULL on out of memory. */
char *sd_b64_encode(const void *bin, size_t len, enum sd_b64 variant);

/* Decode exactly: text[0..text_len) must decode to between 0 and max bytes
 * with nothing left over.  Returns the decoded length or -EINVAL. */
long sd_b64_decode(const char *text, size_t text_len, void *bin, size_t max, enum sd_b64 variant);

/* Decode into a fixed size buffer; -EINVAL unless exactly len bytes. */
int sd_b64_decode_exact(const char *text, size_t text_len, void *bin, size_t len, enum sd_b64 variant);
