/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "secretd/names.h"
#include "secretd/trust.h"

/* A trust file lists keys by hand; a megabyte is thousands of writers. */
#define TRUST_FILE_MAX ((size_t) 1 << 20)
#define KEY_ID_PREFIX_MIN 8

struct sd_trust {
        struct sd_writer_pub *writers;
        size_t n, cap;
};

int sd_trust_new(struct sd_trust **out) {
        struct sd_trust *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *out = t;
        return 0;
}

void sd_trust_free(struct sd_trust *t) {
        if (!t)
                return;
        free(t->writers);
        free(t);
}

static ssize_t trust_index(const struct sd_trust *t, const unsigned char sign_pk[SD_SIGN_PK_BYTES]) {
        if (!t)
                return -1;
        for (size_t i = 0; i < t->n; i++)
                if (memcmp(t->writers[i].sign_pk, sign_pk, SD_SIGN_PK_BYTES) == 0)
                        return (ssize_t) i;
        return -1;
}

/* 1 if added, 0 if already present. */
static int trust_add_one(struct sd_trust *t, const struct sd_writer_pub *pub) {
        if (trust_index(t, pub->sign_pk) >= 0)
                return 0;
        if (t->n == t->cap) {
                size_t ncap = t->cap ? t->cap * 2 : 8;
                struct sd_writer_pub *bigger = reallocarray(t->writers, ncap, sizeof(*bigger));
                if (!bigger)
                        return -ENOMEM;
                t->writers = bigger;
                t->cap = ncap;
        }
        t->writers[t->n++] = *pub;
        return 1;
}

int sd_trust_add(struct sd_trust *t, const struct sd_writer_pub *pub) {
        int r = trust_add_one(t, pub);
        return r < 0 ? r : 0;
}

bool sd_trust_find(const struct sd_trust *t, const unsigned char sign_pk[SD_SIGN_PK_BYTES],
                   struct sd_writer_pub *pub_out) {
        ssize_t i = trust_index(t, sign_pk);
        if (i < 0)
                return false;
        if (pub_out)
                *pub_out = t->writers[i];
        return true;
}

size_t sd_trust_count(const struct sd_trust *t) {
        return t ? t->n : 0;
}

const struct sd_writer_pub *sd_trust_get(const struct sd_trust *t, size_t i) {
        return t && i < t->n ? &t->writers[i] : NULL;
}

/* ---- trust files ---- */

/* Read path into a malloc()ed NUL-terminated buffer; a missing file (or
 * directory) reads as empty. */
static int trust_file_read(const char *path, char **out, size_t *len_out, sd_error *err) {
        const char *base;
        sd_error open_err = { 0 };
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, &open_err);
        if (dirfd == -ENOENT) {
                *out = NULL;
                *len_out = 0;
                return 0;
        }
        if (dirfd < 0) {
                if (err)
                        *err = open_err;
                return dirfd;
        }
        char *text = NULL;
        size_t len = 0;
        int r = sd_read_file_at(dirfd, base, TRUST_FILE_MAX, &text, &len, err);
        if (r == -ENOENT) {
                sd_error_clear(err);
                *out = NULL;
                *len_out = 0;
                return 0;
        }
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        *out = text;
        *len_out = len;
        return 0;
}

struct trust_line {
        const char *start;   /* the whole line, without its '\n' */
        size_t len;
        bool has_key;
        struct sd_writer_pub pub;
};

/* Split text into lines and parse every key line.  A malformed line is
 * -EINVAL naming path:line.  *lines_out is malloc()ed; pointers refer into
 * text. */
