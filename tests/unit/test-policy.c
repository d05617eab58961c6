/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/client.h"
#include "secretd/policy.h"
#include "secretd/realm.h"
#include "../realm-fixture.h"

static char dir[] = "/tmp/secretd-policy-XXXXXX";
static char url[300], state[300];
static struct sd_writer_key *alice, *bob, *carol, *mallory;
static struct sd_agent_key *host1;
static char warnings[8192];

static void collect_warning(void *userdata, const char *message) {
        size_t used = strlen(warnings);
        (void) snprintf(warnings + used, sizeof(warnings) - used, "%s\n", message);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(url, sizeof(url), "file://%s/store", dir);
        snprintf(state, sizeof(state), "%s/state.json", dir);
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&alice, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&bob, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&carol, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&host1, &err), 0);
        warnings[0] = '\0';
}

static void teardown(void) {
        sd_writer_key_free(alice);
        sd_writer_key_free(bob);
        sd_writer_key_free(carol);
        sd_writer_key_free(mallory);
        sd_agent_key_free(host1);
        char cmd[300];
        if (secure_getenv("SECRETD_TEST_KEEP"))
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(policy, .init = setup, .fini = teardown);

/* A v1 with every kind of entry: alice admin, ci writer of db_* and app?,
 * host1 recipient of every name. */
static struct sd_policy *full_policy(void) {
        struct sd_policy *p = fx_policy(alice, NULL);
        const char *pats[] = { "db_*", "app?" };
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_add(p, SD_POLICY_WRITERS, "ci", bob->pub.sign_pk, bob->pub.box_pk, pats, 2, &err), 0, "%s",
                     err.message);
        fx_recipient(p, "host1", host1->box_pk, NULL);
        fx_sign(p, alice);
        return p;
}

/* ---- the document ---- */

/* An independent implementation of docs/trust.md "Signed bytes". */
struct bytes {
        unsigned char *data;
        size_t len;
};

static void put(struct bytes *b, const void *p, size_t n) {
        b->data = realloc(b->data, b->len + n + 1);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void put_u32(struct bytes *b, uint32_t v) {
        unsigned char x[4] = { (unsigned char) (v >> 24), (unsigned char) (v >> 16), (unsigned char) (v >> 8),
                               (unsigned char) v };
        put(b, x, 4);
}

static void put_u64(struct bytes *b, uint64_t v) {
        put_u32(b, (uint32_t) (v >> 32));
        put_u32(b, (uint32_t) v);
}

static void put_field(struct bytes *b, const void *p, size_t n) {
        put_u32(b, (uint32_t) n);
        put(b, p, n);
}

static void put_str(struct bytes *b, const char *s) {
        put_field(b, s, strlen(s));
}

static void put_b64url(struct bytes *b, const char *line, size_t skip, size_t n_bytes, size_t from, size_t count) {
        unsigned char buf[64];
        size_t len = 0;
        cr_assert_eq(sodium_base642bin(buf, sizeof(buf), line + skip, strlen(line) - skip, NULL, &len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
        cr_assert_eq(len, n_bytes);
        put_field(b, buf + from, count);
}

static struct bytes docs_policy_signed_bytes(json_t *root) {
        struct bytes b = { 0 };
        put_str(&b, "secretd/policy/v1");
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "format")));
        unsigned char realm[16];
        size_t len = 0;
        const char *r = json_string_value(json_object_get(root, "realm"));
        cr_assert_eq(sodium_base642bin(realm, 16, r, strlen(r), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
        put_field(&b, realm, 16);
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "version")));
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "created")));
        put_u32(&b, (uint32_t) json_integer_value(json_object_get(root, "threshold")));
        const char *lists[] = { "admins", "writers", "recipients" };
        for (size_t l = 0; l < 3; l++) {
                json_t *arr = json_object_get(root, lists[l]);
                put_u32(&b, (uint32_t) json_array_size(arr));
                for (size_t i = 0; i < json_array_size(arr); i++) {
                        json_t *e = json_array_get(arr, i);
                        put_str(&b, json_string_value(json_object_get(e, "name")));
                        const char *key = json_string_value(json_object_get(e, "key"));
                        if (l < 2) {
                                put_b64url(&b, key, 5, 64, 0, 32);
                                put_b64url(&b, key, 5, 64, 32, 32);
                        } else {
                                put_b64url(&b, key, 5, 32, 0, 32);
                        }
                        if (l > 0) {
                                json_t *pats = json_object_get(e, "patterns");
                                put_u32(&b, (uint32_t) json_array_size(pats));
                                for (size_t k = 0; k < json_array_size(pats); k++)
                                        put_str(&b, json_string_value(json_array_get(pats, k)));
                        }
                }
        }
        return b;
}

