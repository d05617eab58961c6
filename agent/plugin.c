/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Docker volume plugin protocol over HTTP on a unix socket
 * (protocols.md section 1), served by libmicrohttpd (section 4).
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "fileio.h"
#include "log.h"

#define PLUGIN_CONTENT_TYPE "application/vnd.docker.plugins.v1+json"

/* dockerd waits up to 2 minutes for Create and Mount; an idle keep-alive
 * connection is dropped well before anything piles up. */
#define CONNECTION_TIMEOUT_S 150
/* dockerd opens one connection per call and a `docker compose up` of many
 * services calls in parallel; each connection is a thread with its own
 * stack, so the cap stays well below RLIMIT_NOFILE (1024) and keeps memory
 * bounded.  tests/integration/test-sockets.sh holds 200 at once. */
#define CONNECTION_LIMIT 256
#define CONNECTION_MEMORY 65536

struct plugin_server {
        struct MHD_Daemon *mhd;
        struct agent *agent;
        char *socket_path;
};

/* ---- routing ---- */

typedef json_t *(*endpoint_fn)(struct agent *a, const char *body, size_t len, unsigned *status);

static json_t *bad_request(const sd_error *err, unsigned *status) {
        *status = MHD_HTTP_BAD_REQUEST;
        log_warn("bad request: %s", err->message);
        return plugin_error_reply(err->message);
}

static json_t *on_activate(struct agent *a, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        log_info("activated by dockerd");
        return json_pack("{s:[s]}", "Implements", "VolumeDriver");
}

static json_t *on_capabilities(struct agent *a, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        return json_pack("{s:{s:s}}", "Capabilities", "Scope", "local");
}

static json_t *on_list(struct agent *a, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        if (plugin_parse_empty_request(body, len, &err) < 0)
                return bad_request(&err, status);
        return agent_volume_list(a);
}

static json_t *on_create(struct agent *a, const char *body, size_t len, unsigned *status) {
        sd_error err = { 0 };
        _cleanup_free_ struct plugin_create_request *req = malloc(sizeof(*req));
        if (!req)
                return NULL;
        if (plugin_parse_create_request(body, len, &a->limits, req, &err) < 0)
                return bad_request(&err, status);
        return agent_volume_create(a, req);
}

#define NAME_ENDPOINT(fn, op)                                                                 \
        static json_t *fn(struct agent *a, const char *body, size_t len, unsigned *status) { \
                sd_error err = { 0 };                                                         \
                struct plugin_name_request req;                                               \
                if (plugin_parse_name_request(body, len, &req, &err) < 0)                     \
                        return bad_request(&err, status);                                     \
                return op(a, &req);                                                           \
        }
#define MOUNT_ENDPOINT(fn, op)                                                                \
        static json_t *fn(struct agent *a, const char *body, size_t len, unsigned *status) { \
                sd_error err = { 0 };                                                         \
                struct plugin_mount_request req;                                              \
                if (plugin_parse_mount_request(body, len, &req, &err) < 0)                    \
                        return bad_request(&err, status);                                     \
                return op(a, &req);                                                           \
        }

NAME_ENDPOINT(on_remove, agent_volume_remove)
NAME_ENDPOINT(on_get, agent_volume_get)
NAME_ENDPOINT(on_path, agent_volume_path)
MOUNT_ENDPOINT(on_mount, agent_volume_mount)
MOUNT_ENDPOINT(on_unmount, agent_volume_unmount)

static const struct endpoint {
        const char *path;
        endpoint_fn fn;
} endpoints[] = {
        { "/Plugin.Activate", on_activate },
        { "/VolumeDriver.Capabilities", on_capabilities },
        { "/VolumeDriver.Create", on_create },
        { "/VolumeDriver.Remove", on_remove },
        { "/VolumeDriver.Mount", on_mount },
        { "/VolumeDriver.Unmount", on_unmount },
        { "/VolumeDriver.Get", on_get },
        { "/VolumeDriver.List", on_list },
        { "/VolumeDriver.Path", on_path },
};

json_t *plugin_dispatch(struct agent *a, const char *path, const char *body, size_t len,
                        unsigned *status) {
        *status = MHD_HTTP_OK;
        for (size_t i = 0; i < SD_ARRAY_SIZE(endpoints); i++)
                if (strcmp(endpoints[i].path, path) == 0) {
                        log_debug("request %s", path);
                        json_t *reply = endpoints[i].fn(a, body, len, status);
                        /* With a 200, dockerd shows a bare Err; with any
                         * other status it says "VolumeDriver.Create: Err",
                         * which tells the user who is speaking. */
                        const char *e = json_string_value(json_object_get(reply, "Err"));
                        if (*status == MHD_HTTP_OK && e && e[0])
                                *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                        return reply;
                }
        char shown[64], msg[128];
        sd_escape_for_message(path, strlen(path), shown, sizeof(shown));
        (void) snprintf(msg, sizeof(msg), "unknown endpoint '%s'", shown);
        log_warn("%s", msg);
        *status = MHD_HTTP_NOT_FOUND;
        return plugin_error_reply(msg);
}

/* ---- HTTP ---- */

