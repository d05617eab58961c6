/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-mount tmpfs instances, on real mounts.  Needs root (CAP_SYS_ADMIN);
 * every test skips cleanly without it.  Each test gets a fresh mkdtemp
 * directory; .fini unmounts everything below it (even after a failed
 * assertion) and removes it, unless SECRETD_TEST_KEEP=1.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secretd/cleanup.h"
#include "secretd/secret.h"
#include "secretd/tmpfs.h"

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char base[256] = "/tmp/secretd-tmpfs-XXXXXX";
static char root[512];

/* ---- fixture ----------------------------------------------------------- */

struct mount_line {
        bool found;
        char dev[32], options[256], optional[256], fstype[64], super[512];
};

static void unescape(char *s) {
        char *w = s;
        for (char *p = s; *p;) {
                if (p[0] == '\\' && p[1] && p[2] && p[3]) {
                        *w++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
                        p += 4;
                } else {
                        *w++ = *p++;
                }
        }
        *w = '\0';
}

/* Calls fn for every mount point (unescaped) with its whole parsed line. */
static void mountinfo_each(void (*fn)(const char *point, const struct mount_line *m, void *u), void *u) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        cr_assert_not_null(f);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) >= 0) {
                struct mount_line m = { .found = true };
                char *save = NULL, *field[6], *t;
                size_t n = 0;
                while (n < 6 && (t = strtok_r(n == 0 ? line : NULL, " \n", &save)))
                        field[n++] = t;
                if (n < 6)
                        continue;
                snprintf(m.dev, sizeof(m.dev), "%s", field[2]);
                snprintf(m.options, sizeof(m.options), "%s", field[5]);
                while ((t = strtok_r(NULL, " \n", &save)) && strcmp(t, "-") != 0) {
                        strncat(m.optional, t, sizeof(m.optional) - strlen(m.optional) - 2);
                        strcat(m.optional, " ");
                }
                if ((t = strtok_r(NULL, " \n", &save)))
                        snprintf(m.fstype, sizeof(m.fstype), "%s", t);
                (void) strtok_r(NULL, " \n", &save);
                if ((t = strtok_r(NULL, " \n", &save)))
                        snprintf(m.super, sizeof(m.super), "%s", t);
                unescape(field[4]);
                fn(field[4], &m, u);
        }
        free(line);
        fclose(f);
}

struct find {
        const char *path;
        struct mount_line m;
};

static void find_cb(const char *point, const struct mount_line *m, void *u) {
        struct find *fd = u;
        if (strcmp(point, fd->path) == 0)
                fd->m = *m; /* last one wins: the mount on top */
}

static struct mount_line mount_at(const char *path) {
        struct find f = { .path = path };
        mountinfo_each(find_cb, &f);
        return f.m;
}

struct below {
        const char *prefix;
        char points[64][PATH_MAX];
        size_t n;
};

static void below_cb(const char *point, const struct mount_line *m, void *u) {
        struct below *b = u;
        size_t len = strlen(b->prefix);
        if (strncmp(point, b->prefix, len) == 0 && (point[len] == '\0' || point[len] == '/') && b->n < 64)
                snprintf(b->points[b->n++], PATH_MAX, "%s", point);
}

static size_t mounts_below(const char *prefix) {
        struct below b = { .prefix = prefix };
        mountinfo_each(below_cb, &b);
        return b.n;
}

static bool has_option(const char *options, const char *opt) {
        size_t len = strlen(opt);
        for (const char *p = options; p;) {
                if (strncmp(p, opt, len) == 0 && (p[len] == ',' || p[len] == '\0'))
                        return true;
                p = strchr(p, ',');
                if (p)
                        p++;
        }
        return false;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(base));
        snprintf(root, sizeof(root), "%s/instances", base);
}

static void teardown(void) {
        /* Unmount the newest first, until nothing below base is mounted. */
        for (int round = 0; round < 32; round++) {
                struct below b = { .prefix = base };
                mountinfo_each(below_cb, &b);
                if (b.n == 0)
                        break;
                for (size_t i = b.n; i-- > 0;)
                        (void) umount2(b.points[i], MNT_DETACH);
        }
        const char *keep = secure_getenv("SECRETD_TEST_KEEP");
        if (keep && strcmp(keep, "1") == 0) {
                cr_log_info("kept %s", base);
                return;
        }
        (void) nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(tmpfs, .init = setup, .fini = teardown);

/* First statement of every test.  A skipped test does not get its .fini
 * run, so the (still empty) temp dir is removed here. */
static void require_mounts(void) {
        if (geteuid() != 0) {
                (void) rmdir(base);
                cr_skip_test("needs root to mount tmpfs");
        }
        int fd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                (void) rmdir(base);
                cr_skip_test("mounting tmpfs is not permitted here: %s", strerror(e));
        }
        close(fd);
}

/* ---- helpers ----------------------------------------------------------- */

static const struct sd_tmpfs_params default_params = {
        .size_bytes = 1 << 20, .nr_inodes = 256, .uid = 1000, .gid = 1000, .mode = 0400,
};

static struct sd_secret *secret_of(const void *data, size_t len) {
        struct sd_secret *s = NULL;
        cr_assert_eq(sd_secret_new_from(data, len, &s), 0);
        return s;
}

static char *create_default(const char *id, const struct sd_tmpfs_params *params) {
        sd_error err = { 0 };
        char *ro = NULL;
        cr_assert_eq(sd_tmpfs_instance_create(root, id, params, &ro, &err), 0, "create: %s", err.message);
        cr_assert_not_null(ro);
        return ro;
}

static char *path_of(const char *a, const char *b) {
        char *p = NULL;
        cr_assert_geq(asprintf(&p, "%s/%s", a, b), 0);
        return p;
}

static char *instance_path(const char *id, const char *sub) {
        char *p = NULL;
        cr_assert_geq(asprintf(&p, "%s/%s/%s", root, id, sub), 0);
        return p;
}

/* Whole file through a path that may be a symlink; -errno on failure. */
static ssize_t read_path(const char *path, char *buf, size_t size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, size - len);
                if (n < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == size)
                        break;
        }
        close(fd);
        return (ssize_t) len;
}

static void assert_content(const char *dir, const char *name, const void *want, size_t want_len) {
        _cleanup_free_ char *p = path_of(dir, name);
        static char buf[256 * 1024];
        ssize_t n = read_path(p, buf, sizeof(buf));
        cr_assert_eq(n, (ssize_t) want_len, "%s: read %zd bytes, want %zu", p, n, want_len);
        cr_assert(memcmp(buf, want, want_len) == 0, "%s: content differs", p);
}

