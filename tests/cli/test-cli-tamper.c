/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An attacker who can write the store: every change is caught at `get`,
 * and damage to one entry does not hide the others. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static void put_text(const char *name, const char *value) {
        _cleanup_result_ struct cli_result r = { 0 };
        CLI_IN(&r, value, strlen(value), "put", name);
        CLI_ASSERT_STATUS(&r, 0);
}

TestSuite(tamper, .init = clitest_setup_with_realm, .fini = clitest_teardown);

static char *envelope_path(const char *name, uint64_t version) {
        char *path = clitest_find_envelope(name, version);
        cr_assert_not_null(path, "no envelope for %s version %llu under %s", name,
                           (unsigned long long) version, cli.store_dir);
        return path;
}

/* Flip one character of the base64 ciphertext in place, keeping it valid
 * base64, so only the cryptography can notice. */
Test(tamper, flipped_ciphertext_byte_fails_verification) {
        put_text("victim", "the real value");
        char *path = envelope_path("victim", 1), *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(path, &data, &len), 0);
        json_t *j = json_loadb(data, len, 0, NULL);
        const char *ct = json_string_value(json_object_get(j, "ciphertext"));
        cr_assert_not_null(ct, "no ciphertext field in %s", path);
        char *at = memmem(data, len, ct, strlen(ct));
        cr_assert_not_null(at);
        at[4] = at[4] == 'A' ? 'B' : 'A';
        json_decref(j);
        cr_assert_eq(clitest_write_file(path, data, len), 0);

        _cleanup_result_ struct cli_result get = { 0 }, hist = { 0 }, ls = { 0 };
        CLI(&get, "get", "victim");
        CLI_ASSERT_STATUS(&get, 5);
        cr_assert_eq(get.out_len, 0, "printed something: %s", get.out);
        cr_assert(strstr(get.err, "'victim'"), "names the secret: %s", get.err);
        cr_assert(strstr(get.err, "signature"), "names the cause: %s", get.err);

        CLI(&hist, "history", "victim");
        CLI_ASSERT_STATUS(&hist, 5);
        cr_assert(strstr(hist.out, "error: "), "%s", hist.out);
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 5);
        cr_assert(strstr(ls.err, "'victim'"), "%s", ls.err);
        free(path);
        free(data);
}

Test(tamper, renamed_envelope_fails_verification) {
        put_text("victim", "the real value");
        put_text("other", "other value");
        char *path = envelope_path("victim", 1), *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(path, &data, &len), 0);
        json_t *j = json_loadb(data, len, 0, NULL);
        cr_assert_not_null(j);
        /* Claim to be "other" while sitting in victim's place. */
        cr_assert_eq(json_object_set_new(j, "name", json_string("other")), 0);
        char *text = json_dumps(j, JSON_COMPACT);
        cr_assert_eq(clitest_write_file(path, text, strlen(text)), 0);
        free(text);
        json_decref(j);

        _cleanup_result_ struct cli_result get = { 0 }, ok = { 0 };
        CLI(&get, "get", "victim");
        CLI_ASSERT_STATUS(&get, 5);
        cr_assert_eq(get.out_len, 0);
        cr_assert(strstr(get.err, "'victim'"), "names the secret: %s", get.err);
        cr_assert(strstr(get.err, "signature"), "names the cause: %s", get.err);
        CLI(&ok, "get", "other");
        CLI_ASSERT_STATUS(&ok, 0);
        cr_assert_str_eq(ok.out, "other value");
        free(path);
        free(data);
}

/* A swap: other's genuine, correctly signed envelope put in victim's place. */
Test(tamper, swapped_envelope_fails_name_binding) {
        put_text("victim", "the real value");
        put_text("other", "other value");
        char *victim = envelope_path("victim", 1), *other = envelope_path("other", 1), *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(other, &data, &len), 0);
        cr_assert_eq(clitest_write_file(victim, data, len), 0);

        _cleanup_result_ struct cli_result get = { 0 };
        CLI(&get, "get", "victim");
        CLI_ASSERT_STATUS(&get, 5);
        cr_assert_eq(get.out_len, 0, "printed the other secret's value");
        cr_assert(strstr(get.err, "'victim'") && strstr(get.err, "'other'"),
                  "names both the slot and what the envelope is for: %s", get.err);
        free(victim);
        free(other);
        free(data);
}

