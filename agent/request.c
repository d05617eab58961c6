/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "secretd/cleanup.h"
#include "secretd/config.h"

#define VALID_OPTS "secrets, uid, gid, mode, size, on-delete"

/* 2^31 - 1: ids above it are rare, and (uid_t) -1 means "unchanged" to
 * chown(2). */
#define VOLUME_ID_MAX UINT32_C(2147483647)

static char *shown(const char *text, size_t len, char *out, size_t out_size) {
        return sd_escape_for_message(text, len, out, out_size);
}

int volume_name_validate(const char *name, size_t len, sd_error *err) {
        return sd_name_validate("volume name", name, len, err);
}

int mount_id_validate(const char *id, size_t len, sd_error *err) {
        char s[64];
        if (len == 0)
                return sd_error_set(err, EINVAL, "mount id is empty");
        if (len > MOUNT_ID_MAX)
                return sd_error_set(err, EINVAL, "mount id '%s' is %zu bytes long; the limit is %d",
                                    shown(id, len, s, sizeof(s)), len, MOUNT_ID_MAX);
        for (size_t i = 0; i < len; i++) {
                char c = id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-'))
                        return sd_error_set(err, EINVAL,
                                            "mount id '%s' may contain only letters, digits, '_' and '-'",
                                            shown(id, len, s, sizeof(s)));
        }
        return 0;
}

int volume_opt_id_parse(const char *what, const char *text, uint32_t *out, sd_error *err) {
        char s[64];
        size_t len = strlen(text);
        if (len == 0 || len > 10 || strspn(text, "0123456789") != len)
                return sd_error_set(err, EINVAL, "option '%s' value '%s' is not a decimal number between 0 and %" PRIu32,
                                    what, shown(text, len, s, sizeof(s)), VOLUME_ID_MAX);
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++)
                v = v * 10 + (uint64_t) (text[i] - '0');
        if (v > VOLUME_ID_MAX)
                return sd_error_set(err, EINVAL, "option '%s' value '%s' is larger than %" PRIu32,
                                    what, shown(text, len, s, sizeof(s)), VOLUME_ID_MAX);
        *out = (uint32_t) v;
        return 0;
}

int volume_opt_mode_parse(const char *text, uint32_t *out, sd_error *err) {
        char s[64];
        size_t len = strlen(text);
        shown(text, len, s, sizeof(s));
        if (len == 0 || len > 4 || strspn(text, "01234567") != len)
                return sd_error_set(err, EINVAL, "option 'mode' value '%s' is not an octal mode such as 0400 or 0440", s);
        uint32_t v = 0;
        for (size_t i = 0; i < len; i++)
                v = v * 8 + (uint32_t) (text[i] - '0');
        if (v & ~UINT32_C(0777))
                return sd_error_set(err, EINVAL,
                                    "option 'mode' value '%s' sets setuid, setgid or sticky bits; only permission bits (0777) are allowed", s);
        if (!(v & 0400))
                return sd_error_set(err, EINVAL,
                                    "option 'mode' value '%s' does not let the owner read the files; include 0400", s);
        *out = v;
        return 0;
}

static int secret_cmp(const void *a, const void *b) {
        const struct volume_secret *x = a, *y = b;
        return strcmp(x->file, y->file);
}

/* "db_password,tls.key:server.key" -> secrets, each "name" or "name:file". */
static int secrets_parse(const char *text, struct volume_spec *spec, sd_error *err) {
        char s[64];
        size_t len = strlen(text);
        const char *p = text, *end = text + len;

        spec->n_secrets = 0;
        for (;;) {
                const char *comma = memchr(p, ',', (size_t) (end - p));
                const char *item_end = comma ? comma : end;
                /* Compose files are hand-written: "a, b" means "a,b". */
                while (p < item_end && (*p == ' ' || *p == '\t'))
                        p++;
                const char *q = item_end;
                while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
                        q--;
                if (q == p)
                        return sd_error_set(err, EINVAL,
                                            "option 'secrets' value '%s' has an empty entry; expected a comma-separated list of NAME or NAME:FILE",
                                            shown(text, len, s, sizeof(s)));
                if (spec->n_secrets == VOLUME_SECRETS_MAX)
                        return sd_error_set(err, EINVAL, "option 'secrets' lists more than %d secrets",
                                            VOLUME_SECRETS_MAX);

                const char *colon = memchr(p, ':', (size_t) (q - p));
                const char *name = p, *file = colon ? colon + 1 : p;
                size_t name_len = (size_t) ((colon ? colon : q) - p), file_len = (size_t) (q - file);
                sd_error sub = { 0 };
                if (sd_name_validate("secret name", name, name_len, &sub) < 0 ||
                    sd_name_validate("file name", file, file_len, &sub) < 0)
                        return sd_error_set(err, EINVAL, "option 'secrets': %s", sub.message);

                struct volume_secret *vs = &spec->secrets[spec->n_secrets];
                memcpy(vs->name, name, name_len);
                vs->name[name_len] = '\0';
                memcpy(vs->file, file, file_len);
                vs->file[file_len] = '\0';
                for (size_t i = 0; i < spec->n_secrets; i++)
                        if (strcmp(spec->secrets[i].file, vs->file) == 0)
                                return sd_error_set(err, EINVAL,
                                                    "option 'secrets' delivers two secrets as file '%s'; use NAME:FILE to rename one",
                                                    vs->file);
                spec->n_secrets++;

                if (!comma)
                        break;
                p = comma + 1;
        }
        qsort(spec->secrets, spec->n_secrets, sizeof(spec->secrets[0]), secret_cmp);
        return 0;
}

