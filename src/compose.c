/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * compose migrate's planner (include/secretd/compose.h).
 *
 * The compose file is read with libyaml into a small tree that remembers
 * where each node is in the text; the new file is the old text with edits
 * at those places, so comments, order and quoting survive.  libyaml's marks
 * count characters (a \r\n is two), hence the character-to-byte table.
 *
 * Plaintext: a compose file may hold secret values, so the text, every
 * decoded scalar (an arena in locked memory) and every interpolated value
 * stay in sodium memory, and each scalar libyaml hands over is zeroed
 * before libyaml frees it, as are its input buffers.  libyaml's own scratch
 * copies while it scans a scalar longer than 16 bytes are freed without
 * being zeroed (it has no allocator hooks): docs/migrating.md says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "secretd/compose.h"
#include "secretd/migrate.h"
#include "strbuf.h"
#include "textdiff.h"

#define SECRETS_DIR "/run/secrets"
#define REDACTED "<redacted>"

/* ------------------------------------------------------------ YAML tree -- */

enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ };

struct ynode {
        enum ynode_kind kind;
        size_t start, end;        /* its bytes in the text */
        unsigned line, col;       /* 1-based, of start */
        bool flow;                /* a {...} or [...] collection */
        bool block_scalar;        /* | or > */
        bool plain;               /* an untagged plain scalar (YAML 1.1 may read a number, bool, null) */
        const char *value;        /* scalars: decoded, NUL-terminated, in the locked arena */
        size_t len;
        struct ynode **items;     /* maps: key, value, key, value, ...; sequences: items */
        size_t n, cap;
};

struct ydoc {
        const char *name;
        const char *text;
        size_t len;
        struct ynode *root;
        struct sd_secret *arena;
        size_t arena_used;
        uint32_t *offsets;        /* byte offset of each character libyaml counts */
        size_t n_chars;
        struct ynode **nodes;     /* all of them, for freeing */
        size_t n_nodes, cap_nodes;
};

static void ydoc_free(struct ydoc *d) {
        for (size_t i = 0; i < d->n_nodes; i++) {
                free(d->nodes[i]->items);
                free(d->nodes[i]);
        }
        free(d->nodes);
        free(d->offsets);
        sd_secret_free(d->arena);
        *d = (struct ydoc) { 0 };
}

static size_t byte_at(const struct ydoc *d, size_t char_index) {
        return d->offsets[char_index < d->n_chars ? char_index : d->n_chars];
}

static int ydoc_error(const struct ydoc *d, sd_error *err, int code, unsigned line, unsigned col, const char *fmt,
                      ...) SD_PRINTF(6, 7);
static int ydoc_error(const struct ydoc *d, sd_error *err, int code, unsigned line, unsigned col, const char *fmt,
                      ...) {
        char message[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        return sd_error_set(err, code, "%s:%u:%u: %s", d->name, line, col, message);
}
#define node_error(d, err, node, ...) ydoc_error(d, err, EINVAL, (node)->line, (node)->col, __VA_ARGS__)

static struct ynode *ynode_new(struct ydoc *d, enum ynode_kind kind, const yaml_mark_t *start) {
        if (d->n_nodes == d->cap_nodes) {
                size_t cap = d->cap_nodes ? d->cap_nodes * 2 : 64;
                struct ynode **more = reallocarray(d->nodes, cap, sizeof(*more));
                if (!more)
                        return NULL;
                d->nodes = more;
                d->cap_nodes = cap;
        }
        struct ynode *n = calloc(1, sizeof(*n));
        if (!n)
                return NULL;
        n->kind = kind;
        n->start = n->end = byte_at(d, start->index);
        n->line = (unsigned) start->line + 1;
        n->col = (unsigned) start->column + 1;
        d->nodes[d->n_nodes++] = n;
        return n;
}

static const char *scalar_shown(const struct ynode *n, char buf[64]) {
        return sd_escape_for_message(n->value, n->len, buf, 64);
}

static int ynode_append(struct ydoc *d, struct ynode *parent, struct ynode *child, sd_error *err) {
        if (parent->kind == YN_MAP && parent->n % 2 == 0) {
                if (child->kind != YN_SCALAR)
                        return node_error(d, err, child, "a mapping key that is not a plain value is not supported");
                for (size_t i = 0; i < parent->n; i += 2)
                        if (parent->items[i]->len == child->len &&
                            memcmp(parent->items[i]->value, child->value, child->len) == 0) {
                                char shown[64];
                                return node_error(d, err, child, "duplicate key '%s' (first on line %u)",
                                                  scalar_shown(child, shown), parent->items[i]->line);
                        }
        }
        if (parent->n == parent->cap) {
                size_t cap = parent->cap ? parent->cap * 2 : 8;
                struct ynode **more = reallocarray(parent->items, cap, sizeof(*more));
                if (!more)
                        return sd_error_set(err, ENOMEM, "out of memory");
                parent->items = more;
                parent->cap = cap;
        }
        parent->items[parent->n++] = child;
        return 0;
}

/* Anchors, aliases and tags other than !!str: refused, with where. */
static int check_properties(struct ydoc *d, const yaml_event_t *e, const yaml_char_t *anchor,
                            const yaml_char_t *tag, bool scalar, sd_error *err) {
        unsigned line = (unsigned) e->start_mark.line + 1, col = (unsigned) e->start_mark.column + 1;
        if (anchor)
                return ydoc_error(d, err, EINVAL, line, col,
                                  "YAML anchors (&name) and aliases (*name) are not supported; write the values out");
        if (tag && !(scalar && strcmp((const char *) tag, YAML_STR_TAG) == 0))
                return ydoc_error(d, err, EINVAL, line, col, "YAML tags other than !!str are not supported");
        return 0;
}

static int ydoc_load(struct ydoc *d, const char *name, const char *text, size_t len, sd_error *err) {
        *d = (struct ydoc) { .name = name, .text = text, .len = len };
        size_t base = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
        d->offsets = calloc(len - base + 1, sizeof(*d->offsets));
        if (!d->offsets || len > UINT32_MAX)
                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
        /* YAML 1.1 also breaks lines at a lone \r, U+0085, U+2028 and
         * U+2029; the rewriting inserts after \n only, so they are refused. */
        unsigned line = 1;
        for (size_t i = base; i < len; i++) {
                const unsigned char *u = (const unsigned char *) text + i;
                if ((u[0] == '\r' && (i + 1 >= len || u[1] != '\n')) ||
                    (u[0] == 0xc2 && i + 1 < len && u[1] == 0x85) ||
                    (u[0] == 0xe2 && i + 2 < len && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9)))
                        return sd_error_set(err, EINVAL,
                                            "%s:%u: a line break other than \\n or \\r\\n (a lone \\r, U+0085, U+2028 "
                                            "or U+2029); save the file with Unix or DOS line ends",
                                            name, line);
                line += u[0] == '\n';
                if ((u[0] & 0xc0) != 0x80)
                        d->offsets[d->n_chars++] = (uint32_t) i;
        }
        d->offsets[d->n_chars] = (uint32_t) len;
        /* A decoded scalar is at most 1.5 times its source ("\L" is 3 bytes),
         * plus its NUL. */
        if (sd_secret_new(2 * len + 16, &d->arena) < 0)
                return sd_error_set(err, ENOMEM, "%s: cannot allocate locked memory", name);

        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser))
                return sd_error_set(err, ENOMEM, "%s: out of memory", name);
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);

        enum { STACK_MAX = 64 };
        struct ynode *stack[STACK_MAX];
        size_t depth = 0;
        unsigned documents = 0;
        int r = 0;
        for (bool done = false; !done && r == 0;) {
                yaml_event_t e;
                if (!yaml_parser_parse(&parser, &e)) {
                        if (parser.error == YAML_MEMORY_ERROR)
                                r = sd_error_set(err, ENOMEM, "%s: out of memory", name);
                        else if (parser.context)
                                r = ydoc_error(d, err, EINVAL, (unsigned) parser.problem_mark.line + 1,
                                               (unsigned) parser.problem_mark.column + 1,
                                               "not valid YAML: %s %s (line %u column %u)", parser.problem,
                                               parser.context, (unsigned) parser.context_mark.line + 1,
                                               (unsigned) parser.context_mark.column + 1);
                        else
                                r = ydoc_error(d, err, EINVAL, (unsigned) parser.problem_mark.line + 1,
                                               (unsigned) parser.problem_mark.column + 1, "not valid YAML: %s",
                                               parser.problem ? parser.problem : "parse error");
                        break;
                }
                struct ynode *node = NULL;
                switch (e.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1)
                                r = ydoc_error(d, err, EINVAL, (unsigned) e.start_mark.line + 1,
                                               (unsigned) e.start_mark.column + 1,
                                               "a second YAML document; a compose file has one");
                        break;
                case YAML_ALIAS_EVENT:
                        r = check_properties(d, &e, e.data.alias.anchor, NULL, false, err);
                        break;
                case YAML_SCALAR_EVENT:
                        r = check_properties(d, &e, e.data.scalar.anchor, e.data.scalar.tag, true, err);
                        if (r < 0)
                                break;
                        if (!(node = ynode_new(d, YN_SCALAR, &e.start_mark))) {
                                r = sd_error_set(err, ENOMEM, "out of memory");
                                break;
                        }
                        node->end = byte_at(d, e.end_mark.index);
                        node->plain = e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !e.data.scalar.tag;
                        node->block_scalar = e.data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                                             e.data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
                        if (d->arena_used + e.data.scalar.length + 1 > d->arena->len) {
                                r = node_error(d, err, node, "a value longer than the file allows");
                                break;
                        }
                        node->value = (const char *) d->arena->data + d->arena_used;
                        node->len = e.data.scalar.length;
                        memcpy(d->arena->data + d->arena_used, e.data.scalar.value, node->len);
                        d->arena->data[d->arena_used + node->len] = '\0';
                        d->arena_used += node->len + 1;
                        sodium_memzero(e.data.scalar.value, e.data.scalar.length);
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT: {
                        bool map = e.type == YAML_MAPPING_START_EVENT;
                        r = check_properties(d, &e, map ? e.data.mapping_start.anchor : e.data.sequence_start.anchor,
                                             map ? e.data.mapping_start.tag : e.data.sequence_start.tag, false, err);
                        if (r < 0)
                                break;
                        if (!(node = ynode_new(d, map ? YN_MAP : YN_SEQ, &e.start_mark))) {
                                r = sd_error_set(err, ENOMEM, "out of memory");
                                break;
                        }
                        node->flow = map ? e.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                                         : e.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
                        break;
                }
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT: {
                        struct ynode *c = stack[--depth];
                        /* A block collection ends with its last item; a flow
                         * one with its closing bracket. */
                        if (c->flow)
                                c->end = byte_at(d, e.end_mark.index);
                        else if (c->n > 0)
                                c->end = c->items[c->n - 1]->end;
                        break;
                }
                default:
                        break;
                }
                if (r == 0 && node) {
                        if (depth > 0)
                                r = ynode_append(d, stack[depth - 1], node, err);
                        else
                                d->root = node;
                        if (r == 0 && node->kind != YN_SCALAR) {
                                if (depth == STACK_MAX)
                                        r = node_error(d, err, node, "nested more than %d levels deep", STACK_MAX);
                                else
                                        stack[depth++] = node;
                        }
                }
                yaml_event_delete(&e);
        }
        /* libyaml frees these without zeroing; they held the text. */
        if (parser.buffer.start)
                sodium_memzero(parser.buffer.start, (size_t) (parser.buffer.end - parser.buffer.start));
        if (parser.raw_buffer.start)
                sodium_memzero(parser.raw_buffer.start, (size_t) (parser.raw_buffer.end - parser.raw_buffer.start));
        yaml_parser_delete(&parser);
        if (r == 0 && !d->root)
                r = sd_error_set(err, EINVAL, "%s: empty; not a compose file", name);
        return r;
}

