/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every plugin endpoint's body parser.  The first byte picks the parser,
 * the rest is the body exactly as it would arrive from the socket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const sd_error *err) {
        if (err->message[0] == '\0' || strchr(err->message, '\n'))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        const struct volume_limits limits = { .default_size = 1 << 20, .max_size = 16 << 20 };
        const char *body = (const char *) data + 1;
        size_t len = size - 1;
        sd_error err = { 0 };

        switch (data[0] % 4) {
        case 0: {
                if (plugin_parse_empty_request(body, len, &err) < 0)
                        check_error(&err);
                break;
        }
        case 1: {
                struct plugin_name_request req;
                if (plugin_parse_name_request(body, len, &req, &err) < 0)
                        check_error(&err);
                else if (volume_name_validate(req.name, strlen(req.name), NULL) < 0)
                        abort();
                break;
        }
        case 2: {
                struct plugin_mount_request req;
                if (plugin_parse_mount_request(body, len, &req, &err) < 0)
                        check_error(&err);
                else if (volume_name_validate(req.name, strlen(req.name), NULL) < 0 ||
                         mount_id_validate(req.id, strlen(req.id), NULL) < 0 || strchr(req.id, '/') ||
                         strchr(req.id, '.'))
                        abort();
                break;
        }
        case 3: {
                struct plugin_create_request *req = malloc(sizeof(*req));
                if (!req)
                        abort();
                if (plugin_parse_create_request(body, len, &limits, req, &err) < 0)
                        check_error(&err);
                else if (volume_name_validate(req->name, strlen(req->name), NULL) < 0 ||
                         req->spec.n_secrets == 0 || !(req->spec.mode & 0400) ||
                         req->spec.size > limits.max_size)
                        abort();
                free(req);
                break;
        }
        }
        return 0;
}
