/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recipients through the CLI, checked from an agent's point of view: the
 * test holds agent keys and decrypts with the library, as secretd would. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"
#include "secretd/client.h"
#include "secretd/keys.h"
#include "secretd/store.h"

TestSuite(recipient, .init = clitest_setup_with_realm, .fini = clitest_teardown);

static void put_text(const char *name, const char *value, struct cli_result *res) {
        CLI_IN(res, value, strlen(value), "put", name);
        CLI_ASSERT_STATUS(res, 0);
}

/* An agent key saved to and loaded back from a file, as `secretd init` and
 * the daemon would. */
static struct sd_agent_key *make_agent(const char *file, char **pub_out) {
        _cleanup_agent_key_ struct sd_agent_key *fresh = NULL;
        struct sd_agent_key *loaded = NULL;
        sd_error err = { 0 };
        char path[4096];
        (void) snprintf(path, sizeof(path), "%s/%s", cli.root, file);
        cr_assert_eq(sd_agent_key_generate(&fresh, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_save(fresh, path, false, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_load(path, &loaded, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_pub_format(loaded->box_pk, pub_out), 0);
        return loaded;
}

static void assert_agent_reads(const struct sd_agent_key *agent, const char *name, uint64_t version,
                               const char *expect) {
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        int r = clitest_agent_fetch(agent, name, version, &value, &err);
        cr_assert_eq(r, 0, "agent cannot read %s: %s", name, err.message);
        cr_assert_eq(value->len, strlen(expect));
        cr_assert(memcmp(value->data, expect, value->len) == 0);
}

static void assert_agent_locked_out(const struct sd_agent_key *agent, const char *name, uint64_t version) {
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        int r = clitest_agent_fetch(agent, name, version, &value, &err);
        cr_assert_eq(r, -ENOKEY, "agent read %s (r=%d: %s)", name, r, err.message);
        cr_assert_null(value);
}

Test(recipient, agent_decrypts_only_versions_put_while_it_is_a_recipient) {
        _cleanup_free_ char *pub = NULL;
        _cleanup_agent_key_ struct sd_agent_key *agent = make_agent("agent-a.key", &pub);
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(agent->box_pk, key_id);

        _cleanup_result_ struct cli_result add = { 0 }, ls = { 0 }, lsj = { 0 }, p1 = { 0 }, rm = { 0 }, rm2 = { 0 },
                                           p2 = { 0 }, get = { 0 }, ls2 = { 0 };
        CLI(&add, "recipient", "add", "host-a", pub);
        CLI_ASSERT_STATUS(&add, 0);
        cr_assert(strstr(add.out, "+ recipient host-a (") && strstr(add.out, key_id), "add shows the change: %s", add.out);

        CLI(&ls, "recipient", "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        cr_assert(strstr(ls.out, "host-a") && strstr(ls.out, key_id) && strstr(ls.out, "*"), "%s", ls.out);
        CLI(&lsj, "recipient", "ls", "--json");
        json_t *l = json_loads(lsj.out, 0, NULL);
        cr_assert_eq(json_array_size(l), 2, "%s", lsj.out);
        json_t *e = json_array_get(l, 1);
        cr_assert_str_eq(json_string_value(json_object_get(e, "name")), "host-a");
        cr_assert_str_eq(json_string_value(json_object_get(e, "key_id")), key_id);
        cr_assert_str_eq(json_string_value(json_object_get(e, "key")), pub);
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(e, "patterns"), 0)), "*");
        json_decref(l);

        put_text("shared", "for host a", &p1);
        assert_agent_reads(agent, "shared", 0, "for host a");

        CLI(&rm, "recipient", "rm", "host-a");
        CLI_ASSERT_STATUS(&rm, 0);
        cr_assert(strstr(rm.out, "- recipient host-a (") &&
                          strstr(rm.out, "note: host-a can still read the versions already sealed to it") &&
                          strstr(rm.out, "secretctl reseal --all"),
                  "rm gives the advice: %s", rm.out);
        CLI(&rm2, "recipient", "rm", "host-a");
        CLI_ASSERT_STATUS(&rm2, 3);
        CLI(&ls2, "recipient", "ls");
        cr_assert_null(strstr(ls2.out, "host-a"), "%s", ls2.out);

        put_text("shared", "not for host a", &p2);
        assert_agent_locked_out(agent, "shared", 0);
        /* The old version was sealed to it and stays so (documented in
         * `recipient --help`). */
        assert_agent_reads(agent, "shared", 1, "for host a");
        CLI(&get, "get", "shared");
        cr_assert_str_eq(get.out, "not for host a", "the writer still reads its own secret");
}

Test(recipient, patterns_decide_who_receives_which_name) {
        _cleanup_free_ char *pub = NULL;
        _cleanup_agent_key_ struct sd_agent_key *web = make_agent("web.key", &pub);
        _cleanup_result_ struct cli_result add = { 0 }, bad = { 0 }, p1 = { 0 }, p2 = { 0 };
        CLI(&add, "recipient", "add", "web", pub, "--pattern", "web_*", "--pattern", "tls?");
        CLI_ASSERT_STATUS(&add, 0);
        cr_assert(strstr(add.out, "patterns web_*, tls?"), "%s", add.out);
        CLI(&bad, "recipient", "add", "web2", cli.agent_pub, "--pattern", "web/*");
        CLI_ASSERT_STATUS(&bad, 2);
        cr_assert(strstr(bad.err, "name pattern 'web/*' may contain only"), "%s", bad.err);

        put_text("web_token", "w", &p1);
        put_text("db_password", "d", &p2);
        assert_agent_reads(web, "web_token", 0, "w");
        assert_agent_locked_out(web, "db_password", 0);
        assert_agent_reads(cli.agent, "db_password", 0, "d");
}

Test(recipient, a_put_no_host_may_receive_is_refused_and_stores_nothing) {
        _cleanup_result_ struct cli_result rm = { 0 }, put = { 0 }, ls = { 0 };
        CLI(&rm, "recipient", "rm", "host");
        CLI_ASSERT_STATUS(&rm, 0);
        CLI_IN(&put, "x", 1, "put", "orphan");
        CLI_ASSERT_STATUS(&put, 9);
        cr_assert(strstr(put.err, "no host could open 'orphan': add a recipient whose patterns cover 'orphan' with "
                                  "'secretctl recipient add'"),
                  "%s", put.err);
        cr_assert_eq(strchr(put.err, '\n') - put.err + 1, (long) put.err_len, "one line: %s", put.err);
        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        cr_assert_null(strstr(ls.out, "orphan"), "%s", ls.out);
}

/* Replay: an entry for a removed host, validly signed, restored into the
 * store (as a legacy recipient entry, the only form entries ever had) has
 * no effect: the policy is the only source of recipients. */
Test(recipient, a_restored_entry_of_a_removed_recipient_is_not_sealed_to) {
        _cleanup_free_ char *pub = NULL;
        _cleanup_agent_key_ struct sd_agent_key *gone = make_agent("gone.key", &pub);
        _cleanup_result_ struct cli_result add = { 0 }, rm = { 0 }, p = { 0 }, ls = { 0 };
        CLI(&add, "recipient", "add", "gone", pub);
        CLI_ASSERT_STATUS(&add, 0);
        CLI(&rm, "recipient", "rm", "gone");
        CLI_ASSERT_STATUS(&rm, 0);

        _cleanup_writer_key_ struct sd_writer_key *me = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_load(cli.identity, &me, &err), 0, "%s", err.message);
        _cleanup_free_ char *entry = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal("gone", gone->box_pk, me, &entry, &len, &err), 0);
        _cleanup_store_ struct sd_store *store = NULL;
        cr_assert_eq(sd_store_open(cli.store_url, 0, &store, &err), 0);
        cr_assert_eq(sd_store_recipient_put(store, "gone", entry, len, &err), 0);

        put_text("after", "not for gone", &p);
        assert_agent_locked_out(gone, "after", 0);
        CLI(&ls, "recipient", "ls");
        cr_assert_null(strstr(ls.out, "gone"), "%s", ls.out);
}
