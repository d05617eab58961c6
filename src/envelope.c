/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "secretd/cleanup.h"
#include "secretd/envelope.h"

/*
 * docs/envelope.md is the reference for everything below: the JSON shape,
 * the canonical byte encodings that are signed and authenticated, and the
 * order of the checks.  Keep the two in step.
 */

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define DATA_KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_BYTES (DATA_KEY_BYTES + crypto_box_SEALBYTES)
#define SIGNATURE_BYTES crypto_sign_BYTES
#define CIPHERTEXT_MAX (SD_VALUE_MAX + TAG_BYTES)

/* Integers must survive a round trip through any JSON reader, including
 * ones that hold numbers as doubles. */
#define JSON_INT_LIMIT ((uint64_t) 1 << 53)

_Static_assert(NONCE_BYTES == 24, "XChaCha20 nonce");
_Static_assert(DATA_KEY_BYTES == 32, "XChaCha20 key");
_Static_assert(WRAPPED_BYTES == 80, "sealed box of a data key");
_Static_assert(SIGNATURE_BYTES == 64, "Ed25519 signature");

/* Domain separation: each signed or authenticated encoding starts with its
 * own string, so a signature over one kind of record can never be replayed
 * as a signature over another. */
static const char ENVELOPE_DOMAIN[] = "secretd/envelope/v1";
static const char ENVELOPE_AD_DOMAIN[] = "secretd/envelope-ad/v1";
static const char RECIPIENT_DOMAIN[] = "secretd/recipient/v1";

static inline void sodium_freep(void *p) {
        sodium_free(*(void **) p);
}
#define _cleanup_sodium_free_ _cleanup_(sodium_freep)

/* ---- canonical encoding ---- */

/* Writes into buf, or with buf NULL only counts, so one function gives both
 * the size and the bytes. */
struct canon {
        unsigned char *buf;
        size_t len;
};

static void canon_raw(struct canon *c, const void *p, size_t n) {
        if (c->buf && n > 0)
                memcpy(c->buf + c->len, p, n);
        c->len += n;
}

static void canon_u32(struct canon *c, uint32_t v) {
        unsigned char b[4] = { (unsigned char) (v >> 24), (unsigned char) (v >> 16),
                               (unsigned char) (v >> 8), (unsigned char) v };
        canon_raw(c, b, sizeof(b));
}

static void canon_u64(struct canon *c, uint64_t v) {
        canon_u32(c, (uint32_t) (v >> 32));
        canon_u32(c, (uint32_t) v);
}

/* Every variable-length field is a u32 length then its bytes.  No field can
 * reach 4 GiB: the parser caps input at SD_ENVELOPE_MAX_BYTES. */
static void canon_bytes(struct canon *c, const void *p, size_t n) {
        canon_u32(c, (uint32_t) n);
        canon_raw(c, p, n);
}

static void canon_str(struct canon *c, const char *s) {
        canon_bytes(c, s, strlen(s));
}

/* After a counting pass: a buffer of the counted size for the writing pass. */
static int canon_allocate(struct canon *c, size_t *len_out) {
        size_t len = c->len;
        *c = (struct canon) { .buf = malloc(len) };
        if (!c->buf)
                return -ENOMEM;
        *len_out = len;
        return 0;
}

/* ---- in-memory envelope ---- */

struct recipient_entry {
        unsigned char key[SD_BOX_PK_BYTES];
        unsigned char wrapped[WRAPPED_BYTES];
};

struct envelope {
        bool tombstone;
        char name[SD_NAME_MAX + 1];
        uint64_t version;
        int64_t created;
        unsigned char signer[SD_SIGN_PK_BYTES];
        unsigned char nonce[NONCE_BYTES];
        unsigned char *ciphertext;   /* malloc()ed; NULL for tombstones */
        size_t ciphertext_len;
        struct recipient_entry *recipients;  /* malloc()ed */
        size_t n_recipients;
        unsigned char signature[SIGNATURE_BYTES];
};

static void envelope_done(struct envelope *e) {
        free(e->ciphertext);
        free(e->recipients);
}
#define _cleanup_envelope_ _cleanup_(envelope_done)

static const char *envelope_kind(const struct envelope *e) {
        return e->tombstone ? "tombstone" : "secret";
}

static void envelope_canon(struct canon *c, const struct envelope *e) {
        canon_str(c, ENVELOPE_DOMAIN);
        canon_u64(c, SD_ENVELOPE_FORMAT);
        canon_str(c, envelope_kind(e));
        canon_str(c, e->name);
        canon_u64(c, e->version);
        canon_u64(c, (uint64_t) e->created);
        canon_bytes(c, e->signer, SD_SIGN_PK_BYTES);
        canon_bytes(c, e->nonce, e->tombstone ? 0 : NONCE_BYTES);
        canon_bytes(c, e->ciphertext, e->ciphertext_len);
        canon_u32(c, (uint32_t) e->n_recipients);
        for (size_t i = 0; i < e->n_recipients; i++) {
                canon_bytes(c, e->recipients[i].key, SD_BOX_PK_BYTES);
                canon_bytes(c, e->recipients[i].wrapped, WRAPPED_BYTES);
        }
}

