/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Export and import archives (include/secretd/client.h): ciphertext only,
 * every policy version and every secret version byte for byte, verified
 * as a whole before anything is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "strict-json.h"

#define ARCHIVE_FORMAT 1
#define ARCHIVE_KIND "secretd-archive"
/* One line holds one stored value in base64, plus a little JSON. */
#define LINE_MAX_BYTES (SD_ENVELOPE_MAX_BYTES / 3 * 4 + 4 + 1024)

void sd_archive_free(struct sd_archive *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n_entries; i++)
                free(a->entries[i].data);
        free(a->entries);
        free(a);
}

/* ---- parsing ---- */

static int line_error(sd_error *err, size_t line, const sd_error *why) {
        /* why reads "malformed archive line: ..." */
        const char *text = why->message;
        static const char prefix[] = "malformed archive line: ";
        if (strncmp(text, prefix, strlen(prefix)) == 0)
                text += strlen(prefix);
        return sd_error_set(err, EBADMSG, "archive line %zu: %s", line, text);
}

static int parse_header(const char *line, size_t len, struct sd_archive *a, uint64_t *entries_out, sd_error *err) {
        static const char what[] = "archive line";
        sd_error why = { 0 };
        _cleanup_json_ json_t *root = NULL;
        int r = sd_json_load_object(line, len, LINE_MAX_BYTES, what, &root, &why);
        static const char *const members[] = { "format", "kind", "realm", "created", "entries" };
        uint64_t created = 0;
        json_t *kind = r >= 0 ? json_object_get(root, "kind") : NULL;
        if (r >= 0 && (!json_is_string(kind) || strcmp(json_string_value(kind), ARCHIVE_KIND) != 0))
                r = sd_error_set(&why, EBADMSG, "malformed archive line: not a secretd archive (field 'kind' is not '%s')",
                                 ARCHIVE_KIND);
        if (r >= 0)
                r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", &why);
        if (r >= 0)
                r = sd_json_get_format(root, what, ARCHIVE_FORMAT, &why);
        if (r >= 0)
                r = sd_json_get_b64_exact(root, what, "realm", "realm", a->realm, SD_REALM_ID_BYTES, &why);
        if (r >= 0)
                r = sd_json_get_uint(root, what, "created", 0, &created, &why);
        if (r >= 0)
                r = sd_json_get_uint(root, what, "entries", 1, entries_out, &why);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (r < 0)
                return line_error(err, 1, &why);
        a->created = (int64_t) created;
        return 0;
}

static int parse_entry(const char *line, size_t len, size_t line_no, struct sd_archive_entry *e, sd_error *err) {
        static const char what[] = "archive line";
        sd_error why = { 0 };
        _cleanup_json_ json_t *root = NULL;
        int r = sd_json_load_object(line, len, LINE_MAX_BYTES, what, &root, &why);
        const char *kind = NULL;
        size_t kind_len = 0;
        if (r >= 0)
                r = sd_json_get_string(root, what, "kind", &kind, &kind_len, &why);
        if (r >= 0) {
                if (kind_len == 6 && strcmp(kind, "policy") == 0) {
                        static const char *const members[] = { "kind", "version", "data" };
                        e->kind = SD_ARCHIVE_POLICY;
                        r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", &why);
                } else if (kind_len == 8 && strcmp(kind, "envelope") == 0) {
                        static const char *const members[] = { "kind", "name", "version", "data" };
                        e->kind = SD_ARCHIVE_ENVELOPE;
                        r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", &why);
                        if (r >= 0)
                                r = sd_json_get_name(root, what, "name", "name", "secret name", e->name, &why);
                } else {
                        char shown[40];
                        sd_escape_for_message(kind, kind_len, shown, sizeof(shown));
                        r = sd_error_set(&why, EBADMSG,
                                         "malformed archive line: field 'kind' is '%s'; expected 'policy' or 'envelope'",
                                         shown);
                }
        }
        if (r >= 0)
                r = sd_json_get_uint(root, what, "version", 1, &e->version, &why);
        const char *data = NULL;
        size_t data_len = 0;
        if (r >= 0)
                r = sd_json_get_string(root, what, "data", &data, &data_len, &why);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (r < 0)
                return line_error(err, line_no, &why);
        size_t cap = data_len / 4 * 3 + 1;
        if (cap > SD_ENVELOPE_MAX_BYTES + 1)
                cap = SD_ENVELOPE_MAX_BYTES + 1;
        e->data = malloc(cap);
        if (!e->data)
                return sd_error_set(err, ENOMEM, "out of memory");
        long n = sd_b64_decode(data, data_len, e->data, cap - 1, SD_B64_STD);
        if (n <= 0)
                return sd_error_set(err, EBADMSG,
                                    "archive line %zu: field 'data' must be 1 to %zu bytes in standard base64 with padding",
                                    line_no, SD_ENVELOPE_MAX_BYTES);
        e->data[n] = '\0';
        e->len = (size_t) n;
        e->line = line_no;
        return 0;
}

