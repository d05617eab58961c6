/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secretctl compose migrate: a compose project's secret environment
 * variables become secrets (through the put `secretctl put` uses) and a new
 * compose file beside the original reads them from a secretd volume.  The
 * planning is libsecretd's (include/secretd/compose.h); this file reads the
 * files, stores, writes and reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/compose.h"
#include "secretd/dotenv.h"
#include "secretd/migrate.h"
#include "secretctl.h"

struct migrate_options {
        const char *file, *env_file, *output, *uid, *mode, *driver;
        const char **vars, **skip;
        size_t n_vars, n_skip;
        bool dry_run;
};

static void migrate_options_free(struct migrate_options *o) {
        free(o->vars);
        free(o->skip);
}

static int add_name(struct ctl_context *ctx, const char *option, const char *name, const char ***list, size_t *n) {
        if (!sd_dotenv_name_valid(name, strlen(name))) {
                char shown[64];
                sd_escape_for_message(name, strlen(name), shown, sizeof(shown));
                return ctl_usage_error(ctx, "compose", "%s: '%s' is not a variable name", option, shown);
        }
        const char **more = reallocarray(*list, *n + 1, sizeof(*more));
        if (!more)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        more[(*n)++] = name;
        *list = more;
        return 0;
}

static int migrate_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct migrate_options *o = userdata;
        switch (opt) {
        case 'f':
                o->file = arg;
                return 0;
        case 'E':
                o->env_file = arg;
                return 0;
        case 'o':
                o->output = arg;
                return 0;
        case 'v':
                return add_name(ctx, "--var", arg, &o->vars, &o->n_vars);
        case 's':
                return add_name(ctx, "--skip", arg, &o->skip, &o->n_skip);
        case 'u':
                o->uid = arg;
                return 0;
        case 'm':
                o->mode = arg;
                return 0;
        case 'D':
                o->driver = arg;
                return 0;
        case 'n':
                o->dry_run = true;
                return 0;
        default:
                return -EINVAL;
        }
}

static int read_file_at(struct ctl_context *ctx, int dirfd, const char *name, const char *shown, mode_t *mode,
                        struct sd_secret **out) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return sd_error_set_errno(&ctx->err, errno, "%s: cannot open", shown);
        if (!S_ISREG(st.st_mode))
                return sd_error_set(&ctx->err, EINVAL, "%s: not a regular file", shown);
        if (mode)
                *mode = st.st_mode & 07777;
        return sd_secret_read_fd(fd, SD_COMPOSE_FILE_MAX, shown, out, &ctx->err);
}

/* The path of name beside the compose file, as the user would type it. */
static char *beside(const char *compose_path, const char *name) {
        const char *slash = strrchr(compose_path, '/');
        char *out;
        if (!slash)
                return strdup(name);
        return asprintf(&out, "%.*s/%s", (int) (slash - compose_path), compose_path, name) < 0 ? NULL : out;
}

