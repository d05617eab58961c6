/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ini.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "secretd/config.h"
#include "secretd/names.h"
#include "secretd/policy.h"
#include "secretd/store.h"
#include "secretd/trust-root.h"

enum value_kind {
        VALUE_STRING,       /* any non-empty text */
        VALUE_ABS_PATH,     /* an absolute path */
        VALUE_ABS_PATH_OR_EMPTY,  /* an absolute path, or "" to turn the feature off */
        VALUE_DRIVER,       /* a plugin name, i.e. a socket file name */
        VALUE_SIZE,
        VALUE_TOTAL_SIZE,   /* a size up to SD_TOTAL_SIZE_MAX */
        VALUE_COUNT,        /* 1..SD_COUNT_MAX */
        VALUE_LOG_LEVEL,
        VALUE_BOOL,         /* yes/no, true/false, 1/0 */
        VALUE_SECONDS,      /* 1..3600 */
        VALUE_PIN,          /* a realm pin line, sdr1:... */
        VALUE_LOOPBACK_OR_EMPTY,  /* a loopback IP address and port, or "" for off */
        VALUE_ON_UNVERIFIABLE,  /* previous|refuse */
};

struct config_key {
        const char *name;
        enum value_kind kind;
        size_t offset;
};

#define STR_KEY(n, k, field) { n, k, offsetof(struct sd_config, field) }

static const struct config_key config_keys[] = {
        STR_KEY("store", VALUE_STRING, store_url),
        STR_KEY("driver", VALUE_DRIVER, driver),
        STR_KEY("key", VALUE_STRING, key_path),
        STR_KEY("realm", VALUE_PIN, realm),
        STR_KEY("realm-file", VALUE_ABS_PATH, realm_file),
        STR_KEY("state-dir", VALUE_ABS_PATH, state_dir),
        STR_KEY("docker-socket", VALUE_ABS_PATH, docker_socket),
        STR_KEY("plugin-dir", VALUE_ABS_PATH, plugin_dir),
        STR_KEY("default-size", VALUE_SIZE, default_size),
        STR_KEY("max-size", VALUE_SIZE, max_size),
        STR_KEY("max-volumes", VALUE_COUNT, max_volumes),
        STR_KEY("max-instances-per-volume", VALUE_COUNT, max_instances_per_volume),
        STR_KEY("max-inodes", VALUE_COUNT, max_inodes),
        STR_KEY("max-total-tmpfs", VALUE_TOTAL_SIZE, max_total_tmpfs),
        STR_KEY("floor-file", VALUE_ABS_PATH, floor_file),
        STR_KEY("cache-dir", VALUE_ABS_PATH_OR_EMPTY, cache_dir),
        STR_KEY("log-level", VALUE_LOG_LEVEL, log_level),
        STR_KEY("admin-socket", VALUE_ABS_PATH, admin_socket),
        STR_KEY("audit-log", VALUE_ABS_PATH_OR_EMPTY, audit_log),
        STR_KEY("seccomp", VALUE_BOOL, seccomp),
        STR_KEY("connection-timeout", VALUE_SECONDS, connection_timeout),
        STR_KEY("etcd-ca", VALUE_ABS_PATH_OR_EMPTY, etcd_ca),
        STR_KEY("etcd-cert", VALUE_ABS_PATH_OR_EMPTY, etcd_cert),
        STR_KEY("etcd-key", VALUE_ABS_PATH_OR_EMPTY, etcd_key),
        STR_KEY("etcd-auth-file", VALUE_ABS_PATH_OR_EMPTY, etcd_auth_file),
        STR_KEY("metrics-listen", VALUE_LOOPBACK_OR_EMPTY, metrics_listen),
        STR_KEY("on-unverifiable", VALUE_ON_UNVERIFIABLE, on_unverifiable),
};
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) == SD_CONFIG_KEYS, "SD_CONFIG_KEYS is out of date");

/* Keys whose value is one of a few words: the word of an enum value ("?"
 * out of range), the value of a word (-1 none). */
static const char *word_of(const char *const *words, size_t n, size_t value) {
        return value < n ? words[value] : "?";
}