/* What a message calls an entry: "archive line 12 (secret 'db' version 3)". */
static void entry_label(const struct sd_archive_entry *e, char *out, size_t size) {
        if (e->kind == SD_ARCHIVE_POLICY)
                (void) snprintf(out, size, "archive line %zu (policy v%" PRIu64 ")", e->line, e->version);
        else
                (void) snprintf(out, size, "archive line %zu (secret '%s' version %" PRIu64 ")", e->line, e->name,
                                e->version);
}

/* Order: policies 1..K first, then names strictly ascending, each with
 * versions 1..n. */
static int check_order(const struct sd_archive *a, const struct sd_archive_entry *e, sd_error *err) {
        const struct sd_archive_entry *prev = a->n_entries ? &a->entries[a->n_entries - 1] : NULL;
        char label[SD_NAME_MAX + 96];
        entry_label(e, label, sizeof(label));
        if (e->kind == SD_ARCHIVE_POLICY) {
                if (prev && prev->kind != SD_ARCHIVE_POLICY)
                        return sd_error_set(err, EBADMSG, "%s: policy versions must come before every envelope", label);
                uint64_t want = prev ? prev->version + 1 : 1;
                if (e->version != want)
                        return sd_error_set(err, EBADMSG, "%s: expected policy v%" PRIu64 " here", label, want);
                return 0;
        }
        if (!prev)
                return sd_error_set(err, EBADMSG, "%s: the archive holds no policy version", label);
        if (prev->kind == SD_ARCHIVE_ENVELOPE && strcmp(prev->name, e->name) == 0) {
                if (e->version != prev->version + 1)
                        return sd_error_set(err, EBADMSG, "%s: expected version %" PRIu64 " here", label,
                                            prev->version + 1);
                return 0;
        }
        if (prev->kind == SD_ARCHIVE_ENVELOPE && strcmp(prev->name, e->name) > 0)
                return sd_error_set(err, EBADMSG, "%s: secrets must be sorted by name ('%s' came before)", label,
                                    prev->name);
        if (e->version != 1)
                return sd_error_set(err, EBADMSG, "%s: a secret's versions must start at 1", label);
        return 0;
}

int sd_archive_parse(const char *text, size_t len, struct sd_archive **out, sd_error *err) {
        if (!text || len == 0)
                return sd_error_set(err, EBADMSG, "the archive is empty");
        if (len > SD_ARCHIVE_MAX_BYTES)
                return sd_error_set(err, EFBIG, "the archive is %zu bytes, over the limit of %zu", len,
                                    SD_ARCHIVE_MAX_BYTES);
        if (memchr(text, '\0', len))
                return sd_error_set(err, EBADMSG, "the archive contains a NUL byte");
        if (text[len - 1] != '\n')
                return sd_error_set(err, EBADMSG, "the archive does not end with a newline: it was cut short");

        _cleanup_archive_ struct sd_archive *a = calloc(1, sizeof(*a));
        if (!a)
                return sd_error_set(err, ENOMEM, "out of memory");
        uint64_t expected = 0;
        size_t cap = 0, line_no = 0;
        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t end = (size_t) (nl - text);
                line_no++;
                if (end == pos)
                        return sd_error_set(err, EBADMSG, "archive line %zu is empty", line_no);
                if (line_no == 1) {
                        int r = parse_header(text + pos, end - pos, a, &expected, err);
                        if (r < 0)
                                return r;
                } else {
                        if ((uint64_t) (line_no - 1) > expected)
                                return sd_error_set(err, EBADMSG,
                                                    "archive line %zu: the header announces %" PRIu64 " entries; this is one more",
                                                    line_no, expected);
                        if (a->n_entries == cap) {
                                size_t ncap = cap ? cap * 2 : 64;
                                struct sd_archive_entry *bigger = reallocarray(a->entries, ncap, sizeof(*bigger));
                                if (!bigger)
                                        return sd_error_set(err, ENOMEM, "out of memory");
                                a->entries = bigger;
                                cap = ncap;
                        }
                        struct sd_archive_entry e = { 0 };
                        int r = parse_entry(text + pos, end - pos, line_no, &e, err);
                        if (r >= 0)
                                r = check_order(a, &e, err);
                        if (r < 0) {
                                free(e.data);
                                return r;
                        }
                        a->entries[a->n_entries++] = e;
                        if (e.kind == SD_ARCHIVE_POLICY)
                                a->n_policies++;
                }
                pos = end + 1;
        }
        if (a->n_entries != expected)
                return sd_error_set(err, EBADMSG,
                                    "the archive ends after %zu entries; its header announces %" PRIu64 ": it was cut short",
                                    a->n_entries, expected);
        if (a->n_policies == 0)
                return sd_error_set(err, EBADMSG, "the archive holds no policy version");
        *out = steal_pointer(&a);
        return 0;
}

