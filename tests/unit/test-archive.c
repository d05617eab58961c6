/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretd/client.h"
#include "../realm-fixture.h"

static char dir[] = "/tmp/secretd-archive-XXXXXX";
static char src_url[300], dst_url[300];
static struct sd_writer_key *admin, *dev;
static struct sd_agent_key *host1;
static struct sd_store *src;
static struct sd_policy *latest;
static struct sd_realm_pin pin;

static void publish(struct sd_store *s, struct sd_policy *p) {
        size_t len = 0;
        _cleanup_free_ char *json = fx_policy_json(p, &len);
        sd_error err = { 0 };
        cr_assert_eq(sd_store_policy_put(s, sd_policy_version(p), json, len, &err), 0, "%s", err.message);
}

static void put(struct sd_store *s, const struct sd_writer_key *k, const struct sd_policy *p, const char *name,
                const char *text) {
        _cleanup_secret_ struct sd_secret *v = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &v), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_secret_put(s, k, p, name, v, NULL, NULL, &err), 0, "%s", err.message);
}

/* A source store with history: v1 (admin, host1), v2 adds dev, dev writes
 * db, v3 removes dev (its versions stay in history), a legacy envelope
 * from before the realm, a tombstone. */
static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(src_url, sizeof(src_url), "file://%s/src", dir);
        snprintf(dst_url, sizeof(dst_url), "file://%s/dst", dir);
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&admin, &err), 0);
        cr_assert_eq(sd_writer_key_generate(&dev, &err), 0);
        cr_assert_eq(sd_agent_key_generate(&host1, &err), 0);
        cr_assert_eq(sd_store_open(src_url, 1, &src, &err), 0, "%s", err.message);

        const unsigned char(*keys)[32] = (const unsigned char(*)[32]) & host1->box_pk;
        char *legacy = fx_legacy_seal("old", 1, "legacy", 6, admin, keys, 1);
        cr_assert_eq(sd_store_put(src, "old", 1, legacy, strlen(legacy), &err), 0);
        free(legacy);

        struct sd_policy *v1 = fx_policy(admin, NULL);
        fx_recipient(v1, "host1", host1->box_pk, NULL);
        fx_sign(v1, admin);
        publish(src, v1);
        struct sd_policy *v2 = fx_next(v1);
        fx_writer(v2, "dev", dev, NULL);
        fx_sign(v2, admin);
        publish(src, v2);
        put(src, admin, v1, "api", "a1");
        put(src, dev, v2, "db", "plaintext-of-db-one");
        put(src, dev, v2, "db", "d2");
        struct sd_policy *v3 = fx_next(v2);
        cr_assert_eq(sd_policy_remove(v3, SD_POLICY_WRITERS, "dev", &err), 0);
        fx_sign(v3, admin);
        publish(src, v3);
        put(src, admin, v3, "db", "d3");
        uint64_t ver = 0;
        cr_assert_eq(sd_secret_delete(src, admin, v3, "api", NULL, &ver, &err), 0, "%s", err.message);
        sd_realm_pin_of(v1, &pin);
        latest = v3;
        sd_policy_unref(v1);
        sd_policy_unref(v2);
}

static void teardown(void) {
        sd_store_free(src);
        sd_policy_unref(latest);
        sd_writer_key_free(admin);
        sd_writer_key_free(dev);
        sd_agent_key_free(host1);
        char cmd[300];
        if (secure_getenv("SECRETD_TEST_KEEP"))
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(archive, .init = setup, .fini = teardown);

static char *export_src(size_t *len) {
        struct sd_realm_record rec = { .pin = pin };
        char *text = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_archive_export(src, &rec, &text, len, &err), 0, "%s", err.message);
        return text;
}

static void assert_same_bytes(struct sd_store *a, struct sd_store *b, const char *name, uint64_t version) {
        char *x = NULL, *y = NULL;
        size_t xl = 0, yl = 0;
        sd_error err = { 0 };
        if (name) {
                cr_assert_eq(sd_store_get(a, name, version, &x, &xl, NULL, &err), 0, "%s", err.message);
                cr_assert_eq(sd_store_get(b, name, version, &y, &yl, NULL, &err), 0, "%s v%" PRIu64 ": %s", name, version,
                             err.message);
        } else {
                cr_assert_eq(sd_store_policy_get(a, version, &x, &xl, NULL, &err), 0, "%s", err.message);
                cr_assert_eq(sd_store_policy_get(b, version, &y, &yl, NULL, &err), 0, "%s", err.message);
        }
        cr_assert_eq(xl, yl);
        cr_assert_eq(memcmp(x, y, xl), 0, "%s v%" PRIu64 " differs", name ? name : "policy", version);
        free(x);
        free(y);
}