static size_t count_entries_with_prefix(const char *dir, const char *prefix) {
        DIR *d = opendir(dir);
        cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && strcmp(de->d_name, ".") != 0 &&
                    strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

static double seconds_since(const struct timespec *t0) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double) (t1.tv_sec - t0->tv_sec) + (double) (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- create ------------------------------------------------------------ */

Test(tmpfs, create_mounts_capped_tmpfs_and_read_only_view) {
        require_mounts();
        struct sd_tmpfs_params params = default_params;
        params.size_bytes = 3 << 20;
        params.nr_inodes = 77;
        _cleanup_free_ char *ro = create_default(ID, &params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        _cleanup_free_ char *ro_expected = instance_path(ID, "ro");
        cr_assert_str_eq(ro, ro_expected);

        struct stat st;
        cr_assert_eq(stat(root, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700, "root created 0700, is %o", st.st_mode & 07777);
        _cleanup_free_ char *iddir = path_of(root, ID);
        cr_assert_eq(stat(iddir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700);
        cr_assert_eq(stat(ro, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755, "tmpfs root mode=0755 so the container user can traverse");

        struct mount_line mrw = mount_at(rw), mro = mount_at(ro);
        cr_assert(mrw.found, "no mount at %s", rw);
        cr_assert_str_eq(mrw.fstype, "tmpfs");
        /* The kernel shows size in KiB, rounded up to pages. */
        cr_assert(has_option(mrw.super, "size=3072k"), "super options: %s", mrw.super);
        cr_assert(has_option(mrw.super, "nr_inodes=77"), "super options: %s", mrw.super);
        cr_assert(has_option(mrw.super, "mode=755"), "super options: %s", mrw.super);
        for (const char *const *o = (const char *const[]) { "rw", "nosuid", "nodev", "noexec", NULL }; *o; o++)
                cr_assert(has_option(mrw.options, *o), "rw mount lacks %s: %s", *o, mrw.options);
        cr_assert(mro.found, "no mount at %s", ro);
        cr_assert_str_eq(mro.fstype, "tmpfs");
        cr_assert_str_eq(mro.dev, mrw.dev, "ro/ is a view of the same tmpfs");
        for (const char *const *o = (const char *const[]) { "ro", "nosuid", "nodev", "noexec", NULL }; *o; o++)
                cr_assert(has_option(mro.options, *o), "ro mount lacks %s: %s", *o, mro.options);
        cr_log_info("tmpfs super options here: %s (noswap %s)", mrw.super,
                    has_option(mrw.super, "noswap") ? "active" : "not supported by this kernel");

        _cleanup_free_ char *via_ro = path_of(ro, "x");
        cr_assert_lt(open(via_ro, O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
        cr_assert_eq(errno, EROFS, "writing through ro/: %s", strerror(errno));
        cr_assert_lt(mkdir(via_ro, 0700), 0);
        cr_assert_eq(errno, EROFS);
        _cleanup_free_ char *via_rw = path_of(rw, "x");
        int fd = open(via_rw, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "writing through rw/: %s", strerror(errno));
        close(fd);
        cr_assert_eq(access(via_ro, F_OK), 0, "a file made through rw/ is seen through ro/");

        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, ID), 1);
        uint64_t used_before = 0, used_after = 0;
        cr_assert_eq(sd_tmpfs_instance_used_bytes(root, ID, &used_before), 0);
        _cleanup_free_ char *big = path_of(rw, "big");
        int bfd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(bfd, 0);
        static const char page[4096] = { 1 };
        for (int i = 0; i < 4; i++)
                cr_assert_eq(write(bfd, page, sizeof(page)), (ssize_t) sizeof(page));
        close(bfd);
        cr_assert_eq(sd_tmpfs_instance_used_bytes(root, ID, &used_after), 0);
        cr_assert_geq(used_after, used_before + 4 * sizeof(page), "16 KiB written: %llu -> %llu bytes in use",
                      (unsigned long long) used_before, (unsigned long long) used_after);
        cr_assert_eq(unlink(big), 0);
        cr_assert_eq(sd_tmpfs_instance_used_bytes(root, "..", &used_after), -EINVAL, "a bad id");
        cr_assert_eq(sd_tmpfs_instance_used_bytes(root, "nosuchinstance", &used_after), -ENOENT, "no such instance");
        _cleanup_free_ char *ro_again = NULL;
        cr_assert_eq(sd_tmpfs_instance_ro_path(root, ID, &ro_again), 0);
        cr_assert_str_eq(ro_again, ro);
        uint64_t generation = 99;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &generation), 0);
        cr_assert_eq(generation, 0);

        sd_error err = { 0 };
        char *ro2 = NULL;
        cr_assert_eq(sd_tmpfs_instance_create(root, ID, &params, &ro2, &err), -EEXIST);
        cr_assert_null(ro2, "output untouched on failure");
        cr_assert(strstr(err.message, ID), "%s", err.message);
}

Test(tmpfs, create_refuses_zero_caps_and_leaves_nothing) {
        require_mounts();
        struct sd_tmpfs_params params = default_params;
        params.size_bytes = 0;
        sd_error err = { 0 };
        char *ro = NULL;
        cr_assert_eq(sd_tmpfs_instance_create(root, ID, &params, &ro, &err), -EINVAL);
        cr_assert(strstr(err.message, "unlimited"), "%s", err.message);
        params = default_params;
        params.nr_inodes = 0;
        cr_assert_eq(sd_tmpfs_instance_create(root, ID, &params, &ro, &err), -EINVAL);

        /* A size tmpfs rejects fails after the directories were made; they
         * must be gone again. */
        params = default_params;
        params.size_bytes = UINT64_MAX;
        int r = sd_tmpfs_instance_create(root, ID, &params, &ro, &err);
        if (r == 0) {
                cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
                free(ro);
        } else {
                cr_log_info("size=UINT64_MAX refused: %s", err.message);
                cr_assert_null(ro);
        }
        _cleanup_free_ char *iddir = path_of(root, ID);
        cr_assert_lt(access(iddir, F_OK), 0, "nothing left after a failed create");
        cr_assert_eq(mounts_below(base), 0);
}

/* The classic mount(MS_BIND) + remount(MS_RDONLY) leaves the copies in
 * peer mount namespaces writable; this fails for that implementation. */
Test(tmpfs, ro_view_is_read_only_and_private_even_under_a_shared_root) {
        require_mounts();
        cr_assert_eq(mount(base, base, NULL, MS_BIND, NULL), 0, "%s", strerror(errno));
        cr_assert_eq(mount(NULL, base, NULL, MS_SHARED, NULL), 0, "%s", strerror(errno));

        int ready[2], go[2];
        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        _cleanup_free_ char *ro_file = instance_path(ID, "ro/x");
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* A peer mount namespace (as dockerd's would be when the agent
                 * runs in its own namespace with shared propagation). */
                if (unshare(CLONE_NEWNS) < 0)
                        _exit(10);
                char c = 'r';
                if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(11);
                int fd = open(ro_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd >= 0)
                        _exit(1);       /* wrote through the peer's copy of ro/ */
                _exit(errno == EROFS ? 0 : errno == ENOENT ? 2 : 3);
        }
        char c;
        cr_assert_eq(read(ready[0], &c, 1), 1);
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        cr_assert_eq(write(go[1], "g", 1), 1);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status));
        cr_assert_neq(WEXITSTATUS(status), 1, "the peer namespace's copy of ro/ is writable");
        cr_assert_neq(WEXITSTATUS(status), 2, "ro/ did not propagate to the peer namespace");
        cr_assert_eq(WEXITSTATUS(status), 0, "child status %d", WEXITSTATUS(status));

        struct mount_line mrw = mount_at(rw), mro = mount_at(ro);
        cr_assert(mrw.found && mro.found);
        cr_assert_null(strstr(mrw.optional, "shared:"), "rw/ is private: '%s'", mrw.optional);
        cr_assert_null(strstr(mro.optional, "shared:"), "ro/ is private: '%s'", mro.optional);
        cr_assert_null(strstr(mro.optional, "master:"), "ro/ is private: '%s'", mro.optional);
        for (int i = 0; i < 2; i++) {
                close(ready[i]);
                close(go[i]);
        }
}

/* dockerd bind-mounts the returned path into the container (rprivate, and
 * without :ro unless asked); the container must still not write, and must
 * see each update at once. */
