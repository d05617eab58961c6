/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secretd/client.h"
#include "../realm-fixture.h"

static char dir[] = "/tmp/secretd-client-XXXXXX";
static char url[300], state[300];
static char warnings[16384];

static void collect_warning(void *userdata, const char *message) {
        (void) userdata;
        size_t used = strlen(warnings);
        (void) snprintf(warnings + used, sizeof(warnings) - used, "%s\n", message);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(url, sizeof(url), "file://%s/store", dir);
        snprintf(state, sizeof(state), "%s/realm-state.json", dir);
        warnings[0] = '\0';
}

static void teardown(void) {
        char cmd[300];
        if (secure_getenv("SECRETD_TEST_KEEP"))
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(client, .init = setup, .fini = teardown);

/* A store with a realm: an admin (who writes in these tests), one agent
 * recipient of every name, the policy published as v1, and a reader's realm
 * object pinned to it. */
struct world {
        struct sd_store *store;
        struct sd_writer_key *admin;
        struct sd_agent_key *agent;
        struct sd_policy *policy;      /* the latest published */
        struct sd_realm *realm;
        struct sd_put_options opts;
};

static void publish(struct world *w, struct sd_policy *p) {
        size_t len = 0;
        char *json = fx_policy_json(p, &len);
        sd_error err = { 0 };
        cr_assert_eq(sd_store_policy_put(w->store, sd_policy_version(p), json, len, &err), 0, "%s", err.message);
        free(json);
        sd_policy_unref(w->policy);
        w->policy = sd_policy_ref(p);
}

static void world_init(struct world *w) {
        sd_error err = { 0 };
        cr_assert_eq(sd_store_open(url, 1, &w->store, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&w->admin, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_generate(&w->agent, &err), 0, "%s", err.message);
        _cleanup_policy_ struct sd_policy *p = fx_policy(w->admin, NULL);
        fx_recipient(p, "host1", w->agent->box_pk, NULL);
        fx_sign(p, w->admin);
        publish(w, p);
        struct sd_realm_pin pin;
        sd_realm_pin_of(p, &pin);
        cr_assert_eq(sd_realm_new(w->store, &pin, state, &w->realm, &err), 0, "%s", err.message);
        w->opts = (struct sd_put_options) { .warn = collect_warning };
}

static void world_done(struct world *w) {
        sd_realm_free(w->realm);
        sd_policy_unref(w->policy);
        sd_store_free(w->store);
        sd_writer_key_free(w->admin);
        sd_agent_key_free(w->agent);
}

/* The next policy version with edit applied, signed by the admin and
 * published. */
static void change_policy(struct world *w, void (*edit)(struct world *w, struct sd_policy *draft, void *ctx), void *ctx) {
        _cleanup_policy_ struct sd_policy *d = fx_next(w->policy);
        edit(w, d, ctx);
        fx_sign(d, w->admin);
        publish(w, d);
}

static struct sd_secret *text_secret(const char *text) {
        struct sd_secret *s = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &s), 0);
        return s;
}

static uint64_t put_as(struct world *w, const struct sd_writer_key *k, const char *name, const char *text) {
        struct sd_secret *value = text_secret(text);
        sd_error err = { 0 };
        uint64_t version = 0;
        cr_assert_eq(sd_secret_put(w->store, k, w->policy, name, value, &w->opts, &version, &err), 0, "put %s: %s",
                     name, err.message);
        sd_secret_free(value);
        return version;
}

static uint64_t put_text(struct world *w, const char *name, const char *text) {
        return put_as(w, w->admin, name, text);
}

/* Fetch through the realm with one box key pair and compare with expect;
 * returns the fetch result. */
