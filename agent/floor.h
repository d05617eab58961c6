/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The rollback floor: per secret name, the highest version ever delivered
 * on this host.  A version below it is a rollback and is refused.  It is a
 * JSON object {"name": version, ...} in floor-file (default
 * /var/lib/secretd/delivered.json: it must outlive /run), written
 * stage-then-publish with fsync, keys sorted.
 *
 * Size: names are at most 128 characters and versions at most 20 digits,
 * so an entry takes at most 152 bytes; FLOOR_FILE_MAX leaves room for
 * 100,000 secrets twice over.  A raise that would pass it is refused (the
 * file is not written), never truncated.
 *
 * Fails closed.  A floor file that cannot be vouched for (unreadable, not
 * JSON of that shape, larger than FLOOR_FILE_MAX, a symbolic link or not a
 * regular file, not owned by the agent's user, writable by group or
 * others) makes the floor *broken*: every decision then refuses, with one
 * message that names the path, the reason and the fix, and the file is
 * never written (so never emptied or overwritten).  The agent keeps
 * running so that Unmount and the events thread still wipe (docs/agent.md
 * "Rollback floor" says why it does not refuse to start).  A missing file
 * is an empty floor (a new host).
 *
 * Not locked: the registry serialises every call (registry.h).
 */

#include <stddef.h>
#include <stdint.h>

#include "secretd/error.h"

#define FLOOR_FILE_MAX ((size_t) 32 << 20)

struct floor_entry;

struct floor {
        int dirfd;                         /* the file's directory */
        char *name;                        /* the file's last component */
        char *path;                        /* as shown in messages */
        int broken;                        /* 0, or -errno: why it cannot be vouched for */
        char why[SD_ERROR_MESSAGE_MAX];    /* when broken: "rollback floor PATH: REASON; FIX" */
        struct floor_entry **entries;      /* sorted by name */
        size_t n_entries;
        size_t file_bytes;                 /* size of the file as written from entries */
};

/* Load the floor from floor_file (absolute path), or from
 * <state_dir>/delivered.json when floor_file is NULL or names that same
 * file.  floor_file's directory is created 0700 if missing and must be
 * owned by this user and not writable by group or others (else -EPERM:
 * the agent does not start).  A delivered.json left in the state directory
 * by an older agent is merged into floor_file.  A file that cannot be
 * vouched for does not fail this call: the floor is broken (above) and
 * the reason is logged once, here. */
int floor_open(struct floor *f, const char *floor_file, int state_fd, const char *state_dir, sd_error *err);
void floor_close(struct floor *f);

/* The floor of one secret (0: never delivered, or broken). */
uint64_t floor_get(const struct floor *f, const char *secret);

/* The one rule for a version the store offers, at Create, Mount and
 * rotation.  seen is floor_get() from before the envelope was fetched.
 *   0             deliverable;
 *   -EUCLEAN      the floor is broken (err: f->why);
 *   -ESTALE       version < seen: the store went back (a rollback);
 *   -EAGAIN       seen <= version < the floor now: another Mount or
 *                 rotation delivered a newer version meanwhile; fetch
 *                 again.
 * err names the secret ("secret 'x': the store offers version 1 but ..."). */
int floor_decide(const struct floor *f, const char *secret, uint64_t version, uint64_t seen, sd_error *err);

/* Raise the floor of secrets[i] to versions[i] (never lowers it) and write
 * the file if anything rose.  -EUCLEAN broken; -EFBIG the file would pass
 * FLOOR_FILE_MAX; a write error.  On failure nothing changes. */
int floor_raise(struct floor *f, const char *const secrets[], const uint64_t versions[], size_t n, sd_error *err);
