/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* From the store into a tmpfs instance (delivery.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "instances.h"
#include "log.h"
#include "notes.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/clock.h"
#include "secretd/envelope.h"
#include "secretd/policy.h"
#include "sorted.h"
#include "userns.h"

#define PAGE ((uint64_t) 4096)
#define DIGEST_BYTES crypto_generichash_BYTES
/* A Mount's retries of an unreachable store: often enough to catch the end
 * of an etcd election (a few hundred ms), rarely enough not to hammer a
 * store that is down. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 2000

/* One envelope being opened or opened, shared by the fetches that need
 * it at the same time. */
struct opened {
        struct opened *next;
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        uint64_t epoch;
        unsigned char digest[DIGEST_BYTES];
        bool ready;                       /* opened: the fields below are set */
        unsigned users;                   /* fetches holding it */
        struct sd_secret *value;          /* NULL: a tombstone */
        struct sd_envelope_info info;
};

/* An envelope verified and opened once, remembered without its
 * plaintext: the latest of each name. */
struct verified {
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        uint64_t epoch;
        unsigned char digest[DIGEST_BYTES];
        bool tombstone;
        size_t len;
        char writer[SD_KEY_ID_CHARS + 1];
};

struct delivery {
        struct delivery_config cfg;
        atomic_int on_unverifiable;       /* cfg.on_unverifiable, changed by SIGHUP */
        struct envelope_source store_source;
        pthread_mutex_t lock;             /* guards the lists */
        pthread_cond_t ready;             /* an open finished (or failed) */
        struct opened *opens;
        struct verified **verified;       /* sorted by name */
        size_t n_verified;
        unsigned long n_opens;
};

bool delivery_error_is_transient(enum delivery_step step, int code) {
        return (step == DELIVERY_GET || step == DELIVERY_OPEN) && sd_store_error_is_transient(code < 0 ? code : -code);
}

enum error_kind delivery_error_kind(enum delivery_step step, int code) {
        /* A missing or deleted secret is a store answer, whatever step
         * noticed it; so is a store that could not be reached, even while
         * verifying (a refresh of the realm's policy reads the store). */
        if (code == ENOENT || code == -ENOENT || delivery_error_is_transient(step, code))
                return ERROR_STORE;
        switch (step) {
        case DELIVERY_GET:
                return ERROR_STORE;
        case DELIVERY_OPEN:
                return ERROR_VERIFY;
        case DELIVERY_DECIDE:
                return code == ESTALE || code == -ESTALE ? ERROR_ROLLBACK : ERROR_STATE;
        case DELIVERY_WRITE:
                return ERROR_TMPFS;
        }
        return ERROR_STORE;
}

static int store_get(void *ctx, const char *name, uint64_t version, char **data_out, size_t *len_out,
                     uint64_t *version_out, sd_error *err) {
        struct sd_store *store = ctx;
        if (!store)
                return sd_error_set(err, ENODEV, "no store is open");
        return sd_store_get(store, name, version, data_out, len_out, version_out, err);
}

void delivery_store_source(struct sd_store *store, struct envelope_source *out) {
        *out = (struct envelope_source) { .get = store_get, .ctx = store };
}

int delivery_new(const struct delivery_config *cfg, struct delivery **out, sd_error *err) {
        struct delivery *d = calloc(1, sizeof(*d));
        if (!d)
                return sd_error_set(err, ENOMEM, "out of memory");
        d->cfg = *cfg;
        atomic_init(&d->on_unverifiable, (int) cfg->on_unverifiable);
        delivery_store_source(cfg->store, &d->store_source);
        if (!d->cfg.source)
                d->cfg.source = &d->store_source;
        (void) pthread_mutex_init(&d->lock, NULL);
        (void) pthread_cond_init(&d->ready, NULL);
        *out = d;
        return 0;
}

void delivery_set_on_unverifiable(struct delivery *d, enum sd_on_unverifiable v) {
        atomic_store(&d->on_unverifiable, (int) v);
}

void delivery_note_realm(struct delivery *d) {
        if (!d->cfg.notes || !d->cfg.realm)
                return;
        unsigned char keys[DELIVERY_KEYS_MAX][SD_BOX_PK_BYTES];
        size_t n = 0;
        for (; n < DELIVERY_KEYS_MAX && n < d->cfg.n_keys; n++)
                memcpy(keys[n], d->cfg.keys[n].pk, SD_BOX_PK_BYTES);
        notes_realm_policy(d->cfg.notes, d->cfg.realm, (const unsigned char(*)[SD_BOX_PK_BYTES]) keys, n);
}

void delivery_free(struct delivery *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n_verified; i++)
                free(d->verified[i]);
        free(d->verified);
        /* Every fetch was released: nothing is left in the list. */
        (void) pthread_cond_destroy(&d->ready);
        (void) pthread_mutex_destroy(&d->lock);
        free(d);
}

