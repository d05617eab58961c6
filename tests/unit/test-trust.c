/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/trust.h"

static char tmpdir[] = "/tmp/secretd-test-trust-XXXXXX";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void) {
        const char *keep = secure_getenv("SECRETD_TEST_KEEP");
        if (!keep || strcmp(keep, "1") != 0)
                (void) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(trust, .init = setup, .fini = teardown);

static char *path_in_tmp(const char *name) {
        char *p;
        cr_assert_geq(asprintf(&p, "%s/%s", tmpdir, name), 0);
        return p;
}

/* A writer identity derived from a counter, so tests can use keys with
 * known properties. */
static struct sd_writer_pub pub_from_seed(uint32_t n) {
        unsigned char seed[32] = { 0 }, sk[64], box_sk[32];
        seed[0] = (unsigned char) n;
        seed[1] = (unsigned char) (n >> 8);
        seed[2] = (unsigned char) (n >> 16);
        seed[3] = (unsigned char) (n >> 24);
        struct sd_writer_pub pub;
        cr_assert_eq(sodium_init() >= 0, true);
        crypto_sign_seed_keypair(pub.sign_pk, sk, seed);
        crypto_box_seed_keypair(pub.box_pk, box_sk, seed);
        return pub;
}

static char *pub_line(const struct sd_writer_pub *pub) {
        char *line = NULL;
        cr_assert_eq(sd_writer_pub_format(pub, &line), 0);
        return line;
}

static void write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

Test(trust, load_file_with_comments_and_blank_lines) {
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2), c = pub_from_seed(3);
        _cleanup_free_ char *la = pub_line(&a), *lb = pub_line(&b);
        _cleanup_free_ char *path = path_in_tmp("trusted");
        char *text;
        cr_assert_geq(asprintf(&text, "# trusted writers\n\n   \n%s alice's laptop\n  # %s old key\n\t%s\tbob\r\n%s\n",
                               la, lb, lb, la), 0);
        write_text(path, text);
        free(text);

        _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_new(&t), 0);
        cr_assert_eq(sd_trust_load_file(t, path, &err), 2, "%s", err.message);
        cr_assert_eq(sd_trust_count(t), 2);
        cr_assert_eq(memcmp(sd_trust_get(t, 0), &a, sizeof(a)), 0);
        cr_assert_eq(memcmp(sd_trust_get(t, 1), &b, sizeof(b)), 0);
        cr_assert_null(sd_trust_get(t, 2));

        struct sd_writer_pub found;
        memset(&found, 0, sizeof(found));
        cr_assert(sd_trust_find(t, b.sign_pk, &found));
        cr_assert_eq(memcmp(&found, &b, sizeof(b)), 0, "find returns the whole identity");
        cr_assert_not(sd_trust_find(t, c.sign_pk, NULL));

        /* Loading again adds nothing new. */
        cr_assert_eq(sd_trust_load_file(t, path, &err), 0);
        cr_assert_eq(sd_trust_count(t), 2);
}

Test(trust, missing_file_is_empty) {
        _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("nope/trusted");
        _cleanup_free_ char *path2 = path_in_tmp("trusted");
        cr_assert_eq(sd_trust_new(&t), 0);
        cr_assert_eq(sd_trust_load_file(t, path, &err), 0, "%s", err.message);
        cr_assert_eq(sd_trust_load_file(t, path2, &err), 0, "%s", err.message);
        cr_assert_eq(sd_trust_count(t), 0);
}

Test(trust, malformed_line_names_path_and_line) {
        struct sd_writer_pub a = pub_from_seed(1);
        _cleanup_free_ char *la = pub_line(&a);
        _cleanup_free_ char *path = path_in_tmp("trusted");
        const char *bad_lines[] = { "sdw1:AAAA", "hello", "sda1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad_lines); i++) {
                char *text;
                cr_assert_geq(asprintf(&text, "# x\n%s\n%s\n", la, bad_lines[i]), 0);
                write_text(path, text);
                free(text);
                _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_trust_new(&t), 0);
                cr_assert_eq(sd_trust_load_file(t, path, &err), -EINVAL, "case %zu", i);
                char where[512];
                snprintf(where, sizeof(where), "%s:3:", path);
                cr_assert(strstr(err.message, where), "case %zu: %s", i, err.message);
        }
}

Test(trust, add_is_idempotent) {
        _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2);
        cr_assert_eq(sd_trust_new(&t), 0);
        cr_assert_eq(sd_trust_add(t, &a), 0);
        cr_assert_eq(sd_trust_add(t, &a), 0);
        cr_assert_eq(sd_trust_add(t, &b), 0);
        cr_assert_eq(sd_trust_count(t), 2);
        cr_assert(sd_trust_find(t, a.sign_pk, NULL));
}

Test(trust, first_word_of_each_comment_is_kept) {
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2), c = pub_from_seed(3);
        _cleanup_free_ char *la = pub_line(&a), *lb = pub_line(&b), *lc = pub_line(&c);
        _cleanup_free_ char *path = path_in_tmp("trusted");
        char *text;
        cr_assert_geq(asprintf(&text, "%s   alice laptop\n%s\tbob\r\n%s\n", la, lb, lc), 0);
        write_text(path, text);
        free(text);
        _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_new(&t), 0);
        cr_assert_eq(sd_trust_load_file(t, path, &err), 3, "%s", err.message);
        cr_assert_str_eq(sd_trust_comment_word(t, 0), "alice");
        cr_assert_str_eq(sd_trust_comment_word(t, 1), "bob");
        cr_assert_str_eq(sd_trust_comment_word(t, 2), "");
        cr_assert_str_eq(sd_trust_comment_word(t, 3), "");
}
