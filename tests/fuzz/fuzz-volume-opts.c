/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume options (docker volume create -o / compose driver_opts) as the
 * JSON object dockerd sends in Create's "Opts". */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_spec(const struct volume_spec *spec, const struct volume_limits *limits) {
        if (spec->n_secrets == 0 || spec->n_secrets > VOLUME_SECRETS_MAX)
                abort();
        if (!(spec->mode & 0400) || (spec->mode & ~0777u) || spec->size > limits->max_size ||
            spec->uid > 2147483647u || spec->gid > 2147483647u)
                abort();
        for (size_t i = 0; i < spec->n_secrets; i++) {
                const struct volume_secret *s = &spec->secrets[i];
                if (sd_name_validate("secret name", s->name, strlen(s->name), NULL) < 0 ||
                    sd_name_validate("file name", s->file, strlen(s->file), NULL) < 0)
                        abort();
                /* Sorted and unique by file name. */
                if (i > 0 && strcmp(spec->secrets[i - 1].file, s->file) >= 0)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const struct volume_limits limits = { .default_size = 1 << 20, .max_size = 16 << 20 };
        json_t *opts = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!opts)
                return 0;
        struct volume_spec *spec = malloc(sizeof(*spec)), *again = malloc(sizeof(*again));
        if (!spec || !again)
                abort();
        sd_error err = { 0 };
        if (volume_opts_parse(opts, &limits, spec, &err) == 0) {
                check_spec(spec, &limits);
                /* The canonical form (kept on disk, compared for idempotent
                 * Create) must describe the very same volume. */
                json_t *canon = volume_spec_to_json(spec);
                if (!canon || volume_opts_parse(canon, &limits, again, &err) < 0 ||
                    !volume_spec_equal(spec, again))
                        abort();
                json_decref(canon);
        } else if (err.message[0] == '\0' || strchr(err.message, '\n')) {
                abort();
        }
        free(spec);
        free(again);
        json_decref(opts);
        return 0;
}
