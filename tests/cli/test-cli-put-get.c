/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* put, get, history, ls and rm through the built secretctl. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clitest.h"
#include "secretd/keys.h"

static void put_text(const char *name, const char *value, const char *expect_out) {
        _cleanup_result_ struct cli_result r = { 0 };
        CLI_IN(&r, value, strlen(value), "put", name);
        CLI_ASSERT_STATUS(&r, 0);
        if (expect_out)
                cr_assert_str_eq(r.out, expect_out);
}

TestSuite(putget, .init = clitest_setup_with_realm, .fini = clitest_teardown);

/* Random bytes with NULs and newlines sprinkled in, so nothing along the way
 * may treat the value as a C string or a line. */
static unsigned char *binary_value(size_t len) {
        unsigned char *v = malloc(len);
        cr_assert_not_null(v);
        char *hex = clitest_random_text(len);
        for (size_t i = 0; i < len; i++)
                v[i] = (unsigned char) (hex[i] * 31 + (int) i);
        free(hex);
        for (size_t i = 0; i < len; i += 7)
                v[i] = i % 14 ? '\n' : '\0';
        return v;
}

Test(putget, round_trip_is_byte_exact_at_1B_4KiB_1MiB) {
        const size_t sizes[] = { 1, 4096, (size_t) 1 << 20 };
        const char *names[] = { "one_byte", "four_kib", "one_mib" };
        for (size_t i = 0; i < 3; i++) {
                unsigned char *value = binary_value(sizes[i]);
                if (sizes[i] == 1)
                        value[0] = '\0';
                _cleanup_result_ struct cli_result put = { 0 }, get = { 0 };
                CLI_IN(&put, value, sizes[i], "put", names[i]);
                CLI_ASSERT_STATUS(&put, 0);
                char expect[256];
                (void) snprintf(expect, sizeof(expect), "%s: version 1\n", names[i]);
                cr_assert_str_eq(put.out, expect);

                CLI(&get, "get", names[i]);
                CLI_ASSERT_STATUS(&get, 0);
                cr_assert_eq(get.out_len, sizes[i], "%s: got %zu bytes, put %zu", names[i], get.out_len, sizes[i]);
                cr_assert(memcmp(get.out, value, sizes[i]) == 0, "%s: bytes differ", names[i]);
                cr_assert_eq(get.err_len, 0, "%s", get.err);
                free(value);
        }
}

Test(putget, oversized_value_is_refused_and_previous_version_stays) {
        put_text("big", "small value", "big: version 1\n");

        size_t len = ((size_t) 1 << 20) + 1;
        unsigned char *value = binary_value(len);
        _cleanup_result_ struct cli_result put = { 0 }, get = { 0 }, hist = { 0 };
        CLI_IN(&put, value, len, "put", "big");
        free(value);
        CLI_ASSERT_STATUS(&put, 2);
        cr_assert(strstr(put.err, "standard input"), "names the input: %s", put.err);
        cr_assert(strstr(put.err, "1048576"), "names the limit: %s", put.err);
        cr_assert_eq(put.out_len, 0);

        CLI(&get, "get", "big");
        CLI_ASSERT_STATUS(&get, 0);
        cr_assert_str_eq(get.out, "small value");
        CLI(&hist, "history", "big", "--json");
        json_t *j = json_loads(hist.out, 0, NULL);
        cr_assert(json_is_array(j) && json_array_size(j) == 1, "history: %s", hist.out);
        json_decref(j);
}

Test(putget, max_size_lowers_the_limit_and_cannot_raise_it) {
        _cleanup_result_ struct cli_result low = { 0 }, high = { 0 }, ok = { 0 };
        CLI_IN(&low, "0123456789X", 11, "put", "capped", "--max-size", "10");
        CLI_ASSERT_STATUS(&low, 2);
        cr_assert(strstr(low.err, "limit of 10 bytes"), "%s", low.err);
        CLI_IN(&high, "x", 1, "put", "capped", "--max-size", "2000000");
        CLI_ASSERT_STATUS(&high, 2);
        CLI_IN(&ok, "0123456789", 10, "put", "capped", "--max-size", "10");
        CLI_ASSERT_STATUS(&ok, 0);
}

Test(putget, empty_value_is_refused) {
        _cleanup_result_ struct cli_result put = { 0 }, get = { 0 };
        CLI_IN(&put, "", 0, "put", "empty");
        CLI_ASSERT_STATUS(&put, 2);
        cr_assert(strstr(put.err, "empty"), "%s", put.err);
        cr_assert(strstr(put.err, "standard input"), "%s", put.err);
        CLI(&get, "get", "empty");
        CLI_ASSERT_STATUS(&get, 3);
}

