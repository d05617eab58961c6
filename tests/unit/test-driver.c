/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The plugin endpoints (agent/driver.h), delivery (agent/delivery.h) and
 * rotation (agent/rotate.h) end to end over a real file store and
 * in-memory instances: what each endpoint does, what each refusal says and
 * how it is counted, rotation decisions, and that nothing waits behind a
 * fetch: a stalled store holds up neither wipes nor other Mounts; and an
 * unreachable store: Mounts served from the local cache (never below the
 * floor, a tampered entry refused by its path), rotation retried and
 * counted as a store error, not a refusal.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-fixture.h"
#include "cache.h"
#include "metrics.h"
#include "rotate.h"
#include "secretd/clock.h"

/* An envelope source in front of the store that the tests steer: gets of
 * one secret can be held until released, and one secret can fail as an
 * etcd reply that makes no sense would. */
struct gate {
        struct sd_store *store;
        pthread_mutex_t lock;
        pthread_cond_t changed;
        char held[SD_NAME_MAX + 1];       /* gets of it wait while closed */
        bool closed;
        unsigned inside, max_inside;      /* gets of held waiting now, at most */
        char failing[SD_NAME_MAX + 1];    /* gets of it fail with EPROTO */
        bool down;                        /* every get fails as an unreachable etcd */
        unsigned gets;                    /* gets so far */
        struct envelope_source source;
};

static int gate_get(void *ctx, const char *name, uint64_t version, char **data_out, size_t *len_out,
                    uint64_t *version_out, sd_error *err) {
        struct gate *g = ctx;
        pthread_mutex_lock(&g->lock);
        g->gets++;
        if (g->down) {
                pthread_mutex_unlock(&g->lock);
                return sd_error_set(err, ECONNREFUSED, "store 'etcd://127.0.0.1:2379/x' is unreachable");
        }
        if (strcmp(name, g->failing) == 0) {
                pthread_mutex_unlock(&g->lock);
                return sd_error_set(err, EPROTO, "store 'etcd://127.0.0.1:2379/x': etcd answered a key outside the prefix");
        }
        if (strcmp(name, g->held) == 0) {
                g->inside++;
                if (g->inside > g->max_inside)
                        g->max_inside = g->inside;
                pthread_cond_broadcast(&g->changed);
                while (g->closed)
                        pthread_cond_wait(&g->changed, &g->lock);
                g->inside--;
                pthread_cond_broadcast(&g->changed);
        }
        pthread_mutex_unlock(&g->lock);
        return sd_store_get(g->store, name, version, data_out, len_out, version_out, err);
}

static struct agent_fixture f;
static struct gate g;

static void setup(void) {
        fixture_setup(&f);
        fixture_close(&f);
        g = (struct gate) { .store = f.store };
        pthread_mutex_init(&g.lock, NULL);
        pthread_cond_init(&g.changed, NULL);
        g.source = (struct envelope_source) { .get = gate_get, .ctx = &g };
        f.source = &g.source;
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
        metrics_reset();
}

static void teardown(void) {
        fixture_teardown(&f);
        pthread_cond_destroy(&g.changed);
        pthread_mutex_destroy(&g.lock);
}

TestSuite(driver, .init = setup, .fini = teardown);
TestSuite(rotation, .init = setup, .fini = teardown);
TestSuite(parallel, .init = setup, .fini = teardown, .timeout = 60);

#define call(path, ...) fixture_call(&f, path, NULL, __VA_ARGS__)

static void create_volume(const char *name, const char *opts) {
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", name, opts);
        cr_assert_str_eq(t, "{}", "Create %s: %s", name, t);
        free(t);
}

static void mount_ok(const char *volume, const char *id) {
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"%s\",\"ID\":\"%s\"}", volume, id);
        cr_assert(strstr(t, "\"Mountpoint\""), "Mount %s: %s", volume, t);
        free(t);
}

static void unmount_ok(const char *volume, const char *id) {
        char *t = call("/VolumeDriver.Unmount", "{\"Name\":\"%s\",\"ID\":\"%s\"}", volume, id);
        cr_assert_str_eq(t, "{}", "Unmount %s: %s", volume, t);
        free(t);
}

