/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/store.h"

static char dir[] = "/tmp/secretd-store-XXXXXX";
static char root[256];
static char url[300];

/* Everything the store reported through its warn callback, one per line. */
static char warnings[16384];

static void collect_warning(void *userdata, const char *message) {
        (void) userdata;
        size_t used = strlen(warnings);
        (void) snprintf(warnings + used, sizeof(warnings) - used, "%s\n", message);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(root, sizeof(root), "%s/store", dir);
        snprintf(url, sizeof(url), "file://%s", root);
        warnings[0] = '\0';
}

static void teardown(void) {
        char cmd[300];
        if (secure_getenv("SECRETD_TEST_KEEP"))
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(store_file, .init = setup, .fini = teardown);

static struct sd_store *open_store(void) {
        /* etcd's options never apply to a file store, quietly or not. */
        const struct sd_store_options etcd_only = { .etcd_auth_file = "/etc/secretd/etcd-auth" };
        struct sd_store *f = NULL;
        sd_error ferr = { 0 };
        cr_assert_eq(sd_store_open_with("file:///tmp/x", 1, &etcd_only, &f, &ferr), -EINVAL);
        cr_assert(strstr(ferr.message, "apply only to etcd:// and etcds:// stores"), "%s", ferr.message);
        cr_assert_null(f);

        struct sd_store *s = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_store_open(url, 1, &s, &err), 0, "%s", err.message);
        sd_store_set_warn(s, collect_warning, NULL);
        return s;
}

static void put_ok(struct sd_store *s, const char *name, uint64_t version, const char *data) {
        sd_error err = { 0 };
        cr_assert_eq(sd_store_put(s, name, version, data, strlen(data), &err), 0,
                     "put %s v%" PRIu64 ": %s", name, version, err.message);
}

static void assert_get(struct sd_store *s, const char *name, uint64_t version, uint64_t expect_version,
                       const char *expect) {
        sd_error err = { 0 };
        char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        cr_assert_eq(sd_store_get(s, name, version, &data, &len, &got, &err), 0, "get %s: %s", name,
                     err.message);
        cr_assert_eq(got, expect_version, "get %s v%" PRIu64 " returned v%" PRIu64, name, version, got);
        cr_assert_eq(len, strlen(expect));
        cr_assert_eq(memcmp(data, expect, len), 0);
        cr_assert_eq(data[len], '\0', "NUL-terminated");
        free(data);
}

static void write_raw(const char *rel, const char *content) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        close(fd);
}

static void mkdir_raw(const char *rel) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        cr_assert_eq(mkdir(path, 0700), 0, "%s: %s", path, strerror(errno));
}

static bool exists_raw(const char *rel) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        return lstat(path, &st) == 0;
}

#define V1 "00000000000000000001.env"
#define V2 "00000000000000000002.env"

Test(store_file, round_trip_put_get_latest_history_list) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };

        put_ok(s, "zeta", 1, "z1");
        put_ok(s, "db_password", 1, "d1");
        put_ok(s, "db_password", 2, "d2");
        put_ok(s, "alpha", 1, "a1");

        assert_get(s, "db_password", 0, 2, "d2");
        assert_get(s, "db_password", 1, 1, "d1");
        assert_get(s, "db_password", 2, 2, "d2");
        assert_get(s, "zeta", 0, 1, "z1");

        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(s, "db_password", &latest, &err), 0, "%s", err.message);
        cr_assert_eq(latest, 2);

        uint64_t *versions = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_history(s, "db_password", &versions, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 2);
        cr_assert_eq(versions[0], 1);
        cr_assert_eq(versions[1], 2);
        free(versions);

        struct sd_store_name *names = NULL;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 3);
        cr_assert_str_eq(names[0].name, "alpha");
        cr_assert_eq(names[0].latest, 1);
        cr_assert_str_eq(names[1].name, "db_password");
        cr_assert_eq(names[1].latest, 2);
        cr_assert_str_eq(names[2].name, "zeta");
        sd_store_names_free(names, n);

        /* Missing things are -ENOENT with the name in the message. */
        char *data = NULL;
        cr_assert_eq(sd_store_get(s, "nope", 0, &data, NULL, NULL, &err), -ENOENT);
        cr_assert(strstr(err.message, "'nope'"), "%s", err.message);
        cr_assert_eq(sd_store_get(s, "db_password", 3, &data, NULL, NULL, &err), -ENOENT);
        cr_assert(strstr(err.message, "version 3"), "%s", err.message);
        cr_assert_null(data, "output untouched on failure");
        cr_assert_eq(sd_store_history(s, "nope", &versions, &n, &err), -ENOENT);

        /* The documented layout, and the root created 0700. */
        cr_assert(exists_raw("secrets/db_password/" V1));
        cr_assert(exists_raw("secrets/db_password/" V2));
        struct stat st;
        cr_assert_eq(stat(root, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700);
        cr_assert_str_eq(warnings, "", "a clean store warns about nothing");
        sd_store_free(s);
}

