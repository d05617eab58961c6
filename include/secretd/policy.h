/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The realm policy: one signed, versioned document per version, kept in the
 * store, that says who may write which secrets and who may receive them.
 * docs/trust.md explains the model; this header is the contract of the
 * document itself, the pin line and the chain rule.  Walking a store's chain
 * from a pin is include/secretd/realm.h.
 *
 * A policy holds
 *   - a realm id (16 random bytes), a version (1, 2, 3, ... without gaps)
 *     and a creation time;
 *   - admins: a name and a writer identity (sdw1:...).  Admins sign policy
 *     versions, may write every name, and their box keys receive every put
 *     (so that they can reseal);
 *   - a threshold t, 1 <= t <= number of admins;
 *   - writers: a name, a writer identity and the name patterns it may write;
 *   - recipients: a name, an agent key (sda1:...) and the name patterns it
 *     may receive;
 *   - signatures: {signer, signature} over the canonical encoding of every
 *     other field (docs/trust.md "Signed bytes"), made by admins.
 *
 * Patterns are globs over secret names with '*' and '?' only (fnmatch(3)
 * without flags; names never contain '/'), 1 to SD_NAME_MAX characters from
 * the name alphabet plus '*' and '?', at most SD_POLICY_MAX_PATTERNS per
 * entry.  Within a list, names are unique and a key appears once.
 *
 * JSON (byte fields standard base64 with padding, keys as public lines):
 *   {"format":1,"kind":"policy","realm":"<16 bytes>","version":3,
 *    "created":1732800000,"threshold":2,
 *    "admins":[{"name":"alice","key":"sdw1:..."}],
 *    "writers":[{"name":"ci","key":"sdw1:...","patterns":["db_*"]}],
 *    "recipients":[{"name":"host1","key":"sda1:...","patterns":["*"]}],
 *    "signatures":[{"signer":"<32 bytes>","signature":"<64 bytes>"}]}
 *
 * Chain rule (TUF's root rotation): version N+1 is valid given a trusted N
 * iff its realm id is N's, its version is exactly N+1, and it carries valid
 * signatures by at least N.threshold distinct admins of N and by at least
 * (N+1).threshold distinct admins of N+1.  Only distinct keys count
 * (python-tuf GHSA-r7vq-6425-j94w); the parser refuses a signer listed
 * twice anyway.
 *
 * Thread safety: a struct sd_policy is reference counted.  Once a second
 * reference exists it is never modified again (the editing functions refuse
 * with -EBUSY), so any number of threads may read and verify with it while
 * another swaps in a newer one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/names.h"

#define SD_REALM_ID_BYTES 16
#define SD_REALM_ID_SHORT_CHARS 16     /* hex chars shown in messages */
#define SD_POLICY_DIGEST_BYTES 32      /* BLAKE2b-256 of the signed bytes */
#define SD_POLICY_FORMAT 1
#define SD_POLICY_MAX_ADMINS 32
#define SD_POLICY_MAX_WRITERS 4000
#define SD_POLICY_MAX_RECIPIENTS 4000
#define SD_POLICY_MAX_PATTERNS 32
#define SD_POLICY_MAX_SIGNATURES 64
/* Largest serialised policy accepted: what the store accepts for a value. */
#define SD_POLICY_MAX_BYTES ((size_t) 4 << 20)

enum sd_policy_list {
        SD_POLICY_ADMINS,
        SD_POLICY_WRITERS,
        SD_POLICY_RECIPIENTS,
};

struct sd_policy_entry {
        char name[SD_NAME_MAX + 1];
        unsigned char sign_pk[SD_SIGN_PK_BYTES];  /* admins, writers; zero for recipients */
        unsigned char box_pk[SD_BOX_PK_BYTES];
        char **patterns;                          /* admins: none (they cover every name) */
        size_t n_patterns;
};

struct sd_policy;  /* opaque, reference counted */

/* A new policy of version 1 for the realm `realm` (NULL: 16 random bytes),
 * created now, with no entries, threshold 0 (set it after adding admins) and
 * no signatures. */
int sd_policy_new(const unsigned char realm[SD_REALM_ID_BYTES], struct sd_policy **out, sd_error *err);

/* A draft of the next version: a copy of p with version + 1, created now and
 * no signatures. */
int sd_policy_next_draft(const struct sd_policy *p, struct sd_policy **out, sd_error *err);

struct sd_policy *sd_policy_ref(struct sd_policy *p);
void sd_policy_unref(struct sd_policy *p);
static inline void sd_policy_unrefp(struct sd_policy **p) {
        sd_policy_unref(*p);
        *p = NULL;
}
#define _cleanup_policy_ _cleanup_(sd_policy_unrefp)

/* ---- the document ---- */

/* Strict parser: at most SD_POLICY_MAX_BYTES, exactly the fields above,
 * integers in range, canonical base64, valid names, keys and patterns, the
 * structural rules (sd_policy_check).  -EBADMSG naming the field:
 *   "malformed policy: field 'writers[2].patterns[0]' ..." .
 * Signatures are parsed, not verified. */
int sd_policy_parse(const char *json, size_t len, struct sd_policy **out, sd_error *err);

/* The structural rules the parser applies, for a draft about to be signed:
 * at least one admin, 1 <= threshold <= admins, unique names and keys per
 * list, limits.  -EINVAL naming the rule. */
int sd_policy_check(const struct sd_policy *p, sd_error *err);

/* Compact JSON, malloc()ed and NUL-terminated; members in the order above. */
int sd_policy_to_json(const struct sd_policy *p, char **json_out, size_t *len_out);

/* The canonical signed bytes (docs/trust.md), malloc()ed. */
int sd_policy_signed_bytes(const struct sd_policy *p, unsigned char **out, size_t *len_out);

/* BLAKE2b-256 of the signed bytes: equal digests, equal documents (but for
 * their signatures). */
int sd_policy_digest(const struct sd_policy *p, unsigned char out[SD_POLICY_DIGEST_BYTES]);

/* ---- reading ---- */

const unsigned char *sd_policy_realm(const struct sd_policy *p);
uint64_t sd_policy_version(const struct sd_policy *p);
int64_t sd_policy_created(const struct sd_policy *p);
unsigned sd_policy_threshold(const struct sd_policy *p);
size_t sd_policy_count(const struct sd_policy *p, enum sd_policy_list which);
const struct sd_policy_entry *sd_policy_get(const struct sd_policy *p, enum sd_policy_list which, size_t i);
/* The entry of that list named `name`, or NULL. */
const struct sd_policy_entry *sd_policy_find(const struct sd_policy *p, enum sd_policy_list which,
                                             const char *name);
size_t sd_policy_n_signatures(const struct sd_policy *p);
/* The signer of signature i (NULL past the end). */
const unsigned char *sd_policy_signer(const struct sd_policy *p, size_t i);

/* The realm id's first 8 bytes as 16 hex chars, for messages. */
void sd_realm_id_short(const unsigned char realm[SD_REALM_ID_BYTES], char out[SD_REALM_ID_SHORT_CHARS + 1]);

/* Does pattern match name (fnmatch without flags)? */
bool sd_pattern_match(const char *pattern, const char *name);
/* 0 if text is a valid pattern, else -EINVAL naming it and the rule. */
int sd_pattern_validate(const char *text, sd_error *err);

bool sd_policy_is_admin(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES]);