Test(policy, json_round_trip_and_signed_bytes_match_docs) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        size_t len = 0;
        _cleanup_free_ char *json = fx_policy_json(p, &len);
        sd_error err = { 0 };
        _cleanup_policy_ struct sd_policy *back = NULL;
        cr_assert_eq(sd_policy_parse(json, len, &back, &err), 0, "%s", err.message);
        unsigned char a[32], b[32];
        cr_assert_eq(sd_policy_digest(p, a), 0);
        cr_assert_eq(sd_policy_digest(back, b), 0);
        cr_assert_eq(memcmp(a, b, 32), 0);
        _cleanup_free_ char *again = fx_policy_json(back, NULL);
        cr_assert_str_eq(again, json, "the encoding is canonical");

        json_error_t jerr;
        json_t *root = json_loads(json, 0, &jerr);
        cr_assert_not_null(root);
        struct bytes docs = docs_policy_signed_bytes(root);
        unsigned char *mine = NULL;
        size_t mine_len = 0;
        cr_assert_eq(sd_policy_signed_bytes(p, &mine, &mine_len), 0);
        cr_assert_eq(mine_len, docs.len);
        cr_assert_eq(memcmp(mine, docs.data, docs.len), 0, "the signed bytes are as docs/trust.md says");
        json_t *sig = json_array_get(json_object_get(root, "signatures"), 0);
        unsigned char signer[32], signature[64];
        const char *t = json_string_value(json_object_get(sig, "signer"));
        cr_assert_eq(sodium_base642bin(signer, 32, t, strlen(t), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
        t = json_string_value(json_object_get(sig, "signature"));
        cr_assert_eq(sodium_base642bin(signature, 64, t, strlen(t), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
        cr_assert_eq(crypto_sign_verify_detached(signature, docs.data, docs.len, alice->pub.sign_pk), 0);
        free(mine);
        free(docs.data);
        json_decref(root);
}

/* Replace the first `from` in json with `to`. */
static char *replace(const char *json, const char *from, const char *to) {
        const char *at = strstr(json, from);
        cr_assert_not_null(at, "'%s' not in %s", from, json);
        char *out;
        cr_assert_geq(asprintf(&out, "%.*s%s%s", (int) (at - json), json, to, at + strlen(from)), 0);
        return out;
}

Test(policy, parser_refuses_malformed_documents_naming_the_field) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        _cleanup_free_ char *json = fx_policy_json(p, NULL);
        char alice_line[128], bob_line[128];
        char *line = NULL;
        cr_assert_eq(sd_writer_pub_format(&alice->pub, &line), 0);
        snprintf(alice_line, sizeof(alice_line), "\"%s\"", line);
        free(line);
        cr_assert_eq(sd_writer_pub_format(&bob->pub, &line), 0);
        snprintf(bob_line, sizeof(bob_line), "\"%s\"", line);
        free(line);
        char host_line[128];
        cr_assert_eq(sd_agent_pub_format(host1->box_pk, &line), 0);
        snprintf(host_line, sizeof(host_line), "\"%s\"", line);
        char host_tail[160];
        snprintf(host_tail, sizeof(host_tail), "\"%s trailing\"", line);
        free(line);
        struct {
                char *text;
                const char *cause;
        } cases[] = {
                { replace(json, "\"format\":1", "\"format\":2"), "field 'format' is 2" },
                { replace(json, "\"kind\":\"policy\"", "\"kind\":\"envelope\""), "field 'kind' is 'envelope'" },
                { replace(json, "\"threshold\":1", "\"threshold\":0"), "field 'threshold' is 0" },
                { replace(json, "\"threshold\":1", "\"threshold\":2"), "threshold 2 must be from 1 to 1" },
                { replace(json, "\"threshold\":1", "\"threshold\":33"), "field 'threshold' is 33" },
                { replace(json, "\"version\":1", "\"version\":0"), "field 'version' is 0" },
                { replace(json, "\"created\":", "\"created\":-"), "field 'created' is -" },
                { replace(json, "\"kind\":\"policy\"", "\"kind\":\"policy\",\"extra\":1"), "unknown field 'extra'" },
                { replace(json, "\"threshold\":1,", ""), "missing field 'threshold'" },
                { replace(json, "\"realm\":\"", "\"realm\":\"AA"), "field 'realm' must be 16 bytes" },
                { replace(json, "\"name\":\"ci\"", "\"name\":\"../ci\""), "field 'writers[0].name'" },
                { replace(json, "\"db_*\"", "\"db/*\""), "field 'writers[0].patterns[0]'" },
                { replace(json, "\"db_*\"", "\"db[0]\""), "field 'writers[0].patterns[0]'" },
                { replace(json, "\"db_*\"", "\"\""), "may not be empty" },
                { replace(json, "[\"db_*\",\"app?\"]", "[]"), "field 'writers[0].patterns' has 0 patterns" },
                { replace(json, "\"name\":\"admin\",", "\"name\":\"admin\",\"patterns\":[\"*\"],"),
                  "unknown field 'admins[0].patterns'" },
                { replace(json, host_line, host_tail), "field 'recipients[0].key' must be one public key line" },
                { replace(json, host_line, alice_line), "field 'recipients[0].key'" },
                { replace(json, bob_line, host_line), "field 'writers[0].key'" },
                { replace(json, "\"admins\":[", "\"admins\":[{\"name\":\"admin\",\"key\":\"x\"},"),
                  "field 'admins[0].key'" },
                { replace(json, "\"admins\":[{", "\"admins\":[],\"x\":[{"), "unknown field 'x'" },
                { replace(json, "\"signatures\":[", "\"signatures\":[1,"), "field 'signatures[0]' must be an object" },
                { replace(json, "\"signatures\":[{\"signer\":\"", "\"signatures\":[{\"signer\":\"A"),
                  "field 'signatures[0].signer' must be 32 bytes" },
                { strdup("[]"), "not a JSON object" },
                { strdup("{\"format\":1"), "invalid JSON" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                sd_error err = { 0 };
                struct sd_policy *out = (struct sd_policy *) 0x1;
                int r = sd_policy_parse(cases[i].text, strlen(cases[i].text), &out, &err);
                cr_assert_eq(r, -EBADMSG, "case %zu: %d %s", i, r, err.message);
                cr_assert(strstr(err.message, cases[i].cause), "case %zu: '%s' lacks '%s'", i, err.message, cases[i].cause);
                cr_assert_eq(strncmp(err.message, "malformed policy", 16), 0, "case %zu: %s", i, err.message);
                cr_assert_eq(out, (struct sd_policy *) 0x1, "case %zu: output touched", i);
                free(cases[i].text);
        }

        /* Names and keys are unique per list; a signer is listed once. */
        _cleanup_policy_ struct sd_policy *two = fx_next(p);
        fx_writer(two, "ci2", carol, NULL);
        fx_sign(two, alice);
        _cleanup_free_ char *tj = fx_policy_json(two, NULL);
        char *dup_name = replace(tj, "\"name\":\"ci2\"", "\"name\":\"ci\"");
        sd_error err = { 0 };
        struct sd_policy *out = NULL;
        cr_assert_eq(sd_policy_parse(dup_name, strlen(dup_name), &out, &err), -EBADMSG);
        cr_assert(strstr(err.message, "writer 'ci' is listed twice"), "%s", err.message);
        free(dup_name);
        json_error_t jerr;
        json_t *root = json_loads(tj, 0, &jerr);
        json_t *sigs = json_object_get(root, "signatures");
        json_array_append(sigs, json_array_get(sigs, 0));
        char *dup_sig = json_dumps(root, JSON_COMPACT);
        cr_assert_eq(sd_policy_parse(dup_sig, strlen(dup_sig), &out, &err), -EBADMSG);
        cr_assert(strstr(err.message, "is listed twice"), "%s", err.message);
        free(dup_sig);
        json_decref(root);

        /* Over the size limit, refused before parsing. */
        size_t big_len = SD_POLICY_MAX_BYTES + 1;
        char *big = malloc(big_len);
        memset(big, ' ', big_len);
        cr_assert_eq(sd_policy_parse(big, big_len, &out, &err), -EBADMSG);
        cr_assert(strstr(err.message, "over the limit"), "%s", err.message);
        free(big);
}

Test(policy, drafts_are_edited_and_shared_policies_never) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        sd_error err = { 0 };
        struct sd_policy *second = sd_policy_ref(p);
        cr_assert_eq(sd_policy_add(p, SD_POLICY_WRITERS, "x", carol->pub.sign_pk, carol->pub.box_pk, NULL, 0, &err), -EBUSY);
        cr_assert_eq(sd_policy_sign(p, alice, &err), -EBUSY);
        sd_policy_unref(second);

        _cleanup_policy_ struct sd_policy *d = fx_next(p);
        cr_assert_eq(sd_policy_version(d), 2);
        cr_assert_eq(sd_policy_n_signatures(d), 0, "a draft starts unsigned");
        cr_assert_eq(sd_policy_add(d, SD_POLICY_WRITERS, "ci", carol->pub.sign_pk, carol->pub.box_pk, NULL, 0, &err),
                     -EEXIST);
        cr_assert_eq(sd_policy_add(d, SD_POLICY_WRITERS, "other", bob->pub.sign_pk, bob->pub.box_pk, NULL, 0, &err),
                     -EEXIST);
        cr_assert(strstr(err.message, "is already a writer 'ci'"), "%s", err.message);
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_ADMINS, "nobody", &err), -ENOENT);
        cr_assert_eq(sd_policy_set_threshold(d, 2, &err), -EINVAL);
        const char *bad[] = { "a/b" };
        cr_assert_eq(sd_policy_add(d, SD_POLICY_RECIPIENTS, "h", NULL, carol->pub.box_pk, bad, 1, &err), -EINVAL);
        unsigned char zero[32] = { 0 };
        cr_assert_eq(sd_policy_add(d, SD_POLICY_RECIPIENTS, "h", NULL, zero, NULL, 0, &err), -EINVAL);
        cr_assert(strstr(err.message, "not a usable X25519"), "%s", err.message);
        /* A recipient added with no pattern may receive every name. */
        cr_assert_eq(sd_policy_add(d, SD_POLICY_RECIPIENTS, "h", NULL, carol->pub.box_pk, NULL, 0, &err), 0);
        const struct sd_policy_entry *h = sd_policy_find(d, SD_POLICY_RECIPIENTS, "h");
        cr_assert(h && h->n_patterns == 1 && strcmp(h->patterns[0], "*") == 0);
        /* An edit after signing drops the signature: it no longer applies. */
        fx_sign(d, alice);
        cr_assert_eq(sd_policy_n_signatures(d), 1);
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_RECIPIENTS, "h", &err), 0);
        cr_assert_eq(sd_policy_n_signatures(d), 0);
}

