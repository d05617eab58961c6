/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Invalid names through every verb that takes one.  (An embedded NUL cannot
 * pass through argv; tests/unit/test-names.c covers it.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "clitest.h"

TestSuite(names, .init = clitest_setup_with_realm, .fini = clitest_teardown);

struct bad_name {
        const char *name;
        const char *shown;   /* how the message shows the input */
        const char *why;     /* substring of the reason */
};

Test(names, refused_with_exit_2_and_one_line_naming_the_input) {
        char long_name[130];
        memset(long_name, 'a', 129);
        long_name[129] = '\0';
        const struct bad_name cases[] = {
                { "../x", "'../x'", "must start with a letter or digit" },
                { "a/b", "'a/b'", "contains '/'" },
                { ".hidden", "'.hidden'", "must start with a letter or digit" },
                { long_name, "'aaaaaaaa", "the limit is 128" },
                { "caf\xc3\xa9", "'caf\\xc3\\xa9'", "byte 0xc3" },
                { "", "secret name is empty", "empty" },
        };
        /* Each verb that takes a secret name, with stdin for put. */
        const char *verbs[][3] = {
                { "put", NULL, NULL },
                { "get", NULL, NULL },
                { "history", NULL, NULL },
                { "rm", NULL, NULL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
                        struct cli_result r;
                        const char *args[] = { verbs[v][0], cases[i].name, NULL };
                        cr_assert_eq(cli_runv(&r, &(struct cli_opts) { .input = "value", .input_len = 5 }, args), 0);
                        cr_assert_eq(r.status, 2, "%s '%s': exit %d: %s", verbs[v][0], cases[i].shown, r.status, r.err);
                        cr_assert(strncmp(r.err, "secretctl: secret name", 22) == 0, "%s: %s", verbs[v][0], r.err);
                        cr_assert(strstr(r.err, cases[i].shown), "%s: message does not show %s: %s", verbs[v][0],
                                  cases[i].shown, r.err);
                        cr_assert(strstr(r.err, cases[i].why), "%s: %s", verbs[v][0], r.err);
                        cr_assert_eq(strchr(r.err, '\n') - r.err + 1, (long) r.err_len, "one line: %s", r.err);
                        cr_assert_eq(r.out_len, 0);
                        cli_result_free(&r);
                }
        }
        /* Nothing was written for any of them: secrets/ has no name
         * directory. */
        struct stat st;
        char secrets[4200];
        (void) snprintf(secrets, sizeof(secrets), "%s/secrets", cli.store_dir);
        cr_assert_eq(stat(secrets, &st), 0);
        cr_assert_eq(st.st_nlink, 2, "store gained entries");

        struct cli_result r;
        cr_assert_eq(cli_run(&r, NULL, "recipient", "add", "../host", "sda1:AAAA", NULL), 0);
        cr_assert_eq(r.status, 2, "%s", r.err);
        cr_assert(strstr(r.err, "recipient name '../host'"), "%s", r.err);
        cli_result_free(&r);
}