/* The signed message, malloc()ed.  Everything in it is public. */
static int envelope_signed_message(const struct envelope *e, unsigned char **out, size_t *len_out) {
        struct canon c = { 0 };
        envelope_canon(&c, e);
        unsigned char *buf = malloc(c.len ? c.len : 1);
        if (!buf)
                return -ENOMEM;
        size_t len = c.len;
        c = (struct canon) { .buf = buf };
        envelope_canon(&c, e);
        *out = buf;
        *len_out = len;
        return 0;
}

/* Associated data of the AEAD: binds the ciphertext to its name and version
 * even apart from the signature. */
static int envelope_ad(const char *name, uint64_t version, unsigned char **out, size_t *len_out) {
        struct canon c = { 0 };
        for (int pass = 0; pass < 2; pass++) {
                canon_str(&c, ENVELOPE_AD_DOMAIN);
                canon_u64(&c, SD_ENVELOPE_FORMAT);
                canon_str(&c, name);
                canon_u64(&c, version);
                if (pass == 0 && canon_allocate(&c, len_out) < 0)
                        return -ENOMEM;
        }
        *out = c.buf;
        return 0;
}

/* ---- messages ---- */

/* What a message calls the secret: the name and version the caller asked
 * for, or while verifying whatever could be read from the envelope. */
struct subject {
        char name[80];
        char version[24];
};

static void subject_set(struct subject *s, const char *name, size_t name_len, const uint64_t *version) {
        if (name)
                sd_escape_for_message(name, name_len, s->name, sizeof(s->name));
        if (version)
                (void) snprintf(s->version, sizeof(s->version), "%" PRIu64, *version);
}

static struct subject subject_unknown(void) {
        return (struct subject) { .name = "?", .version = "?" };
}

static int subject_error(sd_error *err, int code, const struct subject *s, const char *fmt, ...) SD_PRINTF(4, 5);
static int subject_error(sd_error *err, int code, const struct subject *s, const char *fmt, ...) {
        char body[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
        return sd_error_set(err, code, "secret '%s' version %s: %s", s->name, s->version, body);
}

/* Prefix an error set by a helper with the subject. */
static int subject_prefix(sd_error *err, int code, const struct subject *s) {
        return sd_error_prefix(err, code, "secret '%s' version %s", s->name, s->version);
}

/* ---- strict JSON reading ---- */

/* jansson reports an out-of-range number without saying which member held
 * it.  The error position is just past the number: walk back over it and the
 * ':' to the member name, so the message can name the field.  Best effort,
 * for the message only. */
static void guess_member_before(const char *json, size_t len, int position, char *out, size_t out_size) {
        out[0] = '\0';
        if (position <= 0 || (size_t) position > len)
                return;
        size_t i = (size_t) position;
        while (i > 0 && strchr("0123456789+-.eE", json[i - 1]))
                i--;
        while (i > 0 && strchr(" \t\r\n", json[i - 1]))
                i--;
        if (i == 0 || json[i - 1] != ':')
                return;
        i--;
        while (i > 0 && strchr(" \t\r\n", json[i - 1]))
                i--;
        if (i == 0 || json[i - 1] != '"')
                return;
        size_t end = --i;
        while (i > 0 && json[i - 1] != '"' && end - i < 32)
                i--;
        if (i == 0 || json[i - 1] != '"')
                return;
        sd_escape_for_message(json + i, end - i, out, out_size);
}

static int load_json(const char *json, size_t len, const char *what, json_t **out, sd_error *err) {
        if (len > SD_ENVELOPE_MAX_BYTES)
                return sd_error_set(err, EBADMSG, "malformed %s: %zu bytes is over the limit of %zu bytes",
                                    what, len, SD_ENVELOPE_MAX_BYTES);
        if (!json)
                return sd_error_set(err, EBADMSG, "malformed %s: no input", what);
        json_error_t jerr;
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char text[128];
                sd_escape_json_error(&jerr, text, sizeof(text));
                if (json_error_code(&jerr) == json_error_numeric_overflow) {
                        char member[40];
                        guess_member_before(json, len, jerr.position, member, sizeof(member));
                        if (member[0])
                                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' is out of range (%s)",
                                                    what, member, text);
                }
                return sd_error_set(err, EBADMSG, "malformed %s: invalid JSON at line %d column %d: %s",
                                    what, jerr.line, jerr.column, text);
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return sd_error_set(err, EBADMSG, "malformed %s: not a JSON object", what);
        }
        *out = root;
        return 0;
}

/* Exactly the members in `allowed`, each present. */
static int check_members(json_t *obj, const char *what, const char *const *allowed, size_t n_allowed,
                         const char *field_prefix, sd_error *err) {
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value) {
                bool known = false;
                for (size_t i = 0; i < n_allowed && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (!known) {
                        char shown[40];
                        sd_escape_for_message(key, strlen(key), shown, sizeof(shown));
                        return sd_error_set(err, EBADMSG, "malformed %s: unknown field '%s%s'", what,
                                            field_prefix, shown);
                }
        }
        for (size_t i = 0; i < n_allowed; i++)
                if (!json_object_get(obj, allowed[i]))
                        return sd_error_set(err, EBADMSG, "malformed %s: missing field '%s%s'", what,
                                            field_prefix, allowed[i]);
        return 0;
}