Test(store_file, compare_and_swap_refuses_anything_but_the_next_version) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "db", 1, "one");

        cr_assert_eq(sd_store_put(s, "db", 3, "three", 5, &err), -EEXIST, "gap accepted");
        cr_assert(strstr(err.message, "conflict"), "%s", err.message);
        cr_assert(strstr(err.message, "'db'"), "%s", err.message);

        cr_assert_eq(sd_store_put(s, "db", 1, "again", 5, &err), -EEXIST, "overwrite accepted");
        cr_assert(strstr(err.message, "conflict"), "%s", err.message);

        cr_assert_eq(sd_store_put(s, "fresh", 2, "two", 3, &err), -EEXIST, "first version must be 1");
        cr_assert(strstr(err.message, "conflict"), "%s", err.message);

        cr_assert_eq(sd_store_put(s, "db", 0, "zero", 4, &err), -EINVAL);
        cr_assert_eq(sd_store_put(s, "db", 2, "", 0, &err), -EINVAL, "empty data refused");

        assert_get(s, "db", 0, 1, "one");
        cr_assert_not(exists_raw("secrets/db/00000000000000000003.env"));
        cr_assert_not(exists_raw("secrets/fresh/" V2));

        /* Losers leave no staged file behind. */
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s' -name '" SD_TEMP_PREFIX "*')\"", root);
        cr_assert_eq(system(cmd), 0, "temp file left by a lost compare-and-swap");
        sd_store_free(s);
}

/* ---- two racing writers ---- */

#define PUTS_PER_WRITER 50

static void sleep_jitter(unsigned attempt) {
        unsigned ceiling = 1000u << (attempt < 5 ? attempt : 5);
        struct timespec ts = { 0, (long) (ceiling / 2 + (unsigned) rand() % (ceiling / 2 + 1)) * 1000L };
        nanosleep(&ts, NULL);
}

/* The retry loop sd_secret_put() runs, minus the crypto. */
static int writer_process(int writer, int start_fd, int report_fd) {
        char c;
        if (read(start_fd, &c, 1) != 1)
                return 10;
        struct sd_store *s = NULL;
        sd_error err = { 0 };
        if (sd_store_open(url, 0, &s, &err) < 0)
                return 11;
        srand((unsigned) getpid());
        unsigned conflicts = 0;
        for (int i = 0; i < PUTS_PER_WRITER; i++) {
                char payload[64];
                int len = snprintf(payload, sizeof(payload), "writer%d-put%02d", writer, i);
                for (unsigned attempt = 0;; attempt++) {
                        if (attempt > 1000)
                                return 12;
                        uint64_t latest = 0;
                        int r = sd_store_latest(s, "race", &latest, &err);
                        if (r == -ENOENT)
                                latest = 0;
                        else if (r < 0)
                                return 13;
                        r = sd_store_put(s, "race", latest + 1, payload, (size_t) len, &err);
                        if (r == 0)
                                break;
                        if (r != -EEXIST || !strstr(err.message, "conflict"))
                                return 14;
                        conflicts++;
                        sleep_jitter(attempt);
                }
        }
        sd_store_free(s);
        (void) !write(report_fd, &conflicts, sizeof(conflicts));
        return 0;
}

