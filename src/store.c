/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend-independent half of the store: URL parsing, argument checks
 * and dispatch through struct sd_store_backend (src/store-internal.h).
 * Everything a caller passes is checked here once, so no backend can forget
 * to validate a name before it becomes a path component or a key.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/clock.h"
#include "secretd/envelope.h"
#include "secretd/names.h"
#include "secretd/store.h"
#include "store-internal.h"

struct scheme {
        const char *name;
        const struct sd_store_backend *backend;  /* NULL: recognised, not built */
        const char *why_not_built;
};

static const struct scheme schemes[] = {
        { "file", &sd_store_file_backend, NULL },
        { "etcd", &sd_store_etcd_backend, NULL },
        { "etcds", &sd_store_etcd_backend, NULL },
};

void sd_store_warnf(struct sd_store *s, const char *fmt, ...) {
        if (!s || !s->warn)
                return;
        char body[SD_ERROR_MESSAGE_MAX], line[SD_ERROR_MESSAGE_MAX + 64];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
        (void) snprintf(line, sizeof(line), "store '%s': %s", s->url, body);
        s->warn(s->warn_userdata, line);
}

int sd_store_open(const char *url, int create, struct sd_store **out, sd_error *err) {
        return sd_store_open_with(url, create, NULL, out, err);
}

static bool has_etcd_options(const struct sd_store_options *o) {
        return o->etcd_ca || o->etcd_cert || o->etcd_key || o->etcd_auth_file;
}

int sd_store_open_with(const char *url, int create, const struct sd_store_options *o, struct sd_store **out,
                       sd_error *err) {
        static const struct sd_store_options none = { 0 };
        char shown[256];
        if (!o)
                o = &none;

        if (!url || !*url)
                return sd_error_set(err, EINVAL, "store URL is empty");
        sd_escape_for_message(url, strlen(url), shown, sizeof(shown));

        const char *sep = strstr(url, "://");
        if (!sep || sep == url)
                return sd_error_set(err, EINVAL,
                                    "store URL '%s' has no scheme; expected file:///path or etcd://host:port/prefix",
                                    shown);
        size_t scheme_len = (size_t) (sep - url);

        const struct scheme *found = NULL;
        for (size_t i = 0; i < SD_ARRAY_SIZE(schemes); i++)
                if (strlen(schemes[i].name) == scheme_len &&
                    memcmp(schemes[i].name, url, scheme_len) == 0)
                        found = &schemes[i];
        if (!found)
                return sd_error_set(err, EINVAL,
                                    "store URL '%s' has an unknown scheme; expected file:///path or etcd://host:port/prefix",
                                    shown);
        if (!found->backend)
                return sd_error_set(err, EPROTONOSUPPORT, "store URL '%s': %s", shown,
                                    found->why_not_built);
        if (found->backend != &sd_store_etcd_backend && has_etcd_options(o))
                return sd_error_set(err, EINVAL,
                                    "store URL '%s': etcd-ca, etcd-cert, etcd-key and etcd-auth-file apply only to "
                                    "etcd:// and etcds:// stores",
                                    shown);

        _cleanup_free_ struct sd_store *s = calloc(1, sizeof(*s));
        if (!s)
                return sd_error_set(err, ENOMEM, "out of memory");
        s->url = strdup(url);
        if (!s->url)
                return sd_error_set(err, ENOMEM, "out of memory");
        s->backend = found->backend;
        s->open_options = o;
        (void) pthread_mutex_init(&s->health_lock, NULL);

        int r = s->backend->open(s, url, sep + 3, create, &s->impl, err);
        s->open_options = NULL;
        if (r < 0) {
                (void) pthread_mutex_destroy(&s->health_lock);
                free(s->url);
                return r;
        }
        *out = steal_pointer(&s);
        return 0;
}

void sd_store_free(struct sd_store *s) {
        if (!s)
                return;
        if (s->backend && s->impl)
                s->backend->free(s->impl);
        (void) pthread_mutex_destroy(&s->health_lock);
        free(s->url);
        free(s);
}

bool sd_store_error_is_transient(int negative_errno) {
        switch (-negative_errno) {
        case ECONNREFUSED:
        case ETIMEDOUT:
        case ECONNRESET:
        case EAGAIN:
        case EHOSTUNREACH:
        case ENETUNREACH:
                return true;
        default:
                return false;
        }
}

/* Every backend call passes through here: one place records whether the
 * store answered. */
static int noted(struct sd_store *s, int r) {
        bool contact = r >= 0 || !sd_store_error_is_transient(r);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&s->health_lock);
        s->unreachable = !contact;
        if (contact)
                s->last_contact_ms = sd_realtime_ms();
        return r;
}

