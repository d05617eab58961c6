/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The HTTP transport of include/secretd/http.h: bounded requests, the one
 * CURLcode -> errno map, the line splitter and the line stream.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
#include "fileio.h"
#include "secretd/clock.h"
#include "secretd/cleanup.h"
#include "secretd/http.h"

#define DEFAULT_CONNECT_MS 5000L
#define DEFAULT_REQUEST_MS 30000L
#define DEFAULT_REPLY_MAX ((size_t) 16 << 20)
#define UNIX_SOCKET_PATH_MAX 107
/* Idle easy handles kept for reuse (each keeps its connections alive). */
#define POOL_MAX 8
/* Bytes of a stream taken from curl before the transfer is paused until the
 * handlers have seen them; keeps memory bounded when lines arrive faster
 * than they are handled. */
#define STREAM_PENDING_MAX ((size_t) 1 << 20)
/* Kept of a refused stream's body, for the caller's message. */
#define STREAM_ERROR_BODY_MAX ((size_t) 64 << 10)

static inline void sd_curl_easy_cleanupp(CURL **h) {
        if (*h)
                curl_easy_cleanup(*h);
}
#define _cleanup_curl_ _cleanup_(sd_curl_easy_cleanupp)

static inline void sd_curl_slist_freep(struct curl_slist **l) {
        if (*l)
                curl_slist_free_all(*l);
}
#define _cleanup_slist_ _cleanup_(sd_curl_slist_freep)

static inline void sd_curl_multi_cleanupp(CURLM **m) {
        if (*m)
                (void) curl_multi_cleanup(*m);
}
#define _cleanup_curl_multi_ _cleanup_(sd_curl_multi_cleanupp)

/* ------------------------------------------------------------------------
 * Line buffer
 * ---------------------------------------------------------------------- */

void sd_line_buffer_init(struct sd_line_buffer *lb, size_t max_line) {
        *lb = (struct sd_line_buffer) {
                .max_line = max_line ? max_line : SD_LINE_MAX_DEFAULT,
        };
}

void sd_line_buffer_done(struct sd_line_buffer *lb) {
        free(lb->data);
        lb->data = NULL;
        lb->len = lb->cap = 0;
        lb->discarding = false;
}

size_t sd_line_buffer_pending(const struct sd_line_buffer *lb) {
        return lb->len;
}

static int line_overlong(struct sd_line_buffer *lb, size_t seen, sd_line_fn fn, void *userdata) {
        sd_error why = { 0 };
        (void) sd_error_set(&why, EMSGSIZE,
                            "line longer than %zu bytes (%zu bytes and no newline yet); skipped up to the next newline",
                            lb->max_line, seen);
        lb->len = 0;
        return fn(userdata, NULL, seen, &why);
}

