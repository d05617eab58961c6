/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Secret operations over a store (include/secretd/client.h): the store is
 * untrusted, so everything read from it goes through the envelope layer's
 * verification against the realm policy, and every write is a
 * compare-and-swap on the next version.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/names.h"

/* Lost compare-and-swaps back off exponentially from about 1 ms to at most
 * 50 ms, with jitter so writers that collided once do not collide again in
 * lockstep. */
#define BACKOFF_START_US 1000u
#define BACKOFF_CAP_US 50000u
#define DEFAULT_MAX_ATTEMPTS 1000u

static void warnf(sd_warn_fn warn, void *userdata, const char *fmt, ...) SD_PRINTF(3, 4);
static void warnf(sd_warn_fn warn, void *userdata, const char *fmt, ...) {
        if (!warn)
                return;
        char line[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        warn(userdata, line);
}

static void backoff_sleep(unsigned attempt) {
        uint32_t ceiling = BACKOFF_START_US;
        for (unsigned i = 0; i < attempt && ceiling < BACKOFF_CAP_US; i++)
                ceiling *= 2;
        if (ceiling > BACKOFF_CAP_US)
                ceiling = BACKOFF_CAP_US;
        /* "Equal jitter": at least half the ceiling, so the backoff still
         * grows, plus a uniform random part. */
        uint32_t us = ceiling / 2 + randombytes_uniform(ceiling / 2 + 1);
        struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long) (us % 1000000u) * 1000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void free_keys(unsigned char (**keys)[SD_BOX_PK_BYTES]) {
        free(*keys);
}

static int check_name(const char *name, sd_error *err) {
        return sd_name_validate("secret name", name, name ? strlen(name) : 0, err);
}

/* The latest version of name, 0 when it has none. */
static int latest_or_zero(struct sd_store *s, const char *name, uint64_t *out, sd_error *err) {
        uint64_t v = 0;
        int r = sd_store_latest(s, name, &v, err);
        if (r == -ENOENT) {
                sd_error_clear(err);
                v = 0;
        } else if (r < 0) {
                return r;
        }
        *out = v;
        return 0;
}

static unsigned max_attempts_of(const struct sd_put_options *opts) {
        return opts && opts->max_attempts ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS;
}

/* Is version `version` of name a tombstone that verifies?  An envelope that
 * does not verify is not a tombstone anyone can rely on, so deleting over
 * it is allowed. */
static int is_verified_tombstone(struct sd_store *s, const struct sd_policy *policy, const char *name,
                                 uint64_t version, bool *out, sd_error *err) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = sd_store_get(s, name, version, &data, &len, NULL, err);
        if (r < 0)
                return r;
        struct sd_envelope_info info = { 0 };
        sd_error e = { 0 };
        r = sd_envelope_verify(data, len, policy, SD_ENVELOPE_LEGACY, &info, &e);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = r >= 0 && info.tombstone && info.version == version && strcmp(info.name, name) == 0;
        return 0;
}

/* Seal value (NULL: a tombstone) as exactly `version` and store it with
 * its compare-and-swap: -EEXIST when another writer got there first. */
static int seal_and_store(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                          const char *name, uint64_t version, const struct sd_secret *value, sd_error *err) {
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        int r = sd_envelope_seal(name, version, value, writer, policy, &json, &len, err);
        if (r < 0)
                return r;
        return sd_store_put(s, name, version, json, len, err);
}

/* Seal and store version latest+1 until one compare-and-swap wins.  value
 * NULL seals a tombstone; then each attempt first checks that the latest is
 * not already one. */