/* Why a writer may not write (or delete) a name under p. */
enum sd_write_refusal {
        SD_WRITE_ALLOWED = 0,
        SD_WRITE_NOT_A_WRITER,      /* the key is neither an admin nor a writer of p */
        SD_WRITE_OUTSIDE_PATTERNS,  /* a writer whose patterns do not cover name */
        SD_WRITE_NO_RECIPIENT,      /* no recipient's patterns cover name (puts only) */
};

/* The put rules in one place: may the holder of sign_pk write name (with
 * need_recipient, a value that some recipient of p may receive; tombstones
 * need none)?  On a refusal err says why in one line, e.g.
 *   "you (writer 3f9a...) are not a writer in policy v4 of realm 8c1d...: an admin adds you with 'secretctl writer add NAME sdw1:...'"
 *   "writer 'ci' (3f9a...) may write only db_*, not 'api_token' (policy v4)"
 *   "no host could open 'x': add a recipient whose patterns cover 'x' with 'secretctl recipient add'" */
enum sd_write_refusal sd_policy_check_write(const struct sd_policy *p,
                                            const unsigned char sign_pk[SD_SIGN_PK_BYTES], const char *name,
                                            bool need_recipient, sd_error *err);

/* The verify-side rule (docs/envelope.md step 4): the signer of an envelope
 * of `name` is an admin of p, or a writer of p whose patterns cover name.
 * Else -EKEYREJECTED: "signed by <key id>, who is not a writer in policy vN"
 * or "signed by writer 'ci' (<key id>), whose patterns (db_*) do not cover
 * 'api_token' in policy vN". */
int sd_policy_check_signer(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES],
                           const char *name, sd_error *err);

/* The box keys a put of name is sealed to: the recipients whose patterns
 * cover name, in policy order, then every admin's box key not already
 * listed.  *keys_out is malloc()ed (NULL when empty); *n_agents_out (may be
 * NULL) is how many of them are recipients (agents) rather than admins. */
