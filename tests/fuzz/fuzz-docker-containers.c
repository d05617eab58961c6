/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Container list (GET /containers/json) and inspect (GET /containers/{id}/json)
 * parsing, plus the error mapping that reads Docker's {"message": ...}
 * bodies: the same hostile bytes go through all three.  Invariants of a
 * successful parse are checked: a violation aborts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_container(const struct sd_docker_container *c) {
        if (strlen(c->id) != SD_DOCKER_CONTAINER_ID_LEN)
                abort();
        for (size_t i = 0; i < c->n_names; i++)
                if (!c->names[i])
                        abort();
        for (size_t i = 0; i < c->n_mounts; i++) {
                const struct sd_docker_mount *m = &c->mounts[i];
                if (!m->destination || !*m->destination)
                        abort();
                if (m->type == SD_DOCKER_MOUNT_VOLUME && !m->name)
                        abort();
                if (m->name && (!*m->name || strchr(m->name, '/')))
                        abort();
        }
        if (c->pid < 0 || c->reload_signal > 64 || (c->reload_signal < 0 && c->reload_signal != -EINVAL))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        sd_error err = { 0 };

        struct sd_docker_container_list list = { 0 };
        if (sd_docker_containers_parse(text, size, &list, &err) == 0) {
                for (size_t i = 0; i < list.n; i++)
                        check_container(&list.items[i]);
                sd_docker_container_list_clear(&list);
        } else if (err.code == 0 || strchr(err.message, '\n') || list.items || list.n)
                abort();

        struct sd_docker_container c = { 0 };
        if (sd_docker_container_inspect_parse(text, size, &c, &err) == 0) {
                check_container(&c);
                if (c.n_names != 1)
                        abort();
                sd_docker_container_clear(&c);
        }

        if (sd_docker_error_from_response("GET", "/containers/x/json", 404, text, size, &err) != -ENOENT ||
            strchr(err.message, '\n'))
                abort();
        return 0;
}