/* ---- verifying ---- */

struct policy_chain {
        struct sd_policy **p;
        size_t n;
};

static void policy_chain_done(struct policy_chain *c) {
        for (size_t i = 0; i < c->n; i++)
                sd_policy_unref(c->p[i]);
        free(c->p);
}

/* The policy version an envelope names (format 2), or 0 (format 1).  Reads
 * the one field; the full check is sd_envelope_verify's. */
static uint64_t named_policy(const struct sd_archive_entry *e) {
        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(e->data, e->len, JSON_REJECT_DUPLICATES, &jerr);
        json_t *v = root ? json_object_get(root, "policy") : NULL;
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

int sd_archive_verify(const struct sd_archive *a, const struct sd_realm_pin *pin, struct sd_policy **latest_out,
                      sd_error *err) {
        char label[SD_NAME_MAX + 96];
        if (memcmp(a->realm, pin->realm, SD_REALM_ID_BYTES) != 0) {
                char theirs[SD_REALM_ID_SHORT_CHARS + 1], ours[SD_REALM_ID_SHORT_CHARS + 1];
                sd_realm_id_short(a->realm, theirs);
                sd_realm_id_short(pin->realm, ours);
                return sd_error_set(err, EBADMSG, "the archive is of realm %s, you pin realm %s", theirs, ours);
        }
        __attribute__((cleanup(policy_chain_done))) struct policy_chain chain = { 0 };
        chain.p = calloc(a->n_policies, sizeof(*chain.p));
        if (!chain.p)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < a->n_policies; i++) {
                const struct sd_archive_entry *e = &a->entries[i];
                entry_label(e, label, sizeof(label));
                int r = sd_policy_parse(e->data, e->len, &chain.p[i], err);
                if (r < 0)
                        return sd_error_prefix(err, r, "%s", label);
                chain.n++;
                if (sd_policy_version(chain.p[i]) != e->version)
                        return sd_error_set(err, EBADMSG, "%s: the document is policy v%" PRIu64, label,
                                            sd_policy_version(chain.p[i]));
                if (memcmp(sd_policy_realm(chain.p[i]), a->realm, SD_REALM_ID_BYTES) != 0)
                        return sd_error_set(err, EBADMSG, "%s: the document is of another realm than the archive", label);
                if (i > 0) {
                        r = sd_policy_verify_next(chain.p[i - 1], chain.p[i], err);
                        if (r < 0)
                                return sd_error_prefix(err, r, "%s", label);
                }
        }
        bool anchored = false;
        sd_error first = { 0 };
        for (size_t i = 0; i < chain.n && !anchored; i++)
                anchored = sd_policy_verify_pinned(chain.p[i], pin, first.code ? NULL : &first) == 0;
        if (!anchored) {
                char ours[SD_REALM_ID_SHORT_CHARS + 1];
                sd_realm_id_short(pin->realm, ours);
                return sd_error_set(err, EKEYREJECTED,
                                    "no policy version in the archive is signed by the pinned admins of realm %s (%s)",
                                    ours, first.message);
        }

        for (size_t i = a->n_policies; i < a->n_entries; i++) {
                const struct sd_archive_entry *e = &a->entries[i];
                entry_label(e, label, sizeof(label));
                uint64_t v = named_policy(e);
                int flags = 0;
                if (v == 0) {
                        v = 1;
                        flags = SD_ENVELOPE_LEGACY;
                }
                if (v > chain.n)
                        return sd_error_set(err, EBADMSG, "%s: sealed under policy v%" PRIu64
                                            ", which the archive does not hold", label, v);
                struct sd_envelope_info info = { 0 };
                int r = sd_envelope_verify(e->data, e->len, chain.p[v - 1], flags, &info, err);
                if (r < 0)
                        return sd_error_prefix(err, r, "%s", label);
                if (strcmp(info.name, e->name) != 0 || info.version != e->version)
                        return sd_error_set(err, EBADMSG, "%s: the envelope is signed for secret '%s' version %" PRIu64,
                                            label, info.name, info.version);
        }
        if (latest_out)
                *latest_out = sd_policy_ref(chain.p[chain.n - 1]);
        return 0;
}