/* The policy version envelopes are checked against now.  What was verified
 * under another version is checked again: the new one may have removed its
 * writer.  0 before any policy is verified. */
static uint64_t policy_epoch(struct delivery *d) {
        if (!d->cfg.realm)
                return 0;
        _cleanup_policy_ struct sd_policy *p = sd_realm_policy(d->cfg.realm);
        return p ? sd_policy_version(p) : 0;
}

/* err = message, naming the secret unless it already does (the
 * library's messages mostly do: "secret 'x' version 3: ..."). */
static int naming_secret(const char *secret, int code, const char *message, sd_error *err) {
        char quoted[SD_NAME_MAX + 16];
        (void) snprintf(quoted, sizeof(quoted), "secret '%s'", secret);
        if (strstr(message, quoted))
                return sd_error_set(err, code, "%s", message);
        return sd_error_set(err, code, "%s: %s", quoted, message[0] ? message : strerror(code));
}

/* ---- step 1: get ---- */

/* 0: from the store; 1: from a stand-in, *origin saying which and why. */
static int fetch_get_at(struct delivery *d, const char *secret, uint64_t version, char **data_out, size_t *len_out,
                        uint64_t *version_out, sd_error *origin, sd_error *err) {
        sd_error sub = { 0 };
        int r = d->cfg.source->get(d->cfg.source->ctx, secret, version, data_out, len_out, version_out, &sub);
        /* A missing secret is an answer: the store is fine.  A stand-in
         * answered because the store did not. */
        if (d->cfg.notes)
                notes_store(d->cfg.notes, r == 0 || r == -ENOENT, sub.message);
        if (r < 0)
                return naming_secret(secret, -r, sub.message, err);
        if (r > 0) {
                *origin = sub;
                return 1;
        }
        return 0;
}

static int fetch_get(struct delivery *d, const char *secret, char **data_out, size_t *len_out, uint64_t *version_out,
                     sd_error *origin, sd_error *err) {
        return fetch_get_at(d, secret, 0, data_out, len_out, version_out, origin, err);
}

/* ---- step 2: open, once per envelope at a time ---- */

static struct opened *opened_find(struct delivery *d, const char *secret, uint64_t version, uint64_t epoch,
                                  const unsigned char digest[DIGEST_BYTES]) {
        for (struct opened *o = d->opens; o; o = o->next)
                if (o->version == version && o->epoch == epoch && strcmp(o->name, secret) == 0 &&
                    sodium_memcmp(o->digest, digest, DIGEST_BYTES) == 0)
                        return o;
        return NULL;
}

static const char *verified_key(const void *item) {
        return ((const struct verified *) item)->name;
}

/* Lock held: what was verified of secret at this version, these bytes,
 * under this policy version; NULL if nothing. */
static const struct verified *verified_find(struct delivery *d, const char *secret, uint64_t version, uint64_t epoch,
                                            const unsigned char digest[DIGEST_BYTES]) {
        bool found;
        size_t i = sorted_index((void *const *) d->verified, d->n_verified, secret, verified_key, &found);
        if (!found)
                return NULL;
        const struct verified *v = d->verified[i];
        if (v->version != version || v->epoch != epoch || sodium_memcmp(v->digest, digest, DIGEST_BYTES) != 0)
                return NULL;
        return v;
}

/* Lock held: remember an opened envelope; it replaces an older version
 * (a rotation drops the last one), never a newer one. */
