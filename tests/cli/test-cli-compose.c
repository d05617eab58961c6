/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* secretctl compose migrate through the built binary: what it stores, what
 * it writes beside the original (and that it writes nothing on any error),
 * and that no value shows anywhere but in the store.  tests/unit/test-compose.c
 * covers the planner's rewriting case by case; test-compose-migrate.sh runs
 * the result with docker-compose against a real dockerd. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clitest.h"
#include "secretd/cleanup.h"

TestSuite(compose_migrate, .init = clitest_setup_with_realm, .fini = clitest_teardown);

static char *project;   /* <root>/proj */

static char *path_in(const char *name) {
        char *p;
        cr_assert_neq(asprintf(&p, "%s/%s", project, name), -1);
        return p;
}

static void write_in(const char *name, const char *text) {
        if (!project) {
                cr_assert_neq(asprintf(&project, "%s/proj", cli.root), -1);
                cr_assert_eq(mkdir(project, 0755), 0);
        }
        _cleanup_free_ char *p = path_in(name);
        cr_assert_eq(clitest_write_file(p, text, strlen(text)), 0);
}

static char *read_in(const char *name) {
        _cleanup_free_ char *p = path_in(name);
        char *data = NULL;
        size_t len;
        return clitest_read_file(p, &data, &len) == 0 ? data : NULL;
}

/* The project directory's file names, sorted, space-separated. */
static char *listing(void) {
        struct dirent **e;
        int n = scandir(project, &e, NULL, alphasort);
        cr_assert_geq(n, 0);
        char *out = calloc(1, 4096);
        cr_assert_not_null(out);
        for (int i = 0; i < n; i++) {
                size_t used = strlen(out);
                if (strcmp(e[i]->d_name, ".") != 0 && strcmp(e[i]->d_name, ".."))
                        (void) snprintf(out + used, 4096 - used, "%s ", e[i]->d_name);
                free(e[i]);
        }
        free(e);
        return out;
}

static const char compose_yml[] =
        "version: \"2.4\"\n"
        "services:\n"
        "  db:\n"
        "    image: postgres\n"
        "    user: \"999:999\"\n"
        "    environment:\n"
        "      POSTGRES_USER: app\n"
        "      POSTGRES_PASSWORD: canary-cm-db-6f1e\n"
        "  web:\n"
        "    image: busybox\n"
        "    env_file: web.env\n"
        "    environment:\n"
        "      - DB_PASSWORD=${DB_PASSWORD}\n"
        "      - HOST=db\n";

static const char *const values[] = { "canary-cm-db-6f1e", "canary-cm-env-73ab", "canary-cm-sess-90cd", NULL };

static void write_project(void) {
        write_in("docker-compose.yml", compose_yml);
        write_in(".env", "DB_PASSWORD=canary-cm-env-73ab\n");
        write_in("web.env", "# web\nLOG=debug\nSESSION_SECRET='canary-cm-sess-90cd'\n");
}

Test(compose_migrate, stores_writes_beside_and_shows_no_value) {
        write_project();
        _cleanup_free_ char *file = path_in("docker-compose.yml");
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "compose", "migrate", "-f", file);
        CLI_ASSERT_STATUS(&r, 0);
        CLI_ASSERT_NO_VALUE(&r, values);
        cr_assert(strstr(r.out, "postgres_password: version 1 (from POSTGRES_PASSWORD)\n"), "%s", r.out);
        cr_assert(strstr(r.out, "db_password: version 1 (from DB_PASSWORD)\n"), "%s", r.out);
        cr_assert(strstr(r.out, "session_secret: version 1 (from SESSION_SECRET)\n"), "%s", r.out);
        cr_assert(strstr(r.out, "-      POSTGRES_PASSWORD: <redacted>\n+      POSTGRES_PASSWORD_FILE: "
                                "/run/secrets/postgres_password\n"),
                  "no diff: %s", r.out);
        _cleanup_free_ char *new_path = path_in("docker-compose.secretd.yml");
        char run[8192];
        (void) snprintf(run, sizeof(run), "  docker-compose -f %s up -d\n", new_path);
        cr_assert(strstr(r.out, run), "no command to run: %s", r.out);

        CLI_ASSERT_GET("postgres_password", "canary-cm-db-6f1e");
        CLI_ASSERT_GET("db_password", "canary-cm-env-73ab");
        CLI_ASSERT_GET("session_secret", "canary-cm-sess-90cd");

        _cleanup_free_ char *files = listing(), *original = read_in("docker-compose.yml"),
                                   *written = read_in("docker-compose.secretd.yml"), *env = read_in("web.secretd.env"),
                                   *old_env = read_in("web.env");
        cr_assert_str_eq(files, ".env docker-compose.secretd.yml docker-compose.yml web.env web.secretd.env ");
        cr_assert_str_eq(original, compose_yml, "the original changed");
        cr_assert_str_eq(old_env, "# web\nLOG=debug\nSESSION_SECRET='canary-cm-sess-90cd'\n");
        cr_assert_str_eq(env, "# web\nLOG=debug\n");
        for (size_t i = 0; values[i]; i++)
                cr_assert_null(strstr(written, values[i]), "the new file holds a value");
        cr_assert(strstr(written, "      - DB_PASSWORD_FILE=/run/secrets/db_password\n"), "%s", written);
        cr_assert(strstr(written, "    env_file: \"web.secretd.env\"\n"), "%s", written);
        cr_assert(strstr(written, "      secrets: \"db_password,session_secret\"\n      uid: \"0\"\n"), "%s", written);
        cr_assert(strstr(written, "      secrets: \"postgres_password\"\n      uid: \"999\"\n      gid: \"999\"\n"),
                  "%s", written);

        /* Again: the new file exists; nothing more is stored. */
        _cleanup_result_ struct cli_result again = { 0 }, hist = { 0 };
        CLI(&again, "compose", "migrate", "-f", file);
        CLI_ASSERT_STATUS(&again, 4);
        cr_assert(strstr(again.err, "docker-compose.secretd.yml exists already"), "%s", again.err);
        CLI(&hist, "history", "db_password", "--json");
        cr_assert_eq(strstr(hist.out, "\"version\": 2"), NULL, "stored again: %s", hist.out);
}

