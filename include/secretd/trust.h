/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Legacy trust, from before realms: a set of writers whose signatures a
 * reader accepted.  The realm policy (include/secretd/policy.h) replaced
 * it; `secretctl realm init` still reads a trust file to import its writers
 * into policy version 1, and to verify the legacy recipient entries it
 * imports.
 *
 * Trust file format (secretctl's $XDG_CONFIG_HOME/secretctl/trusted, the
 * agent's old trusted-writers file): one "sdw1:..." public identity per
 * line, optionally followed by whitespace and a free comment; blank lines
 * and lines starting with '#' are ignored.
 */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"
#include "secretd/keys.h"

struct sd_trust;  /* opaque */

int sd_trust_new(struct sd_trust **out);
void sd_trust_free(struct sd_trust *t);
static inline void sd_trust_freep(struct sd_trust **t) {
        sd_trust_free(*t);
        *t = NULL;
}
#define _cleanup_trust_ _cleanup_(sd_trust_freep)

/* Add a writer (no-op if already present). */
int sd_trust_add(struct sd_trust *t, const struct sd_writer_pub *pub);

/* Add every writer listed in path.  A missing file is not an error (0 added).
 * A malformed line: -EINVAL naming path and line number.  Returns the number
 * of writers added. */
int sd_trust_load_file(struct sd_trust *t, const char *path, sd_error *err);

/* Is this Ed25519 key trusted?  If so and pub_out is non-NULL, copy the full
 * public identity. */
bool sd_trust_find(const struct sd_trust *t, const unsigned char sign_pk[SD_SIGN_PK_BYTES],
                   struct sd_writer_pub *pub_out);

size_t sd_trust_count(const struct sd_trust *t);
const struct sd_writer_pub *sd_trust_get(const struct sd_trust *t, size_t i);
/* The first word of writer i's comment in its trust file ("alice" from
 * "sdw1:...  alice's laptop"), or "" when there is none. */
const char *sd_trust_comment_word(const struct sd_trust *t, size_t i);
