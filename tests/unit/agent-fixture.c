/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's parts in a temporary directory (agent-fixture.h). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent-fixture.h"
#include "log.h"
#include "secretd/envelope.h"

void fixture_setup(struct agent_fixture *f) {
        memset(f, 0, sizeof(*f));
        log_set_level(SD_LOG_ERROR);
        strcpy(f->dir, "/tmp/secretd-agent-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
        (void) snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir);
        (void) snprintf(f->floor_path, sizeof(f->floor_path), "%s/lib/delivered.json", f->dir);
        (void) snprintf(f->audit_path, sizeof(f->audit_path), "%s/audit.log", f->dir);
        (void) snprintf(f->store_url, sizeof(f->store_url), "file://%s/store", f->dir);

        sd_error err = { 0 };
        cr_assert_eq(sd_store_open(f->store_url, 1, &f->store, &err), 0, "%s", err.message);
        cr_assert_eq(sd_writer_key_generate(&f->writer, &err), 0, "%s", err.message);
        cr_assert_eq(sd_agent_key_generate(&f->key, &err), 0, "%s", err.message);
        f->keys[0] = (struct sd_box_keypair) { f->key->box_pk, f->key->box_sk };
        /* Policy v1, as `secretctl realm init` and `recipient add` make it. */
        struct sd_policy *v1 = NULL;
        cr_assert_eq(sd_policy_new(NULL, &v1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_add(v1, SD_POLICY_ADMINS, "admin", f->writer->pub.sign_pk, f->writer->pub.box_pk, NULL, 0,
                                   &err),
                     0, "%s", err.message);
        cr_assert_eq(sd_policy_set_threshold(v1, 1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_add(v1, SD_POLICY_WRITERS, "admin", f->writer->pub.sign_pk, f->writer->pub.box_pk, NULL,
                                   0, &err),
                     0, "%s", err.message);
        cr_assert_eq(sd_policy_add(v1, SD_POLICY_RECIPIENTS, "host", NULL, f->key->box_pk, NULL, 0, &err), 0, "%s",
                     err.message);
        cr_assert_eq(sd_policy_sign(v1, f->writer, &err), 0, "%s", err.message);
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_policy_to_json(v1, &json, &len), 0);
        cr_assert_eq(sd_store_policy_put(f->store, 1, json, len, &err), 0, "%s", err.message);
        free(json);
        f->policy = v1;
        struct sd_realm_pin pin;
        sd_realm_pin_of(v1, &pin);
        char realm_state[160];
        (void) snprintf(realm_state, sizeof(realm_state), "%s/realm-state.json", f->dir);
        cr_assert_eq(sd_realm_new(f->store, &pin, realm_state, &f->realm, &err), 0, "%s", err.message);
        cr_assert_eq(sd_realm_refresh(f->realm, &err) >= 0, 1, "%s", err.message);

        f->instances = fake_instances_new(f->state_dir);
        cr_assert_not_null(f->instances);
        cr_assert_eq(audit_open(f->audit_path, &f->audit, &err), 0, "%s", err.message);
        notes_init(&f->notes, f->audit, "test-driver", f->store_url);
        cr_assert_eq(fixture_open(f, &err), 0, "%s", err.message);
}

int fixture_open(struct agent_fixture *f, sd_error *err) {
        const struct registry_config rc = {
                .state_dir = f->state_dir,
                .floor_file = f->floor_path,
                .instances = fake_instances_backend(f->instances),
                .notes = &f->notes,
                .limits = { .default_size = 1 << 20, .max_size = 16 << 20 },
                .caps = f->caps,
        };
        int r = registry_open(&rc, &f->registry, err);
        if (r < 0)
                return r;
        const struct delivery_config dc = {
                .store = f->store,
                .source = f->source,
                .realm = f->realm,
                .keys = f->keys,
                .n_keys = 1,
                .pubkey_line = "sda1:test",
                .instances = fake_instances_backend(f->instances),
                .notes = &f->notes,
                .store_retry_ms = f->store_retry_ms,
                .on_unverifiable = f->on_unverifiable,
        };
        cr_assert_eq(delivery_new(&dc, &f->delivery, err), 0, "%s", err->message);
        f->driver = (struct driver) { .registry = f->registry, .delivery = f->delivery, .notes = &f->notes };
        return 0;
}

void fixture_close(struct agent_fixture *f) {
        delivery_free(f->delivery);
        registry_free(f->registry);
        f->delivery = NULL;
        f->registry = NULL;
}

void fixture_teardown(struct agent_fixture *f) {
        fixture_close(f);
        notes_done(&f->notes);
        audit_close(f->audit);
        fake_instances_free(f->instances);
        sd_realm_free(f->realm);
        sd_policy_unref(f->policy);
        sd_store_free(f->store);
        sd_writer_key_free(f->writer);
        sd_agent_key_free(f->key);
        char cmd[128];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        cr_assert_eq(system(cmd), 0);
}

uint64_t fixture_put(struct agent_fixture *f, const char *name, const char *text) {
        sd_error err = { 0 };
        struct sd_secret *value = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &value), 0);
        uint64_t version = 0;
        const struct sd_put_options opts = { 0 };
        cr_assert_eq(sd_secret_put(f->store, f->writer, f->policy, name, value, &opts, &version, &err), 0,
                     "put %s: %s", name, err.message);
        sd_secret_free(value);
        return version;
}