int sd_line_buffer_feed(struct sd_line_buffer *lb, const char *data, size_t len, sd_line_fn fn,
                        void *userdata, sd_error *err) {
        while (len > 0) {
                const char *nl = memchr(data, '\n', len);
                size_t piece = nl ? (size_t) (nl - data) : len;
                size_t consumed = nl ? piece + 1 : len;
                int r = 0;

                if (lb->discarding) {
                        /* The rest of an over-long line, already reported. */
                        if (nl)
                                lb->discarding = false;
                } else if (lb->len == 0 && nl) {
                        /* A whole line inside the slice: no copy. */
                        if (piece > lb->max_line)
                                r = line_overlong(lb, piece, fn, userdata);
                        else
                                r = fn(userdata, data, piece, NULL);
                } else if (lb->len + piece > lb->max_line) {
                        size_t seen = lb->len + piece;
                        lb->discarding = !nl;
                        r = line_overlong(lb, seen, fn, userdata);
                } else {
                        if (lb->len + piece + 1 > lb->cap) {
                                size_t want = lb->cap ? lb->cap : 1024;
                                while (want < lb->len + piece + 1)
                                        want *= 2;
                                if (want > lb->max_line + 1)
                                        want = lb->max_line + 1;
                                char *p = realloc(lb->data, want);
                                if (!p)
                                        return sd_error_set(err, ENOMEM,
                                                            "line buffer: out of memory for a %zu-byte line",
                                                            lb->len + piece);
                                lb->data = p;
                                lb->cap = want;
                        }
                        memcpy(lb->data + lb->len, data, piece);
                        lb->len += piece;
                        lb->data[lb->len] = '\0';
                        if (nl) {
                                size_t l = lb->len;
                                /* Reset first: fn may fail, and the line is
                                 * complete either way. */
                                lb->len = 0;
                                r = fn(userdata, lb->data, l, NULL);
                        }
                }
                data += consumed;
                len -= consumed;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * Client
 * ---------------------------------------------------------------------- */

struct sd_http {
        char *peer;
        char *unreachable_hint;
        char *unix_socket;
        char *user_agent;
        char *client_cert_name;
        long connect_ms, request_ms;
        bool https;
        struct curl_blob ca, cert, key;
        bool has_ca, has_cert;

        pthread_mutex_t lock;   /* guards the pool */
        CURL *idle[POOL_MAX];
        size_t n_idle;
};

const char *sd_http_peer(const struct sd_http *h) {
        return h->peer;
}

static char *strdup_or_null(const char *s, bool *failed) {
        if (!s)
                return NULL;
        char *c = strdup(s);
        if (!c)
                *failed = true;
        return c;
}

int sd_http_new(const struct sd_http_options *o, struct sd_http **out, sd_error *err) {
        const char *peer = o->peer ? o->peer : "http";
        if (!o->client_cert != !o->client_key)
                return sd_error_set(err, EINVAL, "%s: a client certificate needs its key, and a key its certificate",
                                    peer);
        if (o->unix_socket && strlen(o->unix_socket) > UNIX_SOCKET_PATH_MAX)
                return sd_error_set(err, ENAMETOOLONG, "%s: a unix socket path holds at most %d bytes", peer,
                                    UNIX_SOCKET_PATH_MAX);

        /* Thread-safe since libcurl 7.84; counted, paired in sd_http_free(). */
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK)
                return sd_error_set(err, EIO, "%s: curl_global_init: %s", peer, curl_easy_strerror(rc));

        struct sd_http *h = calloc(1, sizeof(*h));
        if (!h) {
                curl_global_cleanup();
                return sd_error_set(err, ENOMEM, "%s: out of memory", peer);
        }
        (void) pthread_mutex_init(&h->lock, NULL);
        bool failed = false;
        h->peer = strdup_or_null(peer, &failed);
        h->unreachable_hint = strdup_or_null(o->unreachable_hint ? o->unreachable_hint : "", &failed);
        h->unix_socket = strdup_or_null(o->unix_socket, &failed);
        h->user_agent = strdup_or_null(o->user_agent ? o->user_agent : "secretd/" SECRETD_VERSION, &failed);
        h->client_cert_name = strdup_or_null(o->client_cert_name ? o->client_cert_name : "configured", &failed);
        h->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
        h->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : DEFAULT_REQUEST_MS;
        h->https = o->https;
        /* NOCOPY: the caller keeps them alive (the key in locked memory),
         * so libcurl never holds a private key in ordinary heap. */
        if (o->ca) {
                h->ca = (struct curl_blob) { (void *) o->ca->data, o->ca->len, CURL_BLOB_NOCOPY };
                h->has_ca = true;
        }
        if (o->client_cert) {
                h->cert = (struct curl_blob) { (void *) o->client_cert->data, o->client_cert->len, CURL_BLOB_NOCOPY };
                h->key = (struct curl_blob) { (void *) o->client_key->data, o->client_key->len, CURL_BLOB_NOCOPY };
                h->has_cert = true;
        }
        if (failed) {
                sd_http_free(h);
                return sd_error_set(err, ENOMEM, "%s: out of memory", peer);
        }
        *out = h;
        return 0;
}

void sd_http_free(struct sd_http *h) {
        if (!h)
                return;
        for (size_t i = 0; i < h->n_idle; i++)
                curl_easy_cleanup(h->idle[i]);
        (void) pthread_mutex_destroy(&h->lock);
        free(h->peer);
        free(h->unreachable_hint);
        free(h->unix_socket);
        free(h->user_agent);
        free(h->client_cert_name);
        free(h);
        curl_global_cleanup();
}

void sd_http_reply_done(struct sd_http_reply *r) {
        free(r->body);
        *r = (struct sd_http_reply) { 0 };
}

static CURL *pool_take(struct sd_http *h) {
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&h->lock);
                if (h->n_idle > 0)
                        return h->idle[--h->n_idle];
        }
        return curl_easy_init();
}

