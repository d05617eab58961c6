/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Getting a secret from the store into a tmpfs instance, for Create, Mount
 * and rotation alike, in steps each of them calls:
 *
 *   1. get      the envelope bytes of the latest version (the store; the
 *               source is a seam, struct envelope_source, so a cache of
 *               envelopes can stand in when the store is unreachable);
 *   2. open     verify and decrypt them against the realm's current policy
 *               (refreshed once when an envelope names a newer one), at
 *               most once per envelope at a time (below);
 *   3. decide   the rollback floor (registry.h: floor_decide), then
 *               record;
 *   4. write    the files into an instance, owned by the host ids the
 *               container sees as the volume's uid/gid (userns.h), with
 *               the tmpfs parameters of the volume.
 *
 * The kind of a failure (secretd_errors_total{kind}) is the step that
 * failed, in delivery_error_kind() and nowhere else: a store that cannot be
 * read (timeout, refused, an etcd reply that makes no sense: EPROTO) is
 * "store" at Create, Mount and rotation alike; an envelope that does not
 * verify or open is "verify"; a version below the floor is "rollback"; a
 * floor that cannot be vouched for is "state"; the tmpfs "tmpfs".
 *
 * Opening once.  Opening an envelope costs a signature check, a sealed-box
 * unwrap and two locked allocations (the unmaps of which shoot down TLBs
 * on every core the agent runs on): most of a Mount.  So:
 *   - Mounts that need the same envelope (same name, version and bytes:
 *     BLAKE2b) at the same time share one open: the first opens, the
 *     others wait for it and use its plaintext, which lives in
 *     sodium_malloc()ed memory only while one of them still writes it,
 *     and is zeroed and freed after the last one.
 *   - Every envelope opened is remembered without its plaintext (name,
 *     version, digest, writer, length; the latest version per name, and
 *     only under the policy version it was checked against: a new policy
 *     version, which may have removed its writer, checks it again).  A Mount or
 *     Create that gets the very same bytes again needs no new check: a
 *     Create needs nothing more, and a Mount copies the file from a live
 *     instance that holds that version (struct sd_tmpfs_file's source:
 *     from tmpfs to tmpfs), opening the envelope only when no instance
 *     has it.
 * Newest verified version.  When the latest version of a secret fails
 * verification (an unknown writer, a forged or altered envelope, a writer
 * outside its patterns) and the caller asks for it
 * (DELIVERY_NEWEST_VERIFIED) while on-unverifiable is "previous", the
 * versions below it are tried, newest first, down to the rollback floor (at
 * most DELIVERY_WALK_BACK_MAX of them): the first that verifies is
 * delivered, and fetched.newest says which newer one was refused.  Every
 * such refusal marks the secret stale in the notes (status), and a latest
 * version that verifies clears it.  Not a recipient, a tombstone, a store
 * error: no walk back (those are answers, not forgeries).
 *
 * No plaintext is kept in the agent beyond a Mount or rotation
 * (tests/integration/test-memory.sh scans the agent after a delivery and
 * finds none).  Keeping verified plaintext would also spare the open when
 * no container holds the version, at the price of values in the agent's
 * memory while nobody needs them; docs/agent.md "Performance".
 *
 * Thread-safe: the plugin threads and the rotation thread call it at once.
 * No lock of the registry is held while any of this runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "metrics.h"
#include "request.h"
#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/names.h"
#include "secretd/secret.h"
#include "secretd/store.h"
#include "secretd/tmpfs.h"
#include "secretd/config.h"
#include "secretd/realm.h"

struct instances;
struct notes;
struct userns;

/* This host's keys status looks up among the policy's recipients. */
#define DELIVERY_KEYS_MAX 4

/* Versions tried below a latest one that does not verify. */
#define DELIVERY_WALK_BACK_MAX 64

/* Step 1's seam: the bytes of version `version` (0: the latest) of name's
 * envelope, and the version they are.  The default reads the store
 * (sd_store_get); the agent's cache of envelopes (cache.h) stands in when
 * the store is unreachable.  *data_out malloc()ed.
 *
 * get returns 0 for bytes from the store and 1 for bytes from a stand-in,
 * err's message then naming where they came from and why ("cache entry
 * PATH (the store is unreachable: ...)"): delivery verifies them all the
 * same, and names that place when they fail.
 *
 * verified (may be NULL) is told, after step 2, of store bytes that
 * verified (opened now, or the very bytes verified before): what a cache
 * keeps. */