Test(store_file, two_racing_writers_leave_no_gap_and_no_duplicate) {
        struct sd_store *s = open_store();
        int start[2], report[2];
        cr_assert_eq(pipe(start), 0);
        cr_assert_eq(pipe(report), 0);

        pid_t pids[2];
        for (int w = 0; w < 2; w++) {
                pids[w] = fork();
                cr_assert_geq(pids[w], 0);
                if (pids[w] == 0) {
                        close(start[1]);
                        _exit(writer_process(w, start[0], report[1]));
                }
        }
        /* Release both at once so their puts overlap. */
        cr_assert_eq(write(start[1], "gg", 2), 2);
        for (int w = 0; w < 2; w++) {
                int status = 0;
                cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed: status %d", w,
                          status);
        }
        unsigned total_conflicts = 0;
        for (int w = 0; w < 2; w++) {
                unsigned c = 0;
                cr_assert_eq(read(report[0], &c, sizeof(c)), (ssize_t) sizeof(c));
                total_conflicts += c;
        }
        cr_log_info("lost compare-and-swaps during the race: %u", total_conflicts);

        sd_error err = { 0 };
        uint64_t *versions = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_history(s, "race", &versions, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 2 * PUTS_PER_WRITER, "%zu versions", n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(versions[i], i + 1, "gap or duplicate at %zu: %" PRIu64, i, versions[i]);
        free(versions);

        int seen[2][PUTS_PER_WRITER] = { { 0 } };
        int last_index[2] = { -1, -1 };
        for (uint64_t v = 1; v <= 2 * PUTS_PER_WRITER; v++) {
                char *data = NULL;
                cr_assert_eq(sd_store_get(s, "race", v, &data, NULL, NULL, &err), 0, "%s", err.message);
                int w = -1, i = -1;
                cr_assert_eq(sscanf(data, "writer%d-put%d", &w, &i), 2, "v%" PRIu64 ": %s", v, data);
                cr_assert(w >= 0 && w < 2 && i >= 0 && i < PUTS_PER_WRITER);
                seen[w][i]++;
                cr_assert_gt(i, last_index[w], "writer %d's puts out of order", w);
                last_index[w] = i;
                free(data);
        }
        for (int w = 0; w < 2; w++)
                for (int i = 0; i < PUTS_PER_WRITER; i++)
                        cr_assert_eq(seen[w][i], 1, "writer %d put %d stored %d times", w, i, seen[w][i]);
        sd_store_free(s);
}

/* ---- debris in the store ---- */

Test(store_file, leftover_temp_and_garbage_envelope_do_not_break_others) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "db", 1, "{\"format\":1,\"complete\":true}");
        put_ok(s, "other", 1, "o1");

        write_raw("secrets/db/" SD_TEMP_PREFIX "0badc0de", "{\"format\":1,\"half");
        mkdir_raw("secrets/broken");
        write_raw("secrets/broken/" V1, "{\"format\":1,\"kind\":\"sec");

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 3);
        cr_assert_str_eq(names[0].name, "broken");
        cr_assert_str_eq(names[1].name, "db");
        cr_assert_eq(names[1].latest, 1, "temp file counted as a version");
        cr_assert_str_eq(names[2].name, "other");
        sd_store_names_free(names, n);

        assert_get(s, "db", 0, 1, "{\"format\":1,\"complete\":true}");
        assert_get(s, "other", 0, 1, "o1");
        /* Garbage comes back byte for byte: rejecting it is the envelope
         * layer's job. */
        assert_get(s, "broken", 0, 1, "{\"format\":1,\"kind\":\"sec");

        cr_assert(strstr(warnings, "secrets/db/" SD_TEMP_PREFIX "0badc0de"),
                  "temp file not reported: '%s'", warnings);
        sd_store_free(s);
}