static void pool_give(struct sd_http *h, CURL *e) {
        if (!e)
                return;
        {
                _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&h->lock);
                if (h->n_idle < POOL_MAX) {
                        h->idle[h->n_idle++] = e;
                        return;
                }
        }
        curl_easy_cleanup(e);
}

static const char *peer_of(const struct sd_http *h, const struct sd_http_request *rq) {
        return rq->peer ? rq->peer : h->peer;
}

/* What a failed transfer means, as http.h lists it. */
static int transport_error(const struct sd_http *h, const struct sd_http_request *rq, CURL *e, CURLcode rc,
                           const char *errbuf, sd_error *err) {
        const char *peer = peer_of(h, rq);
        const char *why = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
        long os_errno = 0;
        (void) curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);

        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                if (os_errno == EACCES || os_errno == EPERM)
                        return sd_error_set(err, EACCES, "%s: %s: permission denied connecting to it (%s)", peer,
                                            rq->what, strerror((int) os_errno));
                /* ENOENT (no socket), ECONNREFUSED (nobody listening, a
                 * stale socket) and an unknown name all mean: not there now. */
                return sd_error_set(err, ECONNREFUSED, "%s is unreachable: %s: %s%s", peer, rq->what,
                                    os_errno ? strerror((int) os_errno) : why, h->unreachable_hint);
        case CURLE_OPERATION_TIMEDOUT:
                return sd_error_set(err, ETIMEDOUT, "%s did not answer in time: %s (%ld ms)", peer, rq->what,
                                    rq->timeout_ms > 0 ? rq->timeout_ms : h->request_ms);
        case CURLE_PEER_FAILED_VERIFICATION:
                return sd_error_set(err, EPROTO, "%s: %s: TLS: the server's certificate was not accepted: %s", peer,
                                    rq->what, why);
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
                return sd_error_set(err, EINVAL, "%s: %s: TLS: cannot use the configured certificates: %s", peer,
                                    rq->what, why);
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                /* A TLS server that will not have our client certificate
                 * (or wanted one) sends an alert that OpenSSL reports on
                 * the first read after the handshake. */
                if (h->https && strstr(why, "alert")) {
                        if (h->has_cert)
                                return sd_error_set(err, EACCES,
                                                    "%s: %s: TLS: the server refused our client certificate (%s): %s",
                                                    peer, rq->what, h->client_cert_name, why);
                        return sd_error_set(err, EACCES,
                                            "%s: %s: TLS: the server requires a client certificate and none is configured: %s",
                                            peer, rq->what, why);
                }
                if (rc == CURLE_SSL_CONNECT_ERROR)
                        return sd_error_set(err, EPROTO, "%s: %s: TLS handshake failed: %s", peer, rq->what, why);
                /* Sometimes the server's close overtakes its alert: the
                 * socket is gone before the first write.  A server that
                 * died looks the same, so this stays transient. */
                if (h->https && h->has_cert && strstr(why, "getpeername"))
                        return sd_error_set(err, ECONNRESET,
                                            "%s: %s: connection lost right after the TLS handshake (did the server "
                                            "refuse our client certificate %s?): %s",
                                            peer, rq->what, h->client_cert_name, why);
                return sd_error_set(err, ECONNRESET, "%s: %s: connection lost: %s", peer, rq->what, why);
        case CURLE_OUT_OF_MEMORY:
                return sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer, rq->what);
        default:
                return sd_error_set(err, EPROTO, "%s: %s: %s", peer, rq->what, why);
        }
}

