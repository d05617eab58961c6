/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The realm through the CLI, with several people: each has a configuration
 * directory of their own (their identity and realm records), as on their
 * own machines, and they share the store. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clitest.h"
#include "secretd/client.h"
#include "../realm-fixture.h"

TestSuite(realm, .init = clitest_setup_with_identity, .fini = clitest_teardown);

static void person(const char *who, char line[512]) {
        cr_assert_eq(clitest_person(who, line), 0, "keygen for %s", who);
}

/* The pin line `realm pin` prints for you. */
static void pin_line(char out[2048]) {
        _cleanup_result_ struct cli_result r = { 0 };
        CLI(&r, "realm", "pin");
        CLI_ASSERT_STATUS(&r, 0);
        (void) snprintf(out, 2048, "%.*s", (int) strcspn(r.out, "\n"), r.out);
}

static void make_realm_with_host(void) {
        _cleanup_result_ struct cli_result init = { 0 }, add = { 0 };
        CLI(&init, "realm", "init", "--name", "alice");
        CLI_ASSERT_STATUS(&init, 0);
        cr_assert_eq(sd_agent_key_generate(&cli.agent, NULL), 0);
        cr_assert_eq(sd_agent_pub_format(cli.agent->box_pk, &cli.agent_pub), 0);
        CLI(&add, "recipient", "add", "host", cli.agent_pub);
        CLI_ASSERT_STATUS(&add, 0);
}

static void join(const char *who) {
        char pin[2048];
        pin_line(pin);
        _cleanup_result_ struct cli_result r = { 0 };
        CLI_AS(&r, who, NULL, "realm", "join", pin);
        CLI_ASSERT_STATUS(&r, 0);
        cr_assert(strstr(r.out, "joined realm "), "%s", r.out);
}

static char *policy_file(uint64_t v) {
        char *path;
        cr_assert_geq(asprintf(&path, "%s/policy/%020llu.env", cli.store_dir, (unsigned long long) v), 0);
        return path;
}

Test(realm, a_missing_store_is_created_by_recipient_add_with_its_realm) {
        _cleanup_result_ struct cli_result ls = { 0 }, get = { 0 }, put = { 0 }, add = { 0 }, put2 = { 0 }, show = { 0 };
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 3);
        char expect[4200];
        (void) snprintf(expect, sizeof(expect), "store %s does not exist", cli.store_url);
        cr_assert(strstr(ls.err, expect), "%s", ls.err);
        CLI(&get, "get", "x");
        CLI_ASSERT_STATUS(&get, 3);
        CLI_IN(&put, "v", 1, "put", "x");
        CLI_ASSERT_STATUS(&put, 3);
        struct stat st;
        cr_assert_neq(stat(cli.store_dir, &st), 0, "a verb before recipient add created the store");

        _cleanup_agent_key_ struct sd_agent_key *agent = NULL;
        cr_assert_eq(sd_agent_key_generate(&agent, NULL), 0);
        _cleanup_free_ char *pub = NULL;
        cr_assert_eq(sd_agent_pub_format(agent->box_pk, &pub), 0);
        CLI(&add, "recipient", "add", "host", pub);
        CLI_ASSERT_STATUS(&add, 0);
        cr_assert(strstr(add.out, " created in ") && strstr(add.out, "sudo secretd join sdr1:") &&
                          strstr(add.out, "policy v2 is in force:\n  + recipient host ("),
                  "%s", add.out);
        cr_assert_eq(add.err_len, 0, "%s", add.err);
        cr_assert_eq(stat(cli.store_dir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700, "store created with mode %o", st.st_mode & 07777);
        CLI_IN(&put2, "v", 1, "put", "x");
        CLI_ASSERT_STATUS(&put2, 0);
        CLI(&show, "realm", "show");
        cr_assert(strstr(show.out, "policy     v2") && strstr(show.out, "host"), "%s", show.out);
}