struct envelope_source {
        int (*get)(void *ctx, const char *name, uint64_t version, char **data_out, size_t *len_out,
                   uint64_t *version_out, sd_error *err);
        void (*verified)(void *ctx, const char *name, uint64_t version, const char *data, size_t len);
        void *ctx;
};

/* The source that reads store (what delivery uses without cfg->source). */
void delivery_store_source(struct sd_store *store, struct envelope_source *out);

/* How long a Mount or Create retries a store that is unreachable
 * (sd_store_error_is_transient) before it answers with the error: well
 * inside dockerd's 2 minutes, even with a last call that runs into etcd's
 * 10 s timeout on each of three members. */
#define DELIVERY_STORE_RETRY_MS 20000

struct delivery_config {
        struct sd_store *store;           /* NULL (and no source): every get fails */
        const struct envelope_source *source;  /* NULL: the store */
        struct sd_realm *realm;           /* envelopes are verified against its current policy */
        const struct sd_box_keypair *keys; /* and opened with the first of these that is a recipient */
        size_t n_keys;
        const char *pubkey_line;          /* "sda1:...", for advice in messages */
        const struct instances *instances;
        struct userns *userns;            /* NULL: files keep the volume's ids */
        struct notes *notes;              /* store state */
        unsigned store_retry_ms;          /* 0: DELIVERY_STORE_RETRY_MS */
        enum sd_on_unverifiable on_unverifiable;  /* previous (0) or refuse */
};

enum delivery_step {
        DELIVERY_GET,
        DELIVERY_OPEN,
        DELIVERY_DECIDE,
        DELIVERY_WRITE,
};

/* The one classification of a failed delivery (see above). */
enum error_kind delivery_error_kind(enum delivery_step step, int code);

/* Whether a failed delivery may succeed if tried again later: the store
 * (or a store read while verifying: a refresh of the realm's policy) was
 * unreachable, timed out, reset the connection or answered etcd's 503
 * (sd_store_error_is_transient).  Such a failure is a store error, never a
 * refusal: Mount retries it (delivery_fetch_until), rotation retries it
 * with backoff (rotate.h).  Only what fails verification is refused. */
bool delivery_error_is_transient(enum delivery_step step, int code);

struct delivery;

int delivery_new(const struct delivery_config *cfg, struct delivery **out, sd_error *err);
void delivery_free(struct delivery *d);
/* SIGHUP: on-unverifiable for the fetches begun from now on. */
void delivery_set_on_unverifiable(struct delivery *d, enum sd_on_unverifiable v);

/* ---- steps 1 and 2 ---- */

struct opened;

/* The latest version of one secret, verified.  value is NULL for a
 * tombstone.  Release with delivery_release(). */
struct fetched {
        char secret[SD_NAME_MAX + 1];
        uint64_t version;
        bool tombstone;
        size_t len;
        char writer[SD_KEY_ID_CHARS + 1];
        /* NULL for a tombstone, and for an envelope verified before that
         * was not opened again (DELIVERY_REUSE_VERIFIED): see
         * delivery_open_fetched(). */
        const struct sd_secret *value;
        bool unopened;
        char *envelope;                   /* the bytes, while unopened */
        size_t envelope_len;
        /* The bytes came from a stand-in (the cache), not the store: they
         * verified, but a newer version may exist. */
        bool stand_in;
        struct opened *opened;            /* shared plaintext; internal */
        /* The store's latest version: above `version` only when that one
         * failed verification and an older one was taken
         * (DELIVERY_NEWEST_VERIFIED); stale_reason (malloc()ed) says why. */
        uint64_t newest;
        char *stale_reason;
};

enum {
        /* An envelope whose very bytes were verified before under the same
         * policy version is not opened again: value is NULL and unopened set
         * (Create needs no value, a Mount may copy it from an instance). */
        DELIVERY_REUSE_VERIFIED = 1 << 0,
        /* A tombstone is delivered (value NULL, tombstone set) instead of
         * failing with -ENOENT. */
        DELIVERY_ALLOW_TOMBSTONE = 1 << 1,
        /* The newest version that verifies and is not below the floor, when
         * the latest does not verify and on-unverifiable is "previous"
         * (above). */
        DELIVERY_NEWEST_VERIFIED = 1 << 2,
        /* Only the store's answer will do (rotation wants its latest): bytes
         * a stand-in gave are dropped unopened and the fetch fails as the
         * store did, -EAGAIN at DELIVERY_GET (transient). */
        DELIVERY_STORE_ONLY = 1 << 3,
};

