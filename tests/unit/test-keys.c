/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/keys.h"

static char tmpdir[] = "/tmp/secretd-test-keys-XXXXXX";

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

TestSuite(keys, .init = setup, .fini = teardown);

static char *path_in_tmp(const char *name) {
        char *p;
        cr_assert_geq(asprintf(&p, "%s/%s", tmpdir, name), 0);
        return p;
}

static void write_text(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        cr_assert_eq(fchmod(fd, mode), 0);
        close(fd);
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        cr_assert_not_null(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

Test(keys, writer_generate_save_load_round_trip) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL;
        _cleanup_writer_key_ struct sd_writer_key *loaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("sub/dir/writer.key");

        cr_assert_eq(sd_writer_key_generate(&k, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_save(k, path, false, &err), 0, "%s", err.message);

        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600, "key file mode is %04o", st.st_mode & 07777);
        _cleanup_free_ char *dir = path_in_tmp("sub/dir");
        cr_assert_eq(stat(dir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700, "created parent mode is %04o", st.st_mode & 07777);
        cr_assert_eq(count_entries(dir), 1, "no staging file left behind");

        cr_assert_eq(sd_writer_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&loaded->pub, &k->pub, sizeof(k->pub)), 0);
        cr_assert_eq(memcmp(loaded->sign_sk, k->sign_sk, SD_SIGN_SK_BYTES), 0);
        cr_assert_eq(memcmp(loaded->box_sk, k->box_sk, SD_BOX_SK_BYTES), 0);

        /* The loaded key really signs for the public half. */
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, (const unsigned char *) "m", 1, loaded->sign_sk);
        cr_assert_eq(crypto_sign_verify_detached(sig, (const unsigned char *) "m", 1, k->pub.sign_pk), 0);
}

Test(keys, writer_save_refuses_overwrite_without_force) {
        _cleanup_writer_key_ struct sd_writer_key *a = NULL, *b = NULL, *loaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("writer.key");
        cr_assert_eq(sd_writer_key_generate(&a, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&b, &err), 0);
        cr_assert_eq(sd_writer_key_save(a, path, false, &err), 0, "%s", err.message);

        cr_assert_eq(sd_writer_key_save(b, path, false, &err), -EEXIST);
        cr_assert(strstr(err.message, "--force"), "message: %s", err.message);
        cr_assert(strstr(err.message, path), "message names the path: %s", err.message);
        cr_assert_eq(sd_writer_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&loaded->pub, &a->pub, sizeof(a->pub)), 0, "the old key is still there");
        sd_writer_key_free(loaded);
        loaded = NULL;

        cr_assert_eq(sd_writer_key_save(b, path, true, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&loaded->pub, &b->pub, sizeof(b->pub)), 0, "force replaced the key");
        cr_assert_eq(count_entries(tmpdir), 1, "no staging file left behind");
}

Test(keys, load_refuses_group_or_world_readable_file) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL, *loaded = NULL;
        _cleanup_agent_key_ struct sd_agent_key *ak = NULL, *aloaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("writer.key");
        _cleanup_free_ char *apath = path_in_tmp("agent.key");
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        cr_assert_eq(sd_writer_key_save(k, path, false, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_generate(&ak, &err), 0);
        cr_assert_eq(sd_agent_key_save(ak, apath, false, &err), 0, "%s", err.message);

        const mode_t modes[] = { 0644, 0640, 0604, 0660 };
        for (size_t i = 0; i < SD_ARRAY_SIZE(modes); i++) {
                char mode_text[8];
                snprintf(mode_text, sizeof(mode_text), "%04o", (unsigned) modes[i]);

                cr_assert_eq(chmod(path, modes[i]), 0);
                sd_error_clear(&err);
                cr_assert_eq(sd_writer_key_load(path, &loaded, &err), -EPERM, "mode %s accepted", mode_text);
                cr_assert_null(loaded, "output untouched on failure");
                cr_assert(strstr(err.message, path) && strstr(err.message, mode_text), "message: %s", err.message);

                cr_assert_eq(chmod(apath, modes[i]), 0);
                sd_error_clear(&err);
                cr_assert_eq(sd_agent_key_load(apath, &aloaded, &err), -EPERM, "mode %s accepted", mode_text);
                cr_assert(strstr(err.message, apath) && strstr(err.message, mode_text), "message: %s", err.message);
        }
        cr_assert_eq(chmod(path, 0400), 0);
        cr_assert_eq(sd_writer_key_load(path, &loaded, &err), 0, "0400 is private: %s", err.message);
}

