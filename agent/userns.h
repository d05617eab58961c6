/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * dockerd with --userns-remap runs containers in a user namespace whose
 * root is a host id from /etc/subuid (design.md: from 100000).  A file the
 * agent chowns to uid 1000 on the host would show inside as "nobody" and be
 * unreadable with mode 0400, so the agent chowns to the host id that the
 * container sees as 1000 instead.
 */

#include <stdint.h>
#include <sys/types.h>

#include "secretd/error.h"

/* The remap user dockerd creates for --userns-remap=default. */
#define USERNS_REMAP_USER "dockremap"

struct agent;

/* Host owner for a volume's uid/gid.  Asks dockerd (GET /info on the
 * agent's docker socket) whether it remaps; if so maps through the first
 * /etc/subuid and /etc/subgid range of dockremap (-ERANGE if the id is
 * outside it, -ENOENT if there is no such range).  If dockerd cannot be
 * asked the ids stay as they are and *warning_out says so (a file owned
 * by an unmapped id is unreadable inside: the failure is closed). */
int userns_host_ids(const struct agent *a, uint32_t uid, uint32_t gid, uid_t *uid_out, gid_t *gid_out,
                    sd_error *warning_out, sd_error *err);

/* First range of user in a subuid/subgid file: 0, -ENOENT, or -errno. */
int userns_subid_range(const char *path, const char *user, uint64_t *start_out, uint64_t *count_out,
                       sd_error *err);
