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

static char dir[] = "/tmp/secretd-client-XXXXXX";
static char url[300];
static char warnings[16384];

static void collect_warning(void *userdata, const char *message) {
        (void) userdata;
        size_t used = strlen(warnings);
        (void) snprintf(warnings + used, sizeof(warnings) - used, "%s\n", message);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(url, sizeof(url), "file://%s/store", dir);
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

/* A store, one trusted writer, the trust set holding it. */
struct world {
        struct sd_store *store;
        struct sd_writer_key *writer;
        struct sd_trust *trust;
        struct sd_put_options opts;
};

static void world_init(struct world *w) {
        sd_error err = { 0 };
        cr_assert_eq(sd_store_open(url, 1, &w->store, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&w->writer, &err), 0, "%s", err.message);
        cr_assert_eq(sd_trust_new(&w->trust), 0);
        cr_assert_eq(sd_trust_add(w->trust, &w->writer->pub), 0);
        w->opts = (struct sd_put_options) { .warn = collect_warning };
}

static void world_done(struct world *w) {
        sd_store_free(w->store);
        sd_writer_key_free(w->writer);
        sd_trust_free(w->trust);
}

static struct sd_secret *text_secret(const char *text) {
        struct sd_secret *s = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &s), 0);
        return s;
}

static uint64_t put_text(struct world *w, const char *name, const char *text) {
        struct sd_secret *value = text_secret(text);
        sd_error err = { 0 };
        uint64_t version = 0;
        cr_assert_eq(sd_secret_put(w->store, w->writer, w->trust, name, value, &w->opts, &version, &err), 0,
                     "put %s: %s", name, err.message);
        sd_secret_free(value);
        return version;
}

/* Fetch and compare with expect; returns the fetch result. */
static int fetch_text(struct world *w, const unsigned char *pk, const unsigned char *sk, const char *name,
                      uint64_t version, const char *expect, sd_error *err) {
        struct sd_secret *value = NULL;
        struct sd_envelope_info info = { 0 };
        int r = sd_secret_fetch(w->store, w->trust, pk, sk, name, version, 0, &value, &info, err);
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

static void register_agent(struct world *w, const char *entry_name, const struct sd_writer_key *signer,
                           const struct sd_agent_key *agent) {
        sd_error err = { 0 };
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_recipient_seal(entry_name, agent->box_pk, signer, &json, &len, &err), 0, "%s",
                     err.message);
        cr_assert_eq(sd_store_recipient_put(w->store, entry_name, json, len, &err), 0, "%s", err.message);
        free(json);
}

Test(client, put_then_fetch_round_trip_and_older_versions) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };

        cr_assert_eq(put_text(&w, "db_password", "hunter2"), 1);
        cr_assert_eq(put_text(&w, "db_password", "correct horse"), 2);

        const unsigned char *pk = w.writer->pub.box_pk, *sk = w.writer->box_sk;
        cr_assert_eq(fetch_text(&w, pk, sk, "db_password", 0, "correct horse", &err), 0, "%s", err.message);
        cr_assert_eq(fetch_text(&w, pk, sk, "db_password", 2, "correct horse", &err), 0, "%s", err.message);
        cr_assert_eq(fetch_text(&w, pk, sk, "db_password", 1, "hunter2", &err), 0, "%s", err.message);
        cr_assert_eq(fetch_text(&w, pk, sk, "nope", 0, "", &err), -ENOENT);
        cr_assert(strstr(err.message, "'nope'"), "%s", err.message);

        /* The store holds no plaintext. */
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "! grep -rq -e hunter2 -e 'correct horse' '%s'", dir);
        cr_assert_eq(system(cmd), 0, "plaintext found in the store");
        world_done(&w);
}

Test(client, agent_registered_by_trusted_writer_can_fetch) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        struct sd_agent_key *agent = NULL;
        cr_assert_eq(sd_agent_key_generate(&agent, &err), 0, "%s", err.message);
        register_agent(&w, "host1", w.writer, agent);

        put_text(&w, "api_key", "k-123");
        cr_assert_eq(fetch_text(&w, agent->box_pk, agent->box_sk, "api_key", 0, "k-123", &err), 0, "%s",
                     err.message);
        cr_assert_str_eq(warnings, "", "nothing to warn about: '%s'", warnings);
        sd_agent_key_free(agent);
        world_done(&w);
}

