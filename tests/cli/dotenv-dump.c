/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper for test-dotenv-python.py: parses each .env file named on the
 * command line with sd_dotenv_parse() and prints one JSON object per file:
 * {"file": F, "entries": [{"name", "value": HEX or null, "line"}, ...]} or
 * {"file": F, "error": MESSAGE}.  Test inputs only: it prints values. */
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "secretd/cleanup.h"
#include "secretd/dotenv.h"

int main(int argc, char **argv) {
        if (sodium_init() < 0)
                return 1;
        for (int i = 1; i < argc; i++) {
                _cleanup_close_ int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        perror(argv[i]);
                        return 1;
                }
                sd_error err = { 0 };
                _cleanup_secret_ struct sd_secret *text = NULL;
                if (sd_secret_read_fd(fd, SD_VALUE_MAX, argv[i], &text, &err) < 0) {
                        fprintf(stderr, "%s\n", err.message);
                        return 1;
                }
                _cleanup_dotenv_ struct sd_dotenv *env = NULL;
                _cleanup_json_ json_t *o = json_pack("{ss}", "file", argv[i]);
                if (sd_dotenv_parse(text->data, text->len, argv[i], &env, &err) < 0) {
                        json_object_set_new(o, "error", json_string(err.message));
                } else {
                        json_t *entries = json_array();
                        for (size_t j = 0; j < env->n; j++) {
                                const struct sd_dotenv_entry *e = &env->entries[j];
                                json_t *value = json_null();
                                if (e->value) {
                                        char *hex = malloc(e->value->len * 2 + 1);
                                        sodium_bin2hex(hex, e->value->len * 2 + 1, e->value->data, e->value->len);
                                        value = json_string(hex);
                                        free(hex);
                                }
                                json_array_append_new(entries, json_pack("{sssosI}", "name", e->name, "value", value,
                                                                         "line", (json_int_t) e->line));
                        }
                        json_object_set_new(o, "entries", entries);
                }
                char *line = json_dumps(o, JSON_COMPACT);
                puts(line);
                free(line);
        }
        return 0;
}
