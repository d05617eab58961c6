/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Docker volume plugin endpoints (protocols.md section 1) on the plugin
 * socket: requests parsed by request.h, volumes and instances kept by the
 * registry, secrets brought in by delivery, what happened noted by notes.
 * docs/agent.md "Plugin endpoints" has the contract of each.
 *
 * Requests run on libmicrohttpd's threads, one per connection, at once:
 * no endpoint holds a lock across the store or the tmpfs (registry.h), so
 * Mounts run in parallel and an Unmount never waits behind a Mount of
 * another id.
 */

#include <jansson.h>

#include "secretd/error.h"

struct delivery;
struct notes;
struct registry;

struct driver {
        struct registry *registry;
        struct delivery *delivery;
        struct notes *notes;
};

/* Route one request: path such as "/VolumeDriver.Mount", the body, and the
 * HTTP status to answer with.  Returns the reply object (never NULL unless
 * out of memory). */
json_t *driver_dispatch(struct driver *drv, const char *path, const char *body, size_t len, unsigned *status);

/* {"Err": message}. */
json_t *driver_error_reply(const char *message);

/* ---- the plugin socket ---- */

struct httpd;

/* <plugin_dir>/<driver>.sock, where dockerd looks for the plugin.
 * *path_out malloc()ed.  -ENOMEM. */
int driver_socket_path(const char *plugin_dir, const char *driver_name, char **path_out);

/* Create plugin_dir (0755) if missing and listen on
 * <plugin_dir>/<driver>.sock (httpd_listen).  *path_out malloc()ed. */
int driver_socket_listen(const char *plugin_dir, const char *driver_name, char **path_out, sd_error *err);

/* Serve the plugin protocol on listen_fd (taken over).  connection_timeout
 * in seconds, 0: 150.  socket_path is unlinked by httpd_stop(). */
int driver_serve(struct driver *drv, int listen_fd, const char *socket_path, unsigned connection_timeout,
                 struct httpd **out, sd_error *err);