Test(client, entry_signed_by_untrusted_writer_is_skipped_and_named) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        struct sd_writer_key *mallory = NULL;
        struct sd_agent_key *good = NULL, *planted = NULL;
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&good, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&planted, &err), 0);
        register_agent(&w, "host1", w.writer, good);
        register_agent(&w, "evilhost", mallory, planted);
        /* And one entry that is not a recipient entry at all. */
        cr_assert_eq(sd_store_recipient_put(w.store, "garbage", "{\"format\":1", 11, &err), 0);

        put_text(&w, "db", "s3cret");

        char mallory_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(mallory->pub.sign_pk, mallory_id);
        cr_assert(strstr(warnings, "'evilhost'") && strstr(warnings, mallory_id),
                  "untrusted entry not reported with its signer: '%s'", warnings);
        cr_assert(strstr(warnings, "'garbage'"), "malformed entry not reported: '%s'", warnings);

        cr_assert_eq(fetch_text(&w, planted->box_pk, planted->box_sk, "db", 0, "", &err), -ENOKEY,
                     "an agent registered by an untrusted writer could decrypt: %s", err.message);
        cr_assert_eq(fetch_text(&w, good->box_pk, good->box_sk, "db", 0, "s3cret", &err), 0, "%s",
                     err.message);

        /* Collecting directly gives just the trusted key. */
        unsigned char (*keys)[SD_BOX_PK_BYTES] = NULL;
        size_t n = 0;
        cr_assert_eq(sd_recipients_collect(w.store, w.trust, &keys, &n, NULL, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(n, 1);
        cr_assert_eq(memcmp(keys[0], good->box_pk, SD_BOX_PK_BYTES), 0);
        free(keys);

        sd_writer_key_free(mallory);
        sd_agent_key_free(good);
        sd_agent_key_free(planted);
        world_done(&w);
}

Test(client, removed_recipient_loses_new_versions_keeps_old) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        struct sd_agent_key *agent = NULL;
        cr_assert_eq(sd_agent_key_generate(&agent, &err), 0);
        register_agent(&w, "host1", w.writer, agent);

        cr_assert_eq(put_text(&w, "db", "before"), 1);
        cr_assert_eq(sd_store_recipient_remove(w.store, "host1", &err), 0, "%s", err.message);
        cr_assert_eq(put_text(&w, "db", "after"), 2);

        cr_assert_eq(fetch_text(&w, agent->box_pk, agent->box_sk, "db", 2, "", &err), -ENOKEY,
                     "a removed recipient can read the new version");
        cr_assert_eq(fetch_text(&w, agent->box_pk, agent->box_sk, "db", 1, "before", &err), 0, "%s",
                     err.message);
        cr_assert_eq(fetch_text(&w, w.writer->pub.box_pk, w.writer->box_sk, "db", 2, "after", &err), 0,
                     "%s", err.message);
        sd_agent_key_free(agent);
        world_done(&w);
}

Test(client, delete_writes_a_tombstone_and_fetch_says_deleted) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        const unsigned char *pk = w.writer->pub.box_pk, *sk = w.writer->box_sk;

        put_text(&w, "db", "v1");
        uint64_t version = 0;
        cr_assert_eq(sd_secret_delete(w.store, w.writer, w.trust, "db", &w.opts, &version, &err), 0, "%s",
                     err.message);
        cr_assert_eq(version, 2);

        cr_assert_eq(fetch_text(&w, pk, sk, "db", 0, "", &err), -ENOENT);
        cr_assert(strstr(err.message, "secret 'db' was deleted in version 2"), "%s", err.message);

        struct sd_secret *value = (struct sd_secret *) 1;
        struct sd_envelope_info info = { 0 };
        cr_assert_eq(sd_secret_fetch(w.store, w.trust, pk, sk, "db", 0, 1, &value, &info, &err), 0, "%s",
                     err.message);
        cr_assert_null(value);
        cr_assert(info.tombstone);
        cr_assert_eq(info.version, 2);

        /* The old version is still there for history. */
        cr_assert_eq(fetch_text(&w, pk, sk, "db", 1, "v1", &err), 0, "%s", err.message);

        cr_assert_eq(sd_secret_delete(w.store, w.writer, w.trust, "db", &w.opts, &version, &err), -ENOENT,
                     "deleted twice");
        cr_assert(strstr(err.message, "'db'"), "%s", err.message);
        cr_assert_eq(sd_secret_delete(w.store, w.writer, w.trust, "missing", &w.opts, &version, &err),
                     -ENOENT);
        cr_assert(strstr(err.message, "'missing'"), "%s", err.message);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(w.store, "missing", &latest, NULL), -ENOENT, "delete created a secret");

        /* Writing again brings it back. */
        cr_assert_eq(put_text(&w, "db", "v3"), 3);
        cr_assert_eq(fetch_text(&w, pk, sk, "db", 0, "v3", &err), 0, "%s", err.message);
        world_done(&w);
}

