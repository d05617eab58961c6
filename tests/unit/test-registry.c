/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The volume registry (agent/registry.h) and the rollback floor
 * (agent/floor.h) over in-memory instances: what is adopted and destroyed
 * at start, reservations of a mount id, wipes only of what is unchanged,
 * the caps, and a floor file that cannot be vouched for.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-fixture.h"
#include "floor.h"
#include "metrics.h"
#include "registry.h"

static struct agent_fixture f;

static void setup(void) {
        fixture_setup(&f);
        metrics_reset();
}

static void teardown(void) {
        fixture_teardown(&f);
}

TestSuite(registry, .init = setup, .fini = teardown);
TestSuite(floor, .init = setup, .fini = teardown);

static void write_file(const char *path, const char *text) {
        FILE *fp = fopen(path, "we");
        cr_assert_not_null(fp, "%s", path);
        cr_assert_eq(fputs(text, fp) >= 0, true);
        cr_assert_eq(fclose(fp), 0);
}

static void state_file(const char *relative, const char *text) {
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/%s", f.state_dir, relative);
        write_file(path, text);
}

static bool state_exists(const char *relative) {
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/%s", f.state_dir, relative);
        return access(path, F_OK) == 0;
}

static void reopen(void) {
        fixture_close(&f);
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
}

static void create_volume(const char *name, const char *secrets) {
        char *t = fixture_call(&f, "/VolumeDriver.Create", NULL, "{\"Name\":\"%s\",\"Opts\":{\"secrets\":\"%s\"}}", name,
                               secrets);
        cr_assert_str_eq(t, "{}", "Create %s: %s", name, t);
        free(t);
}

static void mount_volume(const char *volume, const char *id) {
        char *t = fixture_call(&f, "/VolumeDriver.Mount", NULL, "{\"Name\":\"%s\",\"ID\":\"%s\"}", volume, id);
        cr_assert(strstr(t, "\"Mountpoint\""), "Mount %s: %s", volume, t);
        free(t);
}

/* ---- start-up ---- */

Test(registry, start_adopts_mounted_instances_and_destroys_the_rest) {
        fixture_close(&f);
        char live[65], unmounted[65], dead[65], orphan[65], bad[65];
        fixture_mount_id(1, live);
        fixture_mount_id(2, unmounted);
        fixture_mount_id(3, dead);
        fixture_mount_id(4, orphan);
        fixture_mount_id(5, bad);
        char text[512], file[128];
        state_file("volumes/app.json", "{\"Name\":\"app\",\"CreatedAt\":1,\"Opts\":{\"secrets\":\"token\"}}");
        const char *ids[] = { live, unmounted, dead };
        const unsigned refs[] = { 2, 1, 0 };
        for (size_t i = 0; i < 3; i++) {
                (void) snprintf(text, sizeof(text),
                                "{\"ID\":\"%s\",\"Volume\":\"app\",\"Refcount\":%u,\"Generation\":1,"
                                "\"Versions\":{\"token\":4},\"MountedAt\":7}",
                                ids[i], refs[i]);
                (void) snprintf(file, sizeof(file), "mounts/%s.json", ids[i]);
                state_file(file, text);
        }
        (void) snprintf(file, sizeof(file), "mounts/%s.json", bad);
        state_file(file, "{\"ID\":");
        fake_instances_add(f.instances, live);
        fake_instances_add(f.instances, dead);
        fake_instances_add(f.instances, orphan);
        fake_instances_add(f.instances, bad);
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);

        cr_assert(fake_instances_exists(f.instances, live), "a mounted instance with a record is adopted");
        cr_assert_not(fake_instances_exists(f.instances, dead), "a record whose last unmount failed is finished");
        cr_assert_not(fake_instances_exists(f.instances, orphan), "an instance without a record is destroyed");
        cr_assert_not(fake_instances_exists(f.instances, bad), "an instance with an unreadable record is destroyed");
        (void) snprintf(file, sizeof(file), "mounts/%s.json", unmounted);
        cr_assert_not(state_exists(file), "the record of an instance no longer mounted is removed");

        /* The adopted one keeps its references: two Unmounts wipe it. */
        char *t = fixture_call(&f, "/VolumeDriver.Unmount", NULL, "{\"Name\":\"app\",\"ID\":\"%s\"}", live);
        cr_assert_str_eq(t, "{}");
        free(t);
        cr_assert(fake_instances_exists(f.instances, live));
        t = fixture_call(&f, "/VolumeDriver.Unmount", NULL, "{\"Name\":\"app\",\"ID\":\"%s\"}", live);
        free(t);
        cr_assert_not(fake_instances_exists(f.instances, live));
        (void) snprintf(file, sizeof(file), "mounts/%s.json", live);
        cr_assert_not(state_exists(file));
}

