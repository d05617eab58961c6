/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Secret operations over a store (include/secretd/client.h): the store is
 * untrusted, so everything read from it goes through the envelope layer's
 * verification, and every write is a compare-and-swap on the next version.
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

int sd_recipients_collect(struct sd_store *s, const struct sd_trust *trust,
                          unsigned char (**keys_out)[SD_BOX_PK_BYTES], size_t *n_out,
                          sd_warn_fn warn, void *warn_userdata, sd_error *err) {
        struct sd_store_blob *blobs = NULL;
        size_t n_blobs = 0;
        int r = sd_store_recipient_list(s, &blobs, &n_blobs, err);
        if (r < 0)
                return r;

        _cleanup_(free_keys) unsigned char (*keys)[SD_BOX_PK_BYTES] = NULL;
        size_t n = 0;
        if (n_blobs > 0) {
                keys = calloc(n_blobs, sizeof(*keys));
                if (!keys) {
                        sd_store_blobs_free(blobs, n_blobs);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
        }

        for (size_t i = 0; i < n_blobs; i++) {
                const struct sd_store_blob *b = &blobs[i];
                struct sd_recipient_info info = { 0 };
                sd_error e = { 0 };
                r = sd_recipient_verify(b->data, b->len, trust, &info, &e);
                if (r == -EKEYREJECTED) {
                        warnf(warn, warn_userdata,
                              "recipient entry '%s' skipped: signed by untrusted writer %s",
                              b->name, info.signer_id[0] ? info.signer_id : "(unknown)");
                        continue;
                }
                if (r == -ENOMEM) {
                        sd_store_blobs_free(blobs, n_blobs);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                if (r < 0) {
                        warnf(warn, warn_userdata, "recipient entry '%s' skipped: malformed: %s", b->name,
                              e.message);
                        continue;
                }
                /* The name is inside the signature: an entry stored under
                 * another name was copied there, and removing the real one
                 * must not leave a copy that keeps the key a recipient. */
                if (strcmp(info.name, b->name) != 0) {
                        warnf(warn, warn_userdata,
                              "recipient entry '%s' skipped: it is signed (by %s) for the name '%s'",
                              b->name, info.signer_id, info.name);
                        continue;
                }
                memcpy(keys[n++], info.box_pk, SD_BOX_PK_BYTES);
        }
        sd_store_blobs_free(blobs, n_blobs);

        *keys_out = n > 0 ? steal_pointer(&keys) : NULL;
        *n_out = n;
        return 0;
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

/* Seal and store version latest+1 until one compare-and-swap wins.  value
 * NULL seals a tombstone; then each attempt first checks that the latest is
 * not already one. */
static int put_next_version(struct sd_store *s, const struct sd_writer_key *writer,
                            const struct sd_trust *trust, const char *name,
                            const struct sd_secret *value,
                            const unsigned char (*keys)[SD_BOX_PK_BYTES], size_t n_keys,
                            unsigned max_attempts, uint64_t *version_out, sd_error *err);

int sd_secret_put(struct sd_store *s, const struct sd_writer_key *writer,
                  const struct sd_trust *trust, const char *name, const struct sd_secret *value,
                  const struct sd_put_options *opts, uint64_t *version_out, sd_error *err) {
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

        /* Recipients are read once per call: a retry after a lost
         * compare-and-swap only needs a new version number. */
        _cleanup_(free_keys) unsigned char (*keys)[SD_BOX_PK_BYTES] = NULL;
        size_t n_keys = 0;
        r = sd_recipients_collect(s, trust, &keys, &n_keys, opts ? opts->warn : NULL,
                                  opts ? opts->warn_userdata : NULL, err);
        if (r < 0)
                return sd_error_prefix(err, r, "secret '%s'", name);

        return put_next_version(s, writer, trust, name, value, (const unsigned char (*)[SD_BOX_PK_BYTES]) keys,
                                 n_keys, max_attempts_of(opts), version_out, err);
}

/* Is version `version` of name (already fetched) a trusted tombstone?  An
 * envelope that does not verify is not a tombstone anyone can rely on, so
 * deleting over it is allowed. */
static int is_trusted_tombstone(struct sd_store *s, const struct sd_trust *trust, const char *name,
                                uint64_t version, bool *out, sd_error *err) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = sd_store_get(s, name, version, &data, &len, NULL, err);
        if (r < 0)
                return r;
        struct sd_envelope_info info = { 0 };
        sd_error e = { 0 };
        r = sd_envelope_verify(data, len, trust, &info, &e);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        *out = r >= 0 && info.tombstone && info.version == version && strcmp(info.name, name) == 0;
        return 0;
}

static int put_next_version(struct sd_store *s, const struct sd_writer_key *writer,
                            const struct sd_trust *trust, const char *name,
                            const struct sd_secret *value,
                            const unsigned char (*keys)[SD_BOX_PK_BYTES], size_t n_keys,
                            unsigned max_attempts, uint64_t *version_out, sd_error *err) {
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
                        r = is_trusted_tombstone(s, trust, name, latest, &deleted, err);
                        if (r == -ENOENT)
                                continue;  /* raced with nothing we understand: re-read */
                        if (r < 0)
                                return r;
                        if (deleted)
                                return sd_error_set(err, ENOENT, "secret '%s' was already deleted in version %" PRIu64,
                                                    name, latest);
                }

                _cleanup_free_ char *json = NULL;
                size_t len = 0;
                r = sd_envelope_seal(name, latest + 1, value, writer, keys, n_keys, &json, &len, err);
                if (r < 0)
                        return r;
                r = sd_store_put(s, name, latest + 1, json, len, err);
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

int sd_secret_delete(struct sd_store *s, const struct sd_writer_key *writer,
                     const struct sd_trust *trust, const char *name,
                     const struct sd_put_options *opts, uint64_t *version_out, sd_error *err) {
        int r = check_name(name, err);
        if (r < 0)
                return r;
        return put_next_version(s, writer, trust, name, NULL, NULL, 0, max_attempts_of(opts),
                                version_out, err);
}

int sd_secret_fetch(struct sd_store *s, const struct sd_trust *trust,
                    const unsigned char box_pk[SD_BOX_PK_BYTES],
                    const unsigned char box_sk[SD_BOX_SK_BYTES], const char *name,
                    uint64_t version, int allow_tombstone, struct sd_secret **value_out,
                    struct sd_envelope_info *info, sd_error *err) {
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
        r = sd_envelope_open(data, len, trust, name, got, box_pk, box_sk, &value, &opened, err);
        if (r < 0)
                return r;
        if (opened.tombstone && !allow_tombstone)
                return sd_error_set(err, ENOENT, "secret '%s' was deleted in version %" PRIu64, name, got);

        *value_out = steal_pointer(&value);
        if (info)
                *info = opened;
        return 0;
}