static void assert_file(const char *id, const char *file, const char *want) {
        fixture_assert_file(&f, id, file, want);
}

static bool audit_has(const char *a, const char *b) {
        return fixture_audit_has(&f, a, b);
}

/* ---- the endpoints ---- */

Test(driver, create_mount_get_list_unmount_remove) {
        fixture_put(&f, "db_password", "canary-drv-1");
        fixture_put(&f, "db_password", "canary-drv-2");
        fixture_put(&f, "api_key", "canary-drv-3");
        create_volume("app", "\"secrets\":\"db_password,api_key:key\",\"uid\":\"999\",\"mode\":\"0440\"");
        /* dockerd re-sends Create after a broken connection. */
        create_volume("app", "\"secrets\":\"api_key:key,db_password\",\"uid\":\"999\",\"mode\":\"440\"");
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "app", "\"secrets\":\"db_password\"");
        cr_assert(strstr(t, "volume 'app' already exists with different options"), "%s", t);
        free(t);

        char id[65];
        fixture_mount_id(1, id);
        mount_ok("app", id);
        assert_file(id, "db_password", "canary-drv-2");
        assert_file(id, "key", "canary-drv-3");
        unsigned uid, gid, mode;
        cr_assert(fake_instances_owner(f.instances, id, &uid, &gid, &mode));
        cr_assert_eq(uid, 999);
        cr_assert_eq(mode, 0440);
        cr_assert_eq(metrics_get(METRIC_DELIVERIES), 2);
        cr_assert(audit_has("\"event\":\"deliver\"", "\"version\":2"));

        t = call("/VolumeDriver.Get", "{\"Name\":\"%s\"}", "app");
        cr_assert(strstr(t, "\"delivered\":{\"api_key\":1,\"db_password\":2}") && strstr(t, "\"instances\":1") &&
                          strstr(t, "\"Mountpoint\":\"\""),
                  "%s", t);
        cr_assert(strstr(t, id), "Get lists the instance's path: %s", t);
        cr_assert_null(strstr(t, "canary-drv"), "no value in Get");
        free(t);
        t = call("/VolumeDriver.List", "{}");
        cr_assert_str_eq(t, "{\"Volumes\":[{\"Mountpoint\":\"\",\"Name\":\"app\"}]}");
        free(t);
        t = call("/VolumeDriver.Path", "{\"Name\":\"%s\"}", "app");
        cr_assert_str_eq(t, "{\"Mountpoint\":\"\"}");
        free(t);
        t = call("/VolumeDriver.Remove", "{\"Name\":\"%s\"}", "app");
        cr_assert(strstr(t, "volume 'app' is still mounted by 1 container(s)"), "%s", t);
        free(t);

        unmount_ok("app", id);
        cr_assert_not(fake_instances_exists(f.instances, id));
        cr_assert_eq(metrics_get(METRIC_WIPES), 1);
        t = call("/VolumeDriver.Remove", "{\"Name\":\"%s\"}", "app");
        cr_assert_str_eq(t, "{}");
        free(t);
        t = call("/VolumeDriver.Get", "{\"Name\":\"%s\"}", "app");
        cr_assert_str_eq(t, "{\"Err\":\"no such volume\"}");
        free(t);
}

