/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "secretd/secret.h"

static int pipe_with(const void *data, size_t len) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        /* Write from a child so large inputs do not block on the pipe. */
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(p[0]);
                const char *d = data;
                while (len > 0) {
                        ssize_t n = write(p[1], d, len);
                        if (n <= 0)
                                _exit(1);
                        d += n;
                        len -= (size_t) n;
                }
                _exit(0);
        }
        close(p[1]);
        return p[0];
}

Test(secret, read_fd_exact_limit_and_over) {
        size_t sizes[] = { 1, 4095, 4096, 4097, SD_VALUE_MAX };
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                char *data = malloc(sizes[i]);
                for (size_t j = 0; j < sizes[i]; j++)
                        data[j] = (char) (j * 7 + i);
                int fd = pipe_with(data, sizes[i]);
                _cleanup_secret_ struct sd_secret *s = NULL;
                sd_error err = { 0 };
                cr_assert_eq(sd_secret_read_fd(fd, SD_VALUE_MAX, "stdin", &s, &err), 0, "%s", err.message);
                cr_assert_eq(s->len, sizes[i]);
                cr_assert_eq(memcmp(s->data, data, sizes[i]), 0);
                cr_assert_eq(s->data[s->len], 0, "NUL-terminated");
                close(fd);
                free(data);
        }

        char *big = calloc(1, SD_VALUE_MAX + 1);
        int fd = pipe_with(big, SD_VALUE_MAX + 1);
        struct sd_secret *s = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_secret_read_fd(fd, SD_VALUE_MAX, "standard input", &s, &err), -EFBIG);
        cr_assert_null(s, "output untouched on failure");
        cr_assert(strstr(err.message, "standard input") && strstr(err.message, "1048576"), "%s", err.message);
        close(fd);
        free(big);
}

Test(secret, equal_is_by_length_and_content) {
        _cleanup_secret_ struct sd_secret *a = NULL, *b = NULL, *c = NULL;
        cr_assert_eq(sd_secret_new_from("hunter2", 7, &a), 0);
        cr_assert_eq(sd_secret_new_from("hunter2", 7, &b), 0);
        cr_assert_eq(sd_secret_new_from("hunter3", 7, &c), 0);
        cr_assert(sd_secret_equal(a, b));
        cr_assert_not(sd_secret_equal(a, c));
        c->len = 6;
        cr_assert_not(sd_secret_equal(a, c));
}

Test(secret, scratch_follows_the_value_in_the_same_mapping_and_starts_zeroed) {
        struct sd_secret *s = NULL;
        unsigned char *scratch = NULL;
        cr_assert_eq(sd_secret_new_with_scratch(5, 32, &s, &scratch), 0);
        cr_assert_eq(s->len, 5);
        cr_assert_eq(scratch, s->data + 6, "the scratch starts after the value's NUL");
        for (size_t i = 0; i < 32; i++)
                cr_assert_eq(scratch[i], 0);
        /* Both are writable to their last byte (ASan and libsodium's guard
         * page would catch an overrun), and the value keeps its NUL. */
        memset(scratch, 0xAA, 32);
        memcpy(s->data, "hello", 5);
        cr_assert_str_eq((const char *) s->data, "hello");
        sd_secret_free(s);

        cr_assert_eq(sd_secret_new_with_scratch(3, 0, &s, &scratch), 0);
        cr_assert_null(scratch, "no scratch asked, none given");
        sd_secret_free(s);
}
