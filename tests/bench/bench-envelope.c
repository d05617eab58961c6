/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What opening an envelope costs next to the bare AEAD it wraps: JSON
 * parsing, base64, the Ed25519 signature check, the sealed-box unwrap and
 * locked allocations all come on top of XChaCha20-Poly1305 itself.  Prints a
 * table; asserts nothing about time. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretd/envelope.h"
#include "../realm-fixture.h"

#define TARGET_SECONDS 0.5

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

struct rate {
        double ops_per_s;
        double mb_per_s;
};

struct open_job {
        const char *json;
        size_t len;
        const struct sd_policy *policy;
        struct sd_box_keypair kp;
};

static int run_open(const struct open_job *j) {
        sd_error err = { 0 };
        _cleanup_secret_ struct sd_secret *value = NULL;
        int r = sd_envelope_open(j->json, j->len, j->policy, 0, "bench", 1, &j->kp, 1, &value, NULL, &err);
        if (r < 0)
                fprintf(stderr, "open failed: %s\n", err.message);
        return r;
}

struct raw_job {
        const unsigned char *ct;
        size_t ct_len;
        const unsigned char *nonce, *key, *ad;
        size_t ad_len;
        unsigned char *out;
};

static int run_raw(const struct raw_job *j) {
        unsigned long long out_len;
        return crypto_aead_xchacha20poly1305_ietf_decrypt(j->out, &out_len, NULL, j->ct, j->ct_len, j->ad, j->ad_len,
                                                          j->nonce, j->key);
}

/* Run fn until TARGET_SECONDS have passed, checking the clock in growing
 * batches so the clock itself costs nothing measurable. */
#define MEASURE(fn, job, bytes) __extension__ ({                                  \
        double _start = now(), _elapsed = 0;                                       \
        unsigned long _ops = 0, _batch = 1;                                        \
        while (_elapsed < TARGET_SECONDS) {                                        \
                for (unsigned long _i = 0; _i < _batch; _i++)                      \
                        if (fn(job) != 0)                                          \
                                exit(1);                                           \
                _ops += _batch;                                                    \
                _elapsed = now() - _start;                                         \
                if (_elapsed < TARGET_SECONDS / 20)                                \
                        _batch *= 2;                                               \
        }                                                                          \
        (struct rate) { .ops_per_s = (double) _ops / _elapsed,                     \
                        .mb_per_s = (double) _ops * (double) (bytes) / _elapsed / 1e6 }; \
})

int main(void) {
        if (sodium_init() < 0)
                return 1;
        sd_error err = { 0 };
        _cleanup_writer_key_ struct sd_writer_key *writer = NULL;
        if (sd_writer_key_generate(&writer, &err) < 0)
                return 1;

        /* Policies of the writer (as admin) and one or two agents; the
         * agent that opens is last in the list, so the lookup walks it all. */
        struct sd_agent_key *agents[2] = { NULL, NULL };
        struct sd_policy *policies[2] = { NULL, NULL };
        for (size_t i = 0; i < 2; i++)
                if (sd_agent_key_generate(&agents[i], &err) < 0)
                        return 1;
        for (size_t c = 0; c < 2; c++) {
                policies[c] = fx_policy(writer, NULL);
                for (size_t i = 0; i <= c; i++)
                        fx_recipient(policies[c], i ? "host2" : "host1", agents[i]->box_pk, NULL);
                fx_sign(policies[c], writer);
        }

        const size_t sizes[] = { 64, 4096, 65536 };
        const size_t recipient_counts[] = { 2, 3 };

        printf("envelope open vs raw XChaCha20-Poly1305 decrypt (%.1f s per row)\n\n", TARGET_SECONDS);
        printf("%8s %6s %12s %10s %12s %10s %8s\n", "size", "recips", "open ops/s", "open MB/s", "raw ops/s",
               "raw MB/s", "raw/open");

        for (size_t s = 0; s < SD_ARRAY_SIZE(sizes); s++) {
                _cleanup_secret_ struct sd_secret *value = NULL;
                if (sd_secret_new(sizes[s], &value) < 0)
                        return 1;
                randombytes_buf(value->data, value->len);

                /* The bare AEAD on the same size, with an AD of the same
                 * length the envelope uses. */
                unsigned char key[32], nonce[24], ad[64];
                crypto_aead_xchacha20poly1305_ietf_keygen(key);
                randombytes_buf(nonce, sizeof(nonce));
                randombytes_buf(ad, sizeof(ad));
                size_t ct_len = sizes[s] + crypto_aead_xchacha20poly1305_ietf_ABYTES;
                unsigned char *ct = malloc(ct_len), *out = malloc(sizes[s]);
                if (!ct || !out)
                        return 1;
                unsigned long long n;
                crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &n, value->data, value->len, ad, 43, NULL, nonce, key);
                struct raw_job raw = { ct, ct_len, nonce, key, ad, 43, out };
                struct rate raw_rate = MEASURE(run_raw, &raw, sizes[s]);

                for (size_t c = 0; c < SD_ARRAY_SIZE(recipient_counts); c++) {
                        /* The writer (also the admin) is always recipient 1;
                         * the agents of the policy make up the count. */
                        const struct sd_agent_key *reader = agents[c];
                        _cleanup_free_ char *json = NULL;
                        size_t len = 0;
                        if (sd_envelope_seal("bench", 1, value, writer, policies[c], &json, &len, &err) < 0) {
                                fprintf(stderr, "%s\n", err.message);
                                return 1;
                        }
                        struct open_job job = { json, len, policies[c], { reader->box_pk, reader->box_sk } };
                        struct rate open_rate = MEASURE(run_open, &job, sizes[s]);
                        printf("%8zu %6zu %12.0f %10.2f %12.0f %10.1f %7.0fx\n", sizes[s], recipient_counts[c],
                               open_rate.ops_per_s, open_rate.mb_per_s, raw_rate.ops_per_s, raw_rate.mb_per_s,
                               raw_rate.ops_per_s / open_rate.ops_per_s);
                }
                free(ct);
                free(out);
        }
        for (size_t i = 0; i < 2; i++) {
                sd_agent_key_free(agents[i]);
                sd_policy_unref(policies[i]);
        }
        return 0;
}
