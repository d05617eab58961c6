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

static char dir[] = "/tmp/secretd-fileio-XXXXXX";
static int dirfd_ = -1;

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(dirfd_, 0);
}

static void teardown(void) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        close(dirfd_);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(fileio, .init = setup, .fini = teardown);

Test(fileio, write_publishes_with_mode_and_leaves_no_temp) {
        sd_error err = { 0 };
        cr_assert_eq(sd_write_file_at(dirfd_, "f", "abc", 3, 0400, 0, &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(fstatat(dirfd_, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
        cr_assert_eq(st.st_mode & 07777, 0400);
        cr_assert_eq(st.st_size, 3);

        cr_assert_eq(sd_write_file_at(dirfd_, "f", "xyz", 3, 0600, 0, &err), -EEXIST, "no replace by default");
        cr_assert_eq(sd_write_file_at(dirfd_, "f", "xyzw", 4, 0600, SD_WRITE_REPLACE, &err), 0);

        char *data = NULL;
        size_t len = 0;
        cr_assert_eq(sd_read_file_at(dirfd_, "f", 100, &data, &len, &err), 0);
        cr_assert_eq(len, 4);
        cr_assert_str_eq(data, "xyzw");
        free(data);

        char cmd[300];
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
        cr_assert_eq(system(cmd), 0, "only the published file remains");
}

Test(fileio, read_refuses_symlink_and_oversize) {
        sd_error err = { 0 };
        cr_assert_eq(sd_write_file_at(dirfd_, "real", "0123456789", 10, 0600, 0, &err), 0);
        cr_assert_eq(symlinkat("real", dirfd_, "link"), 0);
        char *data = NULL;
        cr_assert_eq(sd_read_file_at(dirfd_, "link", 100, &data, NULL, &err), -ELOOP);
        cr_assert(strstr(err.message, "symbolic link"), "%s", err.message);
        cr_assert_eq(sd_read_file_at(dirfd_, "real", 9, &data, NULL, &err), -EFBIG);
        cr_assert_null(data);
        cr_assert_eq(sd_open_dir_at(dirfd_, "link", false, 0700), -ENOTDIR);
}
