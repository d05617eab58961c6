/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal: a unified diff of two texts (what `diff -u` prints), for
 * showing what compose migrate changes. */

#include <stddef.h>

#include "secretd/error.h"

/* Append to *out (malloc()ed, NUL-terminated, *len updated; *out may start
 * NULL) the unified diff, with `context` lines of context, of old -> new,
 * headed "--- old_name" / "+++ new_name".  Identical texts append nothing.
 * Texts of more than 100000 lines, or whose lines differ in more than 4000
 * places, come out as one hunk replacing everything. */
int sd_text_diff(const char *old_name, const char *old, size_t old_len, const char *new_name, const char *new,
                 size_t new_len, unsigned context, char **out, size_t *len, sd_error *err);