Test(realm, init_show_pin_and_join) {
        _cleanup_result_ struct cli_result init = { 0 }, again = { 0 }, show = { 0 }, showj = { 0 }, bad = { 0 },
                                           ok = { 0 }, other = { 0 }, foreign = { 0 };
        CLI(&init, "realm", "init", "--name", "alice");
        CLI_ASSERT_STATUS(&init, 0);
        cr_assert(strstr(init.out, "policy v1, admin 'alice' (you), threshold 1"), "%s", init.out);
        char pin[2048], join[4200];
        pin_line(pin);
        snprintf(join, sizeof(join), "  sudo secretd join %s\n  secretctl realm join %s\n", pin, pin);
        cr_assert(strstr(init.out, join), "init prints the lines to pin the realm: %s", init.out);
        CLI(&again, "realm", "init");
        CLI_ASSERT_STATUS(&again, 4);
        cr_assert(strstr(again.err, "already has a realm"), "%s", again.err);

        CLI(&show, "realm", "show");
        CLI_ASSERT_STATUS(&show, 0);
        cr_assert(strstr(show.out, "policy     v1") && strstr(show.out, "threshold  1 of 1") && strstr(show.out, "alice"),
                  "%s", show.out);
        CLI(&showj, "realm", "show", "--json");
        json_t *j = json_loads(showj.out, 0, NULL);
        cr_assert_not_null(j, "%s", showj.out);
        cr_assert_eq(json_integer_value(json_object_get(j, "version")), 1);
        cr_assert(json_is_null(json_object_get(j, "proposal")));
        cr_assert_eq(strncmp(json_string_value(json_object_get(j, "realm")), strchr(init.out, ' ') + 1, 16), 0);
        json_decref(j);

        /* Bob joins with the pin; a malformed one is refused. */
        char bob[512];
        person("bob", bob);
        CLI_AS(&bad, "bob", NULL, "realm", "join", "sdr1:nope");
        CLI_ASSERT_STATUS(&bad, 2);
        CLI_AS(&ok, "bob", NULL, "realm", "join", pin);
        CLI_ASSERT_STATUS(&ok, 0);
        cr_assert(strstr(ok.out, "at policy v1"), "%s", ok.out);

        /* A pin of another realm does not verify this store: refused,
         * naming both realms. */
        char carol[512];
        person("carol", carol);
        char other_store[4200];
        (void) snprintf(other_store, sizeof(other_store), "file://%s/other-store", cli.root);
        CLI_AS(&other, "carol", NULL, "--store", other_store, "realm", "init");
        CLI_ASSERT_STATUS(&other, 0);
        char other_pin[2048];
        (void) snprintf(other_pin, sizeof(other_pin), "%s", strstr(other.out, "sdr1:"));
        other_pin[strcspn(other_pin, "\n")] = '\0';
        CLI_AS(&foreign, "bob", NULL, "realm", "join", other_pin);
        CLI_ASSERT_STATUS(&foreign, 5);
        cr_assert(strstr(foreign.err, "belongs to realm") && strstr(foreign.err, "you pin realm"), "%s", foreign.err);
}