static int get_uint(json_t *obj, const char *what, const char *field, uint64_t min, uint64_t *out,
                    sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_integer(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be an integer", what, field);
        json_int_t i = json_integer_value(v);
        if (i < 0 || (uint64_t) i < min || (uint64_t) i >= JSON_INT_LIMIT)
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' is %lld; it must be from %" PRIu64
                                    " to 2^53-1", what, field, (long long) i, min);
        *out = (uint64_t) i;
        return 0;
}

static int get_string(json_t *obj, const char *what, const char *field, const char **out, size_t *len_out,
                      sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be a string", what, field);
        *out = json_string_value(v);
        *len_out = json_string_length(v);
        return 0;
}

/* A base64 field of exactly n bytes. */
static int get_b64_exact(json_t *obj, const char *what, const char *field, const char *field_shown,
                         void *out, size_t n, sd_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!json_is_string(v))
                return sd_error_set(err, EBADMSG, "malformed %s: field '%s' must be a base64 string", what,
                                    field_shown);
        if (sd_b64_decode_exact(json_string_value(v), json_string_length(v), out, n, SD_B64_STD) < 0)
                return sd_error_set(err, EBADMSG,
                                    "malformed %s: field '%s' must be %zu bytes in standard base64 with padding",
                                    what, field_shown, n);
        return 0;
}

static int get_name(json_t *obj, const char *what, const char *kind_of_name, char out[SD_NAME_MAX + 1],
                    sd_error *err) {
        const char *name;
        size_t name_len;
        int r = get_string(obj, what, "name", &name, &name_len, err);
        if (r < 0)
                return r;
        sd_error name_err = { 0 };
        if (sd_name_validate(kind_of_name, name, name_len, &name_err) < 0)
                return sd_error_set(err, EBADMSG, "malformed %s: field 'name': %s", what, name_err.message);
        memcpy(out, name, name_len);
        out[name_len] = '\0';
        return 0;
}

static int get_format(json_t *obj, const char *what, sd_error *err) {
        uint64_t format;
        int r = get_uint(obj, what, "format", 0, &format, err);
        if (r < 0)
                return r;
        if (format != SD_ENVELOPE_FORMAT)
                return sd_error_set(err, EBADMSG, "malformed %s: field 'format' is %" PRIu64
                                    "; only format %d is supported", what, format, SD_ENVELOPE_FORMAT);
        return 0;
}

static int get_created(json_t *obj, const char *what, int64_t *out, sd_error *err) {
        uint64_t created;
        int r = get_uint(obj, what, "created", 0, &created, err);
        if (r < 0)
                return r;
        *out = (int64_t) created;
        return 0;
}

static int compare_keys(const void *a, const void *b) {
        return memcmp(a, b, SD_BOX_PK_BYTES);
}

static int parse_recipients(json_t *root, struct envelope *e, sd_error *err) {
        static const char what[] = "envelope";
        json_t *arr = json_object_get(root, "recipients");
        if (!json_is_array(arr))
                return sd_error_set(err, EBADMSG, "malformed envelope: field 'recipients' must be an array");
        size_t n = json_array_size(arr);
        if (n == 0)
                return sd_error_set(err, EBADMSG, "malformed envelope: field 'recipients' is empty");
        if (n > SD_ENVELOPE_MAX_RECIPIENTS)
                return sd_error_set(err, EBADMSG, "malformed envelope: field 'recipients' has %zu entries; the limit is %d",
                                    n, SD_ENVELOPE_MAX_RECIPIENTS);
        e->recipients = calloc(n, sizeof(*e->recipients));
        if (!e->recipients)
                return sd_error_set(err, ENOMEM, "out of memory");
        e->n_recipients = n;

        static const char *const members[] = { "key", "wrapped" };
        for (size_t i = 0; i < n; i++) {
                json_t *entry = json_array_get(arr, i);
                char field[32];
                (void) snprintf(field, sizeof(field), "recipients[%zu]", i);
                if (!json_is_object(entry))
                        return sd_error_set(err, EBADMSG, "malformed envelope: field '%s' must be an object", field);
                char prefix[48];
                (void) snprintf(prefix, sizeof(prefix), "%s.", field);
                int r = check_members(entry, what, members, SD_ARRAY_SIZE(members), prefix, err);
                if (r < 0)
                        return r;
                char shown[64];
                (void) snprintf(shown, sizeof(shown), "%s.key", field);
                r = get_b64_exact(entry, what, "key", shown, e->recipients[i].key, SD_BOX_PK_BYTES, err);
                if (r < 0)
                        return r;
                (void) snprintf(shown, sizeof(shown), "%s.wrapped", field);
                r = get_b64_exact(entry, what, "wrapped", shown, e->recipients[i].wrapped, WRAPPED_BYTES, err);
                if (r < 0)
                        return r;
        }

        /* seal never writes a key twice; a duplicate means someone else
         * built this list. */
        _cleanup_free_ unsigned char(*keys)[SD_BOX_PK_BYTES] = calloc(n, SD_BOX_PK_BYTES);
        if (!keys)
                return sd_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                memcpy(keys[i], e->recipients[i].key, SD_BOX_PK_BYTES);
        qsort(keys, n, SD_BOX_PK_BYTES, compare_keys);
        for (size_t i = 1; i < n; i++)
                if (memcmp(keys[i - 1], keys[i], SD_BOX_PK_BYTES) == 0) {
                        char id[SD_KEY_ID_CHARS + 1];
                        sd_key_id(keys[i], id);
                        return sd_error_set(err, EBADMSG, "malformed envelope: field 'recipients' lists key %s twice", id);
                }
        return 0;
}

