/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What secretctl prints, as a user or a script sees it: --quiet leaves
 * standard output empty and still does the work; every listing prints JSON
 * with --json, policy entries in one shape; an identity is shown by one key
 * id everywhere; add and rm of each policy list answer in the same shape;
 * a key of the wrong kind is named with its article. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "secretd/keys.h"

TestSuite(output, .init = clitest_setup_with_realm, .fini = clitest_teardown);

static void person(const char *who, char line[512]) {
        cr_assert_eq(clitest_person(who, line), 0, "keygen for %s", who);
}

/* The key id at the end of a `whoami` line ("sdw1:...  key id HEX"). */
static void key_id_of(const char *line, char id[SD_KEY_ID_CHARS + 1]) {
        const char *p = strstr(line, "key id ");
        cr_assert_not_null(p, "%s", line);
        (void) snprintf(id, SD_KEY_ID_CHARS + 1, "%s", p + 7);
}

static void join_as(const char *who) {
        _cleanup_result_ struct cli_result pin = { 0 }, join = { 0 };
        CLI(&pin, "realm", "pin");
        CLI_ASSERT_STATUS(&pin, 0);
        pin.out[strcspn(pin.out, "\n")] = '\0';
        CLI_AS(&join, who, NULL, "realm", "join", pin.out);
        CLI_ASSERT_STATUS(&join, 0);
}

static json_t *json_of(const struct cli_result *r) {
        json_error_t e;
        json_t *j = json_loads(r->out, 0, &e);
        cr_assert_not_null(j, "'%s' --json is not JSON (%s): %s", r->cmdline, e.text, r->out);
        return j;
}

/* Every 16-hex-digit word of text is id: the text names no other key. */
static void assert_only_key_id(const char *text, const char *id) {
        for (const char *p = text; *p; p++) {
                if (!isxdigit((unsigned char) *p) || (p > text && isalnum((unsigned char) p[-1])))
                        continue;
                size_t n = 0;
                while (isxdigit((unsigned char) p[n]))
                        n++;
                if (n == SD_KEY_ID_CHARS && !isalnum((unsigned char) p[n]))
                        cr_assert(strncmp(p, id, n) == 0, "'%.16s' is shown, not the key id %s: %s", p, id, text);
                p += n ? n - 1 : 0;
        }
}

static void assert_quiet(const struct cli_result *r) {
        CLI_ASSERT_STATUS(r, 0);
        cr_assert_eq(r->out_len, 0, "'%s' printed on standard output: %s", r->cmdline, r->out);
        cr_assert_eq(r->err_len, 0, "'%s' printed on standard error: %s", r->cmdline, r->err);
}