static bool scalar_eq(const struct ynode *n, const char *s) {
        return n && n->kind == YN_SCALAR && n->len == strlen(s) && memcmp(n->value, s, n->len) == 0;
}

/* A null: an empty or ~/null plain scalar. */
static bool is_null(const struct ynode *n) {
        return n->kind == YN_SCALAR && n->plain &&
               (n->len == 0 || scalar_eq(n, "~") || scalar_eq(n, "null") || scalar_eq(n, "Null") ||
                scalar_eq(n, "NULL"));
}

static struct ynode *map_get(const struct ynode *map, const char *key, struct ynode **key_out) {
        if (!map || map->kind != YN_MAP)
                return NULL;
        for (size_t i = 0; i + 1 < map->n; i += 2)
                if (scalar_eq(map->items[i], key)) {
                        if (key_out)
                                *key_out = map->items[i];
                        return map->items[i + 1];
                }
        return NULL;
}

/* -------------------------------------------------------------- planner -- */

struct edit {
        size_t start, end;   /* replace text[start, end) */
        char *text;
        size_t order;        /* creation order, for edits at one place */
};

struct edits {
        struct edit *v;
        size_t n, cap;
};

static void edits_free(struct edits *e) {
        for (size_t i = 0; i < e->n; i++)
                free(e->v[i].text);
        free(e->v);
        *e = (struct edits) { 0 };
}

/* Takes text (NULL: ENOMEM from the caller's allocation). */
static int edits_add(struct edits *e, size_t start, size_t end, char *text) {
        if (!text)
                return -ENOMEM;
        if (e->n == e->cap) {
                size_t cap = e->cap ? e->cap * 2 : 16;
                struct edit *more = reallocarray(e->v, cap, sizeof(*more));
                if (!more) {
                        free(text);
                        return -ENOMEM;
                }
                e->v = more;
                e->cap = cap;
        }
        e->v[e->n] = (struct edit) { start, end, text, e->n };
        e->n++;
        return 0;
}