static int fetch_text(struct world *w, const unsigned char *pk, const unsigned char *sk, const char *name,
                      uint64_t version, const char *expect, sd_error *err) {
        struct sd_secret *value = NULL;
        struct sd_envelope_info info = { 0 };
        const struct sd_box_keypair kp = { pk, sk };
        int r = sd_secret_fetch(w->realm, &kp, 1, name, version, 0, &value, &info, err);
        if (r < 0) {
                cr_assert_null(value, "output set on failure");
                return r;
        }
        cr_assert_not_null(value);
        cr_assert_eq(value->len, strlen(expect));
        cr_assert_eq(memcmp(value->data, expect, value->len), 0, "wrong plaintext for %s", name);
        cr_assert_str_eq(info.name, name);
        if (version)
                cr_assert_eq(info.version, version);
        sd_secret_free(value);
        return 0;
}

static int agent_fetch(struct world *w, const struct sd_agent_key *a, const char *name, uint64_t version,
                       const char *expect, sd_error *err) {
        return fetch_text(w, a->box_pk, a->box_sk, name, version, expect, err);
}

Test(client, put_then_fetch_round_trip_and_older_versions) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };

        cr_assert_eq(put_text(&w, "db_password", "hunter2"), 1);
        cr_assert_eq(put_text(&w, "db_password", "correct horse"), 2);

        cr_assert_eq(agent_fetch(&w, w.agent, "db_password", 0, "correct horse", &err), 0, "%s", err.message);
        cr_assert_eq(agent_fetch(&w, w.agent, "db_password", 2, "correct horse", &err), 0, "%s", err.message);
        cr_assert_eq(agent_fetch(&w, w.agent, "db_password", 1, "hunter2", &err), 0, "%s", err.message);
        cr_assert_eq(fetch_text(&w, w.admin->pub.box_pk, w.admin->box_sk, "db_password", 1, "hunter2", &err), 0, "%s",
                     err.message);
        cr_assert_eq(agent_fetch(&w, w.agent, "nope", 0, "", &err), -ENOENT);
        cr_assert(strstr(err.message, "'nope'"), "%s", err.message);

        /* The store holds no plaintext. */
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "! grep -rq -e hunter2 -e 'correct horse' '%s'", dir);
        cr_assert_eq(system(cmd), 0, "plaintext found in the store");
        world_done(&w);
}

static void add_writer_ci(struct world *w, struct sd_policy *d, void *ctx) {
        fx_writer(d, "ci", ctx, "db_*");
}

static void drop_host1(struct world *w, struct sd_policy *d, void *ctx) {
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_RECIPIENTS, "host1", &err), 0, "%s", err.message);
}

Test(client, put_refused_by_the_policy_stores_nothing) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        _cleanup_(sd_writer_key_freep) struct sd_writer_key *ci = NULL, *bob = NULL;
        cr_assert_eq(sd_writer_key_generate(&ci, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&bob, &err), 0);
        change_policy(&w, add_writer_ci, ci);
        _cleanup_secret_ struct sd_secret *v = text_secret("x");
        uint64_t version = 0;

        /* Bob was never added: refused at put time, naming him. */
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(bob->pub.sign_pk, id);
        cr_assert_eq(sd_secret_put(w.store, bob, w.policy, "db_user", v, &w.opts, &version, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, id) && strstr(err.message, "not a writer in policy v2"), "%s", err.message);
        /* ci may write db_* only. */
        cr_assert_eq(sd_secret_put(w.store, ci, w.policy, "api_token", v, &w.opts, &version, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "may write only db_*, not 'api_token'"), "%s", err.message);
        cr_assert_eq(sd_secret_delete(w.store, ci, w.policy, "api_token", &w.opts, &version, &err), -EKEYREJECTED);
        /* Nobody may receive it: no host could open it. */
        change_policy(&w, drop_host1, NULL);
        cr_assert_eq(sd_secret_put(w.store, ci, w.policy, "db_user", v, &w.opts, &version, &err), -ENOKEY);
        cr_assert(strstr(err.message, "no host could open 'db_user'"), "%s", err.message);

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(w.store, &names, &n, &err), 0);
        cr_assert_eq(n, 0, "a refused put stored something");
        sd_store_names_free(names, n);
        world_done(&w);
}

struct recipient_ctx {
        const char *name;
        const struct sd_agent_key *agent;
        const char *pattern;
};

static void add_recipient(struct world *w, struct sd_policy *d, void *ctx) {
        const struct recipient_ctx *c = ctx;
        fx_recipient(d, c->name, c->agent->box_pk, c->pattern);
}