Test(tmpfs, container_bind_is_read_only_and_sees_updates) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_secret_ struct sd_secret *v1 = secret_of("one", 3);
        _cleanup_secret_ struct sd_secret *v2 = secret_of("two!", 4);
        struct sd_tmpfs_file f1[] = { { .name = "db_password", .value = v1 } }, f2[] = { { .name = "db_password", .value = v2 } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, f1, 1, 1, &err), 0, "%s", err.message);

        _cleanup_free_ char *container = path_of(base, "container-run-secrets");
        cr_assert_eq(mkdir(container, 0755), 0);
        cr_assert_eq(mount(ro, container, NULL, MS_BIND | MS_REC, NULL), 0, "%s", strerror(errno));
        cr_assert_eq(mount(NULL, container, NULL, MS_PRIVATE | MS_REC, NULL), 0, "%s", strerror(errno));

        struct mount_line m = mount_at(container);
        cr_assert(m.found && has_option(m.options, "ro"), "a bind of the ro view is read-only: %s", m.options);
        _cleanup_free_ char *x = path_of(container, "x");
        cr_assert_lt(open(x, O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
        cr_assert_eq(errno, EROFS);
        _cleanup_free_ char *pw = path_of(container, "db_password");
        cr_assert_lt(chmod(pw, 0666), 0, "the owner cannot chmod through a read-only mount");
        cr_assert_eq(errno, EROFS);

        assert_content(container, "db_password", "one", 3);
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, f2, 1, 2, &err), 0, "%s", err.message);
        assert_content(container, "db_password", "two!", 4);
        cr_assert_eq(umount2(container, MNT_DETACH), 0);
}

/* ---- publish ----------------------------------------------------------- */

Test(tmpfs, publish_three_files_with_mode_and_owner) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        static const char crt[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        static const unsigned char key[] = { 0x00, 0x01, 0xff, 0x00, 0x7f, '\n', 0x00 };
        static const char pw[] = "hunter2";
        _cleanup_secret_ struct sd_secret *s1 = secret_of(crt, sizeof(crt) - 1);
        _cleanup_secret_ struct sd_secret *s2 = secret_of(key, sizeof(key));
        _cleanup_secret_ struct sd_secret *s3 = secret_of(pw, sizeof(pw) - 1);
        struct sd_tmpfs_file files[] = { { .name = "tls.crt", .value = s1 }, { .name = "tls.key", .value = s2 }, { .name = "db_password", .value = s3 } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, files, 3, 1, &err), 0, "%s", err.message);

        assert_content(ro, "tls.crt", crt, sizeof(crt) - 1);
        assert_content(ro, "tls.key", key, sizeof(key));
        assert_content(ro, "db_password", pw, sizeof(pw) - 1);
        for (size_t i = 0; i < 3; i++) {
                _cleanup_free_ char *p = path_of(ro, files[i].name);
                struct stat st;
                cr_assert_eq(stat(p, &st), 0);
                cr_assert(S_ISREG(st.st_mode));
                cr_assert_eq(st.st_mode & 07777, 0400, "%s: mode %o", p, st.st_mode & 07777);
                cr_assert_eq(st.st_uid, 1000);
                cr_assert_eq(st.st_gid, 1000);
                cr_assert_eq(lstat(p, &st), 0);
                cr_assert(S_ISLNK(st.st_mode), "%s is a symlink", p);
                char target[256];
                ssize_t n = readlink(p, target, sizeof(target) - 1);
                cr_assert_gt(n, 0);
                target[n] = '\0';
                char want[256];
                snprintf(want, sizeof(want), "..data/%s", files[i].name);
                cr_assert_str_eq(target, want);
        }
        _cleanup_free_ char *data = path_of(ro, "..data");
        struct stat st;
        cr_assert_eq(lstat(data, &st), 0);
        cr_assert(S_ISLNK(st.st_mode), "..data is a symlink");
        char target[64];
        ssize_t n = readlink(data, target, sizeof(target) - 1);
        cr_assert_gt(n, 0);
        target[n] = '\0';
        cr_assert_str_eq(target, "..g00000000000000000001");
        cr_assert_eq(stat(data, &st), 0);
        cr_assert(S_ISDIR(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0755, "generation dir traversable, not writable: %o", st.st_mode & 07777);
        cr_assert_eq(st.st_uid, 0, "generation dir stays root's");

        uint64_t generation = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &generation), 0);
        cr_assert_eq(generation, 1);
}

