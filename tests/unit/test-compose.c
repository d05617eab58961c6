/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* compose migrate's planner (src/compose.c), the rules it shares with
 * import-env (src/migrate.c) and the unified diff (src/textdiff.c). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/compose.h"
#include "secretd/migrate.h"
#include "textdiff.h"

static char dir[] = "/tmp/secretd-compose-XXXXXX";
static int project_fd = -1;

static void setup(void) {
        strcpy(dir, "/tmp/secretd-compose-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        project_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(project_fd, 0);
}

static void teardown(void) {
        char cmd[128];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void) system(cmd);
        close(project_fd);
}

TestSuite(compose, .init = setup, .fini = teardown);

static void write_file(const char *name, const char *text) {
        int fd = openat(project_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static struct sd_dotenv *dotenv_of(const char *text) {
        struct sd_dotenv *env = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_dotenv_parse(text, strlen(text), ".env", &env, &err), 0, "%s", err.message);
        return env;
}

struct run {
        const char *dotenv;
        const char *const *vars;
        size_t n_vars;
        const char *uid, *mode;
};

static int plan(const char *yaml, const struct run *run, struct sd_compose_plan **out, sd_error *err) {
        _cleanup_dotenv_ struct sd_dotenv *env = run && run->dotenv ? dotenv_of(run->dotenv) : NULL;
        struct sd_compose_options o = {
                .compose_name = "docker-compose.yml",
                .output_name = "docker-compose.secretd.yml",
                .dirfd = project_fd,
                .dotenv = env,
                .dotenv_name = env ? ".env" : NULL,
                .vars = run ? run->vars : NULL,
                .n_vars = run ? run->n_vars : 0,
                .uid = run ? run->uid : NULL,
                .mode = run ? run->mode : NULL,
                .driver = "secretd-test",
        };
        return sd_compose_plan(yaml, strlen(yaml), &o, out, err);
}

static struct sd_compose_plan *plan_ok(const char *yaml, const struct run *run) {
        struct sd_compose_plan *p = NULL;
        sd_error err = { 0 };
        cr_assert_eq(plan(yaml, run, &p, &err), 0, "refused: %s", err.message);
        return p;
}

static void plan_fails(const char *yaml, const struct run *run, int code, const char *expect) {
        struct sd_compose_plan *p = NULL;
        sd_error err = { 0 };
        int r = plan(yaml, run, &p, &err);
        cr_assert_eq(r, -code, "got %d (%s), expected %d for:\n%s", r, err.message, -code, yaml);
        cr_assert_null(p);
        cr_assert(strstr(err.message, expect), "message '%s' lacks '%s'", err.message, expect);
        cr_assert_null(strchr(err.message, '\n'));
}

static const struct sd_compose_secret *secret(const struct sd_compose_plan *p, const char *name) {
        for (size_t i = 0; i < p->n_secrets; i++)
                if (strcmp(p->secrets[i].name, name) == 0)
                        return &p->secrets[i];
        cr_assert_fail("no secret %s", name);
        return NULL;
}

static void assert_secret(const struct sd_compose_plan *p, const char *name, const char *var, const char *value) {
        const struct sd_compose_secret *s = secret(p, name);
        cr_assert_str_eq(s->variable, var);
        cr_assert_eq(s->value->len, strlen(value), "%s: %zu bytes", name, s->value->len);
        cr_assert(memcmp(s->value->data, value, s->value->len) == 0, "%s: wrong value", name);
}

Test(compose, map_form_keeps_everything_else) {
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "version: \"2.4\"\n"
                "# keep me\n"
                "services:\n"
                "  db:\n"
                "    image: postgres  # and me\n"
                "    environment:\n"
                "      POSTGRES_USER: app\n"
                "      POSTGRES_PASSWORD: 'canary-pw'\n"
                "      EMPTY_TOKEN:\n"
                "    volumes:\n"
                "    - data:/var/lib/postgresql/data\n"
                "volumes:\n"
                "  data: {}\n",
                &(struct run) { .dotenv = "EMPTY_TOKEN=canary-tok\n", .uid = "999" });
        cr_assert_eq(p->n_secrets, 2);
        assert_secret(p, "postgres_password", "POSTGRES_PASSWORD", "canary-pw");
        assert_secret(p, "empty_token", "EMPTY_TOKEN", "canary-tok");
        cr_assert_eq(p->n_files, 1);
        cr_assert_str_eq(p->files[0].name, "docker-compose.secretd.yml");
        cr_assert_str_eq(p->files[0].text,
                         "version: \"2.4\"\n"
                         "# keep me\n"
                         "services:\n"
                         "  db:\n"
                         "    image: postgres  # and me\n"
                         "    environment:\n"
                         "      POSTGRES_USER: app\n"
                         "      POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password\n"
                         "      EMPTY_TOKEN_FILE: /run/secrets/empty_token\n"
                         "    volumes:\n"
                         "    - data:/var/lib/postgresql/data\n"
                         "    - secretd_db:/run/secrets\n"
                         "volumes:\n"
                         "  data: {}\n"
                         "  secretd_db:\n"
                         "    driver: secretd-test\n"
                         "    driver_opts:\n"
                         "      secrets: \"empty_token,postgres_password\"\n"
                         "      uid: \"999\"\n"
                         "      mode: \"0400\"\n");
        cr_assert(strstr(p->diff, "-      POSTGRES_PASSWORD: <redacted>\n"), "%s", p->diff);
        cr_assert(strstr(p->diff, "-      EMPTY_TOKEN:\n"), "%s", p->diff);
        cr_assert_null(strstr(p->diff, "canary"), "the diff shows a value:\n%s", p->diff);
}

