/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-mount tmpfs instances.  docs/tmpfs.md explains the layout and the
 * reason for each step; the comments here note the kernel behaviour that
 * forces a particular order or call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/names.h"
#include "secretd/tmpfs.h"

#define INSTANCE_ID_MAX 128
#define DATA_LINK "..data"
#define DATA_LINK_TMP "..data_tmp"
#define NAME_LINK_TMP "..link_tmp"
#define DATA_LINK_PREFIX "..data/"
#define NAME_LINK_TARGET_SIZE (sizeof(DATA_LINK_PREFIX) + SD_NAME_MAX + 1)
#define GENERATION_PREFIX "..g"
#define GENERATION_DIGITS 20                       /* UINT64_MAX has 20 digits */
#define GENERATION_NAME_SIZE (3 + GENERATION_DIGITS + 1)
#define WIPE_DEPTH_MAX 8
#define UNMOUNT_TRIES_MAX 16

/* Shown in mountinfo as the source of every instance tmpfs, so an operator
 * can find them with `findmnt -S secretd`. */
#define MOUNT_SOURCE "secretd"

static const unsigned char zeros[16384];

/* ---- names ------------------------------------------------------------ */

static int instance_id_validate(const char *id, sd_error *err) {
        char shown[64];
        size_t len = id ? strnlen(id, INSTANCE_ID_MAX + 1) : 0;

        if (len == 0)
                return sd_error_set(err, EINVAL, "instance id is empty");
        sd_escape_for_message(id, len, shown, sizeof(shown));
        if (len > INSTANCE_ID_MAX)
                return sd_error_set(err, EINVAL, "instance id '%s' is longer than %d bytes", shown,
                                    INSTANCE_ID_MAX);
        /* A leading dot would allow "." and ".." and hidden names. */
        if (id[0] == '.')
                return sd_error_set(err, EINVAL, "instance id '%s' must not start with '.'", shown);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) id[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          c == '_' || c == '.' || c == '-';
                if (!ok)
                        return sd_error_set(err, EINVAL,
                                            "instance id '%s' contains byte 0x%02x; only letters, digits, '.', '_' and '-' are allowed",
                                            shown, c);
        }
        return 0;
}

static void generation_name(uint64_t generation, char out[GENERATION_NAME_SIZE]) {
        (void) snprintf(out, GENERATION_NAME_SIZE, GENERATION_PREFIX "%020" PRIu64, generation);
}

/* Only names this module writes parse: "..g" and exactly 20 digits, not 0. */
static int generation_parse(const char *name, uint64_t *out) {
        if (strncmp(name, GENERATION_PREFIX, strlen(GENERATION_PREFIX)) != 0)
                return -EBADMSG;
        const char *digits = name + strlen(GENERATION_PREFIX);
        if (strlen(digits) != GENERATION_DIGITS)
                return -EBADMSG;
        uint64_t value = 0;
        for (const char *p = digits; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                unsigned digit = (unsigned) (*p - '0');
                if (value > (UINT64_MAX - digit) / 10)
                        return -EBADMSG;
                value = value * 10 + digit;
        }
        if (value == 0)
                return -EBADMSG;
        *out = value;
        return 0;
}

static char *path_join3(const char *a, const char *b, const char *c) {
        /* A root of "/" would otherwise give "//id". */
        if (strcmp(a, "/") == 0)
                a = "";
        size_t len = strlen(a) + 1 + strlen(b) + (c ? 1 + strlen(c) : 0) + 1;
        char *p = malloc(len);
        if (!p)
                return NULL;
        if (c)
                (void) snprintf(p, len, "%s/%s/%s", a, b, c);
        else
                (void) snprintf(p, len, "%s/%s", a, b);
        return p;
}

/* ---- opening the directories ----------------------------------------- */

static int root_create(const char *root, sd_error *err) {
        if (mkdir(root, 0700) >= 0 || errno == EEXIST)
                return 0;
        if (errno != ENOENT)
                return sd_error_set_errno(err, errno, "instance root '%s': cannot create", root);

        /* The parents are system directories (/run/secretd): ordinary
         * 0755, only the root itself is private. */
        _cleanup_free_ char *parent = strdup(root);
        if (!parent)
                return sd_error_set(err, ENOMEM, "instance root '%s': out of memory", root);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = '\0';
                int r = sd_mkdir_p(parent, 0755);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "instance root '%s': cannot create parent '%s'",
                                                  root, parent);
        }
        if (mkdir(root, 0700) < 0 && errno != EEXIST)
                return sd_error_set_errno(err, errno, "instance root '%s': cannot create", root);
        return 0;
}

/* Open root without following a symlink and check that only we can write
 * into it: everything below is trusted because of this check. */
static int root_open(const char *root, bool create, sd_error *err) {
        if (!root || !*root)
                return sd_error_set(err, EINVAL, "instance root is empty");
        if (create) {
                int r = root_create(root, err);
                if (r < 0)
                        return r;
        }

        _cleanup_close_ int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                struct stat lst;
                if ((e == ENOTDIR || e == ELOOP) && lstat(root, &lst) == 0 && S_ISLNK(lst.st_mode))
                        return sd_error_set(err, ELOOP, "instance root '%s' is a symbolic link; refusing to follow it",
                                            root);
                if (e == ENOENT)
                        return sd_error_set(err, ENOENT, "instance root '%s' does not exist", root);
                return sd_error_set_errno(err, e, "instance root '%s': cannot open", root);
        }

        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "instance root '%s': cannot stat", root);
        if (st.st_uid != geteuid())
                return sd_error_set(err, EPERM, "instance root '%s' is owned by uid %u, not by us (uid %u); refusing it",
                                    root, (unsigned) st.st_uid, (unsigned) geteuid());
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return sd_error_set(err, EPERM, "instance root '%s' has mode %04o: writable by group or others; refusing it",
                                    root, (unsigned) (st.st_mode & 07777));
        return steal_fd(&fd);
}

static int instance_open(int rootfd, const char *id, sd_error *err) {
        int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                return fd;
        if (errno == ENOENT)
                return sd_error_set(err, ENOENT, "instance '%s' does not exist", id);
        if (errno == ENOTDIR || errno == ELOOP)
                return sd_error_set(err, ENOTDIR, "instance '%s' is not a directory (a symbolic link?); refusing to follow it",
                                    id);
        return sd_error_set_errno(err, errno, "instance '%s': cannot open", id);
}