Test(tmpfs, publish_generation_two_changes_and_removes) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_secret_ struct sd_secret *a1 = secret_of("a-one", 5);
        _cleanup_secret_ struct sd_secret *a2 = secret_of("a-two-longer", 12);
        _cleanup_secret_ struct sd_secret *b = secret_of("bee", 3);
        _cleanup_secret_ struct sd_secret *c = secret_of("sea", 3);
        struct sd_tmpfs_file g1[] = { { .name = "a", .value = a1 }, { .name = "b", .value = b }, { .name = "c", .value = c } };
        struct sd_tmpfs_file g2[] = { { .name = "a", .value = a2 }, { .name = "b", .value = b } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 3, 1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g2, 2, 2, &err), 0, "%s", err.message);

        assert_content(ro, "a", "a-two-longer", 12);
        assert_content(ro, "b", "bee", 3);
        _cleanup_free_ char *pc = path_of(ro, "c");
        struct stat st;
        cr_assert_lt(lstat(pc, &st), 0, "removed name is gone");
        cr_assert_eq(errno, ENOENT);
        /* The previous generation stays for readers inside it, without
         * the removed name (a deleted secret is wiped at once). */
        _cleanup_free_ char *g1dir = path_of(ro, "..g00000000000000000001");
        assert_content(g1dir, "a", "a-one", 5);
        _cleanup_free_ char *g1c = path_of(g1dir, "c");
        cr_assert_lt(lstat(g1c, &st), 0, "removed name is wiped from the previous generation too");
        cr_assert_eq(count_entries_with_prefix(ro, "..g"), 2);
        cr_assert_eq(count_entries_with_prefix(ro, "..data_tmp"), 0);
        uint64_t generation = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &generation), 0);
        cr_assert_eq(generation, 2);

        /* Not newer: refused, nothing changes. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 3, 2, &err), -ESTALE);
        cr_assert(strstr(err.message, "not newer"), "%s", err.message);
        assert_content(ro, "a", "a-two-longer", 12);
        cr_assert_lt(lstat(pc, &st), 0);

        /* An empty set removes every name; generation 1 goes now. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, NULL, 0, 3, &err), 0, "%s", err.message);
        cr_assert_eq(count_entries_with_prefix(ro, "a"), 0);
        cr_assert_eq(count_entries_with_prefix(ro, "b"), 0);
        cr_assert_lt(lstat(g1dir, &st), 0, "the generation two publishes old is gone");
        cr_assert_eq(count_entries_with_prefix(ro, "..g"), 2, "at most two generations at once");
}

Test(tmpfs, old_generation_is_zeroed_for_readers_holding_it_open_two_publishes_later) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        char value[5000];
        memset(value, 'S', sizeof(value));
        _cleanup_secret_ struct sd_secret *v = secret_of(value, sizeof(value));
        _cleanup_secret_ struct sd_secret *w = secret_of("new", 3);
        _cleanup_secret_ struct sd_secret *x = secret_of("newer", 5);
        struct sd_tmpfs_file g1[] = { { .name = "token", .value = v } }, g2[] = { { .name = "token", .value = w } }, g3[] = { { .name = "token", .value = x } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 1, 1, &err), 0, "%s", err.message);
        _cleanup_free_ char *p = path_of(ro, "token");
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g2, 1, 2, &err), 0, "%s", err.message);

        char buf[sizeof(value)];
        cr_assert_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t) sizeof(buf));
        cr_assert(memcmp(buf, value, sizeof(value)) == 0, "one publish later the previous generation is intact");
        assert_content(ro, "token", "new", 3);

        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g3, 1, 3, &err), 0, "%s", err.message);
        cr_assert_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t) sizeof(buf), "the old inode keeps its size");
        for (size_t i = 0; i < sizeof(buf); i++)
                cr_assert_eq(buf[i], 0, "byte %zu of the old generation still holds plaintext", i);
        close(fd);
        assert_content(ro, "token", "newer", 5);
}

Test(tmpfs, update_keeps_unchanged_files_changes_others_and_removes_left_out) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        struct sd_tmpfs_params params = default_params;
        params.mode = 0440;
        _cleanup_secret_ struct sd_secret *a1 = secret_of("a-one", 5);
        _cleanup_secret_ struct sd_secret *a2 = secret_of("a-two", 5);
        _cleanup_secret_ struct sd_secret *b = secret_of("bee", 3);
        _cleanup_secret_ struct sd_secret *c = secret_of("sea", 3);
        struct sd_tmpfs_file g1[] = { { .name = "a", .value = a1 }, { .name = "b", .value = b }, { .name = "c", .value = c } };
        struct sd_tmpfs_file g2[] = { { .name = "a", .value = a2 }, { .name = "b", .value = NULL } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, g1, 3, 1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_update(root, ID, &params, g2, 2, 2, &err), 0, "%s", err.message);
        assert_content(ro, "a", "a-two", 5);
        assert_content(ro, "b", "bee", 3);
        _cleanup_free_ char *pb = path_of(ro, "b"), *pc = path_of(ro, "c");
        struct stat st;
        cr_assert_eq(stat(pb, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0440, "a kept file keeps its mode");
        cr_assert_lt(lstat(pc, &st), 0, "a left-out name is removed");

        /* Kept through several generations: still right after the one it
         * was first written in is wiped. */
        struct sd_tmpfs_file keep_all[] = { { .name = "a", .value = NULL }, { .name = "b", .value = NULL } };
        for (uint64_t g = 3; g <= 5; g++)
                cr_assert_eq(sd_tmpfs_instance_update(root, ID, &params, keep_all, 2, g, &err), 0, "%s", err.message);
        assert_content(ro, "a", "a-two", 5);
        assert_content(ro, "b", "bee", 3);
        cr_assert_eq(count_entries_with_prefix(ro, "..g"), 2);

        /* A name to keep that the current generation lacks: refused,
         * nothing changes. */
        struct sd_tmpfs_file missing[] = { { .name = "a", .value = a1 }, { .name = "zz", .value = NULL } };
        cr_assert_eq(sd_tmpfs_instance_update(root, ID, &params, missing, 2, 6, &err), -ENOENT);
        cr_assert(strstr(err.message, "'zz'"), "%s", err.message);
        assert_content(ro, "a", "a-two", 5);
        uint64_t generation = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &generation), 0);
        cr_assert_eq(generation, 5);

        /* publish itself still wants every value. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, keep_all, 2, 6, &err), -EINVAL);
}

Test(tmpfs, update_of_a_fresh_instance_has_nothing_to_keep) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        struct sd_tmpfs_file keep[] = { { .name = "a", .value = NULL } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_update(root, ID, &default_params, keep, 1, 1, &err), -ENOENT);
        cr_assert(strstr(err.message, "no current generation"), "%s", err.message);
        cr_assert_eq(count_entries_with_prefix(ro, ".."), 0, "nothing published");
}

Test(tmpfs, destroy_zeroes_files_shared_by_two_generations) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        char value[3000];
        memset(value, 'K', sizeof(value));
        _cleanup_secret_ struct sd_secret *k = secret_of(value, sizeof(value));
        _cleanup_secret_ struct sd_secret *c2 = secret_of("c2", 2);
        struct sd_tmpfs_file g1[] = { { .name = "cert", .value = c2 }, { .name = "key", .value = k } };
        struct sd_tmpfs_file g2[] = { { .name = "cert", .value = c2 }, { .name = "key", .value = NULL } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 2, 1, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_update(root, ID, &default_params, g2, 2, 2, &err), 0, "%s", err.message);
        _cleanup_free_ char *p = path_of(ro, "key");
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
        char buf[sizeof(value)];
        cr_assert_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t) sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                cr_assert_eq(buf[i], 0, "byte %zu of a kept (hard-linked) file survived destroy", i);
        close(fd);
}

Test(tmpfs, publish_refuses_bad_names_modes_and_duplicates) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_secret_ struct sd_secret *v = secret_of("v", 1);
        struct bad {
                const char *name;
                mode_t mode;
                uint64_t generation;
                const char *expect;
        } cases[] = {
                { "../x", 0400, 1, "file name" },
                { "..data", 0400, 1, "file name" },
                { "a/b", 0400, 1, "file name" },
                { "", 0400, 1, "file name" },
                { "ok", 04400, 1, "set-id" },
                { "ok", 0400, 0, "generation 0" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct sd_tmpfs_params params = default_params;
                params.mode = cases[i].mode;
                struct sd_tmpfs_file files[] = { { .name = cases[i].name, .value = v } };
                sd_error err = { 0 };
                cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, files, 1, cases[i].generation, &err),
                             -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(err.message, cases[i].expect), "case %zu: %s", i, err.message);
        }
        struct sd_tmpfs_file dup[] = { { .name = "x", .value = v }, { .name = "x", .value = v } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, dup, 2, 1, &err), -EINVAL);
        cr_assert(strstr(err.message, "twice"), "%s", err.message);
        cr_assert_eq(count_entries_with_prefix(ro, ".."), 0, "nothing published");
}

/* ---- atomicity --------------------------------------------------------- */

#define STAMP_FMT "generation %020" PRIu64 " %s\n"
#define LAST_GENERATION 301

struct reader_result {
        uint64_t consistent, mismatched, incomplete, superseded, changes, naive_mismatched;
};

static void stamp(char *buf, size_t size, uint64_t generation, const char *what) {
        memset(buf, '#', size);
        int n = snprintf(buf, size, STAMP_FMT, generation, what);
        buf[n] = '#';
}

/* 0 and the generation if buf holds a stamp, -1 if not (zeros: wiped). */
static int stamp_parse(const char *buf, size_t len, uint64_t *generation) {
        char copy[64];
        if (len < 40)
                return -1;
        memcpy(copy, buf, 40);
        copy[40] = '\0';
        if (sscanf(copy, "generation %" SCNu64, generation) != 1)
                return -1;
        return 0;
}

/* The generation a "..g<20 digits>" path (maybe " (deleted)") names. */
static uint64_t generation_of_path(const char *path) {
        const char *slash = strrchr(path, '/');
        uint64_t g = 0;
        if (!slash || sscanf(slash + 1, "..g%20" SCNu64, &g) != 1)
                return 0;
        return g;
}

static uint64_t generation_of_fd(int fd) {
        char proc[64], path[PATH_MAX];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, path, sizeof(path) - 1);
        if (n < 0)
                return 0;
        path[n] = '\0';
        char *deleted = strstr(path, " (deleted)");
        if (deleted)
                *deleted = '\0';
        return generation_of_path(path);
}

static int read_at(int dfd, const char *name, char *buf, size_t size, size_t *len) {
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size);
        int e = errno;
        close(fd);
        if (n < 0)
                return -e;
        *len = (size_t) n;
        return 0;
}

/* The application's view: it resolves ..data once (a directory fd) and
 * reads both files of a pair below it.  A pair that fails to read (a file
 * missing or zeroed) is fine only if its generation was superseded
 * meanwhile (then it is being wiped); if ..data still names it, the live
 * generation was incomplete, which must never happen. */