/* Step 1: JSON shape, field set, types and sizes.  Fills *subject with the
 * envelope's own name and version as soon as they are known, when
 * update_subject (verify has nothing better to name the secret by). */
static int envelope_parse(const char *json, size_t len, struct envelope *e, struct subject *subject,
                          bool update_subject, sd_error *err) {
        static const char what[] = "envelope";
        _cleanup_json_ json_t *root = NULL;
        int r = load_json(json, len, what, &root, err);
        if (r < 0)
                return r;

        if (update_subject) {
                json_t *n = json_object_get(root, "name"), *v = json_object_get(root, "version");
                if (json_is_string(n))
                        subject_set(subject, json_string_value(n), json_string_length(n), NULL);
                if (json_is_integer(v) && json_integer_value(v) >= 0) {
                        uint64_t version = (uint64_t) json_integer_value(v);
                        subject_set(subject, NULL, 0, &version);
                }
        }

        const char *kind;
        size_t kind_len;
        r = get_string(root, what, "kind", &kind, &kind_len, err);
        if (r < 0)
                return r;
        if (strcmp(kind, "tombstone") == 0)
                e->tombstone = true;
        else if (strcmp(kind, "secret") != 0) {
                char shown[40];
                sd_escape_for_message(kind, kind_len, shown, sizeof(shown));
                return sd_error_set(err, EBADMSG,
                                    "malformed envelope: field 'kind' is '%s'; expected 'secret' or 'tombstone'", shown);
        }

        static const char *const secret_members[] = {
                "format", "kind", "name", "version", "created", "signer",
                "nonce", "ciphertext", "recipients", "signature",
        };
        static const char *const tombstone_members[] = {
                "format", "kind", "name", "version", "created", "signer", "signature",
        };
        if (e->tombstone) {
                /* Say plainly why a sealed-looking tombstone is refused. */
                static const char *const sealed_only[] = { "nonce", "ciphertext", "recipients" };
                for (size_t i = 0; i < SD_ARRAY_SIZE(sealed_only); i++)
                        if (json_object_get(root, sealed_only[i]))
                                return sd_error_set(err, EBADMSG, "malformed envelope: a tombstone has no field '%s'",
                                                    sealed_only[i]);
                r = check_members(root, what, tombstone_members, SD_ARRAY_SIZE(tombstone_members), "", err);
        } else
                r = check_members(root, what, secret_members, SD_ARRAY_SIZE(secret_members), "", err);
        if (r < 0)
                return r;

        r = get_format(root, what, err);
        if (r < 0)
                return r;
        r = get_name(root, what, "secret name", e->name, err);
        if (r < 0)
                return r;
        r = get_uint(root, what, "version", 1, &e->version, err);
        if (r < 0)
                return r;
        r = get_created(root, what, &e->created, err);
        if (r < 0)
                return r;
        r = get_b64_exact(root, what, "signer", "signer", e->signer, SD_SIGN_PK_BYTES, err);
        if (r < 0)
                return r;

        if (!e->tombstone) {
                r = get_b64_exact(root, what, "nonce", "nonce", e->nonce, NONCE_BYTES, err);
                if (r < 0)
                        return r;

                const char *ct;
                size_t ct_len;
                r = get_string(root, what, "ciphertext", &ct, &ct_len, err);
                if (r < 0)
                        return r;
                /* Decode into a buffer sized for the longest legal value;
                 * anything longer fails the decoder's bound. */
                size_t cap = ct_len / 4 * 3;
                if (cap > CIPHERTEXT_MAX)
                        cap = CIPHERTEXT_MAX;
                e->ciphertext = malloc(cap ? cap : 1);
                if (!e->ciphertext)
                        return sd_error_set(err, ENOMEM, "out of memory");
                long n = sd_b64_decode(ct, ct_len, e->ciphertext, cap, SD_B64_STD);
                if (n < 0)
                        return sd_error_set(err, EBADMSG,
                                            "malformed envelope: field 'ciphertext' must be standard base64 with padding of at most %zu bytes",
                                            (size_t) CIPHERTEXT_MAX);
                if ((size_t) n <= TAG_BYTES)
                        return sd_error_set(err, EBADMSG,
                                            "malformed envelope: field 'ciphertext' is %ld bytes; it must be longer than its %d-byte tag",
                                            n, TAG_BYTES);
                e->ciphertext_len = (size_t) n;

                r = parse_recipients(root, e, err);
                if (r < 0)
                        return r;
        }

        return get_b64_exact(root, what, "signature", "signature", e->signature, SIGNATURE_BYTES, err);
}