Test(compose, list_form_env_file_and_interpolation) {
        write_file("web.env", "# web\nLOG=debug\nexport SESSION_SECRET=\"canary-sess\"\n");
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n"
                "  web:\n"
                "    image: ${IMAGE:-busybox}\n"
                "    user: \"${APP_UID}:${APP_GID}\"\n"
                "    env_file:\n"
                "      - web.env\n"
                "    environment:\n"
                "      - HOST=db\n"
                "      - DB_PASSWORD=${DB_PASSWORD}\n"
                "      - \"API_KEY=k-$${LITERAL}-${SUFFIX:-x}\"\n",
                &(struct run) { .dotenv = "DB_PASSWORD=canary-db\nAPP_UID=1000\nAPP_GID=1001\n" });
        assert_secret(p, "db_password", "DB_PASSWORD", "canary-db");
        assert_secret(p, "api_key", "API_KEY", "k-${LITERAL}-x");
        assert_secret(p, "session_secret", "SESSION_SECRET", "canary-sess");
        cr_assert_eq(p->n_files, 2);
        cr_assert_str_eq(p->files[0].text,
                         "services:\n"
                         "  web:\n"
                         "    image: ${IMAGE:-busybox}\n"
                         "    user: \"${APP_UID}:${APP_GID}\"\n"
                         "    env_file:\n"
                         "      - \"web.secretd.env\"\n"
                         "    environment:\n"
                         "      - HOST=db\n"
                         "      - DB_PASSWORD_FILE=/run/secrets/db_password\n"
                         "      - API_KEY_FILE=/run/secrets/api_key\n"
                         "      - SESSION_SECRET_FILE=/run/secrets/session_secret\n"
                         "    volumes:\n"
                         "      - secretd_web:/run/secrets\n"
                         "volumes:\n"
                         "  secretd_web:\n"
                         "    driver: secretd-test\n"
                         "    driver_opts:\n"
                         "      secrets: \"api_key,db_password,session_secret\"\n"
                         "      uid: \"1000\"\n"
                         "      gid: \"1001\"\n"
                         "      mode: \"0400\"\n");
        cr_assert_str_eq(p->files[1].name, "web.secretd.env");
        cr_assert_str_eq(p->files[1].original_name, "web.env");
        cr_assert_str_eq(p->files[1].text, "# web\nLOG=debug\n");
        cr_assert_eq(p->files[1].mode, 0640, "the env file keeps its mode");
        /* A bare reference is only a name: the diff may show it. */
        cr_assert(strstr(p->diff, "-      - DB_PASSWORD=${DB_PASSWORD}\n"), "%s", p->diff);
        cr_assert(strstr(p->diff, "-      - API_KEY=<redacted>\n"), "%s", p->diff);
        cr_assert(strstr(p->diff, "-SESSION_SECRET=<redacted>\n"), "%s", p->diff);
        cr_assert_null(strstr(p->diff, "canary"), "the diff shows a value:\n%s", p->diff);
}