static void reader(const char *ro, int ready_fd, int result_fd) {
        struct reader_result res = { 0 };
        char data[PATH_MAX];
        snprintf(data, sizeof(data), "%s/..data", ro);
        int rofd = open(ro, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rofd < 0)
                _exit(20);
        uint64_t last = 0;
        bool told = false;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (last != LAST_GENERATION && seconds_since(&t0) < 60) {
                char cert[4096], key[4096];
                size_t cl = 0, kl = 0;
                uint64_t gc, gk;
                int dfd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0) {
                        res.superseded++;
                        continue;
                }
                uint64_t dir_generation = generation_of_fd(dfd);
                int r1 = read_at(dfd, "cert", cert, sizeof(cert), &cl);
                int r2 = read_at(dfd, "key", key, sizeof(key), &kl);
                close(dfd);
                if (r1 < 0 || r2 < 0 || stamp_parse(cert, cl, &gc) < 0 || stamp_parse(key, kl, &gk) < 0) {
                        char now[64];
                        ssize_t n = readlinkat(rofd, "..data", now, sizeof(now) - 1);
                        now[n > 0 ? n : 0] = '\0';
                        uint64_t live = 0;
                        (void) sscanf(now, "..g%20" SCNu64, &live);
                        if (live == dir_generation)
                                res.incomplete++;
                        else
                                res.superseded++;
                } else if (gc != gk || gc != dir_generation) {
                        res.mismatched++;
                } else {
                        res.consistent++;
                        if (gc != last)
                                res.changes++;
                        last = gc;
                        if (!told)
                                told = write(ready_fd, "r", 1) == 1;
                }
                /* The naive reader opens each visible name on its own; it
                 * can straddle a switch (docs/tmpfs.md). Counted, not judged. */
                if (read_at(rofd, "cert", cert, sizeof(cert), &cl) == 0 &&
                    read_at(rofd, "key", key, sizeof(key), &kl) == 0 && stamp_parse(cert, cl, &gc) == 0 &&
                    stamp_parse(key, kl, &gk) == 0 && gc != gk)
                        res.naive_mismatched++;
        }
        if (write(result_fd, &res, sizeof(res)) != (ssize_t) sizeof(res))
                _exit(21);
        _exit(0);
}

Test(tmpfs, readers_never_see_a_cert_from_one_generation_with_a_key_from_another, .timeout = 120) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        static char cert[3000], key[1700];
        sd_error err = { 0 };

        stamp(cert, sizeof(cert), 1, "cert");
        stamp(key, sizeof(key), 1, "key");
        {
                _cleanup_secret_ struct sd_secret *c = secret_of(cert, sizeof(cert));
                _cleanup_secret_ struct sd_secret *k = secret_of(key, sizeof(key));
                struct sd_tmpfs_file files[] = { { .name = "cert", .value = c }, { .name = "key", .value = k } };
                cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, files, 2, 1, &err), 0, "%s",
                             err.message);
        }

        int ready[2], result[2];
        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(result, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                reader(ro, ready[1], result[1]);
        char c;
        cr_assert_eq(read(ready[0], &c, 1), 1, "reader started");

        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (uint64_t g = 2; g <= LAST_GENERATION; g++) {
                stamp(cert, sizeof(cert), g, "cert");
                stamp(key, sizeof(key), g, "key");
                _cleanup_secret_ struct sd_secret *cs = secret_of(cert, sizeof(cert));
                _cleanup_secret_ struct sd_secret *ks = secret_of(key, sizeof(key));
                struct sd_tmpfs_file files[] = { { .name = "cert", .value = cs }, { .name = "key", .value = ks } };
                int r = sd_tmpfs_instance_publish(root, ID, &default_params, files, 2, g, &err);
                if (r < 0)
                        kill(pid, SIGKILL);
                cr_assert_eq(r, 0, "generation %" PRIu64 ": %s", g, err.message);
        }
        double elapsed = seconds_since(&t0);

        /* The reader stops on seeing the last generation (or after 60 s). */
        struct pollfd pfd = { .fd = result[0], .events = POLLIN };
        if (poll(&pfd, 1, 90 * 1000) != 1)
                kill(pid, SIGKILL);
        struct reader_result res = { 0 };
        cr_assert_eq(read(result[0], &res, sizeof(res)), (ssize_t) sizeof(res), "reader reported");
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        cr_log_info("atomicity: %d publishes in %.3f s (%.0f us each); reader: %" PRIu64 " consistent pairs, %" PRIu64
                    " generation changes seen, %" PRIu64 " mixed, %" PRIu64 " incomplete, %" PRIu64
                    " superseded while reading (missing or zeroed); naive per-name reads mixed %" PRIu64 " times",
                    LAST_GENERATION - 1, elapsed, elapsed * 1e6 / (LAST_GENERATION - 1), res.consistent, res.changes,
                    res.mismatched, res.incomplete, res.superseded, res.naive_mismatched);
        cr_assert_eq(res.mismatched, 0, "a cert and key of different generations were read together");
        cr_assert_eq(res.incomplete, 0, "the live generation lacked a file or held a partial one");
        cr_assert_gt(res.changes, 1, "the reader saw more than one generation");
        for (int i = 0; i < 2; i++) {
                close(ready[i]);
                close(result[i]);
        }
}

/* ---- capacity ---------------------------------------------------------- */

Test(tmpfs, over_the_size_cap_is_enospc_and_keeps_the_previous_generation) {
        require_mounts();
        struct sd_tmpfs_params params = default_params;
        params.size_bytes = 64 * 1024;
        _cleanup_free_ char *ro = create_default(ID, &params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        _cleanup_secret_ struct sd_secret *small = secret_of("still here", 10);
        struct sd_tmpfs_file g1[] = { { .name = "small", .value = small } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, g1, 1, 1, &err), 0, "%s", err.message);
        struct statvfs before, after;
        cr_assert_eq(statvfs(rw, &before), 0);

        _cleanup_secret_ struct sd_secret *big = NULL;
        cr_assert_eq(sd_secret_new(100 * 1024, &big), 0);
        memset(big->data, 'B', big->len);
        struct sd_tmpfs_file g2[] = { { .name = "small", .value = small }, { .name = "big", .value = big } };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, g2, 2, 2, &err), -ENOSPC, "%s", err.message);
        cr_log_info("size cap message: %s", err.message);
        cr_assert(strstr(err.message, ID), "names the instance: %s", err.message);
        cr_assert(strstr(err.message, "'big'"), "names the file: %s", err.message);
        cr_assert(strstr(err.message, "size=65536"), "names the cap: %s", err.message);

        assert_content(ro, "small", "still here", 10);
        _cleanup_free_ char *pbig = path_of(ro, "big");
        struct stat st;
        cr_assert_lt(lstat(pbig, &st), 0, "no link for the file that did not fit");
        cr_assert_eq(count_entries_with_prefix(ro, "..g"), 1, "partial generation removed");
        cr_assert_eq(count_entries_with_prefix(ro, "..data_tmp"), 0);
        uint64_t generation = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &generation), 0);
        cr_assert_eq(generation, 1);
        cr_assert_eq(statvfs(rw, &after), 0);
        cr_assert_eq(after.f_bfree, before.f_bfree, "space of the partial write returned");
        cr_assert_eq(after.f_ffree, before.f_ffree, "inodes returned");

        /* Still usable afterwards. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, g1, 1, 2, &err), 0, "%s", err.message);
}

Test(tmpfs, over_the_inode_cap_is_enospc_and_keeps_the_previous_generation) {
        require_mounts();
        struct sd_tmpfs_params params = default_params;
        params.nr_inodes = 16;
        _cleanup_free_ char *ro = create_default(ID, &params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        _cleanup_secret_ struct sd_secret *v = secret_of("x", 1);
        struct sd_tmpfs_file g1[] = { { .name = "one", .value = v } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, g1, 1, 1, &err), 0, "%s", err.message);
        struct statvfs before, after;
        cr_assert_eq(statvfs(rw, &before), 0);

        char names[40][16];
        struct sd_tmpfs_file many[40];
        for (size_t i = 0; i < 40; i++) {
                snprintf(names[i], sizeof(names[i]), "f%02zu", i);
                many[i] = (struct sd_tmpfs_file) { .name = names[i], .value = v };
        }
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &params, many, 40, 2, &err), -ENOSPC, "%s", err.message);
        cr_log_info("inode cap message: %s", err.message);
        cr_assert(strstr(err.message, ID), "%s", err.message);
        cr_assert(strstr(err.message, "nr_inodes=16"), "names the cap: %s", err.message);

        assert_content(ro, "one", "x", 1);
        cr_assert_eq(count_entries_with_prefix(ro, "f"), 0, "no names of the failed generation");
        cr_assert_eq(count_entries_with_prefix(ro, "..g"), 1);
        cr_assert_eq(statvfs(rw, &after), 0);
        cr_assert_eq(after.f_ffree, before.f_ffree, "inodes returned");
        cr_assert_eq(after.f_bfree, before.f_bfree, "space returned");

        /* How many files fit in 16 inodes with one generation live. */
        size_t fits = 0;
        for (size_t n = 1; n <= 40; n++) {
                if (sd_tmpfs_instance_publish(root, ID, &params, many, n, 2 + n, &err) < 0)
                        break;
                fits = n;
        }
        cr_log_info("nr_inodes=16 holds at most %zu files per update (2 inodes per file and generation, plus links)",
                    fits);
        cr_assert_gt(fits, 0);
}

