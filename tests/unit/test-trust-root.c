/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/trust-root.h"

/* Under /tmp (1777, root's): the walk passes it by the sticky rule, as it
 * does for the integration fixtures. */
static char dir[] = "/tmp/secretd-trust-root-XXXXXX";

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(trust_root, .init = setup, .fini = teardown);

static char *path_in(const char *name) {
        char *p = NULL;
        cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

static char *make_file(const char *name, mode_t mode) {
        char *p = path_in(name);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
        cr_assert_eq(write(fd, "sdw1:x\n", 7), 7);
        cr_assert_eq(fchmod(fd, mode), 0);
        close(fd);
        return p;
}

static char *make_dir(const char *name, mode_t mode) {
        char *p = path_in(name);
        cr_assert_eq(mkdir(p, 0700), 0, "%s: %s", p, strerror(errno));
        cr_assert_eq(chmod(p, mode), 0);
        return p;
}

/* Called first thing: a skipped test gets no .fini, so its (still empty)
 * directory goes here. */
static void need_root(void) {
        if (geteuid() != 0) {
                (void) rmdir(dir);
                cr_skip_test("needs root to give files to uid 1000");
        }
}

static void assert_contains(const char *haystack, const char *needle) {
        cr_assert(strstr(haystack, needle), "expected \"%s\" in: %s", needle, haystack);
}

Test(trust_root, a_healthy_file_opens_and_reads) {
        char *p = make_file("trusted-writers", 0644);
        sd_error err = { 0 };
        int fd = sd_trust_root_open(p, "trusted-writers", &err);
        cr_assert_geq(fd, 0, "%s", err.message);
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(sd_read_fd(fd, p, 1024, &text, &len, &err), 0, "%s", err.message);
        cr_assert_str_eq(text, "sdw1:x\n");
        cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        free(text);
        close(fd);
        /* 0600 and 0400 are fine too: only write bits of others matter. */
        cr_assert_eq(chmod(p, 0400), 0);
        cr_assert_eq(sd_trust_root_check(p, "trusted-writers", &err), 0, "%s", err.message);
        free(p);
}

Test(trust_root, a_file_others_can_write_is_refused_naming_it_and_the_fix) {
        char *p = make_file("secretd.conf", 0666);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_open(p, "config", &err), -EPERM);
        char want[512];
        snprintf(want, sizeof(want), "config %s is mode 0666", p);
        assert_contains(err.message, want);
        assert_contains(err.message, "root of trust");
        snprintf(want, sizeof(want), "chmod go-w %s", p);
        assert_contains(err.message, want);

        cr_assert_eq(chmod(p, 0620), 0);
        cr_assert_eq(sd_trust_root_check(p, "config", &err), -EPERM, "group-writable");
        assert_contains(err.message, "mode 0620");
        free(p);
}

Test(trust_root, a_file_owned_by_another_user_is_refused) {
        need_root();
        char *p = make_file("trusted-writers", 0644);
        cr_assert_eq(chown(p, 1000, 1000), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check(p, "trusted-writers", &err), -EPERM);
        char want[512];
        snprintf(want, sizeof(want), "trusted-writers %s is owned by uid 1000, not root", p);
        assert_contains(err.message, want);
        snprintf(want, sizeof(want), "chown root:root %s", p);
        assert_contains(err.message, want);

        cr_assert_eq(chmod(p, 0666), 0);
        cr_assert_eq(sd_trust_root_check(p, "trusted-writers", &err), -EPERM);
        snprintf(want, sizeof(want), "chown root:root %s && chmod go-w %s", p, p);
        assert_contains(err.message, want);
        free(p);
}