static int edit_cmp(const void *a, const void *b) {
        const struct edit *x = a, *y = b;
        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

/* text with the edits applied; -EINVAL if two overlap (a planner bug). */
static int edits_apply(const char *text, size_t len, struct edits *e, char **out, size_t *out_len) {
        if (e->n > 0)
                qsort(e->v, e->n, sizeof(*e->v), edit_cmp);
        struct sd_strbuf b = { 0 };
        size_t at = 0;
        for (size_t i = 0; i < e->n; i++) {
                if (e->v[i].start < at || e->v[i].end > len) {
                        sd_strbuf_free(&b);
                        return -EINVAL;
                }
                sd_strbuf_add(&b, text + at, e->v[i].start - at);
                sd_strbuf_adds(&b, e->v[i].text);
                at = e->v[i].end;
        }
        sd_strbuf_add(&b, text + at, len - at);
        *out = sd_strbuf_steal(&b, out_len);
        return *out ? 0 : -ENOMEM;
}

/* One env_file of the project, read once however many services name it. */
struct envfile {
        char *path;                    /* as written (interpolated), relative to dirfd */
        struct sd_secret *text;
        struct sd_dotenv *env;
        mode_t mode;
        bool *remove;                  /* per entry: a migrated variable */
        bool changed;
        char *new_path;
};

struct service_secret {
        char variable[SD_NAME_MAX + 1];
        char secret[SD_NAME_MAX + 1];
};

static int service_secret_cmp(const void *a, const void *b) {
        const struct service_secret *x = a, *y = b;
        return strcmp(x->secret, y->secret);
}

struct planner {
        const struct sd_compose_options *o;
        struct ydoc doc;
        sd_error *err;
        struct edits edits, shown;     /* for the new file, and for the original as the diff shows it */
        struct envfile *files;
        size_t n_files;
        struct sd_compose_plan *plan;
        unsigned unit;                 /* indentation step of the file */
        struct ynode *volumes;         /* top-level volumes:, if any */
        struct ynode *volumes_key;
        struct sd_strbuf warnings;
};

/* A value built by interpolation: plaintext, so locked memory. */
struct locked_buf {
        struct sd_secret *s;
        size_t len;
};

static int locked_add(struct locked_buf *b, const char *s, size_t n) {
        if (!b->s || b->len + n + 1 > b->s->len) {
                size_t cap = b->s ? b->s->len * 2 : 64;
                while (cap < b->len + n + 1)
                        cap *= 2;
                struct sd_secret *bigger;
                if (sd_secret_new(cap, &bigger) < 0)
                        return -ENOMEM;
                if (b->s)
                        memcpy(bigger->data, b->s->data, b->len);
                sd_secret_free(b->s);
                b->s = bigger;
        }
        memcpy(b->s->data + b->len, s, n);
        b->len += n;
        b->s->data[b->len] = '\0';
        return 0;
}

/* The .env value of name, or NULL if .env does not set it. */
static int dotenv_lookup(struct planner *p, const struct ynode *at, const char *name, size_t name_len,
                         const struct sd_secret **out) {
        char key[SD_NAME_MAX + 1];
        *out = NULL;
        if (name_len > SD_NAME_MAX)
                return 0;
        memcpy(key, name, name_len);
        key[name_len] = '\0';
        const struct sd_dotenv_entry *e = p->o->dotenv ? sd_dotenv_find(p->o->dotenv, key) : NULL;
        if (!e || !e->value)
                return 0;
        if (sd_dotenv_has_reference(e->value))
                return node_error(&p->doc, p->err, at,
                                  "%s sets %s to a value holding a reference (${...}), which compose would expand "
                                  "from your shell; put the value itself in %s",
                                  p->o->dotenv_name, key, p->o->dotenv_name);
        *out = e->value;
        return 0;
}

static bool ident_char(char c, bool first) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

/* docker-compose 1.29's interpolation of one scalar of node (its
 * TemplateWithDefaults): $$, $NAME, ${NAME}, ${NAME:-default},
 * ${NAME-default}, ${NAME:?error}, ${NAME?error}, from .env only (never the
 * caller's environment, so the result does not depend on who runs it).  An
 * unset NAME without a default is an error here, where compose would warn
 * and use "". */
static int interpolate(struct planner *p, const struct ynode *node, const char *s, size_t len,
                       struct sd_secret **out) {
        struct locked_buf b = { 0 };
        int r = 0;
        for (size_t i = 0; i < len && r == 0;) {
                if (s[i] != '$') {
                        size_t j = i;
                        while (j < len && s[j] != '$')
                                j++;
                        r = locked_add(&b, s + i, j - i);
                        i = j;
                        continue;
                }
                if (i + 1 < len && s[i + 1] == '$') {
                        r = locked_add(&b, "$", 1);
                        i += 2;
                        continue;
                }
                const char *name, *rest = NULL;
                size_t name_len, rest_len = 0;
                char sep[3] = "";
                if (i + 1 < len && s[i + 1] == '{') {
                        const char *close = memchr(s + i + 2, '}', len - i - 2);
                        name = s + i + 2;
                        name_len = 0;
                        while (name + name_len < s + len && ident_char(name[name_len], name_len == 0))
                                name_len++;
                        const char *after = name + name_len;
                        if (close && after < close && (*after == '-' || *after == '?' ||
                                                       (*after == ':' && after + 1 < close &&
                                                        (after[1] == '-' || after[1] == '?')))) {
                                size_t sl = *after == ':' ? 2 : 1;
                                memcpy(sep, after, sl);
                                rest = after + sl;
                                rest_len = (size_t) (close - rest);
                        } else if (close != after) {
                                r = node_error(&p->doc, p->err, node,
                                               "invalid interpolation: '${' must be followed by NAME and '}' (write "
                                               "'$$' for a literal '$')");
                                break;
                        }
                        if (name_len == 0) {
                                r = node_error(&p->doc, p->err, node, "invalid interpolation: '${}' names no variable");
                                break;
                        }
                        if (rest && memmem(rest, rest_len, "${", 2)) {
                                r = node_error(&p->doc, p->err, node,
                                               "nested interpolation ('${A:-${B}}') is not supported");
                                break;
                        }
                        i = (size_t) (close - s) + 1;
                } else {
                        name = s + i + 1;
                        name_len = 0;
                        while (name + name_len < s + len && ident_char(name[name_len], name_len == 0))
                                name_len++;
                        if (name_len == 0) {
                                r = node_error(&p->doc, p->err, node,
                                               "invalid interpolation: '$' must be followed by a name, '{' or '$' "
                                               "(write '$$' for a literal '$')");
                                break;
                        }
                        i += 1 + name_len;
                }
                const struct sd_secret *value;
                r = dotenv_lookup(p, node, name, name_len, &value);
                if (r < 0)
                        break;
                bool set = value != NULL, empty = !value || value->len == 0;
                char shown[64];
                sd_escape_for_message(name, name_len, shown, sizeof(shown));
                if (strcmp(sep, ":-") == 0 && empty)
                        r = locked_add(&b, rest, rest_len);
                else if (strcmp(sep, "-") == 0 && !set)
                        r = locked_add(&b, rest, rest_len);
                else if ((strcmp(sep, ":?") == 0 && empty) || (strcmp(sep, "?") == 0 && !set))
                        r = node_error(&p->doc, p->err, node, "%s is required and %s; set it in %s", shown,
                                       set ? "empty" : "not set", p->o->dotenv_name ? p->o->dotenv_name : ".env");
                else if (!set)
                        r = node_error(&p->doc, p->err, node,
                                       "${%s} is not set in %s (secretctl takes values from the project's .env, not "
                                       "from your shell's environment)",
                                       shown, p->o->dotenv_name ? p->o->dotenv_name : ".env, which does not exist");
                else
                        r = locked_add(&b, (const char *) value->data, value->len);
        }
        if (r == -ENOMEM && !p->err->code)
                r = sd_error_set(p->err, ENOMEM, "cannot allocate locked memory");
        if (r < 0) {
                sd_secret_free(b.s);
                return r;
        }
        if (!b.s && locked_add(&b, "", 0) < 0)
                return sd_error_set(p->err, ENOMEM, "cannot allocate locked memory");
        b.s->len = b.len;
        *out = b.s;
        return 0;
}

/* An interpolated scalar that holds no secret (a path, a user), as a C string. */
static int interpolate_text(struct planner *p, const struct ynode *node, char **out) {
        if (node->kind != YN_SCALAR)
                return node_error(&p->doc, p->err, node, "expected a single value");
        _cleanup_secret_ struct sd_secret *v = NULL;
        int r = interpolate(p, node, node->value, node->len, &v);
        if (r < 0)
                return r;
        if (memchr(v->data, '\0', v->len))
                return node_error(&p->doc, p->err, node, "a NUL byte in a value");
        *out = strndup((const char *) v->data, v->len);
        return *out ? 0 : sd_error_set(p->err, ENOMEM, "out of memory");
}

static bool in_list(const char *const *list, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

static bool selected(const struct planner *p, const char *var) {
        if (!sd_dotenv_name_valid(var, strlen(var)) || in_list(p->o->skip, p->o->n_skip, var))
                return false;
        return in_list(p->o->vars, p->o->n_vars, var) || sd_migrate_name_looks_secret(var);
}

/* A plain scalar YAML 1.1 (PyYAML, as compose reads it) would not read as a
 * string, or would read as a number whose text compose then changes
 * (0123 -> 83, 1_000 -> 1000).  Conservative: anything number-like but a
 * plain decimal counts. */
static bool plain_not_a_string(const struct ynode *n) {
        static const char *const words[] = {
                "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
                "on", "On", "ON", "off", "Off", "OFF",
        };
        if (!n->plain)
                return false;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
                if (scalar_eq(n, words[i]))
                        return true;
        if (n->len == 0 || !strchr("0123456789+-.", n->value[0]))
                return false;
        bool decimal = n->value[0] != '0' || n->len == 1;
        for (size_t i = 0; i < n->len; i++) {
                char c = n->value[i];
                if (c < '0' || c > '9')
                        decimal = false;
                if (!strchr("0123456789abcdefABCDEFxXoO_.:+-infINFnaNA", c))
                        return false;
        }
        return !decimal;
}

/* ---------------------------------------------------------------- output -- */

/* A piece of YAML to add: "key: scalar", "key:" with children, or a
 * sequence item. */
struct gen {
        const char *key;           /* NULL: a sequence item */
        char *scalar;              /* rendered scalar, or NULL when kids */
        struct gen *kids;
        size_t n_kids;
        bool kids_seq;
};

static void gen_block(struct sd_strbuf *b, const struct gen *g, size_t indent, unsigned unit) {
        sd_strbuf_indent(b, indent);
        if (g->key)
                sd_strbuf_printf(b, "%s:", g->key);
        else
                sd_strbuf_adds(b, "-");
        if (g->scalar) {
                sd_strbuf_printf(b, " %s\n", g->scalar);
                return;
        }
        sd_strbuf_adds(b, "\n");
        for (size_t i = 0; i < g->n_kids; i++)
                gen_block(b, &g->kids[i], indent + unit, unit);
}

static void gen_flow(struct sd_strbuf *b, const struct gen *g) {
        if (g->key)
                sd_strbuf_printf(b, "%s: ", g->key);
        if (g->scalar) {
                sd_strbuf_adds(b, g->scalar);
                return;
        }
        sd_strbuf_adds(b, g->kids_seq ? "[" : "{");
        for (size_t i = 0; i < g->n_kids; i++) {
                if (i)
                        sd_strbuf_adds(b, ", ");
                gen_flow(b, &g->kids[i]);
        }
        sd_strbuf_adds(b, g->kids_seq ? "]" : "}");
}

/* Where text is inserted after a block node: the start of the line after
 * it ends.  *newline_first: the file ends without a newline there. */
static size_t line_after(const struct planner *p, size_t at, bool *newline_first) {
        const char *t = p->doc.text;
        *newline_first = false;
        if (at > 0 && t[at - 1] == '\n')
                return at;
        const char *nl = memchr(t + at, '\n', p->doc.len - at);
        if (nl)
                return (size_t) (nl - t) + 1;
        *newline_first = true;
        return p->doc.len;
}

/* Add entries at the end of the collection coll (block or flow). */
static int insert_into(struct planner *p, const struct ynode *coll, const struct gen *entries, size_t n) {
        struct sd_strbuf b = { 0 };
        size_t at;
        if (coll->flow) {
                /* Before the closing bracket; a comma unless empty or one is
                 * already there (YAML allows a trailing one). */
                at = coll->end - 1;
                size_t k = at;
                while (k > coll->start + 1 && strchr(" \t\r\n", p->doc.text[k - 1]))
                        k--;
                bool trailing_comma = coll->n > 0 && p->doc.text[k - 1] == ',';
                for (size_t i = 0; i < n; i++) {
                        if (i > 0 || (coll->n > 0 && !trailing_comma))
                                sd_strbuf_adds(&b, ", ");
                        else if (trailing_comma)
                                sd_strbuf_adds(&b, " ");
                        gen_flow(&b, &entries[i]);
                }
        } else {
                bool newline_first;
                at = line_after(p, coll->end, &newline_first);
                if (newline_first)
                        sd_strbuf_adds(&b, "\n");
                for (size_t i = 0; i < n; i++)
                        gen_block(&b, &entries[i], coll->col - 1, p->unit);
        }
        char *s = sd_strbuf_steal(&b, NULL);
        int r = edits_add(&p->edits, at, at, s);
        return r < 0 ? sd_error_set(p->err, ENOMEM, "out of memory") : 0;
}

/* Give the map key `key` (whose value is null: "key:", "key: ~", or in a
 * flow mapping a bare "key") the children of g: a block under the key, or
 * in a flow mapping a flow collection after it. */
static int fill_null(struct planner *p, const struct ynode *map, const struct ynode *key,
                     const struct ynode *null_value, const struct gen *g) {
        struct sd_strbuf b = { 0 };
        size_t at;
        int r = 0;
        if (map->flow) {
                size_t k = key->end;
                while (k < p->doc.len && (p->doc.text[k] == ' ' || p->doc.text[k] == '\t'))
                        k++;
                bool colon = k < p->doc.len && p->doc.text[k] == ':';
                at = null_value->end > null_value->start ? null_value->start : colon ? k + 1 : key->end;
                if (null_value->end == null_value->start)
                        sd_strbuf_adds(&b, colon ? " " : ": ");
                gen_flow(&b, &(struct gen) { .kids = g->kids, .n_kids = g->n_kids, .kids_seq = g->kids_seq });
        } else {
                bool newline_first;
                at = line_after(p, null_value->end, &newline_first);
                if (newline_first)
                        sd_strbuf_adds(&b, "\n");
                for (size_t i = 0; i < g->n_kids; i++)
                        gen_block(&b, &g->kids[i], key->col - 1 + p->unit, p->unit);
        }
        char *s = sd_strbuf_steal(&b, NULL);
        /* "key: ~" loses its "~" (in a flow mapping, for the collection). */
        if (map->flow && null_value->end > null_value->start)
                return edits_add(&p->edits, null_value->start, null_value->end, s) < 0
                               ? sd_error_set(p->err, ENOMEM, "out of memory")
                               : 0;
        if (null_value->end > null_value->start)
                r = edits_add(&p->edits, null_value->start, null_value->end, strdup(""));
        if (r == 0)
                r = edits_add(&p->edits, at, at, s);
        else
                free(s);
        return r < 0 ? sd_error_set(p->err, ENOMEM, "out of memory") : 0;
}

/* Add g (key with children) to the map `map`: into the existing value of
 * g->key, or as a new key. */
static int add_to_map(struct planner *p, const struct ynode *map, struct gen *g) {
        struct ynode *key;
        struct ynode *value = map_get(map, g->key, &key);
        if (!value)
                return insert_into(p, map, g, 1);
        if (is_null(value))
                return fill_null(p, map, key, value, g);
        if ((value->kind == YN_MAP) == g->kids_seq || value->kind == YN_SCALAR)
                return node_error(&p->doc, p->err, value, "'%s' is %s here; expected a %s", g->key,
                                  value->kind == YN_SCALAR ? "a single value"
                                  : value->kind == YN_MAP  ? "a mapping"
                                                           : "a list",
                                  g->kids_seq ? "list" : "mapping");
        return insert_into(p, value, g->kids, g->n_kids);
}

static int warn(struct planner *p, const char *fmt, ...) SD_PRINTF(2, 3);
static int warn(struct planner *p, const char *fmt, ...) {
        char line[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        sd_strbuf_adds(&p->warnings, line);
        sd_strbuf_adds(&p->warnings, "\n");
        return 0;
}

/* -------------------------------------------------------------- secrets -- */

static int add_secret(struct planner *p, const char *var, const char *secret, struct sd_secret *value,
                      const char *origin) {
        struct sd_compose_plan *plan = p->plan;
        for (size_t i = 0; i < plan->n_secrets; i++) {
                struct sd_compose_secret *s = &plan->secrets[i];
                if (strcmp(s->name, secret) != 0)
                        continue;
                int r = 0;
                if (strcmp(s->variable, var) != 0)
                        r = sd_error_set(p->err, EEXIST,
                                         "%s (%s) and %s (%s) would both become the secret '%s'; rename one of them",
                                         s->variable, s->origin, var, origin, secret);
                else if (!sd_secret_equal(s->value, value))
                        r = sd_error_set(p->err, EEXIST,
                                         "%s has different values in %s and in %s, but would become one secret '%s'; "
                                         "rename one of the variables, or leave it out with --skip %s",
                                         var, s->origin, origin, secret, var);
                sd_secret_free(value);
                return r;
        }
        struct sd_compose_secret *more = reallocarray(plan->secrets, plan->n_secrets + 1, sizeof(*more));
        if (!more) {
                sd_secret_free(value);
                return sd_error_set(p->err, ENOMEM, "out of memory");
        }
        plan->secrets = more;
        struct sd_compose_secret *s = &plan->secrets[plan->n_secrets];
        *s = (struct sd_compose_secret) { .value = value };
        (void) snprintf(s->name, sizeof(s->name), "%s", secret);
        s->variable = strdup(var);
        s->origin = strdup(origin);
        plan->n_secrets++;
        if (!s->variable || !s->origin)
                return sd_error_set(p->err, ENOMEM, "out of memory");
        return 0;
}

/* ------------------------------------------------------------ env files -- */

static void envfile_clear(struct envfile *f) {
        free(f->path);
        sd_secret_free(f->text);
        sd_dotenv_free(f->env);
        free(f->remove);
        free(f->new_path);
}

static int envfile_load(struct planner *p, const struct ynode *at, const char *path, struct envfile **out) {
        /* The name goes into messages and, rewritten, back into the compose
         * file between double quotes. */
        for (const char *c = path; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\') {
                        char shown[64];
                        return node_error(&p->doc, p->err, at,
                                          "env_file name '%s' holds a control character, '\"' or '\\'",
                                          sd_escape_for_message(path, strlen(path), shown, sizeof(shown)));
                }
        for (size_t i = 0; i < p->n_files; i++)
                if (strcmp(p->files[i].path, path) == 0) {
                        *out = &p->files[i];
                        return 0;
                }
        struct envfile *more = reallocarray(p->files, p->n_files + 1, sizeof(*more));
        if (!more)
                return sd_error_set(p->err, ENOMEM, "out of memory");
        p->files = more;
        struct envfile *f = &p->files[p->n_files++];
        *f = (struct envfile) { .path = strdup(path) };
        if (!f->path)
                return sd_error_set(p->err, ENOMEM, "out of memory");

        _cleanup_close_ int fd = openat(p->o->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return ydoc_error(&p->doc, p->err, errno, at->line, at->col, "env_file %s: cannot open it: %s", path,
                                  strerror(errno));
        if (!S_ISREG(st.st_mode))
                return ydoc_error(&p->doc, p->err, EINVAL, at->line, at->col, "env_file %s is not a regular file",
                                  path);
        f->mode = st.st_mode & 07777;
        int r = sd_secret_read_fd(fd, SD_COMPOSE_FILE_MAX, path, &f->text, p->err);
        if (r < 0)
                return r;
        r = sd_dotenv_parse(f->text->data, f->text->len, path, &f->env, p->err);
        if (r < 0)
                return r;
        f->remove = calloc(f->env->n ? f->env->n : 1, sizeof(*f->remove));
        if (!f->remove)
                return sd_error_set(p->err, ENOMEM, "out of memory");
        *out = f;
        return 0;
}

/* The env file without the migrated variables, and as the diff shows the
 * original: those lines with <redacted> values. */
static int envfile_rewrite(struct planner *p, struct envfile *f, char **text_out, size_t *len_out, char **shown_out,
                           size_t *shown_len) {
        struct edits cut = { 0 }, shown = { 0 };
        const char *text = (const char *) f->text->data;
        int r = 0;
        for (size_t i = 0; i < f->env->n && r == 0; i++) {
                const struct sd_dotenv_entry *e = &f->env->entries[i];
                if (!f->remove[i])
                        continue;
                size_t start = e->start;
                while (start > 0 && (text[start - 1] == ' ' || text[start - 1] == '\t'))
                        start--;
                char *line;
                r = edits_add(&cut, start, e->end, strdup(""));
                if (r == 0)
                        r = asprintf(&line, "%s=" REDACTED "\n", e->name) < 0 ? -ENOMEM
                                                                               : edits_add(&shown, start, e->end, line);
        }
        if (r == 0)
                r = edits_apply(text, f->text->len, &cut, text_out, len_out);
        if (r == 0)
                r = edits_apply(text, f->text->len, &shown, shown_out, shown_len);
        edits_free(&cut);
        edits_free(&shown);
        return r < 0 ? sd_error_set(p->err, -r, "%s: cannot rewrite it: %s", f->path, strerror(-r)) : 0;
}

/* ------------------------------------------------------------- services -- */

/* One variable a service sets: from `environment:` (which wins) or the last
 * env_file that sets it. */
struct svar {
        char name[SD_NAME_MAX + 1];
        const struct ynode *key, *value;     /* environment map form */
        const struct ynode *item;            /* environment list form */
        struct envfile *file;                /* else */
        const struct sd_dotenv_entry *entry;
};

struct svars {
        struct svar *v;
        size_t n;
};

static struct svar *svar_get(struct svars *vs, const char *name, size_t len) {
        if (len > SD_NAME_MAX)
                return NULL;
        for (size_t i = 0; i < vs->n; i++)
                if (strlen(vs->v[i].name) == len && memcmp(vs->v[i].name, name, len) == 0)
                        return &vs->v[i];
        struct svar *more = reallocarray(vs->v, vs->n + 1, sizeof(*more));
        if (!more)
                return NULL;
        vs->v = more;
        struct svar *v = &vs->v[vs->n++];
        *v = (struct svar) { 0 };
        memcpy(v->name, name, len);
        return v;
}

/* A scalar's text as it stands in the file. */
static void raw_of(const struct planner *p, const struct ynode *n, const char **s, size_t *len) {
        *s = p->doc.text + n->start;
        *len = n->end - n->start;
}

/* The raw text is exactly $NAME or ${NAME}: it shows no value. */
static bool raw_is_bare_reference(const char *s, size_t len) {
        if (len < 2 || s[0] != '$')
                return false;
        bool braced = s[1] == '{';
        size_t i = braced ? 2 : 1, end = braced ? len - 1 : len;
        if (braced && s[len - 1] != '}')
                return false;
        if (i >= end)
                return false;
        for (size_t j = i; j < end; j++)
                if (!ident_char(s[j], j == i))
                        return false;
        return true;
}

static int value_of(struct planner *p, const char *service, const struct svar *v, const char *origin,
                    struct sd_secret **out) {
        const struct ynode *at = v->item ? v->item : v->value ? v->value : NULL;
        if (v->item || v->value) {
                const struct ynode *n = v->item ? v->item : v->value;
                if (n->kind != YN_SCALAR)
                        return node_error(&p->doc, p->err, n, "the value of %s is not a single value", v->name);
                const char *eq = v->item ? memchr(n->value, '=', n->len) : NULL;
                if (v->value && is_null(n))
                        goto from_dotenv;
                if (v->item && !eq)
                        goto from_dotenv;
                if (v->value && plain_not_a_string(n))
                        return node_error(&p->doc, p->err, n,
                                          "the value of %s is an unquoted YAML number or boolean, which compose "
                                          "converts (0123 becomes 83); quote it",
                                          v->name);
                _cleanup_secret_ struct sd_secret *all = NULL;
                int r = interpolate(p, n, n->value, n->len, &all);
                if (r < 0)
                        return r;
                if (v->value) {
                        *out = steal_pointer(&all);
                        return 0;
                }
                const unsigned char *sep = memchr(all->data, '=', all->len);
                size_t off = sep ? (size_t) (sep - all->data) + 1 : all->len;
                if (sd_secret_new_from(all->data + off, all->len - off, out) < 0)
                        return sd_error_set(p->err, ENOMEM, "cannot allocate locked memory");
                return 0;
        }
        if (v->entry->value) {
                if (sd_dotenv_has_reference(v->entry->value))
                        return sd_error_set(p->err, EINVAL,
                                            "%s:%u: the value of %s looks like a reference (${...}), which compose "
                                            "would expand from your shell; put the value itself there",
                                            v->file->path, v->entry->line, v->name);
                if (sd_secret_new_from(v->entry->value->data, v->entry->value->len, out) < 0)
                        return sd_error_set(p->err, ENOMEM, "cannot allocate locked memory");
                return 0;
        }
from_dotenv:;
        /* "NAME" alone: compose takes the value from its environment, which
         * starts from .env. */
        const struct sd_secret *value = NULL;
        const struct ynode *where = at ? at : p->doc.root;
        int r = dotenv_lookup(p, where, v->name, strlen(v->name), &value);
        if (r < 0)
                return r;
        if (!value)
                return sd_error_set(p->err, EINVAL,
                                    "service '%s': %s (%s) has no value and %s does not set it (secretctl takes values "
                                    "from the project's .env, not from your shell's environment)",
                                    service, v->name, origin, p->o->dotenv_name ? p->o->dotenv_name : ".env");
        if (sd_secret_new_from(value->data, value->len, out) < 0)
                return sd_error_set(p->err, ENOMEM, "cannot allocate locked memory");
        return 0;
}

static int parse_id(const char *s, unsigned long *out) {
        if (!s[0] || strlen(s) > 10)
                return -EINVAL;
        for (const char *c = s; *c; c++)
                if (*c < '0' || *c > '9')
                        return -EINVAL;
        unsigned long v = strtoul(s, NULL, 10);
        if (v > INT32_MAX)
                return -EINVAL;
        *out = v;
        return 0;
}

/* The owner of the secret files: --uid, else the service's user:, else 0. */
static int owner_of(struct planner *p, const char *service, const struct ynode *svc, char uid[16], char gid[16]) {
        gid[0] = '\0';
        unsigned long id;
        if (p->o->uid) {
                (void) parse_id(p->o->uid, &id);
                (void) snprintf(uid, 16, "%lu", id);
                return 0;
        }
        const struct ynode *user = map_get(svc, "user", NULL);
        if (!user || is_null(user)) {
                (void) snprintf(uid, 16, "0");
                return 0;
        }
        _cleanup_free_ char *text = NULL;
        int r = interpolate_text(p, user, &text);
        if (r < 0)
                return r;
        char *colon = strchr(text, ':');
        if (colon)
                *colon = '\0';
        unsigned long g = 0;
        if (parse_id(text, &id) < 0 || (colon && parse_id(colon + 1, &g) < 0)) {
                char shown[64];
                if (colon)
                        *colon = ':';
                return node_error(&p->doc, p->err, user,
                                  "service '%s' runs as user '%s', a name secretctl cannot look up inside the image; "
                                  "give the numeric owner with --uid",
                                  service, sd_escape_for_message(text, strlen(text), shown, sizeof(shown)));
        }
        (void) snprintf(uid, 16, "%lu", id);
        if (colon)
                (void) snprintf(gid, 16, "%lu", g);
        return 0;
}

/* A mount at /run/secrets already (short "src:/run/secrets[:opts]" or long
 * syntax), or compose secrets (mounted under it). */
static int check_secrets_dir_free(struct planner *p, const char *service, const struct ynode *svc) {
        struct ynode *key;
        if (map_get(svc, "secrets", &key))
                return node_error(&p->doc, p->err, key,
                                  "service '%s' uses compose secrets, which docker mounts under " SECRETS_DIR
                                  ", where the secretd volume goes; move them to secretd first (docs/migrating.md, "
                                  "\"From compose secrets\")",
                                  service);
        const struct ynode *vols = map_get(svc, "volumes", NULL);
        if (!vols || vols->kind != YN_SEQ)
                return 0;
        for (size_t i = 0; i < vols->n; i++) {
                const struct ynode *v = vols->items[i], *target = NULL;
                if (v->kind == YN_MAP)
                        target = map_get(v, "target", NULL);
                const char *s = target && target->kind == YN_SCALAR ? target->value : v->kind == YN_SCALAR ? v->value : NULL;
                if (!s)
                        continue;
                if (!target) {
                        const char *c = strchr(s, ':');
                        s = c ? c + 1 : s;
                }
                size_t n = strcspn(s, ":");
                if ((n == strlen(SECRETS_DIR) || (n == strlen(SECRETS_DIR) + 1 && s[n - 1] == '/')) &&
                    strncmp(s, SECRETS_DIR, strlen(SECRETS_DIR)) == 0)
                        return node_error(&p->doc, p->err, v,
                                          "service '%s' already mounts something at " SECRETS_DIR
                                          ", where the secretd volume goes",
                                          service);
        }
        return 0;
}

static char *dquote(const char *s) {
        char *q;
        return asprintf(&q, "\"%s\"", s) < 0 ? NULL : q;
}

struct pending_volume {
        char name[SD_NAME_MAX + 16];
        char *secrets;         /* "a,b,c": the volume's secrets option */
        char uid[16], gid[16];
};

static int plan_service(struct planner *p, const struct ynode *name_node, const struct ynode *svc,
                        struct pending_volume **vols, size_t *n_vols, const struct ynode ***ef_items,
                        struct envfile ***ef_files, size_t *n_ef) {
        char service[64];
        sd_escape_for_message(name_node->value, name_node->len, service, sizeof(service));
        if (svc->kind != YN_MAP)
                return is_null(svc) ? 0 : node_error(&p->doc, p->err, svc, "service '%s' is not a mapping", service);

        struct svars vs = { 0 };
        int r = 0;
        struct ynode *env_key = NULL;
        const struct ynode *env = map_get(svc, "environment", &env_key);
        const struct ynode *ef = map_get(svc, "env_file", NULL);
        const struct ynode *one_ef[1] = { ef };
        const struct ynode *const *efs = ef && ef->kind == YN_SEQ ? (const struct ynode *const *) ef->items : one_ef;
        size_t n_efs = !ef || is_null(ef) ? 0 : ef->kind == YN_SEQ ? ef->n : 1;
        struct envfile **svc_files = calloc(n_efs ? n_efs : 1, sizeof(*svc_files));
        struct service_secret *picked = NULL;
        size_t n_picked = 0;
        struct gen *env_adds = NULL;
        size_t n_env_adds = 0;
        if (!svc_files)
                return sd_error_set(p->err, ENOMEM, "out of memory");

        for (size_t i = 0; i < n_efs && r == 0; i++) {
                _cleanup_free_ char *path = NULL;
                if (efs[i]->kind != YN_SCALAR) {
                        r = node_error(&p->doc, p->err, efs[i], "an env_file entry is not a file name");
                        break;
                }
                r = interpolate_text(p, efs[i], &path);
                if (r == 0)
                        r = envfile_load(p, efs[i], path, &svc_files[i]);
                for (size_t j = 0; r == 0 && j < svc_files[i]->env->n; j++) {
                        const struct sd_dotenv_entry *e = &svc_files[i]->env->entries[j];
                        struct svar *v = svar_get(&vs, e->name, strlen(e->name));
                        if (!v) {
                                r = sd_error_set(p->err, ENOMEM, "out of memory");
                                break;
                        }
                        v->file = svc_files[i];
                        v->entry = e;
                }
        }
        if (r == 0 && env && !is_null(env)) {
                if (env->kind == YN_SCALAR)
                        r = node_error(&p->doc, p->err, env, "service '%s': environment is neither a mapping nor a list",
                                       service);
                bool map = env->kind == YN_MAP;
                for (size_t i = 0; r == 0 && i < env->n; i += map ? 2 : 1) {
                        const struct ynode *n = env->items[i];
                        if (n->kind != YN_SCALAR) {
                                r = node_error(&p->doc, p->err, n, "service '%s': an environment entry is not a value",
                                               service);
                                break;
                        }
                        size_t len = map ? n->len : strcspn(n->value, "=");
                        if (!sd_dotenv_name_valid(n->value, len))
                                continue;
                        struct svar *v = svar_get(&vs, n->value, len);
                        if (!v) {
                                r = sd_error_set(p->err, ENOMEM, "out of memory");
                                break;
                        }
                        *v = (struct svar) { .key = map ? n : NULL, .value = map ? env->items[i + 1] : NULL,
                                             .item = map ? NULL : n };
                        memcpy(v->name, n->value, len);
                        v->name[len] = '\0';
                }
        }

        for (size_t i = 0; r == 0 && i < vs.n; i++) {
                struct svar *v = &vs.v[i];
                if (!selected(p, v->name))
                        continue;
                char file_var[SD_NAME_MAX + 8], origin[256], secret[SD_NAME_MAX + 1];
                (void) snprintf(file_var, sizeof(file_var), "%s_FILE", v->name);
                for (size_t j = 0; j < vs.n; j++)
                        if (strcmp(vs.v[j].name, file_var) == 0) {
                                r = sd_error_set(p->err, EEXIST,
                                                 "service '%s' sets both %s and %s; remove one, or leave %s out with "
                                                 "--skip",
                                                 service, v->name, file_var, v->name);
                                break;
                        }
                if (r < 0)
                        break;
                const struct ynode *at = v->key ? v->key : v->item;
                if (at)
                        (void) snprintf(origin, sizeof(origin), "service '%s', %s:%u", service, p->o->compose_name,
                                        at->line);
                else
                        (void) snprintf(origin, sizeof(origin), "service '%s', %s:%u", service, v->file->path,
                                        v->entry->line);
                r = sd_migrate_secret_name(v->name, true, secret, p->err);
                if (r < 0)
                        break;
                struct sd_secret *value = NULL;
                r = value_of(p, service, v, origin, &value);
                if (r < 0)
                        break;
                if (value->len == 0) {
                        sd_secret_free(value);
                        r = sd_error_set(p->err, EINVAL, "%s (%s) is empty; refusing to store an empty secret",
                                         v->name, origin);
                        break;
                }
                /* What the diff shows of the old entry, and whether the value
                 * is written out there (else it is only named). */
                const char *raw;
                size_t raw_len;
                bool literal = false;
                if (v->value) {
                        raw_of(p, v->value, &raw, &raw_len);
                        literal = !is_null(v->value) && !raw_is_bare_reference(raw, raw_len);
                } else if (v->item) {
                        raw_of(p, v->item, &raw, &raw_len);
                        const char *eq = memchr(raw, '=', raw_len);
                        size_t after = eq ? raw_len - (size_t) (eq + 1 - raw) : 0;
                        const char *tail = eq ? eq + 1 : raw + raw_len;
                        if (after > 0 && (tail[after - 1] == '"' || tail[after - 1] == '\''))
                                after--;
                        literal = eq && !raw_is_bare_reference(tail, after);
                }
                r = add_secret(p, v->name, secret, value, origin);
                if (r < 0)
                        break;
                struct service_secret *more = reallocarray(picked, n_picked + 1, sizeof(*more));
                if (!more) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                        break;
                }
                picked = more;
                snprintf(picked[n_picked].variable, sizeof(picked[0].variable), "%s", v->name);
                snprintf(picked[n_picked].secret, sizeof(picked[0].secret), "%s", secret);
                n_picked++;

                char *path_text;
                if (asprintf(&path_text, SECRETS_DIR "/%s", secret) < 0) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                        break;
                }
                if (v->value) {
                        /* "KEY:" with nothing after the colon gets a space; a
                         * block scalar ("KEY: |") owned its line break. */
                        char *val;
                        if (asprintf(&val, "%s%s%s", v->value->end == v->value->start ? " " : "", path_text,
                                     v->value->block_scalar ? "\n" : "") < 0)
                                val = NULL;
                        free(path_text);
                        r = edits_add(&p->edits, v->value->start, v->value->end, val);
                        if (r == 0)
                                r = edits_add(&p->edits, v->key->start, v->key->end, strdup(file_var));
                        if (r == 0 && literal)
                                r = edits_add(&p->shown, v->value->start, v->value->end,
                                              strdup(v->value->block_scalar ? REDACTED "\n" : REDACTED));
                } else if (v->item) {
                        char *item_text, *shown_text;
                        r = asprintf(&item_text, "%s=%s", file_var, path_text) < 0
                                    ? -ENOMEM
                                    : edits_add(&p->edits, v->item->start, v->item->end, item_text);
                        free(path_text);
                        if (r == 0 && literal)
                                r = asprintf(&shown_text, "%s=" REDACTED, v->name) < 0
                                            ? -ENOMEM
                                            : edits_add(&p->shown, v->item->start, v->item->end, shown_text);
                } else {
                        struct gen *more_adds = reallocarray(env_adds, n_env_adds + 1, sizeof(*more_adds));
                        if (!more_adds) {
                                free(path_text);
                                r = -ENOMEM;
                        } else {
                                env_adds = more_adds;
                                bool as_item = env && env->kind == YN_SEQ;
                                char *text = NULL;
                                if (as_item && asprintf(&text, "%s=%s", file_var, path_text) < 0)
                                        text = NULL;
                                env_adds[n_env_adds] = (struct gen) {
                                        .key = as_item ? NULL : strdup(file_var),
                                        .scalar = as_item ? text : path_text,
                                };
                                if (as_item)
                                        free(path_text);
                                n_env_adds++;
                                if (!env_adds[n_env_adds - 1].scalar || (!as_item && !env_adds[n_env_adds - 1].key))
                                        r = -ENOMEM;
                        }
                }
                if (r == -ENOMEM)
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                /* env_file lines of this variable go, so the value reaches
                 * the container only as a file. */
                for (size_t k = 0; r == 0 && k < n_efs; k++)
                        for (size_t j = 0; j < svc_files[k]->env->n; j++)
                                if (strcmp(svc_files[k]->env->entries[j].name, v->name) == 0) {
                                        svc_files[k]->remove[j] = true;
                                        svc_files[k]->changed = true;
                                }
        }

        if (r == 0 && n_env_adds > 0) {
                struct gen g = { .key = "environment", .kids = env_adds, .n_kids = n_env_adds,
                                 .kids_seq = env && env->kind == YN_SEQ };
                r = add_to_map(p, svc, &g);
        }
        if (r == 0 && n_picked > 0)
                r = check_secrets_dir_free(p, service, svc);
        if (r == 0 && n_picked > 0) {
                struct pending_volume *more = reallocarray(*vols, *n_vols + 1, sizeof(*more));
                if (!more) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                } else {
                        *vols = more;
                        struct pending_volume *pv = &(*vols)[(*n_vols)++];
                        *pv = (struct pending_volume) { 0 };
                        (void) snprintf(pv->name, sizeof(pv->name), "secretd_%.*s", (int) name_node->len,
                                        name_node->value);
                        if (map_get(p->volumes, pv->name, NULL))
                                r = node_error(&p->doc, p->err, p->volumes_key,
                                               "a volume named %s exists already; rename it to migrate service '%s'",
                                               pv->name, service);
                        /* Sorted, one each: several variables may share a secret. */
                        qsort(picked, n_picked, sizeof(*picked), service_secret_cmp);
                        struct sd_strbuf list = { 0 };
                        for (size_t i = 0; i < n_picked; i++)
                                if (i == 0 || strcmp(picked[i].secret, picked[i - 1].secret) != 0)
                                        sd_strbuf_printf(&list, "%s%s", list.len ? "," : "", picked[i].secret);
                        if (!(pv->secrets = sd_strbuf_steal(&list, NULL)) && r == 0)
                                r = sd_error_set(p->err, ENOMEM, "out of memory");
                        if (r == 0)
                                r = owner_of(p, service, svc, pv->uid, pv->gid);
                        if (r == 0) {
                                char *mount;
                                if (asprintf(&mount, "%s:" SECRETS_DIR, pv->name) < 0)
                                        mount = NULL;
                                struct gen item = { .scalar = mount };
                                struct gen g = { .key = "volumes", .kids = &item, .n_kids = 1, .kids_seq = true };
                                r = mount ? add_to_map(p, svc, &g) : sd_error_set(p->err, ENOMEM, "out of memory");
                                free(mount);
                        }
                }
        }
        /* Remember which env_file entries name which file, to point them at
         * the rewritten files once every service has been seen. */
        for (size_t i = 0; r == 0 && i < n_efs; i++) {
                const struct ynode **more_items = reallocarray(*ef_items, *n_ef + 1, sizeof(*more_items));
                if (more_items)
                        *ef_items = more_items;
                struct envfile **more_files = more_items ? reallocarray(*ef_files, *n_ef + 1, sizeof(*more_files)) : NULL;
                if (!more_files) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                        break;
                }
                *ef_files = more_files;
                (*ef_items)[*n_ef] = efs[i];
                (*ef_files)[*n_ef] = svc_files[i];
                (*n_ef)++;
        }

        for (size_t i = 0; i < n_env_adds; i++) {
                free((char *) env_adds[i].key);
                free(env_adds[i].scalar);
        }
        free(env_adds);
        free(picked);
        free(svc_files);
        free(vs.v);
        return r;
}