/* ---- destroy ----------------------------------------------------------- */

Test(tmpfs, destroy_wipes_unmounts_and_removes) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_secret_ struct sd_secret *v = secret_of("plaintext", 9);
        struct sd_tmpfs_file files[] = { { .name = "db_password", .value = v } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, files, 1, 1, &err), 0, "%s", err.message);

        /* A running container keeps its bind (and an open file) past the
         * destroy: it must find neither names nor plaintext. */
        _cleanup_free_ char *container = path_of(base, "container");
        cr_assert_eq(mkdir(container, 0755), 0);
        cr_assert_eq(mount(ro, container, NULL, MS_BIND, NULL), 0);
        cr_assert_eq(mount(NULL, container, NULL, MS_PRIVATE, NULL), 0);
        _cleanup_free_ char *held = path_of(container, "db_password");
        int fd = open(held, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);

        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
        cr_assert_eq(mounts_below(root), 0, "no mount left below root");
        _cleanup_free_ char *iddir = path_of(root, ID);
        cr_assert_lt(access(iddir, F_OK), 0, "root/<id> is gone");
        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, ID), 0);

        char buf[9];
        cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 9);
        for (size_t i = 0; i < sizeof(buf); i++)
                cr_assert_eq(buf[i], 0, "an open file reads zeros after destroy");
        close(fd);
        cr_assert_eq(count_entries_with_prefix(container, ""), 0, "the container's view is empty");
        cr_assert_eq(umount2(container, MNT_DETACH), 0);

        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), -ENOENT);
        cr_assert(strstr(err.message, ID), "%s", err.message);
        char **ids = NULL;
        size_t n = 99;
        cr_assert_eq(sd_tmpfs_instance_list(root, &ids, &n, &err), 0);
        cr_assert_eq(n, 0);
        sd_tmpfs_ids_free(ids, n);
}

Test(tmpfs, destroy_finishes_half_torn_down_instances) {
        require_mounts();
        const char *which[] = { "ro", "rw", "both", "none" };
        for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
                char id[16];
                snprintf(id, sizeof(id), "half-%zu", i);
                _cleanup_free_ char *ro = NULL;
                if (strcmp(which[i], "none") == 0) {
                        /* A crash between mkdir and mount. */
                        cr_assert_eq(mkdir(root, 0700) == 0 || errno == EEXIST, 1);
                        _cleanup_free_ char *d = path_of(root, id);
                        cr_assert_eq(mkdir(d, 0700), 0);
                        _cleanup_free_ char *rw = instance_path(id, "rw");
                        cr_assert_eq(mkdir(rw, 0700), 0);
                } else {
                        ro = create_default(id, &default_params);
                        _cleanup_free_ char *rw = instance_path(id, "rw");
                        if (strcmp(which[i], "rw") != 0)
                                cr_assert_eq(umount2(ro, MNT_DETACH), 0);
                        if (strcmp(which[i], "ro") != 0)
                                cr_assert_eq(umount2(rw, MNT_DETACH), 0);
                        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, id), 0, "case %s", which[i]);
                }
                sd_error err = { 0 };
                cr_assert_eq(sd_tmpfs_instance_destroy(root, id, &err), 0, "case %s: %s", which[i], err.message);
                _cleanup_free_ char *d = path_of(root, id);
                cr_assert_lt(access(d, F_OK), 0, "case %s: directory left", which[i]);
        }
        cr_assert_eq(mounts_below(root), 0);
}

Test(tmpfs, publish_refuses_an_unmounted_instance) {
        require_mounts();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        cr_assert_eq(umount2(ro, MNT_DETACH), 0);
        cr_assert_eq(umount2(rw, MNT_DETACH), 0);
        _cleanup_secret_ struct sd_secret *v = secret_of("plaintext", 9);
        struct sd_tmpfs_file files[] = { { .name = "db_password", .value = v } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, files, 1, 1, &err), -ENOTCONN);
        cr_assert(strstr(err.message, "not a mounted tmpfs"), "%s", err.message);
        cr_assert_eq(count_entries_with_prefix(rw, ""), 0, "nothing written to the directory underneath");
        uint64_t g;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &g), -ENOTCONN);
}

/* ---- refusals ---------------------------------------------------------- */

Test(tmpfs, bad_ids_are_refused_everywhere) {
        require_mounts();
        char long_id[201];
        memset(long_id, 'a', 200);
        long_id[200] = '\0';
        const char *bad[] = { "../x", "a/b", "", ".x", long_id, "..", ".", "a b", "a\nb", "caf\xc3\xa9" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sd_error err = { 0 };
                char *ro = NULL;
                cr_assert_eq(sd_tmpfs_instance_create(root, bad[i], &default_params, &ro, &err), -EINVAL, "case %zu", i);
                cr_assert_null(ro);
                cr_assert(strstr(err.message, "instance id"), "case %zu: %s", i, err.message);
                cr_assert_null(strchr(err.message, '\n'), "one line");
                cr_assert_eq(sd_tmpfs_instance_publish(root, bad[i], &default_params, NULL, 0, 1, &err), -EINVAL);
                cr_assert_eq(sd_tmpfs_instance_destroy(root, bad[i], &err), -EINVAL);
                cr_assert_eq(sd_tmpfs_instance_ro_path(root, bad[i], &ro), -EINVAL);
                cr_assert_eq(sd_tmpfs_instance_is_mounted(root, bad[i]), -EINVAL);
        }
        cr_assert_lt(access(root, F_OK), 0, "a refused id creates nothing, not even the root");
        cr_assert_eq(mounts_below(base), 0);

        char max_id[129];
        memset(max_id, 'Z', 128);
        max_id[128] = '\0';
        _cleanup_free_ char *ro = create_default(max_id, &default_params);
        cr_assert(strstr(ro, max_id), "%s", ro);
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_destroy(root, max_id, &err), 0, "%s", err.message);
}