Test(registry, a_record_keeps_versions_and_container_across_a_restart) {
        fixture_put(&f, "token", "canary-reg-1");
        create_volume("app", "token,token:other");
        char id[65];
        fixture_mount_id(9, id);
        mount_volume("app", id);
        sd_error err = { 0 };
        const char cid[] = "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";
        cr_assert_eq(registry_link(f.registry, id, cid, "web", 1, &err), 1, "%s", err.message);
        cr_assert_eq(registry_link(f.registry, id, cid, "web", 1, &err), 0, "linking again changes nothing");
        reopen();
        struct record_views views = { 0 };
        cr_assert_eq(registry_views(f.registry, &views), 0);
        cr_assert_eq(views.n, 1);
        cr_assert_str_eq(views.items[0].container_id, cid);
        cr_assert_str_eq(views.items[0].container_name, "web");
        cr_assert_eq(views.items[0].refcount, 1);
        record_views_clear(&views);
        struct mount_record *m = registry_acquire(f.registry, id);
        cr_assert_not_null(m);
        cr_assert_eq(record_version_of(m, "token"), 1);
        cr_assert_eq(m->n_versions, 1, "a secret delivered under two names is one version");
        registry_release(f.registry, m);
}

/* ---- reservations ---- */

struct mount_thread {
        const char *volume;
        char id[65];
        char *reply;
};

static void *mount_main(void *arg) {
        struct mount_thread *t = arg;
        t->reply = fixture_call(&f, "/VolumeDriver.Mount", NULL, "{\"Name\":\"%s\",\"ID\":\"%s\"}", t->volume, t->id);
        return NULL;
}

/* A volume "app" of secret token (value canary) and a reservation of
 * mount id n on it. */
static void reserve(const char *canary, unsigned n, char id[65], struct mount_reservation *res) {
        fixture_put(&f, "token", canary);
        create_volume("app", "token");
        char *mountpoint = NULL;
        sd_error err = { 0 };
        fixture_mount_id(n, id);
        cr_assert_eq(registry_mount_reserve(f.registry, "app", id, res, &mountpoint, &err), 0, "%s", err.message);
}

Test(registry, a_second_mount_of_an_id_in_flight_waits_and_shares_the_instance) {
        struct mount_reservation res;
        sd_error err = { 0 };
        char id[65];
        reserve("canary-reg-2", 11, id, &res);
        struct volume_spec *spec = res.spec;

        /* dockerd asks again while the first Mount is still fetching. */
        struct mount_thread t = { .volume = "app" };
        memcpy(t.id, id, sizeof(t.id));
        pthread_t thread;
        cr_assert_eq(pthread_create(&thread, NULL, mount_main, &t), 0);
        usleep(100 * 1000);
        cr_assert_null(t.reply, "the second Mount went ahead of the first");

        /* The first finishes: the second shares its instance. */
        const uint64_t versions[1] = { 1 }, seen[1] = { 0 };
        cr_assert_eq(registry_mount_decide(f.registry, &res, versions, seen, NULL, &err), 0, "%s", err.message);
        char *path = strdup("/fake/ro");
        res.instance_made = true;
        struct sd_tmpfs_params params = { .size_bytes = 1 << 20, .nr_inodes = 20 };
        char *ro = NULL;
        cr_assert_eq(instances_create(registry_instances(f.registry), id, &params, &ro, &err), 0, "%s", err.message);
        free(ro);
        cr_assert_eq(registry_mount_finish(f.registry, &res, path, &err), 0, "%s", err.message);
        free(spec);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_str_eq(t.reply, "{\"Mountpoint\":\"/fake/ro\"}");
        free(t.reply);

        /* Two references: the first Unmount keeps it. */
        cr_assert_eq(registry_unmount(f.registry, "app", id, &err), 0);
        cr_assert(fake_instances_exists(f.instances, id));
        cr_assert_eq(registry_unmount(f.registry, "app", id, &err), 0);
        cr_assert_not(fake_instances_exists(f.instances, id));
}