void sd_store_health(struct sd_store *s, struct sd_store_health *out) {
        *out = (struct sd_store_health) { .reachable = true };
        (void) snprintf(out->endpoint, sizeof(out->endpoint), "%s", s->url);
        if (s->backend->health)
                s->backend->health(s, out);
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&s->health_lock);
        out->last_contact_ms = s->last_contact_ms;
        out->reachable = !s->unreachable;
}

void sd_store_set_warn(struct sd_store *s, sd_warn_fn fn, void *userdata) {
        s->warn = fn;
        s->warn_userdata = userdata;
}

const char *sd_store_url(const struct sd_store *s) {
        return s->url;
}

static int check_secret_name(const char *name, sd_error *err) {
        return sd_name_validate("secret name", name, name ? strlen(name) : 0, err);
}

static int check_recipient_name(const char *name, sd_error *err) {
        return sd_name_validate("recipient name", name, name ? strlen(name) : 0, err);
}

static int check_data(struct sd_store *s, const char *what, const char *name, const char *data,
                      size_t len, sd_error *err) {
        if (!data || len == 0)
                return sd_error_set(err, EINVAL, "store '%s': %s '%s': refusing to store empty data",
                                    s->url, what, name);
        if (len > SD_ENVELOPE_MAX_BYTES)
                return sd_error_set(err, EFBIG,
                                    "store '%s': %s '%s': %zu bytes is over the store limit of %zu",
                                    s->url, what, name, len, SD_ENVELOPE_MAX_BYTES);
        return 0;
}

int sd_store_put(struct sd_store *s, const char *name, uint64_t version, const char *data,
                 size_t len, sd_error *err) {
        int r = check_secret_name(name, err);
        if (r < 0)
                return r;
        if (version == 0)
                return sd_error_set(err, EINVAL, "store '%s': secret '%s': versions start at 1",
                                    s->url, name);
        r = check_data(s, "secret", name, data, len, err);
        if (r < 0)
                return r;
        return noted(s, s->backend->put(s, name, version, data, len, err));
}

int sd_store_get(struct sd_store *s, const char *name, uint64_t version, char **data_out,
                 size_t *len_out, uint64_t *version_out, sd_error *err) {
        int r = check_secret_name(name, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        r = noted(s, s->backend->get(s, name, version, &data, &len, &got, err));
        if (r < 0)
                return r;
        if (version != 0 && got != version)
                return sd_error_set(err, EPROTO,
                                    "store '%s': secret '%s': asked for version %llu, got %llu",
                                    s->url, name, (unsigned long long) version,
                                    (unsigned long long) got);
        *data_out = steal_pointer(&data);
        if (len_out)
                *len_out = len;
        if (version_out)
                *version_out = got;
        return 0;
}

int sd_store_latest(struct sd_store *s, const char *name, uint64_t *version_out, sd_error *err) {
        int r = check_secret_name(name, err);
        if (r < 0)
                return r;
        uint64_t v = 0;
        r = noted(s, s->backend->latest(s, name, &v, err));
        if (r < 0)
                return r;
        *version_out = v;
        return 0;
}

void sd_store_names_free(struct sd_store_name *names, size_t n) {
        if (!names)
                return;
        for (size_t i = 0; i < n; i++)
                free(names[i].name);
        free(names);
}

int sd_store_list(struct sd_store *s, struct sd_store_name **out, size_t *n_out, sd_error *err) {
        struct sd_store_name *names = NULL;
        size_t n = 0;
        int r = noted(s, s->backend->list(s, &names, &n, err));
        if (r < 0)
                return r;
        *out = names;
        *n_out = n;
        return 0;
}

int sd_store_history(struct sd_store *s, const char *name, uint64_t **versions_out, size_t *n_out,
                     sd_error *err) {
        int r = check_secret_name(name, err);
        if (r < 0)
                return r;
        uint64_t *versions = NULL;
        size_t n = 0;
        r = noted(s, s->backend->history(s, name, &versions, &n, err));
        if (r < 0)
                return r;
        *versions_out = versions;
        *n_out = n;
        return 0;
}

int sd_store_recipient_put(struct sd_store *s, const char *name, const char *data, size_t len,
                           sd_error *err) {
        int r = check_recipient_name(name, err);
        if (r < 0)
                return r;
        r = check_data(s, "recipient", name, data, len, err);
        if (r < 0)
                return r;
        return noted(s, s->backend->recipient_put(s, name, data, len, err));
}

int sd_store_recipient_remove(struct sd_store *s, const char *name, sd_error *err) {
        int r = check_recipient_name(name, err);
        if (r < 0)
                return r;
        return noted(s, s->backend->recipient_remove(s, name, err));
}

void sd_store_blobs_free(struct sd_store_blob *blobs, size_t n) {
        if (!blobs)
                return;
        for (size_t i = 0; i < n; i++) {
                free(blobs[i].name);
                free(blobs[i].data);
        }
        free(blobs);
}

int sd_store_recipient_list(struct sd_store *s, struct sd_store_blob **out, size_t *n_out,
                            sd_error *err) {
        struct sd_store_blob *blobs = NULL;
        size_t n = 0;
        int r = noted(s, s->backend->recipient_list(s, &blobs, &n, err));
        if (r < 0)
                return r;
        *out = blobs;
        *n_out = n;
        return 0;
}

int sd_store_watch_fd(struct sd_store *s, int *fd_out, sd_error *err) {
        if (!s->backend->watch_fd)
                return sd_error_set(err, EOPNOTSUPP, "store '%s': this backend cannot watch", s->url);
        int fd = -1;
        int r = s->backend->watch_fd(s, &fd, err);
        if (r < 0)
                return r;
        *fd_out = fd;
        return 0;
}

int sd_store_watch_read(struct sd_store *s, sd_store_change_fn fn, void *userdata, sd_error *err) {
        if (!s->backend->watch_read)
                return sd_error_set(err, EOPNOTSUPP, "store '%s': this backend cannot watch", s->url);
        return s->backend->watch_read(s, fn, userdata, err);
}

/* ---- realm policy and proposals ---- */

static const char *area_noun(enum sd_store_area area) {
        return area == SD_STORE_AREA_POLICY ? "policy" : "policy proposal";
}

static int area_put(struct sd_store *s, enum sd_store_area area, uint64_t version, const char *data, size_t len,
                    sd_error *err) {
        char what[48];
        (void) snprintf(what, sizeof(what), "%s v%llu", area_noun(area), (unsigned long long) version);
        if (version == 0)
                return sd_error_set(err, EINVAL, "store '%s': %s versions start at 1", s->url, area_noun(area));
        int r = check_data(s, area_noun(area), what, data, len, err);
        if (r < 0)
                return r;
        return s->backend->area_put(s, area, version, data, len, err);
}

static int area_get(struct sd_store *s, enum sd_store_area area, uint64_t version, char **data_out,
                    size_t *len_out, uint64_t *version_out, sd_error *err) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        uint64_t got = 0;
        int r = s->backend->area_get(s, area, version, &data, &len, &got, err);
        if (r < 0)
                return r;
        if (version != 0 && got != version)
                return sd_error_set(err, EPROTO, "store '%s': asked for %s v%llu, got v%llu", s->url,
                                    area_noun(area), (unsigned long long) version, (unsigned long long) got);
        *data_out = steal_pointer(&data);
        if (len_out)
                *len_out = len;
        if (version_out)
                *version_out = got;
        return 0;
}