static void remove_recipient(struct world *w, struct sd_policy *d, void *ctx) {
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_RECIPIENTS, ctx, &err), 0, "%s", err.message);
}

/* Replay: a removed recipient's (legacy) entry restored into the store, or
 * the store rolled back to the policy that listed it, never makes the next
 * put seal to it. */
Test(client, restored_recipient_entry_or_old_policy_does_not_bring_a_recipient_back) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        _cleanup_(sd_agent_key_freep) struct sd_agent_key *host2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&host2, &err), 0);
        struct recipient_ctx rc = { "host2", host2, NULL };
        change_policy(&w, add_recipient, &rc);
        cr_assert_eq(sd_realm_refresh(w.realm, &err), 1, "%s", err.message);
        change_policy(&w, remove_recipient, "host2");
        cr_assert_eq(sd_realm_refresh(w.realm, &err), 1, "%s", err.message);

        /* An entry for host2, validly signed by the admin, planted. */
        char *entry = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal("host2", host2->box_pk, w.admin, &entry, &len, &err), 0);
        cr_assert_eq(sd_store_recipient_put(w.store, "host2", entry, len, &err), 0);
        free(entry);
        put_text(&w, "db", "after the removal");
        cr_assert_eq(agent_fetch(&w, host2, "db", 0, "", &err), -ENOKEY, "the restored entry counted: %s", err.message);
        cr_assert_eq(agent_fetch(&w, w.agent, "db", 0, "after the removal", &err), 0, "%s", err.message);

        /* The policy file of v3 deleted, so the store offers v2 (with host2)
         * as latest: a reader that verified v3 refuses the rollback, and
         * nothing can be sealed under it. */
        char path[400];
        snprintf(path, sizeof(path), "%s/store/policy/%020d.env", dir, 3);
        cr_assert_eq(unlink(path), 0, "%s", path);
        cr_assert_eq(sd_realm_refresh(w.realm, &err), -ESTALE);
        cr_assert(strstr(err.message, "the store offers policy v2") && strstr(err.message, "older than v3 already verified"),
                  "%s", err.message);
        _cleanup_policy_ struct sd_policy *held = sd_realm_policy(w.realm);
        cr_assert_eq(sd_policy_version(held), 3, "the realm went back");
        world_done(&w);
}

Test(client, an_envelope_copied_from_another_realm_is_refused_naming_both) {
        struct world a = { 0 }, b = { 0 };
        world_init(&a);
        sd_error err = { 0 };
        /* A second store and realm, same agent key as a's host. */
        char other[400];
        snprintf(other, sizeof(other), "file://%s/staging", dir);
        cr_assert_eq(sd_store_open(other, 1, &b.store, &err), 0, "%s", err.message);
        b.admin = a.admin;
        _cleanup_policy_ struct sd_policy *pb = fx_policy(a.admin, NULL);
        fx_recipient(pb, "host1", a.agent->box_pk, NULL);
        fx_sign(pb, a.admin);
        publish(&b, pb);
        put_text(&b, "db", "staging value");

        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_store_get(b.store, "db", 1, &json, &len, NULL, &err), 0);
        cr_assert_eq(sd_store_put(a.store, "db", 1, json, len, &err), 0);
        free(json);
        cr_assert_eq(agent_fetch(&a, a.agent, "db", 1, "", &err), -EBADMSG);
        char ra[SD_REALM_ID_SHORT_CHARS + 1], rb[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(sd_policy_realm(a.policy), ra);
        sd_realm_id_short(sd_policy_realm(pb), rb);
        char want[128];
        snprintf(want, sizeof(want), "belongs to realm %s, the pinned realm is %s", rb, ra);
        cr_assert(strstr(err.message, want), "%s", err.message);
        sd_policy_unref(b.policy);
        sd_store_free(b.store);
        world_done(&a);
}