/* ---- export ---- */

/* The archive text grows in a memory stream: one JSON object per line. */
struct line_stream {
        FILE *f;
        char *data;
        size_t len;
};

static void line_stream_done(struct line_stream *ls) {
        if (ls->f)
                (void) fclose(ls->f);
        free(ls->data);
}

static int line_stream_open(struct line_stream *ls) {
        ls->f = open_memstream(&ls->data, &ls->len);
        return ls->f ? 0 : -ENOMEM;
}

/* Flushes the stream so data and len are final. */
static int line_stream_close(struct line_stream *ls) {
        int r = fclose(ls->f);
        ls->f = NULL;
        return r == 0 ? 0 : -ENOMEM;
}

static int append_line(struct line_stream *ls, json_t *obj) {
        if (!obj)
                return -ENOMEM;
        int r = json_dumpf(obj, ls->f, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(obj);
        return r < 0 || fputc('\n', ls->f) == EOF ? -ENOMEM : 0;
}

static int append_entry(struct line_stream *b, enum sd_archive_kind kind, const char *name, uint64_t version,
                        const char *data, size_t len) {
        _cleanup_free_ char *b64 = sd_b64_encode(data, len, SD_B64_STD);
        if (!b64)
                return -ENOMEM;
        if (kind == SD_ARCHIVE_POLICY)
                return append_line(b, json_pack("{s:s, s:I, s:s}", "kind", "policy", "version", (json_int_t) version,
                                                "data", b64));
        return append_line(b, json_pack("{s:s, s:s, s:I, s:s}", "kind", "envelope", "name", name, "version",
                                        (json_int_t) version, "data", b64));
}

int sd_archive_export(struct sd_store *s, const struct sd_realm_record *rec, char **text_out, size_t *len_out,
                      sd_error *err) {
        _cleanup_policy_ struct sd_policy *latest = NULL;
        struct sd_realm_record now;
        int r = sd_realm_walk(s, rec, NULL, NULL, &latest, &now, err);
        if (r < 0)
                return r;

        __attribute__((cleanup(line_stream_done))) struct line_stream body = { 0 };
        if (line_stream_open(&body) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t entries = 0;
        for (uint64_t v = 1; v <= now.version; v++) {
                _cleanup_free_ char *data = NULL;
                size_t len = 0;
                r = sd_store_policy_get(s, v, &data, &len, NULL, err);
                if (r < 0)
                        return r;
                if (append_entry(&body, SD_ARCHIVE_POLICY, NULL, v, data, len) < 0)
                        return sd_error_set(err, ENOMEM, "out of memory");
                entries++;
        }
        struct sd_store_name *names = NULL;
        size_t n_names = 0;
        r = sd_store_list(s, &names, &n_names, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_names && r >= 0; i++) {
                _cleanup_free_ uint64_t *versions = NULL;
                size_t n = 0;
                r = sd_store_history(s, names[i].name, &versions, &n, err);
                for (size_t k = 0; k < n && r >= 0; k++) {
                        _cleanup_free_ char *data = NULL;
                        size_t len = 0;
                        r = sd_store_get(s, names[i].name, versions[k], &data, &len, NULL, err);
                        if (r >= 0 && append_entry(&body, SD_ARCHIVE_ENVELOPE, names[i].name, versions[k], data, len) < 0)
                                r = sd_error_set(err, ENOMEM, "out of memory");
                        entries++;
                }
        }
        sd_store_names_free(names, n_names);
        if (r < 0)
                return r;
        if (line_stream_close(&body) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");

        __attribute__((cleanup(line_stream_done))) struct line_stream out = { 0 };
        if (line_stream_open(&out) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *realm = sd_b64_encode(sd_policy_realm(latest), SD_REALM_ID_BYTES, SD_B64_STD);
        if (!realm)
                return sd_error_set(err, ENOMEM, "out of memory");
        time_t t = time(NULL);
        if (append_line(&out, json_pack("{s:i, s:s, s:s, s:I, s:I}", "format", ARCHIVE_FORMAT, "kind", ARCHIVE_KIND,
                                        "realm", realm, "created", (json_int_t) (t < 0 ? 0 : t), "entries",
                                        (json_int_t) entries)) < 0 ||
            fwrite(body.data, 1, body.len, out.f) != body.len || line_stream_close(&out) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");

        /* What is exported is what an import will accept: the same checks,
         * here, so a store entry that does not verify is named now. */
        _cleanup_archive_ struct sd_archive *a = NULL;
        r = sd_archive_parse(out.data, out.len, &a, err);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *verified = NULL;
        r = sd_archive_verify(a, &rec->pin, &verified, err);
        if (r < 0)
                return r;
        unsigned char digest[SD_POLICY_DIGEST_BYTES];
        if (sd_policy_digest(verified, digest) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (memcmp(digest, now.digest, SD_POLICY_DIGEST_BYTES) != 0)
                return sd_error_set(err, EBADMSG, "the store changed its policy v%" PRIu64 " during the export",
                                    now.version);
        *text_out = steal_pointer(&out.data);
        *len_out = out.len;
        return 0;
}

/* ---- import ---- */

/* What the destination already holds for an entry: 0 absent, 1 identical;
 * a differing entry is -EEXIST naming it. */
static int existing(struct sd_store *s, const struct sd_archive_entry *e, sd_error *err) {
        char label[SD_NAME_MAX + 96];
        entry_label(e, label, sizeof(label));
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sd_error why = { 0 };
        int r = e->kind == SD_ARCHIVE_POLICY ? sd_store_policy_get(s, e->version, &data, &len, NULL, &why)
                                              : sd_store_get(s, e->name, e->version, &data, &len, NULL, &why);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                if (err)
                        *err = why;
                return r;
        }
        if (len != e->len || memcmp(data, e->data, len) != 0)
                return sd_error_set(err, EEXIST, "%s: the store already holds a different one", label);
        return 1;
}

int sd_archive_import(struct sd_store *s, const struct sd_archive *a, const struct sd_realm_pin *pin,
                      struct sd_realm_record *record_out, sd_error *err) {
        _cleanup_policy_ struct sd_policy *latest = NULL;
        int r = sd_archive_verify(a, pin, &latest, err);
        if (r < 0)
                return r;

        /* Every conflict is found before anything is written. */
        _cleanup_free_ bool *present = calloc(a->n_entries ? a->n_entries : 1, sizeof(*present));
        if (!present)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < a->n_entries; i++) {
                r = existing(s, &a->entries[i], err);
                if (r < 0)
                        return r;
                present[i] = r == 1;
        }
        uint64_t store_latest = 0;
        sd_error why = { 0 };
        r = sd_store_policy_latest(s, &store_latest, &why);
        if (r < 0 && r != -ENOENT) {
                if (err)
                        *err = why;
                return r;
        }
        if (store_latest > a->n_policies)
                return sd_error_set(err, EEXIST, "the store already holds policy v%" PRIu64 "; the archive ends at v%zu",
                                    store_latest, a->n_policies);

        for (size_t i = 0; i < a->n_entries; i++) {
                if (present[i])
                        continue;
                const struct sd_archive_entry *e = &a->entries[i];
                r = e->kind == SD_ARCHIVE_POLICY ? sd_store_policy_put(s, e->version, e->data, e->len, err)
                                                 : sd_store_put(s, e->name, e->version, e->data, e->len, err);
                if (r < 0) {
                        char label[SD_NAME_MAX + 96];
                        entry_label(e, label, sizeof(label));
                        return sd_error_prefix(err, r, "%s", label);
                }
        }
        struct sd_realm_record rec = { .pin = *pin, .version = sd_policy_version(latest) };
        if (sd_policy_digest(latest, rec.digest) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        *record_out = rec;
        return 0;
}