static int put_next_version(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                            const char *name, const struct sd_secret *value, unsigned max_attempts,
                            uint64_t *version_out, sd_error *err) {
        /* randombytes_uniform() (the backoff jitter) wants the library
         * initialised; this is idempotent and cheap after the first call. */
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");

        int r = -EEXIST;
        for (unsigned attempt = 0; attempt < max_attempts; attempt++) {
                if (attempt > 0)
                        backoff_sleep(attempt - 1);

                uint64_t latest = 0;
                r = latest_or_zero(s, name, &latest, err);
                if (r < 0)
                        return r;
                if (latest == UINT64_MAX)
                        return sd_error_set(err, EOVERFLOW, "secret '%s': no version number left", name);

                if (!value) {
                        if (latest == 0)
                                return sd_error_set(err, ENOENT, "secret '%s' does not exist", name);
                        bool deleted = false;
                        r = is_verified_tombstone(s, policy, name, latest, &deleted, err);
                        if (r == -ENOENT)
                                continue;  /* raced with nothing we understand: re-read */
                        if (r < 0)
                                return r;
                        if (deleted)
                                return sd_error_set(err, ENOENT, "secret '%s' was already deleted in version %" PRIu64,
                                                    name, latest);
                }

                r = seal_and_store(s, writer, policy, name, latest + 1, value, err);
                if (r == 0) {
                        if (version_out)
                                *version_out = latest + 1;
                        return 0;
                }
                if (r != -EEXIST)
                        return r;
        }
        return sd_error_prefix(err, r, "secret '%s': gave up after %u attempts", name, max_attempts);
}

int sd_secret_put(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                  const char *name, const struct sd_secret *value, const struct sd_put_options *opts,
                  uint64_t *version_out, sd_error *err) {
        int r = check_name(name, err);
        if (r < 0)
                return r;
        if (!value || value->len == 0)
                return sd_error_set(err, EINVAL, "secret '%s': refusing an empty value", name);
        size_t max_len = opts && opts->max_len ? opts->max_len : SD_VALUE_MAX;
        if (max_len > SD_VALUE_MAX)
                max_len = SD_VALUE_MAX;
        if (value->len > max_len)
                return sd_error_set(err, EFBIG, "secret '%s': value is %zu bytes, over the limit of %zu bytes",
                                    name, value->len, max_len);
        /* Refused before the store is touched, with nothing stored. */
        sd_error why = { 0 };
        if (sd_policy_check_write(policy, writer->pub.sign_pk, name, true, &why) != SD_WRITE_ALLOWED)
                return sd_error_set(err, why.code, "%s", why.message);
        return put_next_version(s, writer, policy, name, value, max_attempts_of(opts), version_out, err);
}

int sd_secret_delete(struct sd_store *s, const struct sd_writer_key *writer, const struct sd_policy *policy,
                     const char *name, const struct sd_put_options *opts, uint64_t *version_out, sd_error *err) {
        int r = check_name(name, err);
        if (r < 0)
                return r;
        sd_error why = { 0 };
        if (sd_policy_check_write(policy, writer->pub.sign_pk, name, false, &why) != SD_WRITE_ALLOWED)
                return sd_error_set(err, why.code, "%s", why.message);
        return put_next_version(s, writer, policy, name, NULL, max_attempts_of(opts), version_out, err);
}

