/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        sd_error err = { 0 };
        int r = sd_name_validate("secret name", (const char *) data, size, &err);
        if (r == 0) {
                /* The rule that keeps names safe as file names must hold for
                 * anything accepted. */
                if (size == 0 || size > SD_NAME_MAX || data[0] == '.' || memchr(data, '/', size) ||
                    memchr(data, '\0', size))
                        abort();
                for (size_t i = 0; i + 1 < size; i++)
                        if (data[i] == '.' && data[i + 1] == '.')
                                abort();
        } else if (err.message[0] == '\0' || strchr(err.message, '\n')) {
                abort();
        }
        return 0;
}
