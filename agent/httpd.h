/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The HTTP skeleton under the plugin socket (driver.h) and the admin
 * socket (admin.h), on libmicrohttpd (protocols.md section 4): a unix
 * socket bound 0600 from the start, a peer check on every connection
 * (SO_PEERCRED: only uid 0), the method and body-size checks, the body
 * collected, then one call of the server's handler.  The handler gets a
 * whole request and fills a reply; it never sees MHD.
 *
 * The listening socket is any listening fd: httpd_listen() binds one, and
 * a socket passed by systemd (socket activation) is served the same way.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "secretd/error.h"

struct httpd_request {
        const char *method;
        const char *url;
        const char *body;                 /* NUL-terminated ("" when empty) */
        size_t len;
};

struct httpd_reply {
        unsigned status;                  /* 200 if left 0 */
        const char *content_type;
        char *body;                       /* malloc()ed, taken over; NULL: out of memory */
        const char *allow;                /* Allow header, or NULL */
};

typedef void (*httpd_handler_fn)(void *userdata, const struct httpd_request *req, struct httpd_reply *reply);
/* The body of an error the skeleton answers itself (403, 405, 413):
 * malloc()ed, NULL on out of memory. */
typedef char *(*httpd_error_body_fn)(const char *message);

struct httpd_options {
        const char *what;                 /* "plugin", "admin": in messages and log lines */
        /* Serve any local peer, with no SO_PEERCRED check: only for the
         * loopback TCP listener of /metrics (metrics-listen), which has no
         * peer credentials and serves nothing secret. */
        bool any_local_peer;
        httpd_handler_fn handler;
        void *userdata;
        httpd_error_body_fn error_body;
        const char *error_content_type;
        /* The one method served, checked before a body is read (405 with
         * "use METHOD"); NULL: the handler decides. */
        const char *method;
        /* Largest body (413 above, with a Content-Length at once, chunked
         * once drained); 0: bodies are drained and ignored. */
        size_t max_body;
        /* Handlers that block (the store, tmpfs) need a thread per
         * connection, or a slow Mount holds up every other request;
         * handlers that answer from memory share one polling thread. */
        bool thread_per_connection;
        unsigned connection_limit;
        unsigned connection_timeout;      /* seconds */
        size_t connection_memory;
};

struct httpd;

/* Bind a unix socket at path (its directory must exist), mode 0600 from
 * the start, and listen; a stale socket nobody answers on is replaced, a
 * live one or a non-socket is an error.  Returns the listening fd. */
int httpd_listen(const char *path, unsigned backlog, sd_error *err);

/* Bind a TCP socket to addr (a loopback address: sd_config_loopback_address)
 * and listen.  Returns the listening fd. */
int httpd_listen_tcp(const struct sockaddr *addr, socklen_t len, const char *shown, unsigned backlog,
                     sd_error *err);

/* Serve on listen_fd (taken over, closed by httpd_stop).  socket_path (may
 * be NULL: nothing to unlink, e.g. a socket systemd owns) is unlinked by
 * httpd_stop().  The options are copied; their pointers must outlive the
 * server. */
int httpd_start(const struct httpd_options *o, int listen_fd, const char *socket_path, struct httpd **out,
                sd_error *err);

/* Unlink the socket (first: a socket nobody answers stalls its clients),
 * stop serving, free.  NULL is fine. */
void httpd_stop(struct httpd *h);
