/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretd/envelope.h"
#include "../realm-fixture.h"

/* ---- fixture: a realm whose policy has an admin, a writer and an agent;
 * mallory and a stranger agent are in no policy ---- */

static struct sd_writer_key *admin, *writer, *mallory;
static struct sd_agent_key *agent, *stranger;
static struct sd_policy *policy;       /* v1: admin, writer '*', agent '*' */
static struct sd_trust *trust;         /* legacy recipient entries: the writer */

static void setup(void) {
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&admin, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&writer, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&mallory, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_generate(&agent, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_generate(&stranger, &err), 0, "%s", err.message);
        policy = fx_policy(admin, NULL);
        fx_writer(policy, "dev", writer, NULL);
        fx_recipient(policy, "host1", agent->box_pk, NULL);
        fx_sign(policy, admin);
        cr_assert_eq(sd_trust_new(&trust), 0);
        cr_assert_eq(sd_trust_add(trust, &writer->pub), 0);
}

static void teardown(void) {
        sd_writer_key_free(admin);
        sd_writer_key_free(writer);
        sd_writer_key_free(mallory);
        sd_agent_key_free(agent);
        sd_agent_key_free(stranger);
        sd_policy_unref(policy);
        sd_trust_free(trust);
}

/* The agent's key pair as the open call takes it. */
static struct sd_box_keypair kp_of(const struct sd_agent_key *k) {
        return (struct sd_box_keypair) { k->box_pk, k->box_sk };
}

TestSuite(envelope, .init = setup, .fini = teardown);

static struct sd_secret *value_of(size_t len, unsigned salt) {
        struct sd_secret *s = NULL;
        cr_assert_eq(sd_secret_new(len, &s), 0);
        for (size_t i = 0; i < len; i++)
                s->data[i] = (unsigned char) (i * 31 + salt);
        return s;
}

static char *seal_under(const struct sd_policy *p, const struct sd_writer_key *w, const char *name, uint64_t version,
                        const struct sd_secret *v) {
        char *json = NULL;
        size_t len = 0;
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_seal(name, version, v, w, p, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(strlen(json), len);
        return json;
}

static char *seal_by(const struct sd_writer_key *w, const char *name, uint64_t version, const struct sd_secret *v) {
        return seal_under(policy, w, name, version, v);
}

/* An envelope signed by mallory, bound to this realm: sealed under a policy
 * of the same realm id that mallory made up. */
static char *seal_by_mallory(const char *name, uint64_t version, const struct sd_secret *v) {
        struct sd_policy *evil = fx_policy(mallory, sd_policy_realm(policy));
        fx_recipient(evil, "host1", agent->box_pk, NULL);
        fx_sign(evil, mallory);
        char *json = seal_under(evil, mallory, name, version, v);
        sd_policy_unref(evil);
        return json;
}

static char *seal_text(const char *name, uint64_t version, const char *text) {
        _cleanup_secret_ struct sd_secret *v = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &v), 0);
        return seal_by(writer, name, version, v);
}

/* Open as the agent and expect failure with code, a message that starts with
 * the asked-for subject and contains `cause`. */
static void expect_open_fails(const char *json, const char *name, uint64_t version, int code, const char *cause,
                              const char *what) {
        struct sd_secret *sentinel = (struct sd_secret *) 0x1;
        struct sd_secret *value = sentinel;
        sd_error err = { 0 };
        const struct sd_box_keypair kp = kp_of(agent);
        int r = sd_envelope_open(json, strlen(json), policy, 0, name, version, &kp, 1, &value, NULL, &err);
        cr_assert_eq(r, -code, "%s: got %d (%s), wanted %d", what, r, err.message, -code);
        cr_assert_eq(err.code, code, "%s", what);
        cr_assert_eq(value, sentinel, "%s: output touched on failure", what);
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "secret '%s' version %" PRIu64 ": ", name, version);
        cr_assert_eq(strncmp(err.message, prefix, strlen(prefix)), 0, "%s: message lacks the subject: %s", what,
                     err.message);
        cr_assert(strstr(err.message, cause), "%s: message '%s' lacks '%s'", what, err.message, cause);
        cr_assert_null(strchr(err.message, '\n'), "one line");
}

/* ---- JSON editing ---- */

static json_t *parse(const char *json) {
        json_error_t jerr;
        json_t *root = json_loads(json, 0, &jerr);
        cr_assert_not_null(root, "%s", jerr.text);
        return root;
}

static char *dump(json_t *root) {
        char *text = json_dumps(root, JSON_COMPACT);
        cr_assert_not_null(text);
        return text;
}

static size_t b64_get(json_t *obj, const char *field, unsigned char *buf, size_t cap) {
        json_t *v = json_object_get(obj, field);
        cr_assert(json_is_string(v), "%s", field);
        size_t len = 0;
        cr_assert_eq(sodium_base642bin(buf, cap, json_string_value(v), json_string_length(v), NULL, &len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL), 0, "%s", field);
        return len;
}

static void b64_set(json_t *obj, const char *field, const unsigned char *buf, size_t len) {
        size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc(cap);
        sodium_bin2base64(text, cap, buf, len, sodium_base64_VARIANT_ORIGINAL);
        cr_assert_eq(json_object_set_new(obj, field, json_string(text)), 0);
        free(text);
}

/* Flip one bit of byte `at` (from the end if negative) of a base64 field. */
static void flip_b64(json_t *obj, const char *field, long at) {
        static unsigned char buf[SD_VALUE_MAX + 64];
        size_t len = b64_get(obj, field, buf, sizeof(buf));
        size_t i = at >= 0 ? (size_t) at : len - (size_t) -at;
        cr_assert_lt(i, len);
        buf[i] ^= 0x01;
        b64_set(obj, field, buf, len);
}

static json_t *recipient_entry(json_t *root, size_t i) {
        json_t *e = json_array_get(json_object_get(root, "recipients"), i);
        cr_assert_not_null(e);
        return e;
}

/* Index of the agent's entry (the writer's own box key comes first). */
static size_t agent_index(json_t *root) {
        json_t *arr = json_object_get(root, "recipients");
        for (size_t i = 0; i < json_array_size(arr); i++) {
                unsigned char key[32];
                b64_get(json_array_get(arr, i), "key", key, sizeof(key));
                if (memcmp(key, agent->box_pk, 32) == 0)
                        return i;
        }
        cr_assert_fail("agent is not a recipient");
        return 0;
}

/* ---- an independent implementation of docs/envelope.md's layouts ---- */

struct bytes {
        unsigned char *data;
        size_t len;
};

