/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A value must never leak: not into any output but `get`'s stdout, not into
 * the command line or environment, not into the store in plaintext. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "secretd/keys.h"

TestSuite(canary, .init = clitest_setup, .fini = clitest_teardown);

static char *canary;

static void assert_clean(const struct cli_result *r) {
        cr_assert(!clitest_memmem(r->out, r->out_len, canary), "'%s' printed the value on stdout", r->cmdline);
        cr_assert(!clitest_memmem(r->err, r->err_len, canary), "'%s' printed the value on stderr", r->cmdline);
        cr_assert(!clitest_memmem(r->tty, r->tty_len, canary), "'%s' showed the value on the terminal", r->cmdline);
        cr_assert_null(strstr(r->cmdline, canary), "the test put the value in argv");
        cr_assert_null(strstr(r->proc_cmdline, canary), "/proc/PID/cmdline holds the value");
        cr_assert_null(strstr(r->proc_environ, canary), "/proc/PID/environ holds the value");
}

static int file_has_canary(const char *path, const char *data, size_t len, void *u) {
        (void) u;
        cr_assert(!clitest_memmem(data, len, canary), "%s holds the value in plaintext", path);
        return 0;
}

Test(canary, value_appears_only_on_gets_stdout) {
        canary = clitest_random_text(40);
        {
                _cleanup_result_ struct cli_result gen = { 0 }, add = { 0 };
                CLI(&gen, "keygen");
                CLI_ASSERT_STATUS(&gen, 0);
                assert_clean(&gen);
                /* An agent to seal to, so recipient ls has something. */
                _cleanup_agent_key_ struct sd_agent_key *agent = NULL;
                cr_assert_eq(sd_agent_key_generate(&agent, NULL), 0);
                _cleanup_free_ char *pub = NULL;
                cr_assert_eq(sd_agent_pub_format(agent->box_pk, &pub), 0);
                CLI(&add, "recipient", "add", "host1", pub);
                CLI_ASSERT_STATUS(&add, 0);
        }
        /* A value that is mostly the canary, so any fragment shows. */
        char value[128];
        (void) snprintf(value, sizeof(value), "%s\n%s", canary, canary);

        _cleanup_result_ struct cli_result put = { 0 }, put2 = { 0 }, ls = { 0 }, lsj = { 0 }, hist = { 0 },
                                           histj = { 0 }, get = { 0 }, rm = { 0 }, rls = { 0 }, big = { 0 },
                                           argv_put = { 0 }, bad_name = { 0 }, capped = { 0 };
        CLI_IN(&put, value, strlen(value), "put", "canary");
        CLI_ASSERT_STATUS(&put, 0);
        assert_clean(&put);
        /* What /proc showed was read after exec and before stdin was fed:
         * the put was running and waiting for its value. */
        cr_assert(strstr(put.proc_cmdline, "put canary"), "cmdline read too late: '%s'", put.proc_cmdline);

        CLI_IN(&put2, value, strlen(value), "put", "canary");
        assert_clean(&put2);
        CLI(&ls, "ls");
        assert_clean(&ls);
        CLI(&lsj, "ls", "--json");
        assert_clean(&lsj);
        CLI(&hist, "history", "canary");
        assert_clean(&hist);
        CLI(&histj, "history", "canary", "--json");
        assert_clean(&histj);

        CLI(&get, "get", "canary");
        CLI_ASSERT_STATUS(&get, 0);
        cr_assert(clitest_memmem(get.out, get.out_len, canary), "get does print the value");
        cr_assert(!clitest_memmem(get.err, get.err_len, canary));

        /* Failing puts of canary-bearing values: too large, lowered limit,
         * bad name, a value on argv (which the test itself must not do, so
         * it passes a decoy and checks the canary stays off the error). */
        size_t big_len = ((size_t) 1 << 20) + 100;
        char *big_value = malloc(big_len);
        cr_assert_not_null(big_value);
        for (size_t i = 0; i < big_len; i += 40)
                memcpy(big_value + i, canary, big_len - i < 40 ? big_len - i : 40);
        CLI_IN(&big, big_value, big_len, "put", "canary");
        free(big_value);
        CLI_ASSERT_STATUS(&big, 2);
        assert_clean(&big);
        CLI_IN(&capped, value, strlen(value), "put", "canary", "--max-size", "8");
        CLI_ASSERT_STATUS(&capped, 2);
        assert_clean(&capped);
        CLI_IN(&bad_name, value, strlen(value), "put", "../canary");
        CLI_ASSERT_STATUS(&bad_name, 2);
        assert_clean(&bad_name);
        CLI_IN(&argv_put, value, strlen(value), "put", "canary", "decoy");
        CLI_ASSERT_STATUS(&argv_put, 2);
        assert_clean(&argv_put);

        CLI(&rls, "recipient", "ls");
        assert_clean(&rls);
        CLI(&rm, "rm", "canary");
        CLI_ASSERT_STATUS(&rm, 0);
        assert_clean(&rm);

        cr_assert_eq(clitest_walk(cli.store_dir, file_has_canary, NULL), 0);
        cr_assert_eq(clitest_walk(cli.config, file_has_canary, NULL), 0);
        cr_assert_eq(clitest_walk(cli.home, file_has_canary, NULL), 0);
        free(canary);
}
