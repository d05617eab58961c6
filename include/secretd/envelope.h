/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Envelopes: what the store holds instead of plaintext.
 *
 * One envelope per version of a secret.  Sealing:
 *   - a fresh random 32-byte data key;
 *   - value sealed with XChaCha20-Poly1305-IETF under the data key and a
 *     random 24-byte nonce; associated data = canonical encoding of
 *     (format, name, version), so a ciphertext cannot be moved to another
 *     name or version;
 *   - the data key sealed to each recipient's X25519 key with
 *     crypto_box_seal (the writer's own box key is always a recipient);
 *   - an Ed25519 signature by the writer over the canonical byte encoding of
 *     every other field (docs/envelope.md gives the exact layout).
 * A delete is a signed *tombstone*: same fields, kind "tombstone", no nonce,
 * ciphertext or recipients.
 *
 * Serialised as JSON (byte fields standard base64 with padding):
 *   {"format":1,"kind":"secret","name":"db_password","version":3,
 *    "created":1732800000,"signer":"<ed25519 pk>","nonce":"...",
 *    "ciphertext":"...","recipients":[{"key":"<x25519 pk>","wrapped":"..."}],
 *    "signature":"..."}
 *
 * Opening checks, in this order, and stops at the first failure:
 *   1. format (JSON shape, field types and sizes)   -EBADMSG
 *   2. signer is trusted                              -EKEYREJECTED
 *      signature verifies                             -EBADMSG
 *   3. name and version are the ones asked for        -EBADMSG
 *   4. this key is a recipient                        -ENOKEY
 *      data key unwraps, ciphertext authenticates     -EBADMSG
 * Every message names the secret, the version and the cause.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/names.h"
#include "secretd/secret.h"
#include "secretd/trust.h"

#define SD_ENVELOPE_FORMAT 1
/* Largest serialised envelope or record accepted by the parser: a 1 MiB value
 * in base64 plus generous room for recipients. */
#define SD_ENVELOPE_MAX_BYTES ((size_t) 4 << 20)
#define SD_ENVELOPE_MAX_RECIPIENTS 4096

/* What can be known about an envelope without decrypting it. */
struct sd_envelope_info {
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        bool tombstone;
        int64_t created;                              /* unix seconds, writer's clock */
        unsigned char signer[SD_SIGN_PK_BYTES];
        char signer_id[SD_KEY_ID_CHARS + 1];
        size_t n_recipients;
        size_t value_len;                             /* plaintext length; 0 for tombstones */
};

/* Seal value (NULL: a tombstone) as version `version` of `name`, signed by
 * writer, readable by the writer and each of the n box keys in recipients
 * (duplicates are dropped).  The JSON text is returned malloc()ed in
 * *json_out (NUL-terminated) with its length in *len_out (may be NULL).
 * -EINVAL for a bad name, version 0 (or >= 2^53) or an empty value; -EFBIG
 * for a value over SD_VALUE_MAX. */
int sd_envelope_seal(const char *name, uint64_t version, const struct sd_secret *value,
                     const struct sd_writer_key *writer,
                     const unsigned char (*recipients)[SD_BOX_PK_BYTES], size_t n_recipients,
                     char **json_out, size_t *len_out, sd_error *err);

/* Steps 1-2: parse and verify the signature against trust; fill *info.
 * Use this to list or inspect envelopes without a box key. */
int sd_envelope_verify(const char *json, size_t len, const struct sd_trust *trust,
                       struct sd_envelope_info *info, sd_error *err);

/* Steps 1-4.  name/version are what the caller asked the store for.  On
 * success *value_out is a new secret, or NULL when the envelope is a valid
 * tombstone (info->tombstone tells); info may be NULL. */
int sd_envelope_open(const char *json, size_t len, const struct sd_trust *trust,
                     const char *name, uint64_t version,
                     const unsigned char box_pk[SD_BOX_PK_BYTES],
                     const unsigned char box_sk[SD_BOX_SK_BYTES],
                     struct sd_secret **value_out, struct sd_envelope_info *info, sd_error *err);

/*
 * Recipient entries: an agent's public box key registered under a name in
 * the store, signed by a writer.
 *   {"format":1,"kind":"recipient","name":"host1","key":"<x25519 pk>",
 *    "created":1732800000,"signer":"<ed25519 pk>","signature":"..."}
 */
struct sd_recipient_info {
        char name[SD_NAME_MAX + 1];
        unsigned char box_pk[SD_BOX_PK_BYTES];
        int64_t created;
        unsigned char signer[SD_SIGN_PK_BYTES];
        char signer_id[SD_KEY_ID_CHARS + 1];
};

int sd_recipient_seal(const char *name, const unsigned char box_pk[SD_BOX_PK_BYTES],
                      const struct sd_writer_key *writer, char **json_out, size_t *len_out,
                      sd_error *err);

/* Parse and verify; -EKEYREJECTED if signed by an untrusted writer (info is
 * still filled with name and signer so the caller can warn about it). */
int sd_recipient_verify(const char *json, size_t len, const struct sd_trust *trust,
                        struct sd_recipient_info *info, sd_error *err);
