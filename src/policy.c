/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The realm policy document, its canonical signed bytes, the chain rule and
 * the pin line (include/secretd/policy.h).  docs/trust.md is the reference
 * for the byte layout; tests/unit/test-policy.c re-implements it.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "canon.h"
#include "secretd/cleanup.h"
#include "secretd/policy.h"
#include "strict-json.h"

#define SIGNATURE_BYTES crypto_sign_BYTES
#define PIN_PREFIX "sdr1:"

static const char POLICY_DOMAIN[] = "secretd/policy/v1";
static const char *const list_names[] = {
        [SD_POLICY_ADMINS] = "admins",
        [SD_POLICY_WRITERS] = "writers",
        [SD_POLICY_RECIPIENTS] = "recipients",
};
static const char *const list_nouns[] = {
        [SD_POLICY_ADMINS] = "admin",
        [SD_POLICY_WRITERS] = "writer",
        [SD_POLICY_RECIPIENTS] = "recipient",
};
static const size_t list_limits[] = {
        [SD_POLICY_ADMINS] = SD_POLICY_MAX_ADMINS,
        [SD_POLICY_WRITERS] = SD_POLICY_MAX_WRITERS,
        [SD_POLICY_RECIPIENTS] = SD_POLICY_MAX_RECIPIENTS,
};

struct entry_list {
        struct sd_policy_entry *items;
        size_t n, cap;
};

struct signature {
        unsigned char signer[SD_SIGN_PK_BYTES];
        unsigned char sig[SIGNATURE_BYTES];
};

struct sd_policy {
        unsigned long refs;            /* __atomic */
        unsigned char realm[SD_REALM_ID_BYTES];
        uint64_t version;
        int64_t created;
        unsigned threshold;
        struct entry_list lists[3];
        struct signature *sigs;
        size_t n_sigs;
};

static void entry_done(struct sd_policy_entry *e) {
        for (size_t i = 0; i < e->n_patterns; i++)
                free(e->patterns[i]);
        free(e->patterns);
        e->patterns = NULL;
        e->n_patterns = 0;
}

static void policy_free(struct sd_policy *p) {
        for (size_t l = 0; l < 3; l++) {
                for (size_t i = 0; i < p->lists[l].n; i++)
                        entry_done(&p->lists[l].items[i]);
                free(p->lists[l].items);
        }
        free(p->sigs);
        free(p);
}

struct sd_policy *sd_policy_ref(struct sd_policy *p) {
        if (p)
                __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
        return p;
}

void sd_policy_unref(struct sd_policy *p) {
        if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
                policy_free(p);
}

static int policy_alloc(struct sd_policy **out) {
        struct sd_policy *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->refs = 1;
        *out = p;
        return 0;
}

static int64_t now_seconds(void) {
        time_t t = time(NULL);
        return t < 0 ? 0 : (int64_t) t;
}

int sd_policy_new(const unsigned char realm[SD_REALM_ID_BYTES], struct sd_policy **out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct sd_policy *p;
        if (policy_alloc(&p) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (realm)
                memcpy(p->realm, realm, SD_REALM_ID_BYTES);
        else
                randombytes_buf(p->realm, SD_REALM_ID_BYTES);
        p->version = 1;
        p->created = now_seconds();
        *out = p;
        return 0;
}

static int entry_copy(struct sd_policy_entry *dst, const struct sd_policy_entry *src) {
        *dst = *src;
        dst->patterns = NULL;
        dst->n_patterns = 0;
        if (src->n_patterns == 0)
                return 0;
        dst->patterns = calloc(src->n_patterns, sizeof(*dst->patterns));
        if (!dst->patterns)
                return -ENOMEM;
        for (size_t i = 0; i < src->n_patterns; i++) {
                dst->patterns[i] = strdup(src->patterns[i]);
                if (!dst->patterns[i]) {
                        dst->n_patterns = i;
                        entry_done(dst);
                        return -ENOMEM;
                }
        }
        dst->n_patterns = src->n_patterns;
        return 0;
}

static void policy_unrefp(struct sd_policy **p) {
        sd_policy_unref(*p);
}

int sd_policy_next_draft(const struct sd_policy *p, struct sd_policy **out, sd_error *err) {
        _cleanup_(policy_unrefp) struct sd_policy *d = NULL;
        if (policy_alloc(&d) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (p->version + 1 >= SD_JSON_INT_LIMIT)
                return sd_error_set(err, EOVERFLOW, "policy v%" PRIu64 ": no version number left", p->version);
        memcpy(d->realm, p->realm, SD_REALM_ID_BYTES);
        d->version = p->version + 1;
        d->created = now_seconds();
        d->threshold = p->threshold;
        for (size_t l = 0; l < 3; l++) {
                const struct entry_list *src = &p->lists[l];
                if (src->n == 0)
                        continue;
                d->lists[l].items = calloc(src->n, sizeof(*src->items));
                if (!d->lists[l].items)
                        return sd_error_set(err, ENOMEM, "out of memory");
                d->lists[l].cap = src->n;
                for (size_t i = 0; i < src->n; i++) {
                        if (entry_copy(&d->lists[l].items[i], &src->items[i]) < 0)
                                return sd_error_set(err, ENOMEM, "out of memory");
                        d->lists[l].n++;
                }
        }
        *out = steal_pointer(&d);
        return 0;
}

/* ---- reading ---- */

const unsigned char *sd_policy_realm(const struct sd_policy *p) {
        return p->realm;
}

uint64_t sd_policy_version(const struct sd_policy *p) {
        return p->version;
}

int64_t sd_policy_created(const struct sd_policy *p) {
        return p->created;
}

unsigned sd_policy_threshold(const struct sd_policy *p) {
        return p->threshold;
}

size_t sd_policy_count(const struct sd_policy *p, enum sd_policy_list which) {
        return p->lists[which].n;
}

const struct sd_policy_entry *sd_policy_get(const struct sd_policy *p, enum sd_policy_list which, size_t i) {
        return i < p->lists[which].n ? &p->lists[which].items[i] : NULL;
}

const struct sd_policy_entry *sd_policy_find(const struct sd_policy *p, enum sd_policy_list which,
                                             const char *name) {
        for (size_t i = 0; i < p->lists[which].n; i++)
                if (strcmp(p->lists[which].items[i].name, name) == 0)
                        return &p->lists[which].items[i];
        return NULL;
}

size_t sd_policy_n_signatures(const struct sd_policy *p) {
        return p->n_sigs;
}

const unsigned char *sd_policy_signer(const struct sd_policy *p, size_t i) {
        return i < p->n_sigs ? p->sigs[i].signer : NULL;
}

void sd_realm_id_short(const unsigned char realm[SD_REALM_ID_BYTES], char out[SD_REALM_ID_SHORT_CHARS + 1]) {
        sodium_bin2hex(out, SD_REALM_ID_SHORT_CHARS + 1, realm, SD_REALM_ID_SHORT_CHARS / 2);
}

/* The entry of a list with this key (sign_pk for admins and writers, box_pk
 * for recipients). */
static const struct sd_policy_entry *find_by_key(const struct sd_policy *p, enum sd_policy_list which,
                                                 const unsigned char key[32]) {
        for (size_t i = 0; i < p->lists[which].n; i++) {
                const struct sd_policy_entry *e = &p->lists[which].items[i];
                const unsigned char *k = which == SD_POLICY_RECIPIENTS ? e->box_pk : e->sign_pk;
                if (memcmp(k, key, 32) == 0)
                        return e;
        }
        return NULL;
}

bool sd_policy_is_admin(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES]) {
        return find_by_key(p, SD_POLICY_ADMINS, sign_pk) != NULL;
}

/* ---- patterns ---- */

static bool is_pattern_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-' || c == '*' || c == '?';
}

