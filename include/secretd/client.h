/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Secret operations over a store: what `secretctl put/get/rm` and the agent
 * do, kept here so the front ends only parse input and report.
 */

#include <stddef.h>
#include <stdint.h>

#include "secretd/envelope.h"
#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/secret.h"
#include "secretd/store.h"
#include "secretd/trust.h"

struct sd_put_options {
        size_t max_len;        /* 0: SD_VALUE_MAX; larger than SD_VALUE_MAX is clamped */
        unsigned max_attempts; /* compare-and-swap attempts; 0: 1000 */
        sd_warn_fn warn;       /* untrusted recipient entries are reported here */
        void *warn_userdata;
};

/* Box keys of every recipient entry in the store signed by a trusted writer.
 * Entries signed by anyone else, or malformed, are skipped and reported
 * through warn. *keys_out is malloc()ed (may be NULL when n is 0). */
int sd_recipients_collect(struct sd_store *s, const struct sd_trust *trust,
                          unsigned char (**keys_out)[SD_BOX_PK_BYTES], size_t *n_out,
                          sd_warn_fn warn, void *warn_userdata, sd_error *err);

/* Seal value to the writer and every trusted recipient as the next version of
 * name and store it, retrying lost compare-and-swaps with jittered backoff.
 * *version_out (may be NULL) is the version written. */
int sd_secret_put(struct sd_store *s, const struct sd_writer_key *writer,
                  const struct sd_trust *trust, const char *name, const struct sd_secret *value,
                  const struct sd_put_options *opts, uint64_t *version_out, sd_error *err);

/* Write a signed tombstone as the next version.  -ENOENT if name has no
 * versions or is already deleted. */
int sd_secret_delete(struct sd_store *s, const struct sd_writer_key *writer,
                     const struct sd_trust *trust, const char *name,
                     const struct sd_put_options *opts, uint64_t *version_out, sd_error *err);

/* Fetch version (0: latest) of name, verify and decrypt it.  A tombstone
 * yields -ENOENT ("secret 'x' was deleted in version N") unless
 * allow_tombstone, in which case *value_out is NULL and info->tombstone set. */
int sd_secret_fetch(struct sd_store *s, const struct sd_trust *trust,
                    const unsigned char box_pk[SD_BOX_PK_BYTES],
                    const unsigned char box_sk[SD_BOX_SK_BYTES], const char *name,
                    uint64_t version, int allow_tombstone, struct sd_secret **value_out,
                    struct sd_envelope_info *info, sd_error *err);