Test(driver, refusals_name_the_cause_and_count_its_kind) {
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "x", "\"secrets\":\"missing\"");
        cr_assert(strstr(t, "volume 'x': store '") && strstr(t, "secret 'missing' not found"), "%s", t);
        free(t);
        cr_assert_eq(metrics_get_error(ERROR_STORE), 1, "a missing secret is the store's answer");

        /* Signed by a writer this host does not trust. */
        struct sd_writer_key *stranger = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_writer_key_generate(&stranger, &err), 0);
        fixture_put_forged(&f, stranger, "forged", "canary-drv-4");
        sd_writer_key_free(stranger);
        t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "x", "\"secrets\":\"forged\"");
        cr_assert(strstr(t, "not a writer in policy v1") && strstr(t, "an admin allows that writer with 'secretctl writer add'"),
                  "%s", t);
        free(t);
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 1);

        /* Too big for the volume's tmpfs. */
        char big[3001];
        memset(big, 'b', 3000);
        big[3000] = '\0';
        fixture_put(&f, "big", big);
        t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "x", "\"secrets\":\"big\",\"size\":\"4k\"");
        cr_assert(strstr(t, "its secrets need a tmpfs of 8192 bytes"), "%s", t);
        free(t);
        cr_assert_eq(metrics_get_error(ERROR_TMPFS), 1);

        /* Sealed while this host was not a recipient: policy v2 drops it
         * (another host takes its place), and the agent, seeing an envelope
         * of v2, verifies v2 first. */
        struct sd_policy *v2 = NULL;
        cr_assert_eq(sd_policy_next_draft(f.policy, &v2, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_remove(v2, SD_POLICY_RECIPIENTS, "host", &err), 0, "%s", err.message);
        struct sd_agent_key *other = NULL;
        cr_assert_eq(sd_agent_key_generate(&other, &err), 0);
        cr_assert_eq(sd_policy_add(v2, SD_POLICY_RECIPIENTS, "other", NULL, other->box_pk, NULL, 0, &err), 0, "%s",
                     err.message);
        sd_agent_key_free(other);
        fixture_publish(&f, v2);
        fixture_put(&f, "early", "canary-drv-5");
        t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "x", "\"secrets\":\"early\"");
        cr_assert(strstr(t, "this host is not a recipient") && strstr(t, "secretctl recipient add HOSTNAME sda1:test"),
                  "%s", t);
        free(t);
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 2);

        cr_assert_eq(metrics_get(METRIC_REFUSALS), 4);
        cr_assert(audit_has("\"event\":\"refuse\"", "not a recipient"));
}

Test(driver, a_rollback_is_refused_at_create_and_mount) {
        fixture_put(&f, "token", "canary-drv-6");
        fixture_put(&f, "token", "canary-drv-7");
        create_volume("app", "\"secrets\":\"token\"");
        char a[65], b[65];
        fixture_mount_id(1, a);
        fixture_mount_id(2, b);
        mount_ok("app", a);
        /* The store loses v2: v1 is its latest again. */
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/store/secrets/token/%020u.env", f.dir, 2u);
        cr_assert_eq(unlink(path), 0, "%s", path);
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"%s\",\"ID\":\"%s\"}", "app", b);
        cr_assert(strstr(t, "volume 'app': secret 'token': the store offers version 1 but version 2 was already "
                            "delivered on this host; refusing a rollback"),
                  "%s", t);
        free(t);
        cr_assert_not(fake_instances_exists(f.instances, b));
        cr_assert_eq(metrics_get_error(ERROR_ROLLBACK), 1);
        t = call("/VolumeDriver.Create", "{\"Name\":\"%s\",\"Opts\":{%s}}", "again", "\"secrets\":\"token\"");
        cr_assert(strstr(t, "refusing a rollback"), "%s", t);
        free(t);
        assert_file(a, "token", "canary-drv-7");
}

/* ---- rotation ---- */

static struct rotator *rotator(void) {
        const struct rotator_config rc = { .registry = f.registry, .delivery = f.delivery, .notes = &f.notes };
        struct rotator *r = NULL;
        sd_error err = { 0 };
        cr_assert_eq(rotator_new(&rc, &r, &err), 0, "%s", err.message);
        return r;
}