Test(tmpfs, unsafe_roots_are_refused) {
        require_mounts();
        _cleanup_free_ char *real = path_of(base, "real");
        cr_assert_eq(mkdir(real, 0700), 0);
        _cleanup_free_ char *link = path_of(base, "link");
        cr_assert_eq(symlink(real, link), 0);
        sd_error err = { 0 };
        char *ro = NULL;
        cr_assert_eq(sd_tmpfs_instance_create(link, ID, &default_params, &ro, &err), -ELOOP);
        cr_assert(strstr(err.message, "symbolic link"), "%s", err.message);

        _cleanup_free_ char *open_dir = path_of(base, "open");
        cr_assert_eq(mkdir(open_dir, 0700), 0);
        cr_assert_eq(chmod(open_dir, 0777), 0);
        cr_assert_eq(sd_tmpfs_instance_create(open_dir, ID, &default_params, &ro, &err), -EPERM);
        cr_assert(strstr(err.message, "writable by group or others"), "%s", err.message);
        cr_assert_eq(chmod(open_dir, 0720), 0);
        cr_assert_eq(sd_tmpfs_instance_create(open_dir, ID, &default_params, &ro, &err), -EPERM);

        _cleanup_free_ char *other = path_of(base, "other");
        cr_assert_eq(mkdir(other, 0700), 0);
        cr_assert_eq(chown(other, 1000, 1000), 0);
        cr_assert_eq(sd_tmpfs_instance_create(other, ID, &default_params, &ro, &err), -EPERM);
        cr_assert(strstr(err.message, "owned by uid 1000"), "%s", err.message);

        cr_assert_eq(count_entries_with_prefix(real, ""), 0);
        cr_assert_eq(mounts_below(base), 0);
        cr_assert_null(ro);
}

struct outside {
        char *dir, *sentinel;
};

static struct outside outside_make(void) {
        struct outside o = { path_of(base, "outside"), NULL };
        cr_assert_eq(mkdir(o.dir, 0755), 0);
        o.sentinel = path_of(o.dir, "sentinel");
        int fd = open(o.sentinel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "untouched", 9), 9);
        close(fd);
        return o;
}

static void outside_assert_untouched(const struct outside *o) {
        assert_content(o->dir, "sentinel", "untouched", 9);
        struct stat st;
        cr_assert_eq(stat(o->sentinel, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0644);
        cr_assert_eq(st.st_uid, 0);
        cr_assert_eq(count_entries_with_prefix(o->dir, ""), 1, "nothing created in the symlink's target");
        cr_assert_eq(mounts_below(o->dir), 0, "nothing mounted on the symlink's target");
        cr_assert_eq(stat(o->dir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755);
}

static void outside_free(struct outside *o) {
        free(o->dir);
        free(o->sentinel);
}

Test(tmpfs, planted_symlinks_below_root_are_never_followed) {
        require_mounts();
        _cleanup_(outside_free) struct outside out = outside_make();
        sd_error err = { 0 };
        char *ro = NULL;
        cr_assert_eq(mkdir(root, 0700), 0);

        /* root/<id>/rw planted as a symlink before create: create refuses
         * (the instance exists), destroy removes the link, not its target. */
        _cleanup_free_ char *iddir = path_of(root, "planted-rw");
        cr_assert_eq(mkdir(iddir, 0700), 0);
        _cleanup_free_ char *rw_link = instance_path("planted-rw", "rw");
        cr_assert_eq(symlink(out.dir, rw_link), 0);
        cr_assert_eq(sd_tmpfs_instance_create(root, "planted-rw", &default_params, &ro, &err), -EEXIST);
        _cleanup_secret_ struct sd_secret *v = secret_of("secret", 6);
        struct sd_tmpfs_file files[] = { { .name = "sentinel", .value = v } };
        cr_assert_eq(sd_tmpfs_instance_publish(root, "planted-rw", &default_params, files, 1, 1, &err), -ENOTCONN,
                     "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_destroy(root, "planted-rw", &err), 0, "%s", err.message);
        cr_assert_lt(access(iddir, F_OK), 0);
        outside_assert_untouched(&out);

        /* root/<id> itself a symlink. */
        _cleanup_free_ char *id_link = path_of(root, "planted-id");
        cr_assert_eq(symlink(out.dir, id_link), 0);
        cr_assert_eq(sd_tmpfs_instance_create(root, "planted-id", &default_params, &ro, &err), -EEXIST);
        cr_assert_eq(sd_tmpfs_instance_publish(root, "planted-id", &default_params, files, 1, 1, &err), -ENOTDIR);
        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, "planted-id"), 0);
        cr_assert_eq(sd_tmpfs_instance_destroy(root, "planted-id", &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_lt(lstat(id_link, &st), 0, "the link itself is removed");
        outside_assert_untouched(&out);
        cr_assert_null(ro);
}

Test(tmpfs, planted_data_and_name_links_are_replaced_not_followed) {
        require_mounts();
        _cleanup_(outside_free) struct outside out = outside_make();
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_free_ char *rw = instance_path(ID, "rw");
        _cleanup_secret_ struct sd_secret *v1 = secret_of("one", 3);
        _cleanup_secret_ struct sd_secret *v2 = secret_of("two", 3);
        struct sd_tmpfs_file g1[] = { { .name = "sentinel", .value = v1 } }, g2[] = { { .name = "sentinel", .value = v2 }, { .name = "other", .value = v2 } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 1, 1, &err), 0, "%s", err.message);

        /* Replace ..data and the name links with links to the outside:
         * absolute, and relative climbing out of the tmpfs. */
        _cleanup_free_ char *data = path_of(rw, "..data");
        _cleanup_free_ char *name = path_of(rw, "sentinel");
        _cleanup_free_ char *other = path_of(rw, "other");
        _cleanup_free_ char *tmp = path_of(rw, "..data_tmp");
        cr_assert_eq(unlink(data), 0);
        cr_assert_eq(symlink(out.dir, data), 0);
        cr_assert_eq(unlink(name), 0);
        cr_assert_eq(symlink(out.sentinel, name), 0);
        cr_assert_eq(symlink("../../../outside/sentinel", other), 0);
        cr_assert_eq(symlink(out.dir, tmp), 0);
        uint64_t g = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &g), -EBADMSG, "a foreign ..data is reported");

        /* publish replaces them (rename never follows) and writes nothing
         * outside. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g2, 2, 2, &err), 0, "%s", err.message);
        outside_assert_untouched(&out);
        assert_content(ro, "sentinel", "two", 3);
        assert_content(ro, "other", "two", 3);
        char target[128];
        ssize_t n = readlink(data, target, sizeof(target) - 1);
        cr_assert_gt(n, 0);
        target[n] = '\0';
        cr_assert_str_eq(target, "..g00000000000000000002");
        n = readlink(name, target, sizeof(target) - 1);
        cr_assert_gt(n, 0);
        target[n] = '\0';
        cr_assert_str_eq(target, "..data/sentinel");
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &g), 0);
        cr_assert_eq(g, 2);

        /* A foreign link under a name that is no longer published: removed,
         * its target left alone. */
        _cleanup_free_ char *stale_link = path_of(rw, "stale");
        cr_assert_eq(symlink(out.sentinel, stale_link), 0);
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, g1, 1, 3, &err), 0, "%s", err.message);
        struct stat st;
        _cleanup_free_ char *stale = path_of(ro, "stale");
        cr_assert_lt(lstat(stale, &st), 0);
        outside_assert_untouched(&out);

        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
        outside_assert_untouched(&out);
}

/* ---- queries ----------------------------------------------------------- */

Test(tmpfs, list_returns_instances_sorted_and_skips_junk) {
        require_mounts();
        sd_error err = { 0 };
        char **ids = NULL;
        size_t n = 99;
        cr_assert_eq(sd_tmpfs_instance_list(root, &ids, &n, &err), 0, "missing root lists nothing: %s", err.message);
        cr_assert_eq(n, 0);
        _cleanup_free_ char *b = create_default("bbb", &default_params);
        _cleanup_free_ char *a = create_default("aaa", &default_params);
        cr_assert_str_neq(a, b);
        _cleanup_free_ char *hidden = path_of(root, ".hidden");
        cr_assert_eq(mkdir(hidden, 0700), 0);
        _cleanup_free_ char *file = path_of(root, "file");
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(sd_tmpfs_instance_list(root, &ids, &n, &err), 0, "%s", err.message);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(ids[0], "aaa");
        cr_assert_str_eq(ids[1], "bbb");
        sd_tmpfs_ids_free(ids, n);
}

