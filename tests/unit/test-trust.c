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

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s", path);
        char *buf = calloc(1, 65536);
        size_t n = fread(buf, 1, 65535, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static size_t trusted_count_in(const char *path) {
        _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_new(&t), 0);
        int r = sd_trust_load_file(t, path, &err);
        cr_assert_geq(r, 0, "%s", err.message);
        return sd_trust_count(t);
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

Test(trust, file_add_creates_private_file_and_refuses_duplicates) {
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2);
        _cleanup_free_ char *path = path_in_tmp("cfg/secretctl/trusted");
        sd_error err = { 0 };

        cr_assert_eq(sd_trust_file_add(path, &a, "alice", &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);
        cr_assert_eq(sd_trust_file_add(path, &b, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(trusted_count_in(path), 2);

        _cleanup_free_ char *text = read_text(path);
        _cleanup_free_ char *la = pub_line(&a);
        char expect[256];
        snprintf(expect, sizeof(expect), "%s alice\n", la);
        cr_assert(strstr(text, expect), "comment kept on the key's line: %s", text);

        cr_assert_eq(sd_trust_file_add(path, &a, "again", &err), -EEXIST);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(a.sign_pk, id);
        cr_assert(strstr(err.message, id) && strstr(err.message, path), "%s", err.message);
        cr_assert_eq(trusted_count_in(path), 2);

        cr_assert_eq(sd_trust_file_add(path, &b, "two\nlines", &err), -EINVAL);
}

Test(trust, file_add_keeps_existing_text) {
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2);
        _cleanup_free_ char *la = pub_line(&a);
        _cleanup_free_ char *path = path_in_tmp("trusted");
        char *text;
        cr_assert_geq(asprintf(&text, "# header\n%s alice", la), 0);  /* no final newline */
        write_text(path, text);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_file_add(path, &b, "bob", &err), 0, "%s", err.message);
        _cleanup_free_ char *after = read_text(path);
        cr_assert_eq(strncmp(after, text, strlen(text)), 0, "old text kept: %s", after);
        cr_assert_eq(after[strlen(text)], '\n');
        cr_assert_eq(trusted_count_in(path), 2);
        free(text);
}

struct removal {
        const char *how;
        char which[128];
};

Test(trust, file_remove_by_pub_id_and_prefix) {
        struct sd_writer_pub a = pub_from_seed(1), b = pub_from_seed(2);
        _cleanup_free_ char *la = pub_line(&a), *lb = pub_line(&b);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(a.sign_pk, id);

        struct removal ways[4] = { { .how = "public identity" }, { .how = "key id" }, { .how = "8-char prefix" },
                                   { .how = "upper-case prefix" } };
        snprintf(ways[0].which, sizeof(ways[0].which), "%s", la);
        snprintf(ways[1].which, sizeof(ways[1].which), "%s", id);
        snprintf(ways[2].which, sizeof(ways[2].which), "%.8s", id);
        snprintf(ways[3].which, sizeof(ways[3].which), "%.10s", id);
        for (char *c = ways[3].which; *c; c++)
                if (*c >= 'a' && *c <= 'f')
                        *c = (char) (*c - 'a' + 'A');

        _cleanup_free_ char *path = path_in_tmp("trusted");
        for (size_t i = 0; i < SD_ARRAY_SIZE(ways); i++) {
                char *text;
                cr_assert_geq(asprintf(&text, "# keep me\n%s alice\n%s bob\n# and me\n", la, lb), 0);
                write_text(path, text);
                free(text);

                sd_error err = { 0 };
                cr_assert_eq(sd_trust_file_remove(path, ways[i].which, &err), 0, "%s: %s", ways[i].how, err.message);
                _cleanup_(sd_trust_freep) struct sd_trust *t = NULL;
                cr_assert_eq(sd_trust_new(&t), 0);
                cr_assert_eq(sd_trust_load_file(t, path, &err), 1, "%s", ways[i].how);
                cr_assert_not(sd_trust_find(t, a.sign_pk, NULL), "%s: still trusted", ways[i].how);
                cr_assert(sd_trust_find(t, b.sign_pk, NULL), "%s: removed the wrong one", ways[i].how);

                _cleanup_free_ char *after = read_text(path);
                char expect[256];
                snprintf(expect, sizeof(expect), "# keep me\n%s bob\n# and me\n", lb);
                cr_assert_str_eq(after, expect, "%s: other lines kept verbatim", ways[i].how);
                struct stat st;
                cr_assert_eq(stat(path, &st), 0);
                cr_assert_eq(st.st_mode & 07777, 0600);
        }
}

Test(trust, file_remove_refuses_ambiguous_absent_and_short) {
        /* Seeds found by search: their key ids share the first 8 hex
         * characters (eb5e8cc4) and differ after. */
        struct sd_writer_pub x = pub_from_seed(52994), y = pub_from_seed(98890), z = pub_from_seed(3);
        char idx[SD_KEY_ID_CHARS + 1], idy[SD_KEY_ID_CHARS + 1];
        sd_key_id(x.sign_pk, idx);
        sd_key_id(y.sign_pk, idy);
        cr_assert_eq(strncmp(idx, idy, 8), 0, "%s %s", idx, idy);
        cr_assert_str_neq(idx, idy);

        _cleanup_free_ char *lx = pub_line(&x), *ly = pub_line(&y), *lz = pub_line(&z);
        _cleanup_free_ char *path = path_in_tmp("trusted");
        char *text;
        cr_assert_geq(asprintf(&text, "%s\n%s\n", lx, ly), 0);
        write_text(path, text);

        sd_error err = { 0 };
        char prefix[9];
        snprintf(prefix, sizeof(prefix), "%.8s", idx);
        cr_assert_eq(sd_trust_file_remove(path, prefix, &err), -EINVAL);
        cr_assert(strstr(err.message, "ambiguous") && strstr(err.message, idx) && strstr(err.message, idy),
                  "%s", err.message);

        char id_absent[SD_KEY_ID_CHARS + 1];
        sd_key_id(z.sign_pk, id_absent);
        const char *absent[] = { id_absent, lz };
        for (size_t i = 0; i < SD_ARRAY_SIZE(absent); i++) {
                cr_assert_eq(sd_trust_file_remove(path, absent[i], &err), -ENOENT, "case %zu", i);
                cr_assert(strstr(err.message, path), "%s", err.message);
        }

        char short_prefix[8];
        snprintf(short_prefix, sizeof(short_prefix), "%.7s", idx);
        const char *invalid[] = { short_prefix, "", "xyz12345", "0123456789abcdef0", "sdw1:AAAA" };
        for (size_t i = 0; i < SD_ARRAY_SIZE(invalid); i++)
                cr_assert_eq(sd_trust_file_remove(path, invalid[i], &err), -EINVAL, "case %zu", i);

        _cleanup_free_ char *after = read_text(path);
        cr_assert_str_eq(after, text, "nothing changed by refused removals");
        free(text);

        /* One more character disambiguates. */
        cr_assert_eq(sd_trust_file_remove(path, idy, &err), 0, "%s", err.message);
        cr_assert_eq(trusted_count_in(path), 1);

        _cleanup_free_ char *missing = path_in_tmp("missing");
        cr_assert_eq(sd_trust_file_remove(missing, idx, &err), -ENOENT);
}