Test(registry, a_mount_that_fails_leaves_nothing_and_the_id_can_mount_again) {
        struct mount_reservation res;
        char id[65];
        reserve("canary-reg-3", 12, id, &res);
        free(res.spec);
        registry_mount_abandon(f.registry, &res, "test");
        struct record_views views = { 0 };
        cr_assert_eq(registry_views(f.registry, &views), 0);
        cr_assert_eq(views.n, 0);
        record_views_clear(&views);
        mount_volume("app", id);
        cr_assert(fake_instances_exists(f.instances, id));
}

Test(registry, reservations_count_against_the_caps) {
        fixture_close(&f);
        f.caps.max_instances_per_volume = 1;
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
        fixture_put(&f, "token", "canary-reg-4");
        create_volume("app", "token");
        struct mount_reservation res;
        char *mountpoint = NULL;
        char a[65], b[65];
        fixture_mount_id(21, a);
        fixture_mount_id(22, b);
        cr_assert_eq(registry_mount_reserve(f.registry, "app", a, &res, &mountpoint, &err), 0, "%s", err.message);
        struct mount_reservation other;
        cr_assert_eq(registry_mount_reserve(f.registry, "app", b, &other, &mountpoint, &err), -EDQUOT);
        cr_assert(strstr(err.message, "max-instances-per-volume"), "%s", err.message);
        free(res.spec);
        registry_mount_abandon(f.registry, &res, "test");
}

/* ---- wipes ---- */

