/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal file helpers: fd-relative, no symlinks followed, stage-then-publish. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

/* Staging files start with this prefix; readers skip (and may report) them. */
#define SD_TEMP_PREFIX ".tmp-"

enum {
        SD_WRITE_REPLACE = 1 << 0,   /* replace an existing name (else -EEXIST) */
        SD_WRITE_NO_SYNC = 1 << 1,   /* skip fsync (tmpfs targets) */
};

/* A growing buffer with a hard cap: the one place that accumulates bytes
 * from a peer (an HTTP reply, a file) without trusting their count.  data
 * is always NUL-terminated once anything was added (or reserved). */
struct sd_buf {
        char *data;
        size_t len, cap;
        size_t max;          /* most bytes it may hold (0: none) */
};

/* Append n bytes.  -EFBIG if len would pass max (nothing appended),
 * -ENOMEM. */
int sd_buf_append(struct sd_buf *b, const void *data, size_t n);

/* Make room for `want` bytes in total (capped at max) without adding any. */
int sd_buf_reserve(struct sd_buf *b, size_t want);

/* Read fd up to EOF into b, retrying after EINTR.  -EFBIG once more than
 * max bytes arrive, -errno of read(), -ENOMEM. */
int sd_buf_read_fd(struct sd_buf *b, int fd);

/* Hand the data out (malloc()ed, NUL-terminated, "" when empty) and reset
 * b.  NULL when out of memory. */
char *sd_buf_steal(struct sd_buf *b);

void sd_buf_done(struct sd_buf *b);
#define _cleanup_buf_ _cleanup_(sd_buf_done)

/* Write all of data to fd, retrying after EINTR and short writes; -errno on
 * failure. */
int sd_write_all(int fd, const void *data, size_t len);

/* Write data as dirfd/name with the given mode: stage in an O_EXCL temp file
 * in the same directory, fchmod, fsync, then publish with one rename
 * (RENAME_NOREPLACE unless SD_WRITE_REPLACE) and fsync the directory.  A
 * crash leaves either the old state or the new, plus at most a temp file. */
int sd_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     int flags, sd_error *err);

/* Read dirfd/name (a regular file, not a symlink) of at most max bytes into a
 * malloc()ed NUL-terminated buffer.  -ELOOP for a symlink, -EFBIG if larger. */
int sd_read_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len_out,
                    sd_error *err);

/* sd_read_file_at() for an fd already open (sd_trust_root_open()'s): the
 * whole regular file, at most max bytes; name is for messages.  The fd stays
 * open. */
int sd_read_fd(int fd, const char *name, size_t max, char **out, size_t *len_out, sd_error *err);

/* Open (optionally creating with mode) the directory dirfd/name without
 * following a symlink.  Returns the fd or a negative errno. */
int sd_open_dir_at(int dirfd, const char *name, bool create, mode_t mode);

/* mkdir -p for an absolute or relative path; the last component too. */
int sd_mkdir_p(const char *path, mode_t mode);

/* Split path into an opened parent directory fd (created with parent_mode if
 * create) and a pointer to its last component inside path. */
int sd_open_parent(const char *path, bool create, mode_t parent_mode, const char **base_out,
                   sd_error *err);