Test(output, quiet_prints_nothing_and_does_the_work) {
        char bob[512], archive[4200], store2[4200], env_file[4200], identity[4200], store3[4200];
        person("bob", bob);
        (void) snprintf(archive, sizeof(archive), "%s/store.archive", cli.root);
        (void) snprintf(store2, sizeof(store2), "file://%s/store2", cli.root);
        (void) snprintf(store3, sizeof(store3), "file://%s/store3", cli.root);
        (void) snprintf(env_file, sizeof(env_file), "%s/app.env", cli.root);
        (void) snprintf(identity, sizeof(identity), "%s/ci-identity", cli.root);
        cr_assert_eq(clitest_write_file(env_file, "API_TOKEN=t0k3n\n", 16), 0);

        _cleanup_result_ struct cli_result loud = { 0 }, put = { 0 }, rm = { 0 }, wadd = { 0 }, wrm = { 0 },
                                           radd = { 0 }, rrm = { 0 }, aadd = { 0 }, arm = { 0 }, reseal = { 0 },
                                           exp = { 0 }, imp = { 0 }, ienv = { 0 }, keygen = { 0 }, whoami = { 0 },
                                           init = { 0 }, join = { 0 }, pin = { 0 }, prop = { 0 }, discard = { 0 },
                                           show = { 0 }, bad = { 0 };
        CLI_IN(&loud, "v1", 2, "put", "db_password");
        CLI_ASSERT_STATUS(&loud, 0);
        cr_assert_str_eq(loud.out, "db_password: version 1\n");

        CLI_IN(&put, "v2", 2, "put", "db_password", "--quiet");
        assert_quiet(&put);
        CLI_ASSERT_GET("db_password", "v2");
        CLI(&rm, "rm", "-q", "db_password");
        assert_quiet(&rm);
        CLI(&wadd, "writer", "add", "bob", bob, "--pattern", "b*", "-q");
        assert_quiet(&wadd);
        CLI(&wrm, "writer", "rm", "bob", "--quiet");
        assert_quiet(&wrm);
        CLI(&radd, "recipient", "add", "host2", cli.agent_pub, "--quiet");
        CLI_ASSERT_STATUS(&radd, 4);  /* the same key twice: the error still shows */
        cr_assert_eq(radd.out_len, 0);
        cr_assert(radd.err_len > 0);
        CLI(&aadd, "admin", "add", "bob", bob, "--quiet");
        assert_quiet(&aadd);
        CLI(&arm, "admin", "rm", "bob", "--quiet");
        assert_quiet(&arm);
        CLI(&rrm, "recipient", "rm", "host", "--quiet");
        assert_quiet(&rrm);
        CLI(&show, "realm", "show", "--json");
        json_t *j = json_of(&show);
        cr_assert_eq(json_array_size(json_object_get(j, "writers")), 1, "%s", show.out);
        cr_assert_eq(json_array_size(json_object_get(j, "admins")), 1, "%s", show.out);
        cr_assert_eq(json_array_size(json_object_get(j, "recipients")), 0, "%s", show.out);
        json_decref(j);

        CLI(&reseal, "reseal", "--all", "--quiet");
        assert_quiet(&reseal);
        CLI(&exp, "export", archive, "--quiet");
        assert_quiet(&exp);
        CLI(&imp, "--store", store2, "import", archive, "--quiet");
        assert_quiet(&imp);
        CLI(&ienv, "import-env", env_file, "--quiet");
        CLI_ASSERT_STATUS(&ienv, 9);  /* no recipient left: refused, on standard error */
        cr_assert_eq(ienv.out_len, 0);
        cr_assert(strstr(ienv.err, "no host could open"), "%s", ienv.err);

        CLI(&keygen, "--identity", identity, "keygen", "--quiet");
        assert_quiet(&keygen);
        CLI(&whoami, "--identity", identity, "whoami");
        CLI_ASSERT_STATUS(&whoami, 0);
        cr_assert(strncmp(whoami.out, "sdw1:", 5) == 0, "%s", whoami.out);

        CLI(&init, "--store", store3, "realm", "init", "--quiet");
        assert_quiet(&init);
        CLI(&pin, "--store", store3, "realm", "pin");
        CLI_ASSERT_STATUS(&pin, 0);
        pin.out[strcspn(pin.out, "\n")] = '\0';
        CLI_AS(&join, "bob", NULL, "--store", store3, "realm", "join", pin.out, "--quiet");
        assert_quiet(&join);

        /* A proposal (threshold 2) dropped quietly. */
        CLI(&prop, "--store", store3, "admin", "add", "bob", bob, "--threshold", "2");
        CLI_ASSERT_STATUS(&prop, 0);
        cr_assert(strstr(prop.out, "is proposed"), "%s", prop.out);
        CLI(&discard, "--store", store3, "realm", "sign", "--discard", "--quiet");
        assert_quiet(&discard);

        CLI_IN(&bad, "v", 1, "put", "bad name", "--quiet");
        CLI_ASSERT_STATUS(&bad, 2);
        cr_assert_eq(bad.out_len, 0);
        cr_assert(strstr(bad.err, "secretctl: "), "an error is still reported: %s", bad.err);
}