Test(keys, load_refuses_missing_and_garbage_files) {
        _cleanup_writer_key_ struct sd_writer_key *loaded = NULL;
        _cleanup_agent_key_ struct sd_agent_key *ak = NULL, *aloaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *missing = path_in_tmp("nope.key");
        cr_assert_eq(sd_writer_key_load(missing, &loaded, &err), -ENOENT);
        cr_assert(strstr(err.message, missing), "%s", err.message);

        _cleanup_free_ char *path = path_in_tmp("bad.key");
        const char *bad[] = {
                "",
                "# only a comment\n",
                "hello\n",
                "sdw1-secret:\n",
                "sdw1-secret:AAAA\n",
                "sdw1-secret:!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                "sdw1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad); i++) {
                (void) unlink(path);
                write_text(path, bad[i], 0600);
                sd_error_clear(&err);
                cr_assert_eq(sd_writer_key_load(path, &loaded, &err), -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(err.message, path), "case %zu: %s", i, err.message);
        }

        /* An agent key is not a writer identity and the other way round. */
        _cleanup_free_ char *apath = path_in_tmp("agent.key");
        cr_assert_eq(sd_agent_key_generate(&ak, &err), 0);
        cr_assert_eq(sd_agent_key_save(ak, apath, false, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_load(apath, &loaded, &err), -EINVAL);
        cr_assert(strstr(err.message, "writer identity"), "%s", err.message);

        _cleanup_writer_key_ struct sd_writer_key *wk = NULL;
        _cleanup_free_ char *wpath = path_in_tmp("writer.key");
        cr_assert_eq(sd_writer_key_generate(&wk, &err), 0);
        cr_assert_eq(sd_writer_key_save(wk, wpath, false, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_load(wpath, &aloaded, &err), -EINVAL);
        cr_assert(strstr(err.message, "agent key"), "%s", err.message);
}

Test(keys, load_refuses_symlink) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL, *loaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("writer.key");
        _cleanup_free_ char *link = path_in_tmp("link.key");
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        cr_assert_eq(sd_writer_key_save(k, path, false, &err), 0, "%s", err.message);
        cr_assert_eq(symlink(path, link), 0);
        cr_assert_eq(sd_writer_key_load(link, &loaded, &err), -ELOOP);
}

Test(keys, agent_generate_save_load_round_trip) {
        _cleanup_agent_key_ struct sd_agent_key *k = NULL, *loaded = NULL, *other = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("agent.key");
        cr_assert_eq(sd_agent_key_generate(&k, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_save(k, path, false, &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);
        cr_assert_eq(sd_agent_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(loaded->box_pk, k->box_pk, SD_BOX_PK_BYTES), 0);
        cr_assert_eq(memcmp(loaded->box_sk, k->box_sk, SD_BOX_SK_BYTES), 0);

        cr_assert_eq(sd_agent_key_generate(&other, &err), 0);
        cr_assert_eq(sd_agent_key_save(other, path, false, &err), -EEXIST);
        cr_assert(strstr(err.message, "--force"), "%s", err.message);
        cr_assert_eq(sd_agent_key_save(other, path, true, &err), 0, "%s", err.message);
        sd_agent_key_free(loaded);
        loaded = NULL;
        cr_assert_eq(sd_agent_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(loaded->box_pk, other->box_pk, SD_BOX_PK_BYTES), 0);
}

Test(keys, key_file_keeps_comments_and_tolerates_whitespace) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL, *loaded = NULL;
        sd_error err = { 0 };
        _cleanup_free_ char *path = path_in_tmp("writer.key");
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        cr_assert_eq(sd_writer_key_save(k, path, false, &err), 0);
        _cleanup_free_ char *pub = NULL;
        cr_assert_eq(sd_writer_pub_format(&k->pub, &pub), 0);

        /* The saved file tells a human which public key it belongs to. */
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f);
        char text[1024] = "";
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        cr_assert(strstr(text, pub), "file: %s", text);

        /* Re-write it by hand with extra comments and CRLF. */
        char *line = strstr(text, "sdw1-secret:");
        cr_assert_not_null(line);
        char *nl = strchr(line, '\n');
        *nl = '\0';
        char *edited;
        cr_assert_geq(asprintf(&edited, "# mine\n\n  # laptop\n%s\r\n\n# end\n", line), 0);
        (void) unlink(path);
        write_text(path, edited, 0600);
        free(edited);
        cr_assert_eq(sd_writer_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&loaded->pub, &k->pub, sizeof(k->pub)), 0);
}

