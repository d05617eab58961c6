/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recipients through the CLI, checked from an agent's point of view: the
 * test holds an agent key and decrypts with the library, as secretd would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "secretd/client.h"
#include "secretd/keys.h"
#include "secretd/store.h"
#include "secretd/trust.h"

TestSuite(recipient, .init = clitest_setup_with_identity, .fini = clitest_teardown);

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

/* What the agent gets for the latest (or given) version of name, trusting
 * only the test's own writer identity. */
static int agent_fetch(const struct sd_agent_key *agent, const char *name, uint64_t version,
                       struct sd_secret **value, sd_error *err) {
        _cleanup_writer_key_ struct sd_writer_key *me = NULL;
        _cleanup_trust_ struct sd_trust *trust = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        cr_assert_eq(sd_writer_key_load(cli.identity, &me, err), 0, "%s", err->message);
        cr_assert_eq(sd_trust_new(&trust), 0);
        cr_assert_eq(sd_trust_add(trust, &me->pub), 0);
        cr_assert_eq(sd_store_open(cli.store_url, 0, &store, err), 0, "%s", err->message);
        return sd_secret_fetch(store, trust, agent->box_pk, agent->box_sk, name, version, 0, value, NULL, err);
}

static void assert_agent_reads(const struct sd_agent_key *agent, const char *name, uint64_t version,
                               const char *expect) {
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        int r = agent_fetch(agent, name, version, &value, &err);
        cr_assert_eq(r, 0, "agent cannot read %s: %s", name, err.message);
        cr_assert_eq(value->len, strlen(expect));
        cr_assert(memcmp(value->data, expect, value->len) == 0);
}

static void assert_agent_locked_out(const struct sd_agent_key *agent, const char *name) {
        _cleanup_secret_ struct sd_secret *value = NULL;
        sd_error err = { 0 };
        int r = agent_fetch(agent, name, 0, &value, &err);
        cr_assert_eq(r, -ENOKEY, "agent read %s (r=%d: %s)", name, r, err.message);
        cr_assert_null(value);
}

