/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin.h"
#include "driver.h"
#include "listen.h"
#include "log.h"

/* The path a unix socket is bound to ("" for an unnamed or abstract one). */
static void socket_path_of(int fd, char *buf, size_t size) {
        struct sockaddr_un addr = { 0 };
        socklen_t len = sizeof(addr);
        buf[0] = '\0';
        if (getsockname(fd, (struct sockaddr *) &addr, &len) < 0 || addr.sun_family != AF_UNIX ||
            len <= offsetof(struct sockaddr_un, sun_path) || addr.sun_path[0] == '\0')
                return;
        size_t n = strnlen(addr.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        if (n >= size)
                n = size - 1;
        memcpy(buf, addr.sun_path, n);
        buf[n] = '\0';
}

/* True when the socket fd listens at path: that very path, or the same
 * socket file reached another way (/var/run is /run). */
static bool socket_is_at(const char *bound, const char *path) {
        if (strcmp(bound, path) == 0)
                return true;
        struct stat a, b;
        return bound[0] && stat(bound, &a) == 0 && stat(path, &b) == 0 && S_ISSOCK(a.st_mode) &&
               a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool listens_unix_stream(int fd) {
#if HAVE_LIBSYSTEMD
        return sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0;
#else
        int type = 0, listening = 0;
        socklen_t len = sizeof(type);
        struct sockaddr_un addr;
        socklen_t alen = sizeof(addr);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return false;
        len = sizeof(listening);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
                return false;
        return getsockname(fd, (struct sockaddr *) &addr, &alen) == 0 && addr.sun_family == AF_UNIX;
#endif
}

int listen_sockets_adopt(const int *fds, size_t n, struct agent_sockets *s, sd_error *err) {
        int r = 0;
        size_t i;
        for (i = 0; i < n; i++) {
                int fd = fds[i];
                char bound[sizeof(((struct sockaddr_un *) 0)->sun_path) + 1];
                if (!listens_unix_stream(fd)) {
                        r = sd_error_set(err, EINVAL,
                                         "socket activation: fd %d is not a listening unix stream socket "
                                         "(secretd.socket needs ListenStream=PATH and Accept=no)",
                                         fd);
                        break;
                }
                socket_path_of(fd, bound, sizeof(bound));
                struct agent_socket *to = socket_is_at(bound, s->plugin.path) ? &s->plugin
                                          : socket_is_at(bound, s->admin.path) ? &s->admin
                                                                                   : NULL;
                if (!to) {
                        r = sd_error_set(err, EINVAL,
                                         "socket activation: fd %d listens on %s, which is neither the plugin "
                                         "socket %s nor the admin socket %s (make secretd.socket's ListenStream= "
                                         "and secretd.conf agree)",
                                         fd, bound[0] ? bound : "an unnamed socket", s->plugin.path, s->admin.path);
                        break;
                }
                if (to->fd >= 0) {
                        r = sd_error_set(err, EINVAL, "socket activation: %s was passed twice (fds %d and %d)",
                                         to->path, to->fd, fd);
                        break;
                }
                to->fd = fd;
                to->from_systemd = true;
        }
        if (r < 0)
                for (; i < n; i++)
                        (void) close(fds[i]);
        return r;
}

static int passed_sockets(struct agent_sockets *s, sd_error *err) {
#if HAVE_LIBSYSTEMD
        /* unset_environment: nothing the agent starts inherits them. */
        int n = sd_listen_fds(1);
        if (n < 0)
                return sd_error_set_errno(err, -n, "socket activation: LISTEN_FDS");
        if (n == 0)
                return 0;
        int fds[16];
        if ((size_t) n > SD_ARRAY_SIZE(fds)) {
                for (int i = 0; i < n; i++)
                        (void) close(SD_LISTEN_FDS_START + i);
                return sd_error_set(err, EINVAL, "socket activation: %d sockets passed, at most 2 expected", n);
        }
        for (int i = 0; i < n; i++)
                fds[i] = SD_LISTEN_FDS_START + i;
        return listen_sockets_adopt(fds, (size_t) n, s, err);
#else
        (void) s;
        (void) err;
        return 0;
#endif
}

int agent_sockets_open(const struct sd_config *cfg, struct agent_sockets *out, sd_error *err) {
        struct agent_sockets s = { .plugin = { .fd = -1 }, .admin = { .fd = -1 }, .metrics_fd = -1 };
        if (driver_socket_path(cfg->plugin_dir, cfg->driver, &s.plugin.path) < 0 ||
            !(s.admin.path = strdup(cfg->admin_socket))) {
                agent_sockets_close(&s);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        int r = passed_sockets(&s, err);
        if (r >= 0 && s.plugin.fd < 0) {
                _cleanup_free_ char *path = NULL;
                r = driver_socket_listen(cfg->plugin_dir, cfg->driver, &path, err);
                if (r >= 0) {
                        s.plugin.fd = r;
                        s.plugin.bound_here = true;
                }
        }
        if (r >= 0 && s.admin.fd < 0) {
                r = admin_socket_listen(cfg->admin_socket, err);
                if (r >= 0) {
                        s.admin.fd = r;
                        s.admin.bound_here = true;
                }
        }
        if (r >= 0 && cfg->metrics_listen[0]) {
                r = admin_metrics_listen(cfg->metrics_listen, err);
                if (r >= 0)
                        s.metrics_fd = r;
        }
        if (r < 0) {
                agent_sockets_close(&s);
                return r;
        }
        if (s.plugin.from_systemd || s.admin.from_systemd)
                log_info("socket activation: systemd passed %s%s%s", s.plugin.from_systemd ? s.plugin.path : "",
                         s.plugin.from_systemd && s.admin.from_systemd ? " and " : "",
                         s.admin.from_systemd ? s.admin.path : "");
        *out = s;
        return 0;
}

const char *agent_socket_unlink_path(const struct agent_socket *sock) {
        return sock->from_systemd ? NULL : sock->path;
}

static void agent_socket_close(struct agent_socket *sock) {
        if (sock->fd >= 0)
                (void) close(sock->fd);
        if (sock->bound_here && !sock->served)
                (void) unlink(sock->path);
        free(sock->path);
        *sock = (struct agent_socket) { .fd = -1 };
}

void agent_sockets_close(struct agent_sockets *s) {
        agent_socket_close(&s->plugin);
        agent_socket_close(&s->admin);
        if (s->metrics_fd >= 0)
                (void) close(s->metrics_fd);
        s->metrics_fd = -1;
}