static int word_index(const char *const *words, size_t n, const char *text) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(text, words[i]) == 0)
                        return (int) i;
        return -1;
}

static const char *const level_names[] = {
        [SD_LOG_ERROR] = "error",
        [SD_LOG_WARN] = "warn",
        [SD_LOG_INFO] = "info",
        [SD_LOG_DEBUG] = "debug",
};

const char *sd_log_level_name(enum sd_log_level level) {
        return word_of(level_names, SD_ARRAY_SIZE(level_names), (size_t) level);
}

int sd_log_level_parse(const char *text, enum sd_log_level *out, sd_error *err) {
        int i = word_index(level_names, SD_ARRAY_SIZE(level_names), text);
        if (i >= 0) {
                *out = (enum sd_log_level) i;
                return 0;
        }
        char shown[64];
        return sd_error_set(err, EINVAL, "log-level '%s' is not one of error, warn, info, debug",
                            sd_escape_for_message(text, strlen(text), shown, sizeof(shown)));
}

static const char *const on_unverifiable_names[] = {
        [SD_ON_UNVERIFIABLE_PREVIOUS] = "previous",
        [SD_ON_UNVERIFIABLE_REFUSE] = "refuse",
};

const char *sd_on_unverifiable_name(enum sd_on_unverifiable v) {
        return word_of(on_unverifiable_names, SD_ARRAY_SIZE(on_unverifiable_names), (size_t) v);
}

int sd_on_unverifiable_parse(const char *text, enum sd_on_unverifiable *out, sd_error *err) {
        int i = word_index(on_unverifiable_names, SD_ARRAY_SIZE(on_unverifiable_names), text);
        if (i >= 0) {
                *out = (enum sd_on_unverifiable) i;
                return 0;
        }
        char shown[64];
        return sd_error_set(err, EINVAL, "on-unverifiable '%s' is not previous or refuse",
                            sd_escape_for_message(text, strlen(text), shown, sizeof(shown)));
}

static int size_parse_up_to(const char *what, const char *text, uint64_t max, uint64_t *out, sd_error *err) {
        char shown[64];
        sd_escape_for_message(text, strlen(text), shown, sizeof(shown));

        /* Digits only: strtoull would accept "-1", " 1" and "0x10". */
        size_t digits = strspn(text, "0123456789");
        if (digits == 0)
                return sd_error_set(err, EINVAL, "%s '%s' is not a size (digits with an optional K, M or G suffix)",
                                    what, shown);
        uint64_t mult = 1;
        const char *suffix = text + digits;
        if (*suffix != '\0') {
                switch (*suffix) {
                case 'k': case 'K': mult = (uint64_t) 1 << 10; break;
                case 'm': case 'M': mult = (uint64_t) 1 << 20; break;
                case 'g': case 'G': mult = (uint64_t) 1 << 30; break;
                default:
                        return sd_error_set(err, EINVAL, "%s '%s' has an unknown unit; use K, M or G",
                                            what, shown);
                }
                if (suffix[1] != '\0')
                        return sd_error_set(err, EINVAL, "%s '%s' has trailing characters after the unit",
                                            what, shown);
        }
        uint64_t value = 0;
        for (size_t i = 0; i < digits; i++) {
                unsigned d = (unsigned) (text[i] - '0');
                if (value > (UINT64_MAX - d) / 10)
                        return sd_error_set(err, EINVAL, "%s '%s' is too large", what, shown);
                value = value * 10 + d;
        }
        if (value > UINT64_MAX / mult || value * mult > max)
                return sd_error_set(err, EINVAL, "%s '%s' is larger than the limit of %" PRIu64 "G", what, shown,
                                    max >> 30);
        value *= mult;
        if (value < SD_SIZE_MIN)
                return sd_error_set(err, EINVAL, "%s '%s' is smaller than the minimum of 4K", what, shown);
        *out = value;
        return 0;
}

int sd_size_parse(const char *what, const char *text, uint64_t *out, sd_error *err) {
        return size_parse_up_to(what, text, SD_SIZE_MAX, out, err);
}