Test(realm, a_writer_not_yet_added_fails_at_put_time_then_writes_once_added) {
        make_realm_with_host();
        char bob[512];
        person("bob", bob);
        join("bob");
        _cleanup_result_ struct cli_result put = { 0 }, ls = { 0 }, add = { 0 }, put2 = { 0 };
        CLI_AS(&put, "bob", "from bob", "put", "db_password");
        CLI_ASSERT_STATUS(&put, 7);
        cr_assert(strstr(put.err, "are not a writer in policy v2") && strstr(put.err, "secretctl writer add"), "%s",
                  put.err);
        cr_assert_eq(strchr(put.err, '\n') - put.err + 1, (long) put.err_len, "one line: %s", put.err);
        CLI(&ls, "ls");
        cr_assert_null(strstr(ls.out, "db_password"), "a refused put stored something: %s", ls.out);

        CLI(&add, "writer", "add", "bob", bob);
        CLI_ASSERT_STATUS(&add, 0);
        CLI_AS(&put2, "bob", "from bob", "put", "db_password");
        CLI_ASSERT_STATUS(&put2, 0);
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        cr_assert_eq(clitest_agent_fetch(cli.agent, "db_password", 0, &value, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(value->data, "from bob", 8), 0);
}

Test(realm, a_writer_scoped_to_db_cannot_put_or_delete_api_token) {
        make_realm_with_host();
        char bob[512];
        person("bob", bob);
        join("bob");
        _cleanup_result_ struct cli_result add = { 0 }, mine = { 0 }, api = { 0 }, db = { 0 }, rm = { 0 }, wls = { 0 };
        CLI(&add, "writer", "add", "bob", bob, "--pattern", "db_*");
        CLI_ASSERT_STATUS(&add, 0);
        CLI_IN(&mine, "t", 1, "put", "api_token");
        CLI_ASSERT_STATUS(&mine, 0);
        CLI_AS(&api, "bob", "b", "put", "api_token");
        CLI_ASSERT_STATUS(&api, 8);
        cr_assert(strstr(api.err, "writer 'bob'") && strstr(api.err, "may write only db_*, not 'api_token'"), "%s",
                  api.err);
        CLI_AS(&rm, "bob", NULL, "rm", "api_token");
        CLI_ASSERT_STATUS(&rm, 8);
        CLI_AS(&db, "bob", "b", "put", "db_user");
        CLI_ASSERT_STATUS(&db, 0);
        CLI(&wls, "writer", "ls");
        cr_assert(strstr(wls.out, "bob") && strstr(wls.out, "db_*"), "%s", wls.out);
}

Test(realm, two_of_three_admins_one_signature_does_not_change_the_policy_a_second_does) {
        make_realm_with_host();
        char bob[512], carol[512], dave[512];
        person("bob", bob);
        person("carol", carol);
        person("dave", dave);
        _cleanup_result_ struct cli_result a1 = { 0 }, a2 = { 0 }, s1 = { 0 }, w1 = { 0 }, show = { 0 }, w2 = { 0 },
                                           again = { 0 }, s2 = { 0 }, wls = { 0 }, nobody = { 0 }, none = { 0 };
        CLI(&a1, "admin", "add", "bob", bob);
        CLI_ASSERT_STATUS(&a1, 0);
        cr_assert(strstr(a1.out, "policy v3 is in force"), "%s", a1.out);
        join("bob");
        /* carol with threshold 2: v4 needs two of its own three admins. */
        CLI(&a2, "admin", "add", "carol", carol, "--threshold", "2");
        CLI_ASSERT_STATUS(&a2, 0);
        cr_assert(strstr(a2.out, "policy v4 is proposed, signed by you, not in force yet:") && strstr(a2.out, "1 more signature(s) by admins of v4"), "%s",
                  a2.out);
        CLI_AS(&s1, "bob", NULL, "realm", "sign");
        CLI_ASSERT_STATUS(&s1, 0);
        cr_assert(strstr(s1.out, "+ admin carol") && strstr(s1.out, "policy v4 is in force"), "%s", s1.out);

        /* Now one signature does not change the policy... */
        CLI(&w1, "writer", "add", "dave", dave);
        CLI_ASSERT_STATUS(&w1, 0);
        cr_assert(strstr(w1.out, "policy v5 is proposed") && strstr(w1.out, "not in force yet"), "%s", w1.out);
        CLI(&show, "realm", "show");
        cr_assert(strstr(show.out, "policy     v4") && strstr(show.out, "Pending proposal v5") &&
                          strstr(show.out, "+ writer dave"),
                  "%s", show.out);
        CLI(&w2, "writer", "rm", "alice");
        CLI_ASSERT_STATUS(&w2, 4);
        cr_assert(strstr(w2.err, "policy v5 is already proposed"), "%s", w2.err);
        /* ... not even the same admin signing again ... */
        CLI(&again, "realm", "sign");
        CLI_ASSERT_STATUS(&again, 0);
        cr_assert(strstr(again.out, "not in force yet"), "%s", again.out);
        /* ... nor someone who is no admin. */
        join("dave");
        CLI_AS(&nobody, "dave", NULL, "realm", "sign");
        CLI_ASSERT_STATUS(&nobody, 7);
        /* A second admin's does. */
        CLI_AS(&s2, "bob", NULL, "realm", "sign");
        CLI_ASSERT_STATUS(&s2, 0);
        cr_assert(strstr(s2.out, "policy v5 is in force"), "%s", s2.out);
        CLI(&wls, "writer", "ls");
        cr_assert(strstr(wls.out, "dave"), "%s", wls.out);
        CLI(&none, "realm", "sign");
        CLI_ASSERT_STATUS(&none, 3);
        cr_assert(strstr(none.err, "no proposal for policy v6 is pending"), "%s", none.err);
}

Test(realm, a_policy_older_than_one_already_seen_is_refused) {
        make_realm_with_host();
        _cleanup_result_ struct cli_result ls = { 0 }, put = { 0 }, ls2 = { 0 };
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        /* The store loses (or withholds) v2: it offers v1 as latest. */
        _cleanup_free_ char *v2 = policy_file(2);
        cr_assert_eq(unlink(v2), 0);
        CLI(&ls2, "ls");
        CLI_ASSERT_STATUS(&ls2, 5);
        cr_assert(strstr(ls2.err, "the store offers policy v1") && strstr(ls2.err, "older than v2 already verified"),
                  "%s", ls2.err);
        CLI_IN(&put, "x", 1, "put", "x");
        CLI_ASSERT_STATUS(&put, 5);
        struct stat st;
        char dir[4200];
        (void) snprintf(dir, sizeof(dir), "%s/secrets/x", cli.store_dir);
        cr_assert_neq(stat(dir, &st), 0, "the put stored something");
}

Test(realm, an_old_policy_file_restored_does_not_bring_a_removed_recipient_back) {
        make_realm_with_host();
        _cleanup_agent_key_ struct sd_agent_key *h2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&h2, NULL), 0);
        _cleanup_free_ char *pub = NULL;
        cr_assert_eq(sd_agent_pub_format(h2->box_pk, &pub), 0);
        _cleanup_result_ struct cli_result add = { 0 }, rm = { 0 }, put = { 0 };
        CLI(&add, "recipient", "add", "host2", pub);
        CLI_ASSERT_STATUS(&add, 0);
        CLI(&rm, "recipient", "rm", "host2");
        CLI_ASSERT_STATUS(&rm, 0);
        /* v4 (without host2) overwritten with v3, the last version that
         * listed host2. */
        _cleanup_free_ char *v4 = policy_file(4), *v3 = policy_file(3);
        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(v3, &data, &len), 0);
        cr_assert_eq(clitest_write_file(v4, data, len), 0);
        free(data);
        CLI_IN(&put, "secret", 6, "put", "after");
        CLI_ASSERT_STATUS(&put, 5);
        cr_assert(strstr(put.err, "the store's policy v4 is a copy of v3"), "%s", put.err);
        struct stat st;
        char dir[4200];
        (void) snprintf(dir, sizeof(dir), "%s/secrets/after", cli.store_dir);
        cr_assert_neq(stat(dir, &st), 0, "sealed under the restored policy");
}