static void put(struct bytes *b, const void *p, size_t n) {
        b->data = realloc(b->data, b->len + n + 1);
        cr_assert_not_null(b->data);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void put_u32(struct bytes *b, uint32_t v) {
        unsigned char x[4];
        for (int i = 0; i < 4; i++)
                x[i] = (unsigned char) (v >> (24 - 8 * i));
        put(b, x, 4);
}

static void put_u64(struct bytes *b, uint64_t v) {
        unsigned char x[8];
        for (int i = 0; i < 8; i++)
                x[i] = (unsigned char) (v >> (56 - 8 * i));
        put(b, x, 8);
}

static void put_field(struct bytes *b, const void *p, size_t n) {
        put_u32(b, (uint32_t) n);
        put(b, p, n);
}

static void put_str(struct bytes *b, const char *s) {
        put_field(b, s, strlen(s));
}

static void put_b64(struct bytes *b, json_t *obj, const char *field) {
        static unsigned char buf[SD_VALUE_MAX + 64];
        json_t *v = json_object_get(obj, field);
        size_t len = v ? b64_get(obj, field, buf, sizeof(buf)) : 0;
        put_field(b, buf, len);
}

static struct bytes docs_envelope_signed_bytes(json_t *root) {
        struct bytes b = { 0 };
        put_str(&b, "secretd/envelope/v1");
        uint64_t format = (uint64_t) json_integer_value(json_object_get(root, "format"));
        put_u64(&b, format);
        if (format == 2) {
                put_b64(&b, root, "realm");
                put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "policy")));
        }
        put_str(&b, json_string_value(json_object_get(root, "kind")));
        put_str(&b, json_string_value(json_object_get(root, "name")));
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "version")));
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "created")));
        put_b64(&b, root, "signer");
        put_b64(&b, root, "nonce");
        put_b64(&b, root, "ciphertext");
        json_t *arr = json_object_get(root, "recipients");
        put_u32(&b, (uint32_t) json_array_size(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
                put_b64(&b, json_array_get(arr, i), "key");
                put_b64(&b, json_array_get(arr, i), "wrapped");
        }
        return b;
}

static struct bytes docs_recipient_signed_bytes(json_t *root) {
        struct bytes b = { 0 };
        put_str(&b, "secretd/recipient/v1");
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "format")));
        put_str(&b, json_string_value(json_object_get(root, "kind")));
        put_str(&b, json_string_value(json_object_get(root, "name")));
        put_b64(&b, root, "key");
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "created")));
        put_b64(&b, root, "signer");
        return b;
}

static struct bytes docs_ad(json_t *root) {
        struct bytes b = { 0 };
        put_str(&b, "secretd/envelope-ad/v1");
        put_u64(&b, 2);
        put_b64(&b, root, "realm");
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "policy")));
        put_str(&b, json_string_value(json_object_get(root, "name")));
        put_u64(&b, (uint64_t) json_integer_value(json_object_get(root, "version")));
        return b;
}

/* Re-sign an edited envelope as `by`, the way a store attacker holding that
 * key would. */
static void resign(json_t *root, const struct sd_writer_key *by) {
        b64_set(root, "signer", by->pub.sign_pk, 32);
        struct bytes b = docs_envelope_signed_bytes(root);
        unsigned char sig[64];
        crypto_sign_detached(sig, NULL, b.data, b.len, by->sign_sk);
        b64_set(root, "signature", sig, 64);
        free(b.data);
}

/* ---- round trips ---- */

Test(envelope, round_trip_1_byte_4_kib_1_mib) {
        const size_t sizes[] = { 1, 4096, SD_VALUE_MAX };
        for (size_t i = 0; i < SD_ARRAY_SIZE(sizes); i++) {
                _cleanup_secret_ struct sd_secret *v = value_of(sizes[i], (unsigned) i);
                _cleanup_free_ char *json = seal_by(writer, "db_password", 7, v);

                /* The agent, the writer itself and the admin can read it. */
                const struct sd_box_keypair kps[] = { kp_of(agent), { writer->pub.box_pk, writer->box_sk },
                                                      { admin->pub.box_pk, admin->box_sk } };
                for (size_t k = 0; k < SD_ARRAY_SIZE(kps); k++) {
                        _cleanup_secret_ struct sd_secret *out = NULL;
                        struct sd_envelope_info info;
                        sd_error err = { 0 };
                        cr_assert_eq(sd_envelope_open(json, strlen(json), policy, 0, "db_password", 7, &kps[k], 1, &out,
                                                      &info, &err), 0, "size %zu key %zu: %s", sizes[i], k, err.message);
                        cr_assert(sd_secret_equal(out, v), "size %zu: value differs", sizes[i]);
                        cr_assert_str_eq(info.name, "db_password");
                        cr_assert_eq(info.version, 7);
                        cr_assert_not(info.tombstone);
                        cr_assert_eq(info.value_len, sizes[i]);
                        cr_assert_eq(info.n_recipients, 3);
                        cr_assert_eq(info.format, 2);
                        cr_assert_eq(info.policy, 1);
                        cr_assert_eq(memcmp(info.realm, sd_policy_realm(policy), SD_REALM_ID_BYTES), 0);
                        cr_assert_eq(memcmp(info.signer, writer->pub.sign_pk, 32), 0);
                        char id[SD_KEY_ID_CHARS + 1];
                        sd_key_id(writer->pub.sign_pk, id);
                        cr_assert_str_eq(info.signer_id, id);
                }
        }
}

Test(envelope, verify_reports_metadata_without_a_box_key) {
        _cleanup_free_ char *json = seal_text("api_key", 3, "hunter2");
        struct sd_envelope_info info;
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_verify(json, strlen(json), policy, 0, &info, &err), 0, "%s", err.message);
        cr_assert_str_eq(info.name, "api_key");
        cr_assert_eq(info.version, 3);
        cr_assert_eq(info.value_len, 7);
        cr_assert_eq(info.n_recipients, 3);
        cr_assert_not(info.tombstone);
        time_t now = time(NULL);
        cr_assert(info.created <= now && info.created >= now - 60, "created %" PRId64, info.created);
        cr_assert_null(strstr(json, "hunter2"), "no plaintext in the envelope");
}

