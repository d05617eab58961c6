/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Keys.
 *
 * A *writer identity* (secretctl keygen) is an Ed25519 signing key plus an
 * X25519 box key, so a writer can read back what it wrote.  Its public half
 * is one line of text:
 *
 *     sdw1:<base64url, no padding, of sign_pk(32) || box_pk(32)>
 *
 * An *agent key* (secretd init) is an X25519 box key; its public line is
 *
 *     sda1:<base64url, no padding, of box_pk(32)>
 *
 * A *key id* is the first 8 bytes of BLAKE2b-256(sign_pk or box_pk) as 16
 * lower-case hex characters: short enough for messages, long enough not to
 * collide by chance.
 *
 * Private key files hold one line "sdw1-secret:<base64url(sign seed(32) ||
 * box_sk(32))>" or "sda1-secret:<base64url(box_sk(32))>" after optional '#'
 * comment lines; they are written 0600 by stage-then-publish and refused on
 * load if group or others can read them.  Private key structs live in
 * sodium_malloc()ed memory.
 */

#include <stdbool.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

#define SD_SIGN_PK_BYTES 32
#define SD_SIGN_SK_BYTES 64
#define SD_BOX_PK_BYTES 32
#define SD_BOX_SK_BYTES 32
#define SD_KEY_ID_CHARS 16   /* hex chars, excluding NUL */

struct sd_writer_pub {
        unsigned char sign_pk[SD_SIGN_PK_BYTES];
        unsigned char box_pk[SD_BOX_PK_BYTES];
};

struct sd_writer_key {
        struct sd_writer_pub pub;
        unsigned char sign_sk[SD_SIGN_SK_BYTES];
        unsigned char box_sk[SD_BOX_SK_BYTES];
};

struct sd_agent_key {
        unsigned char box_pk[SD_BOX_PK_BYTES];
        unsigned char box_sk[SD_BOX_SK_BYTES];
};

/* A box key pair to open envelopes with: pointers into a key held
 * elsewhere (an sd_agent_key, or the box half of an sd_writer_key), so the
 * private half is never copied out of locked memory.  Opening takes an
 * array of them: an agent keeps its old key next to a new one while secrets
 * are resealed. */
struct sd_box_keypair {
        const unsigned char *pk;   /* SD_BOX_PK_BYTES */
        const unsigned char *sk;   /* SD_BOX_SK_BYTES */
};

/* Key id of a 32-byte public key into out (SD_KEY_ID_CHARS + 1 bytes). */
void sd_key_id(const unsigned char pk[32], char out[SD_KEY_ID_CHARS + 1]);

/* Is pk an X25519 key that something can be sealed to?  A low-order point
 * would make every seal fail, or worse, be readable by anyone. */
bool sd_box_pk_usable(const unsigned char pk[SD_BOX_PK_BYTES]);

/* ---- writer identities ---- */

int sd_writer_key_generate(struct sd_writer_key **out, sd_error *err);
void sd_writer_key_free(struct sd_writer_key *k);
static inline void sd_writer_key_freep(struct sd_writer_key **k) {
        sd_writer_key_free(*k);
        *k = NULL;
}
#define _cleanup_writer_key_ _cleanup_(sd_writer_key_freep)

/* Write the identity to path (parent directories created 0700).  An existing
 * file: -EEXIST unless force.  Staged in the same directory, fsync'ed, then
 * renamed into place. */
int sd_writer_key_save(const struct sd_writer_key *k, const char *path, bool force, sd_error *err);

/* -ENOENT if missing, -EPERM if group or others have any access (mode &
 * 077), -ELOOP for a symlink, -EINVAL if not an identity file. */
int sd_writer_key_load(const char *path, struct sd_writer_key **out, sd_error *err);

/* "sdw1:..." into a malloc()ed string. */
int sd_writer_pub_format(const struct sd_writer_pub *pub, char **out);

/* Parse the first whitespace-separated token of text as "sdw1:...". */
int sd_writer_pub_parse(const char *text, struct sd_writer_pub *out, sd_error *err);

/* ---- agent keys ---- */

int sd_agent_key_generate(struct sd_agent_key **out, sd_error *err);
void sd_agent_key_free(struct sd_agent_key *k);
static inline void sd_agent_key_freep(struct sd_agent_key **k) {
        sd_agent_key_free(*k);
        *k = NULL;
}
#define _cleanup_agent_key_ _cleanup_(sd_agent_key_freep)

int sd_agent_key_save(const struct sd_agent_key *k, const char *path, bool force, sd_error *err);
int sd_agent_key_load(const char *path, struct sd_agent_key **out, sd_error *err);

/* "sda1:..." into a malloc()ed string / parse it back (first token). */
int sd_agent_pub_format(const unsigned char box_pk[SD_BOX_PK_BYTES], char **out);
int sd_agent_pub_parse(const char *text, unsigned char box_pk[SD_BOX_PK_BYTES], sd_error *err);
