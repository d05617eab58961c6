/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store contract (include/secretd/store.h), one suite for every backend:
 *
 *     store-contract URL
 *     store-contract --temp-file-store     (a file store in a new temporary
 *                                           directory, removed afterwards)
 *
 * runs the same cases against the store at URL (a fresh file:// directory,
 * an etcd:// prefix nobody else uses) and prints TAP.  The unit suite runs
 * it on a file store; tests/integration/test-store-contract.sh on the file
 * store and on real etcd (one member, and etcds:// with a user).  etcd
 * options come from SECRETD_ETCD_CA, SECRETD_ETCD_CERT, SECRETD_ETCD_KEY
 * and SECRETD_ETCD_AUTH_FILE, as for secretctl.
 *
 * Cases: put and get, the compare-and-swap (a repeated version, a gap, and
 * two threads and two handles racing), history, tombstones (through the
 * client, which writes them as versions), listing, recipients, watch,
 * refusals (names, version 0, empty and oversized data, missing things),
 * the size limit, and the health a store reports.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secretd/client.h"
#include "secretd/clock.h"
#include "secretd/envelope.h"
#include "secretd/keys.h"
#include "secretd/store.h"
#include "secretd/policy.h"
#include "realm-fixture.h"

static int n_tests, n_failed;

static void check(bool cond, const char *fmt, ...) SD_PRINTF(2, 3);
static void check(bool cond, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        printf("%s %d - ", cond ? "ok" : "not ok", ++n_tests);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (!cond)
                n_failed++;
}

static void diag(const char *what, const sd_error *err) {
        if (err->code)
                printf("# %s: %s\n", what, err->message);
}

static const char *url;
static struct sd_store_options options;

static struct sd_store *open_store(void) {
        struct sd_store *s = NULL;
        sd_error err = { 0 };
        if (sd_store_open_with(url, 1, &options, &s, &err) < 0) {
                printf("Bail out! cannot open %s: %s\n", url, err.message);
                exit(1);
        }
        return s;
}

static bool bytes_are(const char *data, size_t len, const char *expect) {
        return data && len == strlen(expect) && memcmp(data, expect, len) == 0;
}

static void put_and_get(struct sd_store *s) {
        sd_error err = { 0 };
        int r = sd_store_put(s, "alpha", 1, "one", 3, &err);
        check(r == 0, "put alpha version 1");
        diag("put", &err);
        uint64_t latest = 0;
        check(sd_store_latest(s, "alpha", &latest, &err) == 0 && latest == 1, "latest alpha is 1");
        char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        r = sd_store_get(s, "alpha", 0, &data, &len, &got, &err);
        check(r == 0 && got == 1 && bytes_are(data, len, "one") && data[len] == '\0',
              "get alpha (latest) returns version 1's bytes, NUL-terminated");
        free(data);

        r = sd_store_put(s, "alpha", 1, "uno", 3, &err);
        check(r == -EEXIST && strstr(err.message, "conflict"), "a second version 1 is a conflict (-EEXIST)");
        r = sd_store_put(s, "alpha", 3, "three", 5, &err);
        check(r == -EEXIST, "version 3 while the latest is 1 is refused: no gap (-EEXIST)");
        r = sd_store_put(s, "alpha", 2, "two", 3, &err);
        check(r == 0, "put alpha version 2");
        data = NULL;
        r = sd_store_get(s, "alpha", 1, &data, &len, &got, &err);
        check(r == 0 && got == 1 && bytes_are(data, len, "one"), "version 1 still holds its bytes");
        free(data);
        data = NULL;
        r = sd_store_get(s, "alpha", 0, &data, &len, &got, &err);
        check(r == 0 && got == 2 && bytes_are(data, len, "two"), "the latest is version 2");
        free(data);

        /* Bytes are opaque: NULs and high bytes survive. */
        const char raw[] = { 'a', '\0', (char) 0xff, '\n', 'z' };
        r = sd_store_put(s, "binary", 1, raw, sizeof(raw), &err);
        data = NULL;
        if (r == 0)
                r = sd_store_get(s, "binary", 1, &data, &len, &got, &err);
        check(r == 0 && len == sizeof(raw) && memcmp(data, raw, len) == 0, "binary bytes come back unchanged");
        free(data);
}

static void history_and_listing(struct sd_store *s) {
        sd_error err = { 0 };
        uint64_t *v = NULL;
        size_t n = 0;
        int r = sd_store_history(s, "alpha", &v, &n, &err);
        check(r == 0 && n == 2 && v[0] == 1 && v[1] == 2, "history alpha is 1, 2 (ascending)");
        free(v);

        (void) sd_store_put(s, "zeta", 1, "z", 1, &err);
        (void) sd_store_put(s, "beta.x_y-z", 1, "b", 1, &err);
        struct sd_store_name *names = NULL;
        r = sd_store_list(s, &names, &n, &err);
        bool sorted = r == 0;
        for (size_t i = 1; sorted && i < n; i++)
                sorted = strcmp(names[i - 1].name, names[i].name) < 0;
        bool alpha2 = false, zeta1 = false, beta1 = false;
        for (size_t i = 0; r == 0 && i < n; i++) {
                alpha2 |= strcmp(names[i].name, "alpha") == 0 && names[i].latest == 2;
                zeta1 |= strcmp(names[i].name, "zeta") == 0 && names[i].latest == 1;
                beta1 |= strcmp(names[i].name, "beta.x_y-z") == 0 && names[i].latest == 1;
        }
        check(sorted && alpha2 && zeta1 && beta1, "list: every name once, sorted, with its latest version");
        sd_store_names_free(names, n);
}

static void tombstones(struct sd_store *s) {
        /* A realm whose admin writes and is the recipient (fixtures from
         * tests/realm-fixture.h), published in the store's policy area. */
        sd_error err = { 0 };
        _cleanup_writer_key_ struct sd_writer_key *admin = NULL;
        _cleanup_secret_ struct sd_secret *value = NULL;
        if (sd_writer_key_generate(&admin, &err) < 0 || sd_secret_new_from("canary-contract", 15, &value) < 0) {
                check(false, "tombstones: set up keys");
                return;
        }
        _cleanup_policy_ struct sd_policy *p = fx_policy(admin, NULL);
        fx_recipient(p, "host", admin->pub.box_pk, NULL);
        fx_sign(p, admin);
        size_t json_len = 0;
        char *json = fx_policy_json(p, &json_len);
        int r = sd_store_policy_put(s, sd_policy_version(p), json, json_len, &err);
        free(json);
        check(r == 0, "the policy is published");
        diag("policy put", &err);

        uint64_t v = 0;
        r = sd_secret_put(s, admin, p, "gone", value, NULL, &v, &err);
        check(r == 0 && v == 1, "client put of 'gone' is version 1");
        diag("put", &err);
        r = sd_secret_delete(s, admin, p, "gone", NULL, &v, &err);
        check(r == 0 && v == 2, "client delete writes a tombstone as version 2");
        diag("delete", &err);
        uint64_t *hist = NULL;
        size_t n = 0;
        r = sd_store_history(s, "gone", &hist, &n, &err);
        check(r == 0 && n == 2, "the store keeps both versions of a deleted secret");
        free(hist);
        struct sd_store_name *names = NULL;
        r = sd_store_list(s, &names, &n, &err);
        bool listed = false;
        for (size_t i = 0; r == 0 && i < n; i++)
                listed |= strcmp(names[i].name, "gone") == 0 && names[i].latest == 2;
        check(listed, "list still names a deleted secret, at its tombstone version");
        sd_store_names_free(names, n);
        struct sd_secret *out = NULL;
        struct sd_envelope_info info;
        const struct sd_box_keypair kp = { admin->pub.box_pk, admin->box_sk };
        r = sd_secret_fetch_under(s, p, 0, &kp, 1, "gone", 0, 0, &out, &info, &err);
        check(r == -ENOENT && strstr(err.message, "deleted"), "fetching it says it was deleted (-ENOENT)");
        sd_secret_free(out);
        r = sd_store_put(s, "gone", 2, "x", 1, &err);
        check(r == -EEXIST, "the tombstone's version cannot be overwritten");
}

struct racer {
        struct sd_store *s;
        const char *tag;
        int failures;
};

static void *race(void *userdata) {
        struct racer *rc = userdata;
        for (int i = 1; i <= 20; i++) {
                char payload[32];
                (void) snprintf(payload, sizeof(payload), "%s-%d", rc->tag, i);
                for (int attempt = 0;; attempt++) {
                        sd_error err = { 0 };
                        uint64_t latest = 0;
                        int r = sd_store_latest(rc->s, "race", &latest, &err);
                        if (r < 0 && r != -ENOENT) {
                                rc->failures++;
                                break;
                        }
                        r = sd_store_put(rc->s, "race", latest + 1, payload, strlen(payload), &err);
                        if (r == 0)
                                break;
                        if (r != -EEXIST || attempt > 1000) {
                                rc->failures++;
                                break;
                        }
                }
        }
        return NULL;
}

static void compare_and_swap_race(struct sd_store *s) {
        /* Two threads on one handle, one on a second handle: the store
         * must be safe to share, and the CAS must hold across handles. */
        struct sd_store *other = open_store();
        struct racer r[3] = { { s, "t1", 0 }, { s, "t2", 0 }, { other, "h2", 0 } };
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
                pthread_create(&t[i], NULL, race, &r[i]);
        for (int i = 0; i < 3; i++)
                pthread_join(t[i], NULL);
        check(r[0].failures + r[1].failures + r[2].failures == 0, "three racing writers stored 60 values");
        sd_error err = { 0 };
        uint64_t *v = NULL;
        size_t n = 0;
        int q = sd_store_history(s, "race", &v, &n, &err);
        bool consecutive = q == 0 && n == 60;
        for (size_t i = 0; consecutive && i < n; i++)
                consecutive = v[i] == i + 1;
        check(consecutive, "history race is exactly 1..60: no gap, no duplicate");
        free(v);
        int seen[3][21] = { { 0 } };
        bool once = q == 0;
        for (uint64_t ver = 1; once && ver <= 60; ver++) {
                char *data = NULL;
                size_t len = 0;
                if (sd_store_get(s, "race", ver, &data, &len, NULL, &err) < 0) {
                        once = false;
                        break;
                }
                int who = strncmp(data, "t1-", 3) == 0 ? 0 : strncmp(data, "t2-", 3) == 0 ? 1 : 2;
                char *end = NULL;
                long i = strtol(data + 3, &end, 10);
                if (end && *end == '\0' && i >= 1 && i <= 20)
                        seen[who][i]++;
                free(data);
        }
        for (int w = 0; once && w < 3; w++)
                for (int i = 1; i <= 20; i++)
                        once = once && seen[w][i] == 1;
        check(once, "each racer's 20 payloads are stored exactly once");
        sd_store_free(other);
}

static void recipients(struct sd_store *s) {
        sd_error err = { 0 };
        int r = sd_store_recipient_put(s, "host-b", "entry-b", 7, &err);
        r |= sd_store_recipient_put(s, "host-a", "entry-a1", 8, &err);
        r |= sd_store_recipient_put(s, "host-a", "entry-a2", 8, &err);
        check(r == 0, "recipient put, and a replacement");
        struct sd_store_blob *b = NULL;
        size_t n = 0;
        r = sd_store_recipient_list(s, &b, &n, &err);
        check(r == 0 && n == 2 && strcmp(b[0].name, "host-a") == 0 && bytes_are(b[0].data, b[0].len, "entry-a2") &&
                      strcmp(b[1].name, "host-b") == 0,
              "recipient list: sorted, the replacement wins");
        sd_store_blobs_free(b, n);
        check(sd_store_recipient_remove(s, "host-b", &err) == 0, "recipient remove");
        check(sd_store_recipient_remove(s, "host-b", &err) == -ENOENT, "removing it again is -ENOENT");
}

static void refusals_and_limits(struct sd_store *s) {
        sd_error err = { 0 };
        char *data = NULL;
        size_t len = 0;
        check(sd_store_put(s, "../x", 1, "a", 1, &err) == -EINVAL, "a name with '..' or '/' is refused");
        check(sd_store_put(s, ".hidden", 1, "a", 1, &err) == -EINVAL, "a name starting with '.' is refused");
        check(sd_store_put(s, "ok", 0, "a", 1, &err) == -EINVAL, "version 0 is refused");
        check(sd_store_put(s, "ok", 1, "", 0, &err) == -EINVAL, "empty data is refused");
        check(sd_store_get(s, "nosuch", 0, &data, &len, NULL, &err) == -ENOENT, "get of a missing name: -ENOENT");
        check(sd_store_get(s, "alpha", 9, &data, &len, NULL, &err) == -ENOENT, "get of a missing version: -ENOENT");
        uint64_t v = 0;
        check(sd_store_latest(s, "nosuch", &v, &err) == -ENOENT, "latest of a missing name: -ENOENT");
        uint64_t *h = NULL;
        size_t n = 0;
        check(sd_store_history(s, "nosuch", &h, &n, &err) == -ENOENT, "history of a missing name: -ENOENT");

        size_t big = SD_ENVELOPE_MAX_BYTES + 1;
        char *blob = malloc(big);
        memset(blob, 'e', big);
        check(sd_store_put(s, "big", 1, blob, big, &err) == -EFBIG, "one byte over the store limit: -EFBIG");
        /* Largest accepted by every backend with its defaults: etcd refuses
         * requests over 1.5 MiB, and a value travels as base64. */
        size_t fits = (size_t) 1 << 20;
        sd_error_clear(&err);
        int r = sd_store_put(s, "big", 1, blob, fits, &err);
        diag("put 1 MiB", &err);
        data = NULL;
        if (r == 0)
                r = sd_store_get(s, "big", 1, &data, &len, NULL, &err);
        check(r == 0 && len == fits && memcmp(data, blob, fits) == 0, "a 1 MiB value is stored and read back whole");
        free(data);
        free(blob);
}

static void on_change(void *userdata, const char *name) {
        bool *hit = userdata;
        if (strcmp(name, "watched") == 0)
                *hit = true;
}

static void watch(struct sd_store *s) {
        sd_error err = { 0 };
        int fd = -1;
        int r = sd_store_watch_fd(s, &fd, &err);
        check(r == 0 && fd >= 0, "watch_fd");
        diag("watch_fd", &err);
        if (r < 0)
                return;
        struct sd_store *writer = open_store();
        r = sd_store_put(writer, "watched", 1, "w", 1, &err);
        bool reported = false;
        int64_t deadline = sd_monotonic_ms() + 10000;
        while (!reported && sd_monotonic_ms() < deadline) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 200) > 0)
                        (void) sd_store_watch_read(s, on_change, &reported, &err);
        }
        check(r == 0 && reported, "a put through another handle is reported by the watch");
        sd_store_free(writer);
}