Test(rotation, every_instance_gets_the_new_version_once_and_a_rollback_is_refused) {
        fixture_put(&f, "token", "canary-rot-1");
        fixture_put(&f, "other", "canary-rot-o");
        create_volume("app", "\"secrets\":\"token,other\"");
        char ids[3][65];
        for (unsigned i = 0; i < 3; i++) {
                fixture_mount_id(10 + i, ids[i]);
                mount_ok("app", ids[i]);
        }
        struct rotator *r = rotator();
        fixture_put(&f, "token", "canary-rot-2");
        unsigned long opens = delivery_opens(f.delivery);
        rotator_rotate(r, "token", sd_monotonic_seconds());
        cr_assert_eq(delivery_opens(f.delivery), opens + 1, "one open for every instance");
        for (unsigned i = 0; i < 3; i++) {
                assert_file(ids[i], "token", "canary-rot-2");
                assert_file(ids[i], "other", "canary-rot-o");
                cr_assert_eq(fake_instances_generation(f.instances, ids[i]), 2);
        }
        cr_assert_eq(metrics_get(METRIC_ROTATIONS), 3);
        cr_assert_eq(registry_floor(f.registry, "token"), 2);
        cr_assert(audit_has("\"event\":\"rotate\"", "\"version\":2"));

        /* A spurious change: nothing to do. */
        rotator_rotate(r, "token", sd_monotonic_seconds());
        cr_assert_eq(fake_instances_generation(f.instances, ids[0]), 2);

        /* The store loses v2: refused once, nothing replaced. */
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/store/secrets/token/%020u.env", f.dir, 2u);
        cr_assert_eq(unlink(path), 0);
        rotator_rotate(r, "token", sd_monotonic_seconds());
        rotator_rotate(r, "token", sd_monotonic_seconds());
        cr_assert_eq(metrics_get_error(ERROR_ROLLBACK), 1, "warned and counted once per cause");
        cr_assert(audit_has("\"event\":\"refuse\"", "refusing a rollback"));
        assert_file(ids[0], "token", "canary-rot-2");
        rotator_stop(r);
}

Test(rotation, a_deleted_secret_is_kept_or_removed_as_the_volume_says) {
        fixture_put(&f, "token", "canary-rot-3");
        create_volume("keep", "\"secrets\":\"token\"");
        create_volume("drop", "\"secrets\":\"token\",\"on-delete\":\"remove\"");
        char k[65], d[65];
        fixture_mount_id(20, k);
        fixture_mount_id(21, d);
        mount_ok("keep", k);
        mount_ok("drop", d);
        struct rotator *r = rotator();
        uint64_t tomb = fixture_delete(&f, "token");
        rotator_rotate(r, "token", sd_monotonic_seconds());
        assert_file(k, "token", "canary-rot-3");
        assert_file(d, "token", NULL);
        cr_assert_eq(registry_floor(f.registry, "token"), tomb);
        /* Put again: both get it. */
        fixture_put(&f, "token", "canary-rot-4");
        rotator_rotate(r, "token", sd_monotonic_seconds());
        assert_file(k, "token", "canary-rot-4");
        assert_file(d, "token", "canary-rot-4");
        rotator_stop(r);
}

Test(rotation, an_etcd_reply_that_makes_no_sense_is_a_store_error_at_mount_and_in_rotation) {
        fixture_put(&f, "flaky", "canary-rot-5");
        create_volume("app", "\"secrets\":\"flaky\"");
        char a[65], b[65];
        fixture_mount_id(30, a);
        fixture_mount_id(31, b);
        mount_ok("app", a);
        (void) snprintf(g.failing, sizeof(g.failing), "flaky");
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"%s\",\"ID\":\"%s\"}", "app", b);
        cr_assert(strstr(t, "etcd answered a key outside the prefix"), "%s", t);
        free(t);
        cr_assert_eq(metrics_get_error(ERROR_STORE), 1);
        struct rotator *r = rotator();
        rotator_rotate(r, "flaky", sd_monotonic_seconds());
        cr_assert_eq(metrics_get_error(ERROR_STORE), 2, "the same kind in rotation");
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 0, "never a verify error");
        struct notes_state st;
        notes_state_get(&f.notes, &st);
        cr_assert_not(st.store_ok);
        cr_assert(strstr(st.store_error, "outside the prefix"), "%s", st.store_error);
        assert_file(a, "flaky", "canary-rot-5");
        rotator_stop(r);
}

/* ---- nothing waits behind a fetch ---- */

struct mount_thread {
        const char *volume;
        char id[65];
        char *reply;
        bool done;
};

