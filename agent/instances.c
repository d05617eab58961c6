/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real instance backend: include/secretd/tmpfs.h below one root. */
#include "instances.h"

static int tmpfs_create(void *ctx, const char *id, const struct sd_tmpfs_params *params, char **ro_path_out,
                        sd_error *err) {
        return sd_tmpfs_instance_create(ctx, id, params, ro_path_out, err);
}

static int tmpfs_publish(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                         const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation, sd_error *err) {
        return sd_tmpfs_instance_publish(ctx, id, params, files, n_files, generation, err);
}

static int tmpfs_update(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                        const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation, sd_error *err) {
        return sd_tmpfs_instance_update(ctx, id, params, files, n_files, generation, err);
}

static int tmpfs_destroy(void *ctx, const char *id, sd_error *err) {
        return sd_tmpfs_instance_destroy(ctx, id, err);
}

static int tmpfs_ro_path(void *ctx, const char *id, char **ro_path_out) {
        return sd_tmpfs_instance_ro_path(ctx, id, ro_path_out);
}

static int tmpfs_list(void *ctx, char ***ids_out, size_t *n_out, sd_error *err) {
        return sd_tmpfs_instance_list(ctx, ids_out, n_out, err);
}

static int tmpfs_is_mounted(void *ctx, const char *id) {
        return sd_tmpfs_instance_is_mounted(ctx, id);
}

static int tmpfs_generation(void *ctx, const char *id, uint64_t *generation_out) {
        return sd_tmpfs_instance_generation(ctx, id, generation_out);
}

static int tmpfs_used_bytes(void *ctx, const char *id, uint64_t *bytes_out) {
        return sd_tmpfs_instance_used_bytes(ctx, id, bytes_out);
}

static int tmpfs_file_equals(void *ctx, const char *id, const char *name, uint64_t generation,
                             const struct sd_secret *value, sd_error *err) {
        return sd_tmpfs_instance_file_equals(ctx, id, name, generation, value, err);
}

static const struct instances_ops tmpfs_ops = {
        .create = tmpfs_create,
        .publish = tmpfs_publish,
        .update = tmpfs_update,
        .destroy = tmpfs_destroy,
        .ro_path = tmpfs_ro_path,
        .list = tmpfs_list,
        .is_mounted = tmpfs_is_mounted,
        .generation = tmpfs_generation,
        .used_bytes = tmpfs_used_bytes,
        .file_equals = tmpfs_file_equals,
};

void instances_tmpfs(struct instances *out, const char *root) {
        /* The tmpfs calls take root as const; the context pointer is only
         * ever handed back to them. */
        *out = (struct instances) { .ops = &tmpfs_ops, .ctx = (void *) root };
}
