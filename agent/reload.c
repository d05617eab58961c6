/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "delivery.h"
#include "log.h"
#include "registry.h"
#include "reload.h"

static const char *const live_keys[] = {
        "log-level", "on-unverifiable", "default-size", "max-size", "max-volumes",
        "max-instances-per-volume", "max-inodes", "max-total-tmpfs", "audit-log",
};

bool reload_key_is_live(const char *key) {
        for (size_t i = 0; i < SD_ARRAY_SIZE(live_keys); i++)
                if (strcmp(key, live_keys[i]) == 0)
                        return true;
        return false;
}

/* "a, b, c" of the keys that differ between a and b and are (or are not)
 * live; "" when none. */
static void changed_keys(const struct sd_config *a, const struct sd_config *b, bool live, char *out, size_t size) {
        const char *keys[SD_CONFIG_KEYS];
        size_t n = sd_config_diff(a, b, keys, SD_ARRAY_SIZE(keys));
        size_t used = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n && i < SD_ARRAY_SIZE(keys); i++) {
                if (reload_key_is_live(keys[i]) != live)
                        continue;
                int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", keys[i]);
                if (w < 0 || (size_t) w >= size - used)
                        break;
                used += (size_t) w;
        }
}

int reload_apply(const struct reload_targets *t, const struct sd_config *started, const struct sd_config *applied,
                 const struct sd_config *next) {
        /* First what can fail, so a failure changes nothing. */
        sd_error err = { 0 };
        if (audit_reopen(t->audit, next->audit_log, &err) < 0) {
                log_error("SIGHUP: configuration not reloaded: %s; the agent runs on with the previous configuration",
                          err.message);
                return -err.code;
        }
        log_set_level(next->log_level);
        delivery_set_on_unverifiable(t->delivery, next->on_unverifiable);
        const struct volume_limits limits = { .default_size = next->default_size, .max_size = next->max_size };
        const struct registry_caps caps = {
                .max_volumes = next->max_volumes,
                .max_instances_per_volume = next->max_instances_per_volume,
                .max_inodes = next->max_inodes,
                .max_total_tmpfs = next->max_total_tmpfs,
        };
        registry_set_limits(t->registry, &limits, &caps);

        char live[512], waiting[512];
        changed_keys(applied, next, true, live, sizeof(live));
        changed_keys(started, next, false, waiting, sizeof(waiting));
        log_info("SIGHUP: configuration reloaded (%s%s); audit log %s%s", live[0] ? "changed: " : "nothing changed",
                 live, next->audit_log[0] ? "reopened: " : "off", next->audit_log);
        if (waiting[0])
                log_warn("SIGHUP: %s changed in the configuration, which takes effect only at a restart; until then "
                         "the agent keeps the values it started with",
                         waiting);
        return 0;
}