#define SETOPT(e, opt, val)                                                                             \
        do {                                                                                            \
                CURLcode _rc = curl_easy_setopt((e), (opt), (val));                                     \
                if (_rc != CURLE_OK)                                                                    \
                        return sd_error_set(err, _rc == CURLE_OUT_OF_MEMORY ? ENOMEM : EINVAL,          \
                                            "%s: %s: setting " #opt ": %s", peer_of(h, rq), rq->what, \
                                            curl_easy_strerror(_rc));                                   \
        } while (0)

/* Everything a handle carries for one request, from a clean slate
 * (curl_easy_reset keeps live connections and the TLS session cache). */
static int easy_configure(const struct sd_http *h, CURL *e, const struct sd_http_request *rq,
                          struct curl_slist **headers, char *errbuf, sd_error *err) {
        curl_easy_reset(e);
        errbuf[0] = '\0';
        const char *base = rq->base ? rq->base : "http://localhost";
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s%s", base, rq->path) < 0)
                return sd_error_set(err, ENOMEM, "%s: out of memory", peer_of(h, rq));

        SETOPT(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(e, CURLOPT_PROTOCOLS_STR, h->https ? "http,https" : "http");
#endif
        /* An http_proxy in the environment must not route our peers. */
        SETOPT(e, CURLOPT_PROXY, "");
        SETOPT(e, CURLOPT_NOSIGNAL, 1L);
        SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
        SETOPT(e, CURLOPT_USERAGENT, h->user_agent);
        SETOPT(e, CURLOPT_ERRORBUFFER, errbuf);
        if (h->unix_socket) {
                SETOPT(e, CURLOPT_UNIX_SOCKET_PATH, h->unix_socket);
        } else {
                SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
                SETOPT(e, CURLOPT_TCP_KEEPIDLE, 10L);
                SETOPT(e, CURLOPT_TCP_KEEPINTVL, 5L);
        }
        if (h->https) {
                if (h->has_ca) {
                        /* Only the configured CA: the system's bundle would
                         * let any public CA vouch for the peer. */
                        SETOPT(e, CURLOPT_CAINFO_BLOB, &h->ca);
                        SETOPT(e, CURLOPT_CAINFO, (char *) NULL);
                        SETOPT(e, CURLOPT_CAPATH, (char *) NULL);
                }
                if (h->has_cert) {
                        SETOPT(e, CURLOPT_SSLCERT_BLOB, &h->cert);
                        SETOPT(e, CURLOPT_SSLCERTTYPE, "PEM");
                        SETOPT(e, CURLOPT_SSLKEY_BLOB, &h->key);
                        SETOPT(e, CURLOPT_SSLKEYTYPE, "PEM");
                }
        }

        struct curl_slist *l = NULL;
        /* No "Expect: 100-continue" round trip before large bodies. */
        l = curl_slist_append(l, "Expect:");
        if (l && rq->body)
                l = curl_slist_append(l, "Content-Type: application/json");
        if (l && rq->authorization) {
                _cleanup_free_ char *line = NULL;
                if (asprintf(&line, "Authorization: %s", rq->authorization) < 0) {
                        curl_slist_free_all(l);
                        l = NULL;
                } else {
                        struct curl_slist *n = curl_slist_append(l, line);
                        if (!n)
                                curl_slist_free_all(l);
                        l = n;
                }
        }
        if (!l)
                return sd_error_set(err, ENOMEM, "%s: out of memory", peer_of(h, rq));
        *headers = l;
        SETOPT(e, CURLOPT_HTTPHEADER, l);

        if (strcmp(rq->method, "POST") == 0) {
                SETOPT(e, CURLOPT_POST, 1L);
                SETOPT(e, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (rq->body ? rq->body_len : 0));
        } else if (strcmp(rq->method, "GET") != 0) {
                return sd_error_set(err, EINVAL, "%s: %s: method %s is not supported", peer_of(h, rq), rq->what,
                                    rq->method);
        }
        return 0;
}

struct reply_sink {
        struct sd_buf body;
        int failure;          /* -EFBIG or -ENOMEM from the write callback */
};

static size_t reply_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct reply_sink *s = userdata;
        size_t n = size * nmemb;
        int r = sd_buf_append(&s->body, ptr, n);
        if (r < 0) {
                s->failure = r;
                return 0;  /* CURLE_WRITE_ERROR ends the transfer */
        }
        return n;
}

