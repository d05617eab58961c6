/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * .env files the way docker-compose 1.29 reads them (python-dotenv 0.21's
 * parser.py, which compose calls for `.env` and `env_file:`), made strict:
 * include/secretd/dotenv.h lists the grammar and what is refused.  Messages
 * name the file, the line and the variable, never a value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/dotenv.h"
#include "secretd/names.h"

struct dotenv_parser {
        const unsigned char *d;
        size_t len, pos;
        unsigned line;           /* line of pos */
        const char *what;
        sd_error *err;
};

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *p, size_t left, uint32_t *cp_out) {
        uint32_t cp;
        size_t n;
        if (p[0] < 0x80) {
                *cp_out = p[0];
                return 1;
        } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
                cp = p[0] & 0x1f;
                n = 2;
        } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                cp = p[0] & 0x0f;
                n = 3;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                cp = p[0] & 0x07;
                n = 4;
        } else {
                return 0;
        }
        if (left < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *cp_out = cp;
        return n;
}

/* Unicode whitespace that Python's \s and str.rstrip() know beyond ASCII. */
static bool is_unicode_space(uint32_t cp) {
        return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
               cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* "what:line: message"; messages name variables, never values. */
static int parse_error(struct dotenv_parser *p, unsigned line, const char *fmt, ...) SD_PRINTF(3, 4);
static int parse_error(struct dotenv_parser *p, unsigned line, const char *fmt, ...) {
        char message[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        return sd_error_set(p->err, EINVAL, "%s:%u: %s", p->what, line, message);
}

/* A variable name as messages show it. */
static const char *shown_name(const char *name, char buf[64]) {
        return sd_escape_for_message(name, strlen(name), buf, 64);
}

static bool at_break(const struct dotenv_parser *p) {
        return p->pos < p->len && (p->d[p->pos] == '\n' || p->d[p->pos] == '\r');
}

/* Step over one line break (\r\n, \n or \r) at pos. */
static void skip_break(struct dotenv_parser *p) {
        if (p->d[p->pos] == '\r' && p->pos + 1 < p->len && p->d[p->pos + 1] == '\n')
                p->pos++;
        p->pos++;
        p->line++;
}

static void skip_blanks(struct dotenv_parser *p) {
        while (p->pos < p->len && (p->d[p->pos] == ' ' || p->d[p->pos] == '\t'))
                p->pos++;
}

static void skip_to_break(struct dotenv_parser *p) {
        while (p->pos < p->len && !at_break(p))
                p->pos++;
}

bool sd_dotenv_name_valid(const char *name, size_t len) {
        if (len == 0 || len > SD_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
                if (!letter && !(i > 0 && c >= '0' && c <= '9'))
                        return false;
        }
        return true;
}

/* The whole input is UTF-8 without NUL, or an error naming the line. */
static int check_encoding(struct dotenv_parser *p) {
        unsigned line = 1;
        for (size_t i = p->pos; i < p->len;) {
                uint32_t cp;
                size_t n = utf8_sequence(p->d + i, p->len - i, &cp);
                if (n == 0)
                        return parse_error(p, line, "not UTF-8 text");
                if (cp == 0)
                        return parse_error(p, line, "a NUL byte");
                if (cp == '\n' || (cp == '\r' && !(i + 1 < p->len && p->d[i + 1] == '\n')))
                        line++;
                i += n;
        }
        return 0;
}

/* A quoted value from pos (on the opening quote) to its closing quote.  The
 * closing quote is the first one not preceded by a backslash: that is where
 * python-dotenv's '((?:\\'|[^'])*)' stops when the quote exists, and with
 * none the value is refused rather than backtracked.  Escapes are decoded
 * and line breaks become \n, as Python's universal newlines read them. */
static int parse_quoted(struct dotenv_parser *p, const char *name, struct sd_secret **out) {
        unsigned char quote = p->d[p->pos];
        unsigned start_line = p->line;
        char shown[64];
        size_t open = ++p->pos;
        for (;;) {
                if (p->pos >= p->len)
                        return parse_error(p, start_line, "the value of %s has no closing %s",
                                           shown_name(name, shown), quote == '"' ? "'\"'" : "\"'\"");
                unsigned char c = p->d[p->pos];
                if (c == '\\' && p->pos + 1 < p->len && p->d[p->pos + 1] == quote)
                        p->pos += 2;
                else if (c == quote)
                        break;
                else if (c == '\n' || c == '\r')
                        skip_break(p);
                else
                        p->pos++;
        }
        size_t close = p->pos++;

        _cleanup_secret_ struct sd_secret *value = NULL;
        if (sd_secret_new(close - open, &value) < 0)
                return sd_error_set(p->err, ENOMEM, "%s: cannot allocate locked memory", p->what);
        size_t o = 0;
        for (size_t i = open; i < close; i++) {
                unsigned char c = p->d[i], next = i + 1 < close ? p->d[i + 1] : 0;
                if (c == '\r') {
                        value->data[o++] = '\n';
                        if (next == '\n')
                                i++;
                } else if (c == '\\' && quote == '\'' && (next == '\\' || next == '\'')) {
                        value->data[o++] = next;
                        i++;
                } else if (c == '\\' && quote == '"' && next && strchr("\\'\"abfnrtv", next)) {
                        static const char from[] = "\\'\"abfnrtv", to[] = "\\'\"\a\b\f\n\r\t\v";
                        value->data[o++] = (unsigned char) to[strchr(from, next) - from];
                        i++;
                } else {
                        value->data[o++] = c;
                }
        }
        value->len = o;
        *out = steal_pointer(&value);
        return 0;
}

/* An unquoted value: the rest of the line, cut before the first run of
 * whitespace followed by '#', trailing whitespace removed. */
static int parse_unquoted(struct dotenv_parser *p, const char *name, struct sd_secret **out) {
        size_t start = p->pos;
        char shown[64];
        skip_to_break(p);
        size_t end = p->pos;
        if (p->d[start] == '#')
                return parse_error(p, p->line,
                                   "the value of %s starts with '#', which compose takes as the value, not as a comment; "
                                   "quote the value or leave it empty",
                                   shown_name(name, shown));
        for (size_t i = start + 1; i < end; i++)
                if (p->d[i] == '#' && (p->d[i - 1] == ' ' || p->d[i - 1] == '\t')) {
                        end = i;
                        break;
                }
        while (end > start && (p->d[end - 1] == ' ' || p->d[end - 1] == '\t'))
                end--;
        for (size_t i = start; i < end;) {
                uint32_t cp;
                size_t n = utf8_sequence(p->d + i, end - i, &cp);
                if ((cp < 0x20 && cp != '\t') || cp == 0x7f || is_unicode_space(cp))
                        return parse_error(p, p->line,
                                           "the unquoted value of %s holds a control character or a non-ASCII space; "
                                           "quote the value",
                                           shown_name(name, shown));
                i += n;
        }
        if (sd_secret_new_from(p->d + start, end - start, out) < 0)
                return sd_error_set(p->err, ENOMEM, "%s: cannot allocate locked memory", p->what);
        return 0;
}

static int parse_statement(struct dotenv_parser *p, struct sd_dotenv_entry *e, bool *is_entry) {
        *is_entry = false;
        if (p->len - p->pos > 6 && memcmp(p->d + p->pos, "export", 6) == 0 &&
            (p->d[p->pos + 6] == ' ' || p->d[p->pos + 6] == '\t')) {
                p->pos += 6;
                skip_blanks(p);
        }
        if (p->pos < p->len && p->d[p->pos] == '#') {
                skip_to_break(p);
                if (p->pos < p->len)
                        skip_break(p);
                return 0;
        }

        size_t key_start, key_end;
        if (p->pos < p->len && p->d[p->pos] == '\'') {
                key_start = ++p->pos;
                while (p->pos < p->len && p->d[p->pos] != '\'' && !at_break(p))
                        p->pos++;
                if (p->pos >= p->len || p->d[p->pos] != '\'')
                        return parse_error(p, p->line, "a quoted variable name has no closing quote");
                key_end = p->pos++;
        } else {
                key_start = p->pos;
                while (p->pos < p->len && !strchr("=# \t\r\n", p->d[p->pos]))
                        p->pos++;
                key_end = p->pos;
        }
        if (key_end == key_start)
                return parse_error(p, p->line, "expected a variable name (NAME=VALUE)");
        e->name = strndup((const char *) p->d + key_start, key_end - key_start);
        if (!e->name)
                return sd_error_set(p->err, ENOMEM, "out of memory");
        char shown[64];
        if (!sd_dotenv_name_valid(e->name, key_end - key_start))
                return parse_error(p, p->line,
                                   "'%s' is not a variable name (letters, digits and '_', not starting with a digit)",
                                   shown_name(e->name, shown));

        skip_blanks(p);
        if (p->pos < p->len && p->d[p->pos] == '=') {
                p->pos++;
                skip_blanks(p);
                int r;
                if (p->pos >= p->len || at_break(p))
                        r = sd_secret_new(0, &e->value) < 0
                                    ? sd_error_set(p->err, ENOMEM, "%s: cannot allocate locked memory", p->what)
                                    : 0;
                else if (p->d[p->pos] == '\'' || p->d[p->pos] == '"')
                        r = parse_quoted(p, e->name, &e->value);
                else
                        r = parse_unquoted(p, e->name, &e->value);
                if (r < 0)
                        return r;
        }

        skip_blanks(p);
        if (p->pos < p->len && p->d[p->pos] == '#')
                skip_to_break(p);
        if (p->pos < p->len && !at_break(p))
                return parse_error(p, p->line, "unexpected text after %s %s; %s",
                                   e->value ? "the quoted value of" : "the name", shown_name(e->name, shown),
                                   e->value ? "quote the whole value or start a comment with ' #'" : "write NAME=VALUE");
        if (p->pos < p->len)
                skip_break(p);
        *is_entry = true;
        return 0;
}

static void entry_clear(struct sd_dotenv_entry *e) {
        free(e->name);
        sd_secret_free(e->value);
        *e = (struct sd_dotenv_entry) { 0 };
}

void sd_dotenv_free(struct sd_dotenv *env) {
        if (!env)
                return;
        for (size_t i = 0; i < env->n; i++)
                entry_clear(&env->entries[i]);
        free(env->entries);
        free(env);
}

const struct sd_dotenv_entry *sd_dotenv_find(const struct sd_dotenv *env, const char *name) {
        for (size_t i = 0; env && i < env->n; i++)
                if (strcmp(env->entries[i].name, name) == 0)
                        return &env->entries[i];
        return NULL;
}

int sd_dotenv_parse(const void *data, size_t len, const char *what, struct sd_dotenv **out, sd_error *err) {
        sd_error local = { 0 };
        struct dotenv_parser p = {
                .d = data, .len = len, .line = 1, .what = what, .err = err ? err : &local,
        };
        _cleanup_dotenv_ struct sd_dotenv *env = calloc(1, sizeof(*env));
        if (!env)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                p.pos = env->bom = 3;
        int r = check_encoding(&p);
        if (r < 0)
                return r;

        size_t cap = 0;
        for (;;) {
                while (p.pos < p.len && (p.d[p.pos] == ' ' || p.d[p.pos] == '\t' || at_break(&p))) {
                        if (at_break(&p))
                                skip_break(&p);
                        else
                                p.pos++;
                }
                if (p.pos >= p.len)
                        break;

                struct sd_dotenv_entry e = { .line = p.line, .start = p.pos };
                bool is_entry;
                r = parse_statement(&p, &e, &is_entry);
                if (r < 0) {
                        entry_clear(&e);
                        return r;
                }
                if (!is_entry)
                        continue;
                e.end = p.pos;
                const struct sd_dotenv_entry *first = sd_dotenv_find(env, e.name);
                if (first) {
                        char shown[64];
                        r = parse_error(&p, e.line, "%s is set again (first on line %u)", shown_name(e.name, shown),
                                        first->line);
                        entry_clear(&e);
                        return r;
                }
                if (env->n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct sd_dotenv_entry *bigger = reallocarray(env->entries, ncap, sizeof(*bigger));
                        if (!bigger) {
                                entry_clear(&e);
                                return sd_error_set(err, ENOMEM, "out of memory");
                        }
                        env->entries = bigger;
                        cap = ncap;
                }
                env->entries[env->n++] = e;
        }
        *out = steal_pointer(&env);
        return 0;
}

bool sd_dotenv_has_reference(const struct sd_secret *value) {
        if (!value || value->len < 3)
                return false;
        const unsigned char *open = memmem(value->data, value->len, "${", 2);
        return open && memchr(open + 2, '}', value->len - (size_t) (open + 2 - value->data));
}