Test(envelope, sealed_to_the_writer_the_covering_recipients_and_the_admins) {
        /* host2 may receive db_* only, host3 everything; the writer is an
         * admin too, so its key appears once. */
        _cleanup_(sd_agent_key_freep) struct sd_agent_key *host2 = NULL, *host3 = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_agent_key_generate(&host2, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&host3, &err), 0);
        _cleanup_policy_ struct sd_policy *p = fx_next(policy);
        fx_recipient(p, "host2", host2->box_pk, "db_*");
        fx_recipient(p, "host3", host3->box_pk, NULL);
        fx_sign(p, admin);
        _cleanup_secret_ struct sd_secret *v = value_of(10, 1);

        _cleanup_free_ char *db = seal_under(p, admin, "db_password", 1, v);
        _cleanup_free_ char *api = seal_under(p, admin, "api_token", 1, v);
        unsigned char(*keys)[32] = NULL;
        size_t n = 0;
        cr_assert_eq(sd_envelope_recipient_keys(db, strlen(db), &keys, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 4, "admin, host1, host2, host3: %zu", n);
        cr_assert_eq(memcmp(keys[0], admin->pub.box_pk, 32), 0, "the writer first");
        cr_assert_eq(memcmp(keys[1], agent->box_pk, 32), 0);
        cr_assert_eq(memcmp(keys[2], host2->box_pk, 32), 0);
        cr_assert_eq(memcmp(keys[3], host3->box_pk, 32), 0);
        free(keys);
        cr_assert_eq(sd_envelope_recipient_keys(api, strlen(api), &keys, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 3, "host2's patterns do not cover api_token: %zu", n);
        for (size_t i = 0; i < n; i++)
                cr_assert_neq(memcmp(keys[i], host2->box_pk, 32), 0);
        free(keys);

        const struct sd_box_keypair kp2 = kp_of(host2);
        struct sd_secret *out = NULL;
        cr_assert_eq(sd_envelope_open(api, strlen(api), p, 0, "api_token", 1, &kp2, 1, &out, NULL, &err), -ENOKEY);
        cr_assert_null(out);
}

Test(envelope, seal_follows_the_policy_rules) {
        _cleanup_policy_ struct sd_policy *p = fx_next(policy);
        _cleanup_(sd_writer_key_freep) struct sd_writer_key *ci = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&ci, &err), 0);
        fx_writer(p, "ci", ci, "db_*");
        cr_assert_eq(sd_policy_remove(p, SD_POLICY_RECIPIENTS, "host1", &err), 0);
        fx_recipient(p, "host1", agent->box_pk, "db_*");
        fx_sign(p, admin);
        _cleanup_secret_ struct sd_secret *v = value_of(8, 3);
        struct {
                const struct sd_writer_key *w;
                const char *name;
                const struct sd_secret *value;
                int code;
                const char *cause;
        } cases[] = {
                { mallory, "db_x", v, EKEYREJECTED, "are not a writer in policy v2" },
                { ci, "api_token", v, EKEYREJECTED, "may write only db_*, not 'api_token'" },
                { ci, "api_token", NULL, EKEYREJECTED, "may write only db_*, not 'api_token'" },
                { writer, "api_token", v, ENOKEY, "no host could open 'api_token'" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                char *json = (char *) 0x1;
                sd_error_clear(&err);
                cr_assert_eq(sd_envelope_seal(cases[i].name, 1, cases[i].value, cases[i].w, p, &json, NULL, &err),
                             -cases[i].code, "case %zu: %s", i, err.message);
                cr_assert(strstr(err.message, cases[i].cause), "case %zu: '%s' lacks '%s'", i, err.message, cases[i].cause);
                cr_assert_eq(json, (char *) 0x1, "case %zu: output touched", i);
        }
        /* A tombstone needs no recipient; ci may delete in its patterns. */
        _cleanup_free_ char *tomb = NULL;
        cr_assert_eq(sd_envelope_seal("api_token", 2, NULL, writer, p, &tomb, NULL, &err), 0, "%s", err.message);
        _cleanup_free_ char *mine = NULL;
        cr_assert_eq(sd_envelope_seal("db_x", 1, v, ci, p, &mine, NULL, &err), 0, "%s", err.message);
}

Test(envelope, seal_refuses_bad_input) {
        _cleanup_secret_ struct sd_secret *big = value_of(SD_VALUE_MAX + 1, 0);
        _cleanup_secret_ struct sd_secret *empty = NULL;
        _cleanup_secret_ struct sd_secret *ok = value_of(4, 0);
        cr_assert_eq(sd_secret_new(0, &empty), 0);
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", SD_VALUE_MAX);

        struct {
                const char *name;
                uint64_t version;
                const struct sd_secret *value;
                int code1, code2;
                const char *cause;
        } cases[] = {
                { "db", 1, big, EFBIG, EINVAL, limit },
                { "db", 1, empty, EINVAL, EINVAL, "empty" },
                { "db", 0, ok, EINVAL, EINVAL, "version" },
                { "db", (uint64_t) 1 << 53, ok, EINVAL, EINVAL, "version" },
                { "../etc", 1, ok, EINVAL, EINVAL, "secret name" },
                { "", 1, ok, EINVAL, EINVAL, "secret name" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                char *json = (char *) 0x1;
                sd_error err = { 0 };
                int r = sd_envelope_seal(cases[i].name, cases[i].version, cases[i].value, writer, policy, &json, NULL,
                                         &err);
                cr_assert(r == -cases[i].code1 || r == -cases[i].code2, "case %zu: %d", i, r);
                cr_assert(strstr(err.message, cases[i].cause), "case %zu: '%s' lacks '%s'", i, err.message,
                          cases[i].cause);
                cr_assert_eq(json, (char *) 0x1, "case %zu: output touched", i);
        }
}

/* ---- tampering ---- */

struct tamper {
        const char *what;
        void (*edit)(json_t *root);
        int code;
        const char *cause;
};

static void t_ciphertext(json_t *root) { flip_b64(root, "ciphertext", 3); }
static void t_ciphertext_tag(json_t *root) { flip_b64(root, "ciphertext", -1); }
static void t_nonce(json_t *root) { flip_b64(root, "nonce", 0); }
static void t_wrapped(json_t *root) { flip_b64(recipient_entry(root, agent_index(root)), "wrapped", 5); }
static void t_key(json_t *root) { flip_b64(recipient_entry(root, 0), "key", 0); }
static void t_name(json_t *root) { json_object_set_new(root, "name", json_string("db_passwore")); }
static void t_version(json_t *root) { json_object_set_new(root, "version", json_integer(2)); }
static void t_created(json_t *root) {
        json_object_set_new(root, "created", json_integer(json_integer_value(json_object_get(root, "created")) + 1));
}
static void t_kind(json_t *root) { json_object_set_new(root, "kind", json_string("tombstone")); }
static void t_signer(json_t *root) { flip_b64(root, "signer", 0); }
static void t_signature(json_t *root) { flip_b64(root, "signature", 0); }
static void t_signature_s(json_t *root) { flip_b64(root, "signature", 40); }
static void t_drop_recipient(json_t *root) { json_array_remove(json_object_get(root, "recipients"), 0); }
static void t_format(json_t *root) { json_object_set_new(root, "format", json_integer(3)); }
static void t_realm(json_t *root) { flip_b64(root, "realm", 0); }
static void t_policy_newer(json_t *root) { json_object_set_new(root, "policy", json_integer(2)); }

Test(envelope, changing_any_field_fails_with_its_cause) {
        const struct tamper cases[] = {
                { "ciphertext", t_ciphertext, EBADMSG, "signature by writer" },
                { "ciphertext tag", t_ciphertext_tag, EBADMSG, "signature by writer" },
                { "nonce", t_nonce, EBADMSG, "signature by writer" },
                { "wrapped key", t_wrapped, EBADMSG, "signature by writer" },
                { "recipient key", t_key, EBADMSG, "signature by writer" },
                { "dropped recipient", t_drop_recipient, EBADMSG, "signature by writer" },
                { "name", t_name, EBADMSG, "signature by writer" },
                { "version", t_version, EBADMSG, "signature by writer" },
                { "created", t_created, EBADMSG, "signature by writer" },
                { "kind", t_kind, EBADMSG, "a tombstone has no field 'nonce'" },
                { "format", t_format, EBADMSG, "field 'format' is 3" },
                { "realm", t_realm, EBADMSG, "belongs to realm" },
                { "policy version", t_policy_newer, EAGAIN, "sealed under policy v2, newer than the verified v1" },
                { "signer", t_signer, EKEYREJECTED, "who is not a writer in policy v1" },
                { "signature R", t_signature, EBADMSG, "signature by writer" },
                { "signature S", t_signature_s, EBADMSG, "signature by writer" },
        };
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        /* The untampered envelope opens, so each failure below is the edit's. */
        _cleanup_secret_ struct sd_secret *out = NULL;
        sd_error err = { 0 };
        const struct sd_box_keypair kp = kp_of(agent);
        cr_assert_eq(sd_envelope_open(json, strlen(json), policy, 0, "db_password", 1, &kp, 1, &out, NULL, &err), 0,
                     "%s", err.message);

        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                json_t *root = parse(json);
                cases[i].edit(root);
                _cleanup_free_ char *edited = dump(root);
                json_decref(root);
                cr_assert_str_neq(edited, json, "%s: edit changed nothing", cases[i].what);
                /* Open under the name/version the edited envelope claims,
                 * so only the signature can catch it. */
                root = parse(edited);
                const char *name = json_string_value(json_object_get(root, "name"));
                uint64_t version = (uint64_t) json_integer_value(json_object_get(root, "version"));
                expect_open_fails(edited, name, version, cases[i].code, cases[i].cause, cases[i].what);
                json_decref(root);
        }
}