Test(archive, export_then_import_keeps_every_version_byte_for_byte) {
        size_t len = 0;
        _cleanup_free_ char *text = export_src(&len);
        sd_error err = { 0 };
        _cleanup_archive_ struct sd_archive *a = NULL;
        cr_assert_eq(sd_archive_parse(text, len, &a, &err), 0, "%s", err.message);
        cr_assert_eq(a->n_policies, 3);
        cr_assert_eq(a->n_entries, 3 + 2 + 3 + 1, "api 1-2, db 1-3, old 1");
        cr_assert_null(strstr(text, "plaintext-of-db-one"), "no plaintext");

        _cleanup_store_ struct sd_store *dst = NULL;
        cr_assert_eq(sd_store_open(dst_url, 1, &dst, &err), 0);
        struct sd_realm_record rec;
        cr_assert_eq(sd_archive_import(dst, a, &pin, &rec, &err), 0, "%s", err.message);
        cr_assert_eq(rec.version, 3);
        for (uint64_t v = 1; v <= 3; v++)
                assert_same_bytes(src, dst, NULL, v);
        assert_same_bytes(src, dst, "api", 1);
        assert_same_bytes(src, dst, "api", 2);
        for (uint64_t v = 1; v <= 3; v++)
                assert_same_bytes(src, dst, "db", v);
        assert_same_bytes(src, dst, "old", 1);

        /* The imported store serves like the source. */
        _cleanup_policy_ struct sd_policy *p = NULL;
        struct sd_realm_record now;
        cr_assert_eq(sd_realm_walk(dst, &rec, NULL, NULL, &p, &now, &err), 0, "%s", err.message);
        const struct sd_box_keypair kp = { host1->box_pk, host1->box_sk };
        _cleanup_secret_ struct sd_secret *v = NULL;
        cr_assert_eq(sd_secret_fetch_under(dst, p, 0, &kp, 1, "db", 0, 0, &v, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(memcmp(v->data, "d3", 2), 0);

        /* Run again: everything is there already, identical. */
        cr_assert_eq(sd_archive_import(dst, a, &pin, &rec, &err), 0, "%s", err.message);
}

/* Flip one bit of the byte at offset in text. */
static char *flipped(const char *text, size_t len, size_t offset) {
        char *copy = malloc(len + 1);
        memcpy(copy, text, len + 1);
        copy[offset] ^= 0x01;
        return copy;
}

Test(archive, a_flipped_byte_is_refused_naming_the_entry_and_nothing_is_written) {
        size_t len = 0;
        _cleanup_free_ char *text = export_src(&len);
        /* Flip a byte inside each data field in turn; the structure keeps
         * parsing, the entry no longer verifies. */
        size_t tried = 0;
        for (const char *at = strstr(text, "\"data\":\""); at; at = strstr(at + 1, "\"data\":\"")) {
                size_t offset = (size_t) (at - text) + 8 + 40;
                _cleanup_free_ char *bad = flipped(text, len, offset);
                sd_error err = { 0 };
                _cleanup_archive_ struct sd_archive *a = NULL;
                int r = sd_archive_parse(bad, len, &a, &err);
                if (r == 0) {
                        _cleanup_store_ struct sd_store *dst = NULL;
                        cr_assert_eq(sd_store_open(dst_url, 1, &dst, &err), 0);
                        struct sd_realm_record rec;
                        r = sd_archive_import(dst, a, &pin, &rec, &err);
                        uint64_t l = 0;
                        cr_assert_eq(sd_store_policy_latest(dst, &l, NULL), -ENOENT, "a refused import wrote");
                }
                cr_assert_lt(r, 0, "flip at %zu accepted", offset);
                cr_assert(strstr(err.message, "archive line "), "%s", err.message);
                tried++;
        }
        cr_assert_eq(tried, 9);
}

Test(archive, parser_refuses_malformed_archives_naming_the_line) {
        size_t len = 0;
        _cleanup_free_ char *text = export_src(&len);
        char *first_nl = strchr(text, '\n');
        const char *second = first_nl + 1;
        char *cut = strndup(text, len - 1);
        char *no_header = strdup(second);
        char *extra = NULL;
        cr_assert_geq(asprintf(&extra, "%s%s", text, "{\"kind\":\"policy\",\"version\":4,\"data\":\"eA==\"}\n"), 0);
        char *short_body = strndup(text, (size_t) (strrchr(text, '{') - text));
        struct {
                char *text;
                const char *cause;
        } cases[] = {
                { cut, "does not end with a newline" },
                { no_header, "archive line 1: not a secretd archive" },
                { extra, "one more" },
                { short_body, "cut short" },
                { strdup("\n"), "archive line 1 is empty" },
                { strdup("{\"format\":2,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"),
                  "field 'format' is 2" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"
                         "{\"kind\":\"envelope\",\"name\":\"db\",\"version\":1,\"data\":\"eA==\"}\n"),
                  "the archive holds no policy version" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"
                         "{\"kind\":\"policy\",\"version\":2,\"data\":\"eA==\"}\n"),
                  "expected policy v1 here" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":3}\n"
                         "{\"kind\":\"policy\",\"version\":1,\"data\":\"eA==\"}\n"
                         "{\"kind\":\"envelope\",\"name\":\"b\",\"version\":1,\"data\":\"eA==\"}\n"
                         "{\"kind\":\"envelope\",\"name\":\"a\",\"version\":1,\"data\":\"eA==\"}\n"),
                  "sorted by name" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":3}\n"
                         "{\"kind\":\"policy\",\"version\":1,\"data\":\"eA==\"}\n"
                         "{\"kind\":\"envelope\",\"name\":\"a\",\"version\":1,\"data\":\"eA==\"}\n"
                         "{\"kind\":\"envelope\",\"name\":\"a\",\"version\":3,\"data\":\"eA==\"}\n"),
                  "archive line 4 (secret 'a' version 3): expected version 2 here" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":2}\n"
                         "{\"kind\":\"policy\",\"version\":1,\"data\":\"eA==\"}\n"
                         "{\"kind\":\"envelope\",\"name\":\"../a\",\"version\":1,\"data\":\"eA==\"}\n"),
                  "archive line 3: field 'name'" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"
                         "{\"kind\":\"policy\",\"version\":1,\"data\":\"e A==\"}\n"),
                  "archive line 2: field 'data' must be 1 to" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"
                         "{\"kind\":\"policy\",\"version\":1,\"data\":\"eA==\",\"x\":1}\n"),
                  "archive line 2: unknown field 'x'" },
                { strdup("{\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"created\":1,\"entries\":1}\n"
                         "{\"kind\":\"secret\",\"version\":1,\"data\":\"eA==\"}\n"),
                  "field 'kind' is 'secret'" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                sd_error err = { 0 };
                struct sd_archive *a = (struct sd_archive *) 0x1;
                int r = sd_archive_parse(cases[i].text, strlen(cases[i].text), &a, &err);
                cr_assert_eq(r, -EBADMSG, "case %zu: %d %s", i, r, err.message);
                cr_assert(strstr(err.message, cases[i].cause), "case %zu: '%s' lacks '%s'", i, err.message, cases[i].cause);
                cr_assert_eq(a, (struct sd_archive *) 0x1);
                free(cases[i].text);
        }
}

