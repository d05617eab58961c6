/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's listening sockets, all opened before the seccomp filter goes
 * on: the plugin socket (<plugin-dir>/<driver>.sock), the admin socket
 * (admin-socket) and, when metrics-listen is set, a loopback TCP socket
 * for GET /metrics (never passed by systemd: it is bound here).
 *
 * Socket activation.  Under secretd.socket, systemd holds both sockets
 * from early boot, before dockerd starts, and passes them with LISTEN_FDS
 * (sd_listen_fds(3)); requests sent before the agent runs wait in the
 * listen queue.  The agent tells them apart by path, so each must be a
 * unix stream socket in the listening state (ListenStream=, Accept=no)
 * bound at exactly the path the configuration names; anything else stops
 * the agent with a message naming both paths.  A socket systemd passed is
 * never unlinked by the agent: systemd owns it and keeps it across agent
 * restarts.  A socket systemd did not pass is bound here (httpd_listen())
 * and unlinked at stop.
 */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/config.h"
#include "secretd/error.h"

struct agent_socket {
        int fd;                   /* listening, O_CLOEXEC; -1 once handed to a server */
        char *path;               /* malloc()ed */
        bool from_systemd;        /* passed by systemd: never unlinked here */
        bool bound_here;          /* bound by httpd_listen(): ours to unlink */
        bool served;              /* handed to a server, whose httpd_stop() unlinks it */
};

struct agent_sockets {
        struct agent_socket plugin, admin;
        int metrics_fd;           /* metrics-listen's loopback TCP socket, or -1 */
};

/* Sort sockets passed by systemd, fds[0..n), into s->plugin and s->admin
 * by the paths already in s->plugin.path and s->admin.path (the same path
 * also counts when it names the same socket file, e.g. through /var/run).
 * Each must be an AF_UNIX SOCK_STREAM socket that listens; -EINVAL
 * otherwise, or for a path that is neither or a socket passed twice, with
 * a message naming the fd, its path and the expected ones.  Adopted fds
 * belong to s; on failure every fd of fds[] not adopted is closed.
 * Separate from sd_listen_fds() so that tests can hand in their own
 * sockets. */
int listen_sockets_adopt(const int *fds, size_t n, struct agent_sockets *s, sd_error *err);

/* Every socket the configuration asks for: those systemd passed (as
 * above), the others bound here (the plugin directory created 0755 and
 * the admin socket's 0700 if missing), and the metrics socket when
 * metrics-listen is set.  On failure nothing is left open or bound. */
int agent_sockets_open(const struct sd_config *cfg, struct agent_sockets *out, sd_error *err);

/* The path httpd_stop() must unlink for this socket: its own path when the
 * agent bound it, NULL for systemd's. */
const char *agent_socket_unlink_path(const struct agent_socket *sock);

/* Close what was not handed to a server, unlink the sockets bound here
 * that no server took over (a start that failed half-way, a server that
 * failed to start), free. */
void agent_sockets_close(struct agent_sockets *s);
