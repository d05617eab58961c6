/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secretctl: global options, the verb table, and the one place errors are
 * reported.  Each verb lives in its own file; the logic lives in libsecretd.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "secretd/cleanup.h"
#include "secretd/names.h"
#include "secretctl.h"

static const struct ctl_verb *const verbs[] = {
        &ctl_verb_keygen,  &ctl_verb_whoami,  &ctl_verb_put,
        &ctl_verb_get,     &ctl_verb_ls,      &ctl_verb_history,
        &ctl_verb_rm,      &ctl_verb_realm,   &ctl_verb_writer,
        &ctl_verb_recipient, &ctl_verb_admin, &ctl_verb_reseal,
        &ctl_verb_export,  &ctl_verb_import,  &ctl_verb_import_env,
        &ctl_verb_compose, &ctl_verb_status,  &ctl_verb_trust,
};

static const char exit_status_text[] =
        "Exit status:\n"
        "  0  success\n"
        "  1  general or system error (I/O, permissions, out of memory, store unreachable)\n"
        "  2  usage error or invalid input: bad option, bad name, value empty or too large\n"
        "  3  not found: no such secret, version, identity, writer, recipient or\n"
        "     admin; a deleted secret; a store that does not exist; a realm you\n"
        "     have not joined\n"
        "  4  conflict: already exists (keygen without --force, an entry already in\n"
        "     the policy, a pending proposal), or a concurrent writer kept winning\n"
        "  5  verification failed: bad signature, signer not allowed by the policy,\n"
        "     tampered envelope or policy, another realm, a policy rollback, name or\n"
        "     version binding broken (ls/history: some entry failed)\n"
        "  6  cannot decrypt: this identity is not a recipient of the envelope\n"
        "  7  not allowed: you are not a writer (put, rm) or not an admin (policy\n"
        "     changes) in the realm policy\n"
        "  8  the secret name is outside the patterns your writer entry may write\n"
        "  9  no recipient of the realm may receive this name: nothing was stored\n";

static const char files_environment_text[] =
        "Files:\n"
        "  $XDG_CONFIG_HOME/secretctl/identity\n"
        "      your writer identity (mode 0600)\n"
        "  $XDG_CONFIG_HOME/secretctl/realms/HASH.json\n"
        "      one per store you joined (HASH: of the store URL): the realm pin and\n"
        "      the highest policy version you verified (mode 0600)\n"
        "  $XDG_CONFIG_HOME/secretctl/trusted\n"
        "      the trusted writers of before realms, read once by 'realm init'\n"
        "  " SD_STORE_DEFAULT_URL "\n"
        "      the default store, a directory on this host\n"
        "  /run/secretd/admin.sock\n"
        "      the agent's admin socket, read by 'status'\n"
        "XDG_CONFIG_HOME is $HOME/.config when it is unset or not an absolute path.\n"
        "With --identity PATH and no usable XDG_CONFIG_HOME or HOME, the realm\n"
        "records and the trusted file are PATH.realms/ and PATH.trusted.\n"
        "\n"
        "Environment:\n"
        "  SECRETD_STORE          the store URL when --store is not given\n"
        "  XDG_CONFIG_HOME, HOME  where the identity and the realm records are\n"
        "  SECRETD_ADMIN_SOCKET   the agent's admin socket for 'status' when\n"
        "                         --admin-socket is not given\n"
        "  SECRETD_ETCD_CA, SECRETD_ETCD_CERT, SECRETD_ETCD_KEY, SECRETD_ETCD_AUTH_FILE\n"
        "                         files for an etcd store when the --etcd-* option is\n"
        "                         not given (they name files; no secret is ever taken\n"
        "                         from the environment or the command line)\n"
        "They are ignored when secretctl runs set-user-ID or set-group-ID\n"
        "(secure_getenv).\n";

/* Every help ends with it: the block itself is printed once, by
 * `secretctl help environment`. */
#define ENVIRONMENT_POINTER "Files and environment variables: secretctl help environment\n"