int sd_pattern_validate(const char *text, sd_error *err) {
        size_t len = text ? strlen(text) : 0;
        char shown[80];
        sd_escape_for_message(text ? text : "", len, shown, sizeof(shown));
        if (len == 0)
                return sd_error_set(err, EINVAL, "a name pattern may not be empty");
        if (len > SD_NAME_MAX)
                return sd_error_set(err, EINVAL, "name pattern '%s' is longer than %d characters", shown,
                                    SD_NAME_MAX);
        for (size_t i = 0; i < len; i++)
                if (!is_pattern_char(text[i]))
                        return sd_error_set(err, EINVAL,
                                            "name pattern '%s' may contain only A-Z a-z 0-9 . _ - and the wildcards * ?",
                                            shown);
        return 0;
}

bool sd_pattern_match(const char *pattern, const char *name) {
        return fnmatch(pattern, name, 0) == 0;
}

static bool entry_covers(const struct sd_policy_entry *e, const char *name) {
        for (size_t i = 0; i < e->n_patterns; i++)
                if (sd_pattern_match(e->patterns[i], name))
                        return true;
        return false;
}

/* "db_*, app_?" (shortened with "..." past the buffer). */
static void patterns_text(const struct sd_policy_entry *e, char *out, size_t size) {
        size_t len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < e->n_patterns; i++) {
                int n = snprintf(out + len, size - len, "%s%s", i ? ", " : "", e->patterns[i]);
                if (n < 0 || (size_t) n >= size - len) {
                        if (size > 4)
                                memcpy(out + size - 4, "...", 4);
                        return;
                }
                len += (size_t) n;
        }
}

/* ---- the rules ---- */

enum sd_write_refusal sd_policy_check_write(const struct sd_policy *p,
                                            const unsigned char sign_pk[SD_SIGN_PK_BYTES], const char *name,
                                            bool need_recipient, sd_error *err) {
        char id[SD_KEY_ID_CHARS + 1], realm[SD_REALM_ID_SHORT_CHARS + 1];
        sd_key_id(sign_pk, id);
        sd_realm_id_short(p->realm, realm);
        if (!sd_policy_is_admin(p, sign_pk)) {
                const struct sd_policy_entry *w = find_by_key(p, SD_POLICY_WRITERS, sign_pk);
                if (!w) {
                        (void) sd_error_set(err, EKEYREJECTED,
                                            "you (writer %s) are not a writer in policy v%" PRIu64
                                            " of realm %s: an admin adds you with 'secretctl writer add NAME KEY', "
                                            "KEY being the line 'secretctl whoami' prints",
                                            id, p->version, realm);
                        return SD_WRITE_NOT_A_WRITER;
                }
                if (!entry_covers(w, name)) {
                        char pats[160];
                        patterns_text(w, pats, sizeof(pats));
                        (void) sd_error_set(err, EKEYREJECTED,
                                            "writer '%s' (%s) may write only %s, not '%s' (policy v%" PRIu64 ")",
                                            w->name, id, pats, name, p->version);
                        return SD_WRITE_OUTSIDE_PATTERNS;
                }
        }
        if (need_recipient) {
                bool any = false;
                for (size_t i = 0; i < p->lists[SD_POLICY_RECIPIENTS].n && !any; i++)
                        any = entry_covers(&p->lists[SD_POLICY_RECIPIENTS].items[i], name);
                if (!any) {
                        (void) sd_error_set(err, ENOKEY,
                                            "no host could open '%s': add a recipient whose patterns cover '%s' "
                                            "with 'secretctl recipient add' (policy v%" PRIu64 " has none)",
                                            name, name, p->version);
                        return SD_WRITE_NO_RECIPIENT;
                }
        }
        return SD_WRITE_ALLOWED;
}

int sd_policy_check_signer(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES],
                           const char *name, sd_error *err) {
        if (sd_policy_is_admin(p, sign_pk))
                return 0;
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(sign_pk, id);
        const struct sd_policy_entry *w = find_by_key(p, SD_POLICY_WRITERS, sign_pk);
        if (!w)
                return sd_error_set(err, EKEYREJECTED, "signed by %s, who is not a writer in policy v%" PRIu64, id,
                                    p->version);
        if (!entry_covers(w, name)) {
                char pats[160];
                patterns_text(w, pats, sizeof(pats));
                return sd_error_set(err, EKEYREJECTED,
                                    "signed by writer '%s' (%s), whose patterns (%s) do not cover '%s' in policy v%" PRIu64,
                                    w->name, id, pats, name, p->version);
        }
        return 0;
}

int sd_policy_recipients_for(const struct sd_policy *p, const char *name,
                             unsigned char (**keys_out)[SD_BOX_PK_BYTES], size_t *n_out,
                             size_t *n_agents_out) {
        const struct entry_list *rec = &p->lists[SD_POLICY_RECIPIENTS], *adm = &p->lists[SD_POLICY_ADMINS];
        size_t cap = rec->n + adm->n;
        unsigned char(*keys)[SD_BOX_PK_BYTES] = cap ? calloc(cap, SD_BOX_PK_BYTES) : NULL;
        if (cap && !keys)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < rec->n; i++)
                if (entry_covers(&rec->items[i], name))
                        memcpy(keys[n++], rec->items[i].box_pk, SD_BOX_PK_BYTES);
        size_t n_agents = n;
        for (size_t i = 0; i < adm->n; i++) {
                bool seen = false;
                for (size_t j = 0; j < n && !seen; j++)
                        seen = memcmp(keys[j], adm->items[i].box_pk, SD_BOX_PK_BYTES) == 0;
                if (!seen)
                        memcpy(keys[n++], adm->items[i].box_pk, SD_BOX_PK_BYTES);
        }
        if (n == 0) {
                free(keys);
                keys = NULL;
        }
        *keys_out = keys;
        *n_out = n;
        if (n_agents_out)
                *n_agents_out = n_agents;
        return 0;
}

