/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "secretd/names.h"

struct bad_name {
        const char *name;
        size_t len;
        const char *expect;  /* substring of the message */
};

/* A plain table and loop: criterion's parameterized tests run in a re-exec'd
 * child where pointers into the parent's data are not valid. */
Test(names, refused) {
        char long_name[130];
        memset(long_name, 'a', 129);
        long_name[129] = '\0';
        const struct bad_name cases[] = {
                { "../x", 4, "must start with a letter or digit" },
                { "a/b", 3, "contains '/'" },
                { ".hidden", 7, "must start with a letter or digit" },
                { "a\0b", 3, "NUL" },
                { long_name, 129, "129 bytes long; the limit is 128" },
                { "caf\xc3\xa9", 5, "byte 0xc3" },
                { "", 0, "is empty" },
                { "a..b", 4, "contains '..'" },
                { "x..", 3, "contains '..'" },
                { "-dash", 5, "must start with a letter or digit" },
                { "sp ace", 6, "contains ' '" },
                { "new\nline", 8, "byte 0x0a" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct bad_name *c = &cases[i];
                sd_error err = { 0 };
                int r = sd_name_validate("secret name", c->name, c->len, &err);
                cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
                cr_assert_eq(err.code, EINVAL);
                cr_assert(strstr(err.message, c->expect), "case %zu: message '%s' lacks '%s'", i, err.message, c->expect);
                cr_assert(strncmp(err.message, "secret name", 11) == 0, "message names the input: %s", err.message);
                cr_assert_null(strchr(err.message, '\n'), "one line");
        }
}

Test(names, accepted) {
        char max_name[129];
        memset(max_name, 'Z', 128);
        max_name[128] = '\0';
        const char *good[] = { "a", "db_password", "API-key.v2", "0", "a.b.c", "x-y_z", max_name };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                sd_error err = { 0 };
                cr_assert_eq(sd_name_validate("secret name", good[i], strlen(good[i]), &err), 0,
                             "%s: %s", good[i], err.message);
        }
}

Test(names, escape_for_message_is_printable_and_bounded) {
        char out[16];
        sd_escape_for_message("a\x01\xff'bcdefghijklmnop", 19, out, sizeof(out));
        cr_assert_str_eq(out, "a\\x01\\xff...");
        for (char *p = out; *p; p++)
                cr_assert(*p >= 0x20 && *p < 0x7f);
}
