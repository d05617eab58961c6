/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rules import-env and compose migrate share: include/secretd/migrate.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "secretd/migrate.h"

int sd_migrate_secret_name(const char *var, bool lowercase, char out[SD_NAME_MAX + 1], sd_error *err) {
        size_t len = strlen(var);
        char shown[64];
        sd_escape_for_message(var, len, shown, sizeof(shown));
        if (len > SD_NAME_MAX)
                return sd_error_set(err, EINVAL, "variable %s: its name is longer than the %d bytes a secret name may have",
                                    shown, SD_NAME_MAX);
        for (size_t i = 0; i <= len; i++)
                out[i] = lowercase && var[i] >= 'A' && var[i] <= 'Z' ? (char) (var[i] - 'A' + 'a') : var[i];
        int r = sd_name_validate("secret name", out, len, err);
        if (r < 0)
                return sd_error_prefix(err, r, "variable %s", shown);
        return 0;
}

bool sd_migrate_name_looks_secret(const char *var) {
        static const char *const last_words[] = {
                "PASSWORD", "PASSWD", "PASS", "PWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIALS",
        };
        const char *word = var, *last = NULL;
        size_t last_len = 0;
        bool has_secret_word = false;
        for (const char *p = var;; p++) {
                if (*p != '_' && *p != '\0')
                        continue;
                size_t n = (size_t) (p - word);
                if (n == 6 && strncasecmp(word, "SECRET", 6) == 0)
                        has_secret_word = true;
                if (n > 0) {
                        last = word;
                        last_len = n;
                }
                if (*p == '\0')
                        break;
                word = p + 1;
        }
        if (!last || (last_len == 4 && strncasecmp(last, "FILE", 4) == 0))
                return false;
        if (has_secret_word)
                return true;
        for (size_t i = 0; i < sizeof(last_words) / sizeof(last_words[0]); i++)
                if (strlen(last_words[i]) == last_len && strncasecmp(last, last_words[i], last_len) == 0)
                        return true;
        return false;
}

static const char *origin_note(const char *const *origins, size_t i, char *buf, size_t size) {
        if (!origins || !origins[i]) {
                buf[0] = '\0';
                return buf;
        }
        (void) snprintf(buf, size, " (%s)", origins[i]);
        return buf;
}

int sd_migrate_check_case(struct sd_store *store, const char *const *names, const char *const *origins, size_t n,
                          sd_error *err) {
        char a[160], b[160];
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        if (strcmp(names[i], names[j]) != 0 && strcasecmp(names[i], names[j]) == 0)
                                return sd_error_set(err, EEXIST,
                                                    "secrets '%s'%s and '%s'%s would differ only in case, two secrets "
                                                    "where one was meant; rename one of the variables",
                                                    names[i], origin_note(origins, i, a, sizeof(a)), names[j],
                                                    origin_note(origins, j, b, sizeof(b)));
        if (!store)
                return 0;

        struct sd_store_name *stored = NULL;
        size_t n_stored = 0;
        int r = sd_store_list(store, &stored, &n_stored, err);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = 0;
        for (size_t i = 0; i < n && r == 0; i++)
                for (size_t j = 0; j < n_stored; j++)
                        if (strcmp(names[i], stored[j].name) != 0 && strcasecmp(names[i], stored[j].name) == 0) {
                                r = sd_error_set(err, EEXIST,
                                                 "secret '%s'%s would differ only in case from the stored secret '%s'; "
                                                 "secret names are case-sensitive, so that would be a second secret: "
                                                 "use the stored name (import-env --lowercase, or rename the variable)",
                                                 names[i], origin_note(origins, i, a, sizeof(a)), stored[j].name);
                                break;
                        }
        sd_store_names_free(stored, n_stored);
        return r;
}