Test(recipient, agent_decrypts_only_versions_put_while_registered) {
        _cleanup_free_ char *pub = NULL;
        _cleanup_agent_key_ struct sd_agent_key *agent = make_agent("agent-a.key", &pub);
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(agent->box_pk, key_id);

        _cleanup_result_ struct cli_result add = { 0 }, ls = { 0 }, lsj = { 0 }, who = { 0 }, p1 = { 0 },
                                           rm = { 0 }, rm2 = { 0 }, p2 = { 0 }, get = { 0 }, ls2 = { 0 };
        CLI(&add, "recipient", "add", "host-a", pub);
        CLI_ASSERT_STATUS(&add, 0);
        cr_assert(strstr(add.out, key_id), "add prints the key id: %s", add.out);

        CLI(&who, "whoami");
        const char *my_id = strstr(who.out, "key id ") + 7;
        CLI(&ls, "recipient", "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        cr_assert(strstr(ls.out, "host-a"), "%s", ls.out);
        cr_assert(strstr(ls.out, key_id), "%s", ls.out);
        cr_assert(strstr(ls.out, " trusted"), "%s", ls.out);
        CLI(&lsj, "recipient", "ls", "--json");
        json_t *l = json_loads(lsj.out, 0, NULL);
        cr_assert_eq(json_array_size(l), 1, "%s", lsj.out);
        json_t *e = json_array_get(l, 0);
        cr_assert_str_eq(json_string_value(json_object_get(e, "name")), "host-a");
        cr_assert_str_eq(json_string_value(json_object_get(e, "key_id")), key_id);
        cr_assert(strncmp(json_string_value(json_object_get(e, "signer")), my_id, 16) == 0);
        cr_assert(json_is_true(json_object_get(e, "trusted")));
        json_decref(l);

        put_text("shared", "for host a", &p1);
        assert_agent_reads(agent, "shared", 0, "for host a");

        CLI(&rm, "recipient", "rm", "host-a");
        CLI_ASSERT_STATUS(&rm, 0);
        CLI(&rm2, "recipient", "rm", "host-a");
        CLI_ASSERT_STATUS(&rm2, 3);
        CLI(&ls2, "recipient", "ls");
        cr_assert_null(strstr(ls2.out, "host-a"), "%s", ls2.out);

        put_text("shared", "not for host a", &p2);
        assert_agent_locked_out(agent, "shared");
        /* The old version was sealed to it and stays so (documented in
         * `recipient --help`). */
        assert_agent_reads(agent, "shared", 1, "for host a");
        CLI(&get, "get", "shared");
        cr_assert_str_eq(get.out, "not for host a", "the writer still reads its own secret");
}

Test(recipient, entry_by_untrusted_writer_is_ignored_until_trusted) {
        char other_path[4096];
        (void) snprintf(other_path, sizeof(other_path), "%s/other-identity", cli.root);
        _cleanup_free_ char *pub = NULL;
        _cleanup_agent_key_ struct sd_agent_key *agent = make_agent("agent-b.key", &pub);

        _cleanup_result_ struct cli_result other = { 0 }, add = { 0 }, ls = { 0 }, p1 = { 0 },
                                           trust = { 0 }, p2 = { 0 }, ls2 = { 0 };
        CLI(&other, "--identity", other_path, "keygen");
        CLI_ASSERT_STATUS(&other, 0);
        const char *other_id = strstr(other.out, "key id ") + 7;
        CLI(&add, "--identity", other_path, "recipient", "add", "host-b", pub);
        CLI_ASSERT_STATUS(&add, 0);

        CLI(&ls, "recipient", "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        cr_assert(strstr(ls.out, "host-b"), "%s", ls.out);
        cr_assert(strstr(ls.out, "untrusted"), "%s", ls.out);
        char signer[SD_KEY_ID_CHARS + 1];
        memcpy(signer, other_id, SD_KEY_ID_CHARS);
        signer[SD_KEY_ID_CHARS] = '\0';
        cr_assert(strstr(ls.out, signer), "the signer %s is shown: %s", signer, ls.out);

        put_text("guarded", "first", &p1);
        cr_assert(strstr(p1.err, "secretctl: warning: "), "no warning: %s", p1.err);
        cr_assert(strstr(p1.err, "host-b"), "warning does not name the entry: %s", p1.err);
        assert_agent_locked_out(agent, "guarded");

        CLI(&trust, "trust", "add", other.out);
        CLI_ASSERT_STATUS(&trust, 0);
        put_text("guarded", "second", &p2);
        cr_assert_null(strstr(p2.err, "host-b"), "still warns after trust add: %s", p2.err);
        assert_agent_reads(agent, "guarded", 0, "second");
        CLI(&ls2, "recipient", "ls");
        cr_assert(strstr(ls2.out, " trusted"), "%s", ls2.out);
        cr_assert_null(strstr(ls2.out, "untrusted"), "%s", ls2.out);
}

Test(recipient, secret_of_another_writer_needs_trust_then_recipiency) {
        char other_path[4096];
        (void) snprintf(other_path, sizeof(other_path), "%s/other-identity", cli.root);
        _cleanup_result_ struct cli_result other = { 0 }, put = { 0 }, untrusted = { 0 }, trust = { 0 },
                                           not_mine = { 0 };
        CLI(&other, "--identity", other_path, "keygen");
        CLI_ASSERT_STATUS(&other, 0);
        const char *value = "sealed to the other writer only";
        CLI_IN(&put, value, strlen(value), "--identity", other_path, "put", "theirs");
        CLI_ASSERT_STATUS(&put, 0);

        CLI(&untrusted, "get", "theirs");
        CLI_ASSERT_STATUS(&untrusted, 5);
        cr_assert(strstr(untrusted.err, "'theirs'"), "%s", untrusted.err);
        cr_assert_eq(untrusted.out_len, 0);

        CLI(&trust, "trust", "add", other.out);
        CLI_ASSERT_STATUS(&trust, 0);
        CLI(&not_mine, "get", "theirs");
        CLI_ASSERT_STATUS(&not_mine, 6);
        cr_assert(strstr(not_mine.err, "'theirs'"), "%s", not_mine.err);
        cr_assert_eq(not_mine.out_len, 0);
}