Test(store_file, crash_between_staging_and_rename_is_never_a_version) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "db", 1, "committed");

        /* What sd_write_file_at leaves if the machine dies after writing
         * (part of) the temp file and before the rename: a staged file,
         * here even with complete-looking content. */
        write_raw("secrets/db/" SD_TEMP_PREFIX "deadbeef00000001", "version two, staged but never renamed");
        /* A crash during the very first put of a name: its directory with
         * only a partial staged file. */
        mkdir_raw("secrets/newname");
        write_raw("secrets/newname/" SD_TEMP_PREFIX "deadbeef00000002", "{\"for");

        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(s, "db", &latest, &err), 0, "%s", err.message);
        cr_assert_eq(latest, 1);
        char *data = NULL;
        cr_assert_eq(sd_store_get(s, "db", 2, &data, NULL, NULL, &err), -ENOENT);
        assert_get(s, "db", 0, 1, "committed");
        cr_assert_eq(sd_store_latest(s, "newname", &latest, &err), -ENOENT, "partial first put seen");

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 1, "a name with only a staged file was listed");
        cr_assert_str_eq(names[0].name, "db");
        sd_store_names_free(names, n);

        /* Writers carry on as if the crash never happened. */
        put_ok(s, "db", 2, "real two");
        assert_get(s, "db", 0, 2, "real two");
        put_ok(s, "newname", 1, "first");
        assert_get(s, "newname", 0, 1, "first");
        sd_store_free(s);
}

/* ---- symlinks ---- */

static void plant_outside(char *out, size_t size) {
        snprintf(out, size, "%s/outside", dir);
        cr_assert_eq(mkdir(out, 0700), 0);
        char file[512];
        snprintf(file, sizeof(file), "%s/" V1, out);
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "outside", 7), 7);
        close(fd);
}

Test(store_file, symlink_as_secret_directory_is_refused) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "good", 1, "g1");
        char outside[400], link[512];
        plant_outside(outside, sizeof(outside));
        snprintf(link, sizeof(link), "%s/secrets/evil", root);
        cr_assert_eq(symlink(outside, link), 0);

        char *data = NULL;
        cr_assert_eq(sd_store_get(s, "evil", 0, &data, NULL, NULL, &err), -ELOOP);
        cr_assert(strstr(err.message, "secrets/evil") && strstr(err.message, "symbolic link"), "%s",
                  err.message);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(s, "evil", &latest, &err), -ELOOP);
        cr_assert_eq(sd_store_put(s, "evil", 2, "x", 1, &err), -ELOOP);
        cr_assert_eq(sd_store_put(s, "evil", 1, "x", 1, &err), -ELOOP);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", outside);
        cr_assert_eq(system(cmd), 0, "a put wrote through the symlink");

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(names[0].name, "good");
        sd_store_names_free(names, n);
        cr_assert(strstr(warnings, "secrets/evil is a symbolic link"), "not reported: '%s'", warnings);
        sd_store_free(s);
}

Test(store_file, symlink_as_version_file_is_refused) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "db", 1, "d1");
        put_ok(s, "other", 1, "o1");
        char outside[400], link[512];
        plant_outside(outside, sizeof(outside));
        snprintf(link, sizeof(link), "%s/secrets/db/" V2, root);
        char target[512];
        snprintf(target, sizeof(target), "%s/" V1, outside);
        cr_assert_eq(symlink(target, link), 0);

        char *data = NULL;
        cr_assert_eq(sd_store_get(s, "db", 2, &data, NULL, NULL, &err), -ELOOP);
        cr_assert(strstr(err.message, "secrets/db/" V2) && strstr(err.message, "symbolic link"), "%s",
                  err.message);
        cr_assert_eq(sd_store_get(s, "db", 0, &data, NULL, NULL, &err), -ELOOP, "latest followed a link");
        uint64_t latest = 0;
        cr_assert_eq(sd_store_latest(s, "db", &latest, &err), -ELOOP);
        cr_assert_eq(sd_store_put(s, "db", 3, "d3", 2, &err), -ELOOP);
        cr_assert_null(data);

        struct sd_store_name *names = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 1, "list must still list the other secret");
        cr_assert_str_eq(names[0].name, "other");
        sd_store_names_free(names, n);
        cr_assert(strstr(warnings, "secret 'db' skipped") && strstr(warnings, V2), "'%s'", warnings);
        sd_store_free(s);
}