Test(registry, a_wipe_applies_only_to_the_record_it_was_decided_on) {
        fixture_put(&f, "token", "canary-reg-5");
        create_volume("app", "token");
        char id[65];
        fixture_mount_id(31, id);
        mount_volume("app", id);
        const char cid[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        cr_assert_eq(registry_wipe(f.registry, id, cid, 1, "test"), -EBUSY, "not linked to that container");
        cr_assert_eq(registry_wipe(f.registry, id, "", 2, "test"), -EBUSY, "another reference count");
        cr_assert(fake_instances_exists(f.instances, id));
        cr_assert_eq(registry_wipe(f.registry, id, "", 1, "no running container holds it"), 0);
        cr_assert_not(fake_instances_exists(f.instances, id));
        cr_assert_eq(metrics_get(METRIC_WIPES), 1);
        char *audit = fixture_read(&f, "audit.log");
        cr_assert(strstr(audit, "\"event\":\"wipe\"") && strstr(audit, "no running container holds it"), "%s", audit);
        free(audit);
        cr_assert_eq(registry_wipe(f.registry, id, "", 1, "again"), -ENOENT);
        /* dockerd's late Unmount of it is expected, and succeeds. */
        sd_error err = { 0 };
        cr_assert_eq(registry_unmount(f.registry, "app", id, &err), 0);
        cr_assert_eq(metrics_get(METRIC_WIPES), 1, "counted once");
}

Test(registry, a_failed_wipe_leaves_a_dead_record_the_next_mount_finishes) {
        fixture_put(&f, "token", "canary-reg-6");
        create_volume("app", "token");
        char id[65];
        fixture_mount_id(41, id);
        mount_volume("app", id);
        fake_instances_fail_destroy(f.instances, id, true);
        sd_error err = { 0 };
        cr_assert_lt(registry_unmount(f.registry, "app", id, &err), 0);
        cr_assert(strstr(err.message, "cannot wipe its tmpfs"), "%s", err.message);
        struct record_views views = { 0 };
        cr_assert_eq(registry_views(f.registry, &views), 0);
        cr_assert_eq(views.n, 1);
        cr_assert_eq(views.items[0].refcount, 0, "dead: no references");
        record_views_clear(&views);
        char *t = fixture_call(&f, "/VolumeDriver.Remove", NULL, "{\"Name\":\"app\"}");
        cr_assert_str_eq(t, "{}", "a dead instance does not keep its volume: %s", t);
        free(t);
        create_volume("app", "token");
        fake_instances_fail_destroy(f.instances, id, false);
        mount_volume("app", id);
        cr_assert_eq(fake_instances_generation(f.instances, id), 1, "a fresh instance");
        cr_assert_eq(metrics_get(METRIC_WIPES), 0, "a failed wipe is not a wipe");
}

/* ---- the rollback floor ---- */

static char *floor_bytes(size_t *len) {
        return fixture_read_path(f.floor_path, len);
}

Test(floor, raised_before_delivery_written_sorted_and_never_lowered) {
        fixture_put(&f, "b_token", "canary-floor-1");
        fixture_put(&f, "a_key", "canary-floor-2");
        fixture_put(&f, "a_key", "canary-floor-3");
        create_volume("app", "b_token,a_key");
        char id[65];
        fixture_mount_id(51, id);
        mount_volume("app", id);
        size_t len;
        char *text = floor_bytes(&len);
        cr_assert_str_eq(text, "{\"a_key\":2,\"b_token\":1}");
        free(text);
        cr_assert_eq(registry_floor(f.registry, "a_key"), 2);
        sd_error err = { 0 };
        cr_assert_eq(registry_floor_decide(f.registry, "a_key", 1, 2, &err), -ESTALE);
        cr_assert(strstr(err.message, "secret 'a_key': the store offers version 1 but version 2 was already "
                                      "delivered on this host; refusing a rollback"),
                  "%s", err.message);
        cr_assert_eq(registry_floor_decide(f.registry, "a_key", 1, 0, &err), -EAGAIN,
                     "a newer version was delivered while this one was fetched");
        cr_assert_eq(registry_floor_decide(f.registry, "a_key", 2, 2, &err), 0);
}

Test(floor, a_floor_left_in_the_state_directory_is_merged) {
        fixture_close(&f);
        state_file("delivered.json", "{\"old\":7}");
        write_file(f.floor_path, "{\"old\":3,\"new\":2}");
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
        cr_assert_eq(registry_floor(f.registry, "old"), 7);
        cr_assert_eq(registry_floor(f.registry, "new"), 2);
        size_t len;
        char *text = floor_bytes(&len);
        cr_assert_str_eq(text, "{\"new\":2,\"old\":7}");
        free(text);
}

Test(floor, sized_for_a_hundred_thousand_long_names, .timeout = 300) {
        fixture_close(&f);
        FILE *fp = fopen(f.floor_path, "we");
        cr_assert_not_null(fp);
        fputc('{', fp);
        char name[129];
        memset(name, 'x', 120);
        for (unsigned i = 0; i < 100000; i++) {
                (void) snprintf(name + 120, 9, "%08u", i);
                fprintf(fp, "%s\"%s\":%u", i ? "," : "", name, 1000000000u + i);
        }
        fputc('}', fp);
        cr_assert_eq(fclose(fp), 0);
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
        (void) snprintf(name + 120, 9, "%08u", 99999u);
        cr_assert_eq(registry_floor(f.registry, name), 1000099999u);
        /* And it still grows. */
        fixture_put(&f, "token", "canary-floor-4");
        create_volume("app", "token");
        char id[65];
        fixture_mount_id(52, id);
        mount_volume("app", id);
        cr_assert_eq(registry_floor(f.registry, "token"), 1);
        reopen();
        cr_assert_eq(registry_floor(f.registry, "token"), 1);
        cr_assert_eq(registry_floor(f.registry, name), 1000099999u);
}

/* A broken floor: every delivery refused with the path, the reason and
 * the fix, and the file left as it was. */
static void assert_refused_and_kept(const char *why, const char *reason) {
        sd_error err = { 0 };
        size_t before_len = 0;
        char *before = floor_bytes(&before_len);
        cr_assert_eq(fixture_open(&f, &err), 0, "%s: the agent still starts: %s", why, err.message);

        char *t = fixture_call(&f, "/VolumeDriver.Create", NULL, "{\"Name\":\"other\",\"Opts\":{\"secrets\":\"token\"}}");
        cr_assert(strstr(t, "rollback floor ") && strstr(t, f.floor_path) && strstr(t, reason) &&
                          strstr(t, "refusing to deliver secrets until it is fixed"),
                  "%s: Create: %s", why, t);
        free(t);
        char id[65];
        fixture_mount_id(61, id);
        t = fixture_call(&f, "/VolumeDriver.Mount", NULL, "{\"Name\":\"app\",\"ID\":\"%s\"}", id);
        cr_assert(strstr(t, "\"Err\"") && strstr(t, f.floor_path) && strstr(t, reason), "%s: Mount: %s", why, t);
        free(t);
        cr_assert_not(fake_instances_exists(f.instances, id), "%s: nothing delivered", why);
        cr_assert_eq(registry_floor_decide(f.registry, "token", 9, 0, &err), -EUCLEAN, "%s", why);
        cr_assert_geq(metrics_get_error(ERROR_STATE), 2, "%s: counted as a state error", why);

        size_t after_len = 0;
        char *after = floor_bytes(&after_len);
        cr_assert_eq(before_len, after_len, "%s: the file changed size", why);
        cr_assert(before_len == 0 || memcmp(before, after, before_len) == 0, "%s: the file changed", why);
        free(before);
        free(after);
        fixture_close(&f);
}

static void break_floor_setup(void) {
        fixture_put(&f, "token", "canary-floor-5");
        fixture_put(&f, "token", "canary-floor-6");
        create_volume("app", "token");
        char id[65];
        fixture_mount_id(60, id);
        mount_volume("app", id);
        fixture_close(&f);
        metrics_reset();
}

Test(floor, malformed_is_refused_and_kept) {
        break_floor_setup();
        write_file(f.floor_path, "{\"token\": 2,");
        assert_refused_and_kept("malformed", "not a JSON object");
        write_file(f.floor_path, "{\"token\": 0}");
        assert_refused_and_kept("version 0", "entry 'token' is not a secret name with a version");
        write_file(f.floor_path, "[2]");
        assert_refused_and_kept("an array", "not a JSON object");
}

Test(floor, too_large_is_refused_and_kept) {
        break_floor_setup();
        int fd = open(f.floor_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, (off_t) FLOOR_FILE_MAX + 1), 0);
        close(fd);
        assert_refused_and_kept("too large", "larger than the limit");
}