/* Other places that still name a migrated variable: compose fills them in
 * from .env, so the value still reaches the container's configuration. */
static void warn_other_references(struct planner *p) {
        for (size_t i = 0; i < p->doc.n_nodes; i++) {
                const struct ynode *n = p->doc.nodes[i];
                if (n->kind != YN_SCALAR || !memchr(n->value, '$', n->len))
                        continue;
                bool edited = false;
                for (size_t e = 0; e < p->edits.n && !edited; e++)
                        edited = p->edits.v[e].start <= n->start && n->end <= p->edits.v[e].end &&
                                 p->edits.v[e].end > p->edits.v[e].start;
                if (edited)
                        continue;
                for (size_t s = 0; s < p->plan->n_secrets; s++) {
                        const char *var = p->plan->secrets[s].variable;
                        size_t vl = strlen(var);
                        for (const char *at = n->value; (at = memchr(at, '$', n->len - (size_t) (at - n->value)));
                             at++) {
                                const char *name = at[1] == '{' ? at + 2 : at + 1;
                                if ((size_t) (name - n->value) + vl <= n->len && memcmp(name, var, vl) == 0 &&
                                    !ident_char(name[vl], false) && !(at > n->value && at[-1] == '$')) {
                                        warn(p, "%s:%u: still refers to $%s, which compose fills in from %s: the "
                                                "value still reaches the container's configuration there",
                                             p->o->compose_name, n->line, var,
                                             p->o->dotenv_name ? p->o->dotenv_name : ".env");
                                        break;
                                }
                        }
                }
        }
}