static void print_main_help(FILE *f) {
        fputs("Usage: secretctl [--store URL] [--identity PATH] COMMAND [ARGS...]\n"
              "       secretctl help COMMAND\n"
              "       secretctl help environment\n"
              "       secretctl COMMAND --help\n"
              "\n"
              "Writes, reads and manages secrets kept as signed, encrypted envelopes in a\n"
              "secretd store.  Values are read from standard input (or a file), never from\n"
              "the command line, and are printed only by 'get'.\n"
              "\n"
              "Commands:\n", f);
        for (size_t i = 0; i < SD_ARRAY_SIZE(verbs); i++)
                if (verbs[i]->summary)
                        fprintf(f, "  %-10s %s\n", verbs[i]->name, verbs[i]->summary);
        fprintf(f, "  %-10s %s\n", "help", "show the help of a command, or (help environment) the files and\n"
                   "             environment variables secretctl uses");
        fputs("\n"
              "Global options (before COMMAND):\n"
              "  -s, --store URL       the store: file:///PATH (a directory on this host),\n"
              "                        etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcd v3, plain\n"
              "                        HTTP) or etcds://... (the same over TLS)\n"
              "  --etcd-ca PATH        etcds://: the CA bundle (PEM) that signed etcd's\n"
              "                        certificates (default: the system's CAs)\n"
              "  --etcd-cert PATH      etcds://: client certificate (PEM), with --etcd-key\n"
              "  --etcd-key PATH       its private key (PEM): owned by you, mode 0600\n"
              "  --etcd-auth-file PATH etcd user and password, two lines \"user = NAME\" and\n"
              "                        \"password = PASSWORD\": owned by you, mode 0600\n"
              "  -i, --identity PATH   the writer identity file to use\n"
              "  -h, --help            show this help\n"
              "  -V, --version         show the version\n"
              "\n"
              "Examples:\n"
              "  secretctl keygen\n"
              "  secretctl recipient add host1 \"$(ssh host1 sudo secretd pubkey)\"\n"
              "  printf %s \"$PW\" | secretctl put db_password\n"
              "  secretctl get db_password | sha256sum\n"
              "  secretctl ls\n"
              "\n", f);
        fputs(exit_status_text, f);
        fputs("\n" ENVIRONMENT_POINTER, f);
}

void ctl_print_verb_help(const struct ctl_verb *verb, FILE *f) {
        fputs(verb->help, f);
        fputs("\n" ENVIRONMENT_POINTER, f);
}

static const struct ctl_verb *find_verb(const char *name) {
        for (size_t i = 0; i < SD_ARRAY_SIZE(verbs); i++)
                if (strcmp(verbs[i]->name, name) == 0)
                        return verbs[i];
        return NULL;
}

/* $XDG_CONFIG_HOME/secretctl, else $HOME/.config/secretctl, else the
 * passwd home.  The XDG spec says a relative XDG_CONFIG_HOME is invalid and
 * must be ignored. */