/* A positive decimal count: digits only, like sizes. */
static int count_parse(const char *what, const char *text, uint64_t *out, sd_error *err) {
        char shown[64];
        size_t len = strlen(text);
        sd_escape_for_message(text, len, shown, sizeof(shown));
        if (len == 0 || strspn(text, "0123456789") != len)
                return sd_error_set(err, EINVAL, "%s '%s' is not a decimal number", what, shown);
        uint64_t value = 0;
        for (size_t i = 0; i < len; i++) {
                value = value * 10 + (uint64_t) (text[i] - '0');
                if (value > SD_COUNT_MAX)
                        return sd_error_set(err, EINVAL, "%s '%s' is larger than the limit of %" PRIu64, what,
                                            shown, SD_COUNT_MAX);
        }
        if (value == 0)
                return sd_error_set(err, EINVAL, "%s '%s' must be at least 1", what, shown);
        *out = value;
        return 0;
}

static int strdup_into(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int sd_config_init(struct sd_config *cfg) {
        *cfg = (struct sd_config) {
                .default_size = (uint64_t) 1 << 20,
                .max_size = (uint64_t) 16 << 20,
                .max_volumes = 1024,
                .max_instances_per_volume = 64,
                .max_inodes = 1024,
                .max_total_tmpfs = (uint64_t) 256 << 20,
                .log_level = SD_LOG_INFO,
                .seccomp = HAVE_LIBSECCOMP,
                .connection_timeout = 150,
        };
        if (strdup_into(&cfg->store_url, SD_STORE_DEFAULT_URL) < 0 ||
            strdup_into(&cfg->driver, "secretd") < 0 ||
            strdup_into(&cfg->key_path, "/etc/secretd/agent.key") < 0 ||
            strdup_into(&cfg->realm_file, SD_CONFIG_DEFAULT_REALM_FILE) < 0 ||
            strdup_into(&cfg->state_dir, "/run/secretd") < 0 ||
            strdup_into(&cfg->docker_socket, "/var/run/docker.sock") < 0 ||
            strdup_into(&cfg->plugin_dir, "/run/docker/plugins") < 0 ||
            strdup_into(&cfg->floor_file, SD_CONFIG_DEFAULT_FLOOR_FILE) < 0 ||
            strdup_into(&cfg->cache_dir, SD_CONFIG_DEFAULT_CACHE_DIR) < 0 ||
            strdup_into(&cfg->admin_socket, "/run/secretd/admin.sock") < 0 ||
            strdup_into(&cfg->audit_log, "/var/log/secretd/audit.log") < 0 ||
            strdup_into(&cfg->etcd_ca, "") < 0 || strdup_into(&cfg->etcd_cert, "") < 0 ||
            strdup_into(&cfg->etcd_key, "") < 0 || strdup_into(&cfg->etcd_auth_file, "") < 0 ||
            strdup_into(&cfg->metrics_listen, "") < 0) {
                sd_config_free(cfg);
                return -ENOMEM;
        }
        return 0;
}

void sd_config_free(struct sd_config *cfg) {
        free(cfg->store_url);
        free(cfg->driver);
        free(cfg->key_path);
        free(cfg->realm);
        free(cfg->realm_file);
        free(cfg->state_dir);
        free(cfg->docker_socket);
        free(cfg->plugin_dir);
        free(cfg->floor_file);
        free(cfg->cache_dir);
        free(cfg->admin_socket);
        free(cfg->audit_log);
        free(cfg->etcd_ca);
        free(cfg->etcd_cert);
        free(cfg->etcd_key);
        free(cfg->etcd_auth_file);
        free(cfg->metrics_listen);
        *cfg = (struct sd_config) { 0 };
}

static const char *unless_empty(const char *s) {
        return s && s[0] ? s : NULL;
}

int sd_config_load_agent_file(struct sd_config *cfg, const char *path, sd_error *err) {
        const char *file = path ? path : SD_CONFIG_DEFAULT_PATH;
        int r = sd_trust_root_check(file, "config", err);
        if (r >= 0)
                r = sd_config_load_file(cfg, file, err);
        if (r == -ENOENT && !path) {
                sd_error_clear(err);
                return 0;
        }
        return r < 0 ? r : 0;
}

void sd_config_store_options(const struct sd_config *cfg, struct sd_store_options *out) {
        *out = (struct sd_store_options) {
                .etcd_ca = unless_empty(cfg->etcd_ca),
                .etcd_cert = unless_empty(cfg->etcd_cert),
                .etcd_key = unless_empty(cfg->etcd_key),
                .etcd_auth_file = unless_empty(cfg->etcd_auth_file),
        };
}

static const struct config_key *config_key_find(const char *name) {
        for (size_t i = 0; i < SD_ARRAY_SIZE(config_keys); i++)
                if (strcmp(config_keys[i].name, name) == 0)
                        return &config_keys[i];
        return NULL;
}

int sd_config_set(struct sd_config *cfg, const char *key, const char *value, sd_error *err) {
        char shown_key[64], shown[96];
        sd_escape_for_message(key, strlen(key), shown_key, sizeof(shown_key));
        sd_escape_for_message(value, strlen(value), shown, sizeof(shown));

        const struct config_key *k = config_key_find(key);
        if (!k && strcmp(key, "trusted-writers") == 0)
                return sd_error_set(err, EINVAL,
                                    "trusted-writers is no longer used: hosts pin the store's realm instead "
                                    "('secretd join PIN' writes %s; or set realm = sdr1:...); see docs/trust.md",
                                    SD_CONFIG_DEFAULT_REALM_FILE);
        if (!k)
                return sd_error_set(err, EINVAL,
                                    "unknown key '%s'; known keys: store, driver, key, realm, realm-file, "
                                    "state-dir, docker-socket, plugin-dir, default-size, max-size, log-level, "
                                    "max-volumes, max-instances-per-volume, max-inodes, max-total-tmpfs, floor-file, "
                                    "cache-dir, seccomp, connection-timeout, admin-socket, audit-log, etcd-ca, etcd-cert, "
                                    "etcd-key, etcd-auth-file, metrics-listen, on-unverifiable",
                                    shown_key);
        if (value[0] == '\0' && k->kind != VALUE_ABS_PATH_OR_EMPTY && k->kind != VALUE_LOOPBACK_OR_EMPTY)
                return sd_error_set(err, EINVAL, "%s: empty value", k->name);
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return sd_error_set(err, EINVAL, "%s '%s' contains a control character", k->name, shown);

        void *field = (char *) cfg + k->offset;
        switch (k->kind) {
        case VALUE_SIZE: {
                uint64_t size;
                int r = sd_size_parse(k->name, value, &size, err);
                if (r < 0)
                        return r;
                *(uint64_t *) field = size;
                return 0;
        }
        case VALUE_TOTAL_SIZE:
        case VALUE_COUNT: {
                uint64_t n;
                int r = k->kind == VALUE_COUNT ? count_parse(k->name, value, &n, err)
                                               : size_parse_up_to(k->name, value, SD_TOTAL_SIZE_MAX, &n, err);
                if (r < 0)
                        return r;
                *(uint64_t *) field = n;
                return 0;
        }
        case VALUE_LOG_LEVEL:
                return sd_log_level_parse(value, (enum sd_log_level *) field, err);
        case VALUE_ON_UNVERIFIABLE:
                return sd_on_unverifiable_parse(value, (enum sd_on_unverifiable *) field, err);
        case VALUE_BOOL:
                if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
                        *(bool *) field = true;
                else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
                        *(bool *) field = false;
                else
                        return sd_error_set(err, EINVAL, "%s '%s' is not yes or no", k->name, shown);
                return 0;
        case VALUE_SECONDS: {
                size_t digits = strspn(value, "0123456789");
                unsigned long n = digits > 0 && digits <= 4 && value[digits] == '\0' ? strtoul(value, NULL, 10) : 0;
                if (n < 1 || n > 3600)
                        return sd_error_set(err, EINVAL, "%s '%s' is not a number of seconds from 1 to 3600",
                                            k->name, shown);
                *(unsigned *) field = (unsigned) n;
                return 0;
        }
        case VALUE_ABS_PATH_OR_EMPTY:
                if (value[0] == '\0')
                        break;
                __attribute__((fallthrough));
        case VALUE_ABS_PATH:
                if (value[0] != '/')
                        return sd_error_set(err, EINVAL, "%s '%s' is not an absolute path", k->name, shown);
                break;
        case VALUE_DRIVER: {
                /* The driver name is the socket's file name and what users
                 * type after `-d`: the secret name rule keeps it a plain,
                 * safe file name. */
                sd_error sub = { 0 };
                if (sd_name_validate("driver", value, strlen(value), &sub) < 0)
                        return sd_error_set(err, EINVAL, "%s", sub.message);
                break;
        }
        case VALUE_PIN: {
                struct sd_realm_pin pin;
                sd_error sub = { 0 };
                if (sd_realm_pin_parse(value, &pin, &sub) < 0)
                        return sd_error_set(err, EINVAL, "%s: %s", k->name, sub.message);
                break;
        }
        case VALUE_LOOPBACK_OR_EMPTY: {
                struct sockaddr_storage addr;
                socklen_t len;
                if (value[0] != '\0' && sd_config_loopback_address(value, &addr, &len, err) < 0)
                        return -EINVAL;
                break;
        }
        case VALUE_STRING:
                break;
        }
        if (strdup_into((char **) field, value) < 0)
                return sd_error_set(err, ENOMEM, "%s: out of memory", k->name);
        return 0;
}

static bool key_value_equal(const struct config_key *k, const struct sd_config *a, const struct sd_config *b) {
        const void *fa = (const char *) a + k->offset, *fb = (const char *) b + k->offset;
        switch (k->kind) {
        case VALUE_SIZE:
        case VALUE_TOTAL_SIZE:
        case VALUE_COUNT:
                return *(const uint64_t *) fa == *(const uint64_t *) fb;
        case VALUE_LOG_LEVEL:
                return *(const enum sd_log_level *) fa == *(const enum sd_log_level *) fb;
        case VALUE_ON_UNVERIFIABLE:
                return *(const enum sd_on_unverifiable *) fa == *(const enum sd_on_unverifiable *) fb;
        case VALUE_BOOL:
                return *(const bool *) fa == *(const bool *) fb;
        case VALUE_SECONDS:
                return *(const unsigned *) fa == *(const unsigned *) fb;
        case VALUE_STRING:
        case VALUE_ABS_PATH:
        case VALUE_ABS_PATH_OR_EMPTY:
        case VALUE_DRIVER:
        case VALUE_PIN:
        case VALUE_LOOPBACK_OR_EMPTY:
                break;
        }
        /* realm is NULL when unset. */
        const char *sa = *(char *const *) fa, *sb = *(char *const *) fb;
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
}

size_t sd_config_diff(const struct sd_config *a, const struct sd_config *b, const char **keys_out, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < SD_ARRAY_SIZE(config_keys); i++)
                if (!key_value_equal(&config_keys[i], a, b)) {
                        if (n < max)
                                keys_out[n] = config_keys[i].name;
                        n++;
                }
        return n;
}