Test(putget, value_from_file) {
        char path[4096];
        (void) snprintf(path, sizeof(path), "%s/value.bin", cli.root);
        unsigned char *value = binary_value(5000);
        cr_assert_eq(clitest_write_file(path, value, 5000), 0);
        _cleanup_result_ struct cli_result put = { 0 }, get = { 0 }, missing = { 0 };
        CLI(&put, "put", "from_file", "--file", path);
        CLI_ASSERT_STATUS(&put, 0);
        CLI(&get, "get", "from_file");
        cr_assert_eq(get.out_len, 5000);
        cr_assert(memcmp(get.out, value, 5000) == 0);
        free(value);

        (void) snprintf(path, sizeof(path), "%s/does-not-exist", cli.root);
        CLI(&missing, "put", "from_file", "--file", path);
        cr_assert_neq(missing.status, 0);
        cr_assert(strstr(missing.err, path), "names the file: %s", missing.err);
}

Test(putget, value_on_the_command_line_is_refused) {
        _cleanup_result_ struct cli_result put = { 0 }, get = { 0 };
        CLI_IN(&put, "from stdin", 10, "put", "argv_value", "hunter2-on-argv");
        CLI_ASSERT_STATUS(&put, 2);
        cr_assert(strstr(put.err, "standard input"), "says where values come from: %s", put.err);
        cr_assert_null(strstr(put.err, "hunter2-on-argv"), "echoed the value: %s", put.err);
        CLI(&get, "get", "argv_value");
        CLI_ASSERT_STATUS(&get, 3);

        _cleanup_result_ struct cli_result opt = { 0 };
        CLI_IN(&opt, "x", 1, "put", "argv_value", "--value=hunter2-in-option");
        CLI_ASSERT_STATUS(&opt, 2);
        cr_assert_null(strstr(opt.err, "hunter2-in-option"), "echoed the value: %s", opt.err);
}

Test(putget, versions_history_ls_rm) {
        put_text("db", "first", "db: version 1\n");
        put_text("db", "second", "db: version 2\n");
        put_text("api", "token", "api: version 1\n");

        _cleanup_result_ struct cli_result v1 = { 0 }, latest = { 0 }, v9 = { 0 }, hist = { 0 },
                                           hj = { 0 }, ls = { 0 }, lsj = { 0 }, rm = { 0 }, gone = { 0 },
                                           ls2 = { 0 }, old = { 0 }, rm2 = { 0 }, hist2 = { 0 };
        CLI(&v1, "get", "db", "--version", "1");
        CLI_ASSERT_STATUS(&v1, 0);
        cr_assert_str_eq(v1.out, "first");
        CLI(&latest, "get", "db");
        cr_assert_str_eq(latest.out, "second");
        CLI(&v9, "get", "db", "--version", "9");
        CLI_ASSERT_STATUS(&v9, 3);

        CLI(&hist, "history", "db");
        CLI_ASSERT_STATUS(&hist, 0);
        cr_assert(strstr(hist.out, "VERSION"), "%s", hist.out);
        cr_assert(strstr(hist.out, "\n1 "), "%s", hist.out);
        cr_assert(strstr(hist.out, "\n2 "), "%s", hist.out);

        CLI(&hj, "history", "db", "--json");
        CLI_ASSERT_STATUS(&hj, 0);
        json_error_t jerr;
        json_t *h = json_loads(hj.out, 0, &jerr);
        cr_assert_not_null(h, "history --json: %s: %s", jerr.text, hj.out);
        cr_assert_eq(json_array_size(h), 2);
        char writer[SD_KEY_ID_CHARS + 1] = "";
        for (size_t i = 0; i < 2; i++) {
                json_t *e = json_array_get(h, i);
                cr_assert_eq(json_integer_value(json_object_get(e, "version")), (json_int_t) i + 1);
                cr_assert_str_eq(json_string_value(json_object_get(e, "kind")), "value");
                cr_assert_str_eq(json_string_value(json_object_get(e, "status")), "ok");
                cr_assert(json_integer_value(json_object_get(e, "created")) > 1600000000);
                const char *w = json_string_value(json_object_get(e, "writer"));
                cr_assert(w && strlen(w) == SD_KEY_ID_CHARS, "writer: %s", w ? w : "(none)");
                memcpy(writer, w, sizeof(writer));
        }
        _cleanup_result_ struct cli_result who = { 0 };
        CLI(&who, "whoami");
        cr_assert(strstr(who.out, writer), "writer %s is me (%s)", writer, who.out);
        json_decref(h);

        CLI(&ls, "ls");
        CLI_ASSERT_STATUS(&ls, 0);
        cr_assert(strstr(ls.out, "api "), "%s", ls.out);
        cr_assert(strstr(ls.out, "db "), "%s", ls.out);
        cr_assert(strstr(ls.out, "active"), "%s", ls.out);
        cr_assert(strstr(ls.out, "api") < strstr(ls.out, "db "), "sorted: %s", ls.out);

        CLI(&lsj, "ls", "--json");
        json_t *l = json_loads(lsj.out, 0, &jerr);
        cr_assert_not_null(l, "ls --json: %s: %s", jerr.text, lsj.out);
        cr_assert_eq(json_array_size(l), 2);
        json_t *db = json_array_get(l, 1);
        cr_assert_str_eq(json_string_value(json_object_get(db, "name")), "db");
        cr_assert_eq(json_integer_value(json_object_get(db, "version")), 2);
        cr_assert_str_eq(json_string_value(json_object_get(db, "state")), "active");
        cr_assert_str_eq(json_string_value(json_object_get(db, "writer")), writer);
        json_decref(l);

        CLI(&rm, "rm", "db");
        CLI_ASSERT_STATUS(&rm, 0);
        cr_assert_str_eq(rm.out, "db: deleted in version 3\n");
        CLI(&gone, "get", "db");
        CLI_ASSERT_STATUS(&gone, 3);
        cr_assert(strstr(gone.err, "deleted"), "%s", gone.err);
        CLI(&old, "get", "db", "--version", "2");
        cr_assert_str_eq(old.out, "second");
        CLI(&rm2, "rm", "db");
        CLI_ASSERT_STATUS(&rm2, 3);

        CLI(&ls2, "ls", "--json");
        l = json_loads(ls2.out, 0, &jerr);
        cr_assert_not_null(l, "%s", ls2.out);
        db = json_array_get(l, 1);
        cr_assert_str_eq(json_string_value(json_object_get(db, "state")), "deleted");
        cr_assert_eq(json_integer_value(json_object_get(db, "version")), 3);
        json_decref(l);

        CLI(&hist2, "history", "db");
        cr_assert(strstr(hist2.out, "tombstone"), "%s", hist2.out);
}