int sd_secret_fetch_under(struct sd_store *s, const struct sd_policy *policy, int flags,
                          const struct sd_box_keypair *keys, size_t n_keys, const char *name, uint64_t version,
                          int allow_tombstone, struct sd_secret **value_out, struct sd_envelope_info *info,
                          sd_error *err) {
        int r = check_name(name, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        r = sd_store_get(s, name, version, &data, &len, &got, err);
        if (r < 0)
                return r;

        /* The version the store says it returned is what the signature must
         * cover: a store answering "latest" with an old envelope under a
         * new number fails here. */
        _cleanup_secret_ struct sd_secret *value = NULL;
        struct sd_envelope_info opened = { 0 };
        r = sd_envelope_open(data, len, policy, flags, name, got, keys, n_keys, &value, &opened, err);
        if ((r == -EAGAIN || r == -ENOKEY) && info)
                *info = opened;
        if (r < 0)
                return r;
        if (opened.tombstone && !allow_tombstone)
                return sd_error_set(err, ENOENT, "secret '%s' was deleted in version %" PRIu64, name, got);

        *value_out = steal_pointer(&value);
        if (info)
                *info = opened;
        return 0;
}

/* The realm's policy, refreshing once when it has none yet. */
static int realm_policy(struct sd_realm *realm, struct sd_policy **out, sd_error *err) {
        struct sd_policy *p = sd_realm_policy(realm);
        if (!p) {
                int r = sd_realm_refresh(realm, err);
                if (r < 0)
                        return r;
                p = sd_realm_policy(realm);
                if (!p)
                        return sd_error_set(err, ENOENT, "no verified realm policy");
        }
        *out = p;
        return 0;
}

/* One fetch through fn against the realm's policy; -EAGAIN (the envelope
 * names a newer policy version) refreshes the realm once and tries again. */
static int with_fresh_policy(struct sd_realm *realm, int (*fn)(const struct sd_policy *p, void *ctx, sd_error *err),
                             void *ctx, sd_error *err) {
        _cleanup_policy_ struct sd_policy *p = NULL;
        int r = realm_policy(realm, &p, err);
        if (r < 0)
                return r;
        r = fn(p, ctx, err);
        if (r != -EAGAIN)
                return r;
        sd_error why = { 0 };
        int q = sd_realm_refresh(realm, &why);
        if (q < 0) {
                if (err)
                        *err = why;
                return q;
        }
        sd_policy_unref(p);
        p = sd_realm_policy(realm);
        sd_error again = { 0 };
        r = fn(p, ctx, &again);
        /* Still newer than anything the chain verifies to: forged, or the
         * store withholds the policy it names. */
        if (r < 0)
                return sd_error_set(err, r == -EAGAIN ? EBADMSG : -r, "%s", again.message);
        return r;
}

struct fetch_ctx {
        const struct sd_box_keypair *keys;
        size_t n_keys;
        const char *name;
        uint64_t version;
        int allow_tombstone;
        struct sd_secret **value_out;
        struct sd_envelope_info *info;
        struct sd_store *store;
};

static int fetch_one(const struct sd_policy *p, void *userdata, sd_error *err) {
        struct fetch_ctx *c = userdata;
        return sd_secret_fetch_under(c->store, p, 0, c->keys, c->n_keys, c->name, c->version, c->allow_tombstone,
                                     c->value_out, c->info, err);
}

int sd_secret_fetch(struct sd_realm *realm, const struct sd_box_keypair *keys, size_t n_keys, const char *name,
                    uint64_t version, int allow_tombstone, struct sd_secret **value_out,
                    struct sd_envelope_info *info, sd_error *err) {
        struct fetch_ctx c = { keys, n_keys, name, version, allow_tombstone, value_out, info, sd_realm_store(realm) };
        return with_fresh_policy(realm, fetch_one, &c, err);
}

struct open_ctx {
        const char *json;
        size_t len;
        const char *name;
        uint64_t version;
        const struct sd_box_keypair *keys;
        size_t n_keys;
        struct sd_secret **value_out;
        struct sd_envelope_info *info;
        uint64_t policy_version;
};

static int open_one(const struct sd_policy *p, void *userdata, sd_error *err) {
        struct open_ctx *c = userdata;
        c->policy_version = sd_policy_version(p);
        return sd_envelope_open(c->json, c->len, p, 0, c->name, c->version, c->keys, c->n_keys, c->value_out, c->info,
                                err);
}

int sd_realm_envelope_open(struct sd_realm *realm, const char *json, size_t len, const char *name, uint64_t version,
                           const struct sd_box_keypair *keys, size_t n_keys, struct sd_secret **value_out,
                           struct sd_envelope_info *info, uint64_t *policy_version_out, sd_error *err) {
        struct open_ctx c = { json, len, name, version, keys, n_keys, value_out, info, 0 };
        int r = with_fresh_policy(realm, open_one, &c, err);
        if (r == 0 && policy_version_out)
                *policy_version_out = c.policy_version;
        return r;
}

int sd_secret_fetch_newest_verified(struct sd_realm *realm, const struct sd_box_keypair *keys, size_t n_keys,
                                    const char *name, const uint64_t *versions, size_t n_versions, uint64_t floor,
                                    sd_warn_fn warn, void *warn_userdata, struct sd_secret **value_out,
                                    struct sd_envelope_info *info, sd_error *err) {
        sd_error first = { 0 };
        int first_r = 0;
        for (size_t i = n_versions; i > 0; i--) {
                uint64_t v = versions[i - 1];
                if (v < floor)
                        break;
                sd_error why = { 0 };
                struct sd_envelope_info opened = { 0 };
                struct sd_secret *value = NULL;
                int r = sd_secret_fetch(realm, keys, n_keys, name, v, 1, &value, &opened, &why);
                if (r == 0) {
                        *value_out = value;
                        if (info)
                                *info = opened;
                        return 0;
                }
                if (r == -ENOMEM)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (!first_r) {
                        first_r = r;
                        first = why;
                }
                warnf(warn, warn_userdata, "secret '%s' version %" PRIu64 " skipped: %s", name, v, why.message);
        }
        if (!first_r)
                return sd_error_set(err, ENOENT, "secret '%s': no version at or above %" PRIu64 " to deliver", name,
                                    floor);
        if (err)
                *err = first;
        return first_r;
}

/* ---- reseal ---- */

static bool has_key(const unsigned char (*keys)[SD_BOX_PK_BYTES], size_t n, const unsigned char key[SD_BOX_PK_BYTES]) {
        for (size_t i = 0; i < n; i++)
                if (memcmp(keys[i], key, SD_BOX_PK_BYTES) == 0)
                        return true;
        return false;
}

static void append_reason(char *out, size_t size, const char *fmt, ...) SD_PRINTF(3, 4);
static void append_reason(char *out, size_t size, const char *fmt, ...) {
        size_t len = strlen(out);
        if (len + 3 >= size)
                return;
        if (len) {
                memcpy(out + len, "; ", 3);
                len += 2;
        }
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(out + len, size - len, fmt, ap);
        va_end(ap);
}

/* Does the envelope data (verified, info) need a reseal under policy?  The
 * reason names what changes. */
static int reseal_reason(const struct sd_policy *policy, const char *data, size_t len,
                         const struct sd_envelope_info *info, char *reason, size_t size, sd_error *err) {
        reason[0] = '\0';
        if (info->format < SD_ENVELOPE_FORMAT)
                append_reason(reason, size, "format %u, sealed before the realm", info->format);
        _cleanup_(free_keys) unsigned char(*want)[SD_BOX_PK_BYTES] = NULL;
        size_t n_want = 0;
        if (sd_policy_recipients_for(policy, info->name, &want, &n_want, NULL) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_(free_keys) unsigned char(*have)[SD_BOX_PK_BYTES] = NULL;
        size_t n_have = 0;
        int r = sd_envelope_recipient_keys(data, len, &have, &n_have, err);
        if (r < 0)
                return r;
        /* The writer's own box key is in every envelope it sealed; it stays
         * expected while the writer may write the name (verification passed,
         * so it may). */
        const struct sd_policy_entry *writer = NULL;
        for (size_t l = 0; l < 2 && !writer; l++)
                for (size_t i = 0; i < sd_policy_count(policy, (enum sd_policy_list) l) && !writer; i++) {
                        const struct sd_policy_entry *e = sd_policy_get(policy, (enum sd_policy_list) l, i);
                        if (memcmp(e->sign_pk, info->signer, SD_SIGN_PK_BYTES) == 0)
                                writer = e;
                }
        /* Entries are named as in policy changes, "recipient host1
         * (KEYID)", each by its one key id (sd_policy_entry_key_id). */
        char id[SD_KEY_ID_CHARS + 1];
        for (size_t i = 0; i < n_want; i++) {
                if (has_key((const unsigned char(*)[SD_BOX_PK_BYTES]) have, n_have, want[i]))
                        continue;
                enum sd_policy_list which = SD_POLICY_RECIPIENTS;
                const struct sd_policy_entry *e = sd_policy_find_box_key(policy, want[i], &which);
                if (!e)
                        continue;  /* want[] comes from this policy */
                sd_policy_entry_key_id(which, e, id);
                append_reason(reason, size, "+ %s %s (%s)", sd_policy_list_noun(which), e->name, id);
        }
        for (size_t i = 0; i < n_have; i++) {
                if (has_key((const unsigned char(*)[SD_BOX_PK_BYTES]) want, n_want, have[i]))
                        continue;
                if (writer && memcmp(have[i], writer->box_pk, SD_BOX_PK_BYTES) == 0)
                        continue;
                enum sd_policy_list which = SD_POLICY_RECIPIENTS;
                const struct sd_policy_entry *e = sd_policy_find_box_key(policy, have[i], &which);
                if (!e) {
                        /* Only the box key is known: an agent's id, or the
                         * box key of a removed admin. */
                        sd_key_id(have[i], id);
                        append_reason(reason, size, "- key %s (in no list of policy v%" PRIu64 ")", id,
                                      sd_policy_version(policy));
                        continue;
                }
                sd_policy_entry_key_id(which, e, id);
                append_reason(reason, size, "- %s %s (%s): %s", sd_policy_list_noun(which), e->name, id,
                              which == SD_POLICY_RECIPIENTS ? "its patterns no longer cover the name"
                                                            : "no longer an admin");
        }
        return 0;
}

static int reseal_one(struct sd_store *s, const struct sd_writer_key *admin, const struct sd_policy *policy,
                      const char *name, bool dry_run, unsigned max_attempts, struct sd_reseal_item *item) {
        const struct sd_box_keypair kp = { admin->pub.box_pk, admin->box_sk };
        int r = -EEXIST;
        for (unsigned attempt = 0; attempt < max_attempts; attempt++) {
                if (attempt > 0)
                        backoff_sleep(attempt - 1);
                sd_error *err = &item->error;
                sd_error_clear(err);
                uint64_t latest = 0;
                r = sd_store_latest(s, name, &latest, err);
                if (r < 0)
                        return r;
                item->version = latest;
                _cleanup_free_ char *data = NULL;
                size_t len = 0;
                r = sd_store_get(s, name, latest, &data, &len, NULL, err);
                if (r < 0)
                        return r;
                struct sd_envelope_info info = { 0 };
                r = sd_envelope_verify(data, len, policy, SD_ENVELOPE_LEGACY, &info, err);
                if (r < 0)
                        return r;
                if (strcmp(info.name, name) != 0 || info.version != latest)
                        return sd_error_set(err, EBADMSG, "secret '%s' version %" PRIu64
                                            ": envelope is signed for another name or version", name, latest);
                if (info.tombstone) {
                        item->state = SD_RESEAL_DELETED;
                        return 0;
                }
                r = reseal_reason(policy, data, len, &info, item->reason, sizeof(item->reason), err);
                if (r < 0)
                        return r;
                if (!item->reason[0]) {
                        item->state = SD_RESEAL_CURRENT;
                        return 0;
                }
                if (dry_run) {
                        item->state = SD_RESEAL_NEEDED;
                        return 0;
                }
                _cleanup_secret_ struct sd_secret *value = NULL;
                struct sd_envelope_info opened = { 0 };
                r = sd_envelope_open(data, len, policy, SD_ENVELOPE_LEGACY, name, latest, &kp, 1, &value, &opened,
                                     err);
                if (r == -ENOKEY)
                        return sd_error_set(err, ENOKEY,
                                            "secret '%s' version %" PRIu64 ": you are not a recipient of it "
                                            "(written by %s before you were an admin); that writer must put it again",
                                            name, latest, info.signer_id);
                if (r < 0)
                        return r;
                r = seal_and_store(s, admin, policy, name, latest + 1, value, err);
                if (r == 0) {
                        item->state = SD_RESEAL_DONE;
                        item->new_version = latest + 1;
                        return 0;
                }
                if (r != -EEXIST)
                        return r;
                /* Someone wrote meanwhile: look again at what is latest now. */
                item->reason[0] = '\0';
        }
        return sd_error_prefix(&item->error, r, "secret '%s': gave up after %u attempts", name, max_attempts);
}

int sd_secret_reseal(struct sd_store *s, const struct sd_writer_key *admin, const struct sd_policy *policy,
                     const char *const *names, size_t n_names, bool dry_run, const struct sd_put_options *opts,
                     sd_reseal_fn fn, void *userdata, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct sd_store_name *listed = NULL;
        size_t n_listed = 0;
        if (n_names == 0) {
                int r = sd_store_list(s, &listed, &n_listed, err);
                if (r < 0)
                        return r;
        }
        size_t n = n_names ? n_names : n_listed;
        int failed = 0;
        for (size_t i = 0; i < n; i++) {
                const char *name = n_names ? names[i] : listed[i].name;
                struct sd_reseal_item item = { .name = name };
                int r = check_name(name, &item.error);
                if (r >= 0)
                        r = reseal_one(s, admin, policy, name, dry_run, max_attempts_of(opts), &item);
                if (r == -ENOMEM) {
                        sd_store_names_free(listed, n_listed);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                if (r < 0) {
                        item.state = SD_RESEAL_FAILED;
                        if (!item.error.code)
                                (void) sd_error_set(&item.error, -r, "secret '%s': %s", name, strerror(-r));
                        failed++;
                }
                if (fn)
                        fn(userdata, &item);
        }
        sd_store_names_free(listed, n_listed);
        return failed;
}

/* ---- migration from before realms ---- */

/* A free name for a migrated writer: its comment's first word, else
 * "writer-<key id>". */
static void migrated_writer_name(const struct sd_policy *p, const char *word, const unsigned char sign_pk[32],
                                 char out[SD_NAME_MAX + 1]) {
        if (word[0] && sd_name_validate("writer name", word, strlen(word), NULL) == 0 &&
            !sd_policy_find(p, SD_POLICY_WRITERS, word)) {
                (void) snprintf(out, SD_NAME_MAX + 1, "%s", word);
                return;
        }
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(sign_pk, id);
        (void) snprintf(out, SD_NAME_MAX + 1, "writer-%s", id);
}

int sd_policy_from_legacy(struct sd_store *s, const struct sd_writer_key *admin, const char *admin_name,
                          const struct sd_trust *trust, sd_warn_fn warn, void *warn_userdata,
                          struct sd_policy **out, sd_error *err) {
        _cleanup_policy_ struct sd_policy *p = NULL;
        int r = sd_policy_new(NULL, &p, err);
        if (r < 0)
                return r;
        r = sd_policy_add(p, SD_POLICY_ADMINS, admin_name, admin->pub.sign_pk, admin->pub.box_pk, NULL, 0, err);
        if (r >= 0)
                r = sd_policy_set_threshold(p, 1, err);
        if (r >= 0)
                r = sd_policy_add(p, SD_POLICY_WRITERS, admin_name, admin->pub.sign_pk, admin->pub.box_pk, NULL, 0, err);
        if (r < 0)
                return r;

        /* Legacy recipient entries were verified against the writer's own key
         * plus the trusted file. */
        _cleanup_trust_ struct sd_trust *verifying = NULL;
        if (sd_trust_new(&verifying) < 0 || sd_trust_add(verifying, &admin->pub) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < sd_trust_count(trust); i++) {
                const struct sd_writer_pub *w = sd_trust_get(trust, i);
                if (sd_trust_add(verifying, w) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (memcmp(w->sign_pk, admin->pub.sign_pk, SD_SIGN_PK_BYTES) == 0)
                        continue;
                char name[SD_NAME_MAX + 1];
                migrated_writer_name(p, sd_trust_comment_word(trust, i), w->sign_pk, name);
                sd_error why = { 0 };
                r = sd_policy_add(p, SD_POLICY_WRITERS, name, w->sign_pk, w->box_pk, NULL, 0, &why);
                if (r == -ENOMEM)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (r < 0)
                        warnf(warn, warn_userdata, "trusted writer skipped: %s", why.message);
        }

        struct sd_store_blob *blobs = NULL;
        size_t n_blobs = 0;
        r = sd_store_recipient_list(s, &blobs, &n_blobs, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_blobs; i++) {
                const struct sd_store_blob *b = &blobs[i];
                struct sd_recipient_info info = { 0 };
                sd_error why = { 0 };
                r = sd_recipient_verify(b->data, b->len, verifying, &info, &why);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        warnf(warn, warn_userdata, "recipient entry '%s' not imported: %s", b->name, why.message);
                        continue;
                }
                /* The name is inside the signature: an entry stored under
                 * another name was copied there. */
                if (strcmp(info.name, b->name) != 0) {
                        warnf(warn, warn_userdata, "recipient entry '%s' not imported: it is signed (by %s) for the name '%s'",
                              b->name, info.signer_id, info.name);
                        continue;
                }
                r = sd_policy_add(p, SD_POLICY_RECIPIENTS, info.name, NULL, info.box_pk, NULL, 0, &why);
                if (r == -ENOMEM)
                        break;
                if (r < 0)
                        warnf(warn, warn_userdata, "recipient entry '%s' not imported: %s", b->name, why.message);
                r = 0;
        }
        sd_store_blobs_free(blobs, n_blobs);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");

        r = sd_policy_check(p, err);
        if (r < 0)
                return r;
        r = sd_policy_sign(p, admin, err);
        if (r < 0)
                return r;
        *out = steal_pointer(&p);
        return 0;
}