const struct sd_policy_entry *sd_policy_find_box_key(const struct sd_policy *p,
                                                     const unsigned char box_pk[SD_BOX_PK_BYTES],
                                                     enum sd_policy_list *which_out) {
        static const enum sd_policy_list order[] = { SD_POLICY_RECIPIENTS, SD_POLICY_ADMINS, SD_POLICY_WRITERS };
        for (size_t l = 0; l < SD_ARRAY_SIZE(order); l++)
                for (size_t i = 0; i < p->lists[order[l]].n; i++)
                        if (memcmp(p->lists[order[l]].items[i].box_pk, box_pk, SD_BOX_PK_BYTES) == 0) {
                                if (which_out)
                                        *which_out = order[l];
                                return &p->lists[order[l]].items[i];
                        }
        return NULL;
}

const char *sd_policy_list_noun(enum sd_policy_list which) {
        return list_nouns[which];
}

void sd_policy_entry_key_id(enum sd_policy_list which, const struct sd_policy_entry *e,
                            char out[SD_KEY_ID_CHARS + 1]) {
        sd_key_id(which == SD_POLICY_RECIPIENTS ? e->box_pk : e->sign_pk, out);
}

/* ---- structural checks ---- */

static int cmp_key32(const void *a, const void *b) {
        return memcmp(a, b, 32);
}

static int cmp_name_ptr(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Unique names and keys within one list: sorted copies, so a list of
 * thousands is checked in n log n. */
static int check_unique(const struct sd_policy *p, enum sd_policy_list which, sd_error *err) {
        const struct entry_list *l = &p->lists[which];
        if (l->n < 2)
                return 0;
        _cleanup_free_ const char **names = calloc(l->n, sizeof(*names));
        _cleanup_free_ unsigned char(*keys)[32] = calloc(l->n, 32);
        if (!names || !keys)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < l->n; i++) {
                names[i] = l->items[i].name;
                memcpy(keys[i], which == SD_POLICY_RECIPIENTS ? l->items[i].box_pk : l->items[i].sign_pk, 32);
        }
        qsort(names, l->n, sizeof(*names), cmp_name_ptr);
        qsort(keys, l->n, 32, cmp_key32);
        for (size_t i = 1; i < l->n; i++) {
                if (strcmp(names[i - 1], names[i]) == 0)
                        return sd_error_set(err, EINVAL, "%s '%s' is listed twice", list_nouns[which], names[i]);
                if (memcmp(keys[i - 1], keys[i], 32) == 0) {
                        char id[SD_KEY_ID_CHARS + 1];
                        sd_key_id(keys[i], id);
                        return sd_error_set(err, EINVAL, "the key %s is listed twice among the %s", id,
                                            list_names[which]);
                }
        }
        return 0;
}

int sd_policy_check(const struct sd_policy *p, sd_error *err) {
        size_t n_admins = p->lists[SD_POLICY_ADMINS].n;
        if (n_admins == 0)
                return sd_error_set(err, EINVAL, "policy v%" PRIu64 " has no admin", p->version);
        for (size_t l = 0; l < 3; l++)
                if (p->lists[l].n > list_limits[l])
                        return sd_error_set(err, EINVAL, "policy v%" PRIu64 " has %zu %s; the limit is %zu",
                                            p->version, p->lists[l].n, list_names[l], list_limits[l]);
        if (p->threshold < 1 || p->threshold > n_admins)
                return sd_error_set(err, EINVAL, "policy v%" PRIu64 ": threshold %u must be from 1 to %zu (the admins)",
                                    p->version, p->threshold, n_admins);
        for (size_t l = 0; l < 3; l++) {
                int r = check_unique(p, (enum sd_policy_list) l, err);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < p->lists[l].n; i++) {
                        const struct sd_policy_entry *e = &p->lists[l].items[i];
                        if (l == SD_POLICY_ADMINS && e->n_patterns != 0)
                                return sd_error_set(err, EINVAL, "admin '%s' has name patterns; admins cover every name",
                                                    e->name);
                        if (l != SD_POLICY_ADMINS && (e->n_patterns < 1 || e->n_patterns > SD_POLICY_MAX_PATTERNS))
                                return sd_error_set(err, EINVAL, "%s '%s' has %zu name patterns; it needs 1 to %d",
                                                    list_nouns[l], e->name, e->n_patterns, SD_POLICY_MAX_PATTERNS);
                }
        }
        if (p->n_sigs > SD_POLICY_MAX_SIGNATURES)
                return sd_error_set(err, EINVAL, "policy v%" PRIu64 " has %zu signatures; the limit is %d", p->version,
                                    p->n_sigs, SD_POLICY_MAX_SIGNATURES);
        for (size_t i = 0; i < p->n_sigs; i++)
                for (size_t j = 0; j < i; j++)
                        if (memcmp(p->sigs[i].signer, p->sigs[j].signer, SD_SIGN_PK_BYTES) == 0) {
                                char id[SD_KEY_ID_CHARS + 1];
                                sd_key_id(p->sigs[i].signer, id);
                                return sd_error_set(err, EINVAL, "signer %s is listed twice", id);
                        }
        return 0;
}

/* ---- canonical encoding ---- */

static void policy_canon(struct sd_canon *c, const struct sd_policy *p) {
        sd_canon_str(c, POLICY_DOMAIN);
        sd_canon_u64(c, SD_POLICY_FORMAT);
        sd_canon_bytes(c, p->realm, SD_REALM_ID_BYTES);
        sd_canon_u64(c, p->version);
        sd_canon_u64(c, (uint64_t) p->created);
        sd_canon_u32(c, p->threshold);
        for (size_t l = 0; l < 3; l++) {
                sd_canon_u32(c, (uint32_t) p->lists[l].n);
                for (size_t i = 0; i < p->lists[l].n; i++) {
                        const struct sd_policy_entry *e = &p->lists[l].items[i];
                        sd_canon_str(c, e->name);
                        if (l != SD_POLICY_RECIPIENTS)
                                sd_canon_bytes(c, e->sign_pk, SD_SIGN_PK_BYTES);
                        sd_canon_bytes(c, e->box_pk, SD_BOX_PK_BYTES);
                        if (l != SD_POLICY_ADMINS) {
                                sd_canon_u32(c, (uint32_t) e->n_patterns);
                                for (size_t k = 0; k < e->n_patterns; k++)
                                        sd_canon_str(c, e->patterns[k]);
                        }
                }
        }
}

int sd_policy_signed_bytes(const struct sd_policy *p, unsigned char **out, size_t *len_out) {
        struct sd_canon c = { 0 };
        policy_canon(&c, p);
        if (sd_canon_allocate(&c, len_out) < 0)
                return -ENOMEM;
        policy_canon(&c, p);
        *out = c.buf;
        return 0;
}