/* libinih reads through this so the handler knows the current line. */
struct ini_text {
        const char *text;
        size_t len, pos;
        unsigned line;
};

struct ini_state {
        struct sd_config *cfg;
        struct ini_text *in;
        const char *source;
        unsigned error_line;   /* first error found by the handler; 0 none */
        sd_error error;
};

static char *ini_text_read(char *str, int num, void *stream) {
        struct ini_text *in = stream;
        if (in->pos >= in->len || num <= 1)
                return NULL;
        size_t n = 0, max = (size_t) num - 1;
        while (n < max && in->pos < in->len) {
                char c = in->text[in->pos++];
                str[n++] = c;
                if (c == '\n')
                        break;
        }
        str[n] = '\0';
        in->line++;
        return str;
}

static int ini_handle(void *user, const char *section, const char *name, const char *value) {
        struct ini_state *st = user;
        if (st->error_line != 0)
                return 0;

        sd_error sub = { 0 };
        char shown[64];
        int r;
        if (strcmp(section, SD_CONFIG_SECTION) != 0)
                r = sd_error_set(&sub, EINVAL, "key '%s' outside the [" SD_CONFIG_SECTION "] section",
                                 sd_escape_for_message(name, strlen(name), shown, sizeof(shown)));
        else if (!value)
                r = sd_error_set(&sub, EINVAL, "key '%s' has no value",
                                 sd_escape_for_message(name, strlen(name), shown, sizeof(shown)));
        else
                r = sd_config_set(st->cfg, name, value, &sub);
        if (r < 0) {
                st->error_line = st->in->line;
                sd_error_set(&st->error, EINVAL, "%s:%u: %s", st->source, st->in->line, sub.message);
                return 0;
        }
        return 1;
}