static int sink_error(const struct sd_http *h, const struct sd_http_request *rq, const struct reply_sink *s,
                      sd_error *err) {
        if (s->failure == -EFBIG)
                return sd_error_set(err, EFBIG, "%s: %s: reply over %zu bytes", peer_of(h, rq), rq->what,
                                    s->body.max);
        return sd_error_set(err, ENOMEM, "%s: %s: out of memory for the reply", peer_of(h, rq), rq->what);
}

int sd_http_request(struct sd_http *h, const struct sd_http_request *rq, struct sd_http_reply *out,
                    sd_error *err) {
        CURL *e = pool_take(h);
        if (!e)
                return sd_error_set(err, ENOMEM, "%s: %s: curl_easy_init failed", peer_of(h, rq), rq->what);
        char errbuf[CURL_ERROR_SIZE];
        _cleanup_slist_ struct curl_slist *headers = NULL;
        struct reply_sink sink = { .body = { .max = rq->max_reply ? rq->max_reply : DEFAULT_REPLY_MAX } };
        int r = easy_configure(h, e, rq, &headers, errbuf, err);
        if (r >= 0) {
                long timeout = rq->timeout_ms > 0 ? rq->timeout_ms : h->request_ms;
                if (curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK ||
                    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, reply_write) != CURLE_OK ||
                    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink) != CURLE_OK)
                        r = sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer_of(h, rq), rq->what);
        }
        if (r >= 0) {
                CURLcode rc = curl_easy_perform(e);
                if (sink.failure)
                        r = sink_error(h, rq, &sink, err);
                else if (rc != CURLE_OK)
                        r = transport_error(h, rq, e, rc, errbuf, err);
        }
        long status = 0;
        if (r >= 0)
                (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        /* The handle must not keep pointers into this frame. */
        (void) curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *) NULL);
        (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *) NULL);
        pool_give(h, e);
        if (r < 0) {
                sd_buf_done(&sink.body);
                return r;
        }
        size_t len = sink.body.len;
        char *body = sd_buf_steal(&sink.body);
        if (!body)
                return sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer_of(h, rq), rq->what);
        *out = (struct sd_http_reply) { .status = status, .body = body, .len = len };
        return 0;
}

char *sd_http_escape(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0);
        if (!e)
                return NULL;
        char *copy = strdup(e);
        curl_free(e);
        return copy;
}

/* ------------------------------------------------------------------------
 * Line stream
 * ---------------------------------------------------------------------- */

struct stream {
        const struct sd_http_stream_handler *handler;
        sd_error *err;
        CURL *easy;
        struct sd_line_buffer lines;
        struct sd_buf pending;      /* delivered by curl, not yet split */
        struct sd_buf error_body;   /* body of a non-2xx answer */
        long status;
        bool headers_done;
        bool paused;
        bool opened;
        int failure;                /* -ENOMEM from a callback */
};

static size_t stream_header(char *ptr, size_t size, size_t nitems, void *userdata) {
        struct stream *s = userdata;
        size_t n = size * nitems;
        /* The blank line ends a header block; an interim 1xx block is
         * followed by another one. */
        if ((n == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (n == 1 && ptr[0] == '\n')) {
                long status = 0;
                (void) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status >= 200) {
                        s->status = status;
                        s->headers_done = true;
                }
        }
        return n;
}