Test(store_file, symlink_as_root_is_refused) {
        char real[400], link[400];
        snprintf(real, sizeof(real), "%s/real", dir);
        cr_assert_eq(mkdir(real, 0700), 0);
        snprintf(link, sizeof(link), "%s/store", dir);
        cr_assert_eq(symlink(real, link), 0);

        for (int create = 0; create <= 1; create++) {
                struct sd_store *s = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_store_open(url, create, &s, &err), -EPERM, "create=%d", create);
                cr_assert(strstr(err.message, root) && strstr(err.message, "symbolic link"), "%s",
                          err.message);
                cr_assert_null(s);
        }
        /* A trailing slash must not make the kernel follow it either. */
        char slash_url[320];
        snprintf(slash_url, sizeof(slash_url), "%s/", url);
        struct sd_store *s = NULL;
        cr_assert_eq(sd_store_open(slash_url, 0, &s, NULL), -EPERM);
}

Test(store_file, root_writable_by_others_is_refused) {
        const struct { mode_t mode; int expect; } cases[] = {
                { 0777, -EPERM }, { 0770, -EPERM }, { 0702, -EPERM }, { 0755, 0 }, { 0700, 0 },
        };
        cr_assert_eq(mkdir(root, 0700), 0);
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                cr_assert_eq(chmod(root, cases[i].mode), 0);
                struct sd_store *s = NULL;
                sd_error err = { 0 };
                int r = sd_store_open(url, 0, &s, &err);
                cr_assert_eq(r, cases[i].expect, "mode %04o: %d %s", cases[i].mode, r, err.message);
                if (r < 0) {
                        char mode[16];
                        snprintf(mode, sizeof(mode), "%04o", cases[i].mode);
                        cr_assert(strstr(err.message, root) && strstr(err.message, mode), "%s", err.message);
                }
                sd_store_free(s);
        }
}

Test(store_file, open_missing_without_create_and_bad_urls) {
        const struct { const char *url; int expect; const char *message; } cases[] = {
                { "etcds://127.0.0.1:2379", -EINVAL, "has no key prefix" },
                { "bogus://x/y", -EINVAL, "bogus://x/y" },
                { "file://otherhost/srv/store", -EINVAL, "absolute path" },
                { "/var/lib/secretd/store", -EINVAL, "no scheme" },
                { "file:///", -EINVAL, "root directory" },
                { "file://", -EINVAL, "absolute path" },
                { "", -EINVAL, "empty" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                struct sd_store *s = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_store_open(cases[i].url, 1, &s, &err), cases[i].expect, "%s: %s",
                             cases[i].url, err.message);
                cr_assert(strstr(err.message, cases[i].message), "%s: '%s'", cases[i].url, err.message);
                cr_assert_null(s);
        }

        struct sd_store *s = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_store_open(url, 0, &s, &err), -ENOENT);
        cr_assert(strstr(err.message, root), "%s", err.message);
        cr_assert_not(exists_raw(""), "open without create created the root");
}

Test(store_file, invalid_names_are_refused_before_touching_the_store) {
        struct sd_store *s = open_store();
        const char *bad[] = { "../x", "a/b", "..", ".hidden", "" };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad); i++) {
                sd_error err = { 0 };
                char *data = NULL;
                uint64_t v = 0, *vs = NULL;
                size_t n = 0;
                cr_assert_eq(sd_store_put(s, bad[i], 1, "x", 1, &err), -EINVAL, "put '%s'", bad[i]);
                cr_assert(strstr(err.message, "secret name"), "%s", err.message);
                cr_assert_eq(sd_store_get(s, bad[i], 0, &data, NULL, NULL, &err), -EINVAL);
                cr_assert_eq(sd_store_latest(s, bad[i], &v, &err), -EINVAL);
                cr_assert_eq(sd_store_history(s, bad[i], &vs, &n, &err), -EINVAL);
                cr_assert_eq(sd_store_recipient_put(s, bad[i], "x", 1, &err), -EINVAL);
                cr_assert(strstr(err.message, "recipient name"), "%s", err.message);
                cr_assert_eq(sd_store_recipient_remove(s, bad[i], &err), -EINVAL);
        }
        cr_assert_not(exists_raw("x"));
        cr_assert_not(exists_raw("secrets/a"));
        cr_assert_not(exists_raw("recipients/a"));
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/secrets' '%s/recipients' | grep -v : | grep .)\"",
                 root, root);
        cr_assert_eq(system(cmd), 0, "something was created in the store");
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
        cr_assert_eq(system(cmd), 0, "something was created next to the store");
        sd_store_free(s);
}