Test(client, an_envelope_under_a_newer_policy_refreshes_the_realm_once) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        cr_assert_eq(sd_realm_refresh(w.realm, &err), 1, "%s", err.message);
        _cleanup_(sd_agent_key_freep) struct sd_agent_key *host2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&host2, &err), 0);
        struct recipient_ctx rc = { "host2", host2, NULL };
        change_policy(&w, add_recipient, &rc);
        put_text(&w, "db", "v2 era");
        /* The realm still holds v1; the envelope names v2. */
        cr_assert_eq(agent_fetch(&w, host2, "db", 0, "v2 era", &err), 0, "%s", err.message);
        _cleanup_policy_ struct sd_policy *held = sd_realm_policy(w.realm);
        cr_assert_eq(sd_policy_version(held), 2);

        /* An envelope naming a policy the chain never reaches. */
        _cleanup_policy_ struct sd_policy *ghost = fx_next(w.policy);
        _cleanup_policy_ struct sd_policy *ghost2 = fx_next(ghost);
        fx_sign(ghost2, w.admin);
        _cleanup_secret_ struct sd_secret *v = text_secret("from the future");
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_envelope_seal("db", 2, v, w.admin, ghost2, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_put(w.store, "db", 2, json, len, &err), 0);
        free(json);
        cr_assert_eq(agent_fetch(&w, w.agent, "db", 2, "", &err), -EBADMSG);
        cr_assert(strstr(err.message, "sealed under policy v4, newer than the verified v2"), "%s", err.message);
        world_done(&w);
}

struct writer_ctx {
        const char *name;
        const struct sd_writer_key *key;
};

static void add_writer(struct world *w, struct sd_policy *d, void *ctx) {
        const struct writer_ctx *c = ctx;
        fx_writer(d, c->name, c->key, NULL);
}

static void remove_writer(struct world *w, struct sd_policy *d, void *ctx) {
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_WRITERS, ctx, &err), 0, "%s", err.message);
}

Test(client, newest_verified_version_skips_what_no_longer_verifies) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        _cleanup_(sd_writer_key_freep) struct sd_writer_key *dev = NULL;
        cr_assert_eq(sd_writer_key_generate(&dev, &err), 0);
        struct writer_ctx wc = { "dev", dev };
        change_policy(&w, add_writer, &wc);
        put_text(&w, "db", "by the admin");         /* v1 */
        put_as(&w, dev, "db", "by dev");              /* v2 */
        _cleanup_policy_ struct sd_policy *with_dev = sd_policy_ref(w.policy);
        change_policy(&w, remove_writer, "dev");
        /* dev, removed, still writes: sealed under the policy it knew. */
        _cleanup_secret_ struct sd_secret *v = text_secret("dev again");
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_envelope_seal("db", 3, v, dev, with_dev, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_put(w.store, "db", 3, json, len, &err), 0);
        free(json);

        uint64_t *versions = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_history(w.store, "db", &versions, &n, &err), 0);
        cr_assert_eq(n, 3);
        const struct sd_box_keypair kp = { w.agent->box_pk, w.agent->box_sk };
        _cleanup_secret_ struct sd_secret *value = NULL;
        struct sd_envelope_info info = { 0 };
        warnings[0] = '\0';
        cr_assert_eq(sd_secret_fetch_newest_verified(w.realm, &kp, 1, "db", versions, n, 0, collect_warning, NULL, &value,
                                                     &info, &err),
                     0, "%s", err.message);
        cr_assert_eq(info.version, 1);
        cr_assert_eq(memcmp(value->data, "by the admin", value->len), 0);
        cr_assert(strstr(warnings, "version 3 skipped") && strstr(warnings, "version 2 skipped") &&
                          strstr(warnings, "who is not a writer in policy v3"),
                  "%s", warnings);
        /* Never below the floor. */
        struct sd_secret *none = NULL;
        cr_assert_eq(sd_secret_fetch_newest_verified(w.realm, &kp, 1, "db", versions, n, 2, NULL, NULL, &none, &info, &err),
                     -EKEYREJECTED);
        cr_assert_null(none);
        cr_assert(strstr(err.message, "version 3"), "the newest one's error: %s", err.message);
        free(versions);
        world_done(&w);
}