Test(keys, writer_pub_format_parse_round_trip) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        _cleanup_free_ char *line = NULL;
        cr_assert_eq(sd_writer_pub_format(&k->pub, &line), 0);
        cr_assert_eq(strncmp(line, "sdw1:", 5), 0, "%s", line);
        cr_assert_eq(strlen(line), 5 + 86, "%s", line);
        for (const char *c = line + 5; *c; c++)
                cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c),
                          "base64url only: %s", line);

        /* The encoding is exactly base64url(sign_pk || box_pk). */
        unsigned char both[64];
        memcpy(both, k->pub.sign_pk, 32);
        memcpy(both + 32, k->pub.box_pk, 32);
        char expect[100];
        sodium_bin2base64(expect, sizeof(expect), both, 64, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        cr_assert_str_eq(line + 5, expect);

        const struct {
                const char *before, *after;
        } decorations[] = { { "", "" }, { "  ", "" }, { "", " laptop of alice" }, { "\t", "\n" }, { "", "\n# next" } };
        for (size_t i = 0; i < SD_ARRAY_SIZE(decorations); i++) {
                char text[256];
                snprintf(text, sizeof(text), "%s%s%s", decorations[i].before, line, decorations[i].after);
                struct sd_writer_pub pub;
                memset(&pub, 0, sizeof(pub));
                cr_assert_eq(sd_writer_pub_parse(text, &pub, &err), 0, "case %zu: %s", i, err.message);
                cr_assert_eq(memcmp(&pub, &k->pub, sizeof(pub)), 0, "case %zu", i);
        }
}

Test(keys, writer_pub_parse_rejects_garbage) {
        _cleanup_writer_key_ struct sd_writer_key *k = NULL;
        _cleanup_agent_key_ struct sd_agent_key *ak = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&ak, &err), 0);
        _cleanup_free_ char *good = NULL, *agent = NULL;
        cr_assert_eq(sd_writer_pub_format(&k->pub, &good), 0);
        cr_assert_eq(sd_agent_pub_format(ak->box_pk, &agent), 0);

        char truncated[128], extended[128], padded[128], bad_char[128], glued[128], secretline[128];
        snprintf(truncated, sizeof(truncated), "%.*s", (int) strlen(good) - 1, good);
        snprintf(extended, sizeof(extended), "%sA", good);
        snprintf(padded, sizeof(padded), "%s==", good);
        snprintf(bad_char, sizeof(bad_char), "%s", good);
        bad_char[10] = '+';
        snprintf(glued, sizeof(glued), "%s#comment", good);
        snprintf(secretline, sizeof(secretline), "sdw1-secret:%s", good + 5);

        /* An all-zero signing key is a low-order point: never from keygen. */
        char zero[128] = "sdw1:";
        unsigned char zeros[64] = { 0 };
        sodium_bin2base64(zero + 5, sizeof(zero) - 5, zeros, 64, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

        const char *bad[] = { "", "   ", "sdw1:", "sdw1", "SDW1:abc", "hello world", truncated, extended,
                              padded, bad_char, glued, agent, secretline, zero };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad); i++) {
                struct sd_writer_pub pub;
                memset(&pub, 0, sizeof(pub));
                sd_error_clear(&err);
                cr_assert_eq(sd_writer_pub_parse(bad[i], &pub, &err), -EINVAL, "case %zu accepted: %s", i, bad[i]);
                cr_assert_neq(err.message[0], '\0', "case %zu has a message", i);
                cr_assert_null(strstr(err.message, good + 5), "case %zu: input is not echoed: %s", i, err.message);
        }
        struct sd_writer_pub unused;
        sd_error_clear(&err);
        (void) sd_writer_pub_parse(agent, &unused, &err);
        cr_assert(strstr(err.message, "agent"), "an agent key is named as such: %s", err.message);
        sd_error_clear(&err);
        (void) sd_writer_pub_parse(secretline, &unused, &err);
        cr_assert(strstr(err.message, "private key"), "%s", err.message);
}