/* Step 2: trusted signer, then the signature over everything else. */
static int envelope_authenticate(const struct envelope *e, const struct sd_trust *trust, sd_error *err) {
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(e->signer, id);
        if (!sd_trust_find(trust, e->signer, NULL))
                return sd_error_set(err, EKEYREJECTED, "signed by unknown writer %s", id);

        _cleanup_free_ unsigned char *msg = NULL;
        size_t msg_len;
        if (envelope_signed_message(e, &msg, &msg_len) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (crypto_sign_verify_detached(e->signature, msg, msg_len, e->signer) != 0)
                return sd_error_set(err, EBADMSG,
                                    "signature by writer %s does not verify: the envelope was altered or corrupted", id);
        return 0;
}

static void envelope_info_fill(const struct envelope *e, struct sd_envelope_info *info) {
        *info = (struct sd_envelope_info) {
                .version = e->version,
                .tombstone = e->tombstone,
                .created = e->created,
                .n_recipients = e->n_recipients,
                .value_len = e->tombstone ? 0 : e->ciphertext_len - TAG_BYTES,
        };
        memcpy(info->name, e->name, sizeof(info->name));
        memcpy(info->signer, e->signer, SD_SIGN_PK_BYTES);
        sd_key_id(e->signer, info->signer_id);
}

static int envelope_to_json(const struct envelope *e, char **json_out, size_t *len_out) {
        _cleanup_free_ char *signer = sd_b64_encode(e->signer, SD_SIGN_PK_BYTES, SD_B64_STD);
        _cleanup_free_ char *signature = sd_b64_encode(e->signature, SIGNATURE_BYTES, SD_B64_STD);
        if (!signer || !signature)
                return -ENOMEM;

        _cleanup_json_ json_t *root = NULL;
        if (e->tombstone) {
                root = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:s}",
                                 "format", SD_ENVELOPE_FORMAT, "kind", envelope_kind(e), "name", e->name,
                                 "version", (json_int_t) e->version, "created", (json_int_t) e->created,
                                 "signer", signer, "signature", signature);
        } else {
                _cleanup_free_ char *nonce = sd_b64_encode(e->nonce, NONCE_BYTES, SD_B64_STD);
                _cleanup_free_ char *ciphertext = sd_b64_encode(e->ciphertext, e->ciphertext_len, SD_B64_STD);
                _cleanup_json_ json_t *recipients = json_array();
                if (!nonce || !ciphertext || !recipients)
                        return -ENOMEM;
                for (size_t i = 0; i < e->n_recipients; i++) {
                        _cleanup_free_ char *key = sd_b64_encode(e->recipients[i].key, SD_BOX_PK_BYTES, SD_B64_STD);
                        _cleanup_free_ char *wrapped = sd_b64_encode(e->recipients[i].wrapped, WRAPPED_BYTES, SD_B64_STD);
                        if (!key || !wrapped)
                                return -ENOMEM;
                        if (json_array_append_new(recipients, json_pack("{s:s, s:s}", "key", key, "wrapped", wrapped)) < 0)
                                return -ENOMEM;
                }
                root = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:O, s:s}",
                                 "format", SD_ENVELOPE_FORMAT, "kind", envelope_kind(e), "name", e->name,
                                 "version", (json_int_t) e->version, "created", (json_int_t) e->created,
                                 "signer", signer, "nonce", nonce, "ciphertext", ciphertext,
                                 "recipients", recipients, "signature", signature);
        }
        if (!root)
                return -ENOMEM;
        char *text = json_dumps(root, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        *json_out = text;
        if (len_out)
                *len_out = strlen(text);
        return 0;
}

static uint64_t current_time(void) {
        time_t now = time(NULL);
        return now < 0 ? 0 : (uint64_t) now;
}

/* ---- envelopes ---- */

/* The slot seal and open are asked for: a valid secret name and a version
 * JSON can carry exactly.  Sets the subject either way. */
static int check_slot(const char *name, uint64_t version, struct subject *subject, sd_error *err) {
        if (!name)
                return sd_error_set(err, EINVAL, "no secret name given");
        int r = sd_name_validate("secret name", name, strlen(name), err);
        if (r < 0)
                return r;
        subject_set(subject, name, strlen(name), &version);
        if (version == 0 || version >= JSON_INT_LIMIT)
                return subject_error(err, EINVAL, subject, "version must be from 1 to 2^53-1");
        return 0;
}