struct reseal_tally {
        size_t done, needed, current, failed;
        char reasons[4096];
};

static void tally(void *userdata, const struct sd_reseal_item *item) {
        struct reseal_tally *t = userdata;
        switch (item->state) {
        case SD_RESEAL_DONE:
                t->done++;
                break;
        case SD_RESEAL_NEEDED:
                t->needed++;
                break;
        case SD_RESEAL_CURRENT:
                t->current++;
                break;
        case SD_RESEAL_FAILED:
                t->failed++;
                break;
        case SD_RESEAL_DELETED:
                break;
        }
        size_t used = strlen(t->reasons);
        (void) snprintf(t->reasons + used, sizeof(t->reasons) - used, "%s: %s\n", item->name,
                        item->state == SD_RESEAL_FAILED ? item->error.message : item->reason);
}

Test(client, reseal_reaches_a_new_recipient_and_shuts_out_a_removed_one) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        char name[16], text[32];
        for (int i = 0; i < 10; i++) {
                snprintf(name, sizeof(name), "s%02d", i);
                snprintf(text, sizeof(text), "value %d", i);
                put_text(&w, name, text);
        }
        _cleanup_(sd_agent_key_freep) struct sd_agent_key *host2 = NULL;
        cr_assert_eq(sd_agent_key_generate(&host2, &err), 0);
        struct recipient_ctx rc = { "host2", host2, NULL };
        change_policy(&w, add_recipient, &rc);
        cr_assert_eq(agent_fetch(&w, host2, "s00", 0, "", &err), -ENOKEY, "host2 could read before the reseal");

        /* A dry run says what and why, and writes nothing. */
        struct reseal_tally t = { 0 };
        cr_assert_eq(sd_secret_reseal(w.store, w.admin, w.policy, NULL, 0, true, &w.opts, tally, &t, &err), 0, "%s",
                     err.message);
        cr_assert_eq(t.needed, 10, "%s", t.reasons);
        char host2_id[SD_KEY_ID_CHARS + 1], added[80];
        sd_key_id(host2->box_pk, host2_id);
        snprintf(added, sizeof(added), "s03: + recipient host2 (%s)", host2_id);
        cr_assert(strstr(t.reasons, added), "%s", t.reasons);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(w.store, "s03", &latest, &err), 0);
        cr_assert_eq(latest, 1, "the dry run wrote");

        t = (struct reseal_tally) { 0 };
        cr_assert_eq(sd_secret_reseal(w.store, w.admin, w.policy, NULL, 0, false, &w.opts, tally, &t, &err), 0, "%s",
                     err.message);
        cr_assert_eq(t.done, 10, "%s", t.reasons);
        for (int i = 0; i < 10; i++) {
                snprintf(name, sizeof(name), "s%02d", i);
                snprintf(text, sizeof(text), "value %d", i);
                cr_assert_eq(agent_fetch(&w, host2, name, 2, text, &err), 0, "%s: %s", name, err.message);
        }
        /* Nothing left to do: a second reseal is a no-op. */
        t = (struct reseal_tally) { 0 };
        cr_assert_eq(sd_secret_reseal(w.store, w.admin, w.policy, NULL, 0, false, &w.opts, tally, &t, &err), 0);
        cr_assert_eq(t.current, 10, "%s", t.reasons);

        /* host1 removed, then one reseal: it opens none of the new versions
         * (and still the ones it was sealed to). */
        change_policy(&w, remove_recipient, "host1");
        t = (struct reseal_tally) { 0 };
        const char *some[] = { "s00", "s05", "s09" };
        cr_assert_eq(sd_secret_reseal(w.store, w.admin, w.policy, some, 3, false, &w.opts, tally, &t, &err), 0);
        cr_assert_eq(t.done, 3, "%s", t.reasons);
        /* host1 is in no list any more: only its box key is known, shown by
         * its id, which is an agent's key id. */
        char host1_id[SD_KEY_ID_CHARS + 1], gone[64];
        sd_key_id(w.agent->box_pk, host1_id);
        snprintf(gone, sizeof(gone), "- key %s (in no list of policy v", host1_id);
        cr_assert(strstr(t.reasons, gone), "%s", t.reasons);
        for (size_t i = 0; i < 3; i++) {
                cr_assert_eq(agent_fetch(&w, w.agent, some[i], 3, "", &err), -ENOKEY, "%s", some[i]);
                cr_assert_eq(agent_fetch(&w, host2, some[i], 3, strcmp(some[i], "s00") == 0 ? "value 0"
                                                                : strcmp(some[i], "s05") == 0 ? "value 5" : "value 9",
                                         &err),
                             0, "%s", err.message);
        }
        cr_assert_eq(agent_fetch(&w, w.agent, "s00", 1, "value 0", &err), 0, "%s", err.message);
        world_done(&w);
}