Test(floor, a_symlink_is_refused_and_kept) {
        break_floor_setup();
        char real[160];
        (void) snprintf(real, sizeof(real), "%s.real", f.floor_path);
        cr_assert_eq(rename(f.floor_path, real), 0);
        cr_assert_eq(symlink(real, f.floor_path), 0);
        assert_refused_and_kept("symlink", "it is a symbolic link");
        struct stat st;
        cr_assert_eq(lstat(f.floor_path, &st), 0);
        cr_assert(S_ISLNK(st.st_mode), "the link is still there");
}

Test(floor, not_owned_by_the_agent_or_open_to_others_is_refused_and_kept) {
        break_floor_setup();
        cr_assert_eq(chmod(f.floor_path, 0666), 0);
        assert_refused_and_kept("mode 0666", "it has mode 0666: writable by group or others");
        cr_assert_eq(chmod(f.floor_path, 0600), 0);
        if (geteuid() != 0)
                cr_skip_test("needs root to give the file away");
        cr_assert_eq(chown(f.floor_path, 1000, 1000), 0);
        assert_refused_and_kept("uid 1000", "it is owned by uid 1000");
}

Test(floor, a_directory_in_its_place_is_refused) {
        break_floor_setup();
        cr_assert_eq(unlink(f.floor_path), 0);
        cr_assert_eq(mkdir(f.floor_path, 0700), 0);
        assert_refused_and_kept("directory", "it is not a regular file");
}
