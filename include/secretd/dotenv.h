/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * .env files, as docker-compose 1.29 reads them for `.env` and `env_file:`.
 * compose hands both to python-dotenv 0.21 (dotenv_values(), encoding
 * utf-8-sig), so its grammar is the reference; docs/migrating.md states it.
 * Per statement:
 *
 *     [export ]KEY[ ]=[ ]VALUE[ ][# comment]
 *
 *   - blank lines and lines starting with '#' are skipped; a UTF-8 byte
 *     order mark at the start is dropped; lines end in \n, \r\n or \r;
 *   - KEY may be single-quoted ('KEY'); "KEY" (no '=') has no value;
 *   - 'VALUE': taken as written, except \\ and \' (may span lines);
 *   - "VALUE": \\ \' \" \a \b \f \n \r \t \v are decoded, any other
 *     backslash is kept (may span lines);
 *   - VALUE unquoted: the rest of the line, cut at the first whitespace
 *     followed by '#', trailing whitespace removed ("A=b#c" is "b#c");
 *   - after a closing quote only whitespace and a '#' comment may follow.
 *
 * The parser is strict where python-dotenv is lenient or surprising, and
 * refuses, naming the file and line (never the value):
 *   - a line python-dotenv skips with "could not parse statement";
 *   - a quoted value with no closing quote (python-dotenv then backtracks to
 *     the last escaped quote of the file);
 *   - a KEY that is not [A-Za-z_][A-Za-z0-9_]*, a KEY set twice;
 *   - bytes that are not UTF-8, NUL, whitespace other than space and tab
 *     between tokens, control characters or non-ASCII spaces in an unquoted
 *     value (python-dotenv's \s and rstrip() would eat some of them).
 * It never interpolates: sd_dotenv_has_reference() finds values that
 * compose would.
 */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"
#include "secretd/secret.h"

struct sd_dotenv_entry {
        char *name;                /* the KEY (never secret), malloc()ed */
        struct sd_secret *value;   /* locked memory; NULL for a KEY without '=' */
        unsigned line;             /* 1-based line where the statement starts */
        size_t start, end;         /* bytes of the statement, from its first byte
                                    * (after leading blank lines) through its line
                                    * end: removing [start, end) removes it */
};

struct sd_dotenv {
        struct sd_dotenv_entry *entries;   /* in file order */
        size_t n;
        size_t bom;                        /* 3 if the input started with a BOM, else 0 */
};

/* Parse data[0..len) (keep it in locked memory: it holds the values).  what
 * names the input in messages ("app.env": "app.env:3: ...").  On success
 * *out owns every name and value. */
int sd_dotenv_parse(const void *data, size_t len, const char *what, struct sd_dotenv **out,
                    sd_error *err);

void sd_dotenv_free(struct sd_dotenv *env);
static inline void sd_dotenv_freep(struct sd_dotenv **env) {
        sd_dotenv_free(*env);
        *env = NULL;
}
#define _cleanup_dotenv_ _cleanup_(sd_dotenv_freep)

/* The entry for name, or NULL. */
const struct sd_dotenv_entry *sd_dotenv_find(const struct sd_dotenv *env, const char *name);

/* True if value holds "${" with a "}" after it: what compose (and
 * python-dotenv) would read as a reference to another variable, such as
 * ${DB_PASSWORD} or ${X:-default}. */
bool sd_dotenv_has_reference(const struct sd_secret *value);

/* True if name is a variable name this parser accepts: [A-Za-z_][A-Za-z0-9_]*,
 * at most 128 bytes. */
bool sd_dotenv_name_valid(const char *name, size_t len);