static void verified_record(struct delivery *d, const struct opened *o) {
        bool found;
        size_t i = sorted_index((void *const *) d->verified, d->n_verified, o->name, verified_key, &found);
        struct verified *v;
        if (found) {
                v = d->verified[i];
                if (v->version > o->version && v->epoch == o->epoch)
                        return;
        } else {
                v = calloc(1, sizeof(*v));
                /* Out of memory: the next Mount opens again, no harm. */
                if (!v || sorted_insert((void ***) &d->verified, &d->n_verified, i, v) < 0) {
                        free(v);
                        return;
                }
        }
        (void) snprintf(v->name, sizeof(v->name), "%s", o->name);
        v->version = o->version;
        v->epoch = o->epoch;
        memcpy(v->digest, o->digest, DIGEST_BYTES);
        v->tombstone = o->info.tombstone;
        v->len = o->value ? o->value->len : 0;
        memcpy(v->writer, o->info.signer_id, sizeof(v->writer));
}

/* Lock held. */
static void opened_unlink(struct delivery *d, struct opened *gone) {
        for (struct opened **p = &d->opens; *p; p = &(*p)->next)
                if (*p == gone) {
                        *p = gone->next;
                        return;
                }
}

/* The library's message with advice for what the operator can do. */
static int open_error(struct delivery *d, const char *secret, int r, const sd_error *sub, sd_error *err) {
        switch (r) {
        case -ENOKEY:
                return sd_error_set(err, ENOKEY,
                                    "%s; this host is not a recipient of it: an admin runs "
                                    "'secretctl recipient add HOSTNAME %s' (with patterns that cover '%s'), then "
                                    "'secretctl reseal %s'",
                                    sub->message, d->cfg.pubkey_line ? d->cfg.pubkey_line : "<secretd pubkey>", secret,
                                    secret);
        case -EKEYREJECTED:
                return sd_error_set(err, EKEYREJECTED,
                                    "%s; an admin allows that writer with 'secretctl writer add', or reseals the secret",
                                    sub->message);
        default:
                return naming_secret(secret, -r, sub->message, err);
        }
}

static int fetch_open(struct delivery *d, const char *secret, const char *data, size_t len, uint64_t version,
                      const unsigned char digest[DIGEST_BYTES], struct opened **out, sd_error *err) {
        struct opened *o;
        uint64_t epoch = policy_epoch(d);
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&d->lock);
                for (;;) {
                        o = opened_find(d, secret, version, epoch, digest);
                        if (!o)
                                break;
                        if (o->ready) {
                                o->users++;
                                *out = o;
                                return 0;
                        }
                        /* Someone opens these very bytes: wait for it.  It
                         * does not wait for anything itself. */
                        (void) pthread_cond_wait(&d->ready, &d->lock);
                }
                o = calloc(1, sizeof(*o));
                if (!o)
                        return sd_error_set(err, ENOMEM, "out of memory");
                (void) snprintf(o->name, sizeof(o->name), "%s", secret);
                o->version = version;
                o->epoch = epoch;
                memcpy(o->digest, digest, DIGEST_BYTES);
                o->next = d->opens;
                d->opens = o;
                d->n_opens++;
        }

        /* The version the store says it returned is what the signature
         * must cover: a store answering "latest" with an old envelope under
         * a new number fails here. */
        sd_error sub = { 0 };
        struct sd_secret *value = NULL;
        struct sd_envelope_info info = { 0 };
        uint64_t verified_under = epoch;
        int r = d->cfg.realm ? sd_realm_envelope_open(d->cfg.realm, data, len, secret, version, d->cfg.keys,
                                                      d->cfg.n_keys, &value, &info, &verified_under, &sub)
                             : sd_error_set(&sub, ENODEV, "no realm is pinned");
        if (r < 0)
                r = open_error(d, secret, r, &sub, err);
        /* The open walked the chain to a newer policy: status says so. */
        if (r >= 0 && verified_under != epoch)
                delivery_note_realm(d);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&d->lock);
        (void) pthread_cond_broadcast(&d->ready);
        if (r < 0) {
                /* Waiters find nothing and open for themselves. */
                opened_unlink(d, o);
                free(o);
                return r;
        }
        o->value = value;
        o->info = info;
        /* The open may have refreshed the policy: it counts as verified
         * under the version it was checked against. */
        o->epoch = verified_under;
        o->ready = true;
        o->users = 1;
        verified_record(d, o);
        *out = o;
        return 0;
}

