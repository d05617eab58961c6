/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * dockerd with --userns-remap runs containers in a user namespace whose
 * root is a host id from /etc/subuid (design.md: from 100000).  A file the
 * agent chowns to uid 1000 on the host would show inside as "nobody" and be
 * unreadable with mode 0400, so the agent chowns to the host id that the
 * container sees as 1000 instead.
 *
 * Whether dockerd remaps only changes with a dockerd restart, so it is
 * asked (GET /info) once when the events stream connects and again after
 * each reconnect (userns_refresh() from events.c), not at every Mount.  A
 * Mount before any answer (dockerd calls Mount before the agent's events
 * stream is up) asks itself, once for all Mounts waiting.
 */

#include <stdint.h>
#include <sys/types.h>

#include "secretd/error.h"

/* The remap user dockerd creates for --userns-remap=default. */
#define USERNS_REMAP_USER "dockremap"

struct userns;

/* docker_socket NULL: dockerd is never asked and ids are never mapped.
 * The string is copied. */
int userns_new(const char *docker_socket, struct userns **out, sd_error *err);
void userns_free(struct userns *u);

/* Ask dockerd now and keep the answer (with the dockremap ranges of
 * /etc/subuid and /etc/subgid when it remaps).  0; or the failure in
 * *warning_out, and the next userns_host_ids() asks again. */
int userns_refresh(struct userns *u, sd_error *warning_out);

/* Host owner for a volume's uid/gid.  If dockerd's answer is not known
 * yet it is asked first; if it cannot be asked the ids stay as they are
 * and *warning_out says so (a file owned by an unmapped id is unreadable
 * inside: the failure is closed).  -ERANGE if the id is outside the remap
 * range, -ENOENT if there is no dockremap range. */
int userns_host_ids(struct userns *u, uint32_t uid, uint32_t gid, uid_t *uid_out, gid_t *gid_out,
                    sd_error *warning_out, sd_error *err);

/* First range of user in a subuid/subgid file: 0, -ENOENT, or -errno. */
int userns_subid_range(const char *path, const char *user, uint64_t *start_out, uint64_t *count_out,
                       sd_error *err);