Test(realm, an_envelope_copied_from_another_realm_is_refused_naming_both) {
        make_realm_with_host();
        char staging[4200];
        (void) snprintf(staging, sizeof(staging), "file://%s/staging", cli.root);
        _cleanup_result_ struct cli_result init = { 0 }, add = { 0 }, put = { 0 }, mine = { 0 }, get = { 0 };
        CLI(&init, "--store", staging, "realm", "init");
        CLI_ASSERT_STATUS(&init, 0);
        CLI(&add, "--store", staging, "recipient", "add", "host", cli.agent_pub);
        CLI_ASSERT_STATUS(&add, 0);
        CLI_IN(&put, "staging value", 13, "--store", staging, "put", "db");
        CLI_ASSERT_STATUS(&put, 0);
        CLI_IN(&mine, "prod value", 10, "put", "db");
        CLI_ASSERT_STATUS(&mine, 0);
        /* Staging's db v1 copied over as prod's db v2. */
        char from[4200], to[4200];
        (void) snprintf(from, sizeof(from), "%s/staging/secrets/db/%020d.env", cli.root, 1);
        (void) snprintf(to, sizeof(to), "%s/secrets/db/%020d.env", cli.store_dir, 2);
        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(from, &data, &len), 0);
        cr_assert_eq(clitest_write_file(to, data, len), 0);
        free(data);
        CLI(&get, "get", "db");
        CLI_ASSERT_STATUS(&get, 5);
        char staging_realm[17], prod_realm[17], expect[128];
        (void) snprintf(staging_realm, sizeof(staging_realm), "%s", strchr(init.out, ' ') + 1);
        _cleanup_result_ struct cli_result show = { 0 };
        CLI(&show, "realm", "show");
        (void) snprintf(prod_realm, sizeof(prod_realm), "%s", show.out + strlen("realm      "));
        (void) snprintf(expect, sizeof(expect), "belongs to realm %s, the pinned realm is %s", staging_realm, prod_realm);
        cr_assert(strstr(get.err, expect), "'%s' lacks '%s'", get.err, expect);
        /* And the agent refuses it the same way. */
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        cr_assert_eq(clitest_agent_fetch(cli.agent, "db", 2, &value, &err), -EBADMSG);
        cr_assert(strstr(err.message, expect), "%s", err.message);
}