static int cmd_migrate(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "file", required_argument, NULL, 'f' },
                { "env-file", required_argument, NULL, 'E' },
                { "output", required_argument, NULL, 'o' },
                { "var", required_argument, NULL, 'v' },
                { "skip", required_argument, NULL, 's' },
                { "uid", required_argument, NULL, 'u' },
                { "mode", required_argument, NULL, 'm' },
                { "driver", required_argument, NULL, 'D' },
                { "dry-run", no_argument, NULL, 'n' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(migrate_options_free) struct migrate_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_compose, argc, argv, "f:o:", options, migrate_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind < argc)
                return ctl_usage_error(ctx, "compose", "migrate takes no arguments (name the file with -f)");

        const char *path = o.file;
        if (!path)
                path = access("docker-compose.yml", F_OK) == 0 || access("docker-compose.yaml", F_OK) != 0
                               ? "docker-compose.yml"
                               : "docker-compose.yaml";
        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, &ctx->err);
        if (dirfd < 0)
                return dirfd;
        mode_t compose_mode = 0644;
        _cleanup_secret_ struct sd_secret *text = NULL;
        r = read_file_at(ctx, dirfd, base, path, &compose_mode, &text);
        if (r < 0)
                return r;

        /* The project's .env: --env-file (relative to here, as compose takes
         * it), else .env beside the compose file, if there is one. */
        _cleanup_secret_ struct sd_secret *env_text = NULL;
        _cleanup_dotenv_ struct sd_dotenv *dotenv = NULL;
        _cleanup_free_ char *default_env = beside(path, ".env");
        if (!default_env)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        const char *env_name = o.env_file ? o.env_file : default_env;
        r = o.env_file ? read_file_at(ctx, AT_FDCWD, o.env_file, o.env_file, NULL, &env_text)
                       : read_file_at(ctx, dirfd, ".env", default_env, NULL, &env_text);
        if (r == -ENOENT && !o.env_file) {
                sd_error_clear(&ctx->err);
                env_name = NULL;
        } else if (r < 0) {
                return r;
        } else {
                r = sd_dotenv_parse(env_text->data, env_text->len, env_name, &dotenv, &ctx->err);
                if (r < 0)
                        return r;
        }

        _cleanup_free_ char *output = o.output ? strdup(o.output) : sd_compose_new_name(base);
        _cleanup_free_ char *output_path = output ? beside(path, output) : NULL;
        if (!output_path)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        struct sd_compose_options co = {
                .compose_name = path,
                .output_name = output,
                .dirfd = dirfd,
                .dotenv = dotenv,
                .dotenv_name = env_name,
                .vars = o.vars,
                .n_vars = o.n_vars,
                .skip = o.skip,
                .n_skip = o.n_skip,
                .uid = o.uid,
                .mode = o.mode,
                .driver = o.driver,
        };
        _cleanup_compose_plan_ struct sd_compose_plan *plan = NULL;
        r = sd_compose_plan(text->data, text->len, &co, &plan, &ctx->err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < plan->n_warnings; i++)
                ctl_report("warning: %s", plan->warnings[i]);

        if (o.dry_run) {
                fputs(plan->diff, stdout);
                printf("\nWould store %zu secret(s) (nothing was stored or written):\n", plan->n_secrets);
                for (size_t i = 0; i < plan->n_secrets; i++)
                        printf("  %s  from %s (%s)\n", plan->secrets[i].name, plan->secrets[i].variable,
                               plan->secrets[i].origin);
                return 0;
        }

        /* Nothing is stored unless every new file can be written. */
        for (size_t i = 0; i < plan->n_files; i++) {
                struct stat st;
                if (fstatat(dirfd, plan->files[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        return sd_error_set(&ctx->err, EEXIST,
                                            "%s exists already (from an earlier migrate?); remove it%s", plan->files[i].name,
                                            i == 0 ? ", or name another file with --output" : "");
        }

        _cleanup_ctl_writer_ struct ctl_writer writer = { 0 };
        r = ctl_writer_open(ctx, &writer);
        if (r < 0)
                return r;
        _cleanup_free_ const char **names = calloc(plan->n_secrets, sizeof(*names));
        if (!names)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        for (size_t i = 0; i < plan->n_secrets; i++)
                names[i] = plan->secrets[i].name;
        r = sd_migrate_check_case(writer.store, names, NULL, plan->n_secrets, &ctx->err);
        for (size_t i = 0; r >= 0 && i < plan->n_secrets; i++)
                r = ctl_writer_check(ctx, &writer, names[i]);
        if (r < 0)
                return r;
        for (size_t i = 0; i < plan->n_secrets; i++) {
                uint64_t version = 0;
                r = ctl_writer_put(ctx, &writer, plan->secrets[i].name, plan->secrets[i].value, SD_VALUE_MAX,
                                   &version);
                if (r < 0) {
                        if (i > 0)
                                ctl_report("%zu of %zu secret(s) were stored (listed above); no file was written", i,
                                           plan->n_secrets);
                        return r;
                }
                printf("%s: version %" PRIu64 " (from %s)\n", plan->secrets[i].name, version,
                       plan->secrets[i].variable);
        }

        /* Each file is staged and renamed into place; if one fails, the ones
         * already in place go again, so no partial set is left. */
        for (size_t i = 0; i < plan->n_files; i++) {
                const struct sd_compose_file *f = &plan->files[i];
                r = sd_write_file_at(dirfd, f->name, f->text, f->len, i == 0 ? compose_mode : f->mode, 0, &ctx->err);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                (void) unlinkat(dirfd, plan->files[j].name, 0);
                        ctl_report("the secrets were stored; no file was written");
                        return r;
                }
        }

        fputs(plan->diff, stdout);
        printf("\nWrote %s", output_path);
        for (size_t i = 1; i < plan->n_files; i++)
                printf(", %s", plan->files[i].name);
        printf("; %s is unchanged.  Start the project from the new file:\n\n", path);
        if (o.env_file)
                printf("  docker-compose --env-file %s -f %s up -d\n\n", o.env_file, output_path);
        else
                printf("  docker-compose -f %s up -d\n\n", output_path);
        printf("Then delete the values from %s%s%s and the files the diff shows with <redacted>; until then they "
               "are still on disk in plaintext.\n",
               env_name ? env_name : "", env_name ? ", " : "", path);
        return 0;
}

static int cmd_compose(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "migrate", cmd_migrate },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_compose, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_compose = {
        .name = "compose",
        .summary = "move a compose project's secret variables into secretd",
        .run = cmd_compose,
        .help =
        "Usage: secretctl [--store URL] compose migrate [-f FILE] [--env-file FILE] [--output NAME]\n"
        "                 [--var NAME]... [--skip NAME]... [--uid N] [--mode MODE] [--driver NAME]\n"
        "                 [--dry-run]\n"
        "\n"
        "Moves the secret-looking environment variables of a docker-compose project\n"
        "into secretd.  Reads the compose file (default docker-compose.yml), each\n"
        "service's environment: (map or list form) and env_file: files, and ${VAR}\n"
        "interpolation from the project's .env (never from your shell's\n"
        "environment).  A variable is taken when its name, split at '_', ends in\n"
        "PASSWORD, PASSWD, PASS, PWD, PASSPHRASE, SECRET, TOKEN, KEY, APIKEY or\n"
        "CREDENTIALS, or has the word SECRET, and does not end in FILE; --var adds\n"
        "one, --skip leaves one out.\n"
        "\n"
        "Each value is stored as the secret named by the variable in lower case\n"
        "(DB_PASSWORD -> db_password), through the same put as 'secretctl put'.\n"
        "Then a new compose file is written beside the original, which is never\n"
        "changed: each such variable NAME becomes NAME_FILE=/run/secrets/name, and\n"
        "each service concerned mounts a secretd volume at /run/secrets with its\n"
        "secrets (owner from --uid, else the service's numeric user:, else 0; mode\n"
        "from --mode, else 0400).  An env_file that set one is rewritten likewise,\n"
        "beside it, without those lines.  Prints what was stored, a unified diff\n"
        "(values shown as <redacted>) and the docker-compose command to run.\n"
        "\n"
        "Nothing is stored or written when anything is wrong: malformed YAML or\n"
        "a YAML anchor (named with line and column), an empty, unset or unquoted\n"
        "numeric value, a reference (${...}) in .env, one secret with two values,\n"
        "a service that mounts something at /run/secrets already, a value that\n"
        "would remain in the new file, or a new file that exists already.\n"
        "\n"
        "Options:\n"
        "  -f, --file FILE       the compose file (default docker-compose.yml)\n"
        "  --env-file FILE       the .env for interpolation (default .env beside FILE)\n"
        "  -o, --output NAME     the new compose file, beside FILE (default\n"
        "                        NAME.secretd.yml for NAME.yml)\n"
        "  --var NAME            also migrate variable NAME (may be repeated)\n"
        "  --skip NAME           never migrate variable NAME (may be repeated)\n"
        "  --uid N               owner of the secret files in every service\n"
        "  --mode MODE           their octal mode (default 0400)\n"
        "  --driver NAME         the volume driver (default secretd)\n"
        "  --dry-run             print the diff and the secrets; store and write nothing\n"
        "  -h, --help            show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl compose migrate --dry-run\n"
        "  secretctl compose migrate -f app/docker-compose.yml --uid 999\n"
        "  docker-compose -f app/docker-compose.secretd.yml up -d\n"
        "\n"
        "Exit status:\n"
        "  0  stored and written (or, with --dry-run, planned)\n"
        "  1  system error (a file or the store cannot be read or written)\n"
        "  2  usage error, a malformed or unsupported compose or .env file, a value\n"
        "     that cannot be migrated\n"
        "  3  no identity, no compose file, nothing to migrate\n"
        "  4  a new file exists already, one secret with two values, names that\n"
        "     differ only in case, a value left in the new file, or concurrent\n"
        "     writers kept winning after every retry\n",
};