Test(policy, rules_for_writers_recipients_and_signers) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        sd_error err = { 0 };
        cr_assert(sd_pattern_match("db_*", "db_password"));
        cr_assert(sd_pattern_match("app?", "app1"));
        cr_assert_not(sd_pattern_match("app?", "app12"));
        cr_assert_not(sd_pattern_match("db_*", "xdb_password"));

        cr_assert_eq(sd_policy_check_write(p, alice->pub.sign_pk, "anything", true, &err), SD_WRITE_ALLOWED, "admins");
        cr_assert_eq(sd_policy_check_write(p, bob->pub.sign_pk, "db_password", true, &err), SD_WRITE_ALLOWED);
        cr_assert_eq(sd_policy_check_write(p, bob->pub.sign_pk, "api_token", true, &err), SD_WRITE_OUTSIDE_PATTERNS);
        cr_assert(strstr(err.message, "writer 'ci'") && strstr(err.message, "may write only db_*, app?, not 'api_token'"),
                  "%s", err.message);
        cr_assert_eq(sd_policy_check_write(p, mallory->pub.sign_pk, "db_x", false, &err), SD_WRITE_NOT_A_WRITER);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(mallory->pub.sign_pk, id);
        cr_assert(strstr(err.message, id) && strstr(err.message, "not a writer in policy v1"), "%s", err.message);

        cr_assert_eq(sd_policy_check_signer(p, bob->pub.sign_pk, "app1", &err), 0);
        cr_assert_eq(sd_policy_check_signer(p, bob->pub.sign_pk, "api", &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "whose patterns (db_*, app?) do not cover 'api' in policy v1"), "%s", err.message);

        /* host1 receives every name; with it gone, nobody does. */
        unsigned char(*keys)[32] = NULL;
        size_t n = 0, agents = 0;
        cr_assert_eq(sd_policy_recipients_for(p, "db_x", &keys, &n, &agents), 0);
        cr_assert_eq(n, 2);
        cr_assert_eq(agents, 1);
        cr_assert_eq(memcmp(keys[0], host1->box_pk, 32), 0);
        cr_assert_eq(memcmp(keys[1], alice->pub.box_pk, 32), 0, "the admin last");
        free(keys);
        _cleanup_policy_ struct sd_policy *d = fx_next(p);
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_RECIPIENTS, "host1", &err), 0);
        cr_assert_eq(sd_policy_check_write(d, alice->pub.sign_pk, "db_x", true, &err), SD_WRITE_NO_RECIPIENT);
        cr_assert(strstr(err.message, "no host could open 'db_x'"), "%s", err.message);
        cr_assert_eq(sd_policy_check_write(d, alice->pub.sign_pk, "db_x", false, &err), SD_WRITE_ALLOWED,
                     "a tombstone needs no recipient");
}