Test(trust_root, a_group_writable_parent_directory_is_refused_naming_it) {
        char *d = make_dir("etc", 0775);
        char *p = make_file("etc/secretd.conf", 0644);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check(p, "config", &err), -EPERM);
        char want[512];
        snprintf(want, sizeof(want), "config %s: directory %s is mode 0775", p, d);
        assert_contains(err.message, want);
        snprintf(want, sizeof(want), "chmod go-w %s", d);
        assert_contains(err.message, want);

        /* Checked before the file is looked for: a missing file in an open
         * directory is no "missing, fine". */
        char *missing = path_in("etc/absent");
        cr_assert_eq(sd_trust_root_check(missing, "trusted-writers", &err), -EPERM);
        cr_assert_eq(chmod(d, 0755), 0);
        cr_assert_eq(sd_trust_root_check(p, "config", &err), 0, "%s", err.message);
        free(missing);
        free(p);
        free(d);
}

Test(trust_root, a_parent_directory_owned_by_another_user_is_refused) {
        need_root();
        char *d = make_dir("etc", 0755);
        char *p = make_file("etc/secretd.conf", 0644);
        cr_assert_eq(chown(d, 1000, 1000), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check(p, "config", &err), -EPERM);
        char want[512];
        snprintf(want, sizeof(want), "directory %s is owned by uid 1000", d);
        assert_contains(err.message, want);
        snprintf(want, sizeof(want), "chown root:root %s", d);
        assert_contains(err.message, want);
        free(p);
        free(d);
}

Test(trust_root, a_sticky_world_writable_directory_passes_only_root_owned_entries) {
        char *tmp = make_dir("tmp", 01777);
        char *good = make_file("tmp/trusted-writers", 0644);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check(good, "trusted-writers", &err), 0, "%s", err.message);

        /* The same mode without the sticky bit: anyone may replace it. */
        cr_assert_eq(chmod(tmp, 0777), 0);
        cr_assert_eq(sd_trust_root_check(good, "trusted-writers", &err), -EPERM);
        assert_contains(err.message, "mode 0777");
        cr_assert_eq(chmod(tmp, 01777), 0);

        if (geteuid() == 0) {
                /* Someone else's file, or directory, in the sticky one. */
                char *theirs = make_file("tmp/theirs", 0644);
                cr_assert_eq(chown(theirs, 1000, 1000), 0);
                cr_assert_eq(sd_trust_root_check(theirs, "trusted-writers", &err), -EPERM);
                assert_contains(err.message, "owned by uid 1000");
                char *sub = make_dir("tmp/sub", 0755);
                char *below = make_file("tmp/sub/trusted-writers", 0644);
                cr_assert_eq(chown(sub, 1000, 1000), 0);
                cr_assert_eq(sd_trust_root_check(below, "trusted-writers", &err), -EPERM);
                char want[512];
                snprintf(want, sizeof(want), "directory %s is owned by uid 1000", sub);
                assert_contains(err.message, want);
                free(below);
                free(sub);
                free(theirs);
        }
        free(good);
        free(tmp);
}