int sd_policy_digest(const struct sd_policy *p, unsigned char out[SD_POLICY_DIGEST_BYTES]) {
        _cleanup_free_ unsigned char *msg = NULL;
        size_t len;
        if (sd_policy_signed_bytes(p, &msg, &len) < 0)
                return -ENOMEM;
        (void) crypto_generichash(out, SD_POLICY_DIGEST_BYTES, msg, len, NULL, 0);
        return 0;
}

/* ---- JSON ---- */

static json_t *b64_string(const void *bytes, size_t len) {
        _cleanup_free_ char *text = sd_b64_encode(bytes, len, SD_B64_STD);
        return text ? json_string(text) : NULL;
}

static json_t *entry_json(enum sd_policy_list which, const struct sd_policy_entry *e) {
        _cleanup_free_ char *key = NULL;
        int r;
        if (which == SD_POLICY_RECIPIENTS)
                r = sd_agent_pub_format(e->box_pk, &key);
        else {
                struct sd_writer_pub pub;
                memcpy(pub.sign_pk, e->sign_pk, SD_SIGN_PK_BYTES);
                memcpy(pub.box_pk, e->box_pk, SD_BOX_PK_BYTES);
                r = sd_writer_pub_format(&pub, &key);
        }
        if (r < 0)
                return NULL;
        if (which == SD_POLICY_ADMINS)
                return json_pack("{s:s, s:s}", "name", e->name, "key", key);
        json_t *patterns = json_array();
        if (!patterns)
                return NULL;
        for (size_t i = 0; i < e->n_patterns; i++)
                if (json_array_append_new(patterns, json_string(e->patterns[i])) < 0) {
                        json_decref(patterns);
                        return NULL;
                }
        return json_pack("{s:s, s:s, s:o}", "name", e->name, "key", key, "patterns", patterns);
}

int sd_policy_to_json(const struct sd_policy *p, char **json_out, size_t *len_out) {
        _cleanup_json_ json_t *admins = json_array(), *writers = json_array(), *recipients = json_array();
        json_t *lists[3] = { admins, writers, recipients };
        _cleanup_json_ json_t *sigs = json_array();
        _cleanup_json_ json_t *realm = b64_string(p->realm, SD_REALM_ID_BYTES);
        if (!lists[0] || !lists[1] || !lists[2] || !sigs || !realm)
                return -ENOMEM;
        for (size_t l = 0; l < 3; l++)
                for (size_t i = 0; i < p->lists[l].n; i++)
                        if (json_array_append_new(lists[l], entry_json((enum sd_policy_list) l, &p->lists[l].items[i])) < 0)
                                return -ENOMEM;
        for (size_t i = 0; i < p->n_sigs; i++) {
                json_t *s = json_pack("{s:o, s:o}", "signer", b64_string(p->sigs[i].signer, SD_SIGN_PK_BYTES),
                                      "signature", b64_string(p->sigs[i].sig, SIGNATURE_BYTES));
                if (json_array_append_new(sigs, s) < 0)
                        return -ENOMEM;
        }
        _cleanup_json_ json_t *root = json_pack("{s:i, s:s, s:O, s:I, s:I, s:i, s:O, s:O, s:O, s:O}", "format",
                                                SD_POLICY_FORMAT, "kind", "policy", "realm", realm, "version",
                                                (json_int_t) p->version, "created", (json_int_t) p->created,
                                                "threshold", (int) p->threshold, "admins", lists[0], "writers",
                                                lists[1], "recipients", lists[2], "signatures", sigs);
        if (!root)
                return -ENOMEM;
        return sd_json_dump_compact(root, json_out, len_out);
}

/* A public line that is exactly one canonical token: the key parsers stop
 * at whitespace and would accept a trailing comment, which has no place in
 * a signed document.  Only the shape is checked here: whether a key is a
 * usable point is checked when an admin adds it (sd_policy_add), because
 * those checks cost about 0.15 ms each and a policy of thousands of
 * entries is parsed at every refresh.  A document can only carry a bad key
 * with its admins' signatures; a put then fails naming the key. */
static int parse_entry_key(json_t *obj, enum sd_policy_list which, const char *field, struct sd_policy_entry *e,
                           sd_error *err) {
        json_t *v = json_object_get(obj, "key");
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' must be a string", field);
        const char *text = json_string_value(v);
        size_t len = json_string_length(v);
        if (len != strlen(text) || strpbrk(text, " \t\r\n\v\f"))
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' must be one public key line", field);
        bool agent = which == SD_POLICY_RECIPIENTS;
        const char *prefix = agent ? "sda1:" : "sdw1:";
        unsigned char both[SD_SIGN_PK_BYTES + SD_BOX_PK_BYTES];
        size_t n = agent ? SD_BOX_PK_BYTES : sizeof(both);
        /* libsodium's decoder refuses non-zero padding bits: what decodes
         * is canonical. */
        if (len < 5 || memcmp(text, prefix, 5) != 0 ||
            sd_b64_decode_exact(text + 5, len - 5, both, n, SD_B64_URL_NOPAD) < 0) {
                sd_error why = { 0 };
                struct sd_writer_pub pub;
                unsigned char pk[SD_BOX_PK_BYTES];
                (void) (agent ? sd_agent_pub_parse(text, pk, &why) : sd_writer_pub_parse(text, &pub, &why));
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s': %s", field,
                                    why.code ? why.message : "not a public key line");
        }
        if (agent) {
                memcpy(e->box_pk, both, SD_BOX_PK_BYTES);
        } else {
                memcpy(e->sign_pk, both, SD_SIGN_PK_BYTES);
                memcpy(e->box_pk, both + SD_SIGN_PK_BYTES, SD_BOX_PK_BYTES);
        }
        return 0;
}

static int patterns_from_json(json_t *arr, const char *field, struct sd_policy_entry *e, sd_error *err) {
        if (!json_is_array(arr))
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' must be an array", field);
        size_t n = json_array_size(arr);
        if (n == 0 || n > SD_POLICY_MAX_PATTERNS)
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' has %zu patterns; it needs 1 to %d",
                                    field, n, SD_POLICY_MAX_PATTERNS);
        e->patterns = calloc(n, sizeof(*e->patterns));
        if (!e->patterns)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(arr, i);
                if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
                        return sd_error_set(err, EBADMSG, "malformed policy: field '%s[%zu]' must be a string", field, i);
                sd_error why = { 0 };
                if (sd_pattern_validate(json_string_value(v), &why) < 0)
                        return sd_error_set(err, EBADMSG, "malformed policy: field '%s[%zu]': %s", field, i,
                                            why.message);
                e->patterns[i] = strdup(json_string_value(v));
                if (!e->patterns[i])
                        return sd_error_set(err, ENOMEM, "out of memory");
                e->n_patterns = i + 1;
        }
        return 0;
}