Test(envelope, signer_id_named_when_not_a_writer) {
        _cleanup_secret_ struct sd_secret *v = value_of(5, 2);
        _cleanup_free_ char *json = seal_by_mallory("db_password", 4, v);
        char id[SD_KEY_ID_CHARS + 1], cause[96];
        sd_key_id(mallory->pub.sign_pk, id);
        snprintf(cause, sizeof(cause), "signed by %s, who is not a writer in policy v1", id);
        expect_open_fails(json, "db_password", 4, EKEYREJECTED, cause, "unknown signer");

        sd_error err = { 0 };
        struct sd_envelope_info info;
        cr_assert_eq(sd_envelope_verify(json, strlen(json), policy, 0, &info, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, cause), "%s", err.message);
        cr_assert_eq(strncmp(err.message, "secret 'db_password' version 4: ", 32), 0, "%s", err.message);
}

Test(envelope, verified_against_the_current_policy_in_the_designed_order) {
        _cleanup_secret_ struct sd_secret *v = value_of(6, 9);
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");

        /* v2 removes the writer: what it sealed under v1 no longer verifies
         * against the current policy (mix-and-match is refused). */
        _cleanup_policy_ struct sd_policy *v2 = fx_next(policy);
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_remove(v2, SD_POLICY_WRITERS, "dev", &err), 0);
        fx_sign(v2, admin);
        char id[SD_KEY_ID_CHARS + 1], cause[96];
        sd_key_id(writer->pub.sign_pk, id);
        snprintf(cause, sizeof(cause), "signed by %s, who is not a writer in policy v2", id);
        cr_assert_eq(sd_envelope_verify(json, strlen(json), v2, 0, NULL, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, cause), "%s", err.message);

        /* v3 scopes it to db_*: api_token is out, db_password in. */
        _cleanup_policy_ struct sd_policy *v3 = fx_next(v2);
        fx_writer(v3, "dev", writer, "db_*");
        fx_recipient(v3, "all", stranger->box_pk, NULL);
        fx_sign(v3, admin);
        _cleanup_free_ char *api = seal_text("api_token", 1, "t");
        cr_assert_eq(sd_envelope_verify(api, strlen(api), v3, 0, NULL, &err), -EKEYREJECTED);
        cr_assert(strstr(err.message, "whose patterns (db_*) do not cover 'api_token' in policy v3"), "%s", err.message);
        cr_assert_eq(sd_envelope_verify(json, strlen(json), v3, 0, NULL, &err), 0, "%s", err.message);

        /* Another realm's envelope: refused before its signer is looked at,
         * naming both realms. */
        struct sd_policy *other = fx_policy(admin, NULL);
        fx_writer(other, "dev", writer, NULL);
        fx_recipient(other, "host1", agent->box_pk, NULL);
        fx_sign(other, admin);
        _cleanup_free_ char *foreign = seal_under(other, writer, "db_password", 1, v);
        char theirs[SD_REALM_ID_SHORT_CHARS + 1], ours[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(sd_policy_realm(other), theirs);
        sd_realm_id_short(sd_policy_realm(policy), ours);
        snprintf(cause, sizeof(cause), "belongs to realm %s, the pinned realm is %s", theirs, ours);
        expect_open_fails(foreign, "db_password", 1, EBADMSG, cause, "another realm");
        sd_policy_unref(other);

        /* Sealed under a newer policy than the one held: -EAGAIN, info
         * filled so the caller knows what to fetch. */
        _cleanup_free_ char *newer = seal_under(v3, writer, "db_password", 2, v);
        struct sd_envelope_info info = { 0 };
        cr_assert_eq(sd_envelope_verify(newer, strlen(newer), policy, 0, &info, &err), -EAGAIN);
        cr_assert_eq(info.policy, 3);
        cr_assert(strstr(err.message, "sealed under policy v3, newer than the verified v1"), "%s", err.message);
}