unsigned long delivery_opens(struct delivery *d) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&d->lock);
        return d->n_opens;
}

void delivery_release(struct delivery *d, struct fetched *f) {
        struct opened *o = f->opened;
        free(f->envelope);
        free(f->stale_reason);
        *f = (struct fetched) { 0 };
        if (!o)
                return;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&d->lock);
                if (--o->users > 0)
                        return;
                opened_unlink(d, o);
        }
        /* The last user: the plaintext goes (sd_secret_free zeroes it). */
        sd_secret_free(o->value);
        free(o);
}

/* Fill f from an opened envelope (it takes over f->opened). */
static void fetched_from(struct fetched *f, struct opened *o) {
        f->version = o->info.version;
        f->tombstone = o->info.tombstone;
        f->len = o->value ? o->value->len : 0;
        f->value = o->value;
        f->opened = o;
        f->unopened = false;
        memcpy(f->writer, o->info.signer_id, sizeof(f->writer));
}

/* One version (0: the latest) of secret into *f: got, then reused when
 * verified before (flags) or opened.  *data_out keeps the bytes while
 * unopened.  On failure *step_out says which step, and *got_out (may stay
 * 0) which version the store gave. */
static int fetch_one(struct delivery *d, const char *secret, uint64_t want, unsigned flags, struct fetched *f,
                     char **data_out, size_t *len_out, uint64_t *got_out, enum delivery_step *step_out, sd_error *err) {
        *f = (struct fetched) { 0 };
        (void) snprintf(f->secret, sizeof(f->secret), "%s", secret);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        uint64_t version = 0;
        *step_out = DELIVERY_GET;
        sd_error origin = { 0 };
        int r = want ? fetch_get_at(d, secret, want, &data, &len, &version, &origin, err)
                     : fetch_get(d, secret, &data, &len, &version, &origin, err);
        if (r < 0)
                return r;
        f->stand_in = r == 1;
        if (f->stand_in && (flags & DELIVERY_STORE_ONLY))
                return sd_error_set(err, EAGAIN, "secret '%s': only a stand-in answered: %s", secret, origin.message);
        *got_out = version;
        unsigned char digest[DIGEST_BYTES];
        crypto_generichash(digest, sizeof(digest), (const unsigned char *) data, len, NULL, 0);
        bool reused = false;
        {
                uint64_t epoch = policy_epoch(d);
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&d->lock);
                const struct verified *v = (flags & DELIVERY_REUSE_VERIFIED)
                                                   ? verified_find(d, secret, version, epoch, digest)
                                                   : NULL;
                if (v) {
                        reused = true;
                        f->version = v->version;
                        f->tombstone = v->tombstone;
                        f->len = v->len;
                        f->unopened = !v->tombstone;
                        memcpy(f->writer, v->writer, sizeof(f->writer));
                }
        }
        if (!reused) {
                *step_out = DELIVERY_OPEN;
                struct opened *o = NULL;
                r = fetch_open(d, secret, data, len, version, digest, &o, err);
                if (r < 0) {
                        if (f->stand_in)
                                /* Refused like any envelope; the operator
                                 * must know which file on this host holds
                                 * it. */
                                (void) sd_error_prefix(err, r, "%s", origin.message);
                        return r;
                }
                fetched_from(f, o);
        }
        if (!f->stand_in && d->cfg.source->verified)
                d->cfg.source->verified(d->cfg.source->ctx, secret, version, data, len);
        *data_out = steal_pointer(&data);
        *len_out = len;
        return reused ? 1 : 0;
}

/* A failure that newer versions' forgers cause, and older versions may not
 * share: an envelope that does not verify (unknown writer, outside its
 * patterns, altered, of another realm, sealed under a policy the store does
 * not show). */
static bool unverifiable(enum delivery_step step, int r) {
        return step == DELIVERY_OPEN && (r == -EBADMSG || r == -EKEYREJECTED);
}