int volume_opts_parse(const json_t *opts, const struct volume_limits *limits,
                      struct volume_spec *out, sd_error *err) {
        struct volume_spec spec = {
                .mode = 0400,
                .size = limits->default_size,
        };
        bool have_secrets = false;
        char s[64], k[64];

        if (opts && !json_is_null(opts) && !json_is_object(opts))
                return sd_error_set(err, EINVAL, "Opts must be an object of strings");

        const char *key;
        json_t *value;
        /* json_object_foreach wants a non-const object; it does not modify it. */
        json_object_foreach((json_t *) opts, key, value) {
                shown(key, strlen(key), k, sizeof(k));
                if (!json_is_string(value))
                        return sd_error_set(err, EINVAL, "option '%s' must be a string", k);
                const char *v = json_string_value(value);
                size_t vlen = json_string_length(value);
                if (strlen(v) != vlen)
                        return sd_error_set(err, EINVAL, "option '%s' contains a NUL byte", k);
                int r;
                if (strcmp(key, "secrets") == 0) {
                        r = secrets_parse(v, &spec, err);
                        have_secrets = true;
                } else if (strcmp(key, "uid") == 0) {
                        r = volume_opt_id_parse("uid", v, &spec.uid, err);
                } else if (strcmp(key, "gid") == 0) {
                        r = volume_opt_id_parse("gid", v, &spec.gid, err);
                } else if (strcmp(key, "mode") == 0) {
                        r = volume_opt_mode_parse(v, &spec.mode, err);
                } else if (strcmp(key, "size") == 0) {
                        r = sd_size_parse("option 'size' value", v, &spec.size, err);
                        if (r >= 0 && spec.size > limits->max_size)
                                r = sd_error_set(err, EINVAL,
                                                 "option 'size' value '%s' (%" PRIu64 " bytes) is larger than this agent's max-size (%" PRIu64 " bytes)",
                                                 shown(v, vlen, s, sizeof(s)), spec.size, limits->max_size);
                } else if (strcmp(key, "on-delete") == 0) {
                        if (strcmp(v, "keep") == 0)
                                spec.on_delete = VOLUME_ON_DELETE_KEEP;
                        else if (strcmp(v, "remove") == 0)
                                spec.on_delete = VOLUME_ON_DELETE_REMOVE;
                        else
                                return sd_error_set(err, EINVAL, "option 'on-delete' value '%s' is not 'keep' or 'remove'",
                                                    shown(v, vlen, s, sizeof(s)));
                        r = 0;
                } else {
                        return sd_error_set(err, EINVAL, "unknown option '%s'; valid options: " VALID_OPTS, k);
                }
                if (r < 0)
                        return r;
        }
        if (!have_secrets)
                return sd_error_set(err, EINVAL,
                                    "option 'secrets' is required (e.g. -o secrets=db_password,api_key); valid options: " VALID_OPTS);
        *out = spec;
        return 0;
}

static int json_set_string(json_t *obj, const char *key, const char *value) {
        return json_object_set_new(obj, key, json_string(value));
}

json_t *volume_spec_to_json(const struct volume_spec *spec) {
        _cleanup_json_ json_t *obj = json_object();
        if (!obj)
                return NULL;

        size_t cap = spec->n_secrets * (2 * SD_NAME_MAX + 2) + 1;
        _cleanup_free_ char *secrets = malloc(cap);
        if (!secrets)
                return NULL;
        size_t used = 0;
        secrets[0] = '\0';
        for (size_t i = 0; i < spec->n_secrets; i++) {
                int n = snprintf(secrets + used, cap - used, "%s%s:%s", i ? "," : "",
                                 spec->secrets[i].name, spec->secrets[i].file);
                if (n < 0 || (size_t) n >= cap - used)
                        return NULL;
                used += (size_t) n;
        }
        char uid[16], gid[16], mode[8], size[24];
        (void) snprintf(uid, sizeof(uid), "%" PRIu32, spec->uid);
        (void) snprintf(gid, sizeof(gid), "%" PRIu32, spec->gid);
        (void) snprintf(mode, sizeof(mode), "%04" PRIo32, spec->mode);
        (void) snprintf(size, sizeof(size), "%" PRIu64, spec->size);
        if (json_set_string(obj, "secrets", secrets) < 0 || json_set_string(obj, "uid", uid) < 0 ||
            json_set_string(obj, "gid", gid) < 0 || json_set_string(obj, "mode", mode) < 0 ||
            json_set_string(obj, "size", size) < 0 ||
            json_set_string(obj, "on-delete",
                            spec->on_delete == VOLUME_ON_DELETE_REMOVE ? "remove" : "keep") < 0)
                return NULL;
        return steal_pointer(&obj);
}

