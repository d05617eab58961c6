/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "secretd/names.h"
#include "secretd/trust.h"

/* A trust file lists keys by hand; a megabyte is thousands of writers. */
#define TRUST_FILE_MAX ((size_t) 1 << 20)

struct trusted_writer {
        struct sd_writer_pub pub;
        char word[64];   /* first word of the comment */
};

struct sd_trust {
        struct trusted_writer *writers;
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
                if (memcmp(t->writers[i].pub.sign_pk, sign_pk, SD_SIGN_PK_BYTES) == 0)
                        return (ssize_t) i;
        return -1;
}

/* 1 if added, 0 if already present. */
static int trust_add_one(struct sd_trust *t, const struct sd_writer_pub *pub, const char *word, size_t word_len) {
        if (trust_index(t, pub->sign_pk) >= 0)
                return 0;
        if (t->n == t->cap) {
                size_t ncap = t->cap ? t->cap * 2 : 8;
                struct trusted_writer *bigger = reallocarray(t->writers, ncap, sizeof(*bigger));
                if (!bigger)
                        return -ENOMEM;
                t->writers = bigger;
                t->cap = ncap;
        }
        struct trusted_writer *w = &t->writers[t->n++];
        *w = (struct trusted_writer) { .pub = *pub };
        if (word_len >= sizeof(w->word))
                word_len = 0;
        memcpy(w->word, word, word_len);
        w->word[word_len] = '\0';
        return 1;
}

int sd_trust_add(struct sd_trust *t, const struct sd_writer_pub *pub) {
        int r = trust_add_one(t, pub, "", 0);
        return r < 0 ? r : 0;
}

bool sd_trust_find(const struct sd_trust *t, const unsigned char sign_pk[SD_SIGN_PK_BYTES],
                   struct sd_writer_pub *pub_out) {
        ssize_t i = trust_index(t, sign_pk);
        if (i < 0)
                return false;
        if (pub_out)
                *pub_out = t->writers[i].pub;
        return true;
}

size_t sd_trust_count(const struct sd_trust *t) {
        return t ? t->n : 0;
}

const struct sd_writer_pub *sd_trust_get(const struct sd_trust *t, size_t i) {
        return t && i < t->n ? &t->writers[i].pub : NULL;
}

const char *sd_trust_comment_word(const struct sd_trust *t, size_t i) {
        return t && i < t->n ? t->writers[i].word : "";
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
        bool has_key;
        struct sd_writer_pub pub;
        const char *word;    /* first word of the comment */
        size_t word_len;
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
                *l = (struct trust_line) { 0 };

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
                        size_t w = s;
                        while (w < end && !isspace((unsigned char) text[w]))
                                w++;
                        while (w < end && isspace((unsigned char) text[w]))
                                w++;
                        l->word = text + w;
                        while (w < end && !isspace((unsigned char) text[w]))
                                w++;
                        l->word_len = (size_t) (text + w - l->word);
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
                r = trust_add_one(t, &lines[i].pub, lines[i].word, lines[i].word_len);
                if (r < 0)
                        return sd_error_set(err, -r, "%s: out of memory", path);
                added += r;
        }
        return added;
}