Test(output, every_listing_prints_json_and_entries_have_one_shape) {
        _cleanup_result_ struct cli_result put = { 0 }, ls = { 0 }, hist = { 0 }, wls = { 0 }, rls = { 0 }, als = { 0 },
                                           show = { 0 };
        CLI_IN(&put, "v", 1, "put", "a");
        CLI_ASSERT_STATUS(&put, 0);
        CLI(&ls, "ls", "--json");
        CLI(&hist, "history", "a", "--json");
        CLI(&wls, "writer", "ls", "--json");
        CLI(&rls, "recipient", "ls", "--json");
        CLI(&als, "admin", "ls", "--json");
        CLI(&show, "realm", "show", "--json");
        struct cli_result *all[] = { &ls, &hist, &wls, &rls, &als, &show };
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                CLI_ASSERT_STATUS(all[i], 0);
                json_decref(json_of(all[i]));
        }
        json_t *s = json_of(&show), *w = json_of(&wls), *r = json_of(&rls), *a = json_of(&als);
        cr_assert(json_equal(json_object_get(s, "writers"), w), "realm show's writers differ from writer ls:\n%s\n%s",
                  show.out, wls.out);
        cr_assert(json_equal(json_object_get(s, "recipients"), r), "%s\n%s", show.out, rls.out);
        cr_assert(json_equal(json_object_get(s, "admins"), a), "%s\n%s", show.out, als.out);
        const char *keys[] = { "name", "key", "key_id", "patterns" };
        json_t *entry = json_array_get(r, 0);
        cr_assert_eq(json_object_size(entry), 4, "%s", rls.out);
        for (size_t k = 0; k < 4; k++)
                cr_assert_not_null(json_object_get(entry, keys[k]), "recipient ls --json lacks %s", keys[k]);
        json_decref(s);
        json_decref(w);
        json_decref(r);
        json_decref(a);
}

Test(output, an_identity_has_one_key_id_everywhere) {
        char bob[512], id[SD_KEY_ID_CHARS + 1];
        person("bob", bob);
        key_id_of(bob, id);
        _cleanup_result_ struct cli_result early = { 0 }, wadd = { 0 }, get = { 0 }, bput = { 0 }, ls = { 0 },
                                           hist = { 0 }, wls = { 0 }, aadd = { 0 }, late = { 0 }, arm = { 0 },
                                           dry = { 0 }, whoami = { 0 };
        CLI_IN(&early, "v", 1, "put", "early");
        CLI_ASSERT_STATUS(&early, 0);
        CLI(&wadd, "writer", "add", "bob", bob, "--pattern", "b*");
        CLI_ASSERT_STATUS(&wadd, 0);
        char line[128];
        (void) snprintf(line, sizeof(line), "  + writer bob (%s) patterns b*\n", id);
        cr_assert(strstr(wadd.out, line), "%s", wadd.out);
        join_as("bob");
        CLI_AS(&whoami, "bob", NULL, "whoami");
        cr_assert(strncmp(whoami.out, bob, strlen(bob)) == 0 && strcmp(whoami.out + strlen(bob), "\n") == 0, "%s",
                  whoami.out);

        /* Not sealed to bob: the message names him by the same id. */
        CLI_AS(&get, "bob", NULL, "get", "early");
        CLI_ASSERT_STATUS(&get, 6);
        cr_assert(strstr(get.err, id), "%s", get.err);
        assert_only_key_id(get.err, id);

        CLI_AS(&bput, "bob", "b", "put", "b1");
        CLI_ASSERT_STATUS(&bput, 0);
        CLI(&ls, "ls", "--json");
        json_t *l = json_of(&ls);
        size_t i;
        json_t *e;
        json_array_foreach(l, i, e) {
                if (strcmp(json_string_value(json_object_get(e, "name")), "b1") == 0)
                        cr_assert_str_eq(json_string_value(json_object_get(e, "writer")), id);
        }
        json_decref(l);
        CLI(&hist, "history", "b1");
        cr_assert(strstr(hist.out, id), "%s", hist.out);
        CLI(&wls, "writer", "ls");
        cr_assert(strstr(wls.out, id), "%s", wls.out);

        /* An admin receives every put; once removed, reseal names him by
         * the same id, not by his box key's. */
        CLI(&aadd, "admin", "add", "bob", bob);
        CLI_ASSERT_STATUS(&aadd, 0);
        CLI_IN(&late, "v", 1, "put", "late");
        CLI_ASSERT_STATUS(&late, 0);
        CLI(&arm, "admin", "rm", "bob");
        CLI_ASSERT_STATUS(&arm, 0);
        CLI(&dry, "reseal", "late", "--dry-run");
        CLI_ASSERT_STATUS(&dry, 0);
        (void) snprintf(line, sizeof(line), "- writer bob (%s): no longer an admin", id);
        cr_assert(strstr(dry.out, line), "%s", dry.out);
        assert_only_key_id(dry.out, id);
}

