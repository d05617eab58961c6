/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The realm the envelope, policy and archive harnesses share, from fixed
 * seeds so saved corpora stay valid: a writer (also the admin), an agent,
 * a realm id of 16 bytes 0x44, policy version 1 with the agent as a
 * recipient of every name.  tests/fuzz/make-corpus.c writes inputs sealed
 * with the same keys.
 */

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/keys.h"
#include "secretd/policy.h"

#define FUZZ_WRITER_SIGN_SEED 0x11
#define FUZZ_WRITER_BOX_SEED 0x22
#define FUZZ_AGENT_BOX_SEED 0x33
#define FUZZ_REALM_BYTE 0x44

struct fuzz_realm {
        struct sd_writer_key *writer;   /* sodium_malloc()ed */
        unsigned char agent_pk[SD_BOX_PK_BYTES], agent_sk[SD_BOX_SK_BYTES];
        struct sd_policy *policy;
        struct sd_realm_pin pin;
};

static inline void fuzz_realm_init(struct fuzz_realm *f) {
        unsigned char seed[32];
        sd_error err = { 0 };
        if (sodium_init() < 0)
                abort();
        f->writer = sodium_malloc(sizeof(*f->writer));
        if (!f->writer)
                abort();
        memset(seed, FUZZ_WRITER_SIGN_SEED, sizeof(seed));
        crypto_sign_seed_keypair(f->writer->pub.sign_pk, f->writer->sign_sk, seed);
        memset(seed, FUZZ_WRITER_BOX_SEED, sizeof(seed));
        crypto_box_seed_keypair(f->writer->pub.box_pk, f->writer->box_sk, seed);
        memset(seed, FUZZ_AGENT_BOX_SEED, sizeof(seed));
        crypto_box_seed_keypair(f->agent_pk, f->agent_sk, seed);
        unsigned char realm[SD_REALM_ID_BYTES];
        memset(realm, FUZZ_REALM_BYTE, sizeof(realm));
        if (sd_policy_new(realm, &f->policy, &err) < 0 ||
            sd_policy_add(f->policy, SD_POLICY_ADMINS, "admin", f->writer->pub.sign_pk, f->writer->pub.box_pk, NULL, 0,
                          &err) < 0 ||
            sd_policy_set_threshold(f->policy, 1, &err) < 0 ||
            sd_policy_add(f->policy, SD_POLICY_WRITERS, "dev", f->writer->pub.sign_pk, f->writer->pub.box_pk, NULL, 0,
                          &err) < 0 ||
            sd_policy_add(f->policy, SD_POLICY_RECIPIENTS, "host1", NULL, f->agent_pk, NULL, 0, &err) < 0 ||
            sd_policy_sign(f->policy, f->writer, &err) < 0)
                abort();
        sd_realm_pin_of(f->policy, &f->pin);
}