uint64_t fixture_delete(struct agent_fixture *f, const char *name) {
        sd_error err = { 0 };
        uint64_t version = 0;
        const struct sd_put_options opts = { 0 };
        cr_assert_eq(sd_secret_delete(f->store, f->writer, f->policy, name, &opts, &version, &err), 0, "rm %s: %s",
                     name, err.message);
        return version;
}

void fixture_publish(struct agent_fixture *f, struct sd_policy *draft) {
        sd_error err = { 0 };
        cr_assert_eq(sd_policy_sign(draft, f->writer, &err), 0, "%s", err.message);
        char *json = NULL;
        size_t len = 0;
        cr_assert_eq(sd_policy_to_json(draft, &json, &len), 0);
        cr_assert_eq(sd_store_policy_put(f->store, sd_policy_version(draft), json, len, &err), 0, "%s", err.message);
        free(json);
        sd_policy_unref(f->policy);
        f->policy = draft;
}

uint64_t fixture_put_forged(struct agent_fixture *f, const struct sd_writer_key *signer, const char *name,
                            const char *text) {
        sd_error err = { 0 };
        struct sd_policy *made_up = NULL;
        cr_assert_eq(sd_policy_new(sd_policy_realm(f->policy), &made_up, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_add(made_up, SD_POLICY_ADMINS, "forger", signer->pub.sign_pk, signer->pub.box_pk, NULL,
                                   0, &err),
                     0, "%s", err.message);
        cr_assert_eq(sd_policy_set_threshold(made_up, 1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_policy_add(made_up, SD_POLICY_RECIPIENTS, "host", NULL, f->key->box_pk, NULL, 0, &err), 0,
                     "%s", err.message);
        cr_assert_eq(sd_policy_sign(made_up, signer, &err), 0, "%s", err.message);
        struct sd_secret *value = NULL;
        cr_assert_eq(sd_secret_new_from(text, strlen(text), &value), 0);
        uint64_t version = 0;
        const struct sd_put_options opts = { 0 };
        cr_assert_eq(sd_secret_put(f->store, signer, made_up, name, value, &opts, &version, &err), 0, "forge %s: %s",
                     name, err.message);
        sd_secret_free(value);
        sd_policy_unref(made_up);
        return version;
}

char *fixture_call(struct agent_fixture *f, const char *path, unsigned *status, const char *fmt, ...) {
        char body[4096];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
        unsigned got = 0;
        json_t *reply = driver_dispatch(&f->driver, path, body, strlen(body), &got);
        cr_assert_not_null(reply, "%s: no reply", path);
        char *text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(reply);
        if (status)
                *status = got;
        return text;
}

char *fixture_read_path(const char *path, size_t *len_out) {
        FILE *fp = fopen(path, "re");
        if (!fp)
                return NULL;
        char *text = NULL;
        size_t cap = 0;
        ssize_t n = getdelim(&text, &cap, '\0', fp);
        fclose(fp);
        if (n < 0) {
                free(text);
                text = strdup("");
                n = 0;
        }
        if (len_out)
                *len_out = (size_t) n;
        return text;
}

char *fixture_read(struct agent_fixture *f, const char *relative) {
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/%s", f->dir, relative);
        return fixture_read_path(path, NULL);
}

void fixture_assert_file(struct agent_fixture *f, const char *id, const char *file, const char *want) {
        char *got = fake_instances_read(f->instances, id, file);
        if (!want) {
                cr_assert_null(got, "instance %.8s: file %s should be gone", id, file);
                return;
        }
        cr_assert_not_null(got, "instance %.8s: no file %s", id, file);
        cr_assert_str_eq(got, want, "instance %.8s: file %s", id, file);
        free(got);
}

bool fixture_audit_has(struct agent_fixture *f, const char *a, const char *b) {
        char *text = fixture_read(f, "audit.log");
        bool found = false;
        char *save = NULL;
        for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line && !found; line = strtok_r(NULL, "\n", &save))
                found = strstr(line, a) && (!b || strstr(line, b));
        free(text);
        return found;
}

void fixture_mount_id(unsigned n, char out[65]) {
        (void) snprintf(out, 65, "%064x", n);
}
