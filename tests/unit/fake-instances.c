/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-memory instances for unit tests (fake-instances.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-instances.h"
#include "secretd/cleanup.h"

#define FILES_MAX 128

struct fake_file {
        char *name;
        char *value;
        size_t len;
};

struct fake_instance {
        char *id;
        uint64_t generation;
        struct fake_file files[FILES_MAX];
        size_t n_files;
        struct sd_tmpfs_params params;
        bool fail_destroy;
};

struct fake_instances {
        char *root;
        pthread_mutex_t lock;
        struct fake_instance **items;
        size_t n;
        unsigned copies, copies_refused;
        unsigned compares;
        struct instances backend;
};

static struct fake_instance *find(struct fake_instances *f, const char *id) {
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->items[i]->id, id) == 0)
                        return f->items[i];
        return NULL;
}

static void files_clear(struct fake_file *files, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(files[i].name);
                free(files[i].value);
        }
}

static struct fake_instance *add(struct fake_instances *f, const char *id) {
        struct fake_instance *in = calloc(1, sizeof(*in));
        struct fake_instance **bigger = reallocarray(f->items, f->n + 1, sizeof(*bigger));
        if (!in || !bigger) {
                free(in);
                if (bigger)
                        f->items = bigger;
                return NULL;
        }
        f->items = bigger;
        in->id = strdup(id);
        f->items[f->n++] = in;
        return in;
}

static int fake_ro_path(void *ctx, const char *id, char **out) {
        struct fake_instances *f = ctx;
        return asprintf(out, "%s/%s/ro", f->root, id) < 0 ? -ENOMEM : 0;
}

static int fake_create(void *ctx, const char *id, const struct sd_tmpfs_params *params, char **ro_path_out,
                       sd_error *err) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        if (find(f, id))
                return sd_error_set(err, EEXIST, "instance '%s' exists", id);
        if (!params->size_bytes || !params->nr_inodes)
                return sd_error_set(err, EINVAL, "instance '%s': zero caps", id);
        struct fake_instance *in = add(f, id);
        if (!in)
                return sd_error_set(err, ENOMEM, "out of memory");
        in->params = *params;
        return fake_ro_path(ctx, id, ro_path_out);
}

static int write_files(struct fake_instances *f, const char *id, const struct sd_tmpfs_params *params,
                       const struct sd_tmpfs_file *files, size_t n, uint64_t generation, bool carry, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (!in)
                return sd_error_set(err, ENOENT, "instance '%s': no such instance", id);
        if (generation == 0 || n > FILES_MAX)
                return sd_error_set(err, EINVAL, "instance '%s': bad generation or too many files", id);
        if (generation <= in->generation)
                return sd_error_set(err, ESTALE, "instance '%s': generation %llu is not above %llu", id,
                                    (unsigned long long) generation, (unsigned long long) in->generation);
        struct fake_file next[FILES_MAX] = { 0 };
        for (size_t i = 0; i < n; i++) {
                next[i].name = strdup(files[i].name);
                if (files[i].value) {
                        next[i].len = files[i].value->len;
                        next[i].value = malloc(next[i].len + 1);
                        if (next[i].value) {
                                memcpy(next[i].value, files[i].value->data, next[i].len);
                                next[i].value[next[i].len] = '\0';
                        }
                        continue;
                }
                const struct fake_file *old = NULL;
                if (files[i].source_id) {
                        /* A copy from another instance, as it is at the
                         * generation asked for. */
                        const struct fake_instance *src = find(f, files[i].source_id);
                        if (!src || src->generation != files[i].source_generation) {
                                files_clear(next, i + 1);
                                f->copies_refused++;
                                return sd_error_set(err, src ? ESTALE : ENOENT, "instance '%s': cannot copy '%s'", id,
                                                    files[i].name);
                        }
                        for (size_t j = 0; j < src->n_files && !old; j++)
                                if (strcmp(src->files[j].name, files[i].source_name) == 0)
                                        old = &src->files[j];
                        if (old && old->len != files[i].source_len)
                                old = NULL;
                        if (old)
                                f->copies++;
                }
                for (size_t j = 0; carry && !files[i].source_id && j < in->n_files && !old; j++)
                        if (strcmp(in->files[j].name, files[i].name) == 0)
                                old = &in->files[j];
                if (!old) {
                        files_clear(next, i + 1);
                        return sd_error_set(err, ENOENT, "instance '%s': no file '%s' to keep", id, files[i].name);
                }
                next[i].value = strdup(old->value);
                next[i].len = old->len;
        }
        files_clear(in->files, in->n_files);
        memcpy(in->files, next, sizeof(next));
        in->n_files = n;
        in->generation = generation;
        in->params = *params;
        return 0;
}

static int fake_publish(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                        const struct sd_tmpfs_file *files, size_t n, uint64_t generation, sd_error *err) {
        for (size_t i = 0; i < n; i++)
                if (!files[i].value && !files[i].source_id)
                        return sd_error_set(err, EINVAL, "publish: file '%s' has no value", files[i].name);
        return write_files(ctx, id, params, files, n, generation, false, err);
}

