/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Envelopes: what the store holds instead of plaintext.
 *
 * One envelope per version of a secret.  Sealing (format 2):
 *   - a fresh random 32-byte data key;
 *   - value sealed with XChaCha20-Poly1305-IETF under the data key and a
 *     random 24-byte nonce; associated data = canonical encoding of
 *     (format, realm, policy version, name, version), so a ciphertext cannot
 *     be moved to another name, version or realm;
 *   - the data key sealed to the writer's own box key and to every box key
 *     the realm policy allows for the name (sd_policy_recipients_for: the
 *     recipients whose patterns cover it, and the admins) with
 *     crypto_box_seal;
 *   - an Ed25519 signature by the writer over the canonical byte encoding of
 *     every other field, including the realm id and the policy version it
 *     was sealed under (docs/envelope.md gives the exact layout).
 * A delete is a signed *tombstone*: same fields, kind "tombstone", no nonce,
 * ciphertext or recipients.
 *
 * Serialised as JSON (byte fields standard base64 with padding):
 *   {"format":2,"kind":"secret","realm":"<16 bytes>","policy":4,
 *    "name":"db_password","version":3,"created":1732800000,
 *    "signer":"<ed25519 pk>","nonce":"...","ciphertext":"...",
 *    "recipients":[{"key":"<x25519 pk>","wrapped":"..."}],"signature":"..."}
 * Format 1 (before realms) has no "realm" and "policy"; it is still parsed,
 * but only a caller that passes SD_ENVELOPE_LEGACY (reseal, import) accepts
 * it.
 *
 * Verifying against a policy P checks, in this order, and stops at the first
 * failure (every message names the secret, the version and the cause):
 *   1. shape: JSON, field set, types and sizes              -EBADMSG
 *      format 1 without SD_ENVELOPE_LEGACY: "an admin must
 *      run 'secretctl reseal NAME'"                           -EBADMSG
 *   2. realm id is P's: "belongs to realm X, the pinned
 *      realm is Y"                                            -EBADMSG
 *   3. sealed under a policy version <= P's: else "sealed
 *      under policy vK, newer than the verified vN"           -EAGAIN
 *      (the caller refreshes its policy once and tries again)
 *   4. signer is an admin of P, or a writer whose patterns
 *      cover the name                                         -EKEYREJECTED
 *   5. the signature verifies                                 -EBADMSG
 *   6. (open) name and version are the ones asked for         -EBADMSG
 *      one of the given keys is a recipient                   -ENOKEY
 *      data key unwraps, ciphertext authenticates             -EBADMSG
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/names.h"
#include "secretd/policy.h"
#include "secretd/secret.h"
#include "secretd/trust.h"

#define SD_ENVELOPE_FORMAT 2
#define SD_ENVELOPE_FORMAT_LEGACY 1
/* Largest serialised envelope or record accepted by the parser: a 1 MiB value
 * in base64 plus generous room for recipients. */
#define SD_ENVELOPE_MAX_BYTES ((size_t) 4 << 20)
#define SD_ENVELOPE_MAX_RECIPIENTS 4096

/* Flags of sd_envelope_verify() and sd_envelope_open(). */
enum {
        /* Accept a format-1 envelope (no realm binding) if its signer
         * passes step 4: for reseal and import, never for delivery. */
        SD_ENVELOPE_LEGACY = 1 << 0,
};

/* What can be known about an envelope without decrypting it. */
struct sd_envelope_info {
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        bool tombstone;
        unsigned format;                              /* 1 (legacy) or 2 */
        unsigned char realm[SD_REALM_ID_BYTES];       /* zero for format 1 */
        uint64_t policy;                              /* policy version sealed under; 0 for format 1 */
        int64_t created;                              /* unix seconds, writer's clock */
        unsigned char signer[SD_SIGN_PK_BYTES];
        char signer_id[SD_KEY_ID_CHARS + 1];
        size_t n_recipients;
        size_t value_len;                             /* plaintext length; 0 for tombstones */
};

/* Seal value (NULL: a tombstone) as version `version` of `name` under
 * policy, signed by writer.  The policy's rules apply first
 * (sd_policy_check_write): a writer not in it or outside its patterns is
 * -EKEYREJECTED, a value no recipient may receive -ENOKEY; nothing is
 * sealed then.  Readable by the writer and sd_policy_recipients_for(name).
 * The JSON text is returned malloc()ed in *json_out (NUL-terminated) with
 * its length in *len_out (may be NULL).  -EINVAL for a bad name, version 0
 * (or >= 2^53) or an empty value; -EFBIG for a value over SD_VALUE_MAX. */
int sd_envelope_seal(const char *name, uint64_t version, const struct sd_secret *value,
                     const struct sd_writer_key *writer, const struct sd_policy *policy, char **json_out,
                     size_t *len_out, sd_error *err);

/* Steps 1-5: parse and verify against policy; fill *info (may be NULL).
 * Use this to list or inspect envelopes without a box key.  On -EAGAIN
 * (step 3) info is filled, so the caller sees which policy version it
 * needs. */
int sd_envelope_verify(const char *json, size_t len, const struct sd_policy *policy, int flags,
                       struct sd_envelope_info *info, sd_error *err);

/* Steps 1-6.  name/version are what the caller asked the store for; keys
 * are the box key pairs to try (an agent's current and previous key).  On
 * success *value_out is a new secret, or NULL when the envelope is a valid
 * tombstone (info->tombstone tells); info may be NULL.  On -EAGAIN (step 3)
 * and on -ENOKEY (the envelope verified, but is sealed to none of keys)
 * info is filled too, so the caller can say which version it was. */
int sd_envelope_open(const char *json, size_t len, const struct sd_policy *policy, int flags, const char *name,
                     uint64_t version, const struct sd_box_keypair *keys, size_t n_keys,
                     struct sd_secret **value_out, struct sd_envelope_info *info, sd_error *err);

/* The recipient box keys of a (well-formed) envelope, in stored order,
 * malloc()ed (NULL and 0 for a tombstone).  Parses only: call it on
 * envelopes that have been verified. */
int sd_envelope_recipient_keys(const char *json, size_t len, unsigned char (**keys_out)[SD_BOX_PK_BYTES],
                               size_t *n_out, sd_error *err);

/*
 * Recipient entries (legacy, before realms): an agent's public box key
 * registered under a name in the store, signed by a writer.  Only
 * `secretctl realm init` reads them, to import them into policy version 1.
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
