/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writes the valid seed inputs of the realm-aware fuzz harnesses into DIR
 * (fuzz-envelope/, fuzz-policy/, fuzz-archive/): envelopes sealed under the
 * fixed realm of fuzz-realm.h, policy documents of that realm, a pin line,
 * and archives exported from a store holding them.  Run it when a format
 * changes; the files are saved in tests/fuzz/corpus/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretd/client.h"
#include "fuzz-realm.h"

static const char *out_dir;

static void write_file(const char *target, const char *name, const char *data, size_t len) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", out_dir, target);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
        FILE *f = fopen(path, "we");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                exit(1);
        }
}

static void check(int r, const sd_error *err) {
        if (r < 0) {
                fprintf(stderr, "make-corpus: %s\n", err->message);
                exit(1);
        }
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: make-corpus DIR\n");
                return 2;
        }
        out_dir = argv[1];
        struct fuzz_realm f = { 0 };
        fuzz_realm_init(&f);
        sd_error err = { 0 };
        struct sd_secret *value = NULL;
        check(sd_secret_new_from("hunter2", 7, &value), &err);

        char *json = NULL;
        size_t len = 0;
        check(sd_envelope_seal("db_password", 1, value, f.writer, f.policy, &json, &len, &err), &err);
        write_file("fuzz-envelope", "v2-secret", json, len);
        free(json);
        check(sd_envelope_seal("db_password", 2, NULL, f.writer, f.policy, &json, &len, &err), &err);
        write_file("fuzz-envelope", "v2-tombstone", json, len);
        free(json);

        /* A next version: a second recipient; and an envelope under it. */
        struct sd_policy *v2 = NULL;
        check(sd_policy_next_draft(f.policy, &v2, &err), &err);
        unsigned char other_pk[32], other_sk[32];
        crypto_box_keypair(other_pk, other_sk);
        check(sd_policy_add(v2, SD_POLICY_RECIPIENTS, "host2", NULL, other_pk, NULL, 0, &err), &err);
        check(sd_policy_sign(v2, f.writer, &err), &err);
        check(sd_envelope_seal("db_password", 3, value, f.writer, v2, &json, &len, &err), &err);
        write_file("fuzz-envelope", "v2-newer-policy", json, len);
        free(json);
        struct sd_policy *foreign = NULL;
        check(sd_policy_new(NULL, &foreign, &err), &err);
        check(sd_policy_add(foreign, SD_POLICY_ADMINS, "admin", f.writer->pub.sign_pk, f.writer->pub.box_pk, NULL, 0, &err),
              &err);
        check(sd_policy_set_threshold(foreign, 1, &err), &err);
        check(sd_policy_add(foreign, SD_POLICY_RECIPIENTS, "host1", NULL, f.agent_pk, NULL, 0, &err), &err);
        check(sd_envelope_seal("db_password", 1, value, f.writer, foreign, &json, &len, &err), &err);
        write_file("fuzz-envelope", "v2-other-realm", json, len);
        free(json);

        check(sd_policy_to_json(f.policy, &json, &len), &err);
        write_file("fuzz-policy", "v1", json, len);
        free(json);
        check(sd_policy_to_json(v2, &json, &len), &err);
        write_file("fuzz-policy", "v2", json, len);
        free(json);
        char *pin = NULL;
        check(sd_realm_pin_format(&f.pin, &pin), &err);
        write_file("fuzz-policy", "pin", pin, strlen(pin));
        free(pin);

        /* A store holding v1, v2 and two secrets, exported. */
        char dir[] = "/tmp/make-corpus-XXXXXX", url[64];
        if (!mkdtemp(dir))
                return 1;
        snprintf(url, sizeof(url), "file://%s/store", dir);
        struct sd_store *s = NULL;
        check(sd_store_open(url, 1, &s, &err), &err);
        check(sd_policy_to_json(f.policy, &json, &len), &err);
        check(sd_store_policy_put(s, 1, json, len, &err), &err);
        free(json);
        check(sd_policy_to_json(v2, &json, &len), &err);
        check(sd_store_policy_put(s, 2, json, len, &err), &err);
        free(json);
        check(sd_secret_put(s, f.writer, v2, "api_token", value, NULL, NULL, &err), &err);
        check(sd_secret_put(s, f.writer, f.policy, "db_password", value, NULL, NULL, &err), &err);
        check(sd_secret_put(s, f.writer, v2, "db_password", value, NULL, NULL, &err), &err);
        struct sd_realm_record rec = { .pin = f.pin };
        char *text = NULL;
        size_t text_len = 0;
        check(sd_archive_export(s, &rec, &text, &text_len, &err), &err);
        write_file("fuzz-archive", "valid", text, text_len);
        /* A flipped byte inside the last envelope's data. */
        text[text_len - 40] ^= 0x01;
        write_file("fuzz-archive", "flipped", text, text_len);
        free(text);
        sd_store_free(s);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                return 1;
        sd_policy_unref(v2);
        sd_policy_unref(foreign);
        sd_policy_unref(f.policy);
        sd_secret_free(value);
        sodium_free(f.writer);
        return 0;
}