static int trust_lines_parse(const char *path, char *text, size_t len, struct trust_line **lines_out,
                             size_t *n_out, sd_error *err) {
        size_t n = 0, cap = 0;
        _cleanup_free_ struct trust_line *lines = NULL;

        for (size_t pos = 0; pos < len;) {
                size_t end = pos;
                while (end < len && text[end] != '\n')
                        end++;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct trust_line *bigger = reallocarray(lines, ncap, sizeof(*bigger));
                        if (!bigger)
                                return sd_error_set(err, ENOMEM, "%s: out of memory", path);
                        lines = bigger;
                        cap = ncap;
                }
                struct trust_line *l = &lines[n++];
                *l = (struct trust_line) { .start = text + pos, .len = end - pos };

                size_t s = pos;
                while (s < end && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r'))
                        s++;
                if (s < end && text[s] != '#') {
                        if (memchr(text + pos, '\0', end - pos))
                                return sd_error_set(err, EINVAL, "%s:%zu: contains a NUL byte", path, n);
                        /* Parse a NUL-terminated copy of the line: the
                         * parser stops at the first whitespace anyway. */
                        char saved = text[end];
                        text[end] = '\0';
                        sd_error line_err = { 0 };
                        int r = sd_writer_pub_parse(text + s, &l->pub, &line_err);
                        text[end] = saved;
                        if (r < 0)
                                return sd_error_set(err, EINVAL, "%s:%zu: %s", path, n, line_err.message);
                        l->has_key = true;
                }
                pos = end + 1;
        }
        *lines_out = steal_pointer(&lines);
        *n_out = n;
        return 0;
}

int sd_trust_load_file(struct sd_trust *t, const char *path, sd_error *err) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = trust_file_read(path, &text, &len, err);
        if (r < 0)
                return r;
        if (!text)
                return 0;

        _cleanup_free_ struct trust_line *lines = NULL;
        size_t n = 0;
        r = trust_lines_parse(path, text, len, &lines, &n, err);
        if (r < 0)
                return r;

        int added = 0;
        for (size_t i = 0; i < n; i++) {
                if (!lines[i].has_key)
                        continue;
                r = trust_add_one(t, &lines[i].pub);
                if (r < 0)
                        return sd_error_set(err, -r, "%s: out of memory", path);
                added += r;
        }
        return added;
}

/* Growable text buffer for rewriting a trust file. */
struct text_buf {
        char *data;
        size_t len, cap;
};

static void text_buf_done(struct text_buf *b) {
        free(b->data);
}

