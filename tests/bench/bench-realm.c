/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the realm costs.  Prints two tables; asserts nothing about time.
 *
 * 1. `secretctl reseal --all` of N secrets (default 1000) after a
 *    recipient was added: the whole command as a user runs it (one process:
 *    walk the policy chain, read, verify, open, seal and store every
 *    secret), and its --dry-run.  The secrets are put through the library
 *    first, which is not what is measured.
 * 2. The per-Mount work of the agent against a policy of 1 writer and 1
 *    recipient vs 100 writers and 1000 recipients: sd_envelope_open (what
 *    a Mount does per secret: parse, policy checks, signature, unwrap,
 *    decrypt) and sd_envelope_verify, with the signer last among the
 *    writers and the agent last among the recipients, so every lookup
 *    walks its whole list; and parsing the policy document itself (what a
 *    refresh does per version).  The big policy is measured twice: every
 *    recipient may receive every name (the envelope carries 1001 wrapped
 *    keys), and each recipient has its own pattern (the envelope carries
 *    two).
 *
 * Usage: bench-realm [N]   (also $SECRETD_BENCH_SECRETS); needs $SECRETCTL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clitest.h"
#include "secretd/client.h"
#include "../realm-fixture.h"

#define TARGET_SECONDS 0.5

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int run_checked(struct cli_result *r, const char *const *args) {
        int e = cli_runv(r, &(struct cli_opts) { .timeout_ms = 3600 * 1000 }, args);
        if (e < 0 || r->status != 0) {
                fprintf(stderr, "bench-realm: '%s' failed (%d): %s\n", r->cmdline ? r->cmdline : args[0],
                        e < 0 ? e : r->status, r->err ? r->err : "");
                return -1;
        }
        return 0;
}

static int reseal_table(size_t n_secrets) {
        struct cli_result r;
        const char *keygen[] = { "keygen", NULL };
        if (run_checked(&r, keygen) < 0)
                return -1;
        cli_result_free(&r);
        struct sd_agent_key *a1 = NULL, *a2 = NULL;
        char *p1 = NULL, *p2 = NULL;
        if (sd_agent_key_generate(&a1, NULL) < 0 || sd_agent_key_generate(&a2, NULL) < 0 ||
            sd_agent_pub_format(a1->box_pk, &p1) < 0 || sd_agent_pub_format(a2->box_pk, &p2) < 0)
                return -1;
        const char *add1[] = { "recipient", "add", "host1", p1, NULL };
        if (run_checked(&r, add1) < 0)
                return -1;
        cli_result_free(&r);

        /* N secrets, put through the library as the CLI would. */
        sd_error err = { 0 };
        struct sd_writer_key *me = NULL;
        struct sd_store *store = NULL;
        struct sd_policy *policy = NULL;
        char *data = NULL;
        size_t len = 0;
        if (sd_writer_key_load(cli.identity, &me, &err) < 0 || sd_store_open(cli.store_url, 0, &store, &err) < 0 ||
            sd_store_policy_get(store, 0, &data, &len, NULL, &err) < 0 || sd_policy_parse(data, len, &policy, &err) < 0) {
                fprintf(stderr, "bench-realm: %s\n", err.message);
                return -1;
        }
        free(data);
        double t0 = now();
        for (size_t i = 0; i < n_secrets; i++) {
                char name[32], text[48];
                snprintf(name, sizeof(name), "secret_%04zu", i);
                snprintf(text, sizeof(text), "value of secret %zu", i);
                struct sd_secret *v = NULL;
                if (sd_secret_new_from(text, strlen(text), &v) < 0 ||
                    sd_secret_put(store, me, policy, name, v, NULL, NULL, &err) < 0) {
                        fprintf(stderr, "bench-realm: put %s: %s\n", name, err.message);
                        return -1;
                }
                sd_secret_free(v);
        }
        double put_s = now() - t0;

        const char *add2[] = { "recipient", "add", "host2", p2, NULL };
        if (run_checked(&r, add2) < 0)
                return -1;
        cli_result_free(&r);

        printf("reseal of %zu secrets after a recipient was added (file store %s)\n\n", n_secrets, cli.store_url);
        printf("%-34s %10s %14s\n", "command", "seconds", "ms per secret");
        printf("%-34s %10.2f %14.3f\n", "(library puts, for scale)", put_s, put_s * 1e3 / (double) n_secrets);
        const char *dry[] = { "reseal", "--all", "--dry-run", NULL };
        if (run_checked(&r, dry) < 0)
                return -1;
        printf("%-34s %10.2f %14.3f\n", "secretctl reseal --all --dry-run", r.elapsed_ms / 1e3,
               r.elapsed_ms / (double) n_secrets);
        cli_result_free(&r);
        const char *all[] = { "reseal", "--all", NULL };
        if (run_checked(&r, all) < 0)
                return -1;
        printf("%-34s %10.2f %14.3f\n", "secretctl reseal --all", r.elapsed_ms / 1e3, r.elapsed_ms / (double) n_secrets);
        char expect[64];
        snprintf(expect, sizeof(expect), "%zu secret(s) resealed", n_secrets);
        int ok = strstr(r.out, expect) != NULL;
        cli_result_free(&r);
        if (!ok) {
                fprintf(stderr, "bench-realm: the reseal did not reseal every secret\n");
                return -1;
        }
        /* The new host reads one of them: the work was real. */
        struct sd_secret *got = NULL;
        if (clitest_agent_fetch(a2, "secret_0000", 0, &got, &err) < 0) {
                fprintf(stderr, "bench-realm: host2 cannot read a resealed secret: %s\n", err.message);
                return -1;
        }
        sd_secret_free(got);
        sd_policy_unref(policy);
        sd_store_free(store);
        sd_writer_key_free(me);
        sd_agent_key_free(a1);
        sd_agent_key_free(a2);
        free(p1);
        free(p2);
        return 0;
}

