/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Envelopes come from an untrusted store: parse, verify and open whatever
 * bytes it hands over.  The keys are derived from fixed seeds so the saved
 * corpus (valid envelopes sealed with these keys) reaches every check,
 * including decryption. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seeds shared with the program that generated the corpus. */
#define FUZZ_WRITER_SIGN_SEED 0x11
#define FUZZ_WRITER_BOX_SEED 0x22
#define FUZZ_AGENT_BOX_SEED 0x33

static struct sd_trust *trust;
static unsigned char agent_pk[SD_BOX_PK_BYTES], agent_sk[SD_BOX_SK_BYTES];

static void init_keys(void) {
        unsigned char seed[32], sign_pk[32], sign_sk[64], box_pk[32], box_sk[32];
        if (sodium_init() < 0 || sd_trust_new(&trust) < 0)
                abort();
        struct sd_writer_pub pub;
        memset(seed, FUZZ_WRITER_SIGN_SEED, sizeof(seed));
        crypto_sign_seed_keypair(sign_pk, sign_sk, seed);
        memset(seed, FUZZ_WRITER_BOX_SEED, sizeof(seed));
        crypto_box_seed_keypair(box_pk, box_sk, seed);
        memcpy(pub.sign_pk, sign_pk, 32);
        memcpy(pub.box_pk, box_pk, 32);
        if (sd_trust_add(trust, &pub) < 0)
                abort();
        memset(seed, FUZZ_AGENT_BOX_SEED, sizeof(seed));
        crypto_box_seed_keypair(agent_pk, agent_sk, seed);
}

static void open_as_agent(const uint8_t *data, size_t size, const char *name, uint64_t version) {
        sd_error err = { 0 };
        struct sd_envelope_info info;
        _cleanup_secret_ struct sd_secret *value = NULL;
        int r = sd_envelope_open((const char *) data, size, trust, name, version, agent_pk, agent_sk, &value,
                                 &info, &err);
        if (r == 0 && !info.tombstone && (!value || value->len != info.value_len))
                abort();
        if (r < 0 && (value || err.code != -r || !memchr(err.message, '\0', sizeof(err.message))))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!trust)
                init_keys();

        sd_error err = { 0 };
        struct sd_envelope_info info;
        int r = sd_envelope_verify((const char *) data, size, trust, &info, &err);
        if (r < 0 && err.code != -r)
                abort();

        open_as_agent(data, size, "db_password", 1);
        /* Reach the recipient and decryption steps for anything that
         * verifies: ask for exactly what it claims to be. */
        if (r == 0)
                open_as_agent(data, size, info.name, info.version);
        return 0;
}