int sd_envelope_seal(const char *name, uint64_t version, const struct sd_secret *value,
                     const struct sd_writer_key *writer,
                     const unsigned char (*recipients)[SD_BOX_PK_BYTES], size_t n_recipients,
                     char **json_out, size_t *len_out, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct subject subject = subject_unknown();
        int r = check_slot(name, version, &subject, err);
        if (r < 0)
                return r;
        if (value && value->len == 0)
                return subject_error(err, EINVAL, &subject, "the value is empty");
        if (value && value->len > SD_VALUE_MAX)
                return subject_error(err, EFBIG, &subject, "the value is %zu bytes; the limit is %zu bytes",
                                     value->len, SD_VALUE_MAX);
        if (n_recipients > 0 && !recipients)
                return subject_error(err, EINVAL, &subject, "no recipient keys given");
        if (memcmp(writer->sign_sk + crypto_sign_SEEDBYTES, writer->pub.sign_pk, SD_SIGN_PK_BYTES) != 0)
                return subject_error(err, EINVAL, &subject, "the writer's signing key does not match its public key");

        _cleanup_envelope_ struct envelope e = {
                .tombstone = value == NULL,
                .version = version,
                .created = (int64_t) current_time(),
        };
        memcpy(e.name, name, strlen(name) + 1);
        memcpy(e.signer, writer->pub.sign_pk, SD_SIGN_PK_BYTES);

        if (!e.tombstone) {
                /* The writer first, then each new key in the order given. */
                e.recipients = calloc(n_recipients + 1, sizeof(*e.recipients));
                if (!e.recipients)
                        return subject_error(err, ENOMEM, &subject, "out of memory");
                memcpy(e.recipients[0].key, writer->pub.box_pk, SD_BOX_PK_BYTES);
                e.n_recipients = 1;
                for (size_t i = 0; i < n_recipients; i++) {
                        bool seen = false;
                        for (size_t j = 0; j < e.n_recipients && !seen; j++)
                                seen = memcmp(e.recipients[j].key, recipients[i], SD_BOX_PK_BYTES) == 0;
                        if (!seen)
                                memcpy(e.recipients[e.n_recipients++].key, recipients[i], SD_BOX_PK_BYTES);
                }
                if (e.n_recipients > SD_ENVELOPE_MAX_RECIPIENTS)
                        return subject_error(err, EINVAL, &subject, "%zu recipients; the limit is %d",
                                             e.n_recipients, SD_ENVELOPE_MAX_RECIPIENTS);

                _cleanup_sodium_free_ unsigned char *data_key = sodium_malloc(DATA_KEY_BYTES);
                if (!data_key)
                        return subject_error(err, ENOMEM, &subject, "cannot allocate locked memory");
                crypto_aead_xchacha20poly1305_ietf_keygen(data_key);
                randombytes_buf(e.nonce, NONCE_BYTES);

                _cleanup_free_ unsigned char *ad = NULL;
                size_t ad_len;
                if (envelope_ad(name, version, &ad, &ad_len) < 0)
                        return subject_error(err, ENOMEM, &subject, "out of memory");
                e.ciphertext_len = value->len + TAG_BYTES;
                e.ciphertext = malloc(e.ciphertext_len);
                if (!e.ciphertext)
                        return subject_error(err, ENOMEM, &subject, "out of memory");
                unsigned long long ct_len;
                (void) crypto_aead_xchacha20poly1305_ietf_encrypt(e.ciphertext, &ct_len, value->data, value->len,
                                                                  ad, ad_len, NULL, e.nonce, data_key);

                for (size_t i = 0; i < e.n_recipients; i++)
                        if (crypto_box_seal(e.recipients[i].wrapped, data_key, DATA_KEY_BYTES, e.recipients[i].key) != 0) {
                                char id[SD_KEY_ID_CHARS + 1];
                                sd_key_id(e.recipients[i].key, id);
                                return subject_error(err, EINVAL, &subject,
                                                     "recipient key %s is not a usable X25519 public key", id);
                        }
        }

        _cleanup_free_ unsigned char *msg = NULL;
        size_t msg_len;
        if (envelope_signed_message(&e, &msg, &msg_len) < 0)
                return subject_error(err, ENOMEM, &subject, "out of memory");
        (void) crypto_sign_detached(e.signature, NULL, msg, msg_len, writer->sign_sk);

        if (envelope_to_json(&e, json_out, len_out) < 0)
                return subject_error(err, ENOMEM, &subject, "out of memory");
        return 0;
}

int sd_envelope_verify(const char *json, size_t len, const struct sd_trust *trust,
                       struct sd_envelope_info *info, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct subject subject = subject_unknown();
        _cleanup_envelope_ struct envelope e = { 0 };
        int r = envelope_parse(json, len, &e, &subject, true, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);
        r = envelope_authenticate(&e, trust, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);
        if (info)
                envelope_info_fill(&e, info);
        return 0;
}