Test(envelope, format_1_refused_with_advice_unless_legacy_is_asked_for) {
        const unsigned char(*keys)[32] = (const unsigned char(*)[32]) & agent->box_pk;
        _cleanup_free_ char *legacy = fx_legacy_seal("db_password", 3, "old value", 9, writer, keys, 1);
        expect_open_fails(legacy, "db_password", 3, EBADMSG,
                          "sealed in format 1, before the realm existed; an admin must run 'secretctl reseal db_password'",
                          "format 1");
        struct sd_envelope_info info = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_verify(legacy, strlen(legacy), policy, SD_ENVELOPE_LEGACY, &info, &err), 0, "%s",
                     err.message);
        cr_assert_eq(info.format, 1);
        cr_assert_eq(info.policy, 0);
        const struct sd_box_keypair kp = kp_of(agent);
        _cleanup_secret_ struct sd_secret *out = NULL;
        cr_assert_eq(sd_envelope_open(legacy, strlen(legacy), policy, SD_ENVELOPE_LEGACY, "db_password", 3, &kp, 1,
                                      &out, NULL, &err),
                     0, "%s", err.message);
        cr_assert_eq(out->len, 9);
        cr_assert_eq(memcmp(out->data, "old value", 9), 0);
        /* Legacy still means: signed by a writer of the policy. */
        _cleanup_free_ char *by_mallory = fx_legacy_seal("db_password", 3, "x", 1, mallory, keys, 1);
        cr_assert_eq(sd_envelope_verify(by_mallory, strlen(by_mallory), policy, SD_ENVELOPE_LEGACY, NULL, &err),
                     -EKEYREJECTED);
}

Test(envelope, open_tries_each_key_given) {
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        const struct sd_box_keypair both[] = { kp_of(stranger), kp_of(agent) };
        _cleanup_secret_ struct sd_secret *out = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_open(json, strlen(json), policy, 0, "db_password", 1, both, 2, &out, NULL, &err), 0,
                     "%s", err.message);
        cr_assert_eq(out->len, 6);
        struct sd_secret *none = NULL;
        cr_assert_eq(sd_envelope_open(json, strlen(json), policy, 0, "db_password", 1, both, 1, &none, NULL, &err),
                     -ENOKEY);
        cr_assert_null(none);
}

Test(envelope, copied_to_another_name_fails) {
        /* A store attacker copies b's genuine envelope into a's slot. */
        _cleanup_free_ char *json = seal_text("b", 1, "value of b");
        expect_open_fails(json, "a", 1, EBADMSG, "envelope is for secret 'b', not 'a'", "name binding");
}

Test(envelope, old_version_offered_as_newer_fails) {
        _cleanup_free_ char *json = seal_text("db_password", 3, "old");
        expect_open_fails(json, "db_password", 5, EBADMSG, "envelope is version 3, asked for 5", "version binding");
}

Test(envelope, swapped_ciphertext_resigned_by_untrusted_key_fails) {
        _cleanup_free_ char *a = seal_text("db_password", 2, "the real one");
        _cleanup_free_ char *b = seal_text("db_password", 2, "an attacker's");
        json_t *ra = parse(a), *rb = parse(b);
        json_object_set(ra, "ciphertext", json_object_get(rb, "ciphertext"));
        json_object_set(ra, "nonce", json_object_get(rb, "nonce"));
        resign(ra, mallory);
        _cleanup_free_ char *edited = dump(ra);
        json_decref(ra);
        json_decref(rb);
        char id[SD_KEY_ID_CHARS + 1], cause[96];
        sd_key_id(mallory->pub.sign_pk, id);
        snprintf(cause, sizeof(cause), "signed by %s, who is not a writer", id);
        expect_open_fails(edited, "db_password", 2, EKEYREJECTED, cause, "re-signed by mallory");
}

/* Even a validly signed envelope cannot move its ciphertext: the AEAD's
 * associated data binds name and version, and the data key binds the
 * ciphertext.  Simulated by re-signing with the trusted key itself. */
static void r_version(json_t *root) { json_object_set_new(root, "version", json_integer(2)); }
static void r_name(json_t *root) { json_object_set_new(root, "name", json_string("other")); }
static void r_wrapped(json_t *root) { flip_b64(recipient_entry(root, agent_index(root)), "wrapped", 40); }
static void r_ciphertext(json_t *root) { flip_b64(root, "ciphertext", 0); }
static void r_nonce(json_t *root) { flip_b64(root, "nonce", 23); }

Test(envelope, resigned_by_trusted_writer_still_bound_by_aead) {
        const struct tamper cases[] = {
                { "version relabelled", r_version, EBADMSG, "ciphertext does not authenticate" },
                { "name relabelled", r_name, EBADMSG, "ciphertext does not authenticate" },
                { "ciphertext", r_ciphertext, EBADMSG, "ciphertext does not authenticate" },
                { "nonce", r_nonce, EBADMSG, "ciphertext does not authenticate" },
                { "wrapped key", r_wrapped, EBADMSG, "cannot unwrap the data key" },
        };
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                json_t *root = parse(json);
                cases[i].edit(root);
                resign(root, writer);
                _cleanup_free_ char *edited = dump(root);
                const char *name = json_string_value(json_object_get(root, "name"));
                uint64_t version = (uint64_t) json_integer_value(json_object_get(root, "version"));
                expect_open_fails(edited, name, version, cases[i].code, cases[i].cause, cases[i].what);
                json_decref(root);
        }

        /* And the ciphertext of another envelope under this one's keys. */
        _cleanup_free_ char *other = seal_text("db_password", 1, "different");
        json_t *root = parse(json), *ro = parse(other);
        json_object_set(root, "ciphertext", json_object_get(ro, "ciphertext"));
        resign(root, writer);
        _cleanup_free_ char *edited = dump(root);
        expect_open_fails(edited, "db_password", 1, EBADMSG, "ciphertext does not authenticate", "swapped ciphertext");
        json_decref(root);
        json_decref(ro);
}

Test(envelope, non_recipient_cannot_decrypt) {
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        struct sd_secret *value = NULL;
        sd_error err = { 0 };
        const struct sd_box_keypair kp = kp_of(stranger);
        int r = sd_envelope_open(json, strlen(json), policy, 0, "db_password", 1, &kp, 1, &value, NULL, &err);
        cr_assert_eq(r, -ENOKEY, "%s", err.message);
        cr_assert_null(value);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(stranger->box_pk, id);
        cr_assert(strstr(err.message, "not encrypted to this key") && strstr(err.message, id), "%s", err.message);

        /* A recipient's public key with someone else's private key. */
        const struct sd_box_keypair mixed = { agent->box_pk, stranger->box_sk };
        r = sd_envelope_open(json, strlen(json), policy, 0, "db_password", 1, &mixed, 1, &value, NULL, &err);
        cr_assert_eq(r, -EBADMSG, "%s", err.message);
        cr_assert(strstr(err.message, "cannot unwrap"), "%s", err.message);
}

/* ---- malformed input ---- */

