/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * docker-compose files: moving a project's secret environment variables
 * into secretd (`secretctl compose migrate`, docs/migrating.md).
 *
 * sd_compose_plan() reads a compose file (format 2.x or 3.x, as
 * docker-compose 1.29 does, with libyaml), its services' `environment:`
 * (map and list forms) and `env_file:` files, and ${VAR} interpolation from
 * the project's .env; picks the secret-looking variables
 * (sd_migrate_name_looks_secret(), plus and minus the caller's lists); and
 * returns, without writing anything:
 *   - the secrets to put: each variable's name in lower case, its value
 *     (locked memory), where it came from;
 *   - the new files, meant to be written beside the originals, which stay
 *     untouched: the compose file, where each such variable NAME becomes
 *     NAME_FILE=/run/secrets/name and each service concerned mounts a
 *     secretd volume at /run/secrets whose `secrets` option lists its
 *     secrets (uid and mode from the options or the service's `user:`);
 *     and each env_file that set one, without those lines;
 *   - a unified diff from the originals (values shown as <redacted>) to the
 *     new files.
 * The edits are made in the text at the places libyaml reports, so the
 * rest of each file (comments, order, quoting) stays as it was.
 *
 * Refused with a message naming the file, line and column (never a value):
 * malformed YAML, anchors and aliases, tags other than !!str, duplicate
 * keys, more than one document, a file without `services:`; a secret value
 * that is empty, a reference (${...}) in .env or an env_file, an unquoted
 * YAML number or boolean compose would convert, or unset; one secret name
 * with two different values; a service that already sets NAME_FILE, mounts
 * something at /run/secrets or uses compose `secrets:`; a secret value that
 * would still appear in a new file or the diff.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "secretd/cleanup.h"
#include "secretd/dotenv.h"
#include "secretd/error.h"
#include "secretd/names.h"
#include "secretd/secret.h"

/* The largest compose or env file read (held in locked memory). */
#define SD_COMPOSE_FILE_MAX ((size_t) 1 << 20)

struct sd_compose_options {
        const char *compose_name;       /* the compose file, as messages and the diff name it */
        const char *output_name;        /* the new compose file: a file name beside it */
        int dirfd;                      /* the directory of both; env_file paths are relative to it */
        const struct sd_dotenv *dotenv; /* the project's .env for ${VAR} (NULL: none) */
        const char *dotenv_name;        /* its name in messages */
        const char *const *vars;        /* also migrate these variables (--var) */
        size_t n_vars;
        const char *const *skip;        /* never these (--skip) */
        size_t n_skip;
        const char *uid;                /* owner of the files for every service (NULL: from user:, else 0) */
        const char *mode;               /* their mode (NULL: 0400) */
        const char *driver;             /* the volume driver (NULL: "secretd") */
};

struct sd_compose_secret {
        char name[SD_NAME_MAX + 1];     /* the secret */
        char *variable;                 /* the variable it comes from */
        char *origin;                   /* "service 'app', docker-compose.yml:7" (the first, if several) */
        struct sd_secret *value;
};

struct sd_compose_file {
        char *name;                     /* relative to dirfd; never an existing file's name */
        char *original_name;            /* the file it replaces */
        char *text;                     /* the new content (no secret values) */
        size_t len;
        mode_t mode;                    /* the original's permission bits */
};

struct sd_compose_plan {
        struct sd_compose_secret *secrets;
        size_t n_secrets;
        struct sd_compose_file *files;  /* files[0] is the compose file, then env files */
        size_t n_files;
        char *diff;                     /* unified diff of every file, NUL-terminated */
        size_t diff_len;
        char **warnings;                /* one line each (no values) */
        size_t n_warnings;
};

/* Plan the migration of the compose file text[0..len) (keep it in locked
 * memory: it may hold values).  A project with no secret-looking variable is
 * -ENOENT ("nothing to migrate"). */
int sd_compose_plan(const void *text, size_t len, const struct sd_compose_options *opts,
                    struct sd_compose_plan **out, sd_error *err);

void sd_compose_plan_free(struct sd_compose_plan *plan);
static inline void sd_compose_plan_freep(struct sd_compose_plan **plan) {
        sd_compose_plan_free(*plan);
        *plan = NULL;
}
#define _cleanup_compose_plan_ _cleanup_(sd_compose_plan_freep)

/* The name of the file that replaces `name` beside it: "docker-compose.yml"
 * -> "docker-compose.secretd.yml", "app.env" -> "app.secretd.env", ".env" ->
 * ".env.secretd"; the directory part is kept.  malloc()ed; NULL on ENOMEM. */
char *sd_compose_new_name(const char *name);
