/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Files the agent takes as roots of trust: its configuration file, the
 * trusted-writers file, and any file of the same kind added later (a realm
 * pin, say).  Whoever can change such a file decides which signatures the
 * agent accepts, so it must be as hard to change as the agent itself:
 *
 *   - the file is a regular file owned by root (or by the calling process's
 *     effective uid, for an agent run as another user) and not writable by
 *     group or others;
 *   - every directory on the way from / to it is owned by root (or that
 *     euid) and not writable by group or others, unless it has the sticky
 *     bit (/tmp, mode 1777): there only an entry's owner may rename or
 *     remove it, and every entry on the path must be root's anyway;
 *   - a symbolic link on the way is followed only if it is owned by root
 *     (or that euid); its directory has passed already, and its target is
 *     then checked in turn, every directory of it again, up to 40 links.
 *
 * The walk goes down from / one component at a time through directory fds
 * (O_PATH, O_NOFOLLOW), checking each directory it holds before looking into
 * it, so nothing can be swapped between a check and the next step.  Once a
 * path passes, only root (or that euid) can change what it names: a loader
 * may open it again by name.
 *
 * How to add a new root-of-trust file: call sd_trust_root_open() (and read
 * the fd with sd_read_fd() from src/fileio.h) or sd_trust_root_check()
 * before the loader that takes a path, at start-up, and refuse to start on
 * any error but -ENOENT (which the caller decides about: a missing
 * trusted-writers file is allowed, a missing pin may not be).
 */

#include "secretd/error.h"

/* Check path as above and open it O_RDONLY|O_CLOEXEC.  `what` names the
 * file in messages ("config", "trusted-writers").  A relative path is taken
 * from the current directory, whose ancestors are checked too.
 *
 * Returns the fd, or:
 *   -ENOENT   the file (or a directory on the way) does not exist; every
 *             directory above it that does exist has passed
 *   -EPERM    an owner or a mode is wrong; the message names the file or
 *             directory, what is wrong, and the command that fixes it:
 *             "config /etc/secretd/secretd.conf is mode 0666 (group or
 *             others can write it); it is a root of trust: chmod go-w
 *             /etc/secretd/secretd.conf"
 *   -EINVAL   not a regular file (or a directory on the way is not one)
 *   -ELOOP    more than 40 symbolic links
 *   other     a system call failed (-ENOMEM, -EACCES, ...) */
int sd_trust_root_open(const char *path, const char *what, sd_error *err);

/* sd_trust_root_open() and close: for loaders that open the path themselves. */
int sd_trust_root_check(const char *path, const char *what, sd_error *err);