static int fake_update(void *ctx, const char *id, const struct sd_tmpfs_params *params,
                       const struct sd_tmpfs_file *files, size_t n, uint64_t generation, sd_error *err) {
        return write_files(ctx, id, params, files, n, generation, true, err);
}

static int fake_destroy(void *ctx, const char *id, sd_error *err) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->items[i]->id, id) == 0) {
                        struct fake_instance *in = f->items[i];
                        if (in->fail_destroy)
                                return sd_error_set(err, EBUSY, "instance '%s': cannot unmount", id);
                        files_clear(in->files, in->n_files);
                        free(in->id);
                        free(in);
                        f->items[i] = f->items[--f->n];
                        return 0;
                }
        return -ENOENT;
}

static int fake_list(void *ctx, char ***ids_out, size_t *n_out, sd_error *err) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        char **ids = f->n ? calloc(f->n, sizeof(*ids)) : NULL;
        if (f->n && !ids)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < f->n; i++)
                ids[i] = strdup(f->items[i]->id);
        *ids_out = ids;
        *n_out = f->n;
        return 0;
}

static int fake_is_mounted(void *ctx, const char *id) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        return find(f, id) ? 1 : 0;
}

static int fake_generation(void *ctx, const char *id, uint64_t *out) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (!in)
                return -ENOENT;
        *out = in->generation;
        return 0;
}

static int fake_file_equals(void *ctx, const char *id, const char *name, uint64_t generation,
                            const struct sd_secret *value, sd_error *err) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (!in)
                return sd_error_set(err, ENOENT, "instance '%s': no such instance", id);
        if (in->generation != generation)
                return sd_error_set(err, ESTALE, "instance '%s' is not at generation %llu", id,
                                    (unsigned long long) generation);
        f->compares++;
        for (size_t i = 0; i < in->n_files; i++)
                if (strcmp(in->files[i].name, name) == 0)
                        return in->files[i].len == value->len && memcmp(in->files[i].value, value->data, value->len) == 0;
        return sd_error_set(err, ENOENT, "instance '%s': no file '%s'", id, name);
}

/* The bytes of the instance's files: what a tmpfs holding them would use,
 * less its page rounding. */
static int fake_used_bytes(void *ctx, const char *id, uint64_t *bytes_out) {
        struct fake_instances *f = ctx;
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (!in)
                return -ENOENT;
        *bytes_out = 0;
        for (size_t i = 0; i < in->n_files; i++)
                *bytes_out += in->files[i].len;
        return 0;
}

static const struct instances_ops fake_ops = {
        .create = fake_create,
        .publish = fake_publish,
        .update = fake_update,
        .destroy = fake_destroy,
        .ro_path = fake_ro_path,
        .list = fake_list,
        .is_mounted = fake_is_mounted,
        .generation = fake_generation,
        .used_bytes = fake_used_bytes,
        .file_equals = fake_file_equals,
};

struct fake_instances *fake_instances_new(const char *root) {
        struct fake_instances *f = calloc(1, sizeof(*f));
        if (!f)
                return NULL;
        f->root = strdup(root);
        (void) pthread_mutex_init(&f->lock, NULL);
        f->backend = (struct instances) { .ops = &fake_ops, .ctx = f };
        return f;
}

void fake_instances_free(struct fake_instances *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n; i++) {
                files_clear(f->items[i]->files, f->items[i]->n_files);
                free(f->items[i]->id);
                free(f->items[i]);
        }
        free(f->items);
        free(f->root);
        (void) pthread_mutex_destroy(&f->lock);
        free(f);
}

const struct instances *fake_instances_backend(struct fake_instances *f) {
        return &f->backend;
}

void fake_instances_add(struct fake_instances *f, const char *id) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        if (!find(f, id))
                (void) add(f, id);
}

void fake_instances_fail_destroy(struct fake_instances *f, const char *id, bool fail) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (in)
                in->fail_destroy = fail;
}

bool fake_instances_exists(struct fake_instances *f, const char *id) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        return find(f, id) != NULL;
}

size_t fake_instances_count(struct fake_instances *f) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        return f->n;
}

uint64_t fake_instances_generation(struct fake_instances *f, const char *id) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        return in ? in->generation : 0;
}

char *fake_instances_read(struct fake_instances *f, const char *id, const char *name) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        for (size_t i = 0; in && i < in->n_files; i++)
                if (strcmp(in->files[i].name, name) == 0)
                        return strdup(in->files[i].value);
        return NULL;
}

bool fake_instances_owner(struct fake_instances *f, const char *id, unsigned *uid, unsigned *gid, unsigned *mode) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (!in)
                return false;
        *uid = (unsigned) in->params.uid;
        *gid = (unsigned) in->params.gid;
        *mode = (unsigned) in->params.mode;
        return true;
}

void fake_instances_copies(struct fake_instances *f, unsigned *copies, unsigned *refused) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        *copies = f->copies;
        *refused = f->copies_refused;
}

void fake_instances_bump(struct fake_instances *f, const char *id) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        struct fake_instance *in = find(f, id);
        if (in)
                in->generation++;
}

unsigned fake_instances_compares(struct fake_instances *f) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&f->lock);
        return f->compares;
}