Test(compose_migrate, dry_run_stores_and_writes_nothing) {
        write_project();
        _cleanup_free_ char *file = path_in("docker-compose.yml");
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "compose", "migrate", "-f", file, "--dry-run", "--skip", "SESSION_SECRET", "--uid", "70");
        CLI_ASSERT_STATUS(&r, 0);
        CLI_ASSERT_NO_VALUE(&r, values);
        cr_assert(strstr(r.out, "Would store 2 secret(s)"), "%s", r.out);
        cr_assert(strstr(r.out, "+      uid: \"70\"\n"), "%s", r.out);
        cr_assert_null(strstr(r.out, "session_secret"), "--skip: %s", r.out);
        _cleanup_free_ char *files = listing();
        cr_assert_str_eq(files, ".env docker-compose.yml web.env ");
        CLI_ASSERT_NOTHING_STORED();
}

/* Each refusal: a located message, exit status, nothing stored, no file. */
static void assert_refused(const char *yaml, int status, const char *expect) {
        write_in("docker-compose.yml", yaml);
        _cleanup_free_ char *file = path_in("docker-compose.yml"), *before = listing();
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "compose", "migrate", "-f", file);
        CLI_ASSERT_STATUS(&r, status);
        cr_assert(strstr(r.err, expect), "'%s' lacks '%s'", r.err, expect);
        cr_assert_eq(r.out_len, 0, "printed: %s", r.out);
        const char *const canary[] = { "canary-cm-bad", NULL };
        CLI_ASSERT_NO_VALUE(&r, canary);
        _cleanup_free_ char *after = listing();
        cr_assert_str_eq(after, before, "a file was left behind");
        CLI_ASSERT_NOTHING_STORED();
}

Test(compose_migrate, anchors_and_malformed_files_leave_nothing) {
        assert_refused("x-env: &env\n  DB_PASSWORD: canary-cm-bad\nservices:\n  a:\n    environment: *env\n", 2,
                       "docker-compose.yml:1:8: YAML anchors (&name) and aliases (*name) are not supported");
        assert_refused("services:\n  a:\n    environment:\n      DB_PASSWORD: canary-cm-bad\n     oops: [\n", 2,
                       "docker-compose.yml:5:6: not valid YAML");
        assert_refused("services:\n  a:\n    environment:\n      DB_PASSWORD: canary-cm-bad\n      DB_PASSWORD: x\n",
                       2, "docker-compose.yml:5:7: duplicate key 'DB_PASSWORD' (first on line 4)");
        assert_refused("services:\n  a:\n    image: canary-cm-bad\n    environment:\n      DB_PASSWORD: canary-cm-bad\n",
                       4, "would remain on line 3 of the new docker-compose.secretd.yml");
        assert_refused("services:\n  a:\n    environment:\n      HOST: x\n", 3, "nothing to migrate");
}

Test(compose_migrate, a_name_that_differs_only_in_case_from_the_store_is_refused) {
        _cleanup_result_ struct cli_result put = { 0 }, r = { 0 };
        CLI_IN(&put, "old", 3, "put", "DB_PASSWORD");
        CLI_ASSERT_STATUS(&put, 0);
        write_in("docker-compose.yml", "services:\n  a:\n    environment:\n      DB_PASSWORD: canary-cm-case\n");
        _cleanup_free_ char *file = path_in("docker-compose.yml"), *before = listing();
        CLI(&r, "compose", "migrate", "-f", file);
        CLI_ASSERT_STATUS(&r, 4);
        cr_assert(strstr(r.err, "secret 'db_password' would differ only in case from the stored secret "
                                "'DB_PASSWORD'"),
                  "%s", r.err);
        _cleanup_free_ char *after = listing();
        cr_assert_str_eq(after, before);
}
