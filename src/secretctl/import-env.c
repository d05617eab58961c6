/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secretctl import-env: every variable of a .env file becomes a secret.
 * Values go from the file (read into locked memory) to ctl_writer_put(),
 * the put `secretctl put` uses; never to the terminal, argv, the
 * environment or a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretd/cleanup.h"
#include "secretd/dotenv.h"
#include "secretd/migrate.h"
#include "secretd/secret.h"
#include "secretctl.h"

/* The largest .env file read (it is held in locked memory). */
#define IMPORT_ENV_FILE_MAX ((size_t) 4 << 20)

struct import_env_options {
        char **only;          /* --only names, NULL-terminated; NULL: all */
        size_t n_only;
        bool lowercase;
};

static void import_env_options_free(struct import_env_options *o) {
        for (size_t i = 0; i < o->n_only; i++)
                free(o->only[i]);
        free(o->only);
}

static int import_env_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct import_env_options *o = userdata;
        switch (opt) {
        case 'o':
                for (const char *p = arg;;) {
                        const char *comma = strchrnul(p, ',');
                        size_t len = (size_t) (comma - p);
                        if (len > 0) {
                                char **more = reallocarray(o->only, o->n_only + 1, sizeof(*more));
                                if (!more)
                                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                                o->only = more;
                                if (!(o->only[o->n_only] = strndup(p, len)))
                                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                                if (!sd_dotenv_name_valid(p, len)) {
                                        char shown[64];
                                        sd_escape_for_message(p, len, shown, sizeof(shown));
                                        free(o->only[o->n_only]);
                                        return ctl_usage_error(ctx, "import-env", "--only: '%s' is not a variable name",
                                                               shown);
                                }
                                o->n_only++;
                        }
                        if (!*comma)
                                break;
                        p = comma + 1;
                }
                return 0;
        case 'l':
                o->lowercase = true;
                return 0;
        default:
                return -EINVAL;
        }
}

static bool selected(const struct import_env_options *o, const char *name) {
        if (o->n_only == 0)
                return true;
        for (size_t i = 0; i < o->n_only; i++)
                if (strcmp(o->only[i], name) == 0)
                        return true;
        return false;
}

/* A list of variable names for a message: "A (line 3), B (line 7)". */
static void append_name(char *list, size_t size, const struct sd_dotenv_entry *e) {
        size_t used = strlen(list);
        char shown[64];
        sd_escape_for_message(e->name, strlen(e->name), shown, sizeof(shown));
        (void) snprintf(list + used, size - used, "%s%s (line %u)", used ? ", " : "", shown, e->line);
}