static int parse_list(json_t *root, struct sd_policy *p, enum sd_policy_list which, sd_error *err) {
        const char *lname = list_names[which];
        json_t *arr = json_object_get(root, lname);
        if (!json_is_array(arr))
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' must be an array", lname);
        size_t n = json_array_size(arr);
        if (n > list_limits[which])
                return sd_error_set(err, EBADMSG, "malformed policy: field '%s' has %zu entries; the limit is %zu", lname,
                                    n, list_limits[which]);
        if (n == 0)
                return 0;
        struct entry_list *l = &p->lists[which];
        l->items = calloc(n, sizeof(*l->items));
        if (!l->items)
                return sd_error_set(err, ENOMEM, "out of memory");
        l->cap = n;
        static const char *const admin_members[] = { "name", "key" };
        static const char *const members[] = { "name", "key", "patterns" };
        for (size_t i = 0; i < n; i++) {
                json_t *obj = json_array_get(arr, i);
                char field[48], prefix[56];
                (void) snprintf(field, sizeof(field), "%s[%zu]", lname, i);
                (void) snprintf(prefix, sizeof(prefix), "%s.", field);
                if (!json_is_object(obj))
                        return sd_error_set(err, EBADMSG, "malformed policy: field '%s' must be an object", field);
                struct sd_policy_entry *e = &l->items[l->n++];
                int r = which == SD_POLICY_ADMINS
                                ? sd_json_check_members(obj, "policy", admin_members, SD_ARRAY_SIZE(admin_members), prefix, err)
                                : sd_json_check_members(obj, "policy", members, SD_ARRAY_SIZE(members), prefix, err);
                if (r < 0)
                        return r;
                char shown[64];
                (void) snprintf(shown, sizeof(shown), "%sname", prefix);
                char kind[32];
                (void) snprintf(kind, sizeof(kind), "%s name", list_nouns[which]);
                r = sd_json_get_name(obj, "policy", "name", shown, kind, e->name, err);
                if (r < 0)
                        return r;
                (void) snprintf(shown, sizeof(shown), "%skey", prefix);
                r = parse_entry_key(obj, which, shown, e, err);
                if (r < 0)
                        return r;
                if (which != SD_POLICY_ADMINS) {
                        (void) snprintf(shown, sizeof(shown), "%spatterns", prefix);
                        r = patterns_from_json(json_object_get(obj, "patterns"), shown, e, err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int parse_signatures(json_t *root, struct sd_policy *p, sd_error *err) {
        json_t *arr = json_object_get(root, "signatures");
        if (!json_is_array(arr))
                return sd_error_set(err, EBADMSG, "malformed policy: field 'signatures' must be an array");
        size_t n = json_array_size(arr);
        if (n > SD_POLICY_MAX_SIGNATURES)
                return sd_error_set(err, EBADMSG, "malformed policy: field 'signatures' has %zu entries; the limit is %d",
                                    n, SD_POLICY_MAX_SIGNATURES);
        if (n == 0)
                return 0;
        p->sigs = calloc(n, sizeof(*p->sigs));
        if (!p->sigs)
                return sd_error_set(err, ENOMEM, "out of memory");
        static const char *const members[] = { "signer", "signature" };
        for (size_t i = 0; i < n; i++) {
                json_t *obj = json_array_get(arr, i);
                char field[64], prefix[40];
                (void) snprintf(prefix, sizeof(prefix), "signatures[%zu].", i);
                if (!json_is_object(obj))
                        return sd_error_set(err, EBADMSG, "malformed policy: field 'signatures[%zu]' must be an object", i);
                int r = sd_json_check_members(obj, "policy", members, SD_ARRAY_SIZE(members), prefix, err);
                if (r < 0)
                        return r;
                (void) snprintf(field, sizeof(field), "%ssigner", prefix);
                r = sd_json_get_b64_exact(obj, "policy", "signer", field, p->sigs[i].signer, SD_SIGN_PK_BYTES, err);
                if (r < 0)
                        return r;
                (void) snprintf(field, sizeof(field), "%ssignature", prefix);
                r = sd_json_get_b64_exact(obj, "policy", "signature", field, p->sigs[i].sig, SIGNATURE_BYTES, err);
                if (r < 0)
                        return r;
                p->n_sigs = i + 1;
        }
        return 0;
}

int sd_policy_parse(const char *json, size_t len, struct sd_policy **out, sd_error *err) {
        static const char what[] = "policy";
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        _cleanup_json_ json_t *root = NULL;
        int r = sd_json_load_object(json, len, SD_POLICY_MAX_BYTES, what, &root, err);
        if (r < 0)
                return r;
        static const char *const members[] = { "format", "kind", "realm", "version", "created", "threshold",
                                               "admins", "writers", "recipients", "signatures" };
        r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", err);
        if (r < 0)
                return r;
        const char *kind;
        size_t kind_len;
        r = sd_json_get_string(root, what, "kind", &kind, &kind_len, err);
        if (r < 0)
                return r;
        if (kind_len != 6 || strcmp(kind, "policy") != 0) {
                char shown[40];
                sd_escape_for_message(kind, kind_len, shown, sizeof(shown));
                return sd_error_set(err, EBADMSG, "malformed policy: field 'kind' is '%s'; expected 'policy'", shown);
        }
        uint64_t threshold, created;
        r = sd_json_get_format(root, what, SD_POLICY_FORMAT, err);
        if (r < 0)
                return r;

        _cleanup_(policy_unrefp) struct sd_policy *p = NULL;
        if (policy_alloc(&p) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        r = sd_json_get_b64_exact(root, what, "realm", "realm", p->realm, SD_REALM_ID_BYTES, err);
        if (r >= 0)
                r = sd_json_get_uint(root, what, "version", 1, &p->version, err);
        if (r >= 0)
                r = sd_json_get_uint(root, what, "created", 0, &created, err);
        if (r >= 0)
                r = sd_json_get_uint(root, what, "threshold", 1, &threshold, err);
        if (r < 0)
                return r;
        if (threshold > SD_POLICY_MAX_ADMINS)
                return sd_error_set(err, EBADMSG, "malformed policy: field 'threshold' is %" PRIu64 "; the limit is %d",
                                    threshold, SD_POLICY_MAX_ADMINS);
        p->created = (int64_t) created;
        p->threshold = (unsigned) threshold;
        for (size_t l = 0; l < 3; l++) {
                r = parse_list(root, p, (enum sd_policy_list) l, err);
                if (r < 0)
                        return r;
        }
        r = parse_signatures(root, p, err);
        if (r < 0)
                return r;
        sd_error why = { 0 };
        r = sd_policy_check(p, &why);
        if (r == -ENOMEM)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (r < 0)
                return sd_error_set(err, EBADMSG, "malformed policy: %s", why.message);
        *out = steal_pointer(&p);
        return 0;
}

/* ---- editing ---- */

static int check_draft(const struct sd_policy *p, sd_error *err) {
        if (__atomic_load_n(&p->refs, __ATOMIC_ACQUIRE) != 1)
                return sd_error_set(err, EBUSY, "policy v%" PRIu64 " is shared; only a draft can be changed", p->version);
        return 0;
}

/* An edit changes the signed bytes: earlier signatures no longer apply. */
static void drop_signatures(struct sd_policy *p) {
        free(p->sigs);
        p->sigs = NULL;
        p->n_sigs = 0;
}

int sd_policy_add(struct sd_policy *p, enum sd_policy_list which, const char *name,
                  const unsigned char sign_pk[SD_SIGN_PK_BYTES], const unsigned char box_pk[SD_BOX_PK_BYTES],
                  const char *const *patterns, size_t n_patterns, sd_error *err) {
        int r = check_draft(p, err);
        if (r < 0)
                return r;
        const char *noun = list_nouns[which];
        char kind[32];
        (void) snprintf(kind, sizeof(kind), "%s name", noun);
        r = sd_name_validate(kind, name, name ? strlen(name) : 0, err);
        if (r < 0)
                return r;
        struct entry_list *l = &p->lists[which];
        if (l->n >= list_limits[which])
                return sd_error_set(err, EINVAL, "policy already has %zu %s, the limit", l->n, list_names[which]);
        if (sd_policy_find(p, which, name))
                return sd_error_set(err, EEXIST, "there is already %s %s '%s' in policy v%" PRIu64,
                                    which == SD_POLICY_ADMINS ? "an" : "a", noun, name, p->version);
        const unsigned char *key = which == SD_POLICY_RECIPIENTS ? box_pk : sign_pk;
        const struct sd_policy_entry *same = find_by_key(p, which, key);
        if (same) {
                char id[SD_KEY_ID_CHARS + 1];
                sd_key_id(key, id);
                return sd_error_set(err, EEXIST, "the key %s is already %s %s '%s'", id,
                                    which == SD_POLICY_ADMINS ? "an" : "a", noun, same->name);
        }
        if (which == SD_POLICY_RECIPIENTS && !sd_box_pk_usable(box_pk))
                return sd_error_set(err, EINVAL, "recipient '%s': the key is not a usable X25519 public key", name);
        if (which != SD_POLICY_RECIPIENTS && !crypto_core_ed25519_is_valid_point(sign_pk))
                return sd_error_set(err, EINVAL, "%s '%s': the signing key is not a valid Ed25519 point", noun, name);
        if (which == SD_POLICY_ADMINS && n_patterns > 0)
                return sd_error_set(err, EINVAL, "admin '%s': admins cover every name and take no patterns", name);
        if (n_patterns > SD_POLICY_MAX_PATTERNS)
                return sd_error_set(err, EINVAL, "%s '%s': %zu patterns; the limit is %d", noun, name, n_patterns,
                                    SD_POLICY_MAX_PATTERNS);
        for (size_t i = 0; i < n_patterns; i++) {
                r = sd_pattern_validate(patterns[i], err);
                if (r < 0)
                        return sd_error_prefix(err, r, "%s '%s'", noun, name);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(patterns[i], patterns[j]) == 0)
                                return sd_error_set(err, EINVAL, "%s '%s': pattern '%s' is given twice", noun, name,
                                                    patterns[i]);
        }

        struct sd_policy_entry e = { 0 };
        memcpy(e.name, name, strlen(name) + 1);
        if (which != SD_POLICY_RECIPIENTS)
                memcpy(e.sign_pk, sign_pk, SD_SIGN_PK_BYTES);
        memcpy(e.box_pk, box_pk, SD_BOX_PK_BYTES);
        static const char *const everything[] = { "*" };
        const char *const *pats = which == SD_POLICY_ADMINS ? NULL : n_patterns ? patterns : everything;
        size_t n_pats = which == SD_POLICY_ADMINS ? 0 : n_patterns ? n_patterns : 1;
        if (n_pats) {
                e.patterns = calloc(n_pats, sizeof(*e.patterns));
                if (!e.patterns)
                        return sd_error_set(err, ENOMEM, "out of memory");
                for (size_t i = 0; i < n_pats; i++) {
                        e.patterns[i] = strdup(pats[i]);
                        if (!e.patterns[i]) {
                                entry_done(&e);
                                return sd_error_set(err, ENOMEM, "out of memory");
                        }
                        e.n_patterns = i + 1;
                }
        }
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                struct sd_policy_entry *bigger = reallocarray(l->items, cap, sizeof(*bigger));
                if (!bigger) {
                        entry_done(&e);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
                l->items = bigger;
                l->cap = cap;
        }
        l->items[l->n++] = e;
        drop_signatures(p);
        return 0;
}

int sd_policy_remove(struct sd_policy *p, enum sd_policy_list which, const char *name, sd_error *err) {
        int r = check_draft(p, err);
        if (r < 0)
                return r;
        struct entry_list *l = &p->lists[which];
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->items[i].name, name) == 0) {
                        entry_done(&l->items[i]);
                        memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(*l->items));
                        l->n--;
                        drop_signatures(p);
                        return 0;
                }
        char shown[80];
        sd_escape_for_message(name, strlen(name), shown, sizeof(shown));
        return sd_error_set(err, ENOENT, "there is no %s '%s' in policy v%" PRIu64, list_nouns[which], shown,
                            p->version);
}

int sd_policy_set_threshold(struct sd_policy *p, unsigned threshold, sd_error *err) {
        int r = check_draft(p, err);
        if (r < 0)
                return r;
        size_t n_admins = p->lists[SD_POLICY_ADMINS].n;
        if (threshold < 1 || threshold > n_admins)
                return sd_error_set(err, EINVAL, "threshold %u must be from 1 to %zu (the number of admins)", threshold,
                                    n_admins);
        p->threshold = threshold;
        drop_signatures(p);
        return 0;
}

int sd_policy_sign(struct sd_policy *p, const struct sd_writer_key *key, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        int r = check_draft(p, err);
        if (r < 0)
                return r;
        if (memcmp(key->sign_sk + crypto_sign_SEEDBYTES, key->pub.sign_pk, SD_SIGN_PK_BYTES) != 0)
                return sd_error_set(err, EINVAL, "the signing key does not match its public key");
        _cleanup_free_ unsigned char *msg = NULL;
        size_t len;
        if (sd_policy_signed_bytes(p, &msg, &len) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t slot = p->n_sigs;
        for (size_t i = 0; i < p->n_sigs; i++)
                if (memcmp(p->sigs[i].signer, key->pub.sign_pk, SD_SIGN_PK_BYTES) == 0)
                        slot = i;
        if (slot == p->n_sigs) {
                if (p->n_sigs >= SD_POLICY_MAX_SIGNATURES)
                        return sd_error_set(err, EINVAL, "policy v%" PRIu64 " already carries %d signatures", p->version,
                                            SD_POLICY_MAX_SIGNATURES);
                struct signature *bigger = reallocarray(p->sigs, p->n_sigs + 1, sizeof(*bigger));
                if (!bigger)
                        return sd_error_set(err, ENOMEM, "out of memory");
                p->sigs = bigger;
                p->n_sigs++;
        }
        memcpy(p->sigs[slot].signer, key->pub.sign_pk, SD_SIGN_PK_BYTES);
        (void) crypto_sign_detached(p->sigs[slot].sig, NULL, msg, len, key->sign_sk);
        return 0;
}

/* ---- verifying ---- */

/* Which signatures verify over p's signed bytes (valid[i]).  -ENOMEM. */
static int valid_signatures(const struct sd_policy *p, bool *valid) {
        _cleanup_free_ unsigned char *msg = NULL;
        size_t len;
        if (sd_policy_signed_bytes(p, &msg, &len) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_sigs; i++)
                valid[i] = crypto_sign_verify_detached(p->sigs[i].sig, msg, len, p->sigs[i].signer) == 0;
        return 0;
}

/* Distinct signers among the valid signatures that satisfy `counts`. */
static size_t count_valid(const struct sd_policy *p, const bool *valid,
                          bool (*counts)(const void *ctx, const unsigned char *signer), const void *ctx) {
        size_t n = 0;
        for (size_t i = 0; i < p->n_sigs; i++) {
                if (!valid[i] || !counts(ctx, p->sigs[i].signer))
                        continue;
                bool repeat = false;
                for (size_t j = 0; j < i && !repeat; j++)
                        repeat = valid[j] && memcmp(p->sigs[j].signer, p->sigs[i].signer, SD_SIGN_PK_BYTES) == 0;
                if (!repeat)
                        n++;
        }
        return n;
}

static bool is_admin_of(const void *ctx, const unsigned char *signer) {
        return sd_policy_is_admin(ctx, signer);
}

size_t sd_policy_count_signatures(const struct sd_policy *p, const struct sd_policy *admins_of) {
        bool valid[SD_POLICY_MAX_SIGNATURES] = { false };
        if (p->n_sigs > SD_POLICY_MAX_SIGNATURES || valid_signatures(p, valid) < 0)
                return 0;
        return count_valid(p, valid, is_admin_of, admins_of);
}

bool sd_policy_signed_by(const struct sd_policy *p, const unsigned char sign_pk[SD_SIGN_PK_BYTES]) {
        bool valid[SD_POLICY_MAX_SIGNATURES] = { false };
        if (p->n_sigs > SD_POLICY_MAX_SIGNATURES || valid_signatures(p, valid) < 0)
                return false;
        for (size_t i = 0; i < p->n_sigs; i++)
                if (valid[i] && memcmp(p->sigs[i].signer, sign_pk, SD_SIGN_PK_BYTES) == 0)
                        return true;
        return false;
}

static int realm_mismatch(sd_error *err, const struct sd_policy *p, const unsigned char expected[SD_REALM_ID_BYTES],
                          const char *whose) {
        char got[SD_REALM_ID_SHORT_CHARS + 1], want[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(p->realm, got);
        sd_realm_id_short(expected, want);
        return sd_error_set(err, EBADMSG, "policy v%" PRIu64 " belongs to realm %s, %s realm %s", p->version, got,
                            whose, want);
}

int sd_policy_verify_next(const struct sd_policy *trusted, const struct sd_policy *next, sd_error *err) {
        if (memcmp(trusted->realm, next->realm, SD_REALM_ID_BYTES) != 0)
                return realm_mismatch(err, next, trusted->realm, "not to the trusted");
        if (next->version != trusted->version + 1)
                return sd_error_set(err, EBADMSG, "policy v%" PRIu64 " cannot follow the trusted v%" PRIu64
                                    "; only v%" PRIu64 " can", next->version, trusted->version, trusted->version + 1);
        bool valid[SD_POLICY_MAX_SIGNATURES] = { false };
        if (next->n_sigs > SD_POLICY_MAX_SIGNATURES || valid_signatures(next, valid) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        size_t by_old = count_valid(next, valid, is_admin_of, trusted);
        if (by_old < trusted->threshold)
                return sd_error_set(err, EKEYREJECTED,
                                    "policy v%" PRIu64 ": signed by %zu of the %u admins of v%" PRIu64 " it needs",
                                    next->version, by_old, trusted->threshold, trusted->version);
        size_t by_new = count_valid(next, valid, is_admin_of, next);
        if (by_new < next->threshold)
                return sd_error_set(err, EKEYREJECTED,
                                    "policy v%" PRIu64 ": signed by %zu of the %u of its own admins it needs",
                                    next->version, by_new, next->threshold);
        return 0;
}

struct pinned_admin_ctx {
        const struct sd_realm_pin *pin;
        const struct sd_policy *p;
};

static bool is_pinned_admin(const void *ctx, const unsigned char *signer) {
        const struct pinned_admin_ctx *c = ctx;
        if (!sd_policy_is_admin(c->p, signer))
                return false;
        for (size_t i = 0; i < c->pin->n_admins; i++)
                if (memcmp(c->pin->admins[i], signer, SD_SIGN_PK_BYTES) == 0)
                        return true;
        return false;
}

int sd_policy_verify_pinned(const struct sd_policy *p, const struct sd_realm_pin *pin, sd_error *err) {
        if (memcmp(p->realm, pin->realm, SD_REALM_ID_BYTES) != 0)
                return realm_mismatch(err, p, pin->realm, "you pin");
        bool valid[SD_POLICY_MAX_SIGNATURES] = { false };
        if (p->n_sigs > SD_POLICY_MAX_SIGNATURES || valid_signatures(p, valid) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        struct pinned_admin_ctx ctx = { pin, p };
        size_t n = count_valid(p, valid, is_pinned_admin, &ctx);
        if (n < p->threshold)
                return sd_error_set(err, EKEYREJECTED,
                                    "policy v%" PRIu64 ": signed by %zu of the %u pinned admins it needs", p->version,
                                    n, p->threshold);
        return 0;
}

/* ---- the pin line ---- */

int sd_realm_pin_format(const struct sd_realm_pin *pin, char **out) {
        size_t len = SD_REALM_ID_BYTES + pin->n_admins * SD_SIGN_PK_BYTES;
        unsigned char buf[SD_REALM_ID_BYTES + SD_POLICY_MAX_ADMINS * SD_SIGN_PK_BYTES];
        if (pin->n_admins < 1 || pin->n_admins > SD_POLICY_MAX_ADMINS)
                return -EINVAL;
        memcpy(buf, pin->realm, SD_REALM_ID_BYTES);
        for (size_t i = 0; i < pin->n_admins; i++)
                memcpy(buf + SD_REALM_ID_BYTES + i * SD_SIGN_PK_BYTES, pin->admins[i], SD_SIGN_PK_BYTES);
        _cleanup_free_ char *b64 = sd_b64_encode(buf, len, SD_B64_URL_NOPAD);
        if (!b64)
                return -ENOMEM;
        return asprintf(out, PIN_PREFIX "%s", b64) < 0 ? -ENOMEM : 0;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int sd_realm_pin_parse(const char *text, struct sd_realm_pin *out, sd_error *err) {
        if (!text)
                return sd_error_set(err, EINVAL, "no realm pin given");
        while (is_space(*text))
                text++;
        size_t len = 0;
        while (text[len] && !is_space(text[len]))
                len++;
        for (const char *rest = text + len; *rest; rest++)
                if (!is_space(*rest))
                        return sd_error_set(err, EINVAL, "a realm pin is one word (sdr1:...); found more text after it");
        if (len == 0)
                return sd_error_set(err, EINVAL, "the realm pin is empty");
        size_t plen = strlen(PIN_PREFIX);
        if (len < plen || memcmp(text, PIN_PREFIX, plen) != 0)
                return sd_error_set(err, EINVAL, "not a realm pin: it must start with '%s' (the line 'secretctl realm pin' prints)",
                                    PIN_PREFIX);
        unsigned char buf[SD_REALM_ID_BYTES + SD_POLICY_MAX_ADMINS * SD_SIGN_PK_BYTES];
        long n = sd_b64_decode(text + plen, len - plen, buf, sizeof(buf), SD_B64_URL_NOPAD);
        if (n < 0)
                return sd_error_set(err, EINVAL,
                                    "not a realm pin: '%s' must be followed by unpadded base64url of a realm id and 1 to %d admin keys",
                                    PIN_PREFIX, SD_POLICY_MAX_ADMINS);
        size_t keys = (size_t) n > SD_REALM_ID_BYTES ? ((size_t) n - SD_REALM_ID_BYTES) : 0;
        if ((size_t) n <= SD_REALM_ID_BYTES || keys % SD_SIGN_PK_BYTES != 0)
                return sd_error_set(err, EINVAL,
                                    "not a realm pin: %ld bytes is not a 16-byte realm id followed by 32-byte admin keys", n);
        struct sd_realm_pin pin = { .n_admins = keys / SD_SIGN_PK_BYTES };
        memcpy(pin.realm, buf, SD_REALM_ID_BYTES);
        for (size_t i = 0; i < pin.n_admins; i++) {
                memcpy(pin.admins[i], buf + SD_REALM_ID_BYTES + i * SD_SIGN_PK_BYTES, SD_SIGN_PK_BYTES);
                if (!crypto_core_ed25519_is_valid_point(pin.admins[i]))
                        return sd_error_set(err, EINVAL, "realm pin: admin key %zu is not a valid Ed25519 point", i + 1);
                for (size_t j = 0; j < i; j++)
                        if (memcmp(pin.admins[i], pin.admins[j], SD_SIGN_PK_BYTES) == 0)
                                return sd_error_set(err, EINVAL, "realm pin: admin key %zu is listed twice", i + 1);
        }
        /* The decoder accepts nothing but canonical text; a re-encoding
         * check would say the same. */
        *out = pin;
        return 0;
}

void sd_realm_pin_of(const struct sd_policy *p, struct sd_realm_pin *out) {
        *out = (struct sd_realm_pin) { .n_admins = p->lists[SD_POLICY_ADMINS].n };
        memcpy(out->realm, p->realm, SD_REALM_ID_BYTES);
        if (out->n_admins > SD_POLICY_MAX_ADMINS)
                out->n_admins = SD_POLICY_MAX_ADMINS;
        for (size_t i = 0; i < out->n_admins; i++)
                memcpy(out->admins[i], p->lists[SD_POLICY_ADMINS].items[i].sign_pk, SD_SIGN_PK_BYTES);
}

/* ---- describing a change ---- */

static void linef(void (*fn)(void *, const char *), void *userdata, const char *fmt, ...) SD_PRINTF(3, 4);
static void linef(void (*fn)(void *, const char *), void *userdata, const char *fmt, ...) {
        char line[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fn(userdata, line);
}

static bool same_patterns(const struct sd_policy_entry *a, const struct sd_policy_entry *b) {
        if (a->n_patterns != b->n_patterns)
                return false;
        for (size_t i = 0; i < a->n_patterns; i++)
                if (strcmp(a->patterns[i], b->patterns[i]) != 0)
                        return false;
        return true;
}

static void describe_entry(char *out, size_t size, enum sd_policy_list which, const struct sd_policy_entry *e) {
        char id[SD_KEY_ID_CHARS + 1], pats[200];
        sd_policy_entry_key_id(which, e, id);
        patterns_text(e, pats, sizeof(pats));
        if (which == SD_POLICY_ADMINS)
                (void) snprintf(out, size, "admin %s (%s)", e->name, id);
        else
                (void) snprintf(out, size, "%s %s (%s) patterns %s", list_nouns[which], e->name, id, pats);
}

void sd_policy_describe_changes(const struct sd_policy *cur, const struct sd_policy *next,
                                void (*fn)(void *userdata, const char *line), void *userdata) {
        char text[400];
        for (size_t l = 0; l < 3; l++) {
                enum sd_policy_list which = (enum sd_policy_list) l;
                for (size_t i = 0; i < cur->lists[l].n; i++) {
                        const struct sd_policy_entry *old = &cur->lists[l].items[i];
                        const struct sd_policy_entry *now = sd_policy_find(next, which, old->name);
                        describe_entry(text, sizeof(text), which, old);
                        if (!now)
                                linef(fn, userdata, "- %s", text);
                        else if (memcmp(old->sign_pk, now->sign_pk, SD_SIGN_PK_BYTES) != 0 ||
                                 memcmp(old->box_pk, now->box_pk, SD_BOX_PK_BYTES) != 0 || !same_patterns(old, now)) {
                                linef(fn, userdata, "- %s", text);
                                describe_entry(text, sizeof(text), which, now);
                                linef(fn, userdata, "+ %s", text);
                        }
                }
                for (size_t i = 0; i < next->lists[l].n; i++) {
                        const struct sd_policy_entry *now = &next->lists[l].items[i];
                        if (sd_policy_find(cur, which, now->name))
                                continue;
                        describe_entry(text, sizeof(text), which, now);
                        linef(fn, userdata, "+ %s", text);
                }
        }
        if (cur->threshold != next->threshold)
                linef(fn, userdata, "threshold %u -> %u", cur->threshold, next->threshold);
        if (memcmp(cur->realm, next->realm, SD_REALM_ID_BYTES) != 0) {
                char a[SD_REALM_ID_SHORT_CHARS + 1], b[SD_REALM_ID_SHORT_CHARS + 1];
                sd_realm_id_short(cur->realm, a);
                sd_realm_id_short(next->realm, b);
                linef(fn, userdata, "realm %s -> %s", a, b);
        }
}
