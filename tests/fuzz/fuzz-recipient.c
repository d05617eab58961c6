/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recipient entries come from an untrusted store.  The trusted writer is
 * derived from a fixed seed so the saved corpus reaches the signature check. */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same writer as fuzz-envelope. */
#define FUZZ_WRITER_SIGN_SEED 0x11
#define FUZZ_WRITER_BOX_SEED 0x22

static struct sd_trust *trust;

static void init_keys(void) {
        unsigned char seed[32], sign_sk[64], box_sk[32];
        struct sd_writer_pub pub;
        if (sodium_init() < 0 || sd_trust_new(&trust) < 0)
                abort();
        memset(seed, FUZZ_WRITER_SIGN_SEED, sizeof(seed));
        crypto_sign_seed_keypair(pub.sign_pk, sign_sk, seed);
        memset(seed, FUZZ_WRITER_BOX_SEED, sizeof(seed));
        crypto_box_seed_keypair(pub.box_pk, box_sk, seed);
        if (sd_trust_add(trust, &pub) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!trust)
                init_keys();
        sd_error err = { 0 };
        struct sd_recipient_info info;
        int r = sd_recipient_verify((const char *) data, size, trust, &info, &err);
        if (r < 0 && err.code != -r)
                abort();
        if ((r == 0 || r == -EKEYREJECTED) && !memchr(info.name, '\0', sizeof(info.name)))
                abort();
        return 0;
}