static void add_line(void *userdata, const char *line) {
        char *out = userdata;
        size_t used = strlen(out);
        (void) snprintf(out + used, 2048 - used, "%s\n", line);
}

Test(policy, changes_are_described_line_by_line) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        _cleanup_policy_ struct sd_policy *d = fx_next(p);
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_remove(d, SD_POLICY_RECIPIENTS, "host1", &err), 0);
        cr_assert_eq(sd_policy_add(d, SD_POLICY_ADMINS, "bob", bob->pub.sign_pk, bob->pub.box_pk, NULL, 0, &err), 0);
        cr_assert_eq(sd_policy_set_threshold(d, 2, &err), 0);
        char out[2048] = "";
        sd_policy_describe_changes(p, d, add_line, out);
        cr_assert(strstr(out, "+ admin bob ("), "%s", out);
        cr_assert(strstr(out, "- recipient host1 (") && strstr(out, "patterns *"), "%s", out);
        cr_assert(strstr(out, "threshold 1 -> 2"), "%s", out);
        out[0] = '\0';
        sd_policy_describe_changes(p, p, add_line, out);
        cr_assert_str_eq(out, "");
}

/* ---- thresholds and the chain rule ---- */

Test(policy, two_of_three_needs_two_distinct_admin_signatures) {
        /* v1: alice alone; v2: alice, bob, carol with threshold 2. */
        _cleanup_policy_ struct sd_policy *v1 = fx_policy(alice, NULL);
        _cleanup_policy_ struct sd_policy *v2 = fx_next(v1);
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_add(v2, SD_POLICY_ADMINS, "bob", bob->pub.sign_pk, bob->pub.box_pk, NULL, 0, &err), 0);
        cr_assert_eq(sd_policy_add(v2, SD_POLICY_ADMINS, "carol", carol->pub.sign_pk, carol->pub.box_pk, NULL, 0, &err), 0);
        cr_assert_eq(sd_policy_set_threshold(v2, 2, &err), 0);
        fx_sign(v2, alice);
        cr_assert_eq(sd_policy_verify_next(v1, v2, &err), -EKEYREJECTED, "one of v2's 2 signatures");
        cr_assert(strstr(err.message, "signed by 1 of the 2 of its own admins it needs"), "%s", err.message);
        /* The same key again does not count twice. */
        fx_sign(v2, alice);
        cr_assert_eq(sd_policy_n_signatures(v2), 1);
        cr_assert_eq(sd_policy_count_signatures(v2, v2), 1);
        /* Nor does a signature by someone who is no admin. */
        fx_sign(v2, mallory);
        cr_assert_eq(sd_policy_count_signatures(v2, v2), 1);
        cr_assert_eq(sd_policy_verify_next(v1, v2, &err), -EKEYREJECTED);
        fx_sign(v2, bob);
        cr_assert_eq(sd_policy_verify_next(v1, v2, &err), 0, "%s", err.message);

        /* v3 by bob alone: bob is one of v2's admins, but v2 needs two. */
        _cleanup_policy_ struct sd_policy *v3 = fx_next(v2);
        cr_assert_eq(sd_policy_remove(v3, SD_POLICY_ADMINS, "admin", &err), 0);
        fx_sign(v3, bob);
        cr_assert_eq(sd_policy_verify_next(v2, v3, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "signed by 1 of the 2 admins of v2 it needs"), "%s", err.message);
        /* alice (an admin of v2 only) meets v2's threshold, not v3's own;
         * carol's signature makes both. */
        fx_sign(v3, alice);
        cr_assert_eq(sd_policy_verify_next(v2, v3, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "signed by 1 of the 2 of its own admins it needs"), "%s", err.message);
        fx_sign(v3, carol);
        cr_assert_eq(sd_policy_verify_next(v2, v3, &err), 0, "%s", err.message);

        /* Only N+1 may follow N, within the realm. */
        _cleanup_policy_ struct sd_policy *v4 = fx_next(v3);
        _cleanup_policy_ struct sd_policy *v5 = fx_next(v4);
        fx_sign(v5, bob);
        fx_sign(v5, carol);
        cr_assert_eq(sd_policy_verify_next(v3, v5, &err), -EBADMSG);
        cr_assert(strstr(err.message, "cannot follow the trusted v3"), "%s", err.message);
        _cleanup_policy_ struct sd_policy *other = fx_policy(bob, NULL);
        cr_assert_eq(sd_policy_verify_next(other, v2, &err), -EBADMSG);
        cr_assert(strstr(err.message, "belongs to realm"), "%s", err.message);
}

