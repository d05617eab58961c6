/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One HTTP transport (libcurl) for every peer secretd talks to: dockerd over
 * its unix socket (src/docker.c), etcd's JSON gateway over TCP or TLS
 * (src/store-etcd.c) and the agent's admin socket (secretctl status).
 *
 * It gives three things, so that no caller writes them again:
 *   - a bounded request: the reply is capped (max_reply), the whole
 *     exchange has a deadline, the connection attempt a shorter one;
 *   - one map from libcurl's failures to negative errno values, with one
 *     message style (below);
 *   - a line stream (dockerd's events, etcd's watch) that ends when a stop
 *     fd becomes readable.
 *
 * The header is public because its users sit on both sides of the library
 * boundary: the CLI's status verb is a front end and includes only
 * include/secretd/ headers.  No libcurl type appears here.
 *
 * Messages: "<peer>: <what>: <reason>" where <peer> is the client's label
 * ("docker at /run/docker.sock", "etcd at 127.0.0.1:2379") and <what> the
 * request's label ("GET /events", "range secrets").  Transport errors:
 *
 *   -ECONNREFUSED  "<peer> is unreachable: <what>: <os reason><hint>": no
 *                  socket, nobody listening, name not resolved   (transient)
 *   -ETIMEDOUT     "<peer> did not answer in time: <what> (N ms)"  (transient)
 *   -ECONNRESET    "<peer>: <what>: connection lost: <reason>"     (transient)
 *   -EACCES        a unix socket this process may not connect to; or a TLS
 *                  server that refused our client certificate, or asked for
 *                  one and got none                                 (final)
 *   -EPROTO        TLS: the server's certificate was not verified (wrong CA,
 *                  name mismatch, expired); or another transfer failure   (final)
 *   -EFBIG         a reply over max_reply bytes                     (final)
 *   -ENOMEM
 * The peer's own HTTP errors (a status the caller did not expect) are the
 * caller's to map: the reply carries status and body.
 *
 * Threads: a client is immutable after sd_http_new(); requests may be made
 * from any number of threads at once.  Each request borrows an easy handle
 * from a small pool (so keep-alive connections are reused across calls) and
 * performs without holding any lock; a stream uses a handle of its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

/* ------------------------------------------------------------------------
 * Line splitter for newline-delimited streams.
 *
 * libcurl hands the de-chunked body over in slices of up to 16 KiB that
 * ignore line boundaries; a line may span many slices and a slice may hold
 * many lines.  sd_line_buffer_feed() takes any slice (even 1 byte) and calls
 * fn once per complete '\n'-terminated line, in order.  Lines wholly inside
 * a slice are passed without copying; only the unfinished tail of a slice is
 * kept (at most max_line bytes).
 *
 * A line longer than max_line is reported once, through fn with line == NULL
 * and `overlong` describing it (code EMSGSIZE), as soon as it crosses the
 * limit; its bytes are dropped until the next '\n', where splitting resumes
 * (resynchronisation).  Memory stays bounded by max_line whatever the peer
 * sends.
 * ---------------------------------------------------------------------- */

/* Default longest line: container events carry every label of the
 * container, so this is generous. */
#define SD_LINE_MAX_DEFAULT ((size_t) 256 * 1024)

struct sd_line_buffer {
        char *data;          /* the unfinished line carried between slices */
        size_t len, cap;
        size_t max_line;     /* longest line accepted, '\n' excluded */
        bool discarding;     /* inside an over-long line: drop until '\n' */
};

/* line/len: one line without its '\n' (not NUL-terminated; valid only during
 * the call).  When overlong is non-NULL, line is NULL and len is the number of
 * bytes seen of that line so far.  Return 0 to go on, or a negative errno to
 * make sd_line_buffer_feed() stop and return it. */
typedef int (*sd_line_fn)(void *userdata, const char *line, size_t len, const sd_error *overlong);

/* max_line 0 means SD_LINE_MAX_DEFAULT.  No allocation happens here. */
void sd_line_buffer_init(struct sd_line_buffer *lb, size_t max_line);

/* Free the carried data; the buffer may be initialised again. */
void sd_line_buffer_done(struct sd_line_buffer *lb);
#define _cleanup_line_buffer_ _cleanup_(sd_line_buffer_done)

/* Split data[0..len) as described above.  Returns 0, -ENOMEM (err filled),
 * or the negative value fn returned (err untouched: fn has its own channel).
 * After an error the buffer is consistent but the rest of the slice is lost. */
int sd_line_buffer_feed(struct sd_line_buffer *lb, const char *data, size_t len, sd_line_fn fn,
                        void *userdata, sd_error *err);

/* Bytes of an unfinished line held (at the end of a stream: a truncated line). */
size_t sd_line_buffer_pending(const struct sd_line_buffer *lb);

/* ------------------------------------------------------------------------
 * Client
 * ---------------------------------------------------------------------- */

/* Bytes of PEM (a CA bundle, a certificate, a private key) handed to
 * libcurl from memory.  The caller owns them and keeps them alive and
 * unchanged for the client's life; a private key belongs in
 * sodium_malloc() memory. */
struct sd_http_pem {
        const void *data;
        size_t len;
};