/* 1 if dirfd/name (name "" for dirfd itself) is the root of a mount. */
static int is_mount_root_at(int dirfd, const char *name) {
        struct statx sx;
        int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (name[0] ? 0 : AT_EMPTY_PATH);
        if (statx(dirfd, name, flags, STATX_TYPE, &sx) < 0)
                return -errno;
        if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
                return -EOPNOTSUPP;
        return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

/* The writable view, checked to be a mounted tmpfs: if the tmpfs is gone
 * (unmounted by hand, half-destroyed), writing would put plaintext on the
 * file system underneath, which may be a disk. */
static int rw_open_mounted(int idfd, const char *id, sd_error *err) {
        _cleanup_close_ int fd = openat(idfd, "rw", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return sd_error_set(err, ENOTCONN, "instance '%s': rw/ cannot be opened: %s", id,
                                    strerror(errno));
        int r = is_mount_root_at(fd, "");
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot check whether rw/ is mounted", id);
        struct statfs sfs;
        if (r == 0 || fstatfs(fd, &sfs) < 0 || sfs.f_type != TMPFS_MAGIC)
                return sd_error_set(err, ENOTCONN,
                                    "instance '%s': rw/ is not a mounted tmpfs; refusing to write secrets to the file system underneath",
                                    id);
        return steal_fd(&fd);
}

static int instance_lock_as(int idfd, const char *id, int how, sd_error *err) {
        /* Serialises create/publish/destroy of one instance across threads
         * and processes: the agent may get Unmount while a rotation is
         * being published.  flock() locks belong to the open file
         * description, so two threads with their own fds exclude each other. */
        while (flock(idfd, how) < 0) {
                if (errno != EINTR)
                        return sd_error_set_errno(err, errno, "instance '%s': cannot lock", id);
        }
        /* A destroy that held the lock before us has removed the directory. */
        struct stat st;
        if (fstat(idfd, &st) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot stat", id);
        if (st.st_nlink == 0)
                return sd_error_set(err, ENOENT, "instance '%s' does not exist (destroyed meanwhile)", id);
        return 0;
}

static int instance_lock(int idfd, const char *id, sd_error *err) {
        return instance_lock_as(idfd, id, LOCK_EX, err);
}

/* ---- wiping ------------------------------------------------------------ */

/* Overwrite a regular file with zeros.  tmpfs rewrites the same pages in
 * place, so the pages the unlink then frees hold no plaintext; a process
 * that still has the file open (a container reading across a rotation)
 * reads zeros, never a stale secret.  A file with other hard links is
 * left alone: its content lives on elsewhere and may not be ours. */
static int file_zero_at(int dirfd, const char *name) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
                return 0;
        off_t off = 0;
        while (off < st.st_size) {
                size_t chunk = sizeof(zeros);
                if ((off_t) chunk > st.st_size - off)
                        chunk = (size_t) (st.st_size - off);
                ssize_t n = pwrite(fd, zeros, chunk, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += n;
        }
        return 0;
}

static int tree_wipe(int dirfd, unsigned depth);

/* Zero (regular files), empty (directories) and remove dirfd/name, never
 * following a symlink and never descending into another mount. */
static int entry_wipe(int dirfd, const char *name, unsigned depth) {
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;

        if (S_ISDIR(st.st_mode)) {
                int r = is_mount_root_at(dirfd, name);
                if (r < 0)
                        return r;
                if (r > 0)
                        return -EBUSY;
                _cleanup_close_ int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return errno == ENOENT ? 0 : -errno;
                r = tree_wipe(sub, depth + 1);
                if (r < 0)
                        return r;
                if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        }
        if (S_ISREG(st.st_mode)) {
                int r = file_zero_at(dirfd, name);
                if (r < 0)
                        return r;
        }
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* Wipe everything below dirfd (not dirfd itself).  Returns the first error
 * but carries on, so one stubborn entry does not keep the rest alive. */
static int tree_wipe(int dirfd, unsigned depth) {
        if (depth > WIPE_DEPTH_MAX)
                return -ELOOP;
        /* A fresh open file description: a dup would share (and move) the
         * caller's directory offset. */
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_closedir_ DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                (void) close(fd);
                return -e;
        }
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0 && r == 0)
                                r = -errno;
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                int q = entry_wipe(dirfd, de->d_name, depth);
                if (q < 0 && r == 0)
                        r = q;
        }
        return r;
}

/* ---- create ------------------------------------------------------------ */

/* Undo log for create: whatever was done is undone in reverse when the
 * scope ends without `done` set. */
struct create_progress {
        int rootfd, idfd;            /* borrowed */
        const char *id;
        const char *rw_path, *ro_path;
        bool made_id, made_rw, made_ro, mounted_rw, mounted_ro, done;
};

static void create_progress_undo(struct create_progress *p) {
        if (p->done)
                return;
        int saved = errno;
        if (p->mounted_ro)
                (void) umount2(p->ro_path, MNT_DETACH | UMOUNT_NOFOLLOW);
        if (p->mounted_rw)
                (void) umount2(p->rw_path, MNT_DETACH | UMOUNT_NOFOLLOW);
        if (p->made_ro)
                (void) unlinkat(p->idfd, "ro", AT_REMOVEDIR);
        if (p->made_rw)
                (void) unlinkat(p->idfd, "rw", AT_REMOVEDIR);
        if (p->made_id)
                (void) unlinkat(p->rootfd, p->id, AT_REMOVEDIR);
        errno = saved;
}

/* The kernel explains a refused fsconfig() on the context fd
 * ("e tmpfs: Bad value for 'size'"); fetch that line if there is one. */
static const char *fs_context_reason(int fsfd, char *buf, size_t size, int code) {
        ssize_t n = read(fsfd, buf, size - 1);
        if (n > 2 && buf[1] == ' ') {
                buf[n] = '\0';
                buf[strcspn(buf, "\n")] = '\0';
                return buf + 2;
        }
        return strerror(code);
}

static int fs_set_string(int fsfd, const char *key, const char *value, const char *id, sd_error *err) {
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, key, value, 0) >= 0)
                return 0;
        int e = errno;
        char reason[256];
        return sd_error_set(err, e, "instance '%s': tmpfs refused %s=%s: %s", id, key, value,
                            fs_context_reason(fsfd, reason, sizeof(reason), e));
}

/* A configured, not yet attached tmpfs (the new mount API: every option is
 * set on the detached mount, so it is never visible half-configured). */