/* No secret value may remain in a new file or the diff. */
static int check_no_value_left(struct planner *p) {
        for (size_t s = 0; s < p->plan->n_secrets; s++) {
                const struct sd_compose_secret *sec = &p->plan->secrets[s];
                for (size_t f = 0; f < p->plan->n_files; f++) {
                        const struct sd_compose_file *file = &p->plan->files[f];
                        const char *hit = memmem(file->text, file->len, sec->value->data, sec->value->len);
                        if (!hit)
                                continue;
                        unsigned line = 1;
                        for (const char *c = file->text; c < hit; c++)
                                line += *c == '\n';
                        return sd_error_set(p->err, EEXIST,
                                            "the value of %s (%s) would remain on line %u of the new %s, in a place "
                                            "migrate does not rewrite; take it out of %s, or leave %s out with "
                                            "--skip %s",
                                            sec->variable, sec->origin, line, file->name, file->original_name,
                                            sec->variable, sec->variable);
                }
                if (memmem(p->plan->diff, p->plan->diff_len, sec->value->data, sec->value->len))
                        return sd_error_set(p->err, EEXIST,
                                            "the value of %s (%s) would show in the diff; take it out of the files "
                                            "where it is written outside the entries migrate rewrites, or leave %s "
                                            "out with --skip %s",
                                            sec->variable, sec->origin, sec->variable, sec->variable);
        }
        return 0;
}