static void m_missing_signature(json_t *root) { json_object_del(root, "signature"); }
static void m_missing_nonce(json_t *root) { json_object_del(root, "nonce"); }
static void m_extra(json_t *root) { json_object_set_new(root, "comment", json_string("hi")); }
static void m_extra_in_recipient(json_t *root) { json_object_set_new(recipient_entry(root, 1), "note", json_true()); }
static void m_missing_in_recipient(json_t *root) { json_object_del(recipient_entry(root, 1), "wrapped"); }
static void m_short(json_t *root, const char *field, json_t *obj) {
        unsigned char buf[256];
        size_t len = b64_get(obj, field, buf, sizeof(buf));
        b64_set(obj, field, buf, len - 1);
}
static void m_nonce_size(json_t *root) { m_short(root, "nonce", root); }
static void m_signer_size(json_t *root) { m_short(root, "signer", root); }
static void m_signature_size(json_t *root) { m_short(root, "signature", root); }
static void m_key_size(json_t *root) { m_short(root, "key", recipient_entry(root, 0)); }
static void m_wrapped_size(json_t *root) { m_short(root, "wrapped", recipient_entry(root, 0)); }
static void m_wrapped_long(json_t *root) {
        unsigned char buf[128] = { 0 };
        b64_set(recipient_entry(root, 0), "wrapped", buf, 81);
}
static void m_version_string(json_t *root) { json_object_set_new(root, "version", json_string("1")); }
static void m_version_real(json_t *root) { json_object_set_new(root, "version", json_real(1.0)); }
static void m_version_zero(json_t *root) { json_object_set_new(root, "version", json_integer(0)); }
static void m_version_negative(json_t *root) { json_object_set_new(root, "version", json_integer(-1)); }
static void m_version_2_53(json_t *root) { json_object_set_new(root, "version", json_integer((json_int_t) 1 << 53)); }
static void m_created_string(json_t *root) { json_object_set_new(root, "created", json_string("today")); }
static void m_created_negative(json_t *root) { json_object_set_new(root, "created", json_integer(-5)); }
static void m_format_string(json_t *root) { json_object_set_new(root, "format", json_string("1")); }
static void m_kind_other(json_t *root) { json_object_set_new(root, "kind", json_string("secrets")); }
static void m_kind_number(json_t *root) { json_object_set_new(root, "kind", json_integer(1)); }
static void m_name_bad(json_t *root) { json_object_set_new(root, "name", json_string("../db_password")); }
static void m_name_number(json_t *root) { json_object_set_new(root, "name", json_integer(5)); }
static void m_recipients_object(json_t *root) { json_object_set_new(root, "recipients", json_object()); }
static void m_recipients_empty(json_t *root) { json_object_set_new(root, "recipients", json_array()); }
static void m_recipient_string(json_t *root) { json_array_set_new(json_object_get(root, "recipients"), 0, json_string("x")); }
static void m_recipient_duplicate(json_t *root) {
        json_t *arr = json_object_get(root, "recipients");
        json_array_append_new(arr, json_deep_copy(json_array_get(arr, 0)));
}
static void m_too_many_recipients(json_t *root) {
        json_t *arr = json_object_get(root, "recipients");
        while (json_array_size(arr) <= SD_ENVELOPE_MAX_RECIPIENTS)
                json_array_append_new(arr, json_deep_copy(json_array_get(arr, 0)));
}
static void m_ciphertext_empty(json_t *root) { json_object_set_new(root, "ciphertext", json_string("")); }
static void m_ciphertext_tag_only(json_t *root) {
        unsigned char tag[16] = { 0 };
        b64_set(root, "ciphertext", tag, 16);
}
static void m_ciphertext_not_b64(json_t *root) { json_object_set_new(root, "ciphertext", json_string("****")); }
static void m_ciphertext_url_b64(json_t *root) {
        /* 0xfb 0xff encodes to "+/8=" in standard base64 and "-_8" in url. */
        unsigned char bytes[32] = { 0xfb, 0xff, 0xfb, 0xff };
        char text[64];
        sodium_bin2base64(text, sizeof(text), bytes, sizeof(bytes), sodium_base64_VARIANT_URLSAFE);
        json_object_set_new(root, "ciphertext", json_string(text));
}
static void m_signer_unpadded(json_t *root) {
        char text[64];
        snprintf(text, sizeof(text), "%s", json_string_value(json_object_get(root, "signer")));
        char *eq = strchr(text, '=');
        cr_assert_not_null(eq);
        *eq = '\0';
        json_object_set_new(root, "signer", json_string(text));
}
static void m_signer_whitespace(json_t *root) {
        char text[64];
        snprintf(text, sizeof(text), " %s", json_string_value(json_object_get(root, "signer")));
        json_object_set_new(root, "signer", json_string(text));
}

struct malformed {
        const char *what;
        void (*edit)(json_t *root);
        const char *cause;
};

Test(envelope, malformed_fields_are_named) {
        const struct malformed cases[] = {
                { "missing signature", m_missing_signature, "missing field 'signature'" },
                { "missing nonce", m_missing_nonce, "missing field 'nonce'" },
                { "extra field", m_extra, "unknown field 'comment'" },
                { "extra field in recipient", m_extra_in_recipient, "unknown field 'recipients[1].note'" },
                { "missing wrapped", m_missing_in_recipient, "missing field 'recipients[1].wrapped'" },
                { "nonce size", m_nonce_size, "field 'nonce' must be 24 bytes" },
                { "signer size", m_signer_size, "field 'signer' must be 32 bytes" },
                { "signature size", m_signature_size, "field 'signature' must be 64 bytes" },
                { "key size", m_key_size, "field 'recipients[0].key' must be 32 bytes" },
                { "wrapped size", m_wrapped_size, "field 'recipients[0].wrapped' must be 80 bytes" },
                { "wrapped too long", m_wrapped_long, "field 'recipients[0].wrapped' must be 80 bytes" },
                { "version string", m_version_string, "field 'version' must be an integer" },
                { "version real", m_version_real, "field 'version' must be an integer" },
                { "version zero", m_version_zero, "field 'version' is 0" },
                { "version negative", m_version_negative, "field 'version' is -1" },
                { "version 2^53", m_version_2_53, "field 'version' is 9007199254740992" },
                { "created string", m_created_string, "field 'created' must be an integer" },
                { "created negative", m_created_negative, "field 'created'" },
                { "format string", m_format_string, "field 'format' must be an integer" },
                { "kind other", m_kind_other, "field 'kind' is 'secrets'" },
                { "kind number", m_kind_number, "field 'kind' must be a string" },
                { "bad name", m_name_bad, "field 'name'" },
                { "name number", m_name_number, "field 'name' must be a string" },
                { "recipients object", m_recipients_object, "field 'recipients' must be an array" },
                { "recipients empty", m_recipients_empty, "field 'recipients' is empty" },
                { "recipient string", m_recipient_string, "field 'recipients[0]' must be an object" },
                { "recipient twice", m_recipient_duplicate, "field 'recipients' lists key" },
                { "too many recipients", m_too_many_recipients, "field 'recipients' has 4097 entries; the limit is 4096" },
                { "ciphertext empty", m_ciphertext_empty, "field 'ciphertext'" },
                { "ciphertext tag only", m_ciphertext_tag_only, "field 'ciphertext' is 16 bytes" },
                { "ciphertext not base64", m_ciphertext_not_b64, "field 'ciphertext' must be standard base64" },
                { "ciphertext url base64", m_ciphertext_url_b64, "field 'ciphertext' must be standard base64" },
                { "signer unpadded", m_signer_unpadded, "field 'signer'" },
                { "signer whitespace", m_signer_whitespace, "field 'signer'" },
        };
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                json_t *root = parse(json);
                cases[i].edit(root);
                _cleanup_free_ char *edited = dump(root);
                json_decref(root);
                expect_open_fails(edited, "db_password", 1, EBADMSG, cases[i].cause, cases[i].what);

                /* verify applies the same format rules */
                sd_error err = { 0 };
                struct sd_envelope_info info;
                cr_assert_eq(sd_envelope_verify(edited, strlen(edited), policy, 0, &info, &err), -EBADMSG, "%s",
                             cases[i].what);
                cr_assert(strstr(err.message, cases[i].cause), "%s: %s", cases[i].what, err.message);
                cr_assert_eq(strncmp(err.message, "secret '", 8), 0, "%s", err.message);
        }
}

