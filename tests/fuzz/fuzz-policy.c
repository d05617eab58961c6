/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Policy documents come from an untrusted store: parse whatever bytes it
 * hands over, and run everything that reads a parsed policy on it (the
 * chain rule against the fixed realm's v1, the pin, the rules, the
 * canonical encoding).  The same input is also tried as a pin line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/policy.h"
#include "fuzz-realm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_realm realm;

static void ignore_line(void *userdata, const char *line) {
        if (!memchr(line, '\0', SD_ERROR_MESSAGE_MAX))
                abort();
        (void) userdata;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!realm.policy)
                fuzz_realm_init(&realm);

        sd_error err = { 0 };
        _cleanup_policy_ struct sd_policy *p = NULL;
        int r = sd_policy_parse((const char *) data, size, &p, &err);
        if (r < 0 && (p || err.code != -r))
                abort();
        if (r == 0) {
                /* What parses re-encodes to a document with the same signed
                 * bytes. */
                char *json = NULL;
                size_t len = 0;
                if (sd_policy_to_json(p, &json, &len) < 0)
                        abort();
                _cleanup_policy_ struct sd_policy *again = NULL;
                if (sd_policy_parse(json, len, &again, &err) < 0)
                        abort();
                free(json);
                unsigned char a[SD_POLICY_DIGEST_BYTES], b[SD_POLICY_DIGEST_BYTES];
                if (sd_policy_digest(p, a) < 0 || sd_policy_digest(again, b) < 0 || memcmp(a, b, sizeof(a)) != 0)
                        abort();
                (void) sd_policy_verify_next(realm.policy, p, &err);
                (void) sd_policy_verify_pinned(p, &realm.pin, &err);
                (void) sd_policy_check_write(p, realm.writer->pub.sign_pk, "db_password", true, &err);
                (void) sd_policy_check_signer(p, realm.writer->pub.sign_pk, "db_password", &err);
                unsigned char(*keys)[SD_BOX_PK_BYTES] = NULL;
                size_t n = 0;
                if (sd_policy_recipients_for(p, "db_password", &keys, &n, NULL) < 0)
                        abort();
                free(keys);
                sd_policy_describe_changes(realm.policy, p, ignore_line, NULL);
                struct sd_realm_pin pin;
                sd_realm_pin_of(p, &pin);
        }

        char *text = malloc(size + 1);
        if (!text)
                abort();
        memcpy(text, data, size);
        text[size] = '\0';
        struct sd_realm_pin pin;
        if (sd_realm_pin_parse(text, &pin, &err) == 0) {
                char *line = NULL;
                if (sd_realm_pin_format(&pin, &line) < 0)
                        abort();
                struct sd_realm_pin back;
                if (sd_realm_pin_parse(line, &back, &err) < 0 || memcmp(&back, &pin, sizeof(pin)) != 0)
                        abort();
                free(line);
        }
        free(text);
        return 0;
}
