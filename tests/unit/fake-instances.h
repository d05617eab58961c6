/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An instance backend (agent/instances.h) that keeps instances in memory,
 * so the registry, delivery and the plugin endpoints run in unit tests
 * without CAP_SYS_ADMIN.  It keeps the contract of include/secretd/tmpfs.h
 * that the agent relies on: -EEXIST on a second create, generations that
 * must grow (-ESTALE), NULL values carried over by update (-ENOENT when
 * there is nothing to carry), -ENOENT from destroy of an unknown id.
 * Thread-safe.  Values are copied into plain memory: test values only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "instances.h"

struct fake_instances;

struct fake_instances *fake_instances_new(const char *root);
void fake_instances_free(struct fake_instances *f);
const struct instances *fake_instances_backend(struct fake_instances *f);

/* An instance that exists and is mounted, as after an agent restart. */
void fake_instances_add(struct fake_instances *f, const char *id);
/* Make destroy of id fail with -EBUSY (true) or work again (false). */
void fake_instances_fail_destroy(struct fake_instances *f, const char *id, bool fail);

bool fake_instances_exists(struct fake_instances *f, const char *id);
size_t fake_instances_count(struct fake_instances *f);
uint64_t fake_instances_generation(struct fake_instances *f, const char *id);
/* The value of file name in instance id as a malloc()ed string, NULL if
 * there is no such file. */
char *fake_instances_read(struct fake_instances *f, const char *id, const char *name);
/* The owner and mode the files of id were last written with. */
bool fake_instances_owner(struct fake_instances *f, const char *id, unsigned *uid, unsigned *gid, unsigned *mode);

/* Files copied from another instance so far, and copies refused (the
 * source at another generation, or gone). */
void fake_instances_copies(struct fake_instances *f, unsigned *copies, unsigned *refused);
/* Move instance id to its next generation behind the agent's back (as a
 * rotation publishing it at that moment would). */
void fake_instances_bump(struct fake_instances *f, const char *id);
/* Files compared with a new value so far (file_equals). */
unsigned fake_instances_compares(struct fake_instances *f);