int sd_envelope_open(const char *json, size_t len, const struct sd_trust *trust,
                     const char *name, uint64_t version,
                     const unsigned char box_pk[SD_BOX_PK_BYTES],
                     const unsigned char box_sk[SD_BOX_SK_BYTES],
                     struct sd_secret **value_out, struct sd_envelope_info *info, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct subject subject = subject_unknown();
        int r = check_slot(name, version, &subject, err);
        if (r < 0)
                return r;

        /* 1. format */
        _cleanup_envelope_ struct envelope e = { 0 };
        r = envelope_parse(json, len, &e, &subject, false, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);

        /* 2. trusted signer, signature */
        r = envelope_authenticate(&e, trust, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);

        /* 3. the store answered with what was asked for: a signed envelope
         * of another secret or an older version must not pass as this one */
        if (strcmp(e.name, name) != 0) {
                char shown[80];
                sd_escape_for_message(e.name, strlen(e.name), shown, sizeof(shown));
                return subject_error(err, EBADMSG, &subject, "envelope is for secret '%s', not '%s'", shown,
                                     subject.name);
        }
        if (e.version != version)
                return subject_error(err, EBADMSG, &subject, "envelope is version %" PRIu64 ", asked for %" PRIu64,
                                     e.version, version);

        if (e.tombstone) {
                if (info)
                        envelope_info_fill(&e, info);
                *value_out = NULL;
                return 0;
        }

        /* 4. recipient, unwrap, decrypt */
        const struct recipient_entry *mine = NULL;
        for (size_t i = 0; i < e.n_recipients && !mine; i++)
                if (memcmp(e.recipients[i].key, box_pk, SD_BOX_PK_BYTES) == 0)
                        mine = &e.recipients[i];
        char id[SD_KEY_ID_CHARS + 1];
        sd_key_id(box_pk, id);
        if (!mine)
                return subject_error(err, ENOKEY, &subject, "not encrypted to this key %s", id);

        _cleanup_sodium_free_ unsigned char *data_key = sodium_malloc(DATA_KEY_BYTES);
        if (!data_key)
                return subject_error(err, ENOMEM, &subject, "cannot allocate locked memory");
        if (crypto_box_seal_open(data_key, mine->wrapped, WRAPPED_BYTES, box_pk, box_sk) != 0)
                return subject_error(err, EBADMSG, &subject,
                                     "cannot unwrap the data key with key %s: wrong private key or corrupted entry", id);

        _cleanup_free_ unsigned char *ad = NULL;
        size_t ad_len;
        if (envelope_ad(name, version, &ad, &ad_len) < 0)
                return subject_error(err, ENOMEM, &subject, "out of memory");
        _cleanup_secret_ struct sd_secret *value = NULL;
        if (sd_secret_new(e.ciphertext_len - TAG_BYTES, &value) < 0)
                return subject_error(err, ENOMEM, &subject, "cannot allocate locked memory");
        unsigned long long value_len;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(value->data, &value_len, NULL, e.ciphertext,
                                                       e.ciphertext_len, ad, ad_len, e.nonce, data_key) != 0)
                return subject_error(err, EBADMSG, &subject,
                                     "ciphertext does not authenticate under its data key, name and version");

        if (info)
                envelope_info_fill(&e, info);
        *value_out = steal_pointer(&value);
        return 0;
}

/* ---- recipient entries ---- */

struct recipient_record {
        char name[SD_NAME_MAX + 1];
        unsigned char key[SD_BOX_PK_BYTES];
        int64_t created;
        unsigned char signer[SD_SIGN_PK_BYTES];
        unsigned char signature[SIGNATURE_BYTES];
};

static int recipient_signed_message(const struct recipient_record *rec, unsigned char **out, size_t *len_out) {
        struct canon c = { 0 };
        for (int pass = 0; pass < 2; pass++) {
                canon_str(&c, RECIPIENT_DOMAIN);
                canon_u64(&c, SD_ENVELOPE_FORMAT);
                canon_str(&c, "recipient");
                canon_str(&c, rec->name);
                canon_bytes(&c, rec->key, SD_BOX_PK_BYTES);
                canon_u64(&c, (uint64_t) rec->created);
                canon_bytes(&c, rec->signer, SD_SIGN_PK_BYTES);
                if (pass == 0 && canon_allocate(&c, len_out) < 0)
                        return -ENOMEM;
        }
        *out = c.buf;
        return 0;
}

/* A low-order X25519 point would make every later seal fail (or worse, be
 * readable by anyone); crypto_scalarmult refuses to produce the all-zero
 * result such points give. */
static bool box_pk_usable(const unsigned char pk[SD_BOX_PK_BYTES]) {
        static const unsigned char scalar[crypto_scalarmult_SCALARBYTES] = { 9 };
        unsigned char shared[crypto_scalarmult_BYTES];
        bool ok = crypto_scalarmult(shared, scalar, pk) == 0;
        sodium_memzero(shared, sizeof(shared));
        return ok;
}

