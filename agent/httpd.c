/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libmicrohttpd skeleton of the plugin and admin sockets (httpd.h). */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"
#include "secretd/cleanup.h"

struct httpd {
        struct httpd_options o;
        struct MHD_Daemon *mhd;
        char *socket_path;
};

/* One request in progress: its body so far. */
struct request_state {
        char *body;
        size_t len;
        bool too_large;
};

static enum MHD_Result send_reply(struct MHD_Connection *c, struct httpd_reply *reply) {
        _cleanup_free_ char *body = reply->body;
        unsigned status = reply->status ? reply->status : MHD_HTTP_OK;
        const char *content_type = reply->content_type;
        if (!body) {
                /* Out of memory: still a JSON body a client can decode. */
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                content_type = "application/json";
                body = strdup("{\"Err\":\"secretd: out of memory\",\"error\":\"secretd: out of memory\"}\n");
                if (!body)
                        return MHD_NO;
        }
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        if (content_type)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        if (reply->allow)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result send_error(const struct httpd *h, struct MHD_Connection *c, unsigned status,
                                  const char *message, const char *allow) {
        struct httpd_reply reply = {
                .status = status,
                .content_type = h->o.error_content_type,
                .body = h->o.error_body(message),
                .allow = allow,
        };
        return send_reply(c, &reply);
}

/* The uid of the peer of a connection on a unix socket (SO_PEERCRED). */
static int peer_uid(struct MHD_Connection *c, uid_t *uid_out) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return -EBADF;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        *uid_out = cred.uid;
        return 0;
}

/* Headers are in: who asks, how, and how much. */
static enum MHD_Result on_headers(struct httpd *h, struct MHD_Connection *c, const char *url, const char *method,
                                  void **con_cls) {
        /* Only root may talk to the agent: the socket is 0600 already, but
         * a socket passed around or a loosened mode must not turn into a
         * way for anyone to mount secrets or read the inventory. */
        uid_t uid = (uid_t) -1;
        if (!h->o.any_local_peer && (peer_uid(c, &uid) < 0 || uid != 0)) {
                char message[96];
                log_warn("refused a request for %s from uid %d: only root may use the %s socket", url, (int) uid,
                         h->o.what);
                (void) snprintf(message, sizeof(message), "permission denied: the secretd %s socket serves only root",
                                h->o.what);
                return send_error(h, c, MHD_HTTP_FORBIDDEN, message, NULL);
        }
        if (h->o.method && strcmp(method, h->o.method) != 0) {
                char message[64];
                log_warn("refused %s %s: the %s protocol uses %s", method, url, h->o.what, h->o.method);
                (void) snprintf(message, sizeof(message), "method not allowed: use %s", h->o.method);
                return send_error(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, message, h->o.method);
        }
        const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && h->o.max_body > 0) {
                size_t digits = strspn(length, "0123456789");
                if (digits > 9 || (digits > 0 && strtoull(length, NULL, 10) > h->o.max_body)) {
                        log_warn("refused %s: body of %s bytes is over the limit", url, length);
                        return send_error(h, c, MHD_HTTP_CONTENT_TOO_LARGE, "request body is too large", NULL);
                }
        }
        struct request_state *st = calloc(1, sizeof(*st));
        if (!st)
                return MHD_NO;
        *con_cls = st;
        return MHD_YES;
}

static enum MHD_Result on_body(struct httpd *h, struct request_state *st, const char *data, size_t n) {
        if (h->o.max_body == 0)
                return MHD_YES;
        if (st->too_large || n > h->o.max_body - st->len) {
                /* Chunked bodies carry no length: drain, answer at the end. */
                st->too_large = true;
                return MHD_YES;
        }
        char *bigger = realloc(st->body, st->len + n + 1);
        if (!bigger)
                return MHD_NO;
        memcpy(bigger + st->len, data, n);
        st->body = bigger;
        st->len += n;
        st->body[st->len] = '\0';
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct httpd *h = cls;
        struct request_state *st = *con_cls;
        (void) version;
        if (!st)
                return on_headers(h, c, url, method, con_cls);
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                return on_body(h, st, upload_data, n);
        }
        if (st->too_large) {
                log_warn("refused %s: body over %zu bytes", url, h->o.max_body);
                return send_error(h, c, MHD_HTTP_CONTENT_TOO_LARGE, "request body is too large", NULL);
        }
        const struct httpd_request req = {
                .method = method, .url = url, .body = st->body ? st->body : "", .len = st->len,
        };
        struct httpd_reply reply = { 0 };
        h->o.handler(h->o.userdata, &req, &reply);
        return send_reply(c, &reply);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        struct request_state *st = *con_cls;
        (void) cls;
        (void) c;
        (void) toe;
        if (st) {
                free(st->body);
                free(st);
                *con_cls = NULL;
        }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) SD_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        const struct httpd *h = cls;
        char line[512];
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        log_debug("%s: libmicrohttpd: %s", h->o.what, line);
}