static bool status_ok(long status) {
        return status >= 200 && status < 300;
}

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct stream *s = userdata;
        size_t n = size * nmemb;
        if (!status_ok(s->status)) {
                /* Keep the start of an error body; drop the rest quietly. */
                size_t room = s->error_body.max - s->error_body.len;
                if (room > 0 && sd_buf_append(&s->error_body, ptr, n < room ? n : room) < 0)
                        s->failure = -ENOMEM;
                return n;
        }
        /* Handlers run outside curl's callbacks (they may make requests
         * themselves): park the bytes, pause when enough are parked. */
        if (s->pending.len > 0 && s->pending.len + n > STREAM_PENDING_MAX) {
                s->paused = true;
                return CURL_WRITEFUNC_PAUSE;
        }
        if (sd_buf_append(&s->pending, ptr, n) < 0) {
                s->failure = -ENOMEM;
                return 0;
        }
        return n;
}

static int stream_line(void *userdata, const char *line, size_t len, const sd_error *overlong) {
        struct stream *s = userdata;
        return s->handler->line(s->handler->userdata, line, len, overlong, s->err);
}

/* Run the handlers for whatever curl delivered, outside its callbacks. */
static int stream_dispatch(struct stream *s, const char *peer, const char *what) {
        for (;;) {
                if (s->headers_done && status_ok(s->status) && !s->opened) {
                        s->opened = true;
                        if (s->handler->opened) {
                                int r = s->handler->opened(s->handler->userdata, s->err);
                                if (r < 0)
                                        return r;
                        }
                }
                if (s->pending.len > 0) {
                        size_t n = s->pending.len;
                        s->pending.len = 0;
                        int r = sd_line_buffer_feed(&s->lines, s->pending.data, n, stream_line, s, s->err);
                        if (r < 0)
                                return r;
                }
                if (!s->paused)
                        return 0;
                /* Unpausing may deliver the held-back data at once, into
                 * pending: go round again. */
                s->paused = false;
                CURLcode rc = curl_easy_pause(s->easy, CURLPAUSE_CONT);
                if (rc != CURLE_OK)
                        return sd_error_set(s->err, EIO, "%s: %s: curl_easy_pause: %s", peer, what,
                                            curl_easy_strerror(rc));
        }
}

static void stream_done(struct stream *s) {
        sd_line_buffer_done(&s->lines);
        sd_buf_done(&s->pending);
        sd_buf_done(&s->error_body);
}

