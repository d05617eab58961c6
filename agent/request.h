/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Docker volume plugin requests: JSON body -> validated struct.
 *
 * Everything here is pure (no I/O, no global state) so the unit tests and
 * the fuzz harnesses call it directly.  Bodies come from dockerd over a
 * root-only socket, but they carry whatever a user typed after `-o` or in a
 * compose file, so every field is checked: names become file names under
 * the state directory and in containers.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/names.h"

/* Largest request body accepted (413 above). */
#define PLUGIN_BODY_MAX ((size_t) 64 << 10)
/* A volume delivers at most this many files. */
#define VOLUME_SECRETS_MAX 128
/* dockerd's Mount IDs are 64 hex characters; leave room for other engines. */
#define MOUNT_ID_MAX 128

struct volume_secret {
        char name[SD_NAME_MAX + 1];  /* secret in the store */
        char file[SD_NAME_MAX + 1];  /* file name in the volume */
};

enum volume_on_delete {
        VOLUME_ON_DELETE_KEEP = 0,
        VOLUME_ON_DELETE_REMOVE = 1,
};

/* A volume's options, validated and canonical: secrets sorted by file name,
 * defaults filled in.  Two specs describe the same volume iff
 * volume_spec_equal(). */
struct volume_spec {
        size_t n_secrets;
        struct volume_secret secrets[VOLUME_SECRETS_MAX];
        uint32_t uid;
        uint32_t gid;
        uint32_t mode;       /* permission bits of each file, includes 0400 */
        uint64_t size;       /* tmpfs size cap, bytes */
        enum volume_on_delete on_delete;
};

struct volume_limits {
        uint64_t default_size;  /* when opts have no "size" */
        uint64_t max_size;      /* largest "size" accepted */
};

/* Opts from Create: NULL, JSON null or an object of string values.
 * -EINVAL with a message naming the option and the value. */
int volume_opts_parse(const json_t *opts, const struct volume_limits *limits,
                      struct volume_spec *out, sd_error *err);

/* Parse one option value alone (used for messages and the fuzzer). */
int volume_opt_mode_parse(const char *text, uint32_t *out, sd_error *err);
int volume_opt_id_parse(const char *what, const char *text, uint32_t *out, sd_error *err);

/* Canonical options as a JSON object of strings; feeding it back to
 * volume_opts_parse() yields an equal spec.  NULL on out of memory. */
json_t *volume_spec_to_json(const struct volume_spec *spec);
bool volume_spec_equal(const struct volume_spec *a, const struct volume_spec *b);

/* The secret names a volume delivers, each once (one secret may be
 * delivered under several file names), as a JSON array.  NULL on out of
 * memory. */
json_t *volume_spec_secret_names(const struct volume_spec *spec);

/* ---- request bodies ---- */

struct plugin_name_request {       /* Remove, Get, Path */
        char name[SD_NAME_MAX + 1];
};

struct plugin_mount_request {      /* Mount, Unmount */
        char name[SD_NAME_MAX + 1];
        char id[MOUNT_ID_MAX + 1];
};

struct plugin_create_request {     /* Create */
        char name[SD_NAME_MAX + 1];
        struct volume_spec spec;
};

/* Each returns 0 or -EINVAL with a message for an {"Err": ...} reply.  body
 * need not be NUL-terminated. */
int plugin_parse_empty_request(const char *body, size_t len, sd_error *err);
int plugin_parse_name_request(const char *body, size_t len, struct plugin_name_request *out,
                              sd_error *err);
int plugin_parse_mount_request(const char *body, size_t len, struct plugin_mount_request *out,
                               sd_error *err);
int plugin_parse_create_request(const char *body, size_t len, const struct volume_limits *limits,
                                struct plugin_create_request *out, sd_error *err);

/* Volume names and mount ids become file names under the state directory. */
int volume_name_validate(const char *name, size_t len, sd_error *err);
int mount_id_validate(const char *id, size_t len, sd_error *err);