/* A replay: version 1's genuine, correctly signed envelope copied in as
 * version 3.  Only the name/version binding can tell. */
Test(tamper, old_version_replayed_as_new_fails_version_binding) {
        put_text("rolled", "version one");
        put_text("rolled", "version two");
        char *v1 = envelope_path("rolled", 1), *v2 = envelope_path("rolled", 2);
        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(v1, &data, &len), 0);
        /* The file store names versions <dir>/<20-digit version>.env next to
         * each other (docs/store.md); derive version 3's path from 2's. */
        char *dir = strdup(v2);
        char v3[4096];
        (void) snprintf(v3, sizeof(v3), "%s/%020d.env", dirname(dir), 3);
        free(dir);
        cr_assert_eq(clitest_write_file(v3, data, len), 0);

        _cleanup_result_ struct cli_result hist = { 0 }, get = { 0 }, get2 = { 0 };
        CLI(&hist, "history", "rolled", "--json");
        CLI_ASSERT_STATUS(&hist, 5);
        json_t *h = json_loads(hist.out, 0, NULL);
        cr_assert_eq(json_array_size(h), 3, "the copy is not seen as version 3 (%s): %s", v3, hist.out);
        json_t *third = json_array_get(h, 2);
        cr_assert_str_eq(json_string_value(json_object_get(third, "status")), "error", "%s", hist.out);
        cr_assert(strstr(json_string_value(json_object_get(third, "error")), "version 1"),
                  "the cause names the version it really is: %s", hist.out);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "status")), "ok");
        json_decref(h);

        CLI(&get, "get", "rolled");
        CLI_ASSERT_STATUS(&get, 5);
        cr_assert_eq(get.out_len, 0, "printed the replayed value");
        cr_assert(strstr(get.err, "'rolled'"), "%s", get.err);
        cr_assert(strstr(get.err, "version"), "names the binding: %s", get.err);

        CLI(&get2, "get", "rolled", "--version", "2");
        CLI_ASSERT_STATUS(&get2, 0);
        cr_assert_str_eq(get2.out, "version two");
        free(v1);
        free(v2);
        free(data);
}

Test(tamper, leftover_temp_file_and_truncated_envelope_do_not_hide_others) {
        put_text("good", "good value");
        put_text("broken", "soon truncated");
        put_text("zeta", "last one");

        char *broken = envelope_path("broken", 1), *good = envelope_path("good", 1), *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(broken, &data, &len), 0);
        cr_assert_eq(clitest_write_file(broken, data, len / 2), 0);
        free(data);

        /* What a writer that crashed between staging and publishing leaves. */
        char *dir = strdup(good), tmp[4096];
        (void) snprintf(tmp, sizeof(tmp), "%s/.tmp-0123456789abcdef", dirname(dir));
        free(dir);
        cr_assert_eq(clitest_write_file(tmp, "{\"partial", 9), 0);

        _cleanup_result_ struct cli_result ls = { 0 }, lsj = { 0 }, get = { 0 }, bad = { 0 };
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 5);
        cr_assert(strstr(ls.out, "good "), "good secret not listed:\n%s", ls.out);
        cr_assert(strstr(ls.out, "zeta "), "secret after the broken one not listed:\n%s", ls.out);
        cr_assert_null(strstr(ls.out, "broken"), "broken one listed as fine:\n%s", ls.out);
        cr_assert(strstr(ls.err, "secretctl: "), "%s", ls.err);
        cr_assert(strstr(ls.err, "'broken'"), "the problem names the secret:\n%s", ls.err);

        CLI(&lsj, "ls", "--json");
        CLI_ASSERT_STATUS(&lsj, 5);
        json_t *l = json_loads(lsj.out, 0, NULL);
        cr_assert_eq(json_array_size(l), 2, "%s", lsj.out);
        json_decref(l);

        CLI(&get, "get", "good");
        CLI_ASSERT_STATUS(&get, 0);
        cr_assert_str_eq(get.out, "good value");
        CLI(&bad, "get", "broken");
        CLI_ASSERT_STATUS(&bad, 5);
        cr_assert(strstr(bad.err, "'broken'"), "%s", bad.err);
        free(broken);
        free(good);
}