static int add_file(struct planner *p, const char *name, const char *original, char *text, size_t len, mode_t mode) {
        struct sd_compose_plan *plan = p->plan;
        struct sd_compose_file *more = reallocarray(plan->files, plan->n_files + 1, sizeof(*more));
        if (!more) {
                free(text);
                return sd_error_set(p->err, ENOMEM, "out of memory");
        }
        plan->files = more;
        struct sd_compose_file *f = &plan->files[plan->n_files++];
        *f = (struct sd_compose_file) { .name = strdup(name), .original_name = strdup(original), .text = text,
                                        .len = len, .mode = mode };
        return f->name && f->original_name ? 0 : sd_error_set(p->err, ENOMEM, "out of memory");
}

static int add_diff(struct planner *p, const char *old_name, const char *old, size_t old_len, const char *new_name,
                    const char *new, size_t new_len) {
        return sd_text_diff(old_name, old, old_len, new_name, new, new_len, 3, &p->plan->diff, &p->plan->diff_len,
                            p->err);
}

char *sd_compose_new_name(const char *name) {
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        const char *dot = strrchr(base, '.');
        char *out;
        if (!dot || dot == base)
                return asprintf(&out, "%s.secretd", name) < 0 ? NULL : out;
        return asprintf(&out, "%.*s.secretd%s", (int) (dot - name), name, dot) < 0 ? NULL : out;
}

