/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where the per-mount tmpfs instances live: a table of the
 * include/secretd/tmpfs.h calls the agent makes, so that the registry,
 * delivery and the plugin endpoints can be driven by unit tests without
 * CAP_SYS_ADMIN (tests/unit/fake-instances.c keeps instances in memory).
 * The daemon uses instances_tmpfs(): the real tmpfs below
 * <state-dir>/instances, covered by tests/unit/test-tmpfs.c and the
 * integration suite.
 *
 * Each operation has the contract of the sd_tmpfs_instance_* function of
 * the same name; the backend is called without any agent lock held, and
 * must allow calls on different ids from several threads at once.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"
#include "secretd/tmpfs.h"

struct instances_ops {
        int (*create)(void *ctx, const char *id, const struct sd_tmpfs_params *params, char **ro_path_out,
                      sd_error *err);
        int (*publish)(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                       const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation, sd_error *err);
        int (*update)(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                      const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation, sd_error *err);
        int (*destroy)(void *ctx, const char *id, sd_error *err);
        int (*ro_path)(void *ctx, const char *id, char **ro_path_out);
        int (*list)(void *ctx, char ***ids_out, size_t *n_out, sd_error *err);
        int (*is_mounted)(void *ctx, const char *id);
        int (*generation)(void *ctx, const char *id, uint64_t *generation_out);
        /* May be NULL: then the in-use gauge counts nothing for it. */
        int (*used_bytes)(void *ctx, const char *id, uint64_t *bytes_out);
        /* May be NULL: then every new version is published. */
        int (*file_equals)(void *ctx, const char *id, const char *name, uint64_t generation,
                           const struct sd_secret *value, sd_error *err);
};

struct instances {
        const struct instances_ops *ops;
        void *ctx;
};

/* The real backend: instances are sd_tmpfs instances below root (a path
 * that must outlive *out; not copied). */
void instances_tmpfs(struct instances *out, const char *root);

static inline int instances_create(const struct instances *in, const char *id, const struct sd_tmpfs_params *params,
                                   char **ro_path_out, sd_error *err) {
        return in->ops->create(in->ctx, id, params, ro_path_out, err);
}
static inline int instances_publish(const struct instances *in, const char *id, const struct sd_tmpfs_params *params,
                                    const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                                    sd_error *err) {
        return in->ops->publish(in->ctx, id, params, files, n_files, generation, err);
}
static inline int instances_update(const struct instances *in, const char *id, const struct sd_tmpfs_params *params,
                                   const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                                   sd_error *err) {
        return in->ops->update(in->ctx, id, params, files, n_files, generation, err);
}
static inline int instances_destroy(const struct instances *in, const char *id, sd_error *err) {
        return in->ops->destroy(in->ctx, id, err);
}
static inline int instances_ro_path(const struct instances *in, const char *id, char **ro_path_out) {
        return in->ops->ro_path(in->ctx, id, ro_path_out);
}
static inline int instances_list(const struct instances *in, char ***ids_out, size_t *n_out, sd_error *err) {
        return in->ops->list(in->ctx, ids_out, n_out, err);
}
static inline int instances_is_mounted(const struct instances *in, const char *id) {
        return in->ops->is_mounted(in->ctx, id);
}
static inline int instances_generation(const struct instances *in, const char *id, uint64_t *generation_out) {
        return in->ops->generation(in->ctx, id, generation_out);
}
static inline int instances_used_bytes(const struct instances *in, const char *id, uint64_t *bytes_out) {
        if (!in->ops->used_bytes) {
                *bytes_out = 0;
                return 0;
        }
        return in->ops->used_bytes(in->ctx, id, bytes_out);
}
static inline int instances_file_equals(const struct instances *in, const char *id, const char *name,
                                        uint64_t generation, const struct sd_secret *value, sd_error *err) {
        if (!in->ops->file_equals)
                return sd_error_set(err, EOPNOTSUPP, "instance '%s': this backend cannot compare files", id);
        return in->ops->file_equals(in->ctx, id, name, generation, value, err);
}
