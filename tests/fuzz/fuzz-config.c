/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The configuration file parser (libinih underneath) on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct sd_config cfg;
        if (sd_config_init(&cfg) < 0)
                return 0;
        sd_error err = { 0 };
        int r = sd_config_parse_string(&cfg, (const char *) data, size, "fuzz.conf", &err);
        if (r < 0) {
                /* Every refusal says where and why, on one line. */
                if (strncmp(err.message, "fuzz.conf", 9) != 0 || strchr(err.message, '\n'))
                        abort();
        } else {
                /* Whatever was accepted obeys the documented rules. */
                if (cfg.state_dir[0] != '/' || cfg.plugin_dir[0] != '/' || cfg.docker_socket[0] != '/' ||
                    strchr(cfg.driver, '/') || cfg.driver[0] == '.' || cfg.store_url[0] == '\0' ||
                    cfg.default_size < SD_SIZE_MIN || cfg.default_size > SD_SIZE_MAX ||
                    cfg.max_size < SD_SIZE_MIN || cfg.max_size > SD_SIZE_MAX || cfg.log_level > SD_LOG_DEBUG)
                        abort();
                (void) sd_config_check(&cfg, &err);
        }
        sd_config_free(&cfg);
        return 0;
}