/* Replace the first occurrence of `from` in json by `to`. */
static char *replace(const char *json, const char *from, const char *to) {
        const char *at = strstr(json, from);
        cr_assert_not_null(at, "'%s' not in %s", from, json);
        char *out;
        cr_assert_geq(asprintf(&out, "%.*s%s%s", (int) (at - json), json, to, at + strlen(from)), 0);
        return out;
}

Test(envelope, malformed_text_is_named) {
        _cleanup_free_ char *json = seal_text("db_password", 1, "s3cret");
        struct {
                const char *what;
                char *text;
                const char *cause;
        } cases[] = {
                { "not json", strdup("hello"), "invalid JSON" },
                { "empty", strdup(""), "invalid JSON" },
                { "array", strdup("[1,2]"), "not a JSON object" },
                { "truncated", strndup(json, strlen(json) - 2), "invalid JSON" },
                { "trailing garbage", replace(json, "\"}", "\"} {}"), "invalid JSON" },
                { "huge integer", replace(json, "\"version\":1", "\"version\":99999999999999999999"),
                  "field 'version' is out of range" },
                { "huge real", replace(json, "\"version\":1", "\"version\":1e400"), "field 'version' is out of range" },
                { "policy string", replace(json, "\"policy\":1", "\"policy\":\"1\""), "field 'policy' must be an integer" },
                { "policy zero", replace(json, "\"policy\":1", "\"policy\":0"), "field 'policy' is 0" },
                { "no realm", replace(json, "\"realm\":", "\"realn\":"), "unknown field 'realn'" },
                { "format 1 with realm", replace(json, "\"format\":2", "\"format\":1"), "unknown field 'realm'" },
                { "huge created", replace(json, "\"created\":", "\"created\":99999999999999999999999"),
                  "field 'created' is out of range" },
                { "fraction", replace(json, "\"version\":1", "\"version\":1.5"), "field 'version' must be an integer" },
                { "duplicate key", replace(json, "\"version\":1", "\"version\":1,\"version\":1"), "duplicate" },
                { "NUL in name", replace(json, "\"name\":\"db_password\"", "\"name\":\"db\\u0000password\""),
                  "invalid JSON" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                cr_assert_not_null(cases[i].text);
                expect_open_fails(cases[i].text, "db_password", 1, EBADMSG, cases[i].cause, cases[i].what);
                free(cases[i].text);
        }

        /* Oversized input is refused before parsing. */
        size_t big_len = SD_ENVELOPE_MAX_BYTES + 1;
        char *big = malloc(big_len + 1);
        memset(big, ' ', big_len);
        big[0] = '{';
        big[big_len - 1] = '}';
        big[big_len] = '\0';
        expect_open_fails(big, "db_password", 1, EBADMSG, "over the limit of 4194304 bytes", "oversized");
        free(big);
}

/* ---- tombstones ---- */

Test(envelope, tombstone_seal_verify_open) {
        _cleanup_free_ char *json = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_seal("db_password", 9, NULL, writer, policy, &json, NULL, &err), 0, "%s", err.message);
        json_t *root = parse(json);
        cr_assert_str_eq(json_string_value(json_object_get(root, "kind")), "tombstone");
        cr_assert_null(json_object_get(root, "nonce"));
        cr_assert_null(json_object_get(root, "ciphertext"));
        cr_assert_null(json_object_get(root, "recipients"));
        cr_assert_eq(json_object_size(root), 9);

        struct sd_envelope_info info;
        cr_assert_eq(sd_envelope_verify(json, strlen(json), policy, 0, &info, &err), 0, "%s", err.message);
        cr_assert(info.tombstone);
        cr_assert_eq(info.version, 9);
        cr_assert_eq(info.value_len, 0);
        cr_assert_eq(info.n_recipients, 0);

        struct sd_secret *value = (struct sd_secret *) 0x1;
        memset(&info, 0, sizeof(info));
        const struct sd_box_keypair kp = kp_of(stranger);
        cr_assert_eq(sd_envelope_open(json, strlen(json), policy, 0, "db_password", 9, &kp, 1, &value, &info, &err), 0,
                     "%s", err.message);
        cr_assert_null(value);
        cr_assert(info.tombstone);
        cr_assert_str_eq(info.name, "db_password");

        /* Its fields are signed and bound like any envelope's. */
        expect_open_fails(json, "db_password", 10, EBADMSG, "envelope is version 9, asked for 10", "tombstone version");
        json_object_set_new(root, "version", json_integer(10));
        _cleanup_free_ char *moved = dump(root);
        expect_open_fails(moved, "db_password", 10, EBADMSG, "signature by writer", "tombstone relabelled");
        json_object_set_new(root, "version", json_integer(9));
        json_object_set_new(root, "kind", json_string("secret"));
        _cleanup_free_ char *revived = dump(root);
        expect_open_fails(revived, "db_password", 9, EBADMSG, "missing field 'nonce'", "tombstone as secret");
        json_decref(root);

        /* A tombstone from someone who is no writer deletes nothing. */
        _cleanup_free_ char *forged = seal_by_mallory("db_password", 9, NULL);
        expect_open_fails(forged, "db_password", 9, EKEYREJECTED, "who is not a writer", "forged tombstone");
}

/* ---- the documented layout ---- */

