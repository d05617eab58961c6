/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The .env parser (import-env, compose migrate's .env and env_file:) on
 * arbitrary bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        sd_error err = { 0 };
        struct sd_dotenv *env = NULL;
        int r = sd_dotenv_parse(data, size, "fuzz.env", &env, &err);
        if (r < 0) {
                /* Every refusal names the file and line, on one line. */
                if (r != -EINVAL && r != -ENOMEM)
                        abort();
                if (strncmp(err.message, "fuzz.env:", 9) != 0 || strchr(err.message, '\n'))
                        abort();
                return 0;
        }
        /* What was accepted obeys the documented rules: valid, unique names;
         * statements in order, inside the input, not overlapping; a value is
         * never longer than its statement. */
        size_t prev_end = env->bom;
        for (size_t i = 0; i < env->n; i++) {
                const struct sd_dotenv_entry *e = &env->entries[i];
                if (!sd_dotenv_name_valid(e->name, strlen(e->name)) || e->start < prev_end || e->end <= e->start ||
                    e->end > size || e->line == 0 || (e->value && e->value->len > e->end - e->start))
                        abort();
                for (size_t j = 0; j < i; j++)
                        if (strcmp(env->entries[j].name, e->name) == 0)
                                abort();
                prev_end = e->end;
        }
        sd_dotenv_free(env);
        return 0;
}