struct sd_http_options {
        /* "<peer>" in messages, e.g. "etcd at 127.0.0.1:2379" or "docker at
         * /run/docker.sock"; copied. */
        const char *peer;
        /* Appended to an "is unreachable" message, e.g. " (is dockerd
         * running?)"; copied; may be NULL. */
        const char *unreachable_hint;
        /* Connect over this unix socket (URLs then name http://localhost);
         * NULL for TCP.  At most 107 bytes. */
        const char *unix_socket;
        /* Defaults when 0: connect 5000 ms, request 30000 ms. */
        long connect_timeout_ms;
        long request_timeout_ms;
        /* Allow https:// URLs.  Verification of the server's certificate
         * and name is always on.  ca: NULL uses the system's CA store. */
        bool https;
        const struct sd_http_pem *ca;
        const struct sd_http_pem *client_cert;   /* both or neither */
        const struct sd_http_pem *client_key;
        /* Labels of the client certificate for messages (e.g. its path). */
        const char *client_cert_name;
        const char *user_agent;                  /* default "secretd/<version>" */
};

struct sd_http;  /* opaque */

/* A client.  -EINVAL for inconsistent options (a cert without a key, a
 * socket path too long), -ENOMEM.  Free with sd_http_free(). */
int sd_http_new(const struct sd_http_options *o, struct sd_http **out, sd_error *err);
void sd_http_free(struct sd_http *h);
static inline void sd_http_freep(struct sd_http **h) {
        sd_http_free(*h);
        *h = NULL;
}
#define _cleanup_http_ _cleanup_(sd_http_freep)

/* The peer label given to sd_http_new(). */
const char *sd_http_peer(const struct sd_http *h);

struct sd_http_request {
        const char *method;        /* "GET" or "POST" */
        /* The URL is base + path: base "http://127.0.0.1:2379" or
         * "https://…" picks the endpoint for this request (NULL:
         * "http://localhost", for a unix socket). */
        const char *base;
        const char *path;          /* path and query, starting with '/' */
        const char *what;          /* "<what>" in messages, e.g. "GET /events" */
        /* Sent with Content-Type: application/json when body is non-NULL
         * (a POST without body sends an empty one). */
        const char *body;
        size_t body_len;
        /* Authorization header value (etcd's token), or NULL.  Never shown
         * in messages. */
        const char *authorization;
        size_t max_reply;          /* 0: 16 MiB */
        /* Whole request; for a stream, the wait for response headers.  0:
         * the client's request timeout. */
        long timeout_ms;
        /* Another label for the peer in messages of this request (the
         * endpoint used, when a client talks to several); NULL: the
         * client's. */
        const char *peer;
};

struct sd_http_reply {
        long status;
        char *body;                /* malloc()ed, NUL-terminated, never NULL after success */
        size_t len;
};

void sd_http_reply_done(struct sd_http_reply *r);
#define _cleanup_http_reply_ _cleanup_(sd_http_reply_done)

/* One exchange.  0 with *out filled whatever the HTTP status (the caller
 * decides what a status means); a transport error as listed above
 * otherwise, *out untouched. */
int sd_http_request(struct sd_http *h, const struct sd_http_request *rq, struct sd_http_reply *out,
                    sd_error *err);

/* s percent-encoded for a URL query, malloc()ed; NULL when out of memory. */
char *sd_http_escape(const char *s);

/* ------------------------------------------------------------------------
 * Line stream
 *
 * sd_http_stream() blocks: it sends the request, and once a 2xx status and
 * the headers are in, calls opened(), then line() for every line of the
 * body, in order, until the stream ends, fails, a handler returns an error,
 * or stop_fd becomes readable.  The handlers run on the calling thread
 * outside any libcurl callback (bytes are parked and the transfer paused
 * while more than 1 MiB waits), so they may make other requests.
 *
 * stop_fd (an eventfd or pipe, written once and never drained here) is
 * polled next to the socket by curl_multi_poll(): stopping is prompt and
 * needs no signal.  No total timeout applies to the body, which may stay
 * idle for hours; TCP keepalive notices a vanished peer.
 * ---------------------------------------------------------------------- */

struct sd_http_stream_handler {
        /* 2xx and headers in, nothing delivered yet.  May be NULL. */
        int (*opened)(void *userdata, sd_error *err);
        /* One line without its '\n'.  line NULL: a line that is not
         * whole, described by `broken`: over max_line (code EMSGSIZE), or
         * the unfinished tail of a stream that ended (code EBADMSG).
         * Required. */
        int (*line)(void *userdata, const char *line, size_t len, const sd_error *broken, sd_error *err);
        void *userdata;
};

/*
 * Returns
 *   0              stop_fd became readable
 *   -ECONNRESET    the stream was open and then ended or broke: reconnect
 *   -EPROTO        with refused->status non-zero: the peer answered a
 *                  non-2xx status; refused holds it and the start of the
 *                  body (64 KiB), for the caller to map (free it with
 *                  sd_http_reply_done)
 *   a transport error as listed above, or a handler's negative value.
 * max_line 0: SD_LINE_MAX_DEFAULT.
 */
int sd_http_stream(struct sd_http *h, const struct sd_http_request *rq, size_t max_line,
                   const struct sd_http_stream_handler *handler, int stop_fd, struct sd_http_reply *refused,
                   sd_error *err);