int sd_recipient_seal(const char *name, const unsigned char box_pk[SD_BOX_PK_BYTES],
                      const struct sd_writer_key *writer, char **json_out, size_t *len_out,
                      sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        if (!name)
                return sd_error_set(err, EINVAL, "no recipient name given");
        int r = sd_name_validate("recipient name", name, strlen(name), err);
        if (r < 0)
                return r;
        if (!box_pk_usable(box_pk))
                return sd_error_set(err, EINVAL, "recipient '%s': the key is not a usable X25519 public key", name);
        if (memcmp(writer->sign_sk + crypto_sign_SEEDBYTES, writer->pub.sign_pk, SD_SIGN_PK_BYTES) != 0)
                return sd_error_set(err, EINVAL, "recipient '%s': the writer's signing key does not match its public key",
                                    name);

        struct recipient_record rec = { .created = (int64_t) current_time() };
        memcpy(rec.name, name, strlen(name) + 1);
        memcpy(rec.key, box_pk, SD_BOX_PK_BYTES);
        memcpy(rec.signer, writer->pub.sign_pk, SD_SIGN_PK_BYTES);

        _cleanup_free_ unsigned char *msg = NULL;
        size_t msg_len;
        if (recipient_signed_message(&rec, &msg, &msg_len) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        (void) crypto_sign_detached(rec.signature, NULL, msg, msg_len, writer->sign_sk);

        _cleanup_free_ char *key = sd_b64_encode(rec.key, SD_BOX_PK_BYTES, SD_B64_STD);
        _cleanup_free_ char *signer = sd_b64_encode(rec.signer, SD_SIGN_PK_BYTES, SD_B64_STD);
        _cleanup_free_ char *signature = sd_b64_encode(rec.signature, SIGNATURE_BYTES, SD_B64_STD);
        if (!key || !signer || !signature)
                return sd_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *root = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s}",
                                                "format", SD_ENVELOPE_FORMAT, "kind", "recipient", "name", rec.name,
                                                "key", key, "created", (json_int_t) rec.created, "signer", signer,
                                                "signature", signature);
        if (!root)
                return sd_error_set(err, ENOMEM, "out of memory");
        char *text = json_dumps(root, JSON_COMPACT);
        if (!text)
                return sd_error_set(err, ENOMEM, "out of memory");
        *json_out = text;
        if (len_out)
                *len_out = strlen(text);
        return 0;
}

int sd_recipient_verify(const char *json, size_t len, const struct sd_trust *trust,
                        struct sd_recipient_info *info, sd_error *err) {
        static const char what[] = "recipient entry";
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");

        char shown_name[80] = "?";
        _cleanup_json_ json_t *root = NULL;
        int r = load_json(json, len, what, &root, err);
        if (r < 0)
                return sd_error_prefix(err, r, "recipient '%s'", shown_name);
        json_t *n = json_object_get(root, "name");
        if (json_is_string(n))
                sd_escape_for_message(json_string_value(n), json_string_length(n), shown_name, sizeof(shown_name));

        static const char *const members[] = { "format", "kind", "name", "key", "created", "signer", "signature" };
        struct recipient_record rec = { 0 };
        const char *kind;
        size_t kind_len;
        r = get_string(root, what, "kind", &kind, &kind_len, err);
        if (r >= 0 && strcmp(kind, "recipient") != 0) {
                char shown[40];
                sd_escape_for_message(kind, kind_len, shown, sizeof(shown));
                r = sd_error_set(err, EBADMSG, "malformed %s: field 'kind' is '%s'; expected 'recipient'", what, shown);
        }
        if (r >= 0)
                r = check_members(root, what, members, SD_ARRAY_SIZE(members), "", err);
        if (r >= 0)
                r = get_format(root, what, err);
        if (r >= 0)
                r = get_name(root, what, "recipient name", rec.name, err);
        if (r >= 0)
                r = get_b64_exact(root, what, "key", "key", rec.key, SD_BOX_PK_BYTES, err);
        if (r >= 0)
                r = get_created(root, what, &rec.created, err);
        if (r >= 0)
                r = get_b64_exact(root, what, "signer", "signer", rec.signer, SD_SIGN_PK_BYTES, err);
        if (r >= 0)
                r = get_b64_exact(root, what, "signature", "signature", rec.signature, SIGNATURE_BYTES, err);
        if (r < 0)
                return sd_error_prefix(err, r, "recipient '%s'", shown_name);

        struct sd_recipient_info parsed = { .created = rec.created };
        memcpy(parsed.name, rec.name, sizeof(parsed.name));
        memcpy(parsed.box_pk, rec.key, SD_BOX_PK_BYTES);
        memcpy(parsed.signer, rec.signer, SD_SIGN_PK_BYTES);
        sd_key_id(rec.signer, parsed.signer_id);

        if (!sd_trust_find(trust, rec.signer, NULL)) {
                /* Filled anyway so the caller can say whose entry it skipped. */
                if (info)
                        *info = parsed;
                return sd_error_set(err, EKEYREJECTED, "recipient '%s': signed by unknown writer %s", shown_name,
                                    parsed.signer_id);
        }

        _cleanup_free_ unsigned char *msg = NULL;
        size_t msg_len;
        if (recipient_signed_message(&rec, &msg, &msg_len) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (crypto_sign_verify_detached(rec.signature, msg, msg_len, rec.signer) != 0)
                return sd_error_set(err, EBADMSG,
                                    "recipient '%s': signature by writer %s does not verify: the entry was altered or corrupted",
                                    shown_name, parsed.signer_id);
        if (info)
                *info = parsed;
        return 0;
}