Test(client, tombstone_by_untrusted_writer_does_not_count) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        struct sd_writer_key *mallory = NULL;
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        put_text(&w, "db", "v1");
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_envelope_seal("db", 2, NULL, mallory, NULL, 0, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_put(w.store, "db", 2, json, len, &err), 0, "%s", err.message);
        free(json);

        uint64_t version = 0;
        cr_assert_eq(sd_secret_delete(w.store, w.writer, w.trust, "db", &w.opts, &version, &err), 0,
                     "an untrusted tombstone blocked a delete: %s", err.message);
        cr_assert_eq(version, 3);
        sd_writer_key_free(mallory);
        world_done(&w);
}

Test(client, empty_and_oversized_values_are_refused_naming_the_secret) {
        struct world w = { 0 };
        world_init(&w);
        sd_error err = { 0 };
        uint64_t version = 0;

        struct sd_secret *empty = NULL;
        cr_assert_eq(sd_secret_new(0, &empty), 0);
        cr_assert_eq(sd_secret_put(w.store, w.writer, w.trust, "db", empty, &w.opts, &version, &err), -EINVAL);
        cr_assert(strstr(err.message, "'db'") && strstr(err.message, "refusing an empty value"), "%s",
                  err.message);
        sd_secret_free(empty);

        struct sd_put_options small = w.opts;
        small.max_len = 16;
        struct sd_secret *v17 = text_secret("0123456789abcdefX");
        cr_assert_eq(sd_secret_put(w.store, w.writer, w.trust, "api_key", v17, &small, &version, &err), -EFBIG);
        cr_assert(strstr(err.message, "'api_key'") && strstr(err.message, "16"), "%s", err.message);
        sd_secret_free(v17);

        /* Above SD_VALUE_MAX even when the caller asks for more. */
        struct sd_put_options huge = w.opts;
        huge.max_len = SD_VALUE_MAX * 4;
        struct sd_secret *big = NULL;
        cr_assert_eq(sd_secret_new(SD_VALUE_MAX + 1, &big), 0);
        memset(big->data, 'x', big->len);
        cr_assert_eq(sd_secret_put(w.store, w.writer, w.trust, "big", big, &huge, &version, &err), -EFBIG);
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", SD_VALUE_MAX);
        cr_assert(strstr(err.message, "'big'") && strstr(err.message, limit), "%s", err.message);
        sd_secret_free(big);

        cr_assert_eq(sd_secret_put(w.store, w.writer, w.trust, "../etc", NULL, &w.opts, &version, &err), -EINVAL);
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
                                if (sd_secret_put(s, w.writer, w.trust, "race", value, NULL, NULL, NULL) < 0)
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
        for (uint64_t v = 1; v <= 2 * PER_PROCESS; v++) {
                struct sd_secret *value = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_secret_fetch(w.store, w.trust, w.writer->pub.box_pk, w.writer->box_sk, "race", v,
                                             0, &value, NULL, &err), 0, "v%" PRIu64 ": %s", v, err.message);
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
        cr_assert_eq(sd_store_put(w.store, "db", 2, "{\"format\":1,\"kind\":\"sec", 24, &err), 0);
        cr_assert_eq(fetch_text(&w, w.writer->pub.box_pk, w.writer->box_sk, "db", 0, "", &err), -EBADMSG);
        /* Writing goes on past the garbage. */
        cr_assert_eq(put_text(&w, "db", "v3"), 3);
        world_done(&w);
}
