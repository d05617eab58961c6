/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The .env parser: compose 1.29's grammar (python-dotenv), made strict.
 * tests/cli/test-dotenv-python.py compares it with python-dotenv itself. */
#include <criterion/criterion.h>
#include <string.h>

#include "secretd/dotenv.h"

static struct sd_dotenv *parse_ok(const char *text) {
        sd_error err = { 0 };
        struct sd_dotenv *env = NULL;
        int r = sd_dotenv_parse(text, strlen(text), "t.env", &env, &err);
        cr_assert_eq(r, 0, "refused: %s", err.message);
        return env;
}

static void parse_fails(const char *text, size_t len, const char *expect) {
        sd_error err = { 0 };
        struct sd_dotenv *env = NULL;
        int r = sd_dotenv_parse(text, len, "t.env", &env, &err);
        cr_assert_eq(r, -EINVAL, "accepted: %.*s", (int) len, text);
        cr_assert_null(env);
        cr_assert(strstr(err.message, expect), "message '%s' lacks '%s'", err.message, expect);
        cr_assert_null(strchr(err.message, '\n'));
}

/* The literal's bytes, NULs included. */
#define PARSE_FAILS(text, expect) parse_fails(text, sizeof(text) - 1, expect)

static void assert_value(const struct sd_dotenv *env, const char *name, const char *value, size_t len) {
        const struct sd_dotenv_entry *e = sd_dotenv_find(env, name);
        cr_assert_not_null(e, "no %s", name);
        cr_assert_not_null(e->value, "%s has no value", name);
        cr_assert_eq(e->value->len, len, "%s: %zu bytes, expected %zu", name, e->value->len, len);
        cr_assert(memcmp(e->value->data, value, len) == 0, "%s: '%.*s'", name, (int) len, e->value->data);
}
#define ASSERT_VALUE(env, name, value) assert_value(env, name, value, sizeof(value) - 1)

Test(dotenv, compose_grammar) {
        _cleanup_dotenv_ struct sd_dotenv *env = parse_ok(
                "\xef\xbb\xbf# comment\r\n"
                "DB_PASSWORD=hunter2\r\n"
                "export API_KEY = 'a b # c'  # comment\n"
                "UNQUOTED=x y#z   # cut here\n"
                "DQ=\"1\\n2\\t\\\"3\\\" \\x41 \\\\ end\"\n"
                "SQ='it\\'s \\\\ \\n'\n"
                "MULTI=\"a\r\nb\rc\"\n"
                "EMPTY=\n"
                "BARE\n"
                "'QUOTED'=v\n"
                "LAST=end");
        cr_assert_eq(env->n, 10);
        cr_assert_eq(env->bom, 3);
        ASSERT_VALUE(env, "DB_PASSWORD", "hunter2");
        ASSERT_VALUE(env, "API_KEY", "a b # c");
        ASSERT_VALUE(env, "UNQUOTED", "x y#z");
        ASSERT_VALUE(env, "DQ", "1\n2\t\"3\" \\x41 \\ end");
        ASSERT_VALUE(env, "SQ", "it's \\ \\n");
        ASSERT_VALUE(env, "MULTI", "a\nb\nc");
        ASSERT_VALUE(env, "EMPTY", "");
        ASSERT_VALUE(env, "QUOTED", "v");
        ASSERT_VALUE(env, "LAST", "end");
        cr_assert_null(sd_dotenv_find(env, "BARE")->value, "a name without '=' has no value");
        cr_assert_eq(sd_dotenv_find(env, "DB_PASSWORD")->line, 2);
        cr_assert_eq(sd_dotenv_find(env, "EMPTY")->line, 10, "MULTI spans lines 7-9");
        cr_assert_null(sd_dotenv_find(env, "NOPE"));
}