static int read_env_file(struct ctl_context *ctx, const char *path, struct sd_secret **out) {
        if (strcmp(path, "-") == 0) {
                /* Typed values would show on the screen as they are typed. */
                if (isatty(STDIN_FILENO))
                        return sd_error_set(&ctx->err, EINVAL,
                                            "standard input is a terminal; pipe the .env file in, or name it");
                return sd_secret_read_fd(STDIN_FILENO, IMPORT_ENV_FILE_MAX, "standard input", out, &ctx->err);
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return sd_error_set_errno(&ctx->err, errno, "%s: cannot open", path);
        return sd_secret_read_fd(fd, IMPORT_ENV_FILE_MAX, path, out, &ctx->err);
}

static int cmd_import_env(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "only", required_argument, NULL, 'o' },
                { "lowercase", no_argument, NULL, 'l' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(import_env_options_free) struct import_env_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_import_env, argc, argv, "q", options, import_env_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind == argc)
                return ctl_usage_error(ctx, "import-env", "missing FILE (a .env file, or - for standard input)");
        if (argc - optind > 1)
                return ctl_usage_error(ctx, "import-env", "too many arguments; expected only FILE");
        const char *path = argv[optind];
        const char *what = strcmp(path, "-") == 0 ? "standard input" : path;

        _cleanup_secret_ struct sd_secret *text = NULL;
        r = read_env_file(ctx, path, &text);
        if (r < 0)
                return r;
        _cleanup_dotenv_ struct sd_dotenv *env = NULL;
        r = sd_dotenv_parse(text->data, text->len, what, &env, &ctx->err);
        if (r < 0)
                return r;

        /* Every refusal is decided before the first put, and each names all
         * the variables it concerns (never a value). */
        char missing[512] = "", no_value[512] = "", empty[512] = "", references[512] = "";
        for (size_t i = 0; i < o.n_only; i++)
                if (!sd_dotenv_find(env, o.only[i])) {
                        size_t used = strlen(missing);
                        (void) snprintf(missing + used, sizeof(missing) - used, "%s%s", used ? ", " : "", o.only[i]);
                }
        if (missing[0])
                return sd_error_set(&ctx->err, ENOENT, "%s does not set %s (named by --only)", what, missing);

        size_t n = 0;
        _cleanup_free_ const struct sd_dotenv_entry **chosen = calloc(env->n ? env->n : 1, sizeof(*chosen));
        _cleanup_free_ char (*names)[SD_NAME_MAX + 1] = calloc(env->n ? env->n : 1, sizeof(*names));
        _cleanup_free_ const char **name_list = calloc(env->n ? env->n : 1, sizeof(*name_list));
        _cleanup_free_ char (*origins)[SD_NAME_MAX + 64] = calloc(env->n ? env->n : 1, sizeof(*origins));
        _cleanup_free_ const char **origin_list = calloc(env->n ? env->n : 1, sizeof(*origin_list));
        if (!chosen || !names || !name_list || !origins || !origin_list)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        for (size_t i = 0; i < env->n; i++) {
                const struct sd_dotenv_entry *e = &env->entries[i];
                if (!selected(&o, e->name))
                        continue;
                if (!e->value)
                        append_name(no_value, sizeof(no_value), e);
                else if (e->value->len == 0)
                        append_name(empty, sizeof(empty), e);
                else if (sd_dotenv_has_reference(e->value))
                        append_name(references, sizeof(references), e);
                chosen[n++] = e;
        }
        if (no_value[0])
                return sd_error_set(&ctx->err, EINVAL,
                                    "%s: %s %s no value (no '='): compose would take it from the environment; "
                                    "give it a value or leave it out with --only",
                                    what, no_value, strchr(no_value, ',') ? "have" : "has");
        if (empty[0])
                return sd_error_set(&ctx->err, EINVAL, "%s: %s %s empty; refusing to store an empty secret", what,
                                    empty, strchr(empty, ',') ? "are" : "is");
        if (references[0])
                return sd_error_set(&ctx->err, EINVAL,
                                    "%s: the value of %s looks like a reference (${...}), which compose would "
                                    "expand; import-env stores values, not references: put the value itself, or "
                                    "leave it out with --only",
                                    what, references);
        if (n == 0)
                return sd_error_set(&ctx->err, ENOENT, "%s sets no variables; nothing to import", what);

        for (size_t i = 0; i < n; i++) {
                r = sd_migrate_secret_name(chosen[i]->name, o.lowercase, names[i], &ctx->err);
                if (r < 0)
                        return sd_error_prefix(&ctx->err, r, "%s line %u", what, chosen[i]->line);
                name_list[i] = names[i];
                (void) snprintf(origins[i], sizeof(origins[0]), "%s, line %u", chosen[i]->name, chosen[i]->line);
                origin_list[i] = origins[i];
                for (size_t j = 0; j < i; j++)
                        if (strcmp(names[i], names[j]) == 0)
                                return sd_error_set(&ctx->err, EEXIST,
                                                    "%s: %s (line %u) and %s (line %u) would both become the secret "
                                                    "'%s'; rename one of them",
                                                    what, chosen[j]->name, chosen[j]->line, chosen[i]->name,
                                                    chosen[i]->line, names[i]);
        }

        _cleanup_ctl_writer_ struct ctl_writer writer = { 0 };
        r = ctl_writer_open(ctx, &writer);
        if (r < 0)
                return r;
        r = sd_migrate_check_case(writer.store, name_list, origin_list, n, &ctx->err);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = ctl_writer_check(ctx, &writer, names[i]);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                uint64_t version = 0;
                r = ctl_writer_put(ctx, &writer, names[i], chosen[i]->value, SD_VALUE_MAX, &version);
                if (r < 0) {
                        if (i > 0)
                                ctl_report("%zu of %zu variable(s) were stored (%s %s); %s (line %u) and the ones "
                                           "after it were not",
                                           i, n, ctx->quiet ? "up to" : "listed above, up to", chosen[i - 1]->name,
                                           chosen[i]->name, chosen[i]->line);
                        return r;
                }
                if (strcmp(names[i], chosen[i]->name) != 0)
                        ctl_say(ctx, "%s: version %" PRIu64 " (from %s)\n", names[i], version, chosen[i]->name);
                else
                        ctl_say(ctx, "%s: version %" PRIu64 "\n", names[i], version);
        }
        return 0;
}

const struct ctl_verb ctl_verb_import_env = {
        .name = "import-env",
        .summary = "store every variable of a .env file as a secret",
        .run = cmd_import_env,
        .help =
        "Usage: secretctl [--store URL] import-env FILE [--only NAME,...] [--lowercase] [--quiet]\n"
        "\n"
        "Stores each variable of the .env file FILE ('-' reads standard input) as a\n"
        "secret, through the same put as 'secretctl put' (the same sealing,\n"
        "signing and checks), as the next version.  Values go from the file to the\n"
        "store; they are never printed, nor passed through arguments or the\n"
        "environment.  Prints \"NAME: version N\" per secret.\n"
        "\n"
        "FILE is read the way docker-compose 1.29 reads .env and env_file files\n"
        "(export prefix, quotes, # comments; see docs/migrating.md), strictly: a\n"
        "line compose would skip, a quote never closed or a name set twice is an\n"
        "error naming the line.  Before anything is stored, these are refused,\n"
        "naming every variable concerned: a name without '=', an empty value, a\n"
        "value that looks like a reference (${...}, which compose would expand).\n"
        "\n"
        "Secret names: the variable's name as written, or in lower case with\n"
        "--lowercase (DB_PASSWORD -> db_password, the rule 'compose migrate'\n"
        "always uses).  Two names that differ only in case, in the file or\n"
        "against a secret already stored, are refused: secret names are\n"
        "case-sensitive and DB_PASSWORD and db_password would be two secrets.\n"
        "\n"
        "Options:\n"
        "  --only NAME,...   import only these variables (names as in FILE; may be\n"
        "                    repeated)\n"
        "  --lowercase       name each secret by its variable in lower case\n"
        "  -q, --quiet       print nothing when every variable was stored\n"
        "  -h, --help        show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl import-env .env --lowercase\n"
        "  secretctl import-env prod.env --only DB_PASSWORD,API_KEY\n"
        "  sops -d secrets.env | secretctl import-env -\n"
        "\n"
        "Exit status:\n"
        "  0  every variable was stored\n"
        "  1  system error (store not writable, I/O)\n"
        "  2  usage error, a malformed file, a variable without value, empty or\n"
        "     holding a reference, a variable name that is not a valid secret name\n"
        "  3  no identity; FILE does not exist or lacks a variable named by --only\n"
        "  4  two names would differ only in case (or become the same secret);\n"
        "     concurrent writers kept winning after every retry\n",
};