int sd_store_policy_put(struct sd_store *s, uint64_t version, const char *data, size_t len, sd_error *err) {
        return area_put(s, SD_STORE_AREA_POLICY, version, data, len, err);
}

int sd_store_policy_get(struct sd_store *s, uint64_t version, char **data_out, size_t *len_out,
                        uint64_t *version_out, sd_error *err) {
        return area_get(s, SD_STORE_AREA_POLICY, version, data_out, len_out, version_out, err);
}

int sd_store_policy_history(struct sd_store *s, uint64_t **versions_out, size_t *n_out, sd_error *err) {
        uint64_t *versions = NULL;
        size_t n = 0;
        int r = s->backend->area_list(s, SD_STORE_AREA_POLICY, &versions, &n, err);
        if (r < 0)
                return r;
        *versions_out = versions;
        *n_out = n;
        return 0;
}

int sd_store_policy_latest(struct sd_store *s, uint64_t *version_out, sd_error *err) {
        _cleanup_free_ uint64_t *versions = NULL;
        size_t n = 0;
        int r = sd_store_policy_history(s, &versions, &n, err);
        if (r < 0)
                return r;
        if (n == 0)
                return sd_error_set(err, ENOENT, "store '%s' has no realm policy", s->url);
        *version_out = versions[n - 1];
        return 0;
}

int sd_store_proposal_put(struct sd_store *s, uint64_t version, const char *data, size_t len, sd_error *err) {
        return area_put(s, SD_STORE_AREA_PROPOSALS, version, data, len, err);
}

int sd_store_proposal_get(struct sd_store *s, uint64_t version, char **data_out, size_t *len_out, sd_error *err) {
        if (version == 0)
                return sd_error_set(err, EINVAL, "store '%s': policy proposal versions start at 1", s->url);
        return area_get(s, SD_STORE_AREA_PROPOSALS, version, data_out, len_out, NULL, err);
}

int sd_store_proposal_remove(struct sd_store *s, uint64_t version, sd_error *err) {
        if (version == 0)
                return sd_error_set(err, EINVAL, "store '%s': policy proposal versions start at 1", s->url);
        return s->backend->area_remove(s, SD_STORE_AREA_PROPOSALS, version, err);
}
