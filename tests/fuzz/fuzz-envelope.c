/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Envelopes come from an untrusted store: parse, verify and open whatever
 * bytes it hands over.  The keys and the realm are derived from fixed seeds
 * so the saved corpus (valid envelopes sealed with these keys, under policy
 * version 1 of this realm) reaches every check, including decryption. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/envelope.h"
#include "fuzz-realm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_realm realm;

static void open_as_agent(const uint8_t *data, size_t size, int flags, const char *name, uint64_t version) {
        sd_error err = { 0 };
        struct sd_envelope_info info;
        _cleanup_secret_ struct sd_secret *value = NULL;
        const struct sd_box_keypair kp = { realm.agent_pk, realm.agent_sk };
        int r = sd_envelope_open((const char *) data, size, realm.policy, flags, name, version, &kp, 1, &value, &info,
                                 &err);
        if (r == 0 && !info.tombstone && (!value || value->len != info.value_len))
                abort();
        if (r < 0 && (value || err.code != -r || !memchr(err.message, '\0', sizeof(err.message))))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!realm.policy)
                fuzz_realm_init(&realm);

        sd_error err = { 0 };
        struct sd_envelope_info info;
        int r = sd_envelope_verify((const char *) data, size, realm.policy, SD_ENVELOPE_LEGACY, &info, &err);
        if (r < 0 && err.code != -r)
                abort();

        open_as_agent(data, size, 0, "db_password", 1);
        /* Reach the recipient and decryption steps for anything that
         * verifies: ask for exactly what it claims to be, in both modes. */
        if (r == 0) {
                open_as_agent(data, size, 0, info.name, info.version);
                open_as_agent(data, size, SD_ENVELOPE_LEGACY, info.name, info.version);
                unsigned char(*keys)[SD_BOX_PK_BYTES] = NULL;
                size_t n = 0;
                if (sd_envelope_recipient_keys((const char *) data, size, &keys, &n, &err) < 0 || n != info.n_recipients)
                        abort();
                free(keys);
        }
        return 0;
}
