/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Help texts and usage errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

TestSuite(help, .init = clitest_setup, .fini = clitest_teardown);

/* The commands `secretctl --help` lists, one per line of its Commands:
 * block ("  NAME  summary"), help left out; NULL-terminated, malloc()ed. */
static char **listed_verbs(void) {
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "--help");
        CLI_ASSERT_STATUS(&r, 0);
        char **verbs = calloc(64, sizeof(*verbs));
        cr_assert_not_null(verbs);
        const char *p = strstr(r.out, "\nCommands:\n");
        cr_assert_not_null(p, "%s", r.out);
        size_t n = 0;
        for (p += strlen("\nCommands:\n"); strncmp(p, "  ", 2) == 0 && n < 63; p = strchr(p, '\n') + 1) {
                size_t len = strcspn(p + 2, " \n");
                if (len > 0 && !(len == 4 && strncmp(p + 2, "help", 4) == 0))
                        verbs[n++] = strndup(p + 2, len);
        }
        cr_assert_geq(n, 17, "only %zu commands listed: %s", n, r.out);
        return verbs;
}

static void free_verbs(char **verbs) {
        for (size_t i = 0; verbs[i]; i++)
                free(verbs[i]);
        free(verbs);
}

static const char environment_pointer[] = "\nFiles and environment variables: secretctl help environment\n";

Test(help, every_verb_has_a_full_help_without_the_environment_block) {
        char **verbs = listed_verbs();
        for (size_t i = 0; verbs[i]; i++) {
                struct cli_result a, b;
                cr_assert_eq(cli_run(&a, NULL, verbs[i], "--help", NULL), 0);
                cr_assert_eq(a.status, 0, "%s --help: %d %s", verbs[i], a.status, a.err);
                const char *sections[] = { "Usage:", "Options:", "Examples:", "Exit status:" };
                for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++)
                        cr_assert(strstr(a.out, sections[s]), "%s --help lacks %s", verbs[i], sections[s]);
                cr_assert_null(strstr(a.out, "Files:"), "%s --help repeats the Files block", verbs[i]);
                cr_assert_null(strstr(a.out, "Environment:"), "%s --help repeats the Environment block", verbs[i]);
                size_t plen = strlen(environment_pointer);
                cr_assert(a.out_len > plen && strcmp(a.out + a.out_len - plen, environment_pointer) == 0,
                          "%s --help does not end pointing to 'secretctl help environment'", verbs[i]);
                char usage[64], usage_end[64];
                (void) snprintf(usage, sizeof(usage), " %s ", verbs[i]);
                (void) snprintf(usage_end, sizeof(usage_end), " %s\n", verbs[i]);
                size_t first = strcspn(a.out, "\n") + 1;
                cr_assert(strncmp(a.out, "Usage: secretctl ", 17) == 0 &&
                                  (memmem(a.out, first, usage, strlen(usage)) || memmem(a.out, first, usage_end, strlen(usage_end))),
                          "%s --help does not start with its synopsis", verbs[i]);

                cr_assert_eq(cli_run(&b, NULL, "help", verbs[i], NULL), 0);
                cr_assert_eq(b.status, 0);
                cr_assert_str_eq(a.out, b.out, "help %s differs from %s --help", verbs[i], verbs[i]);
                cli_result_free(&a);
                cli_result_free(&b);
        }
        free_verbs(verbs);
}

Test(help, help_environment_prints_the_files_and_environment_once) {
        _cleanup_result_ struct cli_result env = { 0 }, main_help = { 0 }, extra = { 0 };
        CLI(&env, "help", "environment");
        CLI_ASSERT_STATUS(&env, 0);
        const char *names[] = { "Files:", "Environment:", "secretctl/identity", "secretctl/realms/",
                                "SECRETD_STORE", "XDG_CONFIG_HOME", "SECRETD_ADMIN_SOCKET", "secure_getenv" };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                cr_assert(strstr(env.out, names[i]), "help environment lacks %s: %s", names[i], env.out);
        CLI(&main_help, "--help");
        cr_assert_null(strstr(main_help.out, "Files:"), "%s", main_help.out);
        cr_assert(strstr(main_help.out, environment_pointer), "%s", main_help.out);
        CLI(&extra, "help", "environment", "x");
        CLI_ASSERT_STATUS(&extra, 2);
}

Test(help, main_help_lists_verbs_and_exit_codes) {
        _cleanup_result_ struct cli_result r = { 0 }, v = { 0 };
        CLI(&r, "--help");
        CLI_ASSERT_STATUS(&r, 0);
        const char *verbs[] = { "keygen", "whoami", "put", "get", "ls", "history", "rm", "realm", "writer",
                                "recipient", "admin", "reseal", "export", "import", "import-env", "compose", "status" };
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
                char line[64];
                (void) snprintf(line, sizeof(line), "\n  %s ", verbs[i]);
                cr_assert(strstr(r.out, line), "--help does not list %s", verbs[i]);
        }
        for (int code = 0; code <= 9; code++) {
                char line[16];
                (void) snprintf(line, sizeof(line), "\n  %d  ", code);
                cr_assert(strstr(r.out, line), "--help does not explain exit status %d", code);
        }
        CLI(&v, "--version");
        CLI_ASSERT_STATUS(&v, 0);
        cr_assert(strncmp(v.out, "secretctl ", 10) == 0, "%s", v.out);
}

Test(help, usage_errors_exit_2_with_one_line) {
        const char *cases[][6] = {
                { "frobnicate", NULL },
                { "--bogus", "ls", NULL },
                { "ls", "--bogus", NULL },
                { "get", NULL },
                { "get", "a", "b", NULL },
                { "whoami", "extra", NULL },
                { "recipient", NULL },
                { "recipient", "frob", NULL },
                { "trust", "frob", NULL },
                { "get", "x", "--version", "zero", NULL },
                { "get", "x", "--version", NULL },
                { "help", "frobnicate", NULL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct cli_result r;
                cr_assert_eq(cli_runv(&r, NULL, cases[i]), 0);
                cr_assert_eq(r.status, 2, "'%s' exited %d: %s", r.cmdline, r.status, r.err);
                cr_assert(strncmp(r.err, "secretctl: ", 11) == 0, "'%s': %s", r.cmdline, r.err);
                cr_assert_eq(strchr(r.err, '\n') - r.err + 1, (long) r.err_len, "'%s': not one line: %s",
                             r.cmdline, r.err);
                cli_result_free(&r);
        }
}

Test(help, the_removed_trust_verb_points_to_the_realm) {
        _cleanup_result_ struct cli_result r = { 0 }, h = { 0 }, m = { 0 };
        CLI(&r, "trust", "add", "sdw1:x");
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "'secretctl trust' was removed") && strstr(r.err, "secretctl realm join PIN") &&
                          strstr(r.err, "secretctl writer add"),
                  "%s", r.err);
        CLI(&h, "help", "trust");
        CLI_ASSERT_STATUS(&h, 0);
        cr_assert(strstr(h.out, "removed") && strstr(h.out, "realm join"), "%s", h.out);
        CLI(&m, "--help");
        cr_assert_null(strstr(m.out, "\n  trust "), "a removed verb is not listed");
}

Test(help, no_command_prints_usage_and_exits_2) {
        _cleanup_result_ struct cli_result r = { 0 };
        cr_assert_eq(cli_run(&r, NULL, NULL), 0);
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "Usage:"), "%s", r.err);
}