Test(envelope, signed_bytes_and_ad_match_docs) {
        _cleanup_free_ char *json = seal_text("db_password", 42, "s3cret value");
        json_t *root = parse(json);
        struct bytes b = docs_envelope_signed_bytes(root);
        unsigned char sig[64], signer[32];
        b64_get(root, "signature", sig, sizeof(sig));
        b64_get(root, "signer", signer, sizeof(signer));
        cr_assert_eq(crypto_sign_verify_detached(sig, b.data, b.len, signer), 0,
                     "signature is over the bytes docs/envelope.md describes");
        free(b.data);

        /* Decrypt by hand with the documented AD. */
        size_t i = agent_index(root);
        unsigned char wrapped[80], data_key[32], nonce[24], ct[64], pt[64];
        b64_get(recipient_entry(root, i), "wrapped", wrapped, sizeof(wrapped));
        cr_assert_eq(crypto_box_seal_open(data_key, wrapped, 80, agent->box_pk, agent->box_sk), 0);
        b64_get(root, "nonce", nonce, sizeof(nonce));
        size_t ct_len = b64_get(root, "ciphertext", ct, sizeof(ct));
        struct bytes ad = docs_ad(root);
        unsigned long long pt_len;
        cr_assert_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pt_len, NULL, ct, ct_len, ad.data, ad.len, nonce,
                                                                data_key), 0, "AD is as documented");
        cr_assert_eq(pt_len, 12);
        cr_assert_eq(memcmp(pt, "s3cret value", 12), 0);
        free(ad.data);
        json_decref(root);

        _cleanup_free_ char *tomb = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_envelope_seal("gone", 3, NULL, writer, policy, &tomb, NULL, &err), 0);
        root = parse(tomb);
        b = docs_envelope_signed_bytes(root);
        b64_get(root, "signature", sig, sizeof(sig));
        cr_assert_eq(crypto_sign_verify_detached(sig, b.data, b.len, writer->pub.sign_pk), 0, "tombstone layout");
        free(b.data);
        json_decref(root);

        _cleanup_free_ char *rec = NULL;
        cr_assert_eq(sd_recipient_seal("host1", agent->box_pk, writer, &rec, NULL, &err), 0, "%s", err.message);
        root = parse(rec);
        b = docs_recipient_signed_bytes(root);
        b64_get(root, "signature", sig, sizeof(sig));
        cr_assert_eq(crypto_sign_verify_detached(sig, b.data, b.len, writer->pub.sign_pk), 0, "recipient layout");
        free(b.data);
        json_decref(root);
}

/* ---- recipient entries ---- */

Test(envelope, recipient_seal_verify_round_trip) {
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        sd_error err = { 0 };
        cr_assert_eq(sd_recipient_seal("host1", agent->box_pk, writer, &json, &len, &err), 0, "%s", err.message);
        cr_assert_eq(strlen(json), len);
        struct sd_recipient_info info;
        cr_assert_eq(sd_recipient_verify(json, len, trust, &info, &err), 0, "%s", err.message);
        cr_assert_str_eq(info.name, "host1");
        cr_assert_eq(memcmp(info.box_pk, agent->box_pk, 32), 0);
        cr_assert_eq(memcmp(info.signer, writer->pub.sign_pk, 32), 0);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(writer->pub.sign_pk, id);
        cr_assert_str_eq(info.signer_id, id);
        time_t now = time(NULL);
        cr_assert(info.created <= now && info.created >= now - 60);
}

Test(envelope, recipient_untrusted_still_reports_signer) {
        _cleanup_free_ char *json = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_recipient_seal("evil", stranger->box_pk, mallory, &json, NULL, &err), 0);
        struct sd_recipient_info info;
        memset(&info, 0, sizeof(info));
        cr_assert_eq(sd_recipient_verify(json, strlen(json), trust, &info, &err), -EKEYREJECTED);
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(mallory->pub.sign_pk, id);
        cr_assert(strstr(err.message, id) && strstr(err.message, "recipient 'evil'"), "%s", err.message);
        cr_assert_str_eq(info.name, "evil");
        cr_assert_str_eq(info.signer_id, id);
}

static void rc_key(json_t *root) { flip_b64(root, "key", 0); }
static void rc_name(json_t *root) { json_object_set_new(root, "name", json_string("host2")); }
static void rc_created(json_t *root) { json_object_set_new(root, "created", json_integer(1)); }
static void rc_signature(json_t *root) { flip_b64(root, "signature", 10); }
static void rc_extra(json_t *root) { json_object_set_new(root, "wrapped", json_string("")); }
static void rc_kind(json_t *root) { json_object_set_new(root, "kind", json_string("secret")); }
static void rc_key_size(json_t *root) { m_short(root, "key", root); }
static void rc_missing(json_t *root) { json_object_del(root, "created"); }

Test(envelope, recipient_tampering_and_malformed) {
        const struct tamper cases[] = {
                { "key", rc_key, EBADMSG, "signature by writer" },
                { "name", rc_name, EBADMSG, "signature by writer" },
                { "created", rc_created, EBADMSG, "signature by writer" },
                { "signature", rc_signature, EBADMSG, "signature by writer" },
                { "extra", rc_extra, EBADMSG, "unknown field 'wrapped'" },
                { "kind", rc_kind, EBADMSG, "field 'kind' is 'secret'" },
                { "key size", rc_key_size, EBADMSG, "field 'key' must be 32 bytes" },
                { "missing", rc_missing, EBADMSG, "missing field 'created'" },
        };
        _cleanup_free_ char *json = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_recipient_seal("host1", agent->box_pk, writer, &json, NULL, &err), 0);
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                json_t *root = parse(json);
                cases[i].edit(root);
                _cleanup_free_ char *edited = dump(root);
                json_decref(root);
                struct sd_recipient_info info;
                sd_error_clear(&err);
                cr_assert_eq(sd_recipient_verify(edited, strlen(edited), trust, &info, &err), -cases[i].code, "%s: %s",
                             cases[i].what, err.message);
                cr_assert(strstr(err.message, cases[i].cause), "%s: %s", cases[i].what, err.message);
                cr_assert_eq(strncmp(err.message, "recipient '", 11), 0, "%s", err.message);
        }

        /* An envelope is not a recipient entry and the other way round. */
        _cleanup_free_ char *envelope = seal_text("host1", 1, "x");
        cr_assert_eq(sd_recipient_verify(envelope, strlen(envelope), trust, NULL, &err), -EBADMSG);
        cr_assert_eq(sd_envelope_verify(json, strlen(json), policy, 0, NULL, &err), -EBADMSG);

        /* A low-order point is not a usable agent key. */
        unsigned char zero[32] = { 0 };
        _cleanup_free_ char *bad = NULL;
        cr_assert_eq(sd_recipient_seal("host1", zero, writer, &bad, NULL, &err), -EINVAL);
        cr_assert_null(bad);
}