struct request_state {
        char *body;
        size_t len;
        bool too_large;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *obj) {
        _cleanup_json_ json_t *owned = obj;
        _cleanup_free_ char *text = NULL;
        if (owned)
                text = json_dumps(owned, JSON_COMPACT);
        if (!text) {
                /* Out of memory: still a JSON body dockerd can decode. */
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                text = strdup("{\"Err\":\"secretd: out of memory\"}");
                if (!text)
                        return MHD_NO;
        }
        size_t len = strlen(text);
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, PLUGIN_CONTENT_TYPE);
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *message) {
        return reply(c, status, plugin_error_reply(message));
}

/* Only root may talk to the agent: the socket is 0600 already, but a
 * socket passed around or a loosened mode must not turn into a way for
 * anyone to mount secrets. */
int agent_peer_uid(struct MHD_Connection *c, uid_t *uid_out) {
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct plugin_server *s = cls;
        struct request_state *st = *con_cls;

        if (!st) {
                uid_t uid = (uid_t) -1;
                if (agent_peer_uid(c, &uid) < 0 || uid != 0) {
                        log_warn("refused a request for %s from uid %d: only root may use the plugin socket",
                                 url, (int) uid);
                        return reply_error(c, MHD_HTTP_FORBIDDEN, "permission denied: the secretd plugin socket serves only root");
                }
                if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
                        log_warn("refused %s %s: the plugin protocol uses POST", method, url);
                        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use POST");
                }
                const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (length) {
                        size_t digits = strspn(length, "0123456789");
                        if (digits > 9 || (digits > 0 && strtoull(length, NULL, 10) > PLUGIN_BODY_MAX)) {
                                log_warn("refused %s: body of %s bytes is over the limit", url, length);
                                return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body is too large");
                        }
                }
                st = calloc(1, sizeof(*st));
                if (!st)
                        return MHD_NO;
                *con_cls = st;
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (st->too_large || n > PLUGIN_BODY_MAX - st->len) {
                        /* Chunked bodies carry no length: drain, answer at the end. */
                        st->too_large = true;
                        return MHD_YES;
                }
                char *bigger = realloc(st->body, st->len + n + 1);
                if (!bigger)
                        return MHD_NO;
                memcpy(bigger + st->len, upload_data, n);
                st->body = bigger;
                st->len += n;
                st->body[st->len] = '\0';
                return MHD_YES;
        }

        if (st->too_large) {
                log_warn("refused %s: body over %zu bytes", url, PLUGIN_BODY_MAX);
                return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body is too large");
        }
        unsigned status = MHD_HTTP_OK;
        json_t *obj = plugin_dispatch(s->agent, url, st->body ? st->body : "", st->len, &status);
        return reply(c, status, obj);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        struct request_state *st = *con_cls;
        if (st) {
                free(st->body);
                free(st);
                *con_cls = NULL;
        }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) SD_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char line[512];
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        log_debug("libmicrohttpd: %s", line);
}

int plugin_socket_listen(const char *plugin_dir, const char *driver, char **path_out, sd_error *err) {
        int r = sd_mkdir_p(plugin_dir, 0755);
        if (r < 0)
                return sd_error_set_errno(err, -r, "plugin directory %s: cannot create", plugin_dir);

        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s.sock", plugin_dir, driver) < 0) {
                path = NULL;
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        int fd = agent_socket_listen(path, err);
        if (fd < 0)
                return fd;
        *path_out = steal_pointer(&path);
        return fd;
}

int agent_socket_listen(const char *path, sd_error *err) {
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
        if (chmod(path, 0600) < 0 || listen(fd, CONNECTION_LIMIT) < 0) {
                int e = errno;
                (void) unlink(path);
                return sd_error_set_errno(err, e, "%s: cannot listen", path);
        }
        return steal_fd(&fd);
}

int plugin_server_start(struct agent *a, int listen_fd, const char *socket_path,
                        struct plugin_server **out, sd_error *err) {
        _cleanup_close_ int fd = listen_fd;
        _cleanup_free_ struct plugin_server *s = calloc(1, sizeof(*s));
        if (!s)
                return sd_error_set(err, ENOMEM, "out of memory");
        s->agent = a;
        s->socket_path = strdup(socket_path);
        if (!s->socket_path)
                return sd_error_set(err, ENOMEM, "out of memory");

        /* One thread per connection: a Mount waiting on a slow store must
         * not hold up Get, which dockerd calls around every container
         * start. */
        s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
                                          MHD_USE_ERROR_LOG,
                                  0, NULL, NULL, on_request, s,
                                  /* First, or MHD logs the options before it its own way. */
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                  MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT,
                                  (unsigned int) (a->connection_timeout ? a->connection_timeout : CONNECTION_TIMEOUT_S),
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) CONNECTION_LIMIT,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                  MHD_OPTION_END);
        if (!s->mhd) {
                free(s->socket_path);
                return sd_error_set(err, EIO, "%s: libmicrohttpd failed to start", socket_path);
        }
        fd = -1;  /* MHD closes it in MHD_stop_daemon */
        *out = steal_pointer(&s);
        return 0;
}

void agent_socket_server_stop(struct MHD_Daemon *mhd, char *socket_path) {
        /* Unlink first: dockerd must not find a socket nobody answers
         * (`docker volume ls` would stall on it for ~15 s). */
        if (unlink(socket_path) < 0 && errno != ENOENT)
                log_warn("cannot remove %s: %s", socket_path, strerror(errno));
        MHD_stop_daemon(mhd);
        free(socket_path);
}

void plugin_server_stop(struct plugin_server *s) {
        if (!s)
                return;
        agent_socket_server_stop(s->mhd, s->socket_path);
        free(s);
}