/* ---- per-Mount verification against a small and a large policy ---- */

struct job {
        const char *json;
        size_t len;
        const struct sd_policy *policy;
        struct sd_box_keypair kp;
        const char *policy_json;
        size_t policy_len;
};

static int run_open(const struct job *j) {
        sd_error err = { 0 };
        struct sd_secret *v = NULL;
        int r = sd_envelope_open(j->json, j->len, j->policy, 0, "db_password", 1, &j->kp, 1, &v, NULL, &err);
        if (r < 0)
                fprintf(stderr, "open: %s\n", err.message);
        sd_secret_free(v);
        return r;
}

static int run_verify(const struct job *j) {
        sd_error err = { 0 };
        int r = sd_envelope_verify(j->json, j->len, j->policy, 0, NULL, &err);
        if (r < 0)
                fprintf(stderr, "verify: %s\n", err.message);
        return r;
}

static int run_parse(const struct job *j) {
        sd_error err = { 0 };
        struct sd_policy *p = NULL;
        int r = sd_policy_parse(j->policy_json, j->policy_len, &p, &err);
        sd_policy_unref(p);
        return r;
}

/* Microseconds per call of fn, over TARGET_SECONDS. */
static double measure(int (*fn)(const struct job *), const struct job *j) {
        double start = now(), elapsed = 0;
        unsigned long ops = 0, batch = 1;
        while (elapsed < TARGET_SECONDS) {
                for (unsigned long i = 0; i < batch; i++)
                        if (fn(j) != 0)
                                exit(1);
                ops += batch;
                elapsed = now() - start;
                if (elapsed < TARGET_SECONDS / 20)
                        batch *= 2;
        }
        return elapsed / (double) ops * 1e6;
}