/* "policy vN is in force:\n  + NOUN NAME (ID)..." and the same with "-". */
static void assert_change(const struct cli_result *r, char sign, const char *noun, const char *name, char id[17]) {
        CLI_ASSERT_STATUS(r, 0);
        const char *nl = strchr(r->out, '\n');
        cr_assert(strncmp(r->out, "policy v", 8) == 0 && nl && nl - r->out > 13 &&
                          strncmp(nl - 13, " is in force:", 13) == 0,
                  "'%s': %s", r->cmdline, r->out);
        char head[128];
        int n = snprintf(head, sizeof(head), "  %c %s %s (", sign, noun, name);
        cr_assert(strncmp(nl + 1, head, (size_t) n) == 0, "'%s': %s", r->cmdline, r->out);
        const char *got = nl + 1 + n;
        if (id[0])
                cr_assert(strncmp(got, id, 16) == 0 && got[16] == ')', "'%s' names another key id: %s", r->cmdline,
                          r->out);
        else
                (void) snprintf(id, 17, "%.16s", got);
        /* Anything after the change lines is a note. */
        for (const char *p = strchr(nl + 1, '\n') + 1; *p; p = strchr(p, '\n') + 1)
                cr_assert(strncmp(p, "note: ", 6) == 0, "'%s': %s", r->cmdline, r->out);
}

Test(output, add_and_rm_answer_in_the_same_shape) {
        char bob[512];
        person("bob", bob);
        _cleanup_agent_key_ struct sd_agent_key *host2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&host2, NULL), 0);
        _cleanup_free_ char *host2_pub = NULL;
        cr_assert_eq(sd_agent_pub_format(host2->box_pk, &host2_pub), 0);
        const struct {
                const char *noun, *key;
        } lists[] = { { "writer", bob }, { "recipient", host2_pub }, { "admin", bob } };
        for (size_t i = 0; i < 3; i++) {
                struct cli_result add, rm;
                char id[17] = "";
                cr_assert_eq(cli_run(&add, NULL, lists[i].noun, "add", "x1", lists[i].key, NULL), 0);
                assert_change(&add, '+', lists[i].noun, "x1", id);
                cr_assert_eq(cli_run(&rm, NULL, lists[i].noun, "rm", "x1", NULL), 0);
                assert_change(&rm, '-', lists[i].noun, "x1", id);
                cli_result_free(&add);
                cli_result_free(&rm);
        }
}

Test(output, a_key_of_the_wrong_kind_is_named_with_its_article) {
        char bob[512];
        person("bob", bob);
        _cleanup_result_ struct cli_result r = { 0 }, w = { 0 };
        CLI(&r, "recipient", "add", "h", bob);
        CLI_ASSERT_STATUS(&r, 2);
        cr_assert(strstr(r.err, "this is a writer public key, not an agent public key"), "%s", r.err);
        CLI(&w, "writer", "add", "w", cli.agent_pub);
        CLI_ASSERT_STATUS(&w, 2);
        cr_assert(strstr(w.err, "this is an agent public key, not a writer public key"), "%s", w.err);
}