/* The walk below a latest version that does not verify (delivery.h). */
static int fetch_walk_back(struct delivery *d, const char *secret, unsigned flags, uint64_t latest, uint64_t floor,
                           struct fetched *f, char **data_out, size_t *len_out, uint64_t *tried_out) {
        uint64_t lowest = floor > 1 ? floor : 1;
        unsigned tried = 0;
        for (uint64_t v = latest - 1; v >= lowest && v < latest && tried < DELIVERY_WALK_BACK_MAX; v--, tried++) {
                enum delivery_step step;
                uint64_t got = 0;
                sd_error why = { 0 };
                int r = fetch_one(d, secret, v, flags, f, data_out, len_out, &got, &step, &why);
                *tried_out = v;
                if (r >= 0) {
                        if (f->version == v)
                                return r;
                        /* The store answered another version than asked. */
                        delivery_release(d, f);
                        free(*data_out);
                        *data_out = NULL;
                        log_debug("secret '%s' version %" PRIu64 ": the store gave version %" PRIu64, secret, v,
                                  got);
                        continue;
                }
                if (r == -ENOMEM)
                        return r;
                log_debug("secret '%s' version %" PRIu64 " skipped: %s", secret, v, why.message);
                if (!unverifiable(step, r) && r != -ENOKEY)
                        return r == -ENOENT ? -ENODATA : r;
        }
        return -ENOENT;
}

int delivery_fetch_verified(struct delivery *d, const char *secret, unsigned flags, uint64_t floor,
                            struct fetched *out, enum delivery_step *step_out, sd_error *err) {
        enum delivery_step unused;
        if (!step_out)
                step_out = &unused;
        /* Start and end in the log (debug): fetches of concurrent Mounts
         * overlap there, which tests/integration/test-parallel.sh checks. */
        log_debug("fetch of secret '%s' started", secret);
        struct fetched f = { 0 };
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        uint64_t latest = 0;
        int r = fetch_one(d, secret, 0, flags, &f, &data, &len, &latest, step_out, err);
        bool reused = r == 1;
        if (r >= 0)
                r = 0;
        /* Whether the newest version verifies is what status calls stale;
         * not a recipient means it did verify. */
        if (d->cfg.notes && (r == 0 || r == -ENOKEY))
                notes_stale_clear(d->cfg.notes, secret);
        if (r < 0 && unverifiable(*step_out, r)) {
                char reason[SD_ERROR_MESSAGE_MAX];
                (void) snprintf(reason, sizeof(reason), "%s", err->message);
                uint64_t tried = latest;
                int q = -ENOENT;
                if ((flags & DELIVERY_NEWEST_VERIFIED) &&
                    atomic_load(&d->on_unverifiable) == SD_ON_UNVERIFIABLE_PREVIOUS)
                        q = fetch_walk_back(d, secret, flags, latest, floor, &f, &data, &len, &tried);
                if (d->cfg.notes)
                        notes_stale_set(d->cfg.notes, secret, latest, q >= 0 ? f.version : 0, reason);
                if (q == -ENOMEM) {
                        r = sd_error_set(err, ENOMEM, "out of memory");
                } else if (q >= 0) {
                        reused = q == 1;
                        f.newest = latest;
                        f.stale_reason = strdup(reason);
                        r = 0;
                } else if ((flags & DELIVERY_NEWEST_VERIFIED) && q == -ENOENT && floor >= latest) {
                        r = sd_error_set(err, -r, "%s; no older version may be delivered: version %" PRIu64
                                         " was delivered on this host (rollback floor)", reason, floor);
                } else if (q == -ENOENT && tried < latest) {
                        /* The newest one's error, which is what to fix. */
                        r = sd_error_set(err, -r, "%s; no older version down to %" PRIu64 " verifies either", reason,
                                         tried);
                } else if (tried < latest) {
                        r = sd_error_set(err, -r, "%s; older versions could not be tried (version %" PRIu64 ": %s)",
                                         reason, tried, strerror(q == -ENODATA ? ENOENT : -q));
                }
        }
        log_debug("fetch of secret '%s' ended: %s", secret,
                  r < 0 ? strerror(-r) : reused ? "ok, verified before" : "ok");
        if (r < 0)
                return r;
        if (!f.newest)
                f.newest = f.version;
        if (f.tombstone && !(flags & DELIVERY_ALLOW_TOMBSTONE)) {
                uint64_t version = f.version;
                delivery_release(d, &f);
                return sd_error_set(err, ENOENT, "secret '%s' was deleted in version %" PRIu64, secret, version);
        }
        if (f.unopened) {
                f.envelope = steal_pointer(&data);
                f.envelope_len = len;
        }
        *out = f;
        return 0;
}

