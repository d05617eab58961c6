/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-mount tmpfs instances (design.md points 2 and 3; docs/tmpfs.md).
 *
 * Under a root-only state directory `root` (e.g. /run/secretd/instances:
 * owned by us, not group/other-writable, not a symlink; created 0700 if
 * missing), instance `id` (dockerd's 64-hex Mount ID; any 1..128 bytes of
 * [A-Za-z0-9_.-] not starting with '.') is:
 *
 *   root/<id>/            0700, root-only
 *   root/<id>/rw/         tmpfs: size=, nr_inodes=, mode=0755, noexec,nosuid,nodev
 *                         (+noswap where the kernel has it, 6.4+); source "secretd"
 *                         the agent writes through this view
 *   root/<id>/ro/         a clone of rw/, made read-only (+nosuid,nodev,noexec)
 *                         before it is attached; this is the path Mount returns
 *                         to dockerd.  Both mounts are private (no propagation).
 *
 * Inside rw/ (the Kubernetes "atomic writer" layout):
 *   ..g<20 digits>/NAME   generation directory ("..g00000000000000000007"),
 *                         root-owned 0755; the files, written 0600 then
 *                         fchmod/fchown'ed to the asked mode/owner
 *   ..data -> ..g<...>    one symlink, replaced by rename(2) for each update
 *   NAME -> ..data/NAME   one relative symlink per visible file
 *
 * An update zeroes and removes the generation before the current one,
 * writes a complete new generation directory, then renames a fresh symlink
 * over ..data (one atomic step a reader cannot observe half-done).  The
 * generation it replaced stays intact until the next update, so at most two
 * exist at once.  A reader that wants several files from one generation
 * resolves "..data" once (a directory fd, or `cd ..data`) and reads them
 * relative to it: that set stays complete and consistent until the update
 * after next.  Opening NAME by NAME can straddle an update.  A reader
 * holding a file open reads zeros once its generation is two updates old,
 * and a name dropped from the set is zeroed in the previous generation
 * right after the switch.
 *
 * All functions need CAP_SYS_ADMIN (mount) for create/destroy and work
 * fd-relative below root without following symlinks.  Calls on the same
 * instance serialise on an flock(2) of root/<id> (threads included); a
 * copy from another instance holds that one's lock shared.  None of them
 * keeps plaintext: values are written from the caller's sd_secret, or
 * copied from another instance's file (see struct sd_tmpfs_file).
 *
 * Sizing: two generations coexist (always, after the first update), so
 * size_bytes must fit twice the files (each rounded up to a page), and
 * nr_inodes must be at least 3 * n + 5 for n files (root, ..data, the
 * temporary link, two generation directories, 2n files, n links).
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
        const char *name;                 /* visible file name; checked with sd_name_validate() */
        const struct sd_secret *value;
        /* Or, with value NULL: a copy of file source_name of instance
         * source_id (below the same root) as it is in that instance's
         * generation source_generation, which must be source_len bytes.
         * The bytes go from one tmpfs to the other inside the kernel
         * (sendfile), or, where that is not allowed, through a locked
         * buffer zeroed after use; the source is locked (shared) while it
         * is read, so no update can change it under the copy.  -ESTALE if
         * the source is at another generation now, -ENOENT if it or the
         * file is gone, -EBADMSG if the file is not a regular file of that
         * length. */
        const char *source_id;
        const char *source_name;
        uint64_t source_generation;
        size_t source_len;
};

/* Create instance id: directories, tmpfs, read-only view.  *ro_path_out
 * (malloc()ed, absolute, with root's symlinks resolved) is the path to hand
 * to dockerd.  size_bytes and nr_inodes must be non-zero (tmpfs reads 0 as
 * unlimited); uid/gid/mode are not used here.
 * -EINVAL bad id or caps; -EEXIST root/<id> exists (also as a symlink);
 * -ELOOP root is a symlink; -EPERM root not ours or group/other-writable.
 * On failure nothing is left mounted or created (root itself may remain). */
int sd_tmpfs_instance_create(const char *root, const char *id, const struct sd_tmpfs_params *params,
                             char **ro_path_out, sd_error *err);

/* Publish a complete new set of files (n_files may be 0) as generation
 * `generation`, swapping ..data atomically.  The generation before the
 * current one is wiped first; the current one stays intact (see above).
 * Names present before but absent now disappear.  Each file
 * gets params->mode (permission bits only) and uid/gid ((uid_t) -1 keeps
 * root).  A ..data or NAME entry that is not ours is replaced by rename(2),
 * never followed.
 * -EINVAL bad id, name, mode, duplicate name or generation 0;
 * -ESTALE generation not greater than the current one;
 * -ENOSPC the files do not fit (message names the instance, the file and
 *   the cap: "size=N bytes" or "nr_inodes=N");
 * -ENOTCONN rw/ is not a mounted tmpfs (never writes to the disk below);
 * -ENOENT/-ENOTDIR no such instance.
 * On failure before the switch the previous generation stays complete and
 * visible.  A failure after it (removing old entries) is reported with a
 * message saying the new generation is live. */