/* libinih silently splits overlong lines and says nothing about a section
 * that has no keys; check both before handing it the text. */
static int ini_prescan(const char *text, size_t len, const char *source, sd_error *err) {
        unsigned line = 1;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && text[i] == '\0')
                        return sd_error_set(err, EINVAL, "%s:%u: contains a NUL byte", source, line);
                if (i < len && text[i] != '\n')
                        continue;
                size_t ll = i - start;
                const char *l = text + start;
                if (ll > SD_CONFIG_MAX_LINE)
                        return sd_error_set(err, EINVAL, "%s:%u: line is longer than %d characters",
                                            source, line, SD_CONFIG_MAX_LINE);
                size_t skip = 0;
                while (skip < ll && (l[skip] == ' ' || l[skip] == '\t' || l[skip] == '\r'))
                        skip++;
                if (line == 1 && ll >= 3 && memcmp(l, "\xef\xbb\xbf", 3) == 0)
                        skip = 3;
                if (skip < ll && l[skip] == '[') {
                        const char *open = l + skip + 1;
                        const char *close = memchr(open, ']', ll - skip - 1);
                        char shown[64];
                        if (!close)
                                return sd_error_set(err, EINVAL, "%s:%u: section header without ']'",
                                                    source, line);
                        size_t nl = (size_t) (close - open);
                        if (nl != strlen(SD_CONFIG_SECTION) || memcmp(open, SD_CONFIG_SECTION, nl) != 0)
                                return sd_error_set(err, EINVAL,
                                                    "%s:%u: unknown section '[%s]'; the only section is [" SD_CONFIG_SECTION "]",
                                                    source, line, sd_escape_for_message(open, nl, shown, sizeof(shown)));
                }
                start = i + 1;
                line++;
        }
        return 0;
}

