/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Secret operations over a store: what `secretctl put/get/rm/reseal/export/
 * import` and the agent do, kept here so the front ends only parse input and
 * report.  Every write follows the realm policy; every read is verified
 * against it (docs/trust.md).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/envelope.h"
#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/policy.h"
#include "secretd/realm.h"
#include "secretd/secret.h"
#include "secretd/store.h"
#include "secretd/trust.h"

struct sd_put_options {
        size_t max_len;        /* 0: SD_VALUE_MAX; larger than SD_VALUE_MAX is clamped */
        unsigned max_attempts; /* compare-and-swap attempts; 0: 1000 */
        sd_warn_fn warn;       /* non-fatal problems (reseal, migration) are reported here */
        void *warn_userdata;
};

/* Seal value under policy as the next version of name and store it,
 * retrying lost compare-and-swaps with jittered backoff.  The policy decides
 * first (sd_policy_check_write; front ends call it before asking for the
 * value): a writer not in it or outside its patterns is -EKEYREJECTED, a
 * name no recipient may receive -ENOKEY, and nothing is stored.
 * *version_out (may be NULL) is the version written. */
int sd_secret_put(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                  const char *name, const struct sd_secret *value, const struct sd_put_options *opts,
                  uint64_t *version_out, sd_error *err);

/* Write a signed tombstone as the next version, under the same writer rule.
 * -ENOENT if name has no versions or is already deleted. */
int sd_secret_delete(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                     const char *name, const struct sd_put_options *opts, uint64_t *version_out, sd_error *err);

/* Fetch version (0: latest) of name and open it against policy (flags as
 * sd_envelope_open) with the first of keys that is a recipient.  A
 * tombstone yields -ENOENT ("secret 'x' was deleted in version N") unless
 * allow_tombstone, in which case *value_out is NULL and info->tombstone set.
 * An envelope sealed under a newer policy than this one is -EAGAIN.  On
 * -EAGAIN and -ENOKEY info (may be NULL) is filled as sd_envelope_open
 * fills it. */
int sd_secret_fetch_under(struct sd_store *s, const struct sd_policy *policy, int flags,
                          const struct sd_box_keypair *keys, size_t n_keys, const char *name, uint64_t version,
                          int allow_tombstone, struct sd_secret **value_out, struct sd_envelope_info *info,
                          sd_error *err);

/* The same against the realm's current policy, for readers that serve
 * (the agent, secretctl get): with no policy yet, or when the envelope names
 * a newer policy version than the one held, the realm is refreshed once
 * (sd_realm_refresh) and the fetch tried again; still newer is -EBADMSG
 * "sealed under policy vK, newer than the verified vN". */
int sd_secret_fetch(struct sd_realm *realm, const struct sd_box_keypair *keys, size_t n_keys, const char *name,
                    uint64_t version, int allow_tombstone, struct sd_secret **value_out,
                    struct sd_envelope_info *info, sd_error *err);

/* Open the envelope bytes json[0..len) of version `version` of name against
 * the realm's current policy, with the first of keys that is a recipient,
 * refreshing the realm once when the envelope names a newer policy version
 * (as sd_secret_fetch does).  *policy_version_out (may be NULL) is the
 * policy version it verified against.  Tombstones open with *value_out
 * NULL (info->tombstone). */
int sd_realm_envelope_open(struct sd_realm *realm, const char *json, size_t len, const char *name, uint64_t version,
                           const struct sd_box_keypair *keys, size_t n_keys, struct sd_secret **value_out,
                           struct sd_envelope_info *info, uint64_t *policy_version_out, sd_error *err);

/* Newest verified version: of `versions` (ascending, as sd_store_history
 * gives them), open the newest one that verifies and is not below floor,
 * trying from the newest down.  Each version that fails is reported through
 * warn (one line naming it and why) before the next is tried.  A tombstone
 * that verifies counts (*value_out NULL, info->tombstone).  When none does,
 * the error of the newest one tried is returned (-ENOENT when every version
 * is below floor). */
int sd_secret_fetch_newest_verified(struct sd_realm *realm, const struct sd_box_keypair *keys, size_t n_keys,
                                    const char *name, const uint64_t *versions, size_t n_versions, uint64_t floor,
                                    sd_warn_fn warn, void *warn_userdata, struct sd_secret **value_out,
                                    struct sd_envelope_info *info, sd_error *err);

/* ---- reseal ---- */

enum sd_reseal_state {
        SD_RESEAL_CURRENT,   /* sealed to exactly the policy's recipients: nothing to do */
        SD_RESEAL_NEEDED,    /* dry run: would be resealed (reason says why) */
        SD_RESEAL_DONE,      /* a new version was written (new_version) */
        SD_RESEAL_DELETED,   /* the latest version is a tombstone: nothing to seal */
        SD_RESEAL_FAILED,    /* error says why; the others go on */
};

struct sd_reseal_item {
        const char *name;
        uint64_t version;              /* the latest version examined */
        uint64_t new_version;          /* SD_RESEAL_DONE */
        enum sd_reseal_state state;
        char reason[SD_ERROR_MESSAGE_MAX];   /* "+ host2; - key 3f9a... (no longer a recipient)", "format 1 ..." */
        sd_error error;                /* SD_RESEAL_FAILED */
};

