/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sockets systemd passes (agent/listen.h): sorted by path into the plugin
 * and the admin socket, anything else refused with a message naming it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"

static char dir[64];

static void setup(void) {
        (void) snprintf(dir, sizeof(dir), "/tmp/secretd-listen-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[128];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

/* A unix socket of type bound at dir/name, listening or not. */
static int unix_socket(const char *name, int type, bool listening) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        (void) snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, name);
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &addr, sizeof(addr)), 0, "%s", strerror(errno));
        if (listening)
                cr_assert_eq(listen(fd, 4), 0);
        return fd;
}

static struct agent_sockets expecting(const char *plugin, const char *admin) {
        struct agent_sockets s = { .plugin = { .fd = -1 }, .admin = { .fd = -1 } };
        cr_assert_neq(asprintf(&s.plugin.path, "%s/%s", dir, plugin), -1);
        cr_assert_neq(asprintf(&s.admin.path, "%s/%s", dir, admin), -1);
        return s;
}

static bool fd_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

TestSuite(listen, .init = setup, .fini = teardown);

Test(listen, sorts_by_path_in_any_order) {
        int admin = unix_socket("admin.sock", SOCK_STREAM, true);
        int plugin = unix_socket("plugin.sock", SOCK_STREAM, true);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        const int fds[] = { admin, plugin };
        cr_assert_eq(listen_sockets_adopt(fds, 2, &s, &err), 0, "%s", err.message);
        cr_assert_eq(s.plugin.fd, plugin);
        cr_assert_eq(s.admin.fd, admin);
        cr_assert(s.plugin.from_systemd && s.admin.from_systemd);
        /* systemd's sockets are systemd's to remove. */
        cr_assert_null(agent_socket_unlink_path(&s.plugin));
        agent_sockets_close(&s);
        char path[128];
        (void) snprintf(path, sizeof(path), "%s/plugin.sock", dir);
        cr_assert_eq(access(path, F_OK), 0, "the agent removed a socket systemd owns");
        cr_assert_not(fd_open(plugin));
}

Test(listen, only_the_plugin_socket_is_fine) {
        int plugin = unix_socket("plugin.sock", SOCK_STREAM, true);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        cr_assert_eq(listen_sockets_adopt(&plugin, 1, &s, &err), 0, "%s", err.message);
        cr_assert_eq(s.plugin.fd, plugin);
        cr_assert_eq(s.admin.fd, -1);
        cr_assert_not(s.admin.from_systemd);
        cr_assert_str_eq(agent_socket_unlink_path(&s.admin), s.admin.path);
        agent_sockets_close(&s);
}

Test(listen, the_same_socket_file_by_another_path) {
        /* /var/run -> /run: the unit may name either. */
        char real[96], link[96];
        (void) snprintf(real, sizeof(real), "%s/real", dir);
        (void) snprintf(link, sizeof(link), "%s/link", dir);
        cr_assert_eq(mkdir(real, 0700), 0);
        cr_assert_eq(symlink(real, link), 0);
        int plugin = unix_socket("real/plugin.sock", SOCK_STREAM, true);
        struct agent_sockets s = expecting("link/plugin.sock", "admin.sock");
        sd_error err = { 0 };
        cr_assert_eq(listen_sockets_adopt(&plugin, 1, &s, &err), 0, "%s", err.message);
        cr_assert_eq(s.plugin.fd, plugin);
        agent_sockets_close(&s);
}

Test(listen, refuses_a_path_it_does_not_know) {
        int plugin = unix_socket("plugin.sock", SOCK_STREAM, true);
        int other = unix_socket("other.sock", SOCK_STREAM, true);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        const int fds[] = { plugin, other };
        cr_assert_eq(listen_sockets_adopt(fds, 2, &s, &err), -EINVAL);
        cr_assert(strstr(err.message, "other.sock") && strstr(err.message, "plugin.sock") &&
                          strstr(err.message, "admin.sock"),
                  "%s", err.message);
        cr_assert_not(fd_open(other), "a refused fd was left open");
        agent_sockets_close(&s);
        cr_assert_not(fd_open(plugin));
}

Test(listen, refuses_a_socket_that_does_not_listen) {
        int plugin = unix_socket("plugin.sock", SOCK_STREAM, false);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        cr_assert_eq(listen_sockets_adopt(&plugin, 1, &s, &err), -EINVAL);
        cr_assert(strstr(err.message, "not a listening unix stream socket"), "%s", err.message);
        cr_assert(strstr(err.message, "Accept=no"), "%s", err.message);
        cr_assert_eq(s.plugin.fd, -1);
        agent_sockets_close(&s);
}

Test(listen, refuses_a_datagram_socket) {
        int plugin = unix_socket("plugin.sock", SOCK_DGRAM, false);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        cr_assert_eq(listen_sockets_adopt(&plugin, 1, &s, &err), -EINVAL);
        cr_assert(strstr(err.message, "not a listening unix stream socket"), "%s", err.message);
        agent_sockets_close(&s);
}

Test(listen, refuses_the_same_path_twice) {
        int plugin = unix_socket("plugin.sock", SOCK_STREAM, true);
        int again = dup(plugin);
        struct agent_sockets s = expecting("plugin.sock", "admin.sock");
        sd_error err = { 0 };
        const int fds[] = { plugin, again };
        cr_assert_eq(listen_sockets_adopt(fds, 2, &s, &err), -EINVAL);
        cr_assert(strstr(err.message, "passed twice"), "%s", err.message);
        agent_sockets_close(&s);
}