int sd_config_parse_string(struct sd_config *cfg, const char *text, size_t len, const char *source,
                           sd_error *err) {
        int r = ini_prescan(text, len, source, err);
        if (r < 0)
                return r;

        struct ini_text in = { .text = text, .len = len };
        struct ini_state st = { .cfg = cfg, .in = &in, .source = source };
        int bad_line = ini_parse_stream(ini_text_read, &in, ini_handle, &st);
        if (bad_line == 0)
                return 0;
        if (bad_line < 0)
                return sd_error_set(err, ENOMEM, "%s: out of memory while parsing", source);
        /* libinih keeps going after an error and reports the first line that
         * failed, ours or its own syntax error. */
        if (st.error_line != 0 && st.error_line <= (unsigned) bad_line) {
                *err = st.error;
                return -EINVAL;
        }
        return sd_error_set(err, EINVAL, "%s:%d: syntax error; expected 'key = value' or '[" SD_CONFIG_SECTION "]'",
                            source, bad_line);
}

int sd_config_load_file(struct sd_config *cfg, const char *path, sd_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "%s: no such configuration file", path);
                return sd_error_set_errno(err, errno, "%s: cannot open", path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sd_error_set_errno(err, errno, "%s: cannot stat", path);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "%s: not a regular file", path);

        _cleanup_free_ char *text = malloc(SD_CONFIG_MAX_BYTES + 1);
        if (!text)
                return sd_error_set(err, ENOMEM, "%s: out of memory", path);
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, text + len, SD_CONFIG_MAX_BYTES + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return sd_error_set_errno(err, errno, "%s: read failed", path);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > SD_CONFIG_MAX_BYTES)
                        return sd_error_set(err, EFBIG, "%s: larger than the limit of %zu bytes", path,
                                            SD_CONFIG_MAX_BYTES);
        }
        return sd_config_parse_string(cfg, text, len, path, err);
}

