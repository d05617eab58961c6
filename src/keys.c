/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "fileio.h"
#include "secretd/keys.h"

#define WRITER_PUB_PREFIX "sdw1:"
#define AGENT_PUB_PREFIX "sda1:"
#define WRITER_SECRET_PREFIX "sdw1-secret:"
#define AGENT_SECRET_PREFIX "sda1-secret:"

/* A key file is two short lines; anything much larger is not one. */
#define KEY_FILE_MAX 4096

_Static_assert(SD_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "ed25519 pk size");
_Static_assert(SD_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "ed25519 sk size");
_Static_assert(SD_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "x25519 pk size");
_Static_assert(SD_BOX_SK_BYTES == crypto_box_SECRETKEYBYTES, "x25519 sk size");

/* Private key material and the text it is encoded in stay in guarded,
 * locked memory; sodium_free() zeroes it. */
static inline void sodium_freep(void *p) {
        sodium_free(*(void **) p);
}
#define _cleanup_sodium_free_ _cleanup_(sodium_freep)

void sd_key_id(const unsigned char pk[32], char out[SD_KEY_ID_CHARS + 1]) {
        unsigned char hash[crypto_generichash_BYTES];
        /* crypto_generichash cannot fail for these sizes. */
        (void) crypto_generichash(hash, sizeof(hash), pk, 32, NULL, 0);
        sodium_bin2hex(out, SD_KEY_ID_CHARS + 1, hash, SD_KEY_ID_CHARS / 2);
}

bool sd_box_pk_usable(const unsigned char pk[SD_BOX_PK_BYTES]) {
        /* crypto_scalarmult refuses to produce the all-zero result that
         * low-order points give. */
        static const unsigned char scalar[crypto_scalarmult_SCALARBYTES] = { 9 };
        unsigned char shared[crypto_scalarmult_BYTES];
        bool ok = crypto_scalarmult(shared, scalar, pk) == 0;
        sodium_memzero(shared, sizeof(shared));
        return ok;
}

/* ---- public lines ---- */

