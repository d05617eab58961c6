/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keygen and whoami through the built secretctl, and the whoami line as
 * writer add takes it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "clitest.h"

TestSuite(keys, .init = clitest_setup, .fini = clitest_teardown);

Test(keys, keygen_writes_private_identity_and_whoami_repeats_its_line) {
        _cleanup_result_ struct cli_result gen = { 0 }, who = { 0 };
        CLI(&gen, "keygen");
        CLI_ASSERT_STATUS(&gen, 0);

        struct stat st;
        cr_assert_eq(stat(cli.identity, &st), 0, "no identity at %s", cli.identity);
        cr_assert_eq(st.st_mode & 07777, 0600, "identity mode %o", st.st_mode & 07777);

        /* "sdw1:<base64url>  key id <16 hex>\n" */
        cr_assert(strncmp(gen.out, "sdw1:", 5) == 0, "keygen printed: %s", gen.out);
        const char *tail = strstr(gen.out, "  key id ");
        cr_assert_not_null(tail, "no key id in: %s", gen.out);
        cr_assert_eq(strlen(tail + 9), 17, "key id is 16 hex + newline: %s", gen.out);
        cr_assert_eq(strspn(tail + 9, "0123456789abcdef"), 16);

        CLI(&who, "whoami");
        CLI_ASSERT_STATUS(&who, 0);
        cr_assert_str_eq(who.out, gen.out);

        cr_assert_eq(gen.err_len, 0, "keygen wrote to stderr: %s", gen.err);
        /* Only the public line is printed, never the private one. */
        cr_assert_null(strstr(gen.out, "secret"), "%s", gen.out);
}

Test(keys, keygen_refuses_to_overwrite_without_force) {
        _cleanup_result_ struct cli_result first = { 0 }, again = { 0 }, who = { 0 }, forced = { 0 },
                                           who2 = { 0 };
        CLI(&first, "keygen");
        CLI_ASSERT_STATUS(&first, 0);

        CLI(&again, "keygen");
        CLI_ASSERT_STATUS(&again, 4);
        cr_assert(strstr(again.err, cli.identity), "message names the file: %s", again.err);
        cr_assert(strstr(again.err, "--force"), "message says how: %s", again.err);
        cr_assert_eq(again.out_len, 0);

        CLI(&who, "whoami");
        cr_assert_str_eq(who.out, first.out, "the refused keygen changed the identity");

        CLI(&forced, "keygen", "--force");
        CLI_ASSERT_STATUS(&forced, 0);
        cr_assert_str_neq(forced.out, first.out);
        CLI(&who2, "whoami");
        cr_assert_str_eq(who2.out, forced.out);
}

Test(keys, whoami_without_identity_says_how_to_make_one) {
        _cleanup_result_ struct cli_result who = { 0 };
        CLI(&who, "whoami");
        CLI_ASSERT_STATUS(&who, 3);
        cr_assert(strstr(who.err, "no identity at "), "%s", who.err);
        cr_assert(strstr(who.err, cli.identity), "names the path: %s", who.err);
        cr_assert(strstr(who.err, "secretctl keygen"), "%s", who.err);
        cr_assert(strncmp(who.err, "secretctl: ", 11) == 0);
        cr_assert_eq(strchr(who.err, '\n') - who.err + 1, (long) who.err_len, "one line: %s", who.err);
}

Test(keys, identity_option_and_home_fallback) {
        /* Without XDG_CONFIG_HOME the identity goes under $HOME/.config. */
        const char *no_xdg[] = { "XDG_CONFIG_HOME", NULL };
        _cleanup_result_ struct cli_result gen = { 0 }, other = { 0 }, who = { 0 };
        cr_assert_eq(cli_run(&gen, &(struct cli_opts) { .env = no_xdg }, "keygen", NULL), 0);
        CLI_ASSERT_STATUS(&gen, 0);
        char path[4096];
        (void) snprintf(path, sizeof(path), "%s/.config/secretctl/identity", cli.home);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "no identity at %s", path);

        (void) snprintf(path, sizeof(path), "%s/other-identity", cli.root);
        CLI(&other, "--identity", path, "keygen");
        CLI_ASSERT_STATUS(&other, 0);
        CLI(&who, "-i", path, "whoami");
        cr_assert_str_eq(who.out, other.out);
}

Test(keys, writer_add_takes_the_whoami_line_and_checks_its_key_id) {
        char other_path[4096];
        (void) snprintf(other_path, sizeof(other_path), "%s/other-identity", cli.root);
        _cleanup_result_ struct cli_result me = { 0 }, other = { 0 }, init = { 0 }, add = { 0 }, dup = { 0 },
                                           self = { 0 }, bad = { 0 }, wrong = { 0 }, ls = { 0 };
        CLI(&me, "keygen");
        CLI(&other, "--identity", other_path, "keygen");
        CLI_ASSERT_STATUS(&other, 0);
        CLI(&init, "realm", "init", "--name", "me");
        CLI_ASSERT_STATUS(&init, 0);

        /* The whole whoami line, as one argument, is accepted. */
        char line[512];
        (void) snprintf(line, sizeof(line), "%.*s", (int) strcspn(other.out, "\n"), other.out);
        CLI(&add, "writer", "add", "other", line);
        CLI_ASSERT_STATUS(&add, 0);
        cr_assert(strstr(add.out, "policy v2 is in force") && strstr(add.out, "+ writer other"), "%s", add.out);
        CLI(&dup, "writer", "add", "again", line);
        CLI_ASSERT_STATUS(&dup, 4);
        CLI(&self, "writer", "add", "me", me.out);
        CLI_ASSERT_STATUS(&self, 4);
        CLI(&ls, "writer", "ls");
        cr_assert(strstr(ls.out, "other") && strstr(ls.out, strstr(line, "key id ") + 7), "%s", ls.out);

        CLI(&bad, "writer", "add", "x", "sdw1:notakey");
        CLI_ASSERT_STATUS(&bad, 2);
        char key[512];
        (void) snprintf(key, sizeof(key), "%.*s", (int) (strstr(me.out, "key id ") - me.out - 2), me.out);
        CLI(&wrong, "writer", "add", "x", key, "key", "id", "0000000000000000");
        CLI_ASSERT_STATUS(&wrong, 2);
        cr_assert(strstr(wrong.err, "0000000000000000"), "%s", wrong.err);
}