typedef void (*sd_reseal_fn)(void *userdata, const struct sd_reseal_item *item);

/* For each name (n_names 0: every secret in the store), read the latest
 * version; if its sealed recipient set differs from what the policy gives
 * now (sd_policy_recipients_for plus its writer's own box key while that
 * writer may still write the name), or it is in format 1, write a new
 * version with the same value, a fresh data key and the current recipients,
 * signed by admin (who opens the old version: admins receive every put).
 * The compare-and-swap is on exactly the version read, so a concurrent put
 * is never overwritten with an older value: the name is examined again.
 * dry_run writes nothing.  fn sees every name once.  Returns the number of
 * names that failed (>= 0), or a negative error when the store cannot be
 * listed. */
int sd_secret_reseal(struct sd_store *s, const struct sd_writer_key *admin, const struct sd_policy *policy,
                     const char *const *names, size_t n_names, bool dry_run, const struct sd_put_options *opts,
                     sd_reseal_fn fn, void *userdata, sd_error *err);

/* ---- migration from before realms ---- */

/* Policy version 1 of a new realm for the store s: admin (named admin_name)
 * its only admin, threshold 1, and a writer of '*'; every writer of the
 * legacy trust set (named after the first word of its comment when that is a
 * valid, unused name, else "writer-<key id>") a writer of '*'; and every
 * legacy recipient entry in the store that verifies against trust plus the
 * admin's own key, under its own name, a recipient of '*'.  Entries skipped
 * are reported through warn.  Signed by admin, not stored. */
int sd_policy_from_legacy(struct sd_store *s, const struct sd_writer_key *admin, const char *admin_name,
                          const struct sd_trust *trust, sd_warn_fn warn, void *warn_userdata,
                          struct sd_policy **out, sd_error *err);

/* ---- export and import ----
 *
 * An archive is ciphertext only: every policy version and every version of
 * every secret, byte for byte as stored, one JSON object per line
 * (docs/secretctl.md "export" gives the format):
 *   {"format":1,"kind":"secretd-archive","realm":"<16 bytes>","created":N,"entries":E}
 *   {"kind":"policy","version":1,"data":"<stored bytes, base64>"}
 *   {"kind":"envelope","name":"db","version":1,"data":"<stored bytes, base64>"}
 * Policies come first, versions 1..K; then secrets sorted by name, each
 * with versions 1..n; E counts the lines after the header. */
#define SD_ARCHIVE_MAX_BYTES ((size_t) 1 << 30)

enum sd_archive_kind {
        SD_ARCHIVE_POLICY,
        SD_ARCHIVE_ENVELOPE,
};

struct sd_archive_entry {
        enum sd_archive_kind kind;
        char name[SD_NAME_MAX + 1];   /* envelopes */
        uint64_t version;
        char *data;                   /* the stored bytes, NUL-terminated */
        size_t len;
        size_t line;                  /* 1-based line in the archive, for messages */
};

struct sd_archive {
        unsigned char realm[SD_REALM_ID_BYTES];
        int64_t created;
        struct sd_archive_entry *entries;
        size_t n_entries;
        size_t n_policies;            /* entries[0..n_policies) are the policy versions */
};

void sd_archive_free(struct sd_archive *a);
static inline void sd_archive_freep(struct sd_archive **a) {
        sd_archive_free(*a);
        *a = NULL;
}
#define _cleanup_archive_ _cleanup_(sd_archive_freep)

/* Strict parser: the format above, exactly; -EBADMSG naming the line and
 * field ("archive line 7: field 'version' ...").  Checks shape and order
 * only: sd_archive_verify checks signatures. */
int sd_archive_parse(const char *text, size_t len, struct sd_archive **out, sd_error *err);

/* Everything in the archive verifies for a holder of pin: the policy chain
 * (every link the chain rule; the first version the pin's admins sign is the
 * anchor, earlier ones are checked only for continuity with it), and every
 * envelope against the policy version it was sealed under (format 1: version
 * 1, as legacy), bound to its name and version.  A tampered entry is
 * refused naming it: "archive line 12 (secret 'db' version 3): ...".
 * *latest_out (may be NULL) is the verified latest policy. */
int sd_archive_verify(const struct sd_archive *a, const struct sd_realm_pin *pin, struct sd_policy **latest_out,
                      sd_error *err);

/* Read every policy version and secret version of s into an archive text
 * (malloc()ed), after walking the chain from rec (the exporter's record) and
 * verifying the result with sd_archive_verify: an entry that does not
 * verify is refused, naming it. */
int sd_archive_export(struct sd_store *s, const struct sd_realm_record *rec, char **text_out, size_t *len_out,
                      sd_error *err);

/* Verify a (sd_archive_verify with pin), then write it into s: policy
 * versions and envelopes byte for byte, each with the compare-and-swap of
 * its version.  An entry that is already in s must be byte-identical (an
 * interrupted import can be run again); one that differs is -EEXIST naming
 * it.  *record_out is the record of the imported latest policy, for the
 * importer to keep. */
int sd_archive_import(struct sd_store *s, const struct sd_archive *a, const struct sd_realm_pin *pin,
                      struct sd_realm_record *record_out, sd_error *err);