Test(compose, flow_styles_null_environment_and_new_keys) {
        write_file("a.env", "A_TOKEN=canary-a\n");
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n"
                "  one: {image: x, environment: {ONE_KEY: canary-1}, volumes: []}\n"
                "  two:\n"
                "    image: x\n"
                "    env_file: a.env\n"
                "    environment:\n"
                "  three:\n"
                "    image: x\n"
                "    env_file: a.env\n"
                "    environment: [B=1,]\n"
                "volumes: {}\n",
                &(struct run) { .mode = "0440" });
        cr_assert_str_eq(p->files[0].text,
                         "services:\n"
                         "  one: {image: x, environment: {ONE_KEY_FILE: /run/secrets/one_key}, volumes: "
                         "[secretd_one:/run/secrets]}\n"
                         "  two:\n"
                         "    image: x\n"
                         "    env_file: \"a.secretd.env\"\n"
                         "    environment:\n"
                         "      A_TOKEN_FILE: /run/secrets/a_token\n"
                         "    volumes:\n"
                         "      - secretd_two:/run/secrets\n"
                         "  three:\n"
                         "    image: x\n"
                         "    env_file: \"a.secretd.env\"\n"
                         "    environment: [B=1, A_TOKEN_FILE=/run/secrets/a_token]\n"
                         "    volumes:\n"
                         "      - secretd_three:/run/secrets\n"
                         "volumes: {secretd_one: {driver: secretd-test, driver_opts: {secrets: \"one_key\", uid: "
                         "\"0\", mode: \"0440\"}}, secretd_two: {driver: secretd-test, driver_opts: {secrets: "
                         "\"a_token\", uid: \"0\", mode: \"0440\"}}, secretd_three: {driver: secretd-test, "
                         "driver_opts: {secrets: \"a_token\", uid: \"0\", mode: \"0440\"}}}\n");
        cr_assert_eq(p->n_files, 2, "a.env is rewritten once for both services");
        cr_assert_str_eq(p->files[1].text, "");
}

Test(compose, flow_mapping_with_a_bare_key) {
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n  a: {image: x, environment: {A_KEY: canary-a}, volumes}\n  b: {environment: {B_KEY: canary-b}, volumes: ~}\n",
                NULL);
        cr_assert(strstr(p->files[0].text,
                         "  a: {image: x, environment: {A_KEY_FILE: /run/secrets/a_key}, volumes: "
                         "[secretd_a:/run/secrets]}\n"
                         "  b: {environment: {B_KEY_FILE: /run/secrets/b_key}, volumes: [secretd_b:/run/secrets]}\n"),
                  "%s", p->files[0].text);
}

Test(compose, block_scalars_and_quoted_keys) {
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n"
                "  app:\n"
                "    environment:\n"
                "      \"TLS_KEY\": |\n"
                "        canary-line-1\n"
                "        canary-line-2\n"
                "      OTHER: x\n",
                NULL);
        assert_secret(p, "tls_key", "TLS_KEY", "canary-line-1\ncanary-line-2\n");
        cr_assert(strstr(p->files[0].text, "      TLS_KEY_FILE: /run/secrets/tls_key\n      OTHER: x\n"), "%s",
                  p->files[0].text);
        cr_assert_null(strstr(p->diff, "canary"), "the diff shows a value:\n%s", p->diff);
}

Test(compose, one_secret_per_name_across_services) {
        _cleanup_compose_plan_ struct sd_compose_plan *same = plan_ok(
                "services:\n"
                "  a: {environment: {DB_PASSWORD: canary-same}}\n"
                "  b: {environment: [DB_PASSWORD=canary-same]}\n",
                NULL);
        cr_assert_eq(same->n_secrets, 1);
        plan_fails("services:\n"
                   "  a: {environment: {DB_PASSWORD: canary-1}}\n"
                   "  b: {environment: {DB_PASSWORD: canary-2}}\n",
                   NULL, EEXIST, "DB_PASSWORD has different values in service 'a', docker-compose.yml:2 and in "
                                 "service 'b', docker-compose.yml:3");
        plan_fails("services:\n"
                   "  a: {environment: {DB_PASSWORD: x}}\n"
                   "  b: {environment: {db_password: x}}\n",
                   NULL, EEXIST, "would both become the secret 'db_password'");
}