static void *mount_main(void *arg) {
        struct mount_thread *t = arg;
        t->reply = fixture_call(&f, "/VolumeDriver.Mount", NULL, "{\"Name\":\"%s\",\"ID\":\"%s\"}", t->volume, t->id);
        __atomic_store_n(&t->done, true, __ATOMIC_SEQ_CST);
        return NULL;
}

static void hold(const char *secret) {
        pthread_mutex_lock(&g.lock);
        (void) snprintf(g.held, sizeof(g.held), "%s", secret);
        g.closed = true;
        pthread_mutex_unlock(&g.lock);
}

/* Wait (with a deadline) until n gets of the held secret are waiting. */
static void wait_inside(unsigned n) {
        int64_t deadline = sd_monotonic_ms() + 20000;
        pthread_mutex_lock(&g.lock);
        while (g.inside < n && sd_monotonic_ms() < deadline) {
                pthread_mutex_unlock(&g.lock);
                usleep(1000);
                pthread_mutex_lock(&g.lock);
        }
        unsigned inside = g.inside;
        pthread_mutex_unlock(&g.lock);
        cr_assert_geq(inside, n, "only %u fetch(es) reached the store", inside);
}

static void release(void) {
        pthread_mutex_lock(&g.lock);
        g.closed = false;
        pthread_cond_broadcast(&g.changed);
        pthread_mutex_unlock(&g.lock);
}

Test(parallel, a_stalled_fetch_holds_up_neither_unmount_nor_the_events_wipe) {
        fixture_put(&f, "slow", "canary-par-1");
        fixture_put(&f, "fast", "canary-par-2");
        create_volume("slow", "\"secrets\":\"slow\"");
        create_volume("fast", "\"secrets\":\"fast\"");
        char gone[65], dead[65];
        fixture_mount_id(40, gone);
        fixture_mount_id(41, dead);
        mount_ok("fast", gone);
        mount_ok("fast", dead);

        hold("slow");
        struct mount_thread t = { .volume = "slow" };
        fixture_mount_id(42, t.id);
        pthread_t thread;
        cr_assert_eq(pthread_create(&thread, NULL, mount_main, &t), 0);
        wait_inside(1);

        /* While that Mount's fetch is stuck in the store: */
        unmount_ok("fast", gone);
        cr_assert_not(fake_instances_exists(f.instances, gone), "Unmount wiped");
        cr_assert_eq(registry_wipe(f.registry, dead, "", 1, "container went"), 0);
        cr_assert_not(fake_instances_exists(f.instances, dead), "the events thread's wipe went through");
        char *get = call("/VolumeDriver.Get", "{\"Name\":\"%s\"}", "fast");
        cr_assert(strstr(get, "\"instances\":0"), "%s", get);
        free(get);
        cr_assert_not(__atomic_load_n(&t.done, __ATOMIC_SEQ_CST), "the fetch is still blocked: the order is proven");

        release();
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert(strstr(t.reply, "\"Mountpoint\""), "%s", t.reply);
        free(t.reply);
        assert_file(t.id, "slow", "canary-par-1");
        cr_assert_eq(metrics_get(METRIC_WIPES), 2);
}

Test(parallel, mounts_of_different_ids_fetch_at_the_same_time) {
        fixture_put(&f, "slow", "canary-par-3");
        create_volume("slow", "\"secrets\":\"slow\"");
        hold("slow");
        struct mount_thread t[2] = { { .volume = "slow" }, { .volume = "slow" } };
        pthread_t threads[2];
        for (unsigned i = 0; i < 2; i++) {
                fixture_mount_id(50 + i, t[i].id);
                cr_assert_eq(pthread_create(&threads[i], NULL, mount_main, &t[i]), 0);
        }
        wait_inside(2);
        release();
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
                cr_assert(strstr(t[i].reply, "\"Mountpoint\""), "%s", t[i].reply);
                free(t[i].reply);
                assert_file(t[i].id, "slow", "canary-par-3");
        }
        cr_assert_eq(g.max_inside, 2);
}