static void verify_row(const char *label, size_t n_writers, size_t n_recipients, bool own_patterns) {
        sd_error err = { 0 };
        struct sd_writer_key *admin = NULL, *signer = NULL;
        if (sd_writer_key_generate(&admin, &err) < 0)
                exit(1);
        struct sd_policy *p = fx_policy(admin, NULL);
        for (size_t i = 0; i < n_writers; i++) {
                struct sd_writer_key *w = NULL;
                if (sd_writer_key_generate(&w, &err) < 0)
                        exit(1);
                char name[32];
                snprintf(name, sizeof(name), "writer%zu", i);
                fx_writer(p, name, w, NULL);
                if (i + 1 == n_writers)
                        signer = w;
                else
                        sd_writer_key_free(w);
        }
        struct sd_agent_key *agent = NULL;
        for (size_t i = 0; i < n_recipients; i++) {
                struct sd_agent_key *a = NULL;
                if (sd_agent_key_generate(&a, &err) < 0)
                        exit(1);
                char name[32], pattern[32];
                snprintf(name, sizeof(name), "host%zu", i);
                snprintf(pattern, sizeof(pattern), "svc%zu_*", i);
                /* The last recipient receives db_password either way. */
                bool last = i + 1 == n_recipients;
                fx_recipient(p, name, a->box_pk, own_patterns && !last ? pattern : NULL);
                if (last)
                        agent = a;
                else
                        sd_agent_key_free(a);
        }
        fx_sign(p, admin);
        struct sd_secret *v = NULL;
        char *json = NULL;
        size_t len = 0;
        if (sd_secret_new_from("correct horse battery staple", 28, &v) < 0 ||
            sd_envelope_seal("db_password", 1, v, signer, p, &json, &len, &err) < 0) {
                fprintf(stderr, "seal: %s\n", err.message);
                exit(1);
        }
        struct sd_envelope_info info;
        if (sd_envelope_verify(json, len, p, 0, &info, &err) < 0)
                exit(1);
        size_t policy_len = 0;
        char *policy_json = fx_policy_json(p, &policy_len);
        struct job j = { json, len, p, { agent->box_pk, agent->box_sk }, policy_json, policy_len };
        double open_us = measure(run_open, &j), verify_us = measure(run_verify, &j), parse_us = measure(run_parse, &j);
        printf("%-28s %8zu %11zu %10zu %10.1f %10.1f %11zu %11.2f\n", label, n_writers, n_recipients, len, open_us,
               verify_us, policy_len, parse_us / 1e3);
        free(policy_json);
        free(json);
        sd_secret_free(v);
        sd_policy_unref(p);
        sd_writer_key_free(admin);
        sd_writer_key_free(signer);
        sd_agent_key_free(agent);
}

int main(int argc, char **argv) {
        size_t n = 1000;
        const char *arg = argc > 1 ? argv[1] : secure_getenv("SECRETD_BENCH_SECRETS");
        if (arg) {
                char *end = NULL;
                errno = 0;
                unsigned long v = strtoul(arg, &end, 10);
                if (errno || !end || *end || v == 0 || v > 100000) {
                        fprintf(stderr, "bench-realm: N must be a number from 1 to 100000\n");
                        return 2;
                }
                n = v;
        }
        if (sodium_init() < 0)
                return 1;
        printf("per-Mount verification against the realm policy (%.1f s per cell)\n\n", TARGET_SECONDS);
        printf("%-28s %8s %11s %10s %10s %10s %11s %11s\n", "policy", "writers", "recipients", "env bytes", "open us",
               "verify us", "doc bytes", "parse ms");
        verify_row("1 writer, 1 recipient", 1, 1, false);
        verify_row("100 w, 1000 r, all '*'", 100, 1000, false);
        verify_row("100 w, 1000 r, own patterns", 100, 1000, true);
        printf("\n");
        fflush(stdout);

        if (clitest_setup_env() < 0) {
                fprintf(stderr, "bench-realm: cannot set up (is SECRETCTL set?)\n");
                return 1;
        }
        int r = reseal_table(n);
        clitest_teardown_env();
        return r < 0 ? 1 : 0;
}