static int pub_format(const char *prefix, const void *bin, size_t len, char **out) {
        _cleanup_free_ char *b64 = sd_b64_encode(bin, len, SD_B64_URL_NOPAD);
        if (!b64)
                return -ENOMEM;
        size_t plen = strlen(prefix), blen = strlen(b64);
        char *line = malloc(plen + blen + 1);
        if (!line)
                return -ENOMEM;
        memcpy(line, prefix, plen);
        memcpy(line + plen, b64, blen + 1);
        *out = line;
        return 0;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* "an agent public key", "a writer public key": what with its article. */
static const char *a_or_an(const char *what) {
        return strchr("aeiou", what[0]) ? "an" : "a";
}

/* Decode the first whitespace-separated token of text, which must be prefix
 * followed by base64url of exactly len bytes.  The input is never echoed in
 * messages: a user who pastes a private line by mistake must not see it
 * copied into a log. */
static int pub_parse(const char *text, const char *prefix, const char *what, void *bin, size_t len,
                     sd_error *err) {
        if (!text)
                return sd_error_set(err, EINVAL, "no %s given", what);
        while (is_space(*text))
                text++;
        size_t tlen = 0;
        while (text[tlen] && !is_space(text[tlen]))
                tlen++;
        size_t plen = strlen(prefix);

        if (tlen == 0)
                return sd_error_set(err, EINVAL, "the %s is empty", what);
        if (strncmp(text, WRITER_SECRET_PREFIX, strlen(WRITER_SECRET_PREFIX)) == 0 ||
            strncmp(text, AGENT_SECRET_PREFIX, strlen(AGENT_SECRET_PREFIX)) == 0)
                return sd_error_set(err, EINVAL,
                                    "this is a private key, not %s %s; give the public line (%s...)",
                                    a_or_an(what), what, prefix);
        if (tlen < plen || memcmp(text, prefix, plen) != 0) {
                const char *other = strcmp(prefix, WRITER_PUB_PREFIX) == 0 ? AGENT_PUB_PREFIX : WRITER_PUB_PREFIX;
                if (tlen >= strlen(other) && memcmp(text, other, strlen(other)) == 0)
                        return sd_error_set(err, EINVAL, "this is %s, not %s %s",
                                            strcmp(other, WRITER_PUB_PREFIX) == 0 ? "a writer public key" : "an agent public key",
                                            a_or_an(what), what);
                return sd_error_set(err, EINVAL, "not %s %s: it must start with '%s'", a_or_an(what), what, prefix);
        }
        if (sd_b64_decode_exact(text + plen, tlen - plen, bin, len, SD_B64_URL_NOPAD) < 0)
                return sd_error_set(err, EINVAL,
                                    "not %s %s: '%s' must be followed by %zu bytes in unpadded base64url",
                                    a_or_an(what), what, prefix, len);
        return 0;
}

int sd_writer_pub_format(const struct sd_writer_pub *pub, char **out) {
        unsigned char both[SD_SIGN_PK_BYTES + SD_BOX_PK_BYTES];
        memcpy(both, pub->sign_pk, SD_SIGN_PK_BYTES);
        memcpy(both + SD_SIGN_PK_BYTES, pub->box_pk, SD_BOX_PK_BYTES);
        return pub_format(WRITER_PUB_PREFIX, both, sizeof(both), out);
}

int sd_writer_pub_parse(const char *text, struct sd_writer_pub *out, sd_error *err) {
        unsigned char both[SD_SIGN_PK_BYTES + SD_BOX_PK_BYTES];
        int r = pub_parse(text, WRITER_PUB_PREFIX, "writer public key", both, sizeof(both), err);
        if (r < 0)
                return r;
        /* A signing key that is not a canonical point of the main subgroup
         * could never have come from keygen; refusing it here keeps junk out
         * of trust files. */
        if (!crypto_core_ed25519_is_valid_point(both))
                return sd_error_set(err, EINVAL, "not a writer public key: its signing key is not a valid Ed25519 point");
        memcpy(out->sign_pk, both, SD_SIGN_PK_BYTES);
        memcpy(out->box_pk, both + SD_SIGN_PK_BYTES, SD_BOX_PK_BYTES);
        return 0;
}

int sd_agent_pub_format(const unsigned char box_pk[SD_BOX_PK_BYTES], char **out) {
        return pub_format(AGENT_PUB_PREFIX, box_pk, SD_BOX_PK_BYTES, out);
}

int sd_agent_pub_parse(const char *text, unsigned char box_pk[SD_BOX_PK_BYTES], sd_error *err) {
        unsigned char pk[SD_BOX_PK_BYTES];
        int r = pub_parse(text, AGENT_PUB_PREFIX, "agent public key", pk, sizeof(pk), err);
        if (r < 0)
                return r;
        memcpy(box_pk, pk, sizeof(pk));
        return 0;
}

/* ---- private key files ---- */

/* Build "# comment\nPREFIX<base64url(secret)>\n" in locked memory and
 * publish it as path, mode 0600. */
static int key_file_save(const char *path, const char *comment, const char *prefix,
                         const unsigned char *secret, size_t secret_len, bool force, sd_error *err) {
        size_t b64_cap = sodium_base64_ENCODED_LEN(secret_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t cap = strlen(comment) + strlen(prefix) + b64_cap + 4;
        _cleanup_sodium_free_ char *text = sodium_malloc(cap);
        if (!text)
                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", path);

        int n = snprintf(text, cap, "# %s\n%s", comment, prefix);
        if (n < 0 || (size_t) n >= cap)
                return sd_error_set(err, EINVAL, "%s: key file text too long", path);
        sodium_bin2base64(text + n, cap - (size_t) n, secret, secret_len,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t len = strlen(text);
        text[len++] = '\n';

        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, true, 0700, &base, err);
        if (dirfd < 0)
                return dirfd;
        int r = sd_write_file_at(dirfd, base, text, len, 0600, force ? SD_WRITE_REPLACE : 0, err);
        if (r == -EEXIST)
                return sd_error_set(err, EEXIST, "%s: a key file already exists; use --force to replace it", path);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

/* Read a private key file into locked memory and decode its one key line
 * (after optional comment lines) into secret[secret_len]. */
static int key_file_load(const char *path, const char *prefix, const char *wrong_prefix,
                         const char *what, unsigned char *secret, size_t secret_len, sd_error *err) {
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, err);
        if (dirfd < 0)
                return dirfd;
        _cleanup_close_ int fd = openat(dirfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno == ELOOP)
                        return sd_error_set(err, ELOOP, "%s: is a symbolic link; refusing to follow it", path);
                return sd_error_set_errno(err, errno, "%s: cannot open %s", path, what);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "%s: cannot stat", path);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "%s: not a regular file", path);
        /* Like ssh: a private key others can read (or write) is no longer
         * private, and silently using it would hide that. */
        if (st.st_mode & 0077)
                return sd_error_set(err, EPERM,
                                    "%s: mode %04o lets group or others access this %s; run chmod 600 %s",
                                    path, (unsigned) (st.st_mode & 07777), what, path);
        if (st.st_size > KEY_FILE_MAX)
                return sd_error_set(err, EINVAL, "%s: %lld bytes is too large for a %s", path,
                                    (long long) st.st_size, what);

        _cleanup_sodium_free_ char *text = sodium_malloc(KEY_FILE_MAX + 1);
        if (!text)
                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", path);
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, text + len, KEY_FILE_MAX + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return sd_error_set_errno(err, errno, "%s: read failed", path);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > KEY_FILE_MAX)
                        return sd_error_set(err, EINVAL, "%s: too large for a %s", path, what);
        }

        bool found = false;
        unsigned line_no = 0;
        for (size_t pos = 0; pos < len;) {
                size_t end = pos;
                while (end < len && text[end] != '\n')
                        end++;
                size_t next = end + 1;
                line_no++;
                size_t start = pos;
                while (start < end && is_space(text[start]))
                        start++;
                while (end > start && is_space(text[end - 1]))
                        end--;
                pos = next;
                if (start == end || text[start] == '#')
                        continue;

                size_t plen = strlen(prefix), wlen = strlen(wrong_prefix);
                if (found)
                        return sd_error_set(err, EINVAL, "%s:%u: unexpected second key line", path, line_no);
                if (end - start >= wlen && memcmp(text + start, wrong_prefix, wlen) == 0)
                        return sd_error_set(err, EINVAL, "%s:%u: this file holds a different kind of key, not a %s",
                                            path, line_no, what);
                if (end - start < plen || memcmp(text + start, prefix, plen) != 0)
                        return sd_error_set(err, EINVAL, "%s:%u: not a %s: expected a line starting with '%s'",
                                            path, line_no, what, prefix);
                if (sd_b64_decode_exact(text + start + plen, end - start - plen, secret, secret_len,
                                        SD_B64_URL_NOPAD) < 0)
                        return sd_error_set(err, EINVAL, "%s:%u: '%s' must be followed by %zu bytes in unpadded base64url",
                                            path, line_no, prefix, secret_len);
                found = true;
        }
        if (!found)
                return sd_error_set(err, EINVAL, "%s: not a %s: no '%s' line", path, what, prefix);
        return 0;
}