Test(parallel, a_second_mount_of_the_same_id_waits_for_the_first_and_shares_it) {
        fixture_put(&f, "slow", "canary-par-4");
        create_volume("slow", "\"secrets\":\"slow\"");
        hold("slow");
        struct mount_thread t[2] = { { .volume = "slow" }, { .volume = "slow" } };
        fixture_mount_id(60, t[0].id);
        fixture_mount_id(60, t[1].id);
        pthread_t threads[2];
        cr_assert_eq(pthread_create(&threads[0], NULL, mount_main, &t[0]), 0);
        wait_inside(1);
        cr_assert_eq(pthread_create(&threads[1], NULL, mount_main, &t[1]), 0);
        /* The second waits on the reservation, not in the store. */
        usleep(100 * 1000);
        pthread_mutex_lock(&g.lock);
        unsigned inside = g.inside;
        pthread_mutex_unlock(&g.lock);
        cr_assert_eq(inside, 1, "the second Mount of the id fetched too");
        cr_assert_not(__atomic_load_n(&t[1].done, __ATOMIC_SEQ_CST));
        release();
        for (unsigned i = 0; i < 2; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        cr_assert(strstr(t[0].reply, "\"Mountpoint\""), "%s", t[0].reply);
        cr_assert_str_eq(t[0].reply, t[1].reply, "the same instance");
        free(t[0].reply);
        free(t[1].reply);
        /* Two references. */
        unmount_ok("slow", t[0].id);
        cr_assert(fake_instances_exists(f.instances, t[0].id));
        unmount_ok("slow", t[0].id);
        cr_assert_not(fake_instances_exists(f.instances, t[0].id));
}

Test(parallel, fetches_of_one_envelope_at_once_share_one_open_and_keep_nothing) {
        fixture_put(&f, "token", "canary-par-5");
        struct fetched a = { 0 }, b = { 0 }, c = { 0 };
        sd_error err = { 0 };
        unsigned long opens = delivery_opens(f.delivery);
        cr_assert_eq(delivery_fetch(f.delivery, "token", 0, &a, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(delivery_fetch(f.delivery, "token", 0, &b, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(delivery_opens(f.delivery), opens + 1, "the second fetch used the first one's open");
        cr_assert_eq(a.value, b.value);
        cr_assert_eq(a.version, 1);
        cr_assert_eq(b.len, strlen("canary-par-5"));
        delivery_release(f.delivery, &a);
        delivery_release(f.delivery, &b);
        /* Nothing is kept once nobody needs it: the next fetch opens. */
        cr_assert_eq(delivery_fetch(f.delivery, "token", 0, &c, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(delivery_opens(f.delivery), opens + 2);
        delivery_release(f.delivery, &c);
        /* Other bytes for the same version are opened on their own. */
        fixture_put(&f, "token", "canary-par-6");
        cr_assert_eq(delivery_fetch(f.delivery, "token", 0, &c, NULL, &err), 0, "%s", err.message);
        cr_assert_eq(c.version, 2);
        delivery_release(f.delivery, &c);
}

Test(parallel, one_verify_per_version_while_an_instance_holds_it) {
        fixture_put(&f, "token", "canary-par-7");
        fixture_put(&f, "other", "canary-par-8");
        create_volume("app", "\"secrets\":\"token,other\"");
        create_volume("alias", "\"secrets\":\"token:renamed\"");
        unsigned long opens = delivery_opens(f.delivery);
        cr_assert_eq(opens, 2, "Create opened each envelope once");
        char a[65], b[65], c[65], d[65];
        fixture_mount_id(70, a);
        fixture_mount_id(71, b);
        fixture_mount_id(72, c);
        fixture_mount_id(73, d);
        mount_ok("app", a);
        cr_assert_eq(delivery_opens(f.delivery), opens + 2, "no instance had them: opened");
        /* While a holds them, others copy from it: no open at all. */
        mount_ok("app", b);
        mount_ok("alias", c);
        cr_assert_eq(delivery_opens(f.delivery), opens + 2, "copied from the live instance");
        assert_file(b, "token", "canary-par-7");
        assert_file(b, "other", "canary-par-8");
        assert_file(c, "renamed", "canary-par-7");
        unsigned copies, refused;
        fake_instances_copies(f.instances, &copies, &refused);
        cr_assert_eq(copies, 3);
        /* A source that moved on under the copy: refused, opened instead. */
        fake_instances_bump(f.instances, a);
        fake_instances_bump(f.instances, b);
        fake_instances_bump(f.instances, c);
        mount_ok("app", d);
        fake_instances_copies(f.instances, &copies, &refused);
        cr_assert_geq(refused, 1);
        assert_file(d, "token", "canary-par-7");
        cr_assert_eq(delivery_opens(f.delivery), opens + 4);
        /* Once nobody holds a version, the next Mount opens it again. */
        for (unsigned i = 70; i < 74; i++) {
                char id[65];
                fixture_mount_id(i, id);
                unmount_ok(i == 72 ? "alias" : "app", id);
        }
        mount_ok("app", a);
        cr_assert_eq(delivery_opens(f.delivery), opens + 6);
        /* A new version is opened once, whatever was verified before. */
        fixture_put(&f, "token", "canary-par-9");
        mount_ok("app", b);
        assert_file(b, "token", "canary-par-9");
        cr_assert_eq(delivery_opens(f.delivery), opens + 7);
}

/* ---- an unreachable store: the local cache, retries ---- */

static struct cache *cache;
static char cache_dir[160];
static uint64_t forced_floor;             /* > 0: the floor of every name */

static uint64_t test_floor(void *ctx, const char *name) {
        struct agent_fixture *fx = ctx;
        if (forced_floor)
                return forced_floor;
        return fx->registry ? registry_floor(fx->registry, name) : 0;
}

static void setup_outage(void) {
        setup();
        fixture_close(&f);
        (void) snprintf(cache_dir, sizeof(cache_dir), "%s/cache", f.dir);
        forced_floor = 0;
        const struct cache_config cc = {
                .dir = cache_dir, .inner = &g.source, .floor = test_floor, .floor_ctx = &f, .notes = &f.notes,
        };
        sd_error err = { 0 };
        cr_assert_eq(cache_open(&cc, &cache, &err), 0, "%s", err.message);
        f.source = cache_source(cache);
        f.store_retry_ms = 300;
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
}

static void teardown_outage(void) {
        fixture_close(&f);
        cache_free(cache);
        teardown();
}

TestSuite(outage, .init = setup_outage, .fini = teardown_outage);

static char *cache_entry_path(const char *name, uint64_t version) {
        char *path = NULL;
        cr_assert_gt(asprintf(&path, "%s/%s.%020llu.env", cache_dir, name, (unsigned long long) version), 0);
        return path;
}

Test(outage, a_mount_while_the_store_is_unreachable_is_served_from_the_cache) {
        fixture_put(&f, "token", "canary-out-1");
        create_volume("app", "\"secrets\":\"token\"");
        char a[65], b[65];
        fixture_mount_id(50, a);
        fixture_mount_id(51, b);
        mount_ok("app", a);
        cr_assert_eq(cache_entries(cache), 1, "the verified envelope is kept");
        char *path = cache_entry_path("token", 1);
        cr_assert_eq(access(path, F_OK), 0, "%s", path);
        free(path);

        g.down = true;
        mount_ok("app", b);
        assert_file(b, "token", "canary-out-1");
        cr_assert_eq(metrics_get(METRIC_CACHE_DELIVERIES), 1);
        cr_assert_eq(metrics_get(METRIC_REFUSALS), 0, "the cache answered: nothing refused");
        struct notes_state st;
        notes_state_get(&f.notes, &st);
        cr_assert_not(st.store_ok, "the store is not ok while the cache stands in");
        cr_assert(strstr(st.store_error, "cache entry"), "%s", st.store_error);

        /* A secret the cache has no copy of: retried, then a store error. */
        fixture_put(&f, "other", "canary-out-2");
        unsigned gets = g.gets;
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"other\",\"Opts\":{\"secrets\":\"token,other\"}}");
        cr_assert(strstr(t, "the local cache has no copy of it"), "%s", t);
        cr_assert(strstr(t, "the store is unreachable"), "%s", t);
        free(t);
        cr_assert_gt(g.gets - gets, 2, "the Create tried the store again");
        cr_assert_eq(metrics_get(METRIC_REFUSALS), 0, "an unreachable store is not a refusal");
        cr_assert_geq(metrics_get_error(ERROR_STORE), 1);
}

Test(outage, a_tampered_cache_entry_is_refused_with_its_path) {
        fixture_put(&f, "token", "canary-out-3");
        create_volume("app", "\"secrets\":\"token\"");
        char a[65], b[65];
        fixture_mount_id(53, a);
        fixture_mount_id(54, b);
        mount_ok("app", a);
        char *path = cache_entry_path("token", 1);
        FILE *file = fopen(path, "r+b");
        cr_assert_not_null(file, "%s", path);
        cr_assert_eq(fseek(file, 40, SEEK_SET), 0);
        int byte = fgetc(file);
        cr_assert_eq(fseek(file, 40, SEEK_SET), 0);
        cr_assert_neq(fputc(byte ^ 1, file), EOF);
        cr_assert_eq(fclose(file), 0);

        g.down = true;
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"app\",\"ID\":\"%s\"}", b);
        cr_assert(strstr(t, path), "the refusal names %s: %s", path, t);
        cr_assert_null(strstr(t, "canary"), "%s", t);
        free(t);
        free(path);
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 1, "refused like any envelope");
        cr_assert_eq(metrics_get(METRIC_CACHE_DELIVERIES), 0);
        assert_file(a, "token", "canary-out-3");
}

Test(outage, the_cache_never_serves_a_version_below_the_floor) {
        fixture_put(&f, "token", "canary-out-4");
        create_volume("app", "\"secrets\":\"token\"");
        char a[65], b[65];
        fixture_mount_id(55, a);
        fixture_mount_id(56, b);
        mount_ok("app", a);
        /* As if version 2 had been delivered and its write to the cache
         * had failed. */
        forced_floor = 2;
        g.down = true;
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"app\",\"ID\":\"%s\"}", b);
        cr_assert(strstr(t, "the store is unreachable"), "refused, not served: %s", t);
        cr_assert_null(strstr(t, "Mountpoint"), "%s", t);
        free(t);
        char *path = cache_entry_path("token", 1);
        cr_assert_neq(access(path, F_OK), 0, "the entry below the floor is removed: %s", path);
        free(path);
        cr_assert_eq(cache_entries(cache), 0);
        cr_assert_eq(metrics_get(METRIC_CACHE_DELIVERIES), 0);
}

Test(outage, rotation_retries_an_unreachable_store_and_counts_no_refusal) {
        fixture_put(&f, "token", "canary-out-5");
        create_volume("app", "\"secrets\":\"token\"");
        char a[65];
        fixture_mount_id(57, a);
        mount_ok("app", a);
        struct rotator *r = rotator();
        fixture_put(&f, "token", "canary-out-6");
        g.down = true;
        rotator_rotate(r, "token", sd_monotonic_seconds());
        assert_file(a, "token", "canary-out-5");
        cr_assert_eq(rotator_resync_pending(r), 1, "token waits for the store");
        rotator_resync(r);
        cr_assert_eq(rotator_resync_pending(r), 1, "still waiting while the store is down");
        cr_assert_geq(metrics_get_error(ERROR_STORE), 2);
        cr_assert_eq(metrics_get(METRIC_REFUSALS), 0, "an unreachable store is not a refusal");
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 0);

        g.down = false;
        rotator_resync(r);
        assert_file(a, "token", "canary-out-6");
        cr_assert_eq(rotator_resync_pending(r), 0);
        cr_assert_eq(registry_floor(f.registry, "token"), 2);
        char *path = cache_entry_path("token", 2);
        cr_assert_eq(access(path, F_OK), 0, "the newer version replaces the entry: %s", path);
        free(path);
        path = cache_entry_path("token", 1);
        cr_assert_neq(access(path, F_OK), 0, "the older one is gone: %s", path);
        free(path);
        rotator_stop(r);
}
