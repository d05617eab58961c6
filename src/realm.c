/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Walking a store's policy chain from a pin and a persisted record
 * (include/secretd/realm.h), and the realm object readers hold.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/realm.h"
#include "secretd/trust-root.h"
#include "strict-json.h"

/* A record is a few hundred bytes; a pin of 32 admins is the largest part. */
#define RECORD_MAX_BYTES ((size_t) 16 << 10)
#define RECORD_FORMAT 1

/* ---- the record file ---- */

/* The pin is a root of trust: it goes through the one check every such file
 * gets (sd_trust_root_open: the file and every directory above it root's and
 * closed to group and others).  The record is the caller's own state, read
 * without following a link at its last component. */
static int read_pin_file(const char *path, size_t max, char **text_out, size_t *len_out, sd_error *err) {
        _cleanup_close_ int fd = sd_trust_root_open(path, "realm pin", err);
        if (fd == -ENOENT)
                return sd_error_set(err, ENOENT, "%s: no realm pin", path);
        if (fd < 0)
                return fd;
        return sd_read_fd(fd, path, max, text_out, len_out, err);
}

static int read_record_file(const char *path, size_t max, char **text_out, size_t *len_out, sd_error *err) {
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, err);
        if (dirfd < 0)
                return dirfd;
        struct stat st;
        if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "%s: no realm record", path);
                return sd_error_set_errno(err, errno, "%s: cannot stat", path);
        }
        if (S_ISLNK(st.st_mode))
                return sd_error_set(err, ELOOP, "%s: is a symbolic link; refusing to follow it", path);
        if (st.st_mode & 022)
                return sd_error_set(err, EPERM, "%s: mode %04o lets group or others change this realm record; refusing it",
                                    path, (unsigned) (st.st_mode & 07777));
        int r = sd_read_file_at(dirfd, base, max, text_out, len_out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

int sd_realm_record_load(const char *path, struct sd_realm_record *out, sd_error *err) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_record_file(path, RECORD_MAX_BYTES, &text, &len, err);
        if (r < 0)
                return r;

        static const char what[] = "realm record";
        _cleanup_json_ json_t *root = NULL;
        r = sd_json_load_object(text, len, RECORD_MAX_BYTES, what, &root, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        static const char *const members[] = { "format", "store", "pin", "version", "digest" };
        r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", err);
        if (r >= 0)
                r = sd_json_get_format(root, what, RECORD_FORMAT, err);
        const char *s;
        size_t slen;
        if (r >= 0)
                r = sd_json_get_string(root, what, "store", &s, &slen, err);
        struct sd_realm_record rec = { 0 };
        if (r >= 0)
                r = sd_json_get_string(root, what, "pin", &s, &slen, err);
        if (r >= 0) {
                sd_error why = { 0 };
                if (slen != strlen(s) || sd_realm_pin_parse(s, &rec.pin, &why) < 0)
                        r = sd_error_set(err, EBADMSG, "malformed %s: field 'pin': %s", what,
                                         why.code ? why.message : "contains a NUL byte");
        }
        if (r >= 0)
                r = sd_json_get_uint(root, what, "version", 0, &rec.version, err);
        if (r >= 0)
                r = sd_json_get_b64_exact(root, what, "digest", "digest", rec.digest, SD_POLICY_DIGEST_BYTES, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        *out = rec;
        return 0;
}

int sd_realm_record_save(const char *path, const struct sd_realm_record *rec, const char *store_url,
                         sd_error *err) {
        _cleanup_free_ char *pin = NULL;
        if (sd_realm_pin_format(&rec->pin, &pin) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *digest = sd_b64_encode(rec->digest, SD_POLICY_DIGEST_BYTES, SD_B64_STD);
        if (!digest)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *root = json_pack("{s:i, s:s, s:s, s:I, s:s}", "format", RECORD_FORMAT, "store",
                                                store_url ? store_url : "", "pin", pin, "version",
                                                (json_int_t) rec->version, "digest", digest);
        if (!root)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t len = strlen(text);
        _cleanup_free_ char *line = malloc(len + 2);
        if (!line)
                return sd_error_set(err, ENOMEM, "out of memory");
        memcpy(line, text, len);
        line[len] = '\n';
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, true, 0700, &base, err);
        if (dirfd < 0)
                return dirfd;
        int r = sd_write_file_at(dirfd, base, line, len + 1, 0600, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

/* ---- the pin file ---- */

/* A pin line with 32 admins is under 1.5 KiB; allow comments around it. */
#define PIN_FILE_MAX ((size_t) 8 << 10)

int sd_realm_pin_load_file(const char *path, struct sd_realm_pin *out, sd_error *err) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_pin_file(path, PIN_FILE_MAX, &text, &len, err);
        if (r < 0)
                return r;
        if (strlen(text) != len)
                return sd_error_set(err, EINVAL, "%s: contains a NUL byte", path);
        /* '#' comment lines may surround the one pin line. */
        char *line = NULL;
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                l += strspn(l, " \t\r");
                if (*l == '\0' || *l == '#')
                        continue;
                if (line)
                        return sd_error_set(err, EINVAL, "%s: more than one pin line", path);
                line = l;
        }
        if (!line)
                return sd_error_set(err, EINVAL, "%s: no pin line (sdr1:...)", path);
        r = sd_realm_pin_parse(line, out, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

int sd_realm_pin_save_file(const char *path, const struct sd_realm_pin *pin, sd_error *err) {
        _cleanup_free_ char *line = NULL;
        if (sd_realm_pin_format(pin, &line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *text = NULL;
        if (asprintf(&text, "# secretd realm pin: this host trusts this realm and its admins\n%s\n", line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, true, 0755, &base, err);
        if (dirfd < 0)
                return dirfd;
        int r = sd_write_file_at(dirfd, base, text, strlen(text), 0644, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

/* ---- the walk ---- */

static int fetch_policy(struct sd_store *s, uint64_t version, struct sd_policy **out, sd_error *err) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = sd_store_policy_get(s, version, &data, &len, NULL, err);
        if (r < 0)
                return r;
        struct sd_policy *p = NULL;
        r = sd_policy_parse(data, len, &p, err);
        if (r < 0)
                return sd_error_prefix(err, r, "policy v%" PRIu64, version);
        if (sd_policy_version(p) != version) {
                uint64_t got = sd_policy_version(p);
                sd_policy_unref(p);
                return sd_error_set(err, EBADMSG, "the store's policy v%" PRIu64 " is a copy of v%" PRIu64, version, got);
        }
        *out = p;
        return 0;
}

static void realm_text(const unsigned char realm[SD_REALM_ID_BYTES], char out[SD_REALM_ID_SHORT_CHARS + 1]) {
        sd_realm_id_short(realm, out);
}

/* The first version to trust without a record: the lowest one the pin's
 * admins sign to its own threshold. */
static int walk_start_from_pin(struct sd_store *s, const struct sd_realm_pin *pin, uint64_t latest,
                               struct sd_policy **out, sd_error *err) {
        sd_error first = { 0 };
        for (uint64_t v = 1; v <= latest; v++) {
                _cleanup_policy_ struct sd_policy *p = NULL;
                sd_error why = { 0 };
                int r = fetch_policy(s, v, &p, &why);
                if (r == -ENOMEM)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (r >= 0)
                        r = sd_policy_verify_pinned(p, pin, &why);
                if (r >= 0) {
                        *out = steal_pointer(&p);
                        return 0;
                }
                /* A store that cannot answer is not a verification result. */
                if (r != -EBADMSG && r != -EKEYREJECTED && r != -ENOENT) {
                        if (err)
                                *err = why;
                        return r;
                }
                if (!first.code)
                        first = why;
        }
        char realm[SD_REALM_ID_SHORT_CHARS + 1];
        realm_text(pin->realm, realm);
        if (strstr(first.message, "belongs to realm"))
                return sd_error_set(err, EBADMSG, "the store's %s", first.message);
        return sd_error_set(err, EKEYREJECTED,
                            "no policy version in the store (v1 to v%" PRIu64 ") is signed by the pinned admins of realm %s (%s)",
                            latest, realm, first.code ? first.message : "none could be read");
}

int sd_realm_walk(struct sd_store *s, const struct sd_realm_record *rec, sd_warn_fn warn, void *warn_userdata,
                  struct sd_policy **policy_out, struct sd_realm_record *record_out, sd_error *err) {
        char realm[SD_REALM_ID_SHORT_CHARS + 1];
        realm_text(rec->pin.realm, realm);
        uint64_t latest = 0;
        sd_error why = { 0 };
        int r = sd_store_policy_latest(s, &latest, &why);
        if (r == -ENOENT) {
                if (rec->version > 0)
                        return sd_error_set(err, ESTALE,
                                            "store '%s' has no realm policy, but policy v%" PRIu64 " of realm %s was verified "
                                            "before: refusing (the store lost or withholds it)",
                                            sd_store_url(s), rec->version, realm);
                return sd_error_set(err, ENOENT, "store '%s' has no realm policy (realm %s is pinned)", sd_store_url(s),
                                    realm);
        }
        if (r < 0) {
                if (err)
                        *err = why;
                return r;
        }

        _cleanup_policy_ struct sd_policy *cur = NULL;
        if (rec->version > 0) {
                if (latest < rec->version)
                        return sd_error_set(err, ESTALE,
                                            "the store offers policy v%" PRIu64 " of realm %s, older than v%" PRIu64
                                            " already verified: refusing a rollback",
                                            latest, realm, rec->version);
                r = fetch_policy(s, rec->version, &cur, err);
                if (r < 0)
                        return r;
                unsigned char digest[SD_POLICY_DIGEST_BYTES];
                if (sd_policy_digest(cur, digest) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (memcmp(sd_policy_realm(cur), rec->pin.realm, SD_REALM_ID_BYTES) != 0 ||
                    sodium_memcmp(digest, rec->digest, SD_POLICY_DIGEST_BYTES) != 0)
                        return sd_error_set(err, ESTALE,
                                            "the store's policy v%" PRIu64 " differs from the v%" PRIu64
                                            " of realm %s verified before: refusing it",
                                            rec->version, rec->version, realm);
        } else {
                r = walk_start_from_pin(s, &rec->pin, latest, &cur, err);
                if (r < 0)
                        return r;
        }

        for (uint64_t v = sd_policy_version(cur) + 1; v <= latest; v++) {
                _cleanup_policy_ struct sd_policy *next = NULL;
                r = fetch_policy(s, v, &next, &why);
                if (r >= 0)
                        r = sd_policy_verify_next(cur, next, &why);
                if (r == -ENOMEM)
                        return sd_error_set(err, ENOMEM, "out of memory");
                if (r < 0) {
                        bool verdict = r == -EBADMSG || r == -EKEYREJECTED || r == -ENOENT;
                        if (!warn || !verdict) {
                                if (err)
                                        *err = why;
                                return r;
                        }
                        char line[SD_ERROR_MESSAGE_MAX + 96];
                        (void) snprintf(line, sizeof(line), "%s; keeping policy v%" PRIu64 " of realm %s", why.message,
                                        sd_policy_version(cur), realm);
                        warn(warn_userdata, line);
                        break;
                }
                sd_policy_unref(cur);
                cur = steal_pointer(&next);
        }

        struct sd_realm_record now = { .pin = rec->pin, .version = sd_policy_version(cur) };
        if (sd_policy_digest(cur, now.digest) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        bool raised = now.version != rec->version ||
                      memcmp(now.digest, rec->digest, SD_POLICY_DIGEST_BYTES) != 0;
        *record_out = now;
        *policy_out = steal_pointer(&cur);
        return raised ? 1 : 0;
}

/* ---- the realm object ---- */

struct sd_realm {
        struct sd_store *store;
        struct sd_realm_pin pin;
        char *state_path;
        sd_warn_fn warn;
        void *warn_userdata;

        pthread_mutex_t lock;          /* guards the fields below */
        struct sd_realm_record record;
        struct sd_policy *policy;
};

int sd_realm_new(struct sd_store *store, const struct sd_realm_pin *pin, const char *state_path,
                 struct sd_realm **out, sd_error *err) {
        struct sd_realm_record rec = { .pin = *pin };
        sd_error why = { 0 };
        int r = sd_realm_record_load(state_path, &rec, &why);
        if (r == -ENOENT) {
                rec = (struct sd_realm_record) { .pin = *pin };
        } else if (r < 0) {
                if (err)
                        *err = why;
                return r;
        } else if (memcmp(rec.pin.realm, pin->realm, SD_REALM_ID_BYTES) != 0) {
                /* A new pin for another realm: what was verified for the old
                 * one says nothing about this one. */
                rec = (struct sd_realm_record) { .pin = *pin };
        } else {
                /* The configured pin is what is trusted a priori; the
                 * record only carries the highest version seen. */
                rec.pin = *pin;
        }
        struct sd_realm *rl = calloc(1, sizeof(*rl));
        if (!rl)
                return sd_error_set(err, ENOMEM, "out of memory");
        rl->state_path = strdup(state_path);
        if (!rl->state_path) {
                free(rl);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        (void) pthread_mutex_init(&rl->lock, NULL);
        rl->store = store;
        rl->pin = *pin;
        rl->record = rec;
        *out = rl;
        return 0;
}

void sd_realm_free(struct sd_realm *r) {
        if (!r)
                return;
        sd_policy_unref(r->policy);
        (void) pthread_mutex_destroy(&r->lock);
        free(r->state_path);
        free(r);
}

void sd_realm_set_warn(struct sd_realm *r, sd_warn_fn warn, void *userdata) {
        r->warn = warn;
        r->warn_userdata = userdata;
}

int sd_realm_refresh(struct sd_realm *r, sd_error *err) {
        struct sd_realm_record from;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
                from = r->record;
        }
        /* The walk talks to the store: never under the lock, so readers
         * keep getting the current policy meanwhile. */
        _cleanup_policy_ struct sd_policy *p = NULL;
        struct sd_realm_record now;
        int raised = sd_realm_walk(r->store, &from, r->warn, r->warn_userdata, &p, &now, err);
        if (raised < 0)
                return raised;

        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        /* Another refresh may have got further meanwhile: never go back. */
        if (r->policy && sd_policy_version(r->policy) >= now.version)
                return 0;
        if (raised || r->record.version != now.version) {
                int q = sd_realm_record_save(r->state_path, &now, sd_store_url(r->store), err);
                if (q < 0)
                        return q;
        }
        r->record = now;
        sd_policy_unref(r->policy);
        r->policy = steal_pointer(&p);
        return 1;
}

struct sd_policy *sd_realm_policy(struct sd_realm *r) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&r->lock);
        return sd_policy_ref(r->policy);
}

const struct sd_realm_pin *sd_realm_pin(const struct sd_realm *r) {
        return &r->pin;
}

struct sd_store *sd_realm_store(const struct sd_realm *r) {
        return r->store;
}
