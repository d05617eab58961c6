/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* secretctl import-env: a .env file's variables become secrets, sealed like
 * `put` seals them, with values that never show anywhere but the store. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "secretd/envelope.h"
#include "secretd/keys.h"
#include "secretd/cleanup.h"
#include "secretd/secret.h"

TestSuite(import_env, .init = clitest_setup_with_realm, .fini = clitest_teardown);

static char *write_env(const char *file, const char *text) {
        char *path;
        cr_assert_neq(asprintf(&path, "%s/%s", cli.root, file), -1);
        cr_assert_eq(clitest_write_file(path, text, strlen(text)), 0);
        return path;
}

Test(import_env, variables_become_secrets_byte_exact) {
        _cleanup_free_ char *canary = clitest_random_text(32);
        char text[512];
        (void) snprintf(text, sizeof(text),
                        "# the app's secrets\n"
                        "DB_PASSWORD=%s\n"
                        "export API_KEY=\"two\\nlines \\\"q\\\"\"\n"
                        "TLS='it\\'s # literal'   # comment\n",
                        canary);
        _cleanup_free_ char *env = write_env("app.env", text);
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "import-env", env, "--lowercase");
        CLI_ASSERT_STATUS(&r, 0);
        cr_assert_str_eq(r.out,
                         "db_password: version 1 (from DB_PASSWORD)\n"
                         "api_key: version 1 (from API_KEY)\n"
                         "tls: version 1 (from TLS)\n");
        CLI_ASSERT_NO_VALUE(&r, ((const char *const[]) { canary, NULL }));
        CLI_ASSERT_GET("db_password", canary);
        CLI_ASSERT_GET("api_key", "two\nlines \"q\"");
        CLI_ASSERT_GET("tls", "it's # literal");

        /* Again: the next versions. */
        _cleanup_result_ struct cli_result again = { 0 };
        CLI(&again, "import-env", env, "--lowercase", "--only", "API_KEY");
        CLI_ASSERT_STATUS(&again, 0);
        cr_assert_str_eq(again.out, "api_key: version 2 (from API_KEY)\n");
}

Test(import_env, names_as_written_without_lowercase_and_standard_input) {
        const char *text = "Mixed_Case=1\nexport other=2\n";
        _cleanup_result_ struct cli_result r = { 0 };
        CLI_IN(&r, text, strlen(text), "import-env", "-");
        CLI_ASSERT_STATUS(&r, 0);
        cr_assert_str_eq(r.out, "Mixed_Case: version 1\nother: version 1\n");
        CLI_ASSERT_GET("Mixed_Case", "1");
}

Test(import_env, a_terminal_on_standard_input_is_refused) {
        _cleanup_result_ struct cli_result r = { 0 };
        cr_assert_eq(cli_run(&r, &(struct cli_opts) { .tty_stdin = true }, "import-env", "-", NULL), 0);
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "standard input is a terminal"), "%s", r.err);
}

Test(import_env, only_selects_and_names_what_is_missing) {
        _cleanup_free_ char *env = write_env("a.env", "A=1\nB=2\nC=3\n");
        _cleanup_result_ struct cli_result r = { 0 }, missing = { 0 };
        CLI(&r, "import-env", env, "--only", "A", "--only=C");
        CLI_ASSERT_STATUS(&r, 0);
        cr_assert_str_eq(r.out, "A: version 1\nC: version 1\n");
        CLI(&missing, "import-env", env, "--only", "A,NOPE");
        CLI_ASSERT_STATUS(&missing, 3);
        cr_assert(strstr(missing.err, "does not set NOPE (named by --only)"), "%s", missing.err);
}

Test(import_env, references_are_refused_by_name_and_nothing_is_stored) {
        _cleanup_free_ char *canary = clitest_random_text(24);
        char text[512];
        (void) snprintf(text, sizeof(text), "GOOD=%s\nURL=postgres://u:${DB_PASSWORD}@db\nOTHER='${X:-%s}'\n",
                        canary, canary);
        _cleanup_free_ char *env = write_env("ref.env", text);
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "import-env", env);
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "the value of URL (line 2), OTHER (line 3) looks like a reference"), "%s", r.err);
        CLI_ASSERT_NO_VALUE(&r, ((const char *const[]) { canary, NULL }));
        cr_assert_null(strstr(r.err, "DB_PASSWORD"), "the message quotes a value: %s", r.err);
        CLI_ASSERT_NOTHING_STORED();
}

Test(import_env, values_missing_or_empty_are_refused) {
        _cleanup_free_ char *env = write_env("e.env", "A=1\nB=\nC\n");
        _cleanup_result_ struct cli_result none = { 0 }, empty = { 0 };
        CLI(&none, "import-env", env);
        CLI_ASSERT_STATUS(&none, 2);
        cr_assert(strstr(none.err, "C (line 3) has no value"), "%s", none.err);
        CLI(&empty, "import-env", env, "--only", "A,B");
        CLI_ASSERT_STATUS(&empty, 2);
        cr_assert(strstr(empty.err, "B (line 2) is empty"), "%s", empty.err);
        CLI_ASSERT_NOTHING_STORED();
}

