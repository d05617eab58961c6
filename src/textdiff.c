/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A unified diff: Myers' O(ND) line diff, then hunks with context. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "strbuf.h"
#include "textdiff.h"

#define DIFF_MAX_LINES 100000
#define DIFF_MAX_EDITS 1000

struct line {
        const char *s;
        size_t len;   /* with its '\n', if it has one */
};

struct lines {
        struct line *v;
        size_t n;
};

enum op_kind { OP_SAME, OP_DEL, OP_ADD };
struct op {
        enum op_kind kind;
        size_t old_i, new_i;   /* the line in old (SAME, DEL) and in new (SAME, ADD) */
};

static int split_lines(const char *text, size_t len, struct lines *out) {
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                if (text[i] == '\n')
                        n++;
        if (len > 0 && text[len - 1] != '\n')
                n++;
        if (n > DIFF_MAX_LINES)
                return -E2BIG;
        out->v = calloc(n ? n : 1, sizeof(*out->v));
        if (!out->v)
                return -ENOMEM;
        out->n = 0;
        for (size_t start = 0; start < len;) {
                const char *nl = memchr(text + start, '\n', len - start);
                size_t end = nl ? (size_t) (nl - text) + 1 : len;
                out->v[out->n++] = (struct line) { text + start, end - start };
                start = end;
        }
        return 0;
}

static void lines_free(struct lines *l) {
        free(l->v);
}

