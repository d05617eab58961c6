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
#include "canon.h"
#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "strict-json.h"

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

_Static_assert(NONCE_BYTES == 24, "XChaCha20 nonce");
_Static_assert(DATA_KEY_BYTES == 32, "XChaCha20 key");
_Static_assert(WRAPPED_BYTES == 80, "sealed box of a data key");
_Static_assert(SIGNATURE_BYTES == 64, "Ed25519 signature");

/* Domain separation: each signed or authenticated encoding starts with its
 * own string, so a signature over one kind of record can never be replayed
 * as a signature over another.  The format number follows it, so the two
 * envelope layouts can never be confused either. */
static const char ENVELOPE_DOMAIN[] = "secretd/envelope/v1";
static const char ENVELOPE_AD_DOMAIN[] = "secretd/envelope-ad/v1";
static const char RECIPIENT_DOMAIN[] = "secretd/recipient/v1";

static inline void sodium_freep(void *p) {
        sodium_free(*(void **) p);
}
#define _cleanup_sodium_free_ _cleanup_(sodium_freep)

/* ---- in-memory envelope ---- */

struct recipient_entry {
        unsigned char key[SD_BOX_PK_BYTES];
        unsigned char wrapped[WRAPPED_BYTES];
};

struct envelope {
        unsigned format;
        bool tombstone;
        unsigned char realm[SD_REALM_ID_BYTES];   /* format 2 */
        uint64_t policy;                          /* format 2 */
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

/* Format 2 binds the realm and the policy version right after the format. */
static void canon_binding(struct sd_canon *c, unsigned format, const unsigned char realm[SD_REALM_ID_BYTES],
                          uint64_t policy) {
        sd_canon_u64(c, format);
        if (format >= 2) {
                sd_canon_bytes(c, realm, SD_REALM_ID_BYTES);
                sd_canon_u64(c, policy);
        }
}

static void envelope_canon(struct sd_canon *c, const struct envelope *e) {
        sd_canon_str(c, ENVELOPE_DOMAIN);
        canon_binding(c, e->format, e->realm, e->policy);
        sd_canon_str(c, envelope_kind(e));
        sd_canon_str(c, e->name);
        sd_canon_u64(c, e->version);
        sd_canon_u64(c, (uint64_t) e->created);
        sd_canon_bytes(c, e->signer, SD_SIGN_PK_BYTES);
        sd_canon_bytes(c, e->nonce, e->tombstone ? 0 : NONCE_BYTES);
        sd_canon_bytes(c, e->ciphertext, e->ciphertext_len);
        sd_canon_u32(c, (uint32_t) e->n_recipients);
        for (size_t i = 0; i < e->n_recipients; i++) {
                sd_canon_bytes(c, e->recipients[i].key, SD_BOX_PK_BYTES);
                sd_canon_bytes(c, e->recipients[i].wrapped, WRAPPED_BYTES);
        }
}

/* The signed message, malloc()ed.  Everything in it is public. */
static int envelope_signed_message(const struct envelope *e, unsigned char **out, size_t *len_out) {
        struct sd_canon c = { 0 };
        envelope_canon(&c, e);
        if (sd_canon_allocate(&c, len_out) < 0)
                return -ENOMEM;
        envelope_canon(&c, e);
        *out = c.buf;
        return 0;
}

/* Associated data of the AEAD: binds the ciphertext to its realm, policy
 * version, name and version even apart from the signature. */
static int envelope_ad(const struct envelope *e, unsigned char **out, size_t *len_out) {
        struct sd_canon c = { 0 };
        for (int pass = 0; pass < 2; pass++) {
                sd_canon_str(&c, ENVELOPE_AD_DOMAIN);
                canon_binding(&c, e->format, e->realm, e->policy);
                sd_canon_str(&c, e->name);
                sd_canon_u64(&c, e->version);
                if (pass == 0 && sd_canon_allocate(&c, len_out) < 0)
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

static int get_format(json_t *obj, const char *what, unsigned *out, sd_error *err) {
        uint64_t format;
        int r = sd_json_get_uint(obj, what, "format", 0, &format, err);
        if (r < 0)
                return r;
        if (format != SD_ENVELOPE_FORMAT && format != SD_ENVELOPE_FORMAT_LEGACY)
                return sd_error_set(err, EBADMSG,
                                    "malformed %s: field 'format' is %" PRIu64 "; only formats %d and %d are supported",
                                    what, format, SD_ENVELOPE_FORMAT_LEGACY, SD_ENVELOPE_FORMAT);
        *out = (unsigned) format;
        return 0;
}

static int get_created(json_t *obj, const char *what, int64_t *out, sd_error *err) {
        uint64_t created;
        int r = sd_json_get_uint(obj, what, "created", 0, &created, err);
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
                int r = sd_json_check_members(entry, what, members, SD_ARRAY_SIZE(members), prefix, err);
                if (r < 0)
                        return r;
                char shown[64];
                (void) snprintf(shown, sizeof(shown), "%s.key", field);
                r = sd_json_get_b64_exact(entry, what, "key", shown, e->recipients[i].key, SD_BOX_PK_BYTES, err);
                if (r < 0)
                        return r;
                (void) snprintf(shown, sizeof(shown), "%s.wrapped", field);
                r = sd_json_get_b64_exact(entry, what, "wrapped", shown, e->recipients[i].wrapped, WRAPPED_BYTES, err);
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
        int r = sd_json_load_object(json, len, SD_ENVELOPE_MAX_BYTES, what, &root, err);
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
        r = sd_json_get_string(root, what, "kind", &kind, &kind_len, err);
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
        r = get_format(root, what, &e->format, err);
        if (r < 0)
                return r;

        /* Members per format and kind: format 2 adds realm and policy. */
        static const char *const members[] = {
                "format", "kind", "name", "version", "created", "signer", "signature",
                "realm", "policy",
                "nonce", "ciphertext", "recipients",
        };
        const char *chosen[SD_ARRAY_SIZE(members)];
        size_t n_chosen = 0;
        for (size_t i = 0; i < 7; i++)
                chosen[n_chosen++] = members[i];
        if (e->format >= 2) {
                chosen[n_chosen++] = "realm";
                chosen[n_chosen++] = "policy";
        }
        if (e->tombstone) {
                /* Say plainly why a sealed-looking tombstone is refused. */
                for (size_t i = 9; i < SD_ARRAY_SIZE(members); i++)
                        if (json_object_get(root, members[i]))
                                return sd_error_set(err, EBADMSG, "malformed envelope: a tombstone has no field '%s'",
                                                    members[i]);
        } else {
                for (size_t i = 9; i < SD_ARRAY_SIZE(members); i++)
                        chosen[n_chosen++] = members[i];
        }
        r = sd_json_check_members(root, what, chosen, n_chosen, "", err);
        if (r < 0)
                return r;

        if (e->format >= 2) {
                r = sd_json_get_b64_exact(root, what, "realm", "realm", e->realm, SD_REALM_ID_BYTES, err);
                if (r < 0)
                        return r;
                r = sd_json_get_uint(root, what, "policy", 1, &e->policy, err);
                if (r < 0)
                        return r;
        }
        r = sd_json_get_name(root, what, "name", "name", "secret name", e->name, err);
        if (r < 0)
                return r;
        r = sd_json_get_uint(root, what, "version", 1, &e->version, err);
        if (r < 0)
                return r;
        r = get_created(root, what, &e->created, err);
        if (r < 0)
                return r;
        r = sd_json_get_b64_exact(root, what, "signer", "signer", e->signer, SD_SIGN_PK_BYTES, err);
        if (r < 0)
                return r;

        if (!e->tombstone) {
                r = sd_json_get_b64_exact(root, what, "nonce", "nonce", e->nonce, NONCE_BYTES, err);
                if (r < 0)
                        return r;

                const char *ct;
                size_t ct_len;
                r = sd_json_get_string(root, what, "ciphertext", &ct, &ct_len, err);
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

        return sd_json_get_b64_exact(root, what, "signature", "signature", e->signature, SIGNATURE_BYTES, err);
}

/* Steps 1b-5 on a parsed envelope: format, realm, policy version, signer's
 * rights, signature. */
static int envelope_authenticate(const struct envelope *e, const struct sd_policy *policy, int flags,
                                 sd_error *err) {
        if (e->format < 2) {
                if (!(flags & SD_ENVELOPE_LEGACY))
                        return sd_error_set(err, EBADMSG,
                                            "sealed in format 1, before the realm existed; an admin must run "
                                            "'secretctl reseal %s'",
                                            e->name);
        } else {
                if (memcmp(e->realm, sd_policy_realm(policy), SD_REALM_ID_BYTES) != 0) {
                        char theirs[SD_REALM_ID_SHORT_CHARS + 1], ours[SD_REALM_ID_SHORT_CHARS + 1];
                        sd_realm_id_short(e->realm, theirs);
                        sd_realm_id_short(sd_policy_realm(policy), ours);
                        return sd_error_set(err, EBADMSG, "belongs to realm %s, the pinned realm is %s", theirs, ours);
                }
                if (e->policy > sd_policy_version(policy))
                        return sd_error_set(err, EAGAIN, "sealed under policy v%" PRIu64 ", newer than the verified v%" PRIu64,
                                            e->policy, sd_policy_version(policy));
        }
        int r = sd_policy_check_signer(policy, e->signer, e->name, err);
        if (r < 0)
                return r;

        _cleanup_free_ unsigned char *msg = NULL;
        size_t msg_len;
        if (envelope_signed_message(e, &msg, &msg_len) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (crypto_sign_verify_detached(e->signature, msg, msg_len, e->signer) != 0) {
                char id[SD_KEY_ID_CHARS + 1];
                sd_key_id(e->signer, id);
                return sd_error_set(err, EBADMSG,
                                    "signature by writer %s does not verify: the envelope was altered or corrupted", id);
        }
        return 0;
}

static void envelope_info_fill(const struct envelope *e, struct sd_envelope_info *info) {
        *info = (struct sd_envelope_info) {
                .version = e->version,
                .tombstone = e->tombstone,
                .format = e->format,
                .policy = e->policy,
                .created = e->created,
                .n_recipients = e->n_recipients,
                .value_len = e->tombstone ? 0 : e->ciphertext_len - TAG_BYTES,
        };
        memcpy(info->name, e->name, sizeof(info->name));
        memcpy(info->realm, e->realm, SD_REALM_ID_BYTES);
        memcpy(info->signer, e->signer, SD_SIGN_PK_BYTES);
        sd_key_id(e->signer, info->signer_id);
}

static int envelope_to_json(const struct envelope *e, char **json_out, size_t *len_out) {
        _cleanup_free_ char *signer = sd_b64_encode(e->signer, SD_SIGN_PK_BYTES, SD_B64_STD);
        _cleanup_free_ char *signature = sd_b64_encode(e->signature, SIGNATURE_BYTES, SD_B64_STD);
        _cleanup_free_ char *realm = sd_b64_encode(e->realm, SD_REALM_ID_BYTES, SD_B64_STD);
        if (!signer || !signature || !realm)
                return -ENOMEM;

        _cleanup_json_ json_t *root = json_pack("{s:i, s:s, s:s, s:I, s:s, s:I, s:I, s:s}", "format", (int) e->format,
                                                "kind", envelope_kind(e), "realm", realm, "policy",
                                                (json_int_t) e->policy, "name", e->name, "version",
                                                (json_int_t) e->version, "created", (json_int_t) e->created,
                                                "signer", signer);
        if (!root)
                return -ENOMEM;
        if (!e->tombstone) {
                _cleanup_free_ char *nonce = sd_b64_encode(e->nonce, NONCE_BYTES, SD_B64_STD);
                _cleanup_free_ char *ciphertext = sd_b64_encode(e->ciphertext, e->ciphertext_len, SD_B64_STD);
                json_t *recipients = json_array();
                if (!nonce || !ciphertext || !recipients || json_object_set_new(root, "nonce", json_string(nonce)) < 0 ||
                    json_object_set_new(root, "ciphertext", json_string(ciphertext)) < 0 ||
                    json_object_set_new(root, "recipients", recipients) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < e->n_recipients; i++) {
                        _cleanup_free_ char *key = sd_b64_encode(e->recipients[i].key, SD_BOX_PK_BYTES, SD_B64_STD);
                        _cleanup_free_ char *wrapped = sd_b64_encode(e->recipients[i].wrapped, WRAPPED_BYTES, SD_B64_STD);
                        if (!key || !wrapped)
                                return -ENOMEM;
                        if (json_array_append_new(recipients, json_pack("{s:s, s:s}", "key", key, "wrapped", wrapped)) < 0)
                                return -ENOMEM;
                }
        }
        if (json_object_set_new(root, "signature", json_string(signature)) < 0)
                return -ENOMEM;
        return sd_json_dump_compact(root, json_out, len_out);
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
        if (version == 0 || version >= SD_JSON_INT_LIMIT)
                return subject_error(err, EINVAL, subject, "version must be from 1 to 2^53-1");
        return 0;
}

static void free_keys(unsigned char (**keys)[SD_BOX_PK_BYTES]) {
        free(*keys);
}

int sd_envelope_seal(const char *name, uint64_t version, const struct sd_secret *value,
                     const struct sd_writer_key *writer, const struct sd_policy *policy, char **json_out,
                     size_t *len_out, sd_error *err) {
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
        if (!policy)
                return subject_error(err, EINVAL, &subject, "no realm policy to seal under");
        if (memcmp(writer->sign_sk + crypto_sign_SEEDBYTES, writer->pub.sign_pk, SD_SIGN_PK_BYTES) != 0)
                return subject_error(err, EINVAL, &subject, "the writer's signing key does not match its public key");
        sd_error why = { 0 };
        if (sd_policy_check_write(policy, writer->pub.sign_pk, name, value != NULL, &why) != SD_WRITE_ALLOWED)
                return sd_error_set(err, why.code, "%s", why.message);

        _cleanup_envelope_ struct envelope e = {
                .format = SD_ENVELOPE_FORMAT,
                .tombstone = value == NULL,
                .policy = sd_policy_version(policy),
                .version = version,
                .created = (int64_t) current_time(),
        };
        memcpy(e.realm, sd_policy_realm(policy), SD_REALM_ID_BYTES);
        memcpy(e.name, name, strlen(name) + 1);
        memcpy(e.signer, writer->pub.sign_pk, SD_SIGN_PK_BYTES);

        if (!e.tombstone) {
                _cleanup_(free_keys) unsigned char(*allowed)[SD_BOX_PK_BYTES] = NULL;
                size_t n_allowed = 0;
                if (sd_policy_recipients_for(policy, name, &allowed, &n_allowed, NULL) < 0)
                        return subject_error(err, ENOMEM, &subject, "out of memory");
                /* The writer first, then each key of the policy's in order. */
                e.recipients = calloc(n_allowed + 1, sizeof(*e.recipients));
                if (!e.recipients)
                        return subject_error(err, ENOMEM, &subject, "out of memory");
                memcpy(e.recipients[0].key, writer->pub.box_pk, SD_BOX_PK_BYTES);
                e.n_recipients = 1;
                for (size_t i = 0; i < n_allowed; i++)
                        if (memcmp(allowed[i], writer->pub.box_pk, SD_BOX_PK_BYTES) != 0)
                                memcpy(e.recipients[e.n_recipients++].key, allowed[i], SD_BOX_PK_BYTES);
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
                if (envelope_ad(&e, &ad, &ad_len) < 0)
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

int sd_envelope_verify(const char *json, size_t len, const struct sd_policy *policy, int flags,
                       struct sd_envelope_info *info, sd_error *err) {
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");
        struct subject subject = subject_unknown();
        _cleanup_envelope_ struct envelope e = { 0 };
        int r = envelope_parse(json, len, &e, &subject, true, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);
        r = envelope_authenticate(&e, policy, flags, err);
        if (r == -EAGAIN && info)
                envelope_info_fill(&e, info);
        if (r < 0)
                return subject_prefix(err, r, &subject);
        if (info)
                envelope_info_fill(&e, info);
        return 0;
}

int sd_envelope_open(const char *json, size_t len, const struct sd_policy *policy, int flags, const char *name,
                     uint64_t version, const struct sd_box_keypair *keys, size_t n_keys,
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

        /* 2-5. realm, policy version, signer's rights, signature */
        r = envelope_authenticate(&e, policy, flags, err);
        if (r == -EAGAIN && info)
                envelope_info_fill(&e, info);
        if (r < 0)
                return subject_prefix(err, r, &subject);

        /* 6. the store answered with what was asked for: a signed envelope
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

        /* recipient, unwrap, decrypt */
        const struct recipient_entry *mine = NULL;
        const struct sd_box_keypair *kp = NULL;
        for (size_t k = 0; k < n_keys && !mine; k++)
                for (size_t i = 0; i < e.n_recipients && !mine; i++)
                        if (memcmp(e.recipients[i].key, keys[k].pk, SD_BOX_PK_BYTES) == 0) {
                                mine = &e.recipients[i];
                                kp = &keys[k];
                        }
        if (!mine) {
                char ids[3 * (SD_KEY_ID_CHARS + 2)] = "";
                for (size_t k = 0; k < n_keys && k < 3; k++) {
                        char id[SD_KEY_ID_CHARS + 1];
                        sd_key_id(keys[k].pk, id);
                        size_t l = strlen(ids);
                        (void) snprintf(ids + l, sizeof(ids) - l, "%s%s", k ? ", " : "", id);
                }
                if (info)
                        envelope_info_fill(&e, info);
                return subject_error(err, ENOKEY, &subject, "not encrypted to %s %s",
                                     n_keys > 1 ? "any of the keys" : "this key", n_keys ? ids : "(none given)");
        }
        _cleanup_free_ unsigned char *ad = NULL;
        size_t ad_len;
        if (envelope_ad(&e, &ad, &ad_len) < 0)
                return subject_error(err, ENOMEM, &subject, "out of memory");
        /* The data key lives in the value's own locked mapping, after it:
         * one guarded allocation per open instead of two (each costs an
         * mmap, mprotects, an mlock and a TLB shootdown on free). */
        _cleanup_secret_ struct sd_secret *value = NULL;
        unsigned char *data_key = NULL;
        if (sd_secret_new_with_scratch(e.ciphertext_len - TAG_BYTES, DATA_KEY_BYTES, &value, &data_key) < 0)
                return subject_error(err, ENOMEM, &subject, "cannot allocate locked memory");
        if (crypto_box_seal_open(data_key, mine->wrapped, WRAPPED_BYTES, kp->pk, kp->sk) != 0)
                return subject_error(err, EBADMSG, &subject,
                                     "cannot unwrap the data key sealed to this key: a corrupted entry, or a private "
                                     "key that does not match its public key");
        unsigned long long value_len;
        int decrypted = crypto_aead_xchacha20poly1305_ietf_decrypt(value->data, &value_len, NULL, e.ciphertext,
                                                                   e.ciphertext_len, ad, ad_len, e.nonce, data_key);
        sodium_memzero(data_key, DATA_KEY_BYTES);
        if (decrypted != 0)
                return subject_error(err, EBADMSG, &subject,
                                     "ciphertext does not authenticate under its data key, realm, name and version");

        if (info)
                envelope_info_fill(&e, info);
        *value_out = steal_pointer(&value);
        return 0;
}

int sd_envelope_recipient_keys(const char *json, size_t len, unsigned char (**keys_out)[SD_BOX_PK_BYTES],
                               size_t *n_out, sd_error *err) {
        struct subject subject = subject_unknown();
        _cleanup_envelope_ struct envelope e = { 0 };
        int r = envelope_parse(json, len, &e, &subject, true, err);
        if (r < 0)
                return subject_prefix(err, r, &subject);
        unsigned char(*keys)[SD_BOX_PK_BYTES] = NULL;
        if (e.n_recipients) {
                keys = calloc(e.n_recipients, SD_BOX_PK_BYTES);
                if (!keys)
                        return sd_error_set(err, ENOMEM, "out of memory");
                for (size_t i = 0; i < e.n_recipients; i++)
                        memcpy(keys[i], e.recipients[i].key, SD_BOX_PK_BYTES);
        }
        *keys_out = keys;
        *n_out = e.n_recipients;
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
        struct sd_canon c = { 0 };
        for (int pass = 0; pass < 2; pass++) {
                sd_canon_str(&c, RECIPIENT_DOMAIN);
                sd_canon_u64(&c, SD_ENVELOPE_FORMAT_LEGACY);
                sd_canon_str(&c, "recipient");
                sd_canon_str(&c, rec->name);
                sd_canon_bytes(&c, rec->key, SD_BOX_PK_BYTES);
                sd_canon_u64(&c, (uint64_t) rec->created);
                sd_canon_bytes(&c, rec->signer, SD_SIGN_PK_BYTES);
                if (pass == 0 && sd_canon_allocate(&c, len_out) < 0)
                        return -ENOMEM;
        }
        *out = c.buf;
        return 0;
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
        if (!sd_box_pk_usable(box_pk))
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
                                                "format", SD_ENVELOPE_FORMAT_LEGACY, "kind", "recipient", "name", rec.name,
                                                "key", key, "created", (json_int_t) rec.created, "signer", signer,
                                                "signature", signature);
        if (!root || sd_json_dump_compact(root, json_out, len_out) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int sd_recipient_verify(const char *json, size_t len, const struct sd_trust *trust,
                        struct sd_recipient_info *info, sd_error *err) {
        static const char what[] = "recipient entry";
        if (sodium_init() < 0)
                return sd_error_set(err, ENOMEM, "cannot initialise libsodium");

        char shown_name[80] = "?";
        _cleanup_json_ json_t *root = NULL;
        int r = sd_json_load_object(json, len, SD_ENVELOPE_MAX_BYTES, what, &root, err);
        if (r < 0)
                return sd_error_prefix(err, r, "recipient '%s'", shown_name);
        json_t *n = json_object_get(root, "name");
        if (json_is_string(n))
                sd_escape_for_message(json_string_value(n), json_string_length(n), shown_name, sizeof(shown_name));

        static const char *const members[] = { "format", "kind", "name", "key", "created", "signer", "signature" };
        struct recipient_record rec = { 0 };
        const char *kind;
        size_t kind_len;
        r = sd_json_get_string(root, what, "kind", &kind, &kind_len, err);
        if (r >= 0 && strcmp(kind, "recipient") != 0) {
                char shown[40];
                sd_escape_for_message(kind, kind_len, shown, sizeof(shown));
                r = sd_error_set(err, EBADMSG, "malformed %s: field 'kind' is '%s'; expected 'recipient'", what, shown);
        }
        if (r >= 0)
                r = sd_json_check_members(root, what, members, SD_ARRAY_SIZE(members), "", err);
        if (r >= 0)
                r = sd_json_get_format(root, what, SD_ENVELOPE_FORMAT_LEGACY, err);
        if (r >= 0)
                r = sd_json_get_name(root, what, "name", "name", "recipient name", rec.name, err);
        if (r >= 0)
                r = sd_json_get_b64_exact(root, what, "key", "key", rec.key, SD_BOX_PK_BYTES, err);
        if (r >= 0)
                r = get_created(root, what, &rec.created, err);
        if (r >= 0)
                r = sd_json_get_b64_exact(root, what, "signer", "signer", rec.signer, SD_SIGN_PK_BYTES, err);
        if (r >= 0)
                r = sd_json_get_b64_exact(root, what, "signature", "signature", rec.signature, SIGNATURE_BYTES, err);
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