/* ---- the pin ---- */

Test(policy, pin_line_round_trip_and_refusals) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        struct sd_realm_pin pin, back;
        sd_realm_pin_of(p, &pin);
        cr_assert_eq(pin.n_admins, 1);
        _cleanup_free_ char *line = NULL;
        cr_assert_eq(sd_realm_pin_format(&pin, &line), 0);
        cr_assert_eq(strncmp(line, "sdr1:", 5), 0);
        sd_error err = { 0 };
        char padded[256];
        snprintf(padded, sizeof(padded), "  %s\n", line);
        cr_assert_eq(sd_realm_pin_parse(padded, &back, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&back, &pin, sizeof(pin)), 0);

        unsigned char buf[16 + 3 * 32];
        memcpy(buf, pin.realm, 16);
        memcpy(buf + 16, alice->pub.sign_pk, 32);
        memcpy(buf + 48, alice->pub.sign_pk, 32);
        char twice[256] = "sdr1:";
        sodium_bin2base64(twice + 5, sizeof(twice) - 5, buf, 80, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char short_pin[64] = "sdr1:";
        sodium_bin2base64(short_pin + 5, sizeof(short_pin) - 5, buf, 16, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char odd[128] = "sdr1:";
        sodium_bin2base64(odd + 5, sizeof(odd) - 5, buf, 47, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        memset(buf + 16, 0xff, 32);
        char bad_point[128] = "sdr1:";
        sodium_bin2base64(bad_point + 5, sizeof(bad_point) - 5, buf, 48, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char two_words[300];
        snprintf(two_words, sizeof(two_words), "%s %s", line, line);
        _cleanup_free_ char *writer_line = NULL;
        cr_assert_eq(sd_writer_pub_format(&alice->pub, &writer_line), 0);
        struct {
                const char *text, *cause;
        } cases[] = {
                { "", "empty" },
                { writer_line, "must start with 'sdr1:'" },
                { "sdr1:***", "unpadded base64url" },
                { short_pin, "is not a 16-byte realm id followed by 32-byte admin keys" },
                { odd, "is not a 16-byte realm id followed by 32-byte admin keys" },
                { twice, "admin key 2 is listed twice" },
                { bad_point, "not a valid Ed25519 point" },
                { two_words, "one word" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                cr_assert_eq(sd_realm_pin_parse(cases[i].text, &back, &err), -EINVAL, "case %zu", i);
                cr_assert(strstr(err.message, cases[i].cause), "case %zu: '%s' lacks '%s'", i, err.message, cases[i].cause);
        }
}

Test(policy, only_pinned_admins_vouch_for_a_first_version) {
        _cleanup_policy_ struct sd_policy *p = full_policy();
        struct sd_realm_pin pin;
        sd_realm_pin_of(p, &pin);
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_verify_pinned(p, &pin, &err), 0, "%s", err.message);
        /* The same document signed by an unpinned key does not pass. */
        struct sd_realm_pin other = pin;
        memcpy(other.admins[0], bob->pub.sign_pk, 32);
        cr_assert_eq(sd_policy_verify_pinned(p, &other, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "signed by 0 of the 1 pinned admins it needs"), "%s", err.message);
        other = pin;
        other.realm[0] ^= 1;
        cr_assert_eq(sd_policy_verify_pinned(p, &other, &err), -EBADMSG);
        cr_assert(strstr(err.message, "belongs to realm") && strstr(err.message, "you pin realm"), "%s", err.message);
}

/* ---- the walk ---- */

static void publish(struct sd_store *s, const struct sd_policy *p) {
        size_t len = 0;
        _cleanup_free_ char *json = fx_policy_json(p, &len);
        sd_error err = { 0 };
        cr_assert_eq(sd_store_policy_put(s, sd_policy_version(p), json, len, &err), 0, "%s", err.message);
}

static char *policy_path(uint64_t v) {
        char *path;
        cr_assert_geq(asprintf(&path, "%s/store/policy/%020" PRIu64 ".env", dir, v), 0);
        return path;
}

/* v1 alice; v2 adds bob (alice signs); v3 drops alice (both sign); v4 adds
 * a recipient (bob signs). */
static struct sd_policy *rotated_chain(struct sd_store *s) {
        struct sd_policy *v1 = fx_policy(alice, NULL);
        publish(s, v1);
        struct sd_policy *v2 = fx_next(v1);
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_add(v2, SD_POLICY_ADMINS, "bob", bob->pub.sign_pk, bob->pub.box_pk, NULL, 0, &err), 0);
        fx_sign(v2, alice);
        publish(s, v2);
        struct sd_policy *v3 = fx_next(v2);
        cr_assert_eq(sd_policy_remove(v3, SD_POLICY_ADMINS, "admin", &err), 0);
        fx_sign(v3, alice);
        fx_sign(v3, bob);
        publish(s, v3);
        struct sd_policy *v4 = fx_next(v3);
        fx_recipient(v4, "host1", host1->box_pk, NULL);
        fx_sign(v4, bob);
        publish(s, v4);
        sd_policy_unref(v1);
        sd_policy_unref(v2);
        sd_policy_unref(v3);
        return v4;
}

Test(policy, walk_from_a_pin_taken_before_or_after_admins_rotated) {
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        _cleanup_policy_ struct sd_policy *v4 = rotated_chain(s);

        struct sd_realm_record rec = { 0 }, now;
        memcpy(rec.pin.realm, sd_policy_realm(v4), 16);
        rec.pin.n_admins = 1;
        memcpy(rec.pin.admins[0], alice->pub.sign_pk, 32);       /* at v1 */
        _cleanup_policy_ struct sd_policy *got = NULL;
        cr_assert_eq(sd_realm_walk(s, &rec, NULL, NULL, &got, &now, &err), 1, "%s", err.message);
        cr_assert_eq(sd_policy_version(got), 4);
        cr_assert_eq(now.version, 4);
        unsigned char digest[32];
        cr_assert_eq(sd_policy_digest(v4, digest), 0);
        cr_assert_eq(memcmp(now.digest, digest, 32), 0);

        /* Bob's pin, taken at v4: v2 is not signed by bob, v3 is. */
        memcpy(rec.pin.admins[0], bob->pub.sign_pk, 32);
        sd_policy_unrefp(&got);
        cr_assert_eq(sd_realm_walk(s, &rec, NULL, NULL, &got, &now, &err), 1, "%s", err.message);
        cr_assert_eq(sd_policy_version(got), 4);

        /* Mallory's pin: nothing verifies. */
        memcpy(rec.pin.admins[0], mallory->pub.sign_pk, 32);
        sd_policy_unrefp(&got);
        cr_assert_eq(sd_realm_walk(s, &rec, NULL, NULL, &got, &now, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "no policy version in the store (v1 to v4) is signed by the pinned admins"), "%s",
                  err.message);
        cr_assert_null(got);
}

Test(policy, rollback_and_a_swapped_version_are_refused_and_the_record_stays) {
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        _cleanup_policy_ struct sd_policy *v4 = rotated_chain(s);
        struct sd_realm_pin pin;
        sd_realm_pin_of(v4, &pin);

        _cleanup_realm_ struct sd_realm *r = NULL;
        cr_assert_eq(sd_realm_new(s, &pin, state, &r, &err), 0, "%s", err.message);
        cr_assert_null(sd_realm_policy(r));
        cr_assert_eq(sd_realm_refresh(r, &err), 1, "%s", err.message);
        struct sd_realm_record saved;
        cr_assert_eq(sd_realm_record_load(state, &saved, &err), 0, "%s", err.message);
        cr_assert_eq(saved.version, 4);
        struct stat st;
        cr_assert_eq(stat(state, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600);

        /* v4 withdrawn: the store offers v3. */
        _cleanup_free_ char *p4 = policy_path(4);
        _cleanup_free_ char *p4_saved = NULL;
        cr_assert_geq(asprintf(&p4_saved, "%s.saved", p4), 0);
        cr_assert_eq(rename(p4, p4_saved), 0);
        cr_assert_eq(sd_realm_refresh(r, &err), -ESTALE);
        cr_assert(strstr(err.message, "offers policy v3") && strstr(err.message, "older than v4 already verified"), "%s",
                  err.message);
        _cleanup_policy_ struct sd_policy *held = sd_realm_policy(r);
        cr_assert_eq(sd_policy_version(held), 4);

        /* Another document at v4 (validly signed by bob): refused too. */
        _cleanup_policy_ struct sd_policy *v3copy = NULL;
        {
                char *data = NULL;
                size_t len = 0;
                cr_assert_eq(sd_store_policy_get(s, 3, &data, &len, NULL, &err), 0);
                cr_assert_eq(sd_policy_parse(data, len, &v3copy, &err), 0);
                free(data);
        }
        _cleanup_policy_ struct sd_policy *alt = fx_next(v3copy);
        fx_recipient(alt, "evil", mallory->pub.box_pk, NULL);
        fx_sign(alt, bob);
        publish(s, alt);
        cr_assert_eq(sd_realm_refresh(r, &err), -ESTALE);
        cr_assert(strstr(err.message, "policy v4 differs from the v4"), "%s", err.message);

        /* After every refusal the record still says v4 with its digest. */
        cr_assert_eq(sd_realm_record_load(state, &saved, &err), 0);
        cr_assert_eq(saved.version, 4);
        unsigned char digest[32];
        cr_assert_eq(sd_policy_digest(v4, digest), 0);
        cr_assert_eq(memcmp(saved.digest, digest, 32), 0);
}

Test(policy, a_forged_next_version_is_an_error_or_a_warning_and_never_recorded) {
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        _cleanup_policy_ struct sd_policy *v4 = rotated_chain(s);
        struct sd_realm_pin pin;
        sd_realm_pin_of(v4, &pin);
        _cleanup_realm_ struct sd_realm *r = NULL;
        cr_assert_eq(sd_realm_new(s, &pin, state, &r, &err), 0);
        cr_assert_eq(sd_realm_refresh(r, &err), 1, "%s", err.message);

        /* v5 signed by mallory alone (fast-forward needs admins). */
        _cleanup_policy_ struct sd_policy *v5 = fx_next(v4);
        fx_recipient(v5, "evil", mallory->pub.box_pk, NULL);
        fx_sign(v5, mallory);
        publish(s, v5);
        cr_assert_eq(sd_realm_refresh(r, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "policy v5: signed by 0 of the 1 admins of v4"), "%s", err.message);
        struct sd_realm_record saved;
        cr_assert_eq(sd_realm_record_load(state, &saved, &err), 0);
        cr_assert_eq(saved.version, 4, "persisted before every check passed");

        /* The agent's lenient mode: keep v4, say why. */
        sd_realm_set_warn(r, collect_warning, NULL);
        cr_assert_eq(sd_realm_refresh(r, &err), 0, "%s", err.message);
        cr_assert(strstr(warnings, "keeping policy v4"), "%s", warnings);
        _cleanup_policy_ struct sd_policy *held = sd_realm_policy(r);
        cr_assert_eq(sd_policy_version(held), 4);
}

Test(policy, record_file_is_strict_and_private) {
        sd_error err = { 0 };
        struct sd_realm_record rec = { .version = 3 }, back;
        _cleanup_policy_ struct sd_policy *p = full_policy();
        sd_realm_pin_of(p, &rec.pin);
        rec.digest[0] = 7;
        cr_assert_eq(sd_realm_record_save(state, &rec, "file:///x", &err), 0, "%s", err.message);
        cr_assert_eq(sd_realm_record_load(state, &back, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&back, &rec, sizeof(rec)), 0);
        cr_assert_eq(chmod(state, 0622), 0);
        cr_assert_eq(sd_realm_record_load(state, &back, &err), -EPERM);
        cr_assert(strstr(err.message, "lets group or others change this realm record"), "%s", err.message);
        cr_assert_eq(chmod(state, 0600), 0);
        FILE *f = fopen(state, "we");
        fputs("{\"format\":1,\"store\":\"\",\"pin\":\"x\",\"version\":1,\"digest\":\"\"}", f);
        fclose(f);
        cr_assert_eq(sd_realm_record_load(state, &back, &err), -EBADMSG);
        cr_assert(strstr(err.message, "field 'pin'"), "%s", err.message);
}

Test(policy, pin_file_is_a_root_of_trust) {
        sd_error err = { 0 };
        _cleanup_policy_ struct sd_policy *p = full_policy();
        struct sd_realm_pin pin, back;
        sd_realm_pin_of(p, &pin);
        char path[400];
        snprintf(path, sizeof(path), "%s/etc/realm", dir);
        cr_assert_eq(sd_realm_pin_save_file(path, &pin, &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0644);
        cr_assert_eq(sd_realm_pin_load_file(path, &back, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&back, &pin, sizeof(pin)), 0);
        cr_assert_eq(chmod(path, 0666), 0);
        cr_assert_eq(sd_realm_pin_load_file(path, &back, &err), -EPERM);
        cr_assert(strstr(err.message, "is mode 0666 (group or others can write it)"), "%s", err.message);
        /* The root-of-trust rule (sd_trust_root_open): a link of ours is
         * followed, and the file it leads to is checked in turn. */
        char link[400];
        snprintf(link, sizeof(link), "%s/etc/link", dir);
        cr_assert_eq(symlink(path, link), 0);
        cr_assert_eq(sd_realm_pin_load_file(link, &back, &err), -EPERM);
        cr_assert_eq(chmod(path, 0644), 0);
        cr_assert_eq(sd_realm_pin_load_file(link, &back, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(&back, &pin, sizeof(pin)), 0);
}

/* Readers keep verifying with the policy they hold while another thread
 * swaps newer ones in: under ASan and valgrind a use-after-free shows. */
struct reader {
        struct sd_realm *realm;
        const char *json;
        volatile int stop;
        uint64_t highest;
        int failures;
};

static void *read_loop(void *userdata) {
        struct reader *rd = userdata;
        while (!rd->stop) {
                _cleanup_policy_ struct sd_policy *p = sd_realm_policy(rd->realm);
                if (!p)
                        continue;
                if (sd_policy_version(p) < rd->highest)
                        rd->failures++;
                rd->highest = sd_policy_version(p);
                sd_error err = { 0 };
                if (sd_envelope_verify(rd->json, strlen(rd->json), p, 0, NULL, &err) < 0)
                        rd->failures++;
        }
        return NULL;
}

Test(policy, a_realm_swaps_policies_while_readers_verify) {
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        struct sd_policy *cur = fx_policy(alice, NULL);
        fx_recipient(cur, "host1", host1->box_pk, NULL);
        fx_sign(cur, alice);
        publish(s, cur);
        _cleanup_secret_ struct sd_secret *v = NULL;
        cr_assert_eq(sd_secret_new_from("x", 1, &v), 0);
        _cleanup_free_ char *json = NULL;
        cr_assert_eq(sd_envelope_seal("db", 1, v, alice, cur, &json, NULL, &err), 0);
        struct sd_realm_pin pin;
        sd_realm_pin_of(cur, &pin);
        _cleanup_realm_ struct sd_realm *r = NULL;
        cr_assert_eq(sd_realm_new(s, &pin, state, &r, &err), 0);
        cr_assert_eq(sd_realm_refresh(r, &err), 1);

        struct reader rd = { .realm = r, .json = json };
        pthread_t threads[2];
        for (int i = 0; i < 2; i++)
                cr_assert_eq(pthread_create(&threads[i], NULL, read_loop, &rd), 0);
        for (int i = 0; i < 20; i++) {
                struct sd_policy *next = fx_next(cur);
                char name[16];
                snprintf(name, sizeof(name), "w%d", i);
                fx_writer(next, name, (i % 2) ? bob : carol, "x*");
                if (i > 0) {
                        char prev[16];
                        snprintf(prev, sizeof(prev), "w%d", i - 1);
                        cr_assert_eq(sd_policy_remove(next, SD_POLICY_WRITERS, prev, &err), 0);
                }
                fx_sign(next, alice);
                publish(s, next);
                cr_assert_eq(sd_realm_refresh(r, &err), 1, "%s", err.message);
                sd_policy_unref(cur);
                cur = next;
        }
        rd.stop = 1;
        for (int i = 0; i < 2; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        cr_assert_eq(rd.failures, 0);
        _cleanup_policy_ struct sd_policy *held = sd_realm_policy(r);
        cr_assert_eq(sd_policy_version(held), 21);
        sd_policy_unref(cur);
}