int sd_tmpfs_instance_publish(const char *root, const char *id, const struct sd_tmpfs_params *params,
                              const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                              sd_error *err);

/* As publish, but a file whose value is NULL is carried over unchanged from
 * the current generation (hard-linked: no copy of the plaintext is made, no
 * space or inode used).  For rotations, where one secret of a volume
 * changes: callers pass the new values of changed files, NULL for the rest,
 * and leave out names to remove.  -ENOENT (nothing changed) if a file to
 * keep is missing from the current generation or there is none. */
int sd_tmpfs_instance_update(const char *root, const char *id, const struct sd_tmpfs_params *params,
                             const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                             sd_error *err);

/* Overwrite every file with zeros and unlink it (while rw/ is still
 * mounted: a running container's bind outlives our unmount), unmount ro/
 * and rw/ (MNT_DETACH|UMOUNT_NOFOLLOW), remove the directories.  -ENOENT
 * only if root/<id> does not exist at all; anything else is finished (ro/
 * or rw/ already unmounted, directories without mounts, a symlink planted
 * as root/<id> is removed without being followed).  If wiping fails nothing
 * is unmounted, so a retry can still reach the files. */
int sd_tmpfs_instance_destroy(const char *root, const char *id, sd_error *err);

/* The path returned by create, recomputed (malloc()ed).  -EINVAL bad id;
 * -ENOENT if root does not exist (it is resolved with realpath(3)). */
int sd_tmpfs_instance_ro_path(const char *root, const char *id, char **ro_path_out);

/* Ids of all instances under root (for adoption after a restart), sorted,
 * as a malloc()ed array of malloc()ed strings; entries that are not
 * directories or not valid ids are skipped.  A missing root gives 0 ids
 * (*ids_out NULL).  Free with sd_tmpfs_ids_free(). */
int sd_tmpfs_instance_list(const char *root, char ***ids_out, size_t *n_out, sd_error *err);
void sd_tmpfs_ids_free(char **ids, size_t n);

/* Is the instance fully mounted (rw tmpfs and a read-only ro view of the
 * same tmpfs on top of their mount points in /proc/self/mountinfo, paths
 * matched exactly after unescaping)? 1 yes, 0 no (also: no such instance
 * or root), negative on error (-EINVAL bad id). */
int sd_tmpfs_instance_is_mounted(const char *root, const char *id);

/* ---- the mount table ---- */

/* One line of /proc/PID/mountinfo (proc(5)), paths unescaped.  The strings
 * live only during the callback. */
struct sd_mount_entry {
        dev_t dev;                        /* MAJ:MIN of the mounted filesystem */
        const char *root;                 /* the mount's root within it */
        const char *mount_point;
        const char *options;              /* per-mount options: "ro,nosuid,..." */
        const char *fstype;               /* "" if the line has none */
};

/* Return 0 to go on, > 0 to stop (the walk then returns 0), < 0 to stop
 * with that error. */
typedef int (*sd_mount_entry_fn)(void *userdata, const struct sd_mount_entry *e);

/* Call fn for every mount of process pid's mount namespace (pid 0: this
 * process), in the table's order: of several mounts on one mount point
 * the last is on top.  Lines that do not parse are skipped.  0, fn's
 * error, or -errno (no such process: -ENOENT). */
int sd_mount_table_foreach(pid_t pid, sd_mount_entry_fn fn, void *userdata);

/* Current generation of an instance (0 if none published yet).
 * -EBADMSG if ..data is not a symlink to a generation directory (publish
 * repairs that); -ENOTCONN if rw/ is not mounted; -ENOENT no instance. */
int sd_tmpfs_instance_generation(const char *root, const char *id, uint64_t *generation_out);

/* Bytes of the instance's tmpfs in use (its blocks, statvfs(3): the pages
 * its files take, both generations during an update), in *bytes_out.
 * -ENOTCONN if rw/ is not mounted; -ENOENT no instance; -EINVAL bad id. */
int sd_tmpfs_instance_used_bytes(const char *root, const char *id, uint64_t *bytes_out);

/* Does file `name` of instance id, as it is in generation `generation`
 * (which must be the current one), hold exactly value's bytes?  1 yes, 0 no
 * (another length or other bytes), -ESTALE the instance is at another
 * generation, -ENOENT no such instance or file, -EBADMSG not a regular
 * file.  Read under the instance's lock (shared) into locked memory,
 * compared with sodium_memcmp, zeroed and freed: nothing of it is kept.
 * For a rotation that brings a new version of the same value (a reseal):
 * the files need not change. */
int sd_tmpfs_instance_file_equals(const char *root, const char *id, const char *name, uint64_t generation,
                                  const struct sd_secret *value, sd_error *err);