static bool valid_driver(const char *s) {
        if (!s[0] || strlen(s) > 64 || s[0] == '.' || s[0] == '-')
                return false;
        for (const char *c = s; *c; c++)
                if (!ident_char(*c, false) && *c != '.' && *c != '-')
                        return false;
        return true;
}

static int check_options(const struct sd_compose_options *o, sd_error *err) {
        unsigned long id;
        if (o->uid && parse_id(o->uid, &id) < 0)
                return sd_error_set(err, EINVAL, "--uid '%s' is not a number from 0 to 2147483647", o->uid);
        if (o->mode) {
                char *end;
                unsigned long m = strtoul(o->mode, &end, 8);
                if (!o->mode[0] || *end || strspn(o->mode, "01234567") != strlen(o->mode) || m > 0777 ||
                    !(m & 0400))
                        return sd_error_set(err, EINVAL,
                                            "--mode '%s' is not an octal mode from 0400 to 0777 that lets the owner "
                                            "read",
                                            o->mode);
        }
        if (o->driver && !valid_driver(o->driver))
                return sd_error_set(err, EINVAL, "--driver '%s' is not a plugin name (letters, digits, '.', '_', '-')",
                                    o->driver);
        if (!o->output_name || !o->output_name[0] || strchr(o->output_name, '/'))
                return sd_error_set(err, EINVAL,
                                    "the new compose file must be a file name beside the original (relative paths in "
                                    "a compose file are relative to its directory)");
        return 0;
}