static int text_buf_append(struct text_buf *b, const char *s, size_t len) {
        if (b->len + len + 1 > b->cap) {
                size_t ncap = b->cap ? b->cap : 256;
                while (ncap < b->len + len + 1)
                        ncap *= 2;
                char *bigger = realloc(b->data, ncap);
                if (!bigger)
                        return -ENOMEM;
                b->data = bigger;
                b->cap = ncap;
        }
        memcpy(b->data + b->len, s, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

static int trust_file_publish(const char *path, const struct text_buf *b, sd_error *err) {
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, true, 0700, &base, err);
        if (dirfd < 0)
                return dirfd;
        int r = sd_write_file_at(dirfd, base, b->data ? b->data : "", b->len, 0600, SD_WRITE_REPLACE, err);
        if (r < 0)
                return sd_error_prefix(err, r, "%s", path);
        return 0;
}

int sd_trust_file_add(const char *path, const struct sd_writer_pub *pub, const char *comment, sd_error *err) {
        if (comment)
                for (const char *c = comment; *c; c++)
                        if ((unsigned char) *c < 0x20 && *c != '\t')
                                return sd_error_set(err, EINVAL,
                                                    "%s: the comment must be one line of printable text", path);

        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = trust_file_read(path, &text, &len, err);
        if (r < 0)
                return r;

        _cleanup_free_ struct trust_line *lines = NULL;
        size_t n = 0;
        if (text) {
                r = trust_lines_parse(path, text, len, &lines, &n, err);
                if (r < 0)
                        return r;
        }
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(pub->sign_pk, id);
        for (size_t i = 0; i < n; i++)
                if (lines[i].has_key && memcmp(lines[i].pub.sign_pk, pub->sign_pk, SD_SIGN_PK_BYTES) == 0)
                        return sd_error_set(err, EEXIST, "%s:%zu: writer %s is already trusted", path, i + 1, id);

        _cleanup_free_ char *pub_line = NULL;
        if (sd_writer_pub_format(pub, &pub_line) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");

        __attribute__((cleanup(text_buf_done))) struct text_buf out = { 0 };
        r = text_buf_append(&out, text ? text : "", len);
        if (r >= 0 && len > 0 && text[len - 1] != '\n')
                r = text_buf_append(&out, "\n", 1);
        if (r >= 0)
                r = text_buf_append(&out, pub_line, strlen(pub_line));
        if (r >= 0 && comment && *comment) {
                r = text_buf_append(&out, " ", 1);
                if (r >= 0)
                        r = text_buf_append(&out, comment, strlen(comment));
        }
        if (r >= 0)
                r = text_buf_append(&out, "\n", 1);
        if (r < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        return trust_file_publish(path, &out, err);
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int sd_trust_file_remove(const char *path, const char *which, sd_error *err) {
        char shown[64];
        if (!which || !*which)
                return sd_error_set(err, EINVAL, "%s: no writer given to remove", path);
        sd_escape_for_message(which, strlen(which), shown, sizeof(shown));

        /* Either a whole public identity or (a prefix of) its key id. */
        struct sd_writer_pub wanted;
        bool by_pub = strncmp(which, "sdw1:", 5) == 0;
        char prefix[SD_KEY_ID_CHARS + 1] = "";
        if (by_pub) {
                int r = sd_writer_pub_parse(which, &wanted, err);
                if (r < 0)
                        return r;
        } else {
                size_t wlen = strlen(which);
                if (wlen > SD_KEY_ID_CHARS)
                        return sd_error_set(err, EINVAL,
                                            "'%s' is neither a writer public key (sdw1:...) nor a key id of %d hex characters",
                                            shown, SD_KEY_ID_CHARS);
                for (size_t i = 0; i < wlen; i++) {
                        if (!is_hex(which[i]))
                                return sd_error_set(err, EINVAL,
                                                    "'%s' is neither a writer public key (sdw1:...) nor a key id in hex",
                                                    shown);
                        char c = which[i];
                        prefix[i] = (c >= 'A' && c <= 'F') ? (char) (c - 'A' + 'a') : c;
                }
                prefix[wlen] = '\0';
                if (wlen < KEY_ID_PREFIX_MIN)
                        return sd_error_set(err, EINVAL,
                                            "key id prefix '%s' is too short; give at least %d hex characters",
                                            shown, KEY_ID_PREFIX_MIN);
        }

        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = trust_file_read(path, &text, &len, err);
        if (r < 0)
                return r;
        if (!text)
                return sd_error_set(err, ENOENT, "%s: no trusted writer matches '%s' (the file does not exist)",
                                    path, shown);

        _cleanup_free_ struct trust_line *lines = NULL;
        size_t n = 0;
        r = trust_lines_parse(path, text, len, &lines, &n, err);
        if (r < 0)
                return r;

        /* Find the one writer meant; the same key listed twice is one
         * writer, two different keys under one prefix is ambiguous. */
        const struct sd_writer_pub *match = NULL;
        for (size_t i = 0; i < n; i++) {
                if (!lines[i].has_key)
                        continue;
                bool hit;
                if (by_pub)
                        hit = memcmp(lines[i].pub.sign_pk, wanted.sign_pk, SD_SIGN_PK_BYTES) == 0;
                else {
                        char id[SD_KEY_ID_CHARS + 1];
                        sd_key_id(lines[i].pub.sign_pk, id);
                        hit = strncmp(id, prefix, strlen(prefix)) == 0;
                }
                if (!hit)
                        continue;
                if (match && memcmp(match->sign_pk, lines[i].pub.sign_pk, SD_SIGN_PK_BYTES) != 0) {
                        char a[SD_KEY_ID_CHARS + 1], b[SD_KEY_ID_CHARS + 1];
                        sd_key_id(match->sign_pk, a);
                        sd_key_id(lines[i].pub.sign_pk, b);
                        return sd_error_set(err, EINVAL, "%s: key id prefix '%s' is ambiguous: it matches %s and %s",
                                            path, shown, a, b);
                }
                match = &lines[i].pub;
        }
        if (!match)
                return sd_error_set(err, ENOENT, "%s: no trusted writer matches '%s'", path, shown);

        __attribute__((cleanup(text_buf_done))) struct text_buf out = { 0 };
        for (size_t i = 0; i < n; i++) {
                if (lines[i].has_key && memcmp(lines[i].pub.sign_pk, match->sign_pk, SD_SIGN_PK_BYTES) == 0)
                        continue;
                r = text_buf_append(&out, lines[i].start, lines[i].len);
                if (r >= 0)
                        r = text_buf_append(&out, "\n", 1);
                if (r < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        return trust_file_publish(path, &out, err);
}