static void write_text(const char *path, const char *text) {
        cr_assert_eq(clitest_write_file(path, text, strlen(text)), 0, "%s", path);
}

Test(realm, init_migrates_legacy_writers_and_recipients_then_reseal_brings_secrets_under_it) {
        char bob[512];
        person("bob", bob);
        _cleanup_writer_key_ struct sd_writer_key *me = NULL, *mallory = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_load(cli.identity, &me, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        _cleanup_agent_key_ struct sd_agent_key *h1 = NULL, *h2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&h1, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&h2, &err), 0);

        /* A store as secretctl wrote it before realms. */
        _cleanup_store_ struct sd_store *store = NULL;
        cr_assert_eq(sd_store_open(cli.store_url, 1, &store, &err), 0, "%s", err.message);
        char *entry = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal("h1", h1->box_pk, me, &entry, &len, &err), 0);
        cr_assert_eq(sd_store_recipient_put(store, "h1", entry, len, &err), 0);
        free(entry);
        cr_assert_eq(sd_recipient_seal("planted", h2->box_pk, mallory, &entry, &len, &err), 0);
        cr_assert_eq(sd_store_recipient_put(store, "planted", entry, len, &err), 0);
        free(entry);
        const unsigned char(*keys)[32] = (const unsigned char(*)[32]) & h1->box_pk;
        char *legacy = fx_legacy_seal("db_password", 1, "legacy value", 12, me, keys, 1);
        cr_assert_eq(sd_store_put(store, "db_password", 1, legacy, strlen(legacy), &err), 0);
        free(legacy);
        char trusted[4200], text[700];
        (void) snprintf(trusted, sizeof(trusted), "%s/secretctl/trusted", cli.config);
        (void) snprintf(text, sizeof(text), "# old trust file\n%s  bob the builder\n", strtok(bob, " "));
        write_text(trusted, text);

        _cleanup_result_ struct cli_result init = { 0 }, rls = { 0 }, wls = { 0 }, get = { 0 }, dry = { 0 }, rs = { 0 },
                                           ls = { 0 };
        CLI(&init, "realm", "init", "--name", "me");
        CLI_ASSERT_STATUS(&init, 0);
        cr_assert(strstr(init.out, "2 writer(s), 1 recipient(s)"), "%s", init.out);
        cr_assert(strstr(init.out, "1 secret(s) were written before the realm") && strstr(init.out, "reseal --all"), "%s",
                  init.out);
        cr_assert(strstr(init.err, "'planted' not imported"), "%s", init.err);
        CLI(&rls, "recipient", "ls");
        cr_assert(strstr(rls.out, "h1") && !strstr(rls.out, "planted"), "%s", rls.out);
        CLI(&wls, "writer", "ls");
        cr_assert(strstr(wls.out, "bob") && strstr(wls.out, "me"), "%s", wls.out);

        CLI(&get, "get", "db_password");
        CLI_ASSERT_STATUS(&get, 5);
        cr_assert(strstr(get.err, "an admin must run 'secretctl reseal db_password'"), "%s", get.err);
        CLI(&dry, "reseal", "--all", "--dry-run");
        CLI_ASSERT_STATUS(&dry, 0);
        cr_assert(strstr(dry.out, "db_password: version 1 would be resealed: format 1, sealed before the realm"), "%s",
                  dry.out);
        CLI(&rs, "reseal", "--all");
        CLI_ASSERT_STATUS(&rs, 0);
        cr_assert(strstr(rs.out, "db_password: version 1 resealed as version 2") && strstr(rs.out, "1 secret(s) resealed"),
                  "%s", rs.out);
        _cleanup_secret_ struct sd_secret *value = NULL;
        cr_assert_eq(clitest_agent_fetch(h1, "db_password", 0, &value, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(value->data, "legacy value", 12), 0);
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 0);
}