Test(client, reseal_brings_a_legacy_envelope_under_the_realm) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        const unsigned char(*keys)[32] = (const unsigned char(*)[32]) & w.agent->box_pk;
        char *legacy = fx_legacy_seal("old", 1, "from before", 11, w.admin, keys, 1);
        cr_assert_eq(sd_store_put(w.store, "old", 1, legacy, strlen(legacy), &err), 0);
        free(legacy);
        cr_assert_eq(agent_fetch(&w, w.agent, "old", 1, "", &err), -EBADMSG);
        cr_assert(strstr(err.message, "'secretctl reseal old'"), "%s", err.message);
        struct reseal_tally t = { 0 };
        cr_assert_eq(sd_secret_reseal(w.store, w.admin, w.policy, NULL, 0, false, &w.opts, tally, &t, &err), 0);
        cr_assert_eq(t.done, 1, "%s", t.reasons);
        cr_assert(strstr(t.reasons, "format 1"), "%s", t.reasons);
        cr_assert_eq(agent_fetch(&w, w.agent, "old", 2, "from before", &err), 0, "%s", err.message);
        world_done(&w);
}

Test(client, delete_writes_a_tombstone_and_fetch_says_deleted) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };

        put_text(&w, "db", "v1");
        uint64_t version = 0;
        cr_assert_eq(sd_secret_delete(w.store, w.admin, w.policy, "db", &w.opts, &version, &err), 0, "%s", err.message);
        cr_assert_eq(version, 2);

        cr_assert_eq(agent_fetch(&w, w.agent, "db", 0, "", &err), -ENOENT);
        cr_assert(strstr(err.message, "secret 'db' was deleted in version 2"), "%s", err.message);

        struct sd_secret *value = (struct sd_secret *) 1;
        struct sd_envelope_info info = { 0 };
        const struct sd_box_keypair kp = { w.agent->box_pk, w.agent->box_sk };
        cr_assert_eq(sd_secret_fetch(w.realm, &kp, 1, "db", 0, 1, &value, &info, &err), 0, "%s", err.message);
        cr_assert_null(value);
        cr_assert(info.tombstone);
        cr_assert_eq(info.version, 2);

        /* The old version is still there for history. */
        cr_assert_eq(agent_fetch(&w, w.agent, "db", 1, "v1", &err), 0, "%s", err.message);

        cr_assert_eq(sd_secret_delete(w.store, w.admin, w.policy, "db", &w.opts, &version, &err), -ENOENT, "deleted twice");
        cr_assert(strstr(err.message, "'db'"), "%s", err.message);
        cr_assert_eq(sd_secret_delete(w.store, w.admin, w.policy, "missing", &w.opts, &version, &err), -ENOENT);
        cr_assert(strstr(err.message, "'missing'"), "%s", err.message);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(w.store, "missing", &latest, NULL), -ENOENT, "delete created a secret");

        /* Writing again brings it back. */
        cr_assert_eq(put_text(&w, "db", "v3"), 3);
        cr_assert_eq(agent_fetch(&w, w.agent, "db", 0, "v3", &err), 0, "%s", err.message);
        world_done(&w);
}