Test(dotenv, removing_a_statement_span_removes_exactly_it) {
        const char *text = "A=1\n  # c\n  export B=\"x\ny\"  # b\nC=3";
        _cleanup_dotenv_ struct sd_dotenv *env = parse_ok(text);
        const struct sd_dotenv_entry *b = sd_dotenv_find(env, "B");
        char rest[64];
        (void) snprintf(rest, sizeof(rest), "%.*s%s", (int) b->start, text, text + b->end);
        cr_assert_str_eq(rest, "A=1\n  # c\n  C=3");
        _cleanup_dotenv_ struct sd_dotenv *again = parse_ok(rest);
        cr_assert_eq(again->n, 2);
        ASSERT_VALUE(again, "C", "3");
}

Test(dotenv, strict_refusals_name_the_line_never_the_value) {
        PARSE_FAILS("A=1\nB=\"canary-open\n", "t.env:2: the value of B has no closing '\"'");
        PARSE_FAILS("A='canary\\'", "t.env:1: the value of A has no closing \"'\"");
        PARSE_FAILS("A=\"x\" canary\n", "t.env:1: unexpected text after the quoted value of A");
        PARSE_FAILS("A=1\nB=2\nA=canary\n", "t.env:3: A is set again (first on line 1)");
        PARSE_FAILS("1A=canary\n", "t.env:1: '1A' is not a variable name");
        PARSE_FAILS("a.b=canary\n", "'a.b' is not a variable name");
        PARSE_FAILS("A = # canary\n", "the value of A starts with '#'");
        PARSE_FAILS("A=can\x0b" "ary\n", "the unquoted value of A holds a control character");
        PARSE_FAILS("A=canary\xc2\xa0\n", "non-ASCII space");
        PARSE_FAILS("A=can\0ary\n", "t.env:1: a NUL byte");
        PARSE_FAILS("X=1\nA=\xff\n", "t.env:2: not UTF-8 text");
        PARSE_FAILS("=canary\n", "expected a variable name");
        PARSE_FAILS("A canary\n", "unexpected text after the name A");
        PARSE_FAILS("'A=canary\n", "a quoted variable name has no closing quote");

        /* None of those messages shows the value. */
        sd_error err = { 0 };
        struct sd_dotenv *env = NULL;
        const char *bad[] = { "A=\"canary-x\" y", "A=canary\xc2\xa0", "A= #canary", "A=1\nA=canary" };
        for (size_t i = 0; i < 4; i++) {
                cr_assert_lt(sd_dotenv_parse(bad[i], strlen(bad[i]), "t.env", &env, &err), 0);
                cr_assert_null(strstr(err.message, "canary"), "'%s' shows the value", err.message);
        }
}

Test(dotenv, references_are_found) {
        const char *yes[] = { "${A}", "x${A:-b}y", "${}", "a${b}" };
        const char *no[] = { "$A", "${A", "}${", "pa$$word", "" };
        for (size_t i = 0; i < 4; i++) {
                struct sd_secret v = { .data = (unsigned char *) yes[i], .len = strlen(yes[i]) };
                cr_assert(sd_dotenv_has_reference(&v), "%s", yes[i]);
        }
        for (size_t i = 0; i < 5; i++) {
                struct sd_secret v = { .data = (unsigned char *) no[i], .len = strlen(no[i]) };
                cr_assert_not(sd_dotenv_has_reference(&v), "%s", no[i]);
        }
        cr_assert_not(sd_dotenv_has_reference(NULL));
}

Test(dotenv, variable_names) {
        cr_assert(sd_dotenv_name_valid("DB_PASSWORD", 11));
        cr_assert(sd_dotenv_name_valid("_x9", 3));
        cr_assert_not(sd_dotenv_name_valid("9x", 2));
        cr_assert_not(sd_dotenv_name_valid("a-b", 3));
        cr_assert_not(sd_dotenv_name_valid("", 0));
        char long_name[130];
        memset(long_name, 'A', sizeof(long_name));
        cr_assert(sd_dotenv_name_valid(long_name, 128));
        cr_assert_not(sd_dotenv_name_valid(long_name, 129));
}