static int plan_all(struct planner *p, const char *text, size_t len) {
        const struct sd_compose_options *o = p->o;
        int r = ydoc_load(&p->doc, o->compose_name, text, len, p->err);
        if (r < 0)
                return r;
        const struct ynode *root = p->doc.root;
        if (root->kind != YN_MAP)
                return node_error(&p->doc, p->err, root, "not a compose file: the top level is not a mapping");
        struct ynode *services_key;
        const struct ynode *services = map_get(root, "services", &services_key);
        if (!services)
                return node_error(&p->doc, p->err, root,
                                  "no 'services:'; compose file format 1 (services at the top level) is not "
                                  "supported: add 'version: \"2.4\"' and 'services:'");
        if (services->kind != YN_MAP)
                return node_error(&p->doc, p->err, services, "'services' is not a mapping");
        p->volumes = map_get(root, "volumes", &p->volumes_key);
        if (p->volumes && p->volumes->kind != YN_MAP && !is_null(p->volumes))
                return node_error(&p->doc, p->err, p->volumes, "the top-level 'volumes' is not a mapping");
        p->unit = services->n > 0 && !services->flow && services->col > services_key->col
                          ? services->col - services_key->col
                          : 2;

        struct pending_volume *vols = NULL;
        size_t n_vols = 0, n_ef = 0;
        const struct ynode **ef_items = NULL;
        struct envfile **ef_files = NULL;
        for (size_t i = 0; r == 0 && i + 1 < services->n; i += 2) {
                const struct ynode *name = services->items[i];
                bool ok = name->len > 0;
                for (size_t c = 0; c < name->len; c++)
                        ok = ok && (ident_char(name->value[c], false) || name->value[c] == '.' || name->value[c] == '-');
                if (!ok) {
                        char shown[64];
                        r = node_error(&p->doc, p->err, name, "'%s' is not a service name compose accepts",
                                       scalar_shown(name, shown));
                        break;
                }
                r = plan_service(p, name, services->items[i + 1], &vols, &n_vols, &ef_items, &ef_files, &n_ef);
        }
        if (r == 0 && p->plan->n_secrets == 0)
                r = sd_error_set(p->err, ENOENT,
                                 "%s: nothing to migrate: no service sets a variable that looks like a secret "
                                 "(a name ending in PASSWORD, TOKEN, KEY, SECRET, ...); name others with --var",
                                 o->compose_name);

        /* env_file entries now name the rewritten files. */
        for (size_t i = 0; r == 0 && i < n_ef; i++) {
                struct envfile *f = ef_files[i];
                if (!f->changed)
                        continue;
                if (!f->new_path && !(f->new_path = sd_compose_new_name(f->path))) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                        break;
                }
                char *q = dquote(f->new_path);
                r = q ? edits_add(&p->edits, ef_items[i]->start, ef_items[i]->end, q) : -ENOMEM;
                if (r < 0)
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
        }

        /* The secretd volumes, at the top level. */
        if (r == 0) {
                struct gen *defs = calloc(n_vols ? n_vols : 1, sizeof(*defs));
                struct gen (*fields)[2] = calloc(n_vols ? n_vols : 1, sizeof(*fields));
                struct gen (*opts)[4] = calloc(n_vols ? n_vols : 1, sizeof(*opts));
                const char *driver = o->driver ? o->driver : "secretd";
                for (size_t i = 0; defs && fields && opts && i < n_vols; i++) {
                        size_t n_opts = 0;
                        opts[i][n_opts++] = (struct gen) { .key = "secrets", .scalar = dquote(vols[i].secrets) };
                        opts[i][n_opts++] = (struct gen) { .key = "uid", .scalar = dquote(vols[i].uid) };
                        if (vols[i].gid[0])
                                opts[i][n_opts++] = (struct gen) { .key = "gid", .scalar = dquote(vols[i].gid) };
                        opts[i][n_opts++] = (struct gen) { .key = "mode", .scalar = dquote(o->mode ? o->mode : "0400") };
                        fields[i][0] = (struct gen) { .key = "driver", .scalar = strdup(driver) };
                        fields[i][1] = (struct gen) { .key = "driver_opts", .kids = opts[i], .n_kids = n_opts };
                        defs[i] = (struct gen) { .key = vols[i].name, .kids = fields[i], .n_kids = 2 };
                        for (size_t k = 0; k < n_opts; k++)
                                if (!opts[i][k].scalar)
                                        r = -ENOMEM;
                        if (!fields[i][0].scalar)
                                r = -ENOMEM;
                }
                if (!defs || !fields || !opts || r < 0) {
                        r = sd_error_set(p->err, ENOMEM, "out of memory");
                } else {
                        struct gen top = { .key = "volumes", .kids = defs, .n_kids = n_vols };
                        r = add_to_map(p, root, &top);
                }
                for (size_t i = 0; opts && fields && i < n_vols; i++) {
                        for (size_t k = 0; k < 4; k++)
                                free(opts[i][k].scalar);
                        free(fields[i][0].scalar);
                }
                free(defs);
                free(fields);
                free(opts);
        }
        for (size_t i = 0; i < n_vols; i++)
                free(vols[i].secrets);
        free(vols);
        free(ef_items);
        free(ef_files);
        if (r < 0)
                return r;

        warn_other_references(p);

        /* The new compose file, and the original as the diff shows it. */
        char *new_text = NULL, *shown = NULL;
        size_t new_len = 0, shown_len = 0;
        r = edits_apply(text, len, &p->edits, &new_text, &new_len);
        if (r == 0)
                r = edits_apply(text, len, &p->shown, &shown, &shown_len);
        if (r < 0) {
                free(new_text);
                return r == -ENOMEM ? sd_error_set(p->err, ENOMEM, "out of memory")
                                    : sd_error_set(p->err, EPROTO, "%s: two rewrites overlap (a bug in secretctl)",
                                                   o->compose_name);
        }
        r = add_file(p, o->output_name, o->compose_name, new_text, new_len, 0);
        if (r == 0)
                r = add_diff(p, o->compose_name, shown, shown_len, o->output_name, new_text, new_len);
        free(shown);

        /* The result must read back: a check on the planner itself. */
        if (r == 0) {
                struct ydoc again;
                sd_error inner = { 0 };
                if (ydoc_load(&again, o->output_name, new_text, new_len, &inner) < 0)
                        r = sd_error_set(p->err, EPROTO, "the rewritten compose file does not parse (a bug in "
                                                         "secretctl): %s", inner.message);
                ydoc_free(&again);
        }

        for (size_t i = 0; r == 0 && i < p->n_files; i++) {
                struct envfile *f = &p->files[i];
                if (!f->changed)
                        continue;
                char *env_text = NULL, *env_shown = NULL;
                size_t env_len = 0, env_shown_len = 0;
                r = envfile_rewrite(p, f, &env_text, &env_len, &env_shown, &env_shown_len);
                if (r == 0)
                        r = add_file(p, f->new_path, f->path, env_text, env_len, f->mode);
                else
                        free(env_text);
                if (r == 0)
                        r = add_diff(p, f->path, env_shown, env_shown_len, f->new_path, env_text, env_len);
                free(env_shown);
        }
        if (r == 0 && !p->plan->diff && !(p->plan->diff = strdup("")))
                r = sd_error_set(p->err, ENOMEM, "out of memory");
        if (r == 0)
                r = check_no_value_left(p);
        return r;
}

int sd_compose_plan(const void *text, size_t len, const struct sd_compose_options *opts,
                    struct sd_compose_plan **out, sd_error *err) {
        sd_error local = { 0 };
        int r = check_options(opts, err);
        if (r < 0)
                return r;
        struct planner p = { .o = opts, .err = err ? err : &local };
        p.plan = calloc(1, sizeof(*p.plan));
        if (!p.plan)
                return sd_error_set(err, ENOMEM, "out of memory");
        r = plan_all(&p, text, len);

        size_t n_warn = 0;
        char *warnings = sd_strbuf_steal(&p.warnings, NULL);
        for (char *line = warnings; r == 0 && line && *line;) {
                char *nl = strchr(line, '\n');
                *nl = '\0';
                char **more = reallocarray(p.plan->warnings, n_warn + 1, sizeof(*more));
                if (!more || !(more[n_warn] = strdup(line))) {
                        if (more)
                                p.plan->warnings = more;
                        r = sd_error_set(p.err, ENOMEM, "out of memory");
                        break;
                }
                p.plan->warnings = more;
                p.plan->n_warnings = ++n_warn;
                line = nl + 1;
        }
        free(warnings);

        edits_free(&p.edits);
        edits_free(&p.shown);
        for (size_t i = 0; i < p.n_files; i++)
                envfile_clear(&p.files[i]);
        free(p.files);
        ydoc_free(&p.doc);
        if (r < 0) {
                sd_compose_plan_free(p.plan);
                return r;
        }
        *out = p.plan;
        return 0;
}

void sd_compose_plan_free(struct sd_compose_plan *plan) {
        if (!plan)
                return;
        for (size_t i = 0; i < plan->n_secrets; i++) {
                free(plan->secrets[i].variable);
                free(plan->secrets[i].origin);
                sd_secret_free(plan->secrets[i].value);
        }
        free(plan->secrets);
        for (size_t i = 0; i < plan->n_files; i++) {
                free(plan->files[i].name);
                free(plan->files[i].original_name);
                free(plan->files[i].text);
        }
        free(plan->files);
        free(plan->diff);
        for (size_t i = 0; i < plan->n_warnings; i++)
                free(plan->warnings[i]);
        free(plan->warnings);
        free(plan);
}