Test(import_env, malformed_files_name_the_line_not_the_value) {
        _cleanup_free_ char *canary = clitest_random_text(24);
        char text[256];
        (void) snprintf(text, sizeof(text), "A=1\nB=\"%s\n", canary);
        _cleanup_free_ char *env = write_env("bad.env", text);
        _cleanup_result_ struct cli_result r = { 0 }, missing = { 0 };
        CLI(&r, "import-env", env);
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "bad.env:2: the value of B has no closing '\"'"), "%s", r.err);
        CLI_ASSERT_NO_VALUE(&r, ((const char *const[]) { canary, NULL }));
        CLI_ASSERT_NOTHING_STORED();
        CLI(&missing, "import-env", "/nonexistent/x.env");
        CLI_ASSERT_STATUS(&missing, 3);
}

Test(import_env, names_differing_only_in_case_are_refused) {
        _cleanup_free_ char *both = write_env("both.env", "db_password=1\nDB_PASSWORD=2\n");
        _cleanup_result_ struct cli_result same = { 0 }, twins = { 0 };
        CLI(&same, "import-env", both, "--lowercase");
        CLI_ASSERT_STATUS(&same, 4);
        cr_assert(strstr(same.err, "would both become the secret 'db_password'"), "%s", same.err);
        CLI(&twins, "import-env", both);
        CLI_ASSERT_STATUS(&twins, 4);
        cr_assert(strstr(twins.err, "would differ only in case"), "%s", twins.err);
        CLI_ASSERT_NOTHING_STORED();

        /* Against the store: db_password exists, DB_PASSWORD would be a
         * second secret; --lowercase puts the next version of the first. */
        _cleanup_result_ struct cli_result put = { 0 }, upper = { 0 }, lower = { 0 };
        CLI_IN(&put, "v1", 2, "put", "db_password");
        CLI_ASSERT_STATUS(&put, 0);
        _cleanup_free_ char *env = write_env("u.env", "DB_PASSWORD=v2\n");
        CLI(&upper, "import-env", env);
        CLI_ASSERT_STATUS(&upper, 4);
        cr_assert(strstr(upper.err, "differ only in case from the stored secret 'db_password'"), "%s", upper.err);
        CLI_ASSERT_GET("db_password", "v1");
        CLI(&lower, "import-env", env, "--lowercase");
        CLI_ASSERT_STATUS(&lower, 0);
        cr_assert_str_eq(lower.out, "db_password: version 2 (from DB_PASSWORD)\n");
        CLI_ASSERT_GET("db_password", "v2");
}

/* The put path: sealed to the policy's recipients, as `put` seals: the
 * realm's host opens both, and both carry the same recipient list. */
Test(import_env, sealed_to_recipients_like_put) {
        _cleanup_result_ struct cli_result r = { 0 }, put = { 0 };
        _cleanup_free_ char *env = write_env("r.env", "TOKEN=from-import\n");
        CLI(&r, "import-env", env);
        CLI_ASSERT_STATUS(&r, 0);
        CLI_IN(&put, "from-put", 8, "put", "by_put");
        CLI_ASSERT_STATUS(&put, 0);

        const char *names[] = { "TOKEN", "by_put" }, *values[] = { "from-import", "from-put" };
        _cleanup_json_ json_t *sealed0 = json_array(), *sealed1 = json_array();
        json_t *sealed[2] = { sealed0, sealed1 };
        for (size_t i = 0; i < 2; i++) {
                _cleanup_secret_ struct sd_secret *value = NULL;
                sd_error err = { 0 };
                cr_assert_eq(clitest_agent_fetch(cli.agent, names[i], 1, &value, &err), 0,
                             "the realm's host cannot open %s: %s", names[i], err.message);
                cr_assert_eq(value->len, strlen(values[i]));
                cr_assert(memcmp(value->data, values[i], value->len) == 0);

                _cleanup_free_ char *path = clitest_find_envelope(names[i], 1), *json = NULL;
                cr_assert_not_null(path, "no envelope for %s", names[i]);
                size_t len;
                cr_assert_eq(clitest_read_file(path, &json, &len), 0);
                _cleanup_json_ json_t *envelope = json_loadb(json, len, 0, NULL);
                cr_assert_not_null(envelope);
                json_t *entry;
                size_t k;
                json_array_foreach(json_object_get(envelope, "recipients"), k, entry)
                        json_array_append(sealed[i], json_object_get(entry, "key"));
        }
        cr_assert(json_array_size(sealed[0]) > 0);
        cr_assert(json_equal(sealed[0], sealed[1]), "import-env and put sealed to different recipients");
}
