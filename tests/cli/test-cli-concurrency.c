/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Two writers racing on one name: every put lands as its own version. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

TestSuite(concurrency, .init = clitest_setup_with_realm, .fini = clitest_teardown);

enum { PUTS_PER_WRITER = 50 };

/* A forked worker: 50 puts in a row, one secretctl process each; the exit
 * code counts the failures (no criterion calls in the child). */
static void writer(int id) {
        int failures = 0;
        for (int i = 0; i < PUTS_PER_WRITER; i++) {
                char value[32];
                int n = snprintf(value, sizeof(value), "writer%d-put%02d", id, i);
                struct cli_result r;
                if (cli_run(&r, &(struct cli_opts) { .input = value, .input_len = (size_t) n }, "put", "raced",
                            NULL) < 0 ||
                    r.status != 0) {
                        fprintf(stderr, "writer %d put %d: exit %d: %s", id, i, r.status, r.err ? r.err : "");
                        failures++;
                }
                cli_result_free(&r);
        }
        _exit(failures > 100 ? 100 : failures);
}

Test(concurrency, two_writers_fifty_puts_each_make_versions_1_to_100) {
        pid_t pids[2];
        for (int w = 0; w < 2; w++) {
                pids[w] = fork();
                cr_assert_geq(pids[w], 0);
                if (pids[w] == 0)
                        writer(w);
        }
        /* Each put is bounded by cli_run's deadline, so waiting ends. */
        for (int w = 0; w < 2; w++) {
                int status = 0;
                cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: %d puts failed", w,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }

        _cleanup_result_ struct cli_result hist = { 0 };
        CLI(&hist, "history", "raced", "--json");
        CLI_ASSERT_STATUS(&hist, 0);
        json_t *h = json_loads(hist.out, 0, NULL);
        cr_assert_not_null(h, "%s", hist.out);
        cr_assert_eq(json_array_size(h), 2 * PUTS_PER_WRITER, "%zu versions", json_array_size(h));
        for (size_t i = 0; i < json_array_size(h); i++) {
                json_t *e = json_array_get(h, i);
                cr_assert_eq(json_integer_value(json_object_get(e, "version")), (json_int_t) i + 1,
                             "gap or duplicate at position %zu", i);
                cr_assert_str_eq(json_string_value(json_object_get(e, "status")), "ok");
        }
        json_decref(h);

        /* And every value written is there exactly once: no put overwrote
         * another. */
        bool seen[2][PUTS_PER_WRITER] = { { false } };
        for (int v = 1; v <= 2 * PUTS_PER_WRITER; v++) {
                char version[16];
                (void) snprintf(version, sizeof(version), "%d", v);
                struct cli_result r;
                cr_assert_eq(cli_run(&r, NULL, "get", "raced", "--version", version, NULL), 0);
                cr_assert_eq(r.status, 0, "get version %d: %s", v, r.err);
                int w = -1, i = -1;
                cr_assert_eq(sscanf(r.out, "writer%d-put%d", &w, &i), 2, "version %d: %s", v, r.out);
                cr_assert(w >= 0 && w < 2 && i >= 0 && i < PUTS_PER_WRITER);
                cr_assert_not(seen[w][i], "value %s stored twice", r.out);
                seen[w][i] = true;
                cli_result_free(&r);
        }
}