static bool same_line(const struct line *a, const struct line *b) {
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* The edit script, in order, into *ops_out; -E2BIG beyond DIFF_MAX_EDITS. */
static int myers(const struct lines *a, const struct lines *b, struct op **ops_out, size_t *n_out) {
        size_t n = a->n, m = b->n, max = n + m;
        if (max > (size_t) INT32_MAX / 2)
                return -E2BIG;
        size_t dmax = max < DIFF_MAX_EDITS ? max : DIFF_MAX_EDITS;
        /* trace[d] is V as it stood before step d, for k in [-d, d]. */
        _cleanup_free_ int32_t *v = calloc(2 * dmax + 3, sizeof(*v));
        _cleanup_free_ int32_t **trace = calloc(dmax + 1, sizeof(*trace));
        if (!v || !trace)
                return -ENOMEM;
        int32_t *V = v + dmax + 1;
        long found = -1;
        for (long d = 0; d <= (long) dmax && found < 0; d++) {
                trace[d] = malloc((2 * (size_t) d + 1) * sizeof(int32_t));
                if (!trace[d]) {
                        for (long i = 0; i < d; i++)
                                free(trace[i]);
                        return -ENOMEM;
                }
                memcpy(trace[d], V - d, (2 * (size_t) d + 1) * sizeof(int32_t));
                for (long k = -d; k <= d; k += 2) {
                        long x = (k == -d || (k != d && V[k - 1] < V[k + 1])) ? V[k + 1] : V[k - 1] + 1;
                        long y = x - k;
                        while (x >= 0 && y >= 0 && (size_t) x < n && (size_t) y < m && same_line(&a->v[x], &b->v[y]))
                                x++, y++;
                        V[k] = (int32_t) x;
                        if ((size_t) x == n && y >= 0 && (size_t) y == m) {
                                found = d;
                                break;
                        }
                }
        }
        int r = 0;
        struct op *ops = NULL;
        if (found < 0) {
                r = -E2BIG;
        } else if (!(ops = calloc(n + m + 1, sizeof(*ops)))) {
                r = -ENOMEM;
        } else {
                size_t count = 0;
                long x = (long) n, y = (long) m;
                for (long d = found; d > 0; d--) {
                        const int32_t *Vd = trace[d] + d;
                        long k = x - y;
                        long pk = (k == -d || (k != d && Vd[k - 1] < Vd[k + 1])) ? k + 1 : k - 1;
                        long px = Vd[pk], py = px - pk;
                        while (x > px && y > py) {
                                x--, y--;
                                ops[count++] = (struct op) { OP_SAME, (size_t) x, (size_t) y };
                        }
                        if (x == px) {
                                y--;
                                ops[count++] = (struct op) { OP_ADD, (size_t) x, (size_t) y };
                        } else {
                                x--;
                                ops[count++] = (struct op) { OP_DEL, (size_t) x, (size_t) y };
                        }
                }
                while (x > 0 && y > 0) {
                        x--, y--;
                        ops[count++] = (struct op) { OP_SAME, (size_t) x, (size_t) y };
                }
                for (size_t i = 0; i < count / 2; i++) {
                        struct op t = ops[i];
                        ops[i] = ops[count - 1 - i];
                        ops[count - 1 - i] = t;
                }
                *ops_out = ops;
                *n_out = count;
        }
        for (long d = 0; d <= (long) dmax && trace[d]; d++)
                free(trace[d]);
        return r;
}

static void emit_line(struct sd_strbuf *o, char prefix, const struct line *l) {
        sd_strbuf_add(o, &prefix, 1);
        sd_strbuf_add(o, l->s, l->len);
        if (l->len == 0 || l->s[l->len - 1] != '\n')
                sd_strbuf_add(o, "\n\\ No newline at end of file\n", 29);
}

/* "-start,count" as diff -u writes it: an empty range names the line before. */
static void emit_range(struct sd_strbuf *o, char sign, size_t first, size_t count) {
        if (count == 1)
                sd_strbuf_printf(o, "%c%zu", sign, first + 1);
        else
                sd_strbuf_printf(o, "%c%zu,%zu", sign, count ? first + 1 : first, count);
}

static void emit_hunks(struct sd_strbuf *o, const struct lines *a, const struct lines *b, const struct op *ops, size_t n,
                       unsigned context) {
        size_t i = 0;
        while (i < n) {
                while (i < n && ops[i].kind == OP_SAME)
                        i++;
                if (i == n)
                        break;
                size_t start = i >= context ? i - context : 0, end = i;
                /* Extend over changes closer than 2 * context lines apart. */
                for (;;) {
                        while (end < n && ops[end].kind != OP_SAME)
                                end++;
                        size_t same = 0;
                        while (end + same < n && ops[end + same].kind == OP_SAME)
                                same++;
                        if (end + same < n && same <= 2 * (size_t) context) {
                                end += same;
                                continue;
                        }
                        end += same < context ? same : context;
                        break;
                }
                size_t old_first = SIZE_MAX, new_first = SIZE_MAX, old_count = 0, new_count = 0;
                for (size_t j = start; j < end; j++) {
                        if (ops[j].kind != OP_ADD) {
                                if (old_first == SIZE_MAX)
                                        old_first = ops[j].old_i;
                                old_count++;
                        }
                        if (ops[j].kind != OP_DEL) {
                                if (new_first == SIZE_MAX)
                                        new_first = ops[j].new_i;
                                new_count++;
                        }
                }
                if (old_first == SIZE_MAX)
                        old_first = ops[start].old_i;
                if (new_first == SIZE_MAX)
                        new_first = ops[start].new_i;
                sd_strbuf_add(o, "@@ ", 3);
                emit_range(o, '-', old_first, old_count);
                sd_strbuf_add(o, " ", 1);
                emit_range(o, '+', new_first, new_count);
                sd_strbuf_add(o, " @@\n", 4);
                for (size_t j = start; j < end; j++)
                        emit_line(o, ops[j].kind == OP_SAME ? ' ' : ops[j].kind == OP_DEL ? '-' : '+',
                                  ops[j].kind == OP_ADD ? &b->v[ops[j].new_i] : &a->v[ops[j].old_i]);
                i = end;
        }
}

int sd_text_diff(const char *old_name, const char *old, size_t old_len, const char *new_name, const char *new,
                 size_t new_len, unsigned context, char **out, size_t *len, sd_error *err) {
        if (old_len == new_len && memcmp(old, new, old_len) == 0)
                return 0;
        _cleanup_(lines_free) struct lines a = { 0 }, b = { 0 };
        int r = split_lines(old, old_len, &a);
        if (r >= 0)
                r = split_lines(new, new_len, &b);
        _cleanup_free_ struct op *ops = NULL;
        size_t n_ops = 0;
        if (r >= 0)
                r = myers(&a, &b, &ops, &n_ops);
        if (r == -E2BIG) {
                /* Too big to be worth a line diff: replace everything. */
                free(ops);
                ops = calloc(a.n + b.n + 1, sizeof(*ops));
                if (!ops)
                        return sd_error_set(err, ENOMEM, "out of memory");
                n_ops = 0;
                for (size_t i = 0; i < a.n; i++)
                        ops[n_ops++] = (struct op) { OP_DEL, i, 0 };
                for (size_t i = 0; i < b.n; i++)
                        ops[n_ops++] = (struct op) { OP_ADD, a.n, i };
                r = 0;
        }
        if (r < 0)
                return sd_error_set(err, -r, "diff: out of memory");

        struct sd_strbuf o = { .s = *out, .len = *out ? *len : 0, .cap = *out ? *len + 1 : 0 };
        sd_strbuf_printf(&o, "--- %s\n+++ %s\n", old_name, new_name);
        emit_hunks(&o, &a, &b, ops, n_ops, context);
        *out = sd_strbuf_steal(&o, len);
        if (!*out)
                return sd_error_set(err, ENOMEM, "diff: out of memory");
        return 0;
}