static int tmpfs_make(const char *id, const struct sd_tmpfs_params *params, sd_error *err) {
        _cleanup_close_ int fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot open a tmpfs context", id);

        char size[32], inodes[32], reason[256];
        (void) snprintf(size, sizeof(size), "%" PRIu64, params->size_bytes);
        (void) snprintf(inodes, sizeof(inodes), "%" PRIu64, params->nr_inodes);

        int r = fs_set_string(fsfd, "source", MOUNT_SOURCE, id, err);
        if (r >= 0)
                r = fs_set_string(fsfd, "size", size, id, err);
        if (r >= 0)
                r = fs_set_string(fsfd, "nr_inodes", inodes, id, err);
        if (r >= 0)
                r = fs_set_string(fsfd, "mode", "0755", id, err);
        if (r < 0)
                return r;

        /* noswap (Linux 6.4+) keeps tmpfs pages out of swap.  Older kernels
         * refuse the unknown option with EINVAL; there the host must have no
         * swap or the unit must set MemorySwapMax=0 (docs/tmpfs.md). */
        if (fsconfig(fsfd, FSCONFIG_SET_FLAG, "noswap", NULL, 0) < 0) {
                if (errno != EINVAL)
                        return sd_error_set_errno(err, errno, "instance '%s': tmpfs option noswap", id);
                (void) fs_context_reason(fsfd, reason, sizeof(reason), EINVAL);
        }

        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
                int e = errno;
                return sd_error_set(err, e, "instance '%s': cannot create the tmpfs: %s", id,
                                    fs_context_reason(fsfd, reason, sizeof(reason), e));
        }
        int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (mfd < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot mount the tmpfs", id);
        return mfd;
}