int sd_policy_recipients_for(const struct sd_policy *p, const char *name,
                             unsigned char (**keys_out)[SD_BOX_PK_BYTES], size_t *n_out,
                             size_t *n_agents_out);

/* The entry whose box key is box_pk, looked for among the recipients, then
 * the admins, then the writers; *which_out (may be NULL) says in which list.
 * NULL if there is none. */
const struct sd_policy_entry *sd_policy_find_box_key(const struct sd_policy *p,
                                                     const unsigned char box_pk[SD_BOX_PK_BYTES],
                                                     enum sd_policy_list *which_out);

/* "admin", "writer" or "recipient": what messages call an entry of which. */
const char *sd_policy_list_noun(enum sd_policy_list which);

/* The key id an entry is shown by, everywhere (docs/trust.md, "Key ids"):
 * its signing key's for an admin or a writer, so that one identity has one
 * id in whoami, ls, history and every message; its box key's for a
 * recipient (an agent has no signing key). */
void sd_policy_entry_key_id(enum sd_policy_list which, const struct sd_policy_entry *e,
                            char out[SD_KEY_ID_CHARS + 1]);

/* ---- editing a draft (refcount 1; -EBUSY otherwise) ---- */

/* Add an entry.  For admins patterns must be empty; for writers and
 * recipients n_patterns 0 means {"*"}.  sign_pk is ignored for recipients.
 * -EEXIST if the name or key is already in that list; -EINVAL for a bad
 * name, key or pattern. */
int sd_policy_add(struct sd_policy *p, enum sd_policy_list which, const char *name,
                  const unsigned char sign_pk[SD_SIGN_PK_BYTES], const unsigned char box_pk[SD_BOX_PK_BYTES],
                  const char *const *patterns, size_t n_patterns, sd_error *err);
/* -ENOENT if there is no such name in that list. */
int sd_policy_remove(struct sd_policy *p, enum sd_policy_list which, const char *name, sd_error *err);
int sd_policy_set_threshold(struct sd_policy *p, unsigned threshold, sd_error *err);

/* Add (or replace) the signature of key over the signed bytes.  The key need
 * not be an admin: whether a signature counts is decided when verifying. */
int sd_policy_sign(struct sd_policy *p, const struct sd_writer_key *key, sd_error *err);

/* ---- verifying ---- */

/* How many distinct keys that are admins of `admins_of` made a valid
 * signature over p's signed bytes. */
size_t sd_policy_count_signatures(const struct sd_policy *p, const struct sd_policy *admins_of);

/* Does p carry a valid signature by this key? */
bool sd_policy_signed_by(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES]);

/* The chain rule: next is valid given trusted.  -EBADMSG for another realm
 * (naming both) or a version that is not trusted + 1; -EKEYREJECTED when a
 * threshold is not met: "policy v5: signed by 1 of the 2 admins of v4 it
 * needs". */
int sd_policy_verify_next(const struct sd_policy *trusted, const struct sd_policy *next, sd_error *err);

/* ---- the pin ----
 *
 * What a host or a developer trusts a priori: the realm id and the admin
 * signing keys, as one line
 *     sdr1:<base64url, no padding, of realm(16) || sign_pk(32) * k>
 * with 1 <= k <= SD_POLICY_MAX_ADMINS distinct keys. */
struct sd_realm_pin {
        unsigned char realm[SD_REALM_ID_BYTES];
        size_t n_admins;
        unsigned char admins[SD_POLICY_MAX_ADMINS][SD_SIGN_PK_BYTES];
};

/* Parse the one token of text (leading and trailing whitespace allowed, as
 * in a file that ends with a newline).  -EINVAL naming what is wrong. */
int sd_realm_pin_parse(const char *text, struct sd_realm_pin *out, sd_error *err);
/* "sdr1:..." malloc()ed. */
int sd_realm_pin_format(const struct sd_realm_pin *pin, char **out);
/* The pin of a policy: its realm and its admins' signing keys. */
void sd_realm_pin_of(const struct sd_policy *p, struct sd_realm_pin *out);

/* Is p a valid first version for a holder of pin: same realm, and signed by
 * at least p's threshold of distinct keys that are both pinned and admins of
 * p?  -EBADMSG "policy vN belongs to realm X, you pin realm Y" or
 * -EKEYREJECTED. */
int sd_policy_verify_pinned(const struct sd_policy *p, const struct sd_realm_pin *pin, sd_error *err);

/* ---- describing a change ---- */

/* Calls fn once per line describing what next changes compared with cur
 * ("+ writer ci 3f9a... patterns db_*", "- recipient host2 ...",
 * "threshold 1 -> 2"); nothing when they are equal but for the version. */
void sd_policy_describe_changes(const struct sd_policy *cur, const struct sd_policy *next,
                                void (*fn)(void *userdata, const char *line), void *userdata);