Test(compose, refusals_name_the_place_never_the_value) {
        plan_fails("x: &anchor {A: 1}\nservices:\n  a: {environment: *anchor}\n", NULL, EINVAL,
                   "docker-compose.yml:1:4: YAML anchors (&name) and aliases (*name) are not supported");
        plan_fails("services:\n  a:\n    image: [canary\n", NULL, EINVAL, "docker-compose.yml:4:1: not valid YAML");
        plan_fails("services:\n  a: {environment: {A_KEY: x, A_KEY: canary}}\n", NULL, EINVAL,
                   "docker-compose.yml:2:31: duplicate key 'A_KEY' (first on line 2)");
        plan_fails("services:\n  a: {environment: {A_KEY: 0123}}\n", NULL, EINVAL,
                   "the value of A_KEY is an unquoted YAML number or boolean");
        plan_fails("services:\n  a: {environment: {A_KEY: !!binary Y2FuYXJ5}}\n", NULL, EINVAL,
                   "YAML tags other than !!str");
        plan_fails("services:\n  a: {environment: ['A_KEY=${UNSET}']}\n", &(struct run) { .dotenv = "X=1\n" }, EINVAL,
                   "${UNSET} is not set in .env");
        plan_fails("services:\n  a: {environment: [A_KEY]}\n", NULL, EINVAL,
                   "A_KEY (service 'a', docker-compose.yml:2) has no value");
        plan_fails("services:\n  a: {environment: ['A_KEY=${X}']}\n", &(struct run) { .dotenv = "X=${Y}\n" }, EINVAL,
                   ".env sets X to a value holding a reference");
        plan_fails("services:\n  a: {environment: [A_KEY=$1]}\n", NULL, EINVAL, "invalid interpolation");
        plan_fails("services:\n  a: {environment: {A_KEY: \"\"}}\n", NULL, EINVAL, "A_KEY (service 'a', "
                                                                              "docker-compose.yml:2) is empty");
        plan_fails("services:\n  a: {environment: {A_KEY: x, A_KEY_FILE: /f}}\n", NULL, EEXIST,
                   "sets both A_KEY and A_KEY_FILE");
        plan_fails("services:\n  a: {environment: {A_KEY: x}, volumes: ['s:/run/secrets:ro']}\n", NULL, EINVAL,
                   "already mounts something at /run/secrets");
        plan_fails("services:\n  a: {environment: {A_KEY: x}, secrets: [s]}\n", NULL, EINVAL, "uses compose secrets");
        plan_fails("services:\n  a: {environment: {A_KEY: x}, user: postgres}\n", NULL, EINVAL,
                   "runs as user 'postgres'");
        plan_fails("services:\n  a: {image: canary-v, environment: {A_KEY: canary-v}}\n", NULL, EEXIST,
                   "the value of A_KEY (service 'a', docker-compose.yml:2) would remain on line 2");
        plan_fails("services:\n  a: {environment: {HOST: x}}\n", NULL, ENOENT, "no service sets a variable");
        plan_fails("web: {image: x}\n", NULL, EINVAL, "no 'services:'");
        plan_fails("services: {}\n---\nx: 1\n", NULL, EINVAL, "docker-compose.yml:2:1: a second YAML document");
        plan_fails("", NULL, EINVAL, "empty");
        plan_fails("services:\n  a: {environment: {A_KEY: x}}\xe2\x80\xa8\n", NULL, EINVAL,
                   "docker-compose.yml:2: a line break other than");
        plan_fails("services:\r  a: {environment: {A_KEY: x}}\r", NULL, EINVAL, "docker-compose.yml:1: a line break");
        plan_fails("services:\n  a: {env_file: missing.env}\n", NULL, ENOENT, "env_file missing.env: cannot open");
        write_file("bad.env", "A_KEY=\"canary\n");
        plan_fails("services:\n  a: {env_file: bad.env}\n", NULL, EINVAL, "bad.env:1: the value of A_KEY has no closing");
}

Test(compose, var_adds_and_uid_overrides_user) {
        const char *vars[] = { "DSN" };
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n  a: {user: \"1000\", environment: {DSN: canary-dsn, HOST: h}}\n",
                &(struct run) { .vars = vars, .n_vars = 1, .uid = "70" });
        assert_secret(p, "dsn", "DSN", "canary-dsn");
        cr_assert(strstr(p->files[0].text, "uid: \"70\""), "%s", p->files[0].text);
}