Test(client, tombstone_by_a_stranger_does_not_count) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        _cleanup_(sd_writer_key_freep) struct sd_writer_key *mallory = NULL;
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        put_text(&w, "db", "v1");
        /* Mallory makes up a policy of the same realm id to seal under. */
        _cleanup_policy_ struct sd_policy *evil = fx_policy(mallory, sd_policy_realm(w.policy));
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_envelope_seal("db", 2, NULL, mallory, evil, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_put(w.store, "db", 2, json, len, &err), 0, "%s", err.message);
        free(json);

        uint64_t version = 0;
        cr_assert_eq(sd_secret_delete(w.store, w.admin, w.policy, "db", &w.opts, &version, &err), 0,
                     "a stranger's tombstone blocked a delete: %s", err.message);
        cr_assert_eq(version, 3);
        world_done(&w);
}

Test(client, empty_and_oversized_values_are_refused_naming_the_secret) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        uint64_t version = 0;

        struct sd_secret *empty = NULL;
        cr_assert_eq(sd_secret_new(0, &empty), 0);
        cr_assert_eq(sd_secret_put(w.store, w.admin, w.policy, "db", empty, &w.opts, &version, &err), -EINVAL);
        cr_assert(strstr(err.message, "'db'") && strstr(err.message, "refusing an empty value"), "%s", err.message);
        sd_secret_free(empty);

        struct sd_put_options small = w.opts;
        small.max_len = 16;
        struct sd_secret *v17 = text_secret("0123456789abcdefX");
        cr_assert_eq(sd_secret_put(w.store, w.admin, w.policy, "api_key", v17, &small, &version, &err), -EFBIG);
        cr_assert(strstr(err.message, "'api_key'") && strstr(err.message, "16"), "%s", err.message);
        sd_secret_free(v17);

        /* Above SD_VALUE_MAX even when the caller asks for more. */
        struct sd_put_options huge = w.opts;
        huge.max_len = SD_VALUE_MAX * 4;
        struct sd_secret *big = NULL;
        cr_assert_eq(sd_secret_new(SD_VALUE_MAX + 1, &big), 0);
        memset(big->data, 'x', big->len);
        cr_assert_eq(sd_secret_put(w.store, w.admin, w.policy, "big", big, &huge, &version, &err), -EFBIG);
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", SD_VALUE_MAX);
        cr_assert(strstr(err.message, "'big'") && strstr(err.message, limit), "%s", err.message);
        sd_secret_free(big);

        cr_assert_eq(sd_secret_put(w.store, w.admin, w.policy, "../etc", NULL, &w.opts, &version, &err), -EINVAL);
        cr_assert(strstr(err.message, "secret name"), "%s", err.message);

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(w.store, &names, &n, &err), 0);
        cr_assert_eq(n, 0, "a refused put stored something");
        sd_store_names_free(names, n);
        world_done(&w);
}

Test(client, racing_puts_all_land_as_consecutive_versions) {
        struct world w = { 0 };
        world_init(&w);
        enum { PER_PROCESS = 15 };
        pid_t pids[2];
        for (int p = 0; p < 2; p++) {
                pids[p] = fork();
                cr_assert_geq(pids[p], 0);
                if (pids[p] == 0) {
                        struct sd_store *s = NULL;
                        if (sd_store_open(url, 0, &s, NULL) < 0)
                                _exit(2);
                        for (int i = 0; i < PER_PROCESS; i++) {
                                char text[32];
                                snprintf(text, sizeof(text), "p%d-%02d", p, i);
                                struct sd_secret *value = NULL;
                                if (sd_secret_new_from(text, strlen(text), &value) < 0)
                                        _exit(3);
                                if (sd_secret_put(s, w.admin, w.policy, "race", value, NULL, NULL, NULL) < 0)
                                        _exit(4);
                                sd_secret_free(value);
                        }
                        sd_store_free(s);
                        _exit(0);
                }
        }
        for (int p = 0; p < 2; p++) {
                int status = 0;
                cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: status %d", p, status);
        }
        int seen[2][PER_PROCESS] = { { 0 } };
        const struct sd_box_keypair kp = { w.agent->box_pk, w.agent->box_sk };
        for (uint64_t v = 1; v <= 2 * PER_PROCESS; v++) {
                struct sd_secret *value = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_secret_fetch(w.realm, &kp, 1, "race", v, 0, &value, NULL, &err), 0, "v%" PRIu64 ": %s", v,
                             err.message);
                int p = -1, i = -1;
                cr_assert_eq(sscanf((const char *) value->data, "p%d-%d", &p, &i), 2);
                cr_assert(p >= 0 && p < 2 && i >= 0 && i < PER_PROCESS);
                seen[p][i]++;
                sd_secret_free(value);
        }
        for (int p = 0; p < 2; p++)
                for (int i = 0; i < PER_PROCESS; i++)
                        cr_assert_eq(seen[p][i], 1, "p%d put %d stored %d times", p, i, seen[p][i]);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(w.store, "race", &latest, NULL), 0);
        cr_assert_eq(latest, 2 * PER_PROCESS);
        world_done(&w);
}