Test(archive, import_refuses_another_realm_and_a_store_that_differs) {
        size_t len = 0;
        _cleanup_free_ char *text = export_src(&len);
        sd_error err = { 0 };
        _cleanup_archive_ struct sd_archive *a = NULL;
        cr_assert_eq(sd_archive_parse(text, len, &a, &err), 0);
        _cleanup_store_ struct sd_store *dst = NULL;
        cr_assert_eq(sd_store_open(dst_url, 1, &dst, &err), 0);
        struct sd_realm_record rec;

        struct sd_realm_pin other = pin;
        other.realm[3] ^= 0x10;
        cr_assert_eq(sd_archive_import(dst, a, &other, &rec, &err), -EBADMSG);
        cr_assert(strstr(err.message, "the archive is of realm") && strstr(err.message, "you pin realm"), "%s", err.message);
        other = pin;
        memcpy(other.admins[0], dev->pub.sign_pk, 32);
        cr_assert_eq(sd_archive_import(dst, a, &other, &rec, &err), -EKEYREJECTED);

        /* The destination already holds another db v1: nothing is written. */
        cr_assert_eq(sd_store_put(dst, "db", 1, "{}", 2, &err), 0);
        cr_assert_eq(sd_archive_import(dst, a, &pin, &rec, &err), -EEXIST);
        cr_assert(strstr(err.message, "(secret 'db' version 1): the store already holds a different one"), "%s",
                  err.message);
        uint64_t l = 0;
        cr_assert_eq(sd_store_policy_latest(dst, &l, NULL), -ENOENT);
}

Test(archive, export_refuses_a_store_entry_that_does_not_verify) {
        sd_error err = { 0 };
        cr_assert_eq(sd_store_put(src, "db", 4, "{\"format\":2}", 12, &err), 0, "%s", err.message);
        struct sd_realm_record rec = { .pin = pin };
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(sd_archive_export(src, &rec, &text, &len, &err), -EBADMSG);
        cr_assert(strstr(err.message, "(secret 'db' version 4)"), "%s", err.message);
        cr_assert_null(text);
}
