/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Running the built secretctl (path in $SECRETCTL) from criterion tests.
 *
 * clitest_setup() (a suite's .init) makes a private temp root with a HOME,
 * an XDG_CONFIG_HOME and a store path (file://ROOT/store, not created:
 * `put` creates it); clitest_teardown() (.fini) removes it unless
 * SECRETD_TEST_KEEP=1.  cli_run() starts secretctl with only those variables
 * (plus sanitizer options) in its environment, feeds it stdin, captures
 * stdout, stderr and the exit status, and kills it at a deadline.
 *
 * Nothing here calls criterion, so forked workers and the benchmark can use
 * it too; the CLI_* macros below assert.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "secretd/keys.h"

struct clitest_env {
        char *root;
        char *home;
        char *config;        /* XDG_CONFIG_HOME */
        char *store_dir;
        char *store_url;     /* file://<store_dir>, passed as SECRETD_STORE */
        char *identity;      /* <config>/secretctl/identity */
        const char *secretctl;
        /* clitest_setup_with_realm(): the agent key of recipient "host"
         * (sodium_malloc()ed) and its public line. */
        struct sd_agent_key *agent;
        char *agent_pub;
};
extern struct clitest_env cli;

/* 0 or -errno; the *_or_die variants abort with a message instead. */
int clitest_setup_env(void);
void clitest_teardown_env(void);
void clitest_setup(void);
void clitest_teardown(void);
/* clitest_setup() plus `secretctl keygen`.  A failing .init does not get its
 * .fini from criterion, so on failure this cleans up itself, then aborts. */
void clitest_setup_with_identity(void);
/* clitest_setup_with_identity() plus a realm in the store: `secretctl
 * recipient add host <a fresh agent key>` creates it (the store is an empty
 * file store), with you as its admin; cli.agent holds the agent key. */
void clitest_setup_with_realm(void);

struct sd_secret;
struct sd_error;
/* Fetch version (0: latest) of name as an agent holding `agent` would: pin
 * the realm `secretctl realm pin` prints (state kept in <root>/agent-realm.json,
 * like the agent's), then verify and open with the library.  Returns the
 * library's result. */
int clitest_agent_fetch(const struct sd_agent_key *agent, const char *name, uint64_t version,
                        struct sd_secret **value, struct sd_error *err);

/* A terminal conversation: wait until the terminal shows `expect`, then type
 * `send`. */
struct cli_tty_step {
        const char *expect;
        const char *send;
};

struct cli_opts {
        const void *input;            /* standard input; NULL: /dev/null */
        size_t input_len;
        const char *const *env;       /* extra "NAME=VALUE"; a bare "NAME" removes it */
        int timeout_ms;               /* 0: 120 s */
        bool tty_stdin;               /* stdin (and the controlling terminal) is a pty */
        bool tty_stdout;              /* stdout is a pty */
        const struct cli_tty_step *tty_script;  /* steps, ended by {NULL, NULL} */
};

struct cli_result {
        int status;                   /* exit code; 128+N when killed by signal N */
        bool timed_out;
        char *out, *err, *tty;        /* NUL-terminated; may contain NULs */
        size_t out_len, err_len, tty_len;
        char *cmdline;                /* argv as built, joined with spaces */
        char *proc_cmdline;           /* /proc/PID/cmdline (NULs as spaces), read after exec */
        char *proc_environ;           /* /proc/PID/environ (NULs as newlines) */
        double elapsed_ms;
};

/* args: the arguments after argv[0]. Returns 0, or -errno if the process
 * could not be run at all. */
int cli_runv(struct cli_result *res, const struct cli_opts *opts, const char *const *args);
int cli_run(struct cli_result *res, const struct cli_opts *opts, ...) __attribute__((sentinel));
void cli_result_free(struct cli_result *res);
/* Run secretctl as `who`: XDG_CONFIG_HOME is <root>/<who> (NULL: you, the
 * fixture's <root>/config), standard input `input` (NULL: none). */
int cli_run_as(struct cli_result *res, const char *who, const char *input, ...) __attribute__((sentinel));
/* Another person: <root>/<who> and `secretctl keygen` there; line gets the
 * public line it printed.  0 or -errno (-EIO: keygen failed). */
int clitest_person(const char *who, char line[512]);

static inline void cli_result_freep(struct cli_result *res) {
        cli_result_free(res);
}
#define _cleanup_result_ __attribute__((cleanup(cli_result_freep)))

/* Files. */
int clitest_read_file(const char *path, char **data, size_t *len);
int clitest_write_file(const char *path, const void *data, size_t len);
bool clitest_memmem(const void *hay, size_t hay_len, const char *needle);

/* Every regular file under dir (recursively): path and bytes. The callback
 * returns non-zero to stop. */
int clitest_walk(const char *dir, int (*fn)(const char *path, const char *data, size_t len, void *u),
                 void *u);

/* Path (malloc()ed) of the stored envelope of name/version, found by content
 * so the tests do not depend on the store's layout; NULL if none. */
char *clitest_find_envelope(const char *name, uint64_t version);

/* A random printable string of len chars (hex), malloc()ed. */
char *clitest_random_text(size_t len);

#define CLI(res, ...) \
        cr_assert_eq(cli_run((res), NULL, __VA_ARGS__, NULL), 0, "cannot run secretctl")
#define CLI_AS(res, who, input, ...) \
        cr_assert_eq(cli_run_as((res), (who), (input), __VA_ARGS__, NULL), 0, "cannot run secretctl")
#define CLI_IN(res, data, len, ...) \
        cr_assert_eq(cli_run((res), &(struct cli_opts) { .input = (data), .input_len = (len) }, __VA_ARGS__, NULL), \
                     0, "cannot run secretctl")

/* Assert an exit status, showing what the command printed when it differs. */
#define CLI_ASSERT_STATUS(res, expected)                                                         \
        cr_assert_eq((res)->status, (expected),                                                  \
                     "'%s' exited %d, expected %d%s\nstdout: %.2000s\nstderr: %.2000s", (res)->cmdline, \
                     (res)->status, (expected), (res)->timed_out ? " (timed out)" : "", (res)->out, \
                     (res)->err)

/* `secretctl get NAME` prints exactly the C string expect. */
#define CLI_ASSERT_GET(name, expect)                                                             \
        do {                                                                                     \
                _cleanup_result_ struct cli_result _get = { 0 };                                 \
                CLI(&_get, "get", (name));                                                       \
                CLI_ASSERT_STATUS(&_get, 0);                                                     \
                cr_assert_eq(_get.out_len, strlen(expect), "%s: %zu bytes", (name), _get.out_len); \
                cr_assert(memcmp(_get.out, (expect), _get.out_len) == 0, "%s differs", (name));  \
        } while (0)

/* Nothing is stored: no store, or `ls --json` lists nothing. */
#define CLI_ASSERT_NOTHING_STORED()                                                              \
        do {                                                                                     \
                _cleanup_result_ struct cli_result _ls = { 0 };                                  \
                CLI(&_ls, "ls", "--json");                                                       \
                cr_assert(_ls.status == 3 || (_ls.status == 0 && strcmp(_ls.out, "[]\n") == 0),   \
                          "something was stored: %s", _ls.out);                                  \
        } while (0)

/* No string of the NULL-terminated array values shows in res's stdout,
 * stderr, /proc/PID/cmdline or /proc/PID/environ. */
#define CLI_ASSERT_NO_VALUE(res, values)                                                         \
        do {                                                                                     \
                for (size_t _i = 0; (values)[_i]; _i++) {                                        \
                        cr_assert(!clitest_memmem((res)->out, (res)->out_len, (values)[_i]),     \
                                  "'%s' printed a value on stdout", (res)->cmdline);             \
                        cr_assert(!clitest_memmem((res)->err, (res)->err_len, (values)[_i]),     \
                                  "'%s' printed a value on stderr", (res)->cmdline);             \
                        cr_assert_null(strstr((res)->proc_cmdline, (values)[_i]), "argv holds a value"); \
                        cr_assert_null(strstr((res)->proc_environ, (values)[_i]), "environ holds a value"); \
                }                                                                                \
        } while (0)