bool volume_spec_equal(const struct volume_spec *a, const struct volume_spec *b) {
        if (a->n_secrets != b->n_secrets || a->uid != b->uid || a->gid != b->gid ||
            a->mode != b->mode || a->size != b->size || a->on_delete != b->on_delete)
                return false;
        for (size_t i = 0; i < a->n_secrets; i++)
                if (strcmp(a->secrets[i].name, b->secrets[i].name) != 0 ||
                    strcmp(a->secrets[i].file, b->secrets[i].file) != 0)
                        return false;
        return true;
}

/* ---- request bodies ---- */

static int body_load(const char *body, size_t len, json_t **out, sd_error *err) {
        json_error_t jerr;
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char s[96];
                return sd_error_set(err, EINVAL, "request body is not valid JSON: %s (line %d, column %d)",
                                    sd_escape_json_error(&jerr, s, sizeof(s)), jerr.line, jerr.column);
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return sd_error_set(err, EINVAL, "request body must be a JSON object");
        }
        *out = root;
        return 0;
}

static int string_field(const json_t *root, const char *field, bool required, const char **out,
                        size_t *len_out, sd_error *err) {
        json_t *v = json_object_get(root, field);
        if (!v || json_is_null(v)) {
                if (required)
                        return sd_error_set(err, EINVAL, "request has no '%s'", field);
                *out = NULL;
                *len_out = 0;
                return 0;
        }
        if (!json_is_string(v))
                return sd_error_set(err, EINVAL, "request field '%s' must be a string", field);
        *out = json_string_value(v);
        *len_out = json_string_length(v);
        return 0;
}

static int name_field(const json_t *root, char out[SD_NAME_MAX + 1], sd_error *err) {
        const char *name;
        size_t len;
        int r = string_field(root, "Name", true, &name, &len, err);
        if (r < 0)
                return r;
        r = volume_name_validate(name, len, err);
        if (r < 0)
                return r;
        memcpy(out, name, len + 1);
        return 0;
}

int plugin_parse_empty_request(const char *body, size_t len, sd_error *err) {
        /* /Plugin.Activate comes with no body at all; List and Capabilities
         * with "{}". */
        size_t i = 0;
        while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
                i++;
        if (i == len)
                return 0;
        _cleanup_json_ json_t *root = NULL;
        return body_load(body, len, &root, err);
}

int plugin_parse_name_request(const char *body, size_t len, struct plugin_name_request *out,
                              sd_error *err) {
        _cleanup_json_ json_t *root = NULL;
        struct plugin_name_request req;
        int r = body_load(body, len, &root, err);
        if (r < 0)
                return r;
        r = name_field(root, req.name, err);
        if (r < 0)
                return r;
        *out = req;
        return 0;
}

int plugin_parse_mount_request(const char *body, size_t len, struct plugin_mount_request *out,
                               sd_error *err) {
        _cleanup_json_ json_t *root = NULL;
        struct plugin_mount_request req;
        int r = body_load(body, len, &root, err);
        if (r < 0)
                return r;
        r = name_field(root, req.name, err);
        if (r < 0)
                return r;
        const char *id;
        size_t id_len;
        r = string_field(root, "ID", true, &id, &id_len, err);
        if (r < 0)
                return r;
        r = mount_id_validate(id, id_len, err);
        if (r < 0)
                return r;
        memcpy(req.id, id, id_len + 1);
        *out = req;
        return 0;
}

int plugin_parse_create_request(const char *body, size_t len, const struct volume_limits *limits,
                                struct plugin_create_request *out, sd_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_free_ struct plugin_create_request *req = calloc(1, sizeof(*req));
        if (!req)
                return sd_error_set(err, ENOMEM, "out of memory");
        int r = body_load(body, len, &root, err);
        if (r < 0)
                return r;
        r = name_field(root, req->name, err);
        if (r < 0)
                return r;
        r = volume_opts_parse(json_object_get(root, "Opts"), limits, &req->spec, err);
        if (r < 0)
                return sd_error_prefix(err, r, "volume '%s'", req->name);
        *out = *req;
        return 0;
}

json_t *volume_spec_secret_names(const struct volume_spec *spec) {
        json_t *secrets = json_array();
        for (size_t i = 0; secrets && i < spec->n_secrets; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(spec->secrets[j].name, spec->secrets[i].name) == 0;
                if (!seen && json_array_append_new(secrets, json_string(spec->secrets[i].name)) < 0) {
                        json_decref(secrets);
                        return NULL;
                }
        }
        return secrets;
}