static int config_dir(struct ctl_context *ctx, char **out) {
        const char *xdg = secure_getenv("XDG_CONFIG_HOME");
        if (xdg && xdg[0] == '/') {
                if (asprintf(out, "%s/secretctl", xdg) < 0)
                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                return 0;
        }
        const char *home = secure_getenv("HOME");
        if (!home || home[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                        return sd_error_set(&ctx->err, ENOENT,
                                            "cannot find a configuration directory: set XDG_CONFIG_HOME or HOME, or pass --identity");
                home = pw->pw_dir;
        }
        if (asprintf(out, "%s/.config/secretctl", home) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        return 0;
}

static int run(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "store", required_argument, NULL, 's' },
                { "identity", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "etcd-ca", required_argument, NULL, 1 },
                { "etcd-cert", required_argument, NULL, 2 },
                { "etcd-key", required_argument, NULL, 3 },
                { "etcd-auth-file", required_argument, NULL, 4 },
                { NULL, 0, NULL, 0 },
        };
        const char *store_arg = NULL, *identity_arg = NULL;
        /* Option, then environment variable: both name files. */
        struct {
                const char *arg;
                const char *env;
                const char **field;
        } etcd_files[] = {
                { NULL, "SECRETD_ETCD_CA", &ctx->store_options.etcd_ca },
                { NULL, "SECRETD_ETCD_CERT", &ctx->store_options.etcd_cert },
                { NULL, "SECRETD_ETCD_KEY", &ctx->store_options.etcd_key },
                { NULL, "SECRETD_ETCD_AUTH_FILE", &ctx->store_options.etcd_auth_file },
        };

        /* '+': stop at the first non-option, the verb; its options are its own. */
        opterr = 0;
        for (;;) {
                int opt = getopt_long(argc, argv, "+:s:i:hV", options, NULL);
                if (opt < 0)
                        break;
                switch (opt) {
                case 's':
                        store_arg = optarg;
                        break;
                case 'i':
                        identity_arg = optarg;
                        break;
                case 1:
                case 2:
                case 3:
                case 4:
                        etcd_files[opt - 1].arg = optarg;
                        break;
                case 'h':
                        print_main_help(stdout);
                        return 0;
                case 'V':
                        printf("secretctl %s\n", SECRETD_VERSION);
                        return 0;
                default: {
                        /* Never echo an "=value" part: it might be a secret. */
                        const char *bad = argv[optind - 1];
                        char shown[64];
                        if (optopt && strncmp(bad, "--", 2) != 0)
                                (void) snprintf(shown, sizeof(shown), "-%c", optopt);
                        else
                                sd_escape_for_message(bad, strcspn(bad, "="), shown, sizeof(shown));
                        if (opt == ':')
                                return ctl_usage_error(ctx, NULL, "option '%s' needs a value", shown);
                        return ctl_usage_error(ctx, NULL, "unknown option '%s'", shown);
                }
                }
        }

        if (optind >= argc) {
                print_main_help(stderr);
                return sd_error_set(&ctx->err, EINVAL, "no command given");
        }
        char **verb_argv = argv + optind;
        int verb_argc = argc - optind;

        if (strcmp(verb_argv[0], "help") == 0) {
                if (verb_argc == 1 || strcmp(verb_argv[1], "--help") == 0 || strcmp(verb_argv[1], "-h") == 0) {
                        print_main_help(stdout);
                        return 0;
                }
                if (verb_argc > 2)
                        return ctl_usage_error(ctx, NULL, "help: too many arguments; expected one COMMAND, or 'environment'");
                if (strcmp(verb_argv[1], "environment") == 0) {
                        fputs(files_environment_text, stdout);
                        return 0;
                }
                const struct ctl_verb *verb = find_verb(verb_argv[1]);
                if (!verb) {
                        char shown[64];
                        sd_escape_for_message(verb_argv[1], strlen(verb_argv[1]), shown, sizeof(shown));
                        return ctl_usage_error(ctx, NULL, "unknown command '%s'", shown);
                }
                ctl_print_verb_help(verb, stdout);
                return 0;
        }

        const struct ctl_verb *verb = find_verb(verb_argv[0]);
        if (!verb) {
                char shown[64];
                sd_escape_for_message(verb_argv[0], strlen(verb_argv[0]), shown, sizeof(shown));
                return ctl_usage_error(ctx, NULL, "unknown command '%s'", shown);
        }

        if (!store_arg) {
                store_arg = secure_getenv("SECRETD_STORE");
                if (!store_arg || !store_arg[0])
                        store_arg = SD_STORE_DEFAULT_URL;
        }
        ctx->store_url = store_arg;
        for (size_t i = 0; i < SD_ARRAY_SIZE(etcd_files); i++) {
                const char *v = etcd_files[i].arg ? etcd_files[i].arg : secure_getenv(etcd_files[i].env);
                *etcd_files[i].field = v && v[0] ? v : NULL;
        }

        _cleanup_free_ char *dir = NULL;
        int r = config_dir(ctx, &dir);
        if (r < 0 && !identity_arg)
                return r;
        sd_error_clear(&ctx->err);
        if (identity_arg)
                ctx->identity_path = strdup(identity_arg);
        else if (asprintf(&ctx->identity_path, "%s/identity", dir) < 0)
                ctx->identity_path = NULL;
        if (!ctx->identity_path)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        /* Without a configuration directory (only possible with --identity)
         * the trusted file and the realm records sit next to the identity. */
        if (dir ? asprintf(&ctx->trusted_path, "%s/trusted", dir) < 0
                : asprintf(&ctx->trusted_path, "%s.trusted", ctx->identity_path) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        if (dir ? asprintf(&ctx->realms_dir, "%s/realms", dir) < 0
                : asprintf(&ctx->realms_dir, "%s.realms", ctx->identity_path) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        /* One record per store URL: stores are different realms. */
        unsigned char hash[8];
        char hex[sizeof(hash) * 2 + 1];
        (void) crypto_generichash(hash, sizeof(hash), (const unsigned char *) ctx->store_url,
                                  strlen(ctx->store_url), NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
        if (asprintf(&ctx->realm_path, "%s/%s.json", ctx->realms_dir, hex) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");

        return verb->run(ctx, verb_argc, verb_argv);
}

int main(int argc, char **argv) {
        /* Plaintext passes through this process: no core dumps, no ptrace
         * by other processes of the same user. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        umask(077);

        if (sodium_init() < 0) {
                fputs("secretctl: cannot initialise libsodium\n", stderr);
                return CTL_EXIT_FAILURE;
        }

        struct ctl_context ctx = { 0 };
        int r = run(&ctx, argc, argv);
        free(ctx.identity_path);
        free(ctx.trusted_path);
        free(ctx.realms_dir);
        free(ctx.realm_path);

        int status;
        if (r < 0) {
                ctl_report("%s", ctx.err.code ? ctx.err.message : strerror(-r));
                status = ctx.exit_status ? ctx.exit_status : ctl_exit_status(r);
        } else {
                status = r;
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (status == CTL_EXIT_OK)
                        ctl_report("cannot write to standard output: %s", strerror(errno));
                if (status == CTL_EXIT_OK)
                        status = CTL_EXIT_FAILURE;
        }
        return status;
}