int httpd_listen(const char *path, unsigned backlog, sd_error *err) {
        int r;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(addr.sun_path))
                return sd_error_set(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                                    sizeof(addr.sun_path) - 1);
        memcpy(addr.sun_path, path, strlen(path) + 1);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "cannot create a unix socket");

        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return sd_error_set(err, EEXIST, "%s exists and is not a socket; refusing to replace it", path);
                /* A socket someone still answers on belongs to a running
                 * agent: two agents on one driver name would split the
                 * volumes between them. */
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &addr, sizeof(addr)) == 0)
                        return sd_error_set(err, EADDRINUSE, "%s: another process is serving this socket", path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return sd_error_set_errno(err, errno, "%s: cannot remove the stale socket", path);
                log_info("removed stale socket %s", path);
        } else if (errno != ENOENT) {
                return sd_error_set_errno(err, errno, "%s: cannot inspect", path);
        }

        /* The socket must never exist with a looser mode, not even between
         * bind() and chmod(). */
        mode_t old_umask = umask(0177);
        r = bind(fd, (struct sockaddr *) &addr, sizeof(addr));
        int bind_errno = errno;
        (void) umask(old_umask);
        if (r < 0)
                return sd_error_set_errno(err, bind_errno, "%s: cannot bind", path);
        if (chmod(path, 0600) < 0 || listen(fd, (int) backlog) < 0) {
                int e = errno;
                (void) unlink(path);
                return sd_error_set_errno(err, e, "%s: cannot listen", path);
        }
        return steal_fd(&fd);
}

int httpd_listen_tcp(const struct sockaddr *addr, socklen_t len, const char *shown, unsigned backlog,
                     sd_error *err) {
        _cleanup_close_ int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "metrics-listen %s: cannot create a socket", shown);
        /* A restarted agent must not wait out TIME_WAIT of the last scrape. */
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return sd_error_set_errno(err, errno, "metrics-listen %s: SO_REUSEADDR", shown);
        if (bind(fd, addr, len) < 0)
                return sd_error_set_errno(err, errno, "metrics-listen %s: cannot bind", shown);
        if (listen(fd, (int) backlog) < 0)
                return sd_error_set_errno(err, errno, "metrics-listen %s: cannot listen", shown);
        return steal_fd(&fd);
}

int httpd_start(const struct httpd_options *o, int listen_fd, const char *socket_path, struct httpd **out,
                sd_error *err) {
        _cleanup_close_ int fd = listen_fd;
        _cleanup_free_ struct httpd *h = calloc(1, sizeof(*h));
        if (!h)
                return sd_error_set(err, ENOMEM, "out of memory");
        h->o = *o;
        if (socket_path) {
                h->socket_path = strdup(socket_path);
                if (!h->socket_path)
                        return sd_error_set(err, ENOMEM, "out of memory");
        }
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
        if (o->thread_per_connection)
                flags |= MHD_USE_THREAD_PER_CONNECTION;
        h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                                  /* First, or MHD logs the options before it its own way. */
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                  MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT, o->connection_timeout,
                                  MHD_OPTION_CONNECTION_LIMIT, o->connection_limit,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->connection_memory,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                  MHD_OPTION_END);
        if (!h->mhd) {
                free(h->socket_path);
                return sd_error_set(err, EIO, "%s socket %s: libmicrohttpd failed to start", o->what,
                                    socket_path ? socket_path : "(passed in)");
        }
        fd = -1; /* MHD closes it in MHD_stop_daemon */
        *out = steal_pointer(&h);
        return 0;
}

void httpd_stop(struct httpd *h) {
        if (!h)
                return;
        /* Unlink first: dockerd must not find a socket nobody answers
         * (`docker volume ls` would stall on it for ~15 s). */
        if (h->socket_path && unlink(h->socket_path) < 0 && errno != ENOENT)
                log_warn("cannot remove %s: %s", h->socket_path, strerror(errno));
        MHD_stop_daemon(h->mhd);
        free(h->socket_path);
        free(h);
}