Test(realm, export_then_import_into_a_new_store_and_a_flipped_byte_refused) {
        make_realm_with_host();
        _cleanup_result_ struct cli_result p1 = { 0 }, p2 = { 0 }, p3 = { 0 }, ex = { 0 }, ex2 = { 0 }, im = { 0 },
                                           get = { 0 }, h1 = { 0 }, h2 = { 0 }, bad = { 0 };
        CLI_IN(&p1, "one", 3, "put", "a");
        CLI_IN(&p2, "two", 3, "put", "a");
        CLI_IN(&p3, "bee", 3, "put", "b");
        char file[4200];
        (void) snprintf(file, sizeof(file), "%s/store.archive", cli.root);
        CLI(&ex, "export", file);
        CLI_ASSERT_STATUS(&ex, 0);
        cr_assert(strstr(ex.out, "2 policy version(s) and 3 secret version(s) exported"), "%s", ex.out);
        struct stat st;
        cr_assert_eq(stat(file, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600);
        CLI(&ex2, "export", file);
        CLI_ASSERT_STATUS(&ex2, 4);

        char other[4200];
        (void) snprintf(other, sizeof(other), "file://%s/moved", cli.root);
        CLI(&im, "--store", other, "import", file);
        CLI_ASSERT_STATUS(&im, 0);
        CLI(&get, "--store", other, "get", "a");
        CLI_ASSERT_STATUS(&get, 0);
        cr_assert_str_eq(get.out, "two");
        CLI(&h1, "history", "a", "--json");
        CLI(&h2, "--store", other, "history", "a", "--json");
        cr_assert_str_eq(h1.out, h2.out, "history differs after the move");

        /* One flipped byte in the archive (inside b's envelope). */
        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(clitest_read_file(file, &data, &len), 0);
        char *b = strstr(data, "\"name\":\"b\"");
        cr_assert_not_null(b);
        b[60] ^= 0x01;
        char bad_file[4200];
        (void) snprintf(bad_file, sizeof(bad_file), "%s/bad.archive", cli.root);
        cr_assert_eq(clitest_write_file(bad_file, data, len), 0);
        free(data);
        char third[4200];
        (void) snprintf(third, sizeof(third), "file://%s/third", cli.root);
        CLI(&bad, "--store", third, "import", bad_file);
        CLI_ASSERT_STATUS(&bad, 5);
        cr_assert(strstr(bad.err, "archive line 6"), "names the entry: %s", bad.err);
        char third_policy[4200];
        (void) snprintf(third_policy, sizeof(third_policy), "%s/third/policy/%020d.env", cli.root, 1);
        cr_assert_neq(stat(third_policy, &st), 0, "a refused import wrote");
}
