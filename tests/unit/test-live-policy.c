/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The agent and realm policy changes: a writer added or removed while it
 * runs (the store watch reports "@policy"), the newest version that
 * verifies when the latest does not (on-unverifiable), and a new version
 * of the same value that changes no file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-fixture.h"
#include "metrics.h"
#include "rotate.h"
#include "secretd/clock.h"

static struct agent_fixture f;
static struct sd_writer_key *bob;

static void setup_with(enum sd_on_unverifiable mode) {
        fixture_setup(&f);
        fixture_close(&f);
        f.on_unverifiable = mode;
        sd_error err = { 0 };
        cr_assert_eq(fixture_open(&f, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&bob, &err), 0);
        metrics_reset();
}

static void setup(void) {
        setup_with(SD_ON_UNVERIFIABLE_PREVIOUS);
}

static void setup_refuse(void) {
        setup_with(SD_ON_UNVERIFIABLE_REFUSE);
}

static void teardown(void) {
        sd_writer_key_free(bob);
        fixture_teardown(&f);
}

TestSuite(previous, .init = setup, .fini = teardown);
TestSuite(refuse, .init = setup_refuse, .fini = teardown);

#define call(path, ...) fixture_call(&f, path, NULL, __VA_ARGS__)

static void mount_ok(const char *volume, const char *id) {
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"%s\",\"ID\":\"%s\"}", volume, id);
        cr_assert(strstr(t, "\"Mountpoint\""), "Mount %s: %s", volume, t);
        free(t);
}

static void assert_file(const char *id, const char *file, const char *want) {
        fixture_assert_file(&f, id, file, want);
}

static bool audit_has(const char *a, const char *b) {
        return fixture_audit_has(&f, a, b);
}

/* Policy vN+1: bob a writer of patterns (NULL: every name), or not. */
static void bob_is_writer(bool yes, const char *pattern) {
        struct sd_policy *next = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_next_draft(f.policy, &next, &err), 0, "%s", err.message);
        if (yes)
                cr_assert_eq(sd_policy_add(next, SD_POLICY_WRITERS, "bob", bob->pub.sign_pk, bob->pub.box_pk,
                                           pattern ? &pattern : NULL, pattern ? 1 : 0, &err),
                             0, "%s", err.message);
        else
                cr_assert_eq(sd_policy_remove(next, SD_POLICY_WRITERS, "bob", &err), 0, "%s", err.message);
        fixture_publish(&f, next);
}

static uint64_t bob_put(const char *name, const char *text) {
        sd_error err = { 0 };
        struct sd_secret *value = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &value), 0);
        uint64_t version = 0;
        const struct sd_put_options opts = { 0 };
        cr_assert_eq(sd_secret_put(f.store, bob, f.policy, name, value, &opts, &version, &err), 0, "put %s: %s", name,
                     err.message);
        sd_secret_free(value);
        return version;
}

/* Volume "app" delivering db, and two mount ids for it. */
static void app_volume(char a[65], char b[65]) {
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"app\",\"Opts\":{\"secrets\":\"db\"}}");
        cr_assert_str_eq(t, "{}", "%s", t);
        free(t);
        fixture_mount_id(1, a);
        fixture_mount_id(2, b);
}

static struct rotator *rotator(void) {
        const struct rotator_config rc = {
                .registry = f.registry, .delivery = f.delivery, .notes = &f.notes, .realm = f.realm,
        };
        struct rotator *r = NULL;
        sd_error err = { 0 };
        cr_assert_eq(rotator_new(&rc, &r, &err), 0, "%s", err.message);
        return r;
}

/* The stale entry of secret, or fails. */
static struct notes_stale stale_of(const char *secret) {
        struct notes_stale *list = NULL, found = { 0 };
        size_t n = 0;
        cr_assert_eq(notes_stale_list(&f.notes, &list, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i].secret, secret) == 0)
                        found = list[i];
        free(list);
        cr_assert(found.secret[0], "secret '%s' is not stale", secret);
        return found;
}

static size_t n_stale(void) {
        struct notes_stale *list = NULL;
        size_t n = 0;
        cr_assert_eq(notes_stale_list(&f.notes, &list, &n), 0);
        free(list);
        return n;
}

Test(previous, a_forged_newest_version_gives_a_new_container_the_newest_that_verifies) {
        fixture_put(&f, "db", "canary-live-1");
        fixture_put(&f, "db", "canary-live-2");
        fixture_put_forged(&f, bob, "db", "canary-live-forged-3");
        fixture_put_forged(&f, bob, "db", "canary-live-forged-4");
        char a[65], b[65];
        app_volume(a, b);
        mount_ok("app", a);
        assert_file(a, "db", "canary-live-2");
        cr_assert_eq(registry_floor(f.registry, "db"), 2);
        cr_assert_eq(metrics_get(METRIC_STALE_DELIVERIES), 1, "counted");
        cr_assert(audit_has("\"event\":\"deliver\"", "not a writer in policy v1"), "audited with the reason");
        struct notes_stale s = stale_of("db");
        cr_assert_eq(s.newest, 4);
        cr_assert_eq(s.served, 2);
        cr_assert(strstr(s.reason, "not a writer"), "%s", s.reason);

        /* A good version on top: no longer stale. */
        fixture_put(&f, "db", "canary-live-5");
        mount_ok("app", b);
        assert_file(b, "db", "canary-live-5");
        cr_assert_eq(n_stale(), 0);
}