Test(keys, agent_pub_format_parse_round_trip_and_garbage) {
        _cleanup_agent_key_ struct sd_agent_key *ak = NULL;
        _cleanup_writer_key_ struct sd_writer_key *k = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_agent_key_generate(&ak, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&k, &err), 0);
        _cleanup_free_ char *line = NULL, *writer = NULL;
        cr_assert_eq(sd_agent_pub_format(ak->box_pk, &line), 0);
        cr_assert_eq(sd_writer_pub_format(&k->pub, &writer), 0);
        cr_assert_eq(strncmp(line, "sda1:", 5), 0);
        cr_assert_eq(strlen(line), 5 + 43);

        unsigned char pk[32] = { 0 };
        char text[128];
        snprintf(text, sizeof(text), " %s host1\n", line);
        cr_assert_eq(sd_agent_pub_parse(text, pk, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(pk, ak->box_pk, 32), 0);

        const char *bad[] = { "", "sda1:", "sda1:AAAA", writer, "x" };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad); i++) {
                unsigned char out[32] = { 0 };
                cr_assert_eq(sd_agent_pub_parse(bad[i], out, &err), -EINVAL, "case %zu accepted", i);
                cr_assert(sodium_is_zero(out, 32), "case %zu: output untouched", i);
        }
}

static bool is_lower_hex(const char *s) {
        for (; *s; s++)
                if (!strchr("0123456789abcdef", *s))
                        return false;
        return true;
}

Test(keys, key_id_is_stable_16_hex_of_blake2b) {
        _cleanup_writer_key_ struct sd_writer_key *a = NULL, *b = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&a, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&b, &err), 0);

        char id1[SD_KEY_ID_CHARS + 1], id2[SD_KEY_ID_CHARS + 1], idb[SD_KEY_ID_CHARS + 1];
        memset(id1, 'x', sizeof(id1));
        sd_key_id(a->pub.sign_pk, id1);
        sd_key_id(a->pub.sign_pk, id2);
        sd_key_id(b->pub.sign_pk, idb);
        cr_assert_eq(strlen(id1), 16);
        cr_assert(is_lower_hex(id1), "%s", id1);
        cr_assert_str_eq(id1, id2);
        cr_assert_str_neq(id1, idb);

        /* The definition: first 8 bytes of BLAKE2b-256 of the key. */
        unsigned char hash[32];
        crypto_generichash(hash, 32, a->pub.sign_pk, 32, NULL, 0);
        char expect[17];
        sodium_bin2hex(expect, sizeof(expect), hash, 8);
        cr_assert_str_eq(id1, expect);

        /* A fixed vector (Python: blake2b(bytes(32), digest_size=32)), so a
         * change of hash, digest size or truncation is noticed. */
        unsigned char zero[32] = { 0 };
        char zid[SD_KEY_ID_CHARS + 1];
        sd_key_id(zero, zid);
        cr_assert_str_eq(zid, "89eb0d6a8a691dae");
}