int sd_http_stream(struct sd_http *h, const struct sd_http_request *rq, size_t max_line,
                   const struct sd_http_stream_handler *handler, int stop_fd, struct sd_http_reply *refused,
                   sd_error *err) {
        const char *peer = peer_of(h, rq);
        if (!handler || !handler->line)
                return sd_error_set(err, EINVAL, "%s: %s: no line handler", peer, rq->what);

        _cleanup_curl_ CURL *e = curl_easy_init();
        _cleanup_curl_multi_ CURLM *multi = curl_multi_init();
        if (!e || !multi)
                return sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer, rq->what);
        char errbuf[CURL_ERROR_SIZE];
        _cleanup_slist_ struct curl_slist *headers = NULL;
        _cleanup_(stream_done) struct stream s = {
                .handler = handler,
                .err = err,
                .easy = e,
                .pending = { .max = SIZE_MAX },
                .error_body = { .max = STREAM_ERROR_BODY_MAX },
        };
        sd_line_buffer_init(&s.lines, max_line);

        int r = easy_configure(h, e, rq, &headers, errbuf, err);
        if (r < 0)
                return r;
        /* No CURLOPT_TIMEOUT: the stream is meant to last for days and may
         * be idle for hours.  Only the wait for headers is bounded, below. */
        SETOPT(e, CURLOPT_HEADERFUNCTION, stream_header);
        SETOPT(e, CURLOPT_HEADERDATA, &s);
        SETOPT(e, CURLOPT_WRITEFUNCTION, stream_write);
        SETOPT(e, CURLOPT_WRITEDATA, &s);

        CURLMcode mc = curl_multi_add_handle(multi, e);
        if (mc != CURLM_OK)
                return sd_error_set(err, EIO, "%s: %s: %s", peer, rq->what, curl_multi_strerror(mc));

        long header_ms = rq->timeout_ms > 0 ? rq->timeout_ms : h->request_ms;
        int64_t headers_deadline = sd_monotonic_ms() + header_ms;
        CURLcode rc = CURLE_OK;
        bool stopped = false;
        for (;;) {
                int running = 0;
                mc = curl_multi_perform(multi, &running);
                if (mc != CURLM_OK) {
                        r = sd_error_set(err, EIO, "%s: %s: %s", peer, rq->what, curl_multi_strerror(mc));
                        break;
                }
                if (s.failure) {
                        r = sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer, rq->what);
                        break;
                }
                r = stream_dispatch(&s, peer, rq->what);
                if (r < 0 || !running)
                        break;

                int64_t wait_ms = 1000;
                if (!s.headers_done) {
                        int64_t left = headers_deadline - sd_monotonic_ms();
                        if (left <= 0) {
                                r = sd_error_set(err, ETIMEDOUT, "%s did not answer in time: %s (%ld ms)", peer,
                                                 rq->what, header_ms);
                                break;
                        }
                        if (left < wait_ms)
                                wait_ms = left;
                }
                struct curl_waitfd extra = { .fd = stop_fd, .events = CURL_WAIT_POLLIN };
                mc = curl_multi_poll(multi, stop_fd >= 0 ? &extra : NULL, stop_fd >= 0 ? 1 : 0, (int) wait_ms, NULL);
                if (mc != CURLM_OK) {
                        r = sd_error_set(err, EIO, "%s: %s: %s", peer, rq->what, curl_multi_strerror(mc));
                        break;
                }
                if (extra.revents & CURL_WAIT_POLLIN) {
                        stopped = true;
                        break;
                }
        }
        if (!stopped && r >= 0) {
                int left_msgs = 0;
                for (CURLMsg *m; (m = curl_multi_info_read(multi, &left_msgs));)
                        if (m->msg == CURLMSG_DONE && m->easy_handle == e)
                                rc = m->data.result;
        }
        (void) curl_multi_remove_handle(multi, e);
        if (stopped)
                return 0;
        if (r < 0)
                return r;

        if (!s.headers_done)
                return transport_error(h, rq, e, rc == CURLE_OK ? CURLE_GOT_NOTHING : rc, errbuf, err);
        if (!status_ok(s.status)) {
                size_t len = s.error_body.len;
                char *body = sd_buf_steal(&s.error_body);
                if (!body)
                        return sd_error_set(err, ENOMEM, "%s: %s: out of memory", peer, rq->what);
                *refused = (struct sd_http_reply) { .status = s.status, .body = body, .len = len };
                return sd_error_set(err, EPROTO, "%s: %s: HTTP %ld", peer, rq->what, s.status);
        }

        size_t tail = sd_line_buffer_pending(&s.lines);
        if (tail > 0) {
                sd_error why = { 0 };
                (void) sd_error_set(&why, EBADMSG, "stream ended inside a line (%zu bytes)", tail);
                r = handler->line(handler->userdata, NULL, tail, &why, err);
                if (r < 0)
                        return r;
        }
        /* The peers' streams never end by themselves: a clean end, a
         * missing last chunk (PARTIAL_FILE) or a reset all mean the peer
         * went away. */
        return sd_error_set(err, ECONNRESET, "%s: %s: stream ended (%s)", peer, rq->what,
                            rc == CURLE_OK ? "closed by the peer" : (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
}
