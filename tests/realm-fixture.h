/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Test fixtures for realms, shared by unit, CLI, fuzz and benchmark code:
 *   - fx_policy() and friends build signed policies without the CLI;
 *   - fx_legacy_seal() writes a format-1 envelope (from before realms) the
 *     way docs/envelope.md describes it, independently of src/envelope.c,
 *     so migration and reseal can be tested against the documented bytes.
 * Everything aborts with a message on failure: a fixture that cannot be
 * built is a broken test, not a result.
 */

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretd/policy.h"

static inline void fx_check(int ok, const char *what, const sd_error *err) {
        if (!ok) {
                fprintf(stderr, "fixture: %s: %s\n", what, err && err->code ? err->message : "failed");
                abort();
        }
}

/* Version 1 of a realm (realm NULL: random): admin named "admin",
 * threshold 1, signed by admin. */
static inline struct sd_policy *fx_policy(const struct sd_writer_key *admin, const unsigned char *realm) {
        sd_error err = { 0 };
        struct sd_policy *p = NULL;
        fx_check(sd_policy_new(realm, &p, &err) == 0, "sd_policy_new", &err);
        fx_check(sd_policy_add(p, SD_POLICY_ADMINS, "admin", admin->pub.sign_pk, admin->pub.box_pk, NULL, 0, &err) == 0,
                 "add admin", &err);
        fx_check(sd_policy_set_threshold(p, 1, &err) == 0, "threshold", &err);
        fx_check(sd_policy_sign(p, admin, &err) == 0, "sign", &err);
        return p;
}

/* Add a writer (pattern NULL: every name) to a draft. */
static inline void fx_writer(struct sd_policy *p, const char *name, const struct sd_writer_key *w, const char *pattern) {
        sd_error err = { 0 };
        const char *pats[1] = { pattern };
        fx_check(sd_policy_add(p, SD_POLICY_WRITERS, name, w->pub.sign_pk, w->pub.box_pk, pattern ? pats : NULL,
                               pattern ? 1 : 0, &err) == 0,
                 "add writer", &err);
}

static inline void fx_recipient(struct sd_policy *p, const char *name, const unsigned char box_pk[SD_BOX_PK_BYTES],
                                const char *pattern) {
        sd_error err = { 0 };
        const char *pats[1] = { pattern };
        fx_check(sd_policy_add(p, SD_POLICY_RECIPIENTS, name, NULL, box_pk, pattern ? pats : NULL, pattern ? 1 : 0, &err) == 0,
                 "add recipient", &err);
}

static inline void fx_sign(struct sd_policy *p, const struct sd_writer_key *k) {
        sd_error err = { 0 };
        fx_check(sd_policy_sign(p, k, &err) == 0, "sign", &err);
}

static inline struct sd_policy *fx_next(const struct sd_policy *p) {
        sd_error err = { 0 };
        struct sd_policy *d = NULL;
        fx_check(sd_policy_next_draft(p, &d, &err) == 0, "next draft", &err);
        return d;
}

static inline char *fx_policy_json(const struct sd_policy *p, size_t *len_out) {
        char *json = NULL;
        size_t len = 0;
        fx_check(sd_policy_to_json(p, &json, &len) == 0, "policy to JSON", NULL);
        if (len_out)
                *len_out = len;
        return json;
}

/* ---- the legacy format-1 envelope, by the documented layout ---- */

struct fx_bytes {
        unsigned char *data;
        size_t len;
};