static int mount_make_private(int mfd) {
        struct mount_attr attr = { .propagation = MS_PRIVATE };
        return mount_setattr(mfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ? -errno : 0;
}

/* Absolute rw/ and ro/ paths of instance id (either output may be NULL).
 * The root is canonicalised because mountinfo shows canonical paths
 * (/var/run/x appears as /run/x).  0 or -errno (-ENOENT: no root). */
static int instance_paths(const char *root, const char *id, char **rw_out, char **ro_out) {
        _cleanup_free_ char *root_canonical = realpath(root, NULL);
        if (!root_canonical)
                return -errno;
        _cleanup_free_ char *rw_path = rw_out ? path_join3(root_canonical, id, "rw") : NULL;
        _cleanup_free_ char *ro_path = ro_out ? path_join3(root_canonical, id, "ro") : NULL;
        if ((rw_out && !rw_path) || (ro_out && !ro_path))
                return -ENOMEM;
        if (rw_out)
                *rw_out = steal_pointer(&rw_path);
        if (ro_out)
                *ro_out = steal_pointer(&ro_path);
        return 0;
}

int sd_tmpfs_instance_create(const char *root, const char *id, const struct sd_tmpfs_params *params,
                             char **ro_path_out, sd_error *err) {
        int r = instance_id_validate(id, err);
        if (r < 0)
                return r;
        if (!params)
                return sd_error_set(err, EINVAL, "instance '%s': no parameters", id);
        /* tmpfs reads 0 as "unlimited": a container could fill host memory. */
        if (params->size_bytes == 0 || params->nr_inodes == 0)
                return sd_error_set(err, EINVAL, "instance '%s': size and nr_inodes caps must be non-zero (0 means unlimited to tmpfs)",
                                    id);

        _cleanup_close_ int rootfd = root_open(root, true, err);
        if (rootfd < 0)
                return rootfd;
        _cleanup_free_ char *rw_path = NULL, *ro_path = NULL;
        r = instance_paths(root, id, &rw_path, &ro_path);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "instance '%s': out of memory", id);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance root '%s': cannot resolve", root);

        if (mkdirat(rootfd, id, 0700) < 0) {
                if (errno == EEXIST)
                        return sd_error_set(err, EEXIST, "instance '%s' already exists", id);
                return sd_error_set_errno(err, errno, "instance '%s': cannot create its directory", id);
        }
        _cleanup_close_ int idfd = -1;
        _cleanup_(create_progress_undo) struct create_progress progress = {
                .rootfd = rootfd, .idfd = -1, .id = id,
                .rw_path = rw_path, .ro_path = ro_path, .made_id = true,
        };

        idfd = instance_open(rootfd, id, err);
        if (idfd < 0)
                return idfd;
        progress.idfd = idfd;
        r = instance_lock(idfd, id, err);
        if (r < 0)
                return r;

        if (mkdirat(idfd, "rw", 0700) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot create rw/", id);
        progress.made_rw = true;
        if (mkdirat(idfd, "ro", 0700) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot create ro/", id);
        progress.made_ro = true;

        /* O_PATH fds name the mount points: move_mount() attaches onto the
         * very directories just made, with no path walk and so no symlink
         * to follow. */
        _cleanup_close_ int rw_target = openat(idfd, "rw", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int ro_target = openat(idfd, "ro", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (rw_target < 0 || ro_target < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot open its mount points", id);

        _cleanup_close_ int mfd = tmpfs_make(id, params, err);
        if (mfd < 0)
                return mfd;

        /* The read-only view is cloned from the detached tmpfs and made
         * read-only BEFORE it is attached.  With the classic
         * mount(MS_BIND) + mount(MS_REMOUNT|MS_BIND|MS_RDONLY) pair, the
         * bind is attached writable first, and if root sits on a shared
         * mount its copies in peer mount namespaces (e.g. dockerd's, when
         * the agent runs in a container with rshared propagation) are
         * created writable and stay writable: a remount does not
         * propagate.  Attaching an already read-only mount gives
         * read-only copies everywhere. */
        _cleanup_close_ int ro_tree = open_tree(mfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (ro_tree < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot clone the tmpfs for ro/", id);
        struct mount_attr ro_attr = {
                .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        };
        if (mount_setattr(ro_tree, "", AT_EMPTY_PATH, &ro_attr, sizeof(ro_attr)) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot make ro/ read-only", id);

        if (move_mount(mfd, "", rw_target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot attach the tmpfs at rw/", id);
        progress.mounted_rw = true;
        if (move_mount(ro_tree, "", ro_target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': cannot attach the read-only view at ro/", id);
        progress.mounted_ro = true;

        /* Under a shared parent both mounts joined fresh peer groups when
         * attached.  Private leaves: no mount made in another namespace
         * can propagate into the tree dockerd binds into containers (and
         * shadow a secret there), and none of ours propagates out. */
        r = mount_make_private(mfd);
        if (r >= 0)
                r = mount_make_private(ro_tree);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot make its mounts private", id);

        _cleanup_free_ char *out = strdup(ro_path);
        if (!out)
                return sd_error_set(err, ENOMEM, "instance '%s': out of memory", id);
        progress.done = true;
        *ro_path_out = steal_pointer(&out);
        return 0;
}

/* ---- publish ----------------------------------------------------------- */

/* -ENOSPC naming the instance, the entry and the cap that ran out.  Called
 * before the partial generation is removed, so statvfs sees the full state. */
static int space_error(sd_error *err, int rwfd, const char *id, const char *what, const char *name) {
        struct statvfs sv;
        if (fstatvfs(rwfd, &sv) < 0)
                return sd_error_set(err, ENOSPC, "instance '%s': %s '%s' does not fit in the tmpfs", id, what, name);
        unsigned long long size_cap = (unsigned long long) sv.f_blocks * sv.f_frsize;
        unsigned long long inode_cap = (unsigned long long) sv.f_files;
        if (sv.f_ffree == 0)
                return sd_error_set(err, ENOSPC,
                                    "instance '%s': %s '%s' does not fit: the tmpfs inode cap (nr_inodes=%llu) is used up",
                                    id, what, name, inode_cap);
        return sd_error_set(err, ENOSPC,
                            "instance '%s': %s '%s' does not fit: the tmpfs size cap (size=%llu bytes) is used up; an update needs room for the old and the new generation at once",
                            id, what, name, size_cap);
}

static int publish_error(sd_error *err, int code, int rwfd, const char *id, const char *what,
                         const char *name, const char *action) {
        code = code < 0 ? -code : code;
        if (code == ENOSPC || code == EDQUOT)
                return space_error(err, rwfd, id, what, name);
        return sd_error_set_errno(err, code, "instance '%s': %s '%s': cannot %s", id, what, name, action);
}

static int data_link_generation(int rwfd, uint64_t *generation_out) {
        char target[GENERATION_NAME_SIZE + 1];
        ssize_t n = readlinkat(rwfd, DATA_LINK, target, sizeof(target));
        if (n < 0) {
                if (errno == ENOENT) {
                        *generation_out = 0;
                        return 0;
                }
                /* EINVAL: ..data exists but is not a symlink. */
                return errno == EINVAL ? -EBADMSG : -errno;
        }
        if ((size_t) n >= sizeof(target))
                return -EBADMSG;
        target[n] = '\0';
        return generation_parse(target, generation_out);
}

/* Set once sendfile(2) was refused (a seccomp filter without it): not
 * tried again, so a filter that logs refusals logs one. */
static atomic_bool sendfile_refused;

/* The bytes of a file copied from another instance: see struct
 * sd_tmpfs_file.  sendfile(2) keeps them inside the kernel; where it is
 * refused they pass through one locked buffer, zeroed before it is
 * freed. */
/* The locked buffer of one publish's copies, allocated at the first copy
 * that needs it: one guarded allocation, not one per file. */
struct copy_buffer {
        unsigned char *data;
};
#define COPY_BUFFER_SIZE ((size_t) 64 << 10)

static void copy_buffer_free(struct copy_buffer *b) {
        sodium_free(b->data);
        b->data = NULL;
}

static int file_copy_bytes(int rootfd, int fd, const struct sd_tmpfs_file *file, struct copy_buffer *buffer) {
        _cleanup_close_ int idfd = openat(rootfd, file->source_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (idfd < 0)
                return errno == ENOENT ? -ENOENT : -errno;
        sd_error ignored = { 0 };
        int r = instance_lock_as(idfd, file->source_id, LOCK_SH, &ignored);
        if (r < 0)
                return r;
        _cleanup_close_ int rwfd = rw_open_mounted(idfd, file->source_id, &ignored);
        if (rwfd < 0)
                return -ENOENT;
        uint64_t generation = 0;
        r = data_link_generation(rwfd, &generation);
        if (r < 0)
                return r == -EBADMSG ? -ESTALE : r;
        if (generation != file->source_generation)
                return -ESTALE;
        char generation_dir[GENERATION_NAME_SIZE];
        generation_name(generation, generation_dir);
        _cleanup_close_ int genfd = openat(rwfd, generation_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (genfd < 0)
                return -ENOENT;
        _cleanup_close_ int in = openat(genfd, file->source_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (in < 0)
                return errno == ELOOP ? -EBADMSG : -ENOENT;
        struct stat st;
        if (fstat(in, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != file->source_len)
                return -EBADMSG;
        size_t left = file->source_len;
        while (left > 0 && !atomic_load(&sendfile_refused)) {
                ssize_t n = sendfile(fd, in, NULL, left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EPERM || errno == ENOSYS || errno == EINVAL) && left == file->source_len) {
                        atomic_store(&sendfile_refused, true);
                        break;
                }
                if (n <= 0)
                        return n < 0 ? -errno : -EBADMSG;
                left -= (size_t) n;
        }
        if (left == 0)
                return 0;
        if (!buffer->data) {
                buffer->data = sodium_malloc(COPY_BUFFER_SIZE);
                if (!buffer->data)
                        return -ENOMEM;
        }
        r = 0;
        while (left > 0 && r == 0) {
                ssize_t n = read(in, buffer->data, left < COPY_BUFFER_SIZE ? left : COPY_BUFFER_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        r = n < 0 ? -errno : -EBADMSG;
                else {
                        r = sd_write_all(fd, buffer->data, (size_t) n);
                        left -= (size_t) n;
                }
        }
        /* The next copy overwrites it; nothing of this one outlives the
         * publish either way (sodium_free zeroes). */
        sodium_memzero(buffer->data, COPY_BUFFER_SIZE);
        return r;
}

/* chown_files: the files go to params->uid/gid, who are not the agent
 * (asked once per publish, not per file: two system calls each). */
static int file_write(int rootfd, int genfd, const struct sd_tmpfs_file *file, const struct sd_tmpfs_params *params,
                      bool chown_files, struct copy_buffer *buffer) {
        /* 0600 and exclusive until complete; the final mode and owner are
         * applied to the open fd, so no path is ever re-resolved. */
        _cleanup_close_ int fd = openat(genfd, file->name,
                                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        int r = file->value ? sd_write_all(fd, file->value->data, file->value->len)
                            : file_copy_bytes(rootfd, fd, file, buffer);
        if (r < 0) {
                /* Nothing half-written stays behind. */
                (void) unlinkat(genfd, file->name, 0);
                return r;
        }
        /* No fsync: tmpfs has no backing store. */
        if (fchmod(fd, params->mode) < 0)
                return -errno;
        /* The container user may own the file, which would let it chmod the
         * file writable, but only through a writable mount: it only ever
         * sees the read-only one. */
        if (chown_files && fchown(fd, params->uid, params->gid) < 0)
                return -errno;
        return 0;
}

static bool file_names_contain(const struct sd_tmpfs_file *files, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(files[i].name, name) == 0)
                        return true;
        return false;
}

/* 0 if the visible link already points where it should, 1 if absent, 2 if
 * something else (a foreign symlink or a file) has the name. */
static int name_link_state(int rwfd, const char *name) {
        char target[NAME_LINK_TARGET_SIZE];
        ssize_t n = readlinkat(rwfd, name, target, sizeof(target));
        if (n < 0)
                return errno == ENOENT ? 1 : 2;
        if ((size_t) n == sizeof(target))
                return 2;
        target[n] = '\0';
        return strncmp(target, DATA_LINK_PREFIX, strlen(DATA_LINK_PREFIX)) == 0 &&
                       strcmp(target + strlen(DATA_LINK_PREFIX), name) == 0 ? 0 : 2;
}

/* Rollback log for publish: before the ..data rename nothing a reader can
 * reach has changed except new, still dangling name links, so undoing
 * restores the previous generation exactly. */
struct publish_progress {
        int rwfd;                     /* borrowed */
        const char *generation_dir;
        const struct sd_tmpfs_file *files;
        bool *link_created;           /* per file: a new name link was made */
        size_t n_files;
        bool made_dir, made_data_tmp, committed;
};

static void publish_progress_undo(struct publish_progress *p) {
        if (p->committed)
                return;
        int saved = errno;
        for (size_t i = 0; p->link_created && i < p->n_files; i++)
                if (p->link_created[i])
                        (void) unlinkat(p->rwfd, p->files[i].name, 0);
        if (p->made_data_tmp)
                (void) unlinkat(p->rwfd, DATA_LINK_TMP, 0);
        if (p->made_dir)
                (void) entry_wipe(p->rwfd, p->generation_dir, 0);
        errno = saved;
}

static int rw_list(int rwfd, DIR **out) {
        int fd = openat(rwfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                (void) close(fd);
                return -e;
        }
        *out = d;
        return 0;
}

/* Before writing a new generation: remove every generation directory but
 * the live one (keep_dir; NULL when none is known).  That is the one before
 * it, kept intact by the previous publish for readers still inside it, and
 * leftovers of a crashed publish (with its staging links).  So at most two
 * generations exist at once, which is what the 2x sizing reserves.  The
 * same pass tells whether a visible name will have to go after the switch
 * (*sweep_out): a rotation of one file usually keeps every name, and then
 * the second scan is skipped. */
static int generations_prune(int rwfd, const char *keep_dir, const struct sd_tmpfs_file *files, size_t n_files,
                             bool *sweep_out, const char *id, sd_error *err) {
        _cleanup_closedir_ DIR *d = NULL;
        int r = rw_list(rwfd, &d);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot list rw/", id);
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return sd_error_set_errno(err, errno, "instance '%s': cannot list rw/", id);
                        return 0;
                }
                if (de->d_name[0] != '.') {
                        if (!file_names_contain(files, n_files, de->d_name))
                                *sweep_out = true;
                        continue;
                }
                if (strcmp(de->d_name, DATA_LINK_TMP) == 0 || strcmp(de->d_name, NAME_LINK_TMP) == 0) {
                        (void) unlinkat(rwfd, de->d_name, 0);
                        continue;
                }
                if (strncmp(de->d_name, GENERATION_PREFIX, strlen(GENERATION_PREFIX)) != 0 ||
                    (keep_dir && strcmp(de->d_name, keep_dir) == 0))
                        continue;
                r = entry_wipe(rwfd, de->d_name, 0);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "instance '%s': cannot remove the old generation %s", id,
                                                  de->d_name);
        }
}

/* After the switch: remove names no longer published, both the visible
 * link and the file in the previous generation (prev_dir, NULL if none).
 * The previous generation itself stays until the next publish, so a reader
 * that resolved ..data just before the switch still reads a complete set;
 * only a name that is gone for good is wiped at once (a deleted secret must
 * not stay readable under ..g<N>/ for a whole rotation). */
static int publish_sweep(int rwfd, const char *live_dir, const char *prev_dir, const struct sd_tmpfs_file *files,
                         size_t n_files, const char *id, sd_error *err) {
        _cleanup_closedir_ DIR *d = NULL;
        int r = rw_list(rwfd, &d);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot list rw/", id);
        _cleanup_close_ int prevfd = -1;
        if (prev_dir)
                prevfd = openat(rwfd, prev_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0 && r == 0)
                                r = sd_error_set_errno(err, errno, "instance '%s': cannot list rw/", id);
                        break;
                }
                const char *name = de->d_name;
                int q = 0;
                if (name[0] != '.') {
                        if (!file_names_contain(files, n_files, name)) {
                                q = entry_wipe(rwfd, name, 0);
                                if (q == 0 && prevfd >= 0)
                                        q = entry_wipe(prevfd, name, 0);
                        }
                } else if (strncmp(name, GENERATION_PREFIX, strlen(GENERATION_PREFIX)) == 0 &&
                           strcmp(name, live_dir) != 0 && (!prev_dir || strcmp(name, prev_dir) != 0)) {
                        q = entry_wipe(rwfd, name, 0);
                }
                if (q < 0 && r == 0)
                        r = sd_error_set_errno(err, -q,
                                               "instance '%s': generation %s is live, but removing the old entry '%s' failed",
                                               id, live_dir + strlen(GENERATION_PREFIX), name);
        }
        return r;
}

/* Carry an unchanged file into the new generation: a hard link to the
 * current generation's inode.  No plaintext passes through memory, it costs
 * neither space nor an inode (so an update of one file in a large volume
 * fits beside the rest), and the inode already has its mode and owner.
 * Wiping stays correct: a file is zeroed only when its last link goes. */
static int file_carry(int curfd, int genfd, const char *name) {
        struct stat st;
        if (fstatat(curfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        return linkat(curfd, name, genfd, name, 0) < 0 ? -errno : 0;
}

static int publish_generation(const char *root, const char *id, const struct sd_tmpfs_params *params,
                              const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                              bool carry, sd_error *err) {
        int r = instance_id_validate(id, err);
        if (r < 0)
                return r;
        if (!params || (n_files > 0 && !files))
                return sd_error_set(err, EINVAL, "instance '%s': no parameters or files", id);
        if (params->mode & ~(mode_t) 0777)
                return sd_error_set(err, EINVAL, "instance '%s': file mode %04o has set-id or sticky bits", id,
                                    (unsigned) params->mode);
        if (generation == 0)
                return sd_error_set(err, EINVAL, "instance '%s': generation 0 is reserved for \"nothing published\"", id);
        for (size_t i = 0; i < n_files; i++) {
                const char *name = files[i].name;
                r = sd_name_validate("file name", name, name ? strlen(name) : 0, err);
                if (r < 0)
                        return sd_error_prefix(err, r, "instance '%s'", id);
                bool copied = !files[i].value && files[i].source_id;
                if (copied && (instance_id_validate(files[i].source_id, NULL) < 0 || !files[i].source_name ||
                               strcmp(files[i].source_id, id) == 0))
                        return sd_error_set(err, EINVAL, "instance '%s': file '%s' has a bad source", id, name);
                if ((!files[i].value && !carry && !copied) ||
                    (files[i].value && !files[i].value->data && files[i].value->len > 0))
                        return sd_error_set(err, EINVAL, "instance '%s': file '%s' has no value", id, name);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(files[j].name, name) == 0)
                                return sd_error_set(err, EINVAL, "instance '%s': file name '%s' given twice", id, name);
        }

        _cleanup_close_ int rootfd = root_open(root, false, err);
        if (rootfd < 0)
                return rootfd;
        _cleanup_close_ int idfd = instance_open(rootfd, id, err);
        if (idfd < 0)
                return idfd;
        r = instance_lock(idfd, id, err);
        if (r < 0)
                return r;
        _cleanup_close_ int rwfd = rw_open_mounted(idfd, id, err);
        if (rwfd < 0)
                return rwfd;

        /* A ..data that is not our symlink to a generation (planted, or
         * damaged) is replaced by the rename below, never followed; the
         * current generation is then unknown, so any new one is accepted. */
        uint64_t current = 0;
        r = data_link_generation(rwfd, &current);
        if (r < 0 && r != -EBADMSG)
                return sd_error_set_errno(err, -r, "instance '%s': cannot read %s", id, DATA_LINK);
        if (r >= 0 && generation <= current)
                return sd_error_set(err, ESTALE, "instance '%s': generation %" PRIu64 " is not newer than the current %" PRIu64,
                                    id, generation, current);

        char generation_dir[GENERATION_NAME_SIZE], current_dir[GENERATION_NAME_SIZE];
        generation_name(generation, generation_dir);
        bool have_current = r >= 0 && current > 0;
        if (have_current)
                generation_name(current, current_dir);

        _cleanup_close_ int curfd = -1;
        for (size_t i = 0; carry && i < n_files; i++) {
                if (files[i].value || files[i].source_id)
                        continue;
                if (curfd < 0 && have_current)
                        curfd = openat(rwfd, current_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (curfd < 0)
                        return sd_error_set(err, ENOENT,
                                            "instance '%s': file '%s' is to be kept but there is no current generation to keep it from",
                                            id, files[i].name);
        }

        _cleanup_free_ bool *link_created = calloc(n_files ? n_files : 1, sizeof(bool));
        if (!link_created)
                return sd_error_set(err, ENOMEM, "instance '%s': out of memory", id);

        /* Leftovers of a publish that crashed before its switch, and the
         * generation before the current one. */
        bool sweep = false;
        r = generations_prune(rwfd, have_current ? current_dir : NULL, files, n_files, &sweep, id, err);
        if (r < 0)
                return r;

        _cleanup_(publish_progress_undo) struct publish_progress progress = {
                .rwfd = rwfd, .generation_dir = generation_dir, .files = files,
                .link_created = link_created, .n_files = n_files,
        };

        /* 0700 while being filled: a container can see the directory
         * appear (ls -a) but cannot look into a half-written generation. */
        if (mkdirat(rwfd, generation_dir, 0700) < 0)
                return publish_error(err, errno, rwfd, id, "generation directory", generation_dir, "create");
        progress.made_dir = true;
        _cleanup_close_ int genfd = openat(rwfd, generation_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (genfd < 0)
                return publish_error(err, errno, rwfd, id, "generation directory", generation_dir, "open");
        _cleanup_(copy_buffer_free) struct copy_buffer buffer = { 0 };
        bool chown_files = params->uid != geteuid() || params->gid != getegid();

        for (size_t i = 0; i < n_files; i++) {
                if (files[i].value || files[i].source_id) {
                        r = file_write(rootfd, genfd, &files[i], params, chown_files, &buffer);
                        if (files[i].source_id && (r == -ESTALE || r == -ENOENT || r == -EBADMSG))
                                return sd_error_set(err, -r,
                                                    "instance '%s': file '%s' cannot be copied from instance '%s': %s",
                                                    id, files[i].name, files[i].source_id,
                                                    r == -ESTALE ? "it changed meanwhile" : strerror(-r));
                        if (r < 0)
                                return publish_error(err, r, rwfd, id, "file", files[i].name, "write");
                        continue;
                }
                r = file_carry(curfd, genfd, files[i].name);
                if (r == -ENOENT || r == -EBADMSG)
                        return sd_error_set(err, ENOENT,
                                            "instance '%s': file '%s' is to be kept but generation %" PRIu64 " has no such file",
                                            id, files[i].name, current);
                if (r < 0)
                        return publish_error(err, r, rwfd, id, "file", files[i].name, "keep");
        }
        /* Root-owned and not writable by the container user, but
         * traversable so the files' own modes decide who reads them. */
        if (fchmod(genfd, 0755) < 0)
                return publish_error(err, errno, rwfd, id, "generation directory", generation_dir, "chmod");

        if (symlinkat(generation_dir, rwfd, DATA_LINK_TMP) < 0)
                return publish_error(err, errno, rwfd, id, "link", DATA_LINK_TMP, "create");
        progress.made_data_tmp = true;

        /* Name links go through ..data, so they never change for a name
         * that stays; new names are linked before the switch (dangling,
         * so ENOENT, until it) because creating a link needs an inode and
         * may fail while rollback is still possible. */
        for (size_t i = 0; i < n_files; i++) {
                const char *name = files[i].name;
                int state = name_link_state(rwfd, name);
                if (state == 0)
                        continue;
                char target[NAME_LINK_TARGET_SIZE];
                (void) snprintf(target, sizeof(target), DATA_LINK_PREFIX "%s", name);
                if (state == 1) {
                        if (symlinkat(target, rwfd, name) < 0)
                                return publish_error(err, errno, rwfd, id, "link", name, "create");
                        link_created[i] = true;
                        continue;
                }
                /* Something foreign holds the name: rename(2) replaces the
                 * entry itself and never follows it. */
                (void) unlinkat(rwfd, NAME_LINK_TMP, 0);
                if (symlinkat(target, rwfd, NAME_LINK_TMP) < 0)
                        return publish_error(err, errno, rwfd, id, "link", name, "create");
                if (renameat(rwfd, NAME_LINK_TMP, rwfd, name) < 0) {
                        int e = errno;
                        (void) unlinkat(rwfd, NAME_LINK_TMP, 0);
                        return publish_error(err, e, rwfd, id, "link", name, "replace");
                }
        }

        /* The switch: one rename(2), atomic for every reader. */
        if (renameat(rwfd, DATA_LINK_TMP, rwfd, DATA_LINK) < 0)
                return publish_error(err, errno, rwfd, id, "link", DATA_LINK, "replace");
        progress.committed = true;

        if (!sweep)
                return 0;
        return publish_sweep(rwfd, generation_dir, have_current ? current_dir : NULL, files, n_files, id, err);
}

int sd_tmpfs_instance_publish(const char *root, const char *id, const struct sd_tmpfs_params *params,
                              const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                              sd_error *err) {
        return publish_generation(root, id, params, files, n_files, generation, false, err);
}

int sd_tmpfs_instance_update(const char *root, const char *id, const struct sd_tmpfs_params *params,
                             const struct sd_tmpfs_file *files, size_t n_files, uint64_t generation,
                             sd_error *err) {
        return publish_generation(root, id, params, files, n_files, generation, true, err);
}

/* ---- destroy ----------------------------------------------------------- */

/* Unmount whatever is stacked on idfd/name.  The path string is walked by
 * the kernel, but root was checked (ours, not group/other-writable, no
 * symlink), root/<id> is 0700 and UMOUNT_NOFOLLOW covers the last part. */
static int unmount_all(int idfd, const char *name, const char *path) {
        for (unsigned tries = 0;; tries++) {
                int r = is_mount_root_at(idfd, name);
                if (r == -ENOENT)
                        return 0;
                if (r <= 0)
                        return r;
                if (tries >= UNMOUNT_TRIES_MAX)
                        return -EBUSY;
                if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
                        return -errno;
        }
}

int sd_tmpfs_instance_destroy(const char *root, const char *id, sd_error *err) {
        int r = instance_id_validate(id, err);
        if (r < 0)
                return r;
        _cleanup_close_ int rootfd = root_open(root, false, err);
        if (rootfd < 0)
                return rootfd == -ENOENT ? sd_error_set(err, ENOENT, "instance '%s' does not exist (no root '%s')", id, root)
                                         : rootfd;

        _cleanup_close_ int idfd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (idfd < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "instance '%s' does not exist", id);
                if (errno != ENOTDIR && errno != ELOOP)
                        return sd_error_set_errno(err, errno, "instance '%s': cannot open", id);
                /* Not a directory (a planted symlink): remove the entry
                 * itself; unlinkat never touches what it points to. */
                if (unlinkat(rootfd, id, 0) < 0 && errno != ENOENT)
                        return sd_error_set_errno(err, errno, "instance '%s': cannot remove the non-directory entry", id);
                return 0;
        }
        r = instance_lock(idfd, id, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *rw_path = NULL, *ro_path = NULL;
        r = instance_paths(root, id, &rw_path, &ro_path);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "instance '%s': out of memory", id);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance root '%s': cannot resolve", root);

        /* Wipe through rw/ while it is mounted.  A running container keeps
         * its bind of the tmpfs alive after we unmount ours, so the files
         * must be zeroed and gone before, or the plaintext would outlive
         * the instance for as long as the container does.  If this fails,
         * nothing is unmounted: a retry can still reach the files. */
        _cleanup_close_ int rwfd = openat(idfd, "rw", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct statfs sfs;
        if (rwfd >= 0 && is_mount_root_at(rwfd, "") == 1 && fstatfs(rwfd, &sfs) >= 0 && sfs.f_type == TMPFS_MAGIC) {
                r = tree_wipe(rwfd, 0);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "instance '%s': cannot wipe its files; left mounted", id);
        }

        /* ro/ first: it is what dockerd was given. */
        r = unmount_all(idfd, "ro", ro_path);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot unmount ro/", id);
        r = unmount_all(idfd, "rw", rw_path);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot unmount rw/", id);

        /* Removes rw/ and ro/ and anything else found, including files
         * that ended up in the directories underneath the mounts. */
        r = tree_wipe(idfd, 0);
        if (r < 0)
                return sd_error_set_errno(err, -r, "instance '%s': cannot remove its directories", id);
        if (unlinkat(rootfd, id, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return sd_error_set_errno(err, errno, "instance '%s': cannot remove its directory", id);
        return 0;
}

/* ---- queries ----------------------------------------------------------- */

int sd_tmpfs_instance_ro_path(const char *root, const char *id, char **ro_path_out) {
        int r = instance_id_validate(id, NULL);
        if (r < 0)
                return r;
        if (!root || !*root)
                return -EINVAL;
        return instance_paths(root, id, NULL, ro_path_out);
}

void sd_tmpfs_ids_free(char **ids, size_t n) {
        for (size_t i = 0; ids && i < n; i++)
                free(ids[i]);
        free(ids);
}

static int ids_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

struct id_list {
        char **ids;
        size_t n, cap;
};

static void id_list_done(struct id_list *l) {
        sd_tmpfs_ids_free(l->ids, l->n);
}

int sd_tmpfs_instance_list(const char *root, char ***ids_out, size_t *n_out, sd_error *err) {
        _cleanup_close_ int rootfd = root_open(root, false, err);
        if (rootfd == -ENOENT) {
                /* Nothing was ever created (fresh boot): nothing to adopt. */
                sd_error_clear(err);
                *ids_out = NULL;
                *n_out = 0;
                return 0;
        }
        if (rootfd < 0)
                return rootfd;

        int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "instance root '%s': cannot list", root);
        _cleanup_closedir_ DIR *d = fdopendir(fd);
        if (!d) {
                int e = errno;
                (void) close(fd);
                return sd_error_set_errno(err, e, "instance root '%s': cannot list", root);
        }

        _cleanup_(id_list_done) struct id_list list = { 0 };
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return sd_error_set_errno(err, errno, "instance root '%s': cannot list", root);
                        break;
                }
                struct stat st;
                if (instance_id_validate(de->d_name, NULL) < 0 ||
                    fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (list.n == list.cap) {
                        size_t cap = list.cap ? list.cap * 2 : 8;
                        char **bigger = realloc(list.ids, cap * sizeof(char *));
                        if (!bigger)
                                return sd_error_set(err, ENOMEM, "instance root '%s': out of memory", root);
                        list.ids = bigger;
                        list.cap = cap;
                }
                list.ids[list.n] = strdup(de->d_name);
                if (!list.ids[list.n])
                        return sd_error_set(err, ENOMEM, "instance root '%s': out of memory", root);
                list.n++;
        }
        if (list.n > 0)
                qsort(list.ids, list.n, sizeof(char *), ids_compare);
        *n_out = list.n;
        list.n = 0;
        *ids_out = steal_pointer(&list.ids);
        return 0;
}

/* mountinfo escapes ' ', '\t', '\n' and '\\' in paths as \ooo. */
static void mountinfo_unescape(char *s) {
        char *w = s;
        for (const char *p = s; *p;) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
                    p[3] <= '7') {
                        *w++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
                        p += 4;
                } else {
                        *w++ = *p++;
                }
        }
        *w = '\0';
}

/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
 * SUPEROPTIONS" (proc(5)).  false for a line that does not parse. */
static bool mountinfo_parse(char *line, struct sd_mount_entry *out) {
        char *save = NULL, *tok, *field[6] = { 0 };
        size_t i = 0;
        while (i < 6 && (tok = strtok_r(i == 0 ? line : NULL, " \n", &save)))
                field[i++] = tok;
        unsigned maj, min;
        if (i < 6 || sscanf(field[2], "%u:%u", &maj, &min) != 2)
                return false;
        const char *fstype = "";
        while ((tok = strtok_r(NULL, " \n", &save)))
                if (strcmp(tok, "-") == 0) {
                        tok = strtok_r(NULL, " \n", &save);
                        fstype = tok ? tok : "";
                        break;
                }
        mountinfo_unescape(field[3]);
        mountinfo_unescape(field[4]);
        *out = (struct sd_mount_entry) {
                .dev = makedev(maj, min),
                .root = field[3],
                .mount_point = field[4],
                .options = field[5],
                .fstype = fstype,
        };
        return true;
}

int sd_mount_table_foreach(pid_t pid, sd_mount_entry_fn fn, void *userdata) {
        char path[64];
        if (pid > 0)
                (void) snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int) pid);
        else
                (void) snprintf(path, sizeof(path), "/proc/self/mountinfo");
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        errno = 0;
        while (getline(&line, &cap, f) >= 0) {
                struct sd_mount_entry e;
                if (!mountinfo_parse(line, &e))
                        continue;
                int r = fn(userdata, &e);
                if (r != 0)
                        return r < 0 ? r : 0;
                errno = 0;
        }
        if (ferror(f))
                return errno ? -errno : -EIO;
        return 0;
}

static bool option_present(const char *options, const char *option) {
        size_t len = strlen(option);
        for (const char *p = options; p && *p;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t) (comma - p) : strlen(p);
                if (n == len && strncmp(p, option, len) == 0)
                        return true;
                p = comma ? comma + 1 : NULL;
        }
        return false;
}

struct mount_seen {
        bool found, tmpfs, read_only;
        dev_t dev;
};

struct instance_mounts {
        const char *rw_path, *ro_path;
        struct mount_seen rw, ro;
};

/* The last line for a mount point is the mount on top, the one a path
 * lookup reaches. */
static int instance_mount_seen(void *userdata, const struct sd_mount_entry *e) {
        struct instance_mounts *im = userdata;
        struct mount_seen *seen = strcmp(e->mount_point, im->rw_path) == 0   ? &im->rw
                                  : strcmp(e->mount_point, im->ro_path) == 0 ? &im->ro
                                                                             : NULL;
        if (seen)
                *seen = (struct mount_seen) {
                        .found = true,
                        .tmpfs = strcmp(e->fstype, "tmpfs") == 0 && strcmp(e->root, "/") == 0,
                        .read_only = option_present(e->options, "ro"),
                        .dev = e->dev,
                };
        return 0;
}

int sd_tmpfs_instance_is_mounted(const char *root, const char *id) {
        int r = instance_id_validate(id, NULL);
        if (r < 0)
                return r;
        if (!root || !*root)
                return -EINVAL;
        _cleanup_free_ char *rw_path = NULL, *ro_path = NULL;
        r = instance_paths(root, id, &rw_path, &ro_path);
        if (r < 0)
                return r == -ENOENT ? 0 : r;

        struct instance_mounts im = { .rw_path = rw_path, .ro_path = ro_path };
        r = sd_mount_table_foreach(0, instance_mount_seen, &im);
        if (r < 0)
                return r;
        return im.rw.found && im.rw.tmpfs && !im.rw.read_only && im.ro.found && im.ro.tmpfs && im.ro.read_only &&
                       im.rw.dev == im.ro.dev ? 1 : 0;
}

/* The rw/ directory of instance id, mounted, after taking the instance's
 * lock (lock: LOCK_SH or LOCK_EX; 0 none), which lives as long as
 * *idfd_out. */
static int instance_rw_open(const char *root, const char *id, int lock, int *idfd_out, sd_error *err) {
        int r = instance_id_validate(id, err);
        if (r < 0)
                return r;
        _cleanup_close_ int rootfd = root_open(root, false, err);
        if (rootfd < 0)
                return rootfd;
        _cleanup_close_ int idfd = instance_open(rootfd, id, err);
        if (idfd < 0)
                return idfd;
        if (lock) {
                r = instance_lock_as(idfd, id, lock, err);
                if (r < 0)
                        return r;
        }
        int rwfd = rw_open_mounted(idfd, id, err);
        if (rwfd >= 0)
                *idfd_out = steal_fd(&idfd);
        return rwfd;
}

int sd_tmpfs_instance_generation(const char *root, const char *id, uint64_t *generation_out) {
        _cleanup_close_ int idfd = -1;
        _cleanup_close_ int rwfd = instance_rw_open(root, id, 0, &idfd, NULL);
        if (rwfd < 0)
                return rwfd;
        uint64_t generation;
        int r = data_link_generation(rwfd, &generation);
        if (r < 0)
                return r;
        *generation_out = generation;
        return 0;
}

int sd_tmpfs_instance_used_bytes(const char *root, const char *id, uint64_t *bytes_out) {
        _cleanup_close_ int idfd = -1;
        _cleanup_close_ int rwfd = instance_rw_open(root, id, 0, &idfd, NULL);
        if (rwfd < 0)
                return rwfd;
        struct statvfs sv;
        if (fstatvfs(rwfd, &sv) < 0)
                return -errno;
        *bytes_out = (uint64_t) (sv.f_blocks - sv.f_bfree) * sv.f_frsize;
        return 0;
}

int sd_tmpfs_instance_file_equals(const char *root, const char *id, const char *name, uint64_t generation,
                                  const struct sd_secret *value, sd_error *err) {
        _cleanup_close_ int idfd = -1;
        _cleanup_close_ int rwfd = instance_rw_open(root, id, LOCK_SH, &idfd, err);
        if (rwfd < 0)
                return rwfd;
        uint64_t current = 0;
        int r = data_link_generation(rwfd, &current);
        if (r < 0 || current != generation)
                return sd_error_set(err, ESTALE, "instance '%s' is not at generation %" PRIu64, id, generation);
        char generation_dir[GENERATION_NAME_SIZE];
        generation_name(generation, generation_dir);
        _cleanup_close_ int genfd = openat(rwfd, generation_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (genfd < 0)
                return sd_error_set_errno(err, errno, "instance '%s': generation %" PRIu64, id, generation);
        _cleanup_close_ int fd = openat(genfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return sd_error_set(err, errno == ELOOP ? EBADMSG : errno, "instance '%s': file '%s': %s", id, name,
                                    strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "instance '%s': file '%s'", id, name);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EBADMSG, "instance '%s': '%s' is not a regular file", id, name);
        if ((uint64_t) st.st_size != value->len)
                return 0;
        /* One byte more than expected shows a file that grew meanwhile. */
        unsigned char *held = sodium_malloc(value->len + 1);
        if (!held)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t got = 0;
        r = 0;
        while (got < value->len + 1) {
                ssize_t n = read(fd, held + got, value->len + 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = sd_error_set_errno(err, errno, "instance '%s': file '%s': read failed", id, name);
                        break;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        if (r == 0)
                r = got == value->len && sodium_memcmp(held, value->data, value->len) == 0 ? 1 : 0;
        /* sodium_free() zeroes it. */
        sodium_free(held);
        return r;
}
