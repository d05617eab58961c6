/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Archives come from wherever the file was kept: parse any bytes, and
 * verify what parses against the fixed realm's pin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/client.h"
#include "fuzz-realm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_realm realm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!realm.policy)
                fuzz_realm_init(&realm);
        sd_error err = { 0 };
        _cleanup_archive_ struct sd_archive *a = NULL;
        int r = sd_archive_parse((const char *) data, size, &a, &err);
        if (r < 0 && (a || err.code != -r))
                abort();
        if (r == 0) {
                if (a->n_policies == 0 || a->n_policies > a->n_entries)
                        abort();
                struct sd_policy *latest = NULL;
                r = sd_archive_verify(a, &realm.pin, &latest, &err);
                if (r < 0 && (latest || err.code != -r))
                        abort();
                sd_policy_unref(latest);
        }
        return 0;
}