static inline void fx_put(struct fx_bytes *b, const void *p, size_t n) {
        b->data = realloc(b->data, b->len + n + 1);
        fx_check(b->data != NULL, "realloc", NULL);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static inline void fx_put_u32(struct fx_bytes *b, uint32_t v) {
        unsigned char x[4] = { (unsigned char) (v >> 24), (unsigned char) (v >> 16), (unsigned char) (v >> 8),
                               (unsigned char) v };
        fx_put(b, x, 4);
}

static inline void fx_put_u64(struct fx_bytes *b, uint64_t v) {
        fx_put_u32(b, (uint32_t) (v >> 32));
        fx_put_u32(b, (uint32_t) v);
}

static inline void fx_put_field(struct fx_bytes *b, const void *p, size_t n) {
        fx_put_u32(b, (uint32_t) n);
        fx_put(b, p, n);
}

static inline json_t *fx_b64(const void *p, size_t n) {
        size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc(cap);
        fx_check(text != NULL, "malloc", NULL);
        sodium_bin2base64(text, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
        json_t *s = json_string(text);
        free(text);
        return s;
}

/* A format-1 secret envelope of value[0..len) for name/version, signed by
 * writer, sealed to the writer and to keys[0..n). */
static inline char *fx_legacy_seal(const char *name, uint64_t version, const void *value, size_t len,
                                   const struct sd_writer_key *writer, const unsigned char (*keys)[32], size_t n) {
        fx_check(sodium_init() >= 0, "sodium_init", NULL);
        unsigned char data_key[32], nonce[24];
        crypto_aead_xchacha20poly1305_ietf_keygen(data_key);
        randombytes_buf(nonce, sizeof(nonce));
        struct fx_bytes ad = { 0 };
        fx_put_field(&ad, "secretd/envelope-ad/v1", strlen("secretd/envelope-ad/v1"));
        fx_put_u64(&ad, 1);
        fx_put_field(&ad, name, strlen(name));
        fx_put_u64(&ad, version);
        size_t ct_len = len + 16;
        unsigned char *ct = malloc(ct_len);
        fx_check(ct != NULL, "malloc", NULL);
        (void) crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, value, len, ad.data, ad.len, NULL, nonce, data_key);
        free(ad.data);

        size_t n_rec = n + 1;
        unsigned char(*rk)[32] = calloc(n_rec, 32), (*wrapped)[80] = calloc(n_rec, 80);
        fx_check(rk && wrapped, "calloc", NULL);
        memcpy(rk[0], writer->pub.box_pk, 32);
        memcpy(rk + 1, keys, n * 32);
        for (size_t i = 0; i < n_rec; i++)
                fx_check(crypto_box_seal(wrapped[i], data_key, 32, rk[i]) == 0, "crypto_box_seal", NULL);

        int64_t created = (int64_t) time(NULL);
        struct fx_bytes msg = { 0 };
        fx_put_field(&msg, "secretd/envelope/v1", strlen("secretd/envelope/v1"));
        fx_put_u64(&msg, 1);
        fx_put_field(&msg, "secret", 6);
        fx_put_field(&msg, name, strlen(name));
        fx_put_u64(&msg, version);
        fx_put_u64(&msg, (uint64_t) created);
        fx_put_field(&msg, writer->pub.sign_pk, 32);
        fx_put_field(&msg, nonce, 24);
        fx_put_field(&msg, ct, ct_len);
        fx_put_u32(&msg, (uint32_t) n_rec);
        for (size_t i = 0; i < n_rec; i++) {
                fx_put_field(&msg, rk[i], 32);
                fx_put_field(&msg, wrapped[i], 80);
        }
        unsigned char sig[64];
        crypto_sign_detached(sig, NULL, msg.data, msg.len, writer->sign_sk);
        free(msg.data);

        json_t *recipients = json_array();
        for (size_t i = 0; i < n_rec; i++)
                json_array_append_new(recipients, json_pack("{s:o, s:o}", "key", fx_b64(rk[i], 32), "wrapped",
                                                            fx_b64(wrapped[i], 80)));
        json_t *root = json_pack("{s:i, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "format", 1, "kind", "secret",
                                 "name", name, "version", (json_int_t) version, "created", (json_int_t) created,
                                 "signer", fx_b64(writer->pub.sign_pk, 32), "nonce", fx_b64(nonce, 24), "ciphertext",
                                 fx_b64(ct, ct_len), "recipients", recipients, "signature", fx_b64(sig, 64));
        fx_check(root != NULL, "json_pack", NULL);
        char *json = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        free(ct);
        free(rk);
        free(wrapped);
        sodium_memzero(data_key, sizeof(data_key));
        return json;
}