int delivery_fetch(struct delivery *d, const char *secret, unsigned flags, struct fetched *out,
                   enum delivery_step *step_out, sd_error *err) {
        return delivery_fetch_verified(d, secret, flags, 0, out, step_out, err);
}

int64_t delivery_retry_deadline(const struct delivery *d) {
        return sd_monotonic_ms() + (d->cfg.store_retry_ms ? d->cfg.store_retry_ms : DELIVERY_STORE_RETRY_MS);
}

static void sleep_ms(int64_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int delivery_fetch_until(struct delivery *d, const char *secret, unsigned flags, uint64_t floor,
                         int64_t deadline_ms, struct fetched *out, enum delivery_step *step_out, sd_error *err) {
        enum delivery_step unused;
        if (!step_out)
                step_out = &unused;
        int64_t started = sd_monotonic_ms();
        int64_t backoff = RETRY_FIRST_MS;
        for (unsigned attempt = 1;; attempt++) {
                sd_error_clear(err);
                int r = delivery_fetch_verified(d, secret, flags, floor, out, step_out, err);
                if (r >= 0 || deadline_ms == 0 || !delivery_error_is_transient(*step_out, r))
                        return r;
                int64_t now = sd_monotonic_ms();
                if (now >= deadline_ms) {
                        if (attempt == 1)
                                return r;
                        char why[SD_ERROR_MESSAGE_MAX];
                        (void) snprintf(why, sizeof(why), "%s", err->message);
                        return sd_error_set(err, r, "%s (tried %u times over %.1f s; the store is unreachable)", why,
                                            attempt, (double) (now - started) / 1e3);
                }
                if (attempt == 1)
                        log_info("%s; retrying for up to %.0f s", err->message, (double) (deadline_ms - now) / 1e3);
                else
                        log_debug("%s; retrying (attempt %u)", err->message, attempt + 1);
                sleep_ms(backoff < deadline_ms - now ? backoff : deadline_ms - now);
                backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
        }
}

int delivery_open_fetched(struct delivery *d, struct fetched *f, sd_error *err) {
        if (!f->unopened)
                return 0;
        unsigned char digest[DIGEST_BYTES];
        crypto_generichash(digest, sizeof(digest), (const unsigned char *) f->envelope, f->envelope_len, NULL, 0);
        struct opened *o = NULL;
        int r = fetch_open(d, f->secret, f->envelope, f->envelope_len, f->version, digest, &o, err);
        if (r < 0)
                return r;
        free(f->envelope);
        f->envelope = NULL;
        fetched_from(f, o);
        return 0;
}

/* ---- step 4: write ---- */

int delivery_same_value(struct delivery *d, const char *id, const char *file, uint64_t generation,
                        const struct sd_secret *value, sd_error *err) {
        return instances_file_equals(d->cfg.instances, id, file, generation, value, err);
}

uint64_t delivery_nr_inodes(const struct volume_spec *spec) {
        return 4 * (uint64_t) spec->n_secrets + 16;
}

int delivery_check_size(const char *volume, const struct volume_spec *spec, const size_t lengths[],
                        uint64_t max_size, sd_error *err) {
        uint64_t pages = 0;
        for (size_t i = 0; i < spec->n_secrets; i++)
                pages += (lengths[i] + PAGE - 1) / PAGE;
        uint64_t needed = 2 * pages * PAGE;
        if (needed > spec->size)
                return sd_error_set(err, EFBIG,
                                    "volume '%s': its secrets need a tmpfs of %" PRIu64 " bytes "
                                    "(each file rounded up to 4K, twice so an update fits beside the current files) "
                                    "but the volume's size is %" PRIu64 " bytes; recreate it with a larger -o size= (at most %" PRIu64 ")",
                                    volume, needed, spec->size, max_size);
        return 0;
}

int delivery_params(struct delivery *d, const struct volume_spec *spec, struct sd_tmpfs_params *out,
                    sd_error *err) {
        /* Under dockerd's --userns-remap the owner must be the host id the
         * container sees as spec.uid (userns.h). */
        uid_t uid = (uid_t) spec->uid;
        gid_t gid = (gid_t) spec->gid;
        if (d->cfg.userns) {
                sd_error warning = { 0 };
                int r = userns_host_ids(d->cfg.userns, spec->uid, spec->gid, &uid, &gid, &warning, err);
                if (r < 0)
                        return r;
                if (warning.message[0])
                        log_warn("%s", warning.message);
                if (uid != (uid_t) spec->uid || gid != (gid_t) spec->gid)
                        log_debug("user namespace remap: uid %" PRIu32 " -> %u, gid %" PRIu32 " -> %u", spec->uid,
                                  (unsigned) uid, spec->gid, (unsigned) gid);
        }
        *out = (struct sd_tmpfs_params) {
                .size_bytes = spec->size,
                .nr_inodes = delivery_nr_inodes(spec),
                .uid = uid,
                .gid = gid,
                .mode = (mode_t) spec->mode,
        };
        return 0;
}

int delivery_write_new(struct delivery *d, const char *id, const struct sd_tmpfs_params *params,
                       const struct sd_tmpfs_file *files, size_t n, char **mountpoint_out, sd_error *err) {
        const struct instances *in = d->cfg.instances;
        _cleanup_free_ char *mountpoint = NULL;
        int r = instances_create(in, id, params, &mountpoint, err);
        if (r == -EEXIST) {
                /* An instance without a record: a crash between create and
                 * record.  It holds nothing anyone is using. */
                char sid[SD_SHORT_ID_CHARS + 1];
                sd_error sub = { 0 };
                sd_short_id(id, sid);
                if (instances_destroy(in, id, &sub) == 0)
                        log_info("instance %s destroyed (found without a mount record)", sid);
                sd_error_clear(err);
                r = instances_create(in, id, params, &mountpoint, err);
        }
        if (r < 0)
                return r;
        r = instances_publish(in, id, params, files, n, 1, err);
        if (r < 0) {
                sd_error sub = { 0 };
                (void) instances_destroy(in, id, &sub);
                return r;
        }
        *mountpoint_out = steal_pointer(&mountpoint);
        return 0;
}

int delivery_write_update(struct delivery *d, const char *id, const struct volume_spec *spec,
                          const struct sd_tmpfs_params *params, uint64_t current, const char *secret,
                          const struct sd_secret *value, bool (*present)(void *ctx, const char *secret),
                          void *present_ctx, uint64_t *generation_out, sd_error *err) {
        const struct instances *in = d->cfg.instances;
        struct sd_tmpfs_file files[VOLUME_SECRETS_MAX];
        size_t n = 0;
        for (size_t i = 0; i < spec->n_secrets; i++) {
                const struct volume_secret *s = &spec->secrets[i];
                if (strcmp(s->name, secret) == 0) {
                        if (value)
                                files[n++] = (struct sd_tmpfs_file) { .name = s->file, .value = value };
                } else if (present(present_ctx, s->name)) {
                        /* Unchanged: hard-linked over from the current generation. */
                        files[n++] = (struct sd_tmpfs_file) { .name = s->file, .value = NULL };
                }
        }
        uint64_t generation = current + 1;
        int r = instances_update(in, id, params, files, n, generation, err);
        if (r == -ESTALE) {
                /* The instance is ahead of its record: a crash between a
                 * publish and the record save. */
                uint64_t now = 0;
                if (instances_generation(in, id, &now) == 0) {
                        generation = now + 1;
                        sd_error_clear(err);
                        r = instances_update(in, id, params, files, n, generation, err);
                }
        }
        if (r == 0)
                *generation_out = generation;
        return r;
}