Test(previous, the_walk_back_stops_at_the_rollback_floor) {
        fixture_put(&f, "db", "canary-live-1");
        bob_is_writer(true, NULL);
        bob_put("db", "canary-live-bob-2");
        char a[65], b[65];
        app_volume(a, b);
        mount_ok("app", a);
        assert_file(a, "db", "canary-live-bob-2");

        /* bob removed: v2 no longer verifies, and v1, which does, is below
         * the floor (v2 was delivered here). */
        bob_is_writer(false, NULL);
        struct rotator *r = rotator();
        rotator_rotate(r, SD_STORE_POLICY_NAME, sd_monotonic_seconds());
        assert_file(a, "db", "canary-live-bob-2");
        cr_assert_eq(metrics_get(METRIC_POLICY_CHANGES), 1);
        char *t = call("/VolumeDriver.Mount", "{\"Name\":\"app\",\"ID\":\"%s\"}", b);
        cr_assert(strstr(t, "not a writer in policy v3") && strstr(t, "version 2 was delivered on this host"),
                  "%s", t);
        free(t);
        cr_assert_not(fake_instances_exists(f.instances, b));
        cr_assert_eq(stale_of("db").served, 0);
        rotator_stop(r);
}

Test(previous, a_writer_added_or_removed_applies_to_running_instances_without_a_restart) {
        fixture_put(&f, "db", "canary-live-1");
        char a[65], b[65];
        app_volume(a, b);
        mount_ok("app", a);
        struct rotator *r = rotator();

        /* Added: its put is delivered at the next change. */
        bob_is_writer(true, NULL);
        rotator_rotate(r, SD_STORE_POLICY_NAME, sd_monotonic_seconds());
        bob_put("db", "canary-live-bob-2");
        rotator_rotate(r, "db", sd_monotonic_seconds());
        assert_file(a, "db", "canary-live-bob-2");

        /* Removed: v2, delivered already, no longer verifies (the
         * instance keeps it); the admin's v3 is delivered; bob's next
         * version (written to the store directly, as a removed writer with
         * store access could) is refused, the instance keeps v3, and a new
         * container gets v3 and the secret is stale. */
        bob_is_writer(false, NULL);
        rotator_rotate(r, SD_STORE_POLICY_NAME, sd_monotonic_seconds());
        cr_assert_eq(metrics_get(METRIC_POLICY_CHANGES), 2);
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 1);
        assert_file(a, "db", "canary-live-bob-2");
        fixture_put(&f, "db", "canary-live-3");
        rotator_rotate(r, "db", sd_monotonic_seconds());
        assert_file(a, "db", "canary-live-3");
        cr_assert_eq(n_stale(), 0);
        fixture_put_forged(&f, bob, "db", "canary-live-bob-forged-4");
        rotator_rotate(r, "db", sd_monotonic_seconds());
        assert_file(a, "db", "canary-live-3");
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 2);
        mount_ok("app", b);
        assert_file(b, "db", "canary-live-3");
        cr_assert_eq(stale_of("db").newest, 4);
        cr_assert_eq(stale_of("db").served, 3);

        /* A policy change with nothing new: nothing is rotated again. */
        rotator_rotate(r, SD_STORE_POLICY_NAME, sd_monotonic_seconds());
        cr_assert_eq(metrics_get(METRIC_POLICY_CHANGES), 2);
        rotator_stop(r);
}

Test(previous, a_new_version_of_the_same_value_swaps_no_file) {
        fixture_put(&f, "db", "canary-live-same");
        char a[65], b[65];
        app_volume(a, b);
        mount_ok("app", a);
        cr_assert_eq(fake_instances_generation(f.instances, a), 1);
        struct rotator *r = rotator();
        fixture_put(&f, "db", "canary-live-same");
        rotator_rotate(r, "db", sd_monotonic_seconds());
        cr_assert_eq(fake_instances_generation(f.instances, a), 1, "no new generation");
        cr_assert_eq(metrics_get(METRIC_SAME_VALUE), 1);
        cr_assert_eq(registry_floor(f.registry, "db"), 2, "the version is recorded");
        cr_assert(audit_has("\"event\":\"rotate\"", "files unchanged"));
        fixture_put(&f, "db", "canary-live-other");
        rotator_rotate(r, "db", sd_monotonic_seconds());
        cr_assert_eq(fake_instances_generation(f.instances, a), 2, "another value is published");
        assert_file(a, "db", "canary-live-other");
        rotator_stop(r);
}

Test(refuse, a_forged_newest_version_fails_the_mount_and_marks_the_secret_stale) {
        fixture_put(&f, "db", "canary-live-1");
        fixture_put_forged(&f, bob, "db", "canary-live-forged-2");
        char *t = call("/VolumeDriver.Create", "{\"Name\":\"app\",\"Opts\":{\"secrets\":\"db\"}}");
        cr_assert(strstr(t, "not a writer in policy v1"), "%s", t);
        free(t);
        cr_assert_eq(metrics_get(METRIC_STALE_DELIVERIES), 0);
        cr_assert_eq(stale_of("db").newest, 2);
        cr_assert_eq(stale_of("db").served, 0);
}