Test(tmpfs, is_mounted_matches_escaped_mount_points_exactly) {
        require_mounts();
        /* mountinfo shows ' ' as \040 and '\t' as \011. */
        snprintf(root, sizeof(root), "%s/with space\tand tab", base);
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, ID), 1);
        /* A prefix of the id is a different instance. */
        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, "0123456789abcdef"), 0);
        _cleanup_secret_ struct sd_secret *v = secret_of("v", 1);
        struct sd_tmpfs_file files[] = { { .name = "x", .value = v } };
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &default_params, files, 1, 1, &err), 0, "%s", err.message);
        assert_content(ro, "x", "v", 1);
        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_is_mounted(root, ID), 0);
        cr_assert_eq(mounts_below(base), 0);
}

Test(tmpfs, a_file_is_copied_from_another_instance_only_as_it_was_at_that_generation) {
        require_mounts();
        const char other[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        _cleanup_free_ char *src_ro = create_default(other, &default_params);
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        _cleanup_secret_ struct sd_secret *v = secret_of("copied value", 12);
        _cleanup_secret_ struct sd_secret *w = secret_of("own", 3);
        sd_error err = { 0 };
        struct sd_tmpfs_file src[] = { { .name = "token", .value = v } };
        cr_assert_eq(sd_tmpfs_instance_publish(root, other, &default_params, src, 1, 1, &err), 0, "%s", err.message);

        struct sd_tmpfs_params mine = default_params;
        mine.mode = 0440;
        struct sd_tmpfs_file files[] = {
                { .name = "t", .source_id = other, .source_name = "token", .source_generation = 1, .source_len = 12 },
                { .name = "own", .value = w },
        };
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &mine, files, 2, 1, &err), 0, "%s", err.message);
        assert_content(ro, "t", "copied value", 12);
        assert_content(ro, "own", "own", 3);
        struct stat st;
        _cleanup_free_ char *t = path_of(ro, "t");
        cr_assert_eq(stat(t, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0440, "the copy gets this instance's mode");
        cr_assert_eq(st.st_nlink, 1, "a copy, not a link into the other tmpfs");

        /* The source moved on: refused, and this instance keeps what it has. */
        cr_assert_eq(sd_tmpfs_instance_publish(root, other, &default_params, src, 1, 2, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &mine, files, 2, 2, &err), -ESTALE);
        cr_assert(strstr(err.message, "cannot be copied from instance") && strstr(err.message, "changed meanwhile"),
                  "%s", err.message);
        assert_content(ro, "t", "copied value", 12);
        files[0].source_generation = 2;
        files[0].source_len = 11;
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &mine, files, 2, 2, &err), -EBADMSG, "another length");
        files[0].source_len = 12;
        files[0].source_name = "nope";
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &mine, files, 2, 2, &err), -ENOENT, "no such file");
        files[0].source_id = ID;
        cr_assert_eq(sd_tmpfs_instance_publish(root, ID, &mine, files, 2, 2, &err), -EINVAL, "not from itself");
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &(uint64_t) { 0 }), 0);
        uint64_t gen = 0;
        cr_assert_eq(sd_tmpfs_instance_generation(root, ID, &gen), 0);
        cr_assert_eq(gen, 1, "every refused copy left generation 1 in place");
        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
        cr_assert_eq(sd_tmpfs_instance_destroy(root, other, &err), 0, "%s", err.message);
}

struct table_walk {
        const char *want;
        unsigned hits;
        dev_t dev;
        bool read_only;
};

static int table_seen(void *userdata, const struct sd_mount_entry *e) {
        struct table_walk *w = userdata;
        if (strcmp(e->mount_point, w->want) != 0)
                return 0;
        w->hits++;
        w->dev = e->dev;
        w->read_only = strncmp(e->options, "ro", 2) == 0 && (e->options[2] == ',' || !e->options[2]);
        return 0;
}

static int table_stop(void *userdata, const struct sd_mount_entry *e) {
        unsigned *n = userdata;
        (void) e;
        return ++*n == 2 ? 1 : 0;
}

Test(tmpfs, the_mount_table_is_read_with_escapes_by_pid_and_stops_when_asked) {
        require_mounts();
        snprintf(root, sizeof(root), "%s/with space\tand tab", base);
        _cleanup_free_ char *ro = create_default(ID, &default_params);
        struct table_walk self = { .want = ro }, by_pid = { .want = ro };
        cr_assert_eq(sd_mount_table_foreach(0, table_seen, &self), 0);
        cr_assert_eq(sd_mount_table_foreach(getpid(), table_seen, &by_pid), 0);
        cr_assert_eq(self.hits, 1, "the read-only view, unescaped: %s", ro);
        cr_assert(self.read_only);
        struct stat st;
        cr_assert_eq(stat(ro, &st), 0);
        cr_assert_eq(self.dev, st.st_dev, "the device is the tmpfs's");
        cr_assert_eq(by_pid.hits, 1);
        cr_assert_eq(by_pid.dev, self.dev);
        unsigned n = 0;
        cr_assert_eq(sd_mount_table_foreach(0, table_stop, &n), 0);
        cr_assert_eq(n, 2, "a positive return stops the walk");
        cr_assert_eq(sd_mount_table_foreach(INT32_MAX, table_stop, &n), -ENOENT);
        sd_error err = { 0 };
        cr_assert_eq(sd_tmpfs_instance_destroy(root, ID, &err), 0, "%s", err.message);
}

/* ---- scale ------------------------------------------------------------- */

Test(tmpfs, many_files_publish_and_read_back, .timeout = 120) {
        require_mounts();
        static const size_t counts[] = { 1, 10, 100 };
        static char value[4096];
        for (size_t i = 0; i < sizeof(value); i++)
                value[i] = (char) ('a' + i % 26);
        _cleanup_secret_ struct sd_secret *v = secret_of(value, sizeof(value));
        /* An update of n files with n live needs 3n + 5 inodes (docs/tmpfs.md). */
        struct sd_tmpfs_params params = default_params;
        params.nr_inodes = 3 * 100 + 5;
        static char names[100][16];
        static struct sd_tmpfs_file files[100];
        for (size_t i = 0; i < 100; i++) {
                snprintf(names[i], sizeof(names[i]), "file%03zu", i);
                files[i] = (struct sd_tmpfs_file) { .name = names[i], .value = v };
        }
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
                char id[16];
                snprintf(id, sizeof(id), "scale-%zu", counts[c]);
                sd_error err = { 0 };
                struct timespec t0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                _cleanup_free_ char *ro = create_default(id, &params);
                double t_create = seconds_since(&t0);
                clock_gettime(CLOCK_MONOTONIC, &t0);
                cr_assert_eq(sd_tmpfs_instance_publish(root, id, &params, files, counts[c], 1, &err), 0, "%s",
                             err.message);
                double t_first = seconds_since(&t0);
                clock_gettime(CLOCK_MONOTONIC, &t0);
                cr_assert_eq(sd_tmpfs_instance_publish(root, id, &params, files, counts[c], 2, &err), 0, "%s",
                             err.message);
                double t_update = seconds_since(&t0);
                for (size_t i = 0; i < counts[c]; i++)
                        assert_content(ro, names[i], value, sizeof(value));
                clock_gettime(CLOCK_MONOTONIC, &t0);
                cr_assert_eq(sd_tmpfs_instance_destroy(root, id, &err), 0, "%s", err.message);
                double t_destroy = seconds_since(&t0);
                cr_log_info("%3zu files x 4 KiB: create %.3f ms, first publish %.3f ms, update %.3f ms, destroy %.3f ms",
                            counts[c], t_create * 1e3, t_first * 1e3, t_update * 1e3, t_destroy * 1e3);
        }
        cr_assert_eq(mounts_below(base), 0);
}