Test(store_file, recipients_put_replace_remove_list) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        cr_assert_eq(sd_store_recipient_put(s, "host2", "entry-2", 7, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_recipient_put(s, "host1", "entry-1", 7, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_recipient_put(s, "host1", "entry-1-new", 11, &err), 0, "replace: %s",
                     err.message);
        write_raw("recipients/" SD_TEMP_PREFIX "0123", "half an entry");

        struct sd_store_blob *blobs = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_recipient_list(s, &blobs, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(blobs[0].name, "host1");
        cr_assert_str_eq(blobs[0].data, "entry-1-new");
        cr_assert_eq(blobs[0].len, 11);
        cr_assert_str_eq(blobs[1].name, "host2");
        cr_assert_str_eq(blobs[1].data, "entry-2");
        sd_store_blobs_free(blobs, n);
        cr_assert(strstr(warnings, "recipients/" SD_TEMP_PREFIX "0123"), "'%s'", warnings);

        cr_assert_eq(sd_store_recipient_remove(s, "host2", &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_recipient_remove(s, "host2", &err), -ENOENT);
        cr_assert(strstr(err.message, "'host2'"), "%s", err.message);

        cr_assert_eq(sd_store_recipient_list(s, &blobs, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(blobs[0].name, "host1");
        sd_store_blobs_free(blobs, n);
        sd_store_free(s);
}

/* ---- watch ---- */

struct seen {
        char names[8][64];
        int n;
};

static void record_change(void *userdata, const char *name) {
        struct seen *seen = userdata;
        if (seen->n < 8)
                snprintf(seen->names[seen->n++], sizeof(seen->names[0]), "%s", name);
}

static bool seen_has(const struct seen *seen, const char *name) {
        for (int i = 0; i < seen->n; i++)
                if (strcmp(seen->names[i], name) == 0)
                        return true;
        return false;
}

/* Poll the watch fd and drain it until name is reported or 5 s pass;
 * everything reported meanwhile is collected in *seen. */
static bool wait_for_change_into(struct sd_store *s, int fd, const char *name, struct seen *seen_out);

static bool wait_for_change(struct sd_store *s, int fd, const char *name) {
        struct seen seen = { 0 };
        return wait_for_change_into(s, fd, name, &seen);
}

static bool wait_for_change_into(struct sd_store *s, int fd, const char *name, struct seen *seen_out) {
        struct seen seen = { 0 };
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int r = poll(&p, 1, 100);
                cr_assert_geq(r, 0);
                if (r > 0) {
                        sd_error err = { 0 };
                        cr_assert_eq(sd_store_watch_read(s, record_change, &seen, &err), 0, "%s", err.message);
                        if (seen_has(&seen, name)) {
                                *seen_out = seen;
                                return true;
                        }
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > 5)
                        return false;
        }
}

Test(store_file, watch_reports_new_names_and_new_versions) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        put_ok(s, "existing", 1, "e1");

        int fd = -1;
        cr_assert_eq(sd_store_watch_fd(s, &fd, &err), 0, "%s", err.message);
        cr_assert_geq(fd, 0);
        int again = -1;
        cr_assert_eq(sd_store_watch_fd(s, &again, &err), 0);
        cr_assert_eq(again, fd, "one watch per store");

        put_ok(s, "existing", 2, "e2");
        cr_assert(wait_for_change(s, fd, "existing"), "new version of an existing name not reported");

        put_ok(s, "brand_new", 1, "n1");
        cr_assert(wait_for_change(s, fd, "brand_new"), "new name not reported");

        /* The new name is watched too: its next version is reported. */
        put_ok(s, "brand_new", 2, "n2");
        cr_assert(wait_for_change(s, fd, "brand_new"), "second version of a new name not reported");

        /* Nothing pending: a read reports nothing and does not block. */
        struct seen seen = { 0 };
        cr_assert_eq(sd_store_watch_read(s, record_change, &seen, &err), 0);
        cr_assert_eq(seen.n, 0);
        sd_store_free(s);
}

/* ---- the realm's areas ---- */

Test(store_file, policy_versions_are_a_compare_and_swap_like_secrets) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        uint64_t latest = 0;
        cr_assert_eq(sd_store_policy_latest(s, &latest, &err), -ENOENT);
        cr_assert_eq(sd_store_policy_put(s, 2, "two", 3, &err), -EEXIST, "v2 before v1");
        cr_assert(strstr(err.message, "policy version 2: conflict"), "%s", err.message);
        cr_assert_eq(sd_store_policy_put(s, 1, "one", 3, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_policy_put(s, 1, "uno", 3, &err), -EEXIST, "v1 twice");
        cr_assert_eq(sd_store_policy_put(s, 3, "three", 5, &err), -EEXIST, "a gap");
        cr_assert_eq(sd_store_policy_put(s, 2, "two", 3, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_policy_put(s, 0, "zero", 4, &err), -EINVAL);
        cr_assert_eq(sd_store_policy_latest(s, &latest, &err), 0);
        cr_assert_eq(latest, 2);
        char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        cr_assert_eq(sd_store_policy_get(s, 0, &data, &len, &got, &err), 0, "%s", err.message);
        cr_assert_eq(got, 2);
        cr_assert_str_eq(data, "two");
        free(data);
        cr_assert_eq(sd_store_policy_get(s, 1, &data, &len, &got, &err), 0);
        cr_assert_str_eq(data, "one");
        free(data);
        cr_assert_eq(sd_store_policy_get(s, 7, &data, &len, &got, &err), -ENOENT);
        uint64_t *versions = NULL;
        size_t n = 0;
        cr_assert_eq(sd_store_policy_history(s, &versions, &n, &err), 0);
        cr_assert_eq(n, 2);
        cr_assert(versions[0] == 1 && versions[1] == 2);
        free(versions);
        /* Secrets and the policy are separate areas. */
        struct sd_store_name *names = NULL;
        cr_assert_eq(sd_store_list(s, &names, &n, &err), 0);
        cr_assert_eq(n, 0);
        sd_store_names_free(names, n);
        cr_assert(exists_raw("policy/00000000000000000002.env"));
        sd_store_free(s);
}

Test(store_file, proposals_are_replaced_and_removed) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(sd_store_proposal_get(s, 2, &data, &len, &err), -ENOENT);
        cr_assert_eq(sd_store_proposal_put(s, 2, "first", 5, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_proposal_put(s, 2, "second", 6, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_proposal_get(s, 2, &data, &len, &err), 0, "%s", err.message);
        cr_assert_str_eq(data, "second");
        free(data);
        cr_assert_eq(sd_store_proposal_remove(s, 2, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_proposal_remove(s, 2, &err), -ENOENT);
        cr_assert_eq(sd_store_proposal_get(s, 2, &data, &len, &err), -ENOENT);
        uint64_t latest = 0;
        cr_assert_eq(sd_store_policy_latest(s, &latest, &err), -ENOENT, "a proposal is not a policy version");
        sd_store_free(s);
}

Test(store_file, watch_reports_a_new_policy_version_as_the_reserved_name) {
        struct sd_store *s = open_store();
        sd_error err = { 0 };
        int fd = -1;
        cr_assert_eq(sd_store_watch_fd(s, &fd, &err), 0, "%s", err.message);
        cr_assert_eq(sd_store_policy_put(s, 1, "one", 3, &err), 0);
        cr_assert(wait_for_change(s, fd, SD_STORE_POLICY_NAME), "a policy version not reported");
        /* A proposal is not: written before a marker, nothing but the
         * marker comes. */
        cr_assert_eq(sd_store_proposal_put(s, 2, "p", 1, &err), 0);
        put_ok(s, "marker", 1, "m");
        struct seen seen = { 0 };
        cr_assert(wait_for_change_into(s, fd, "marker", &seen));
        cr_assert_eq(seen.n, 1, "reported: %s %s", seen.names[0], seen.names[1]);
        sd_store_free(s);
}
