/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-mount tmpfs instances (design.md points 2 and 3).
 *
 * Under a root-only state directory `root` (e.g. /run/secretd/instances,
 * mode 0700), instance `id` (dockerd's 64-hex Mount ID) is:
 *
 *   root/<id>/            0700, root-only
 *   root/<id>/rw/         tmpfs: size=, nr_inodes=, mode=0755, noexec,nosuid,nodev
 *                         the agent writes through this view
 *   root/<id>/ro/         a bind of rw/, remounted read-only (+nosuid,nodev,noexec);
 *                         this is the path Mount returns to dockerd
 *
 * Inside rw/ (the Kubernetes "atomic writer" layout):
 *   ..<generation>/NAME   the files, written 0600 then fchmod/fchown'ed to the
 *                         asked mode/owner before being made visible
 *   ..data -> ..<gen>     one symlink, replaced by rename(2) for each update
 *   NAME -> ..data/NAME   one relative symlink per visible file
 *
 * An update writes a complete new ..<gen> directory, renames a fresh
 * symlink over ..data (one atomic step a reader cannot observe half-done),
 * then overwrites and removes the old directory.  Generations increase.
 *
 * All functions need CAP_SYS_ADMIN (mount) and work fd-relative below root
 * without following symlinks.  None of them keeps plaintext: values are
 * written from the caller's sd_secret and nothing is copied.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "secretd/error.h"
#include "secretd/secret.h"

struct sd_tmpfs_params {
        uint64_t size_bytes;   /* tmpfs size= cap */
        uint64_t nr_inodes;    /* tmpfs nr_inodes= cap */
        uid_t uid;             /* owner of each file */
        gid_t gid;
        mode_t mode;           /* of each file, e.g. 0400 */
};

struct sd_tmpfs_file {
        const char *name;                 /* visible file name, validated by caller */
        const struct sd_secret *value;
};

/* Create instance id: directories, tmpfs, read-only bind.  -EEXIST if the
 * instance already exists.  *ro_path_out (malloc()ed) is the path to hand to
 * dockerd.  On failure nothing is left mounted or created. */
int sd_tmpfs_instance_create(const char *root, const char *id, const struct sd_tmpfs_params *params,
                             char **ro_path_out, sd_error *err);

/* Publish a complete new set of files as generation `generation` (must be
 * greater than the current one), swapping ..data atomically and wiping the
 * previous generation.  Names present before but absent now disappear.
 * -ENOSPC (with a message naming the cap) if the files do not fit. */
int sd_tmpfs_instance_publish(const char *root, const char *id, const struct sd_tmpfs_params *params,
                              const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                              sd_error *err);

/* Overwrite every file with zeros, unlink, unmount ro/ and rw/
 * (MNT_DETACH|UMOUNT_NOFOLLOW), remove the directories.  -ENOENT if no such
 * instance; idempotent otherwise (a half-torn-down instance is finished). */
int sd_tmpfs_instance_destroy(const char *root, const char *id, sd_error *err);

/* The path returned by create, recomputed (malloc()ed). */
int sd_tmpfs_instance_ro_path(const char *root, const char *id, char **ro_path_out);

/* Ids of all instances under root (for adoption after a restart), malloc()ed
 * array of malloc()ed strings. */
int sd_tmpfs_instance_list(const char *root, char ***ids_out, size_t *n_out, sd_error *err);
void sd_tmpfs_ids_free(char **ids, size_t n);

/* Is the instance fully mounted (rw tmpfs and ro bind present in
 * /proc/self/mountinfo)? 1 yes, 0 no, negative on error. */
int sd_tmpfs_instance_is_mounted(const char *root, const char *id);

/* Current generation of an instance (0 if none published yet). */
int sd_tmpfs_instance_generation(const char *root, const char *id, uint64_t *generation_out);