static void health(struct sd_store *s) {
        struct sd_store_health h;
        sd_store_health(s, &h);
        check(h.reachable && h.last_contact_ms > 0 && h.endpoint[0], "health: reachable, contacted, endpoint '%s'",
              h.endpoint);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) type;
        (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s STORE_URL | --temp-file-store\n", argv[0]);
                return 2;
        }
        if (sodium_init() < 0)
                return 1;
        char temp_dir[] = "/tmp/secretd-contract.XXXXXX";
        char temp_url[64];
        bool temp = strcmp(argv[1], "--temp-file-store") == 0;
        if (temp) {
                if (!mkdtemp(temp_dir))
                        return 1;
                (void) snprintf(temp_url, sizeof(temp_url), "file://%s/store", temp_dir);
        }
        url = temp ? temp_url : argv[1];
        const char *v;
        options.etcd_ca = (v = secure_getenv("SECRETD_ETCD_CA")) && v[0] ? v : NULL;
        options.etcd_cert = (v = secure_getenv("SECRETD_ETCD_CERT")) && v[0] ? v : NULL;
        options.etcd_key = (v = secure_getenv("SECRETD_ETCD_KEY")) && v[0] ? v : NULL;
        options.etcd_auth_file = (v = secure_getenv("SECRETD_ETCD_AUTH_FILE")) && v[0] ? v : NULL;
        printf("# store contract against %s\n", url);

        struct sd_store *s = open_store();
        put_and_get(s);
        history_and_listing(s);
        tombstones(s);
        compare_and_swap_race(s);
        recipients(s);
        refusals_and_limits(s);
        watch(s);
        health(s);
        sd_store_free(s);
        printf("1..%d\n", n_tests);
        if (temp)
                (void) nftw(temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return n_failed ? 1 : 0;
}
