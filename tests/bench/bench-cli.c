/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Latency of `secretctl put` and `secretctl get` as a user sees it: fork,
 * exec, load the identity and the realm record, open the file store, verify
 * the policy chain, seal or open one envelope, exit.  Prints a table; asserts nothing about time.
 *
 * Usage: bench-cli [RUNS]   (default 50; also $SECRETD_BENCH_RUNS)
 * Needs $SECRETCTL; the store lives under $TMPDIR (default /tmp).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const double *sorted, size_t n, double p) {
        size_t rank = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return sorted[rank - 1];
}

static void print_row(const char *op, const char *size, double *ms, size_t n) {
        qsort(ms, n, sizeof(*ms), compare_double);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += ms[i];
        printf("%-8s %-8s %5zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", op, size, n, ms[0],
               percentile(ms, n, 50), percentile(ms, n, 90), ms[n - 1], sum / (double) n);
}

static int run_checked(struct cli_result *r, const struct cli_opts *opts, const char *const *args) {
        int e = cli_runv(r, opts, args);
        if (e < 0 || r->status != 0) {
                fprintf(stderr, "bench-cli: '%s' failed (%d): %s\n", r->cmdline ? r->cmdline : args[0],
                        e < 0 ? e : r->status, r->err ? r->err : "");
                return -1;
        }
        return 0;
}

int main(int argc, char **argv) {
        size_t runs = 50;
        const char *arg = argc > 1 ? argv[1] : secure_getenv("SECRETD_BENCH_RUNS");
        if (arg) {
                char *end = NULL;
                errno = 0;
                unsigned long v = strtoul(arg, &end, 10);
                if (errno || !end || *end || v == 0 || v > 100000) {
                        fprintf(stderr, "bench-cli: RUNS must be a number from 1 to 100000\n");
                        return 2;
                }
                runs = v;
        }
        if (clitest_setup_env() < 0) {
                fprintf(stderr, "bench-cli: cannot set up (is SECRETCTL set?)\n");
                return 1;
        }

        struct cli_result r;
        const char *keygen[] = { "keygen", NULL };
        if (run_checked(&r, NULL, keygen) < 0)
                return 1;
        cli_result_free(&r);
        /* A recipient, which makes the realm of the empty store. */
        struct sd_agent_key *agent = NULL;
        char *pub = NULL;
        if (sd_agent_key_generate(&agent, NULL) < 0 || sd_agent_pub_format(agent->box_pk, &pub) < 0)
                return 1;
        const char *add[] = { "recipient", "add", "host", pub, NULL };
        if (run_checked(&r, NULL, add) < 0)
                return 1;
        cli_result_free(&r);
        free(pub);
        sd_agent_key_free(agent);

        double *ms = calloc(runs, sizeof(*ms));
        if (!ms)
                return 1;
        int status = 0;

        printf("secretctl latency, %zu runs per row, milliseconds per process (fork to exit)\n", runs);
        printf("store %s\n\n", cli.store_url);
        printf("%-8s %-8s %5s %9s %9s %9s %9s %9s\n", "op", "size", "runs", "min", "median", "p90", "max", "mean");

        const char *version[] = { "--version", NULL };
        for (size_t i = 0; i < runs && status == 0; i++) {
                status = run_checked(&r, NULL, version);
                ms[i] = r.elapsed_ms;
                cli_result_free(&r);
        }
        if (status == 0)
                print_row("startup", "-", ms, runs);

        const struct {
                const char *label, *name;
                size_t len;
        } sizes[] = {
                { "32 B", "bench_32", 32 },
                { "4 KiB", "bench_4k", 4096 },
                { "1 MiB", "bench_1m", (size_t) 1 << 20 },
        };
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]) && status == 0; s++) {
                char *value = malloc(sizes[s].len);
                if (!value)
                        return 1;
                for (size_t i = 0; i < sizes[s].len; i++)
                        value[i] = (char) ('a' + i % 26);

                const char *put[] = { "put", sizes[s].name, NULL };
                const struct cli_opts in = { .input = value, .input_len = sizes[s].len };
                for (size_t i = 0; i < runs && status == 0; i++) {
                        status = run_checked(&r, &in, put);
                        ms[i] = r.elapsed_ms;
                        cli_result_free(&r);
                }
                if (status == 0)
                        print_row("put", sizes[s].label, ms, runs);

                const char *get[] = { "get", sizes[s].name, NULL };
                for (size_t i = 0; i < runs && status == 0; i++) {
                        status = run_checked(&r, NULL, get);
                        if (status == 0 && (r.out_len != sizes[s].len || memcmp(r.out, value, r.out_len) != 0)) {
                                fprintf(stderr, "bench-cli: get %s returned a different value\n", sizes[s].name);
                                status = -1;
                        }
                        ms[i] = r.elapsed_ms;
                        cli_result_free(&r);
                }
                if (status == 0)
                        print_row("get", sizes[s].label, ms, runs);
                free(value);
        }

        free(ms);
        clitest_teardown_env();
        return status == 0 ? 0 : 1;
}