Test(putget, get_refuses_a_terminal_unless_forced) {
        put_text("tty", "on-the-screen", NULL);
        _cleanup_result_ struct cli_result refused = { 0 }, forced = { 0 };
        cr_assert_eq(cli_run(&refused, &(struct cli_opts) { .tty_stdout = true }, "get", "tty", NULL), 0);
        CLI_ASSERT_STATUS(&refused, 2);
        cr_assert(strstr(refused.err, "terminal"), "%s", refused.err);
        cr_assert_null(strstr(refused.tty, "on-the-screen"));

        cr_assert_eq(cli_run(&forced, &(struct cli_opts) { .tty_stdout = true }, "get", "tty", "--force-tty", NULL), 0);
        CLI_ASSERT_STATUS(&forced, 0);
        cr_assert(strstr(forced.tty, "on-the-screen"), "terminal got: %s", forced.tty);
}

Test(putget, terminal_prompt_asks_twice_without_echo) {
        const struct cli_tty_step steps[] = {
                { "Value for typed: ", "typed-secret-42\n" },
                { "Again, to confirm: ", "typed-secret-42\n" },
                { NULL, NULL },
        };
        _cleanup_result_ struct cli_result put = { 0 }, get = { 0 }, mismatch = { 0 };
        cr_assert_eq(cli_run(&put, &(struct cli_opts) { .tty_stdin = true, .tty_script = steps, .timeout_ms = 30000 },
                             "put", "typed", NULL), 0);
        CLI_ASSERT_STATUS(&put, 0);
        cr_assert_str_eq(put.out, "typed: version 1\n");
        cr_assert_null(strstr(put.tty, "typed-secret-42"), "the value was echoed: %s", put.tty);
        CLI(&get, "get", "typed");
        cr_assert_str_eq(get.out, "typed-secret-42", "the newline is not part of a typed value");

        const struct cli_tty_step differ[] = {
                { "Value for typed: ", "one\n" },
                { "Again, to confirm: ", "two\n" },
                { NULL, NULL },
        };
        cr_assert_eq(cli_run(&mismatch, &(struct cli_opts) { .tty_stdin = true, .tty_script = differ, .timeout_ms = 30000 },
                             "put", "typed", NULL), 0);
        CLI_ASSERT_STATUS(&mismatch, 2);
        cr_assert(strstr(mismatch.err, "do not match"), "%s", mismatch.err);
}