/* Get and open the latest version of secret (flags above).  A tombstone is
 * -ENOENT ("secret 'x' was deleted in version N") unless allowed.  On
 * failure *step_out (may be NULL) says which step failed and err says why
 * with advice for the operator: this host's key line when it is not a
 * recipient, the policy commands when the writer is not allowed. */
int delivery_fetch(struct delivery *d, const char *secret, unsigned flags, struct fetched *out,
                   enum delivery_step *step_out, sd_error *err);
/* delivery_fetch() with the floor of secret before the fetch: with
 * DELIVERY_NEWEST_VERIFIED, versions below it are never tried.  When no
 * version from the latest down to the floor verifies, the latest one's error,
 * saying so. */
int delivery_fetch_verified(struct delivery *d, const char *secret, unsigned flags, uint64_t floor,
                            struct fetched *out, enum delivery_step *step_out, sd_error *err);

/* Tell the notes which policy version envelopes are verified against now,
 * and this host's recipient name in it (notes_realm_policy). */
void delivery_note_realm(struct delivery *d);

/* delivery_fetch_verified(), tried again with backoff (100 ms doubling to 2 s)
 * while it fails with a transient error (delivery_error_is_transient) and
 * the clock (sd_monotonic_ms) is before deadline_ms; then the last error,
 * saying how long it was retried.  deadline_ms 0: once. */
int delivery_fetch_until(struct delivery *d, const char *secret, unsigned flags, uint64_t floor,
                         int64_t deadline_ms, struct fetched *out, enum delivery_step *step_out, sd_error *err);
/* The deadline for the fetches of one Mount or Create begun now. */
int64_t delivery_retry_deadline(const struct delivery *d);
/* Open an unopened fetch after all (no instance to copy it from).  0 and
 * nothing to do for one that has its value. */
int delivery_open_fetched(struct delivery *d, struct fetched *f, sd_error *err);
void delivery_release(struct delivery *d, struct fetched *f);

/* Envelopes opened so far (each open is a signature check and an unwrap):
 * for the tests and the benchmark. */
unsigned long delivery_opens(struct delivery *d);

/* ---- step 4 ---- */

/* Two generations of files and their directories, the visible symlinks,
 * ..data and its staging link (docs/tmpfs.md "Sizing the caps"): the
 * nr_inodes of a volume's instances, checked against max-inodes. */
uint64_t delivery_nr_inodes(const struct volume_spec *spec);

/* tmpfs charges whole pages per file, and an update writes the new
 * generation before wiping the old one: the size a volume needs for
 * values of these lengths.  -EFBIG (message naming the volume and the fix)
 * when spec->size is smaller. */
int delivery_check_size(const char *volume, const struct volume_spec *spec, const size_t lengths[],
                        uint64_t max_size, sd_error *err);

/* The tmpfs parameters of spec's instances, owner mapped to the host ids
 * the container sees as spec's uid/gid. */
int delivery_params(struct delivery *d, const struct volume_spec *spec, struct sd_tmpfs_params *out,
                    sd_error *err);

/* Create instance id and publish generation 1 with files[0..n) (values,
 * or copies from other instances).  *mountpoint_out malloc()ed.  An
 * instance without a record (a crash between create and record) is
 * destroyed and made again.  On failure nothing is left. */
int delivery_write_new(struct delivery *d, const char *id, const struct sd_tmpfs_params *params,
                       const struct sd_tmpfs_file *files, size_t n, char **mountpoint_out, sd_error *err);

/* Does file `file` of instance id at generation hold exactly value?  1
 * yes, 0 no, < 0 it cannot be read (the caller publishes then).  Compared
 * in locked memory with sodium_memcmp; nothing of it is kept. */
int delivery_same_value(struct delivery *d, const char *id, const char *file, uint64_t generation,
                        const struct sd_secret *value, sd_error *err);

/* Publish generation (current + 1) of instance id with value (NULL:
 * removed) as every file of secret, the instance's other files carried
 * over (present: whether the instance has that secret's files).
 * *generation_out is the generation published. */
int delivery_write_update(struct delivery *d, const char *id, const struct volume_spec *spec,
                          const struct sd_tmpfs_params *params, uint64_t current, const char *secret,
                          const struct sd_secret *value, bool (*present)(void *ctx, const char *secret),
                          void *present_ctx, uint64_t *generation_out, sd_error *err);