/* A decimal port 1..65535: digits only (strtoul would take "+1", " 1"). */
static bool port_parse(const char *text, uint16_t *out) {
        size_t len = strlen(text);
        if (len == 0 || len > 5 || strspn(text, "0123456789") != len)
                return false;
        unsigned long port = strtoul(text, NULL, 10);
        if (port < 1 || port > 65535)
                return false;
        *out = (uint16_t) port;
        return true;
}

int sd_config_loopback_address(const char *text, struct sockaddr_storage *addr, socklen_t *len_out,
                               sd_error *err) {
        char shown[96];
        sd_escape_for_message(text, strlen(text), shown, sizeof(shown));
        char host[INET6_ADDRSTRLEN + 2];
        const char *port_text;
        bool v6 = text[0] == '[';
        if (v6) {
                const char *close = strchr(text, ']');
                if (!close || close[1] != ':' || (size_t) (close - text - 1) >= sizeof(host))
                        return sd_error_set(err, EINVAL, "metrics-listen '%s' is not [IPV6]:PORT", shown);
                memcpy(host, text + 1, (size_t) (close - text - 1));
                host[close - text - 1] = '\0';
                port_text = close + 2;
        } else {
                const char *colon = strrchr(text, ':');
                if (!colon || (size_t) (colon - text) >= sizeof(host))
                        return sd_error_set(err, EINVAL,
                                            "metrics-listen '%s' is not ADDRESS:PORT (e.g. 127.0.0.1:9101 or [::1]:9101)",
                                            shown);
                memcpy(host, text, (size_t) (colon - text));
                host[colon - text] = '\0';
                port_text = colon + 1;
        }
        uint16_t port;
        if (!port_parse(port_text, &port))
                return sd_error_set(err, EINVAL, "metrics-listen '%s': the port is not a number from 1 to 65535", shown);

        struct sockaddr_storage ss = { 0 };
        socklen_t len;
        bool loopback;
        if (v6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
                if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
                        return sd_error_set(err, EINVAL, "metrics-listen '%s': '%s' is not an IPv6 address", shown, host);
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(port);
                loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
                len = sizeof(*sin6);
        } else {
                struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
                /* Numeric only: a host name would be resolved at every
                 * start, and could come to name another address. */
                if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                        return sd_error_set(err, EINVAL,
                                            "metrics-listen '%s': '%s' is not an IPv4 address (names are not "
                                            "resolved: use 127.0.0.1 or [::1])",
                                            shown, host);
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
                len = sizeof(*sin);
        }
        if (!loopback)
                return sd_error_set(err, EINVAL,
                                    "metrics-listen '%s': %s is not a loopback address; /metrics has no "
                                    "authentication, so the agent serves it only on 127.0.0.1 or [::1] (let the "
                                    "local Prometheus, a reverse proxy or an SSH tunnel carry it further)",
                                    shown, host);
        *addr = ss;
        *len_out = len;
        return 0;
}

int sd_config_check(const struct sd_config *cfg, sd_error *err) {
        if (cfg->default_size > cfg->max_size)
                return sd_error_set(err, EINVAL,
                                    "default-size (%" PRIu64 " bytes) is larger than max-size (%" PRIu64 " bytes)",
                                    cfg->default_size, cfg->max_size);
        /* Otherwise no volume of the largest size could ever be mounted. */
        if (cfg->max_size > cfg->max_total_tmpfs)
                return sd_error_set(err, EINVAL,
                                    "max-size (%" PRIu64 " bytes) is larger than max-total-tmpfs (%" PRIu64 " bytes)",
                                    cfg->max_size, cfg->max_total_tmpfs);
        return 0;
}