Test(trust_root, symbolic_links_are_followed_only_through_checked_places) {
        char *real = make_file("real.conf", 0644);
        char *abs_link = path_in("abs");
        char *rel_link = path_in("rel");
        cr_assert_eq(symlink(real, abs_link), 0);
        cr_assert_eq(symlink("real.conf", rel_link), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check(abs_link, "config", &err), 0, "%s", err.message);
        cr_assert_eq(sd_trust_root_check(rel_link, "config", &err), 0, "%s", err.message);

        /* The target is checked as a file of its own. */
        cr_assert_eq(chmod(real, 0666), 0);
        cr_assert_eq(sd_trust_root_check(rel_link, "config", &err), -EPERM);
        char want[512];
        snprintf(want, sizeof(want), "config %s: the file it leads to, %s, is mode 0666", rel_link, real);
        assert_contains(err.message, want);
        cr_assert_eq(chmod(real, 0644), 0);

        /* A target in a directory others may write. */
        char *open_dir = make_dir("open", 0777);
        char *there = make_file("open/x.conf", 0644);
        char *to_open = path_in("to-open");
        cr_assert_eq(symlink("open/x.conf", to_open), 0);
        cr_assert_eq(sd_trust_root_check(to_open, "config", &err), -EPERM);
        snprintf(want, sizeof(want), "directory %s is mode 0777", open_dir);
        assert_contains(err.message, want);

        /* A link in a directory others may write: refused before it is read. */
        char *planted = path_in("open/link");
        cr_assert_eq(symlink(real, planted), 0);
        cr_assert_eq(sd_trust_root_check(planted, "config", &err), -EPERM);
        snprintf(want, sizeof(want), "directory %s is mode 0777", open_dir);
        assert_contains(err.message, want);

        if (geteuid() == 0) {
                cr_assert_eq(lchown(abs_link, 1000, 1000), 0);
                cr_assert_eq(sd_trust_root_check(abs_link, "config", &err), -EPERM);
                snprintf(want, sizeof(want), "symbolic link %s is owned by uid 1000", abs_link);
                assert_contains(err.message, want);
                snprintf(want, sizeof(want), "chown -h root:root %s", abs_link);
                assert_contains(err.message, want);
        }

        char *loop_a = path_in("loop-a"), *loop_b = path_in("loop-b");
        cr_assert_eq(symlink("loop-b", loop_a), 0);
        cr_assert_eq(symlink("loop-a", loop_b), 0);
        cr_assert_eq(sd_trust_root_check(loop_a, "config", &err), -ELOOP);
        free(loop_a);
        free(loop_b);
        free(planted);
        free(to_open);
        free(there);
        free(open_dir);
        free(rel_link);
        free(abs_link);
        free(real);
}

Test(trust_root, missing_files_and_wrong_types) {
        sd_error err = { 0 };
        char *missing = path_in("absent");
        cr_assert_eq(sd_trust_root_check(missing, "trusted-writers", &err), -ENOENT);
        assert_contains(err.message, missing);
        char *missing_dir = path_in("no-dir/file");
        cr_assert_eq(sd_trust_root_check(missing_dir, "trusted-writers", &err), -ENOENT);

        char *sub = make_dir("sub", 0755);
        cr_assert_eq(sd_trust_root_check(sub, "config", &err), -EINVAL, "a directory is not a file");
        char *fifo = path_in("fifo");
        cr_assert_eq(mkfifo(fifo, 0644), 0);
        cr_assert_eq(sd_trust_root_check(fifo, "config", &err), -EINVAL, "a FIFO: refused, without hanging");
        assert_contains(err.message, "not a regular file");
        char *through_file = make_file("plain", 0644);
        char *below_file = path_in("plain/x");
        cr_assert_eq(sd_trust_root_check(below_file, "config", &err), -EINVAL);
        cr_assert_eq(sd_trust_root_check("", "config", &err), -EINVAL);
        free(below_file);
        free(through_file);
        free(fifo);
        free(sub);
        free(missing_dir);
        free(missing);
}

Test(trust_root, relative_paths_and_dot_dot_resolve_like_the_kernel) {
        char *sub = make_dir("sub", 0755);
        char *p = make_file("sub/trusted-writers", 0644);
        cr_assert_eq(chdir(sub), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_trust_root_check("trusted-writers", "trusted-writers", &err), 0, "%s", err.message);
        cr_assert_eq(sd_trust_root_check("../sub/./trusted-writers", "trusted-writers", &err), 0, "%s",
                     err.message);
        cr_assert_eq(chmod(p, 0664), 0);
        cr_assert_eq(sd_trust_root_check("trusted-writers", "trusted-writers", &err), -EPERM);
        /* Named as given; the fix names it absolutely. */
        assert_contains(err.message, "trusted-writers trusted-writers is mode 0664");
        char want[512];
        snprintf(want, sizeof(want), "chmod go-w %s", p);
        assert_contains(err.message, want);
        cr_assert_eq(chdir("/"), 0);
        free(p);
        free(sub);
}