Test(compose, other_references_are_warned_about) {
        _cleanup_compose_plan_ struct sd_compose_plan *p = plan_ok(
                "services:\n"
                "  a:\n"
                "    environment: [\"DB_PASSWORD=${DB_PASSWORD}\"]\n"
                "    command: [\"sh\", \"-c\", \"check ${DB_PASSWORD} $$DB_PASSWORD\"]\n",
                &(struct run) { .dotenv = "DB_PASSWORD=canary\n" });
        cr_assert_eq(p->n_warnings, 1);
        cr_assert(strstr(p->warnings[0], "docker-compose.yml:4: still refers to $DB_PASSWORD"), "%s", p->warnings[0]);
}

Test(compose, options_are_checked) {
        plan_fails("services: {}\n", &(struct run) { .uid = "x" }, EINVAL, "--uid 'x' is not a number");
        plan_fails("services: {}\n", &(struct run) { .mode = "0200" }, EINVAL, "--mode '0200'");
        plan_fails("services: {}\n", &(struct run) { .mode = "999" }, EINVAL, "--mode '999'");
}

Test(compose, new_names) {
        const char *cases[][2] = {
                { "docker-compose.yml", "docker-compose.secretd.yml" },
                { "app.env", "app.secretd.env" },
                { ".env", ".env.secretd" },
                { "conf/web.env", "conf/web.secretd.env" },
                { "a.b/env", "a.b/env.secretd" },
        };
        for (size_t i = 0; i < 5; i++) {
                _cleanup_free_ char *n = sd_compose_new_name(cases[i][0]);
                cr_assert_str_eq(n, cases[i][1]);
        }
}

Test(migrate, secret_looking_names) {
        const char *yes[] = { "DB_PASSWORD", "MYSQL_ROOT_PASSWORD", "API_KEY", "GITHUB_TOKEN", "SECRET_KEY_BASE",
                              "AWS_SECRET_ACCESS_KEY", "smtp_pass", "APIKEY", "GPG_PASSPHRASE", "X_CREDENTIALS" };
        const char *no[] = { "DB_PASSWORD_FILE", "SECRET_FILE", "HOST", "POSTGRES_USER", "KEYBOARD", "TOKENS",
                             "POSTGRES_HOST_AUTH_METHOD", "PASSWORD_MIN" };
        for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
                cr_assert(sd_migrate_name_looks_secret(yes[i]), "%s", yes[i]);
        for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
                cr_assert_not(sd_migrate_name_looks_secret(no[i]), "%s", no[i]);
}

Test(migrate, secret_names_and_case) {
        char out[SD_NAME_MAX + 1];
        sd_error err = { 0 };
        cr_assert_eq(sd_migrate_secret_name("DB_PASSWORD", true, out, &err), 0);
        cr_assert_str_eq(out, "db_password");
        cr_assert_eq(sd_migrate_secret_name("DB_PASSWORD", false, out, &err), 0);
        cr_assert_str_eq(out, "DB_PASSWORD");
        cr_assert_eq(sd_migrate_secret_name("_X", true, out, &err), -EINVAL);
        cr_assert(strstr(err.message, "variable _X"), "%s", err.message);

        const char *twins[] = { "db_password", "api", "DB_Password" };
        cr_assert_eq(sd_migrate_check_case(NULL, twins, NULL, 3, &err), -EEXIST);
        cr_assert(strstr(err.message, "'db_password' and 'DB_Password' would differ only in case"), "%s",
                  err.message);
        const char *fine[] = { "db_password", "db_password", "api" };
        cr_assert_eq(sd_migrate_check_case(NULL, fine, NULL, 3, &err), 0);
}

Test(textdiff, unified_hunks) {
        const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n";
        const char *b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\n12\n13";
        char *out = NULL;
        size_t len = 0;
        sd_error err = { 0 };
        cr_assert_eq(sd_text_diff("a", a, strlen(a), "b", b, strlen(b), 3, &out, &len, &err), 0);
        cr_assert_str_eq(out, "--- a\n+++ b\n"
                              "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
                              "@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n\\ No newline at end of file\n");
        cr_assert_eq(len, strlen(out));
        free(out);
        out = NULL;
        cr_assert_eq(sd_text_diff("a", a, strlen(a), "b", a, strlen(a), 3, &out, &len, &err), 0);
        cr_assert_null(out, "identical texts give no diff");
        cr_assert_eq(sd_text_diff("a", "", 0, "b", "x\n", 2, 3, &out, &len, &err), 0);
        cr_assert_str_eq(out, "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n");
        free(out);
}