Test(client, tampered_store_content_is_rejected_by_fetch) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        put_text(&w, "db", "v1");
        /* Someone with write access to the store plants garbage as v2. */
        cr_assert_eq(sd_store_put(w.store, "db", 2, "{\"format\":2,\"kind\":\"sec", 24, &err), 0);
        cr_assert_eq(agent_fetch(&w, w.agent, "db", 0, "", &err), -EBADMSG);
        /* Writing goes on past the garbage. */
        cr_assert_eq(put_text(&w, "db", "v3"), 3);
        world_done(&w);
}

static void register_legacy(struct sd_store *s, const char *entry_name, const struct sd_writer_key *signer,
                            const unsigned char box_pk[32]) {
        sd_error err = { 0 };
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal(entry_name, box_pk, signer, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_recipient_put(s, entry_name, json, len, &err), 0, "%s", err.message);
        free(json);
}

Test(client, migration_imports_trusted_writers_and_verified_recipient_entries) {
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        _cleanup_(sd_writer_key_freep) struct sd_writer_key *me = NULL, *alice = NULL, *mallory = NULL;
        _cleanup_(sd_agent_key_freep) struct sd_agent_key *h1 = NULL, *h2 = NULL, *h3 = NULL;
        cr_assert_eq(sd_writer_key_generate(&me, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&alice, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&h1, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&h2, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&h3, &err), 0);
        register_legacy(s, "h1", me, h1->box_pk);
        register_legacy(s, "h2", alice, h2->box_pk);
        register_legacy(s, "evil", mallory, h3->box_pk);
        /* h1's entry copied under another name. */
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal("h1", h1->box_pk, me, &json, &len, &err), 0);
        cr_assert_eq(sd_store_recipient_put(s, "copy", json, len, &err), 0);
        free(json);

        _cleanup_trust_ struct sd_trust *trust = NULL;
        cr_assert_eq(sd_trust_new(&trust), 0);
        cr_assert_eq(sd_trust_add(trust, &alice->pub), 0);
        _cleanup_policy_ struct sd_policy *p = NULL;
        cr_assert_eq(sd_policy_from_legacy(s, me, "me", trust, collect_warning, NULL, &p, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_version(p), 1);
        cr_assert_eq(sd_policy_threshold(p), 1);
        cr_assert_eq(sd_policy_count(p, SD_POLICY_ADMINS), 1);
        cr_assert(sd_policy_is_admin(p, me->pub.sign_pk));
        cr_assert_eq(sd_policy_count(p, SD_POLICY_WRITERS), 2, "me and alice");
        cr_assert_eq(sd_policy_count(p, SD_POLICY_RECIPIENTS), 2, "h1 and h2, not evil nor the copy");
        cr_assert_not_null(sd_policy_find(p, SD_POLICY_RECIPIENTS, "h1"));
        cr_assert_not_null(sd_policy_find(p, SD_POLICY_RECIPIENTS, "h2"));
        cr_assert(strstr(warnings, "'evil' not imported") && strstr(warnings, "'copy' not imported"), "%s", warnings);
        struct sd_realm_pin pin;
        sd_realm_pin_of(p, &pin);
        cr_assert_eq(sd_policy_verify_pinned(p, &pin, &err), 0, "%s", err.message);
}