/* ---- writer identities ---- */

int sd_writer_key_generate(struct sd_writer_key **out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct sd_writer_key *k = sodium_malloc(sizeof(*k));
        if (!k)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory for a key");
        (void) crypto_sign_keypair(k->pub.sign_pk, k->sign_sk);
        (void) crypto_box_keypair(k->pub.box_pk, k->box_sk);
        *out = k;
        return 0;
}

void sd_writer_key_free(struct sd_writer_key *k) {
        sodium_free(k);
}

int sd_writer_key_save(const struct sd_writer_key *k, const char *path, bool force, sd_error *err) {
        _cleanup_free_ char *pub_line = NULL;
        if (sd_writer_pub_format(&k->pub, &pub_line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *comment = NULL;
        if (asprintf(&comment, "secretd writer identity; public: %s", pub_line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");

        /* libsodium's Ed25519 secret key is seed || pk: the seed alone is the
         * secret and the rest is derived again on load. */
        _cleanup_sodium_free_ unsigned char *secret = sodium_malloc(crypto_sign_SEEDBYTES + SD_BOX_SK_BYTES);
        if (!secret)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory");
        memcpy(secret, k->sign_sk, crypto_sign_SEEDBYTES);
        memcpy(secret + crypto_sign_SEEDBYTES, k->box_sk, SD_BOX_SK_BYTES);
        return key_file_save(path, comment, WRITER_SECRET_PREFIX, secret,
                             crypto_sign_SEEDBYTES + SD_BOX_SK_BYTES, force, err);
}

int sd_writer_key_load(const char *path, struct sd_writer_key **out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        _cleanup_sodium_free_ unsigned char *secret = sodium_malloc(crypto_sign_SEEDBYTES + SD_BOX_SK_BYTES);
        _cleanup_writer_key_ struct sd_writer_key *k = sodium_malloc(sizeof(*k));
        if (!secret || !k)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory");
        int r = key_file_load(path, WRITER_SECRET_PREFIX, AGENT_SECRET_PREFIX, "writer identity", secret,
                              crypto_sign_SEEDBYTES + SD_BOX_SK_BYTES, err);
        if (r < 0)
                return r;
        (void) crypto_sign_seed_keypair(k->pub.sign_pk, k->sign_sk, secret);
        memcpy(k->box_sk, secret + crypto_sign_SEEDBYTES, SD_BOX_SK_BYTES);
        (void) crypto_scalarmult_base(k->pub.box_pk, k->box_sk);
        *out = steal_pointer(&k);
        return 0;
}

/* ---- agent keys ---- */

int sd_agent_key_generate(struct sd_agent_key **out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct sd_agent_key *k = sodium_malloc(sizeof(*k));
        if (!k)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory for a key");
        (void) crypto_box_keypair(k->box_pk, k->box_sk);
        *out = k;
        return 0;
}

void sd_agent_key_free(struct sd_agent_key *k) {
        sodium_free(k);
}

int sd_agent_key_save(const struct sd_agent_key *k, const char *path, bool force, sd_error *err) {
        _cleanup_free_ char *pub_line = NULL;
        if (sd_agent_pub_format(k->box_pk, &pub_line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *comment = NULL;
        if (asprintf(&comment, "secretd agent key; public: %s", pub_line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        return key_file_save(path, comment, AGENT_SECRET_PREFIX, k->box_sk, SD_BOX_SK_BYTES, force, err);
}

int sd_agent_key_load(const char *path, struct sd_agent_key **out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        _cleanup_agent_key_ struct sd_agent_key *k = sodium_malloc(sizeof(*k));
        if (!k)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory");
        int r = key_file_load(path, AGENT_SECRET_PREFIX, WRITER_SECRET_PREFIX, "agent key", k->box_sk,
                              SD_BOX_SK_BYTES, err);
        if (r < 0)
                return r;
        (void) crypto_scalarmult_base(k->box_pk, k->box_sk);
        *out = steal_pointer(&k);
        return 0;
}
