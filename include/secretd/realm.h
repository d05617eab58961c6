/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A realm as one reader sees it: the pin it trusts a priori, the highest
 * policy version it has verified (kept in a state file the store cannot
 * write), and the policy the store's chain verifies to from there.
 * secretctl and the agent use the same code.
 *
 * The walk (sd_realm_walk):
 *   1. latest L = the store's latest policy version (none: -ENOENT, or
 *      -ESTALE when the state file says a version was verified before);
 *   2. with a record of version V for this pin's realm: L < V is a rollback,
 *      refused (-ESTALE "the store offers policy vL, older than v V already
 *      verified"); version V must have the recorded digest (-ESTALE "the
 *      store's policy vV differs from the one verified before"); trust
 *      starts at V;
 *      without a record: trust starts at the lowest version that
 *      sd_policy_verify_pinned() accepts (so a pin taken after admins
 *      rotated still works);
 *   3. each next version must pass sd_policy_verify_next() up to L.
 * The record is raised only after every check passed (tough persisted
 * first, and could be talked into a state it never verified).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"
#include "secretd/policy.h"
#include "secretd/store.h"

/* The persisted "highest verified" record:
 *   {"format":1,"store":"<url, informational>","pin":"sdr1:...",
 *    "version":7,"digest":"<32 bytes, standard base64>"}
 * version 0 means nothing verified yet (digest all zero). */
struct sd_realm_record {
        struct sd_realm_pin pin;
        uint64_t version;
        unsigned char digest[SD_POLICY_DIGEST_BYTES];
};

/* Read a record.  A missing file is -ENOENT; a malformed one -EBADMSG
 * naming the file and the field; a file writable by group or others, or a
 * symlink, -EPERM/-ELOOP. */
int sd_realm_record_load(const char *path, struct sd_realm_record *out, sd_error *err);
/* Write it, mode 0600, stage-then-publish (parent directories created
 * 0700).  store_url is stored for people reading the file (may be NULL). */
int sd_realm_record_save(const char *path, const struct sd_realm_record *rec, const char *store_url,
                         sd_error *err);

/* Read a pin from a file that holds its line (as `secretd join` writes
 * it).  A trust root: the file must be a regular file (not a symlink)
 * owned by root or by the caller, not writable by group or others; else
 * -EPERM naming the owner or mode.  A missing file is -ENOENT. */
int sd_realm_pin_load_file(const char *path, struct sd_realm_pin *out, sd_error *err);
/* Write a pin file: a '#' comment line and the pin line, mode 0644, staged
 * and renamed into place (parent directories created 0755). */
int sd_realm_pin_save_file(const char *path, const struct sd_realm_pin *pin, sd_error *err);

/* One walk of the store's chain (above).  On success *policy_out is the
 * verified latest policy (a new reference) and *record_out the record to
 * keep (its pin is rec's).  Returns 1 when *record_out differs from rec
 * (the caller persists it), else 0.
 * With warn non-NULL, a version after the first trusted one that fails to
 * verify ends the walk at the last good version and is reported through warn
 * (the agent keeps serving); with warn NULL it is the error (secretctl).
 * Errors name versions and realms; -ESTALE for rollbacks, -EKEYREJECTED and
 * -EBADMSG for verification, -ENOENT for a store with no policy. */
int sd_realm_walk(struct sd_store *s, const struct sd_realm_record *rec, sd_warn_fn warn, void *warn_userdata,
                  struct sd_policy **policy_out, struct sd_realm_record *record_out, sd_error *err);

/* ---- a realm held by a long-running reader ----
 *
 * Thread-safe.  sd_realm_policy() hands out the current policy (a new
 * reference) while sd_realm_refresh() may replace it: readers keep verifying
 * with the policy they hold, never a mix. */
struct sd_realm;

/* Load state_path (a missing file is a fresh start; a record for another
 * realm than pin's is replaced: the caller decided to pin anew) without
 * touching the store.  The store must outlive the realm. */
int sd_realm_new(struct sd_store *store, const struct sd_realm_pin *pin, const char *state_path,
                 struct sd_realm **out, sd_error *err);
void sd_realm_free(struct sd_realm *r);
static inline void sd_realm_freep(struct sd_realm **r) {
        sd_realm_free(*r);
        *r = NULL;
}
#define _cleanup_realm_ _cleanup_(sd_realm_freep)

/* Where later versions that fail to verify are reported (see
 * sd_realm_walk); NULL (the default) makes them errors. */
void sd_realm_set_warn(struct sd_realm *r, sd_warn_fn warn, void *userdata);

/* Walk the chain again; on success swap in the verified latest policy (never
 * a lower version than the one held) and persist the record if it rose.
 * Returns 1 if the policy changed, 0 if not. */
int sd_realm_refresh(struct sd_realm *r, sd_error *err);

/* The current policy (a new reference), or NULL before the first successful
 * refresh. */
struct sd_policy *sd_realm_policy(struct sd_realm *r);

/* The pin and the current record. */
const struct sd_realm_pin *sd_realm_pin(const struct sd_realm *r);
struct sd_store *sd_realm_store(const struct sd_realm *r);
