/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The secretd command line: init, pubkey, run.  Parses, calls, reports. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "secretd/config.h"
#include "secretd/keys.h"
#include "secretd/realm.h"

#define DEFAULT_KEY_PATH "/etc/secretd/agent.key"

static const char usage_main[] =
        "Usage: secretd [run] [OPTIONS]\n"
        "       secretd init [--key PATH] [--force]\n"
        "       secretd pubkey [--key PATH]\n"
        "       secretd join PIN|- [--realm-file PATH]\n"
        "       secretd check [OPTIONS]\n"
        "       secretd --help | --version | VERB --help\n"
        "\n"
        "The secretd agent: a Docker volume plugin that gives each container its own\n"
        "read-only tmpfs of decrypted secrets.\n"
        "\n"
        "Verbs:\n"
        "  run      run the daemon in the foreground (the default)\n"
        "  init     create this host's agent key and print its public line\n"
        "  pubkey   print the agent key's public line again\n"
        "  join     pin the store's realm on this host (writes the realm file)\n"
        "  check    check what 'run' needs on this host, one line per check\n"
        "\n"
        "See 'secretd run --help' for the daemon's options.\n";

static const char usage_run[] =
        "Usage: secretd [run] [OPTIONS]\n"
        "\n"
        "Run the volume plugin daemon in the foreground.  Every option is also a key\n"
        "in the [secretd] section of the configuration file; options override it.\n"
        "SIGHUP reads the file again and applies log-level, on-unverifiable, the sizes,\n"
        "the caps and audit-log (reopened) at once; other keys wait for a restart.\n"
        "\n"
        "  --config PATH           configuration file (default " SD_CONFIG_DEFAULT_PATH ")\n"
        "  --store URL             store (default file:///var/lib/secretd/store)\n"
        "  --driver NAME           plugin name used by `docker -d NAME` (default secretd)\n"
        "  --key PATH              agent key (default " DEFAULT_KEY_PATH ")\n"
        "  --realm PIN             the realm pin line (sdr1:...); overrides --realm-file\n"
        "  --realm-file PATH       file holding the pin (default " SD_CONFIG_DEFAULT_REALM_FILE ")\n"
        "  --state-dir DIR         state and tmpfs instances (default /run/secretd)\n"
        "  --docker-socket PATH    dockerd's API socket (default /var/run/docker.sock)\n"
        "  --plugin-dir DIR        where dockerd finds plugin sockets (default /run/docker/plugins)\n"
        "  --default-size SIZE     tmpfs size of a volume without -o size= (default 1M)\n"
        "  --max-size SIZE         largest -o size= accepted (default 16M)\n"
        "  --log-level LEVEL       error, warn, info or debug (default info)\n"
        "  --max-volumes N         most volume definitions (default 1024)\n"
        "  --max-instances-per-volume N\n"
        "                          most live tmpfs instances of one volume (default 64)\n"
        "  --max-inodes N          largest nr_inodes of one instance (default 1024)\n"
        "  --max-total-tmpfs SIZE  largest sum of the size caps of live instances (default 256M)\n"
        "  --floor-file PATH       the rollback floor (default " SD_CONFIG_DEFAULT_FLOOR_FILE ")\n"
        "  --cache-dir DIR         etcd stores: verified envelopes kept for outages, \"\" for none\n"
        "                          (default " SD_CONFIG_DEFAULT_CACHE_DIR ")\n"
        "  --seccomp yes|no        system-call allow-list (default yes when built with it)\n"
        "  --connection-timeout S  seconds an idle plugin connection is kept (default 150)\n"
        "  --admin-socket PATH     read-only admin API for root (default /run/secretd/admin.sock)\n"
        "  --audit-log PATH        JSON-lines audit log, \"\" for none (default /var/log/secretd/audit.log)\n"
        "  --etcd-ca PATH          etcds:// stores: CA bundle (PEM) that signed etcd's certificates\n"
        "                          (default: the system's CAs)\n"
        "  --etcd-cert PATH        etcds:// stores: client certificate (PEM), with --etcd-key\n"
        "  --etcd-key PATH         its private key (PEM); root-owned, mode 0600\n"
        "  --etcd-auth-file PATH   etcd user and password (\"user = NAME\", \"password = PW\" lines);\n"
        "                          root-owned, mode 0600\n"
        "  --metrics-listen ADDR:PORT\n"
        "                          also serve GET /metrics on this loopback TCP address\n"
        "                          (127.0.0.1:PORT or [::1]:PORT; default \"\": off)\n"
        "  --on-unverifiable previous|refuse\n"
        "                          when a secret's newest version does not verify, deliver\n"
        "                          the newest one that does (default previous) or refuse\n"
        "  -h, --help              show this help\n";

static const char usage_init[] =
        "Usage: secretd init [--key PATH] [--force]\n"
        "\n"
        "Create this host's agent key (mode 0600; its directory is created 0700) and\n"
        "print its public line, which a realm admin registers with\n"
        "  secretctl recipient add HOSTNAME sda1:...\n"
        "\n"
        "  --key PATH   where to write it (default " DEFAULT_KEY_PATH ")\n"
        "  --force      replace an existing key (secrets sealed to the old key become\n"
        "               unreadable on this host until an admin adds the new key as a\n"
        "               recipient and runs 'secretctl reseal --all')\n";

static const char usage_join[] =
        "Usage: secretd join PIN|- [--realm-file PATH]\n"
        "\n"
        "Pin the store's realm on this host: write PIN (the sdr1:... line that\n"
        "'secretctl realm pin' prints; '-' reads it from standard input) to the\n"
        "realm file, root-owned, mode 0644, replacing it in one rename.  The agent\n"
        "trusts exactly that realm and its admins: at start it verifies the store's\n"
        "policy chain from the pin, and refuses a store that offers an older policy\n"
        "version than it verified before.  Restart the agent to use a new pin.\n"
        "\n"
        "  --realm-file PATH  where to write it (default " SD_CONFIG_DEFAULT_REALM_FILE ")\n";

static const char usage_pubkey[] =
        "Usage: secretd pubkey [--key PATH]\n"
        "\n"
        "Print the public line (sda1:...) of the agent key.\n"
        "\n"
        "  --key PATH   the agent key (default " DEFAULT_KEY_PATH ")\n";

static int usage_error(const char *usage, const char *what, const char *arg) {
        fprintf(stderr, "secretd: %s '%s'\n", what, arg);
        fputs(usage, stderr);
        return DAEMON_EXIT_USAGE;
}

/* getopt_long reports its own errors; say which verb's help applies. */
static int getopt_failed(const char *verb) {
        fprintf(stderr, "Try 'secretd %s--help'.\n", verb);
        return DAEMON_EXIT_USAGE;
}

static int print_pubkey(const struct sd_agent_key *key) {
        char *line = NULL;
        if (sd_agent_pub_format(key->box_pk, &line) < 0) {
                fputs("secretd: out of memory\n", stderr);
                return DAEMON_EXIT_FAILURE;
        }
        printf("%s\n", line);
        free(line);
        return fflush(stdout) == 0 ? DAEMON_EXIT_OK : DAEMON_EXIT_FAILURE;
}

static int key_verb_args(int argc, char **argv, const char *usage, bool allow_force, const char **key_path,
                         bool *force) {
        const char *verb = allow_force ? "init " : "pubkey ";
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },
                { "force", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
                switch (c) {
                case 'k':
                        *key_path = optarg;
                        break;
                case 'f':
                        if (!allow_force)
                                return usage_error(usage, "unknown option", "--force");
                        *force = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return -1;
                default:
                        return getopt_failed(verb);
                }
        }
        if (optind < argc)
                return usage_error(usage, "unexpected argument", argv[optind]);
        return DAEMON_EXIT_OK;
}

static int verb_init(int argc, char **argv) {
        const char *key_path = DEFAULT_KEY_PATH;
        bool force = false;
        int r = key_verb_args(argc, argv, usage_init, true, &key_path, &force);
        if (r != DAEMON_EXIT_OK)
                return r < 0 ? DAEMON_EXIT_OK : r;

        sd_error err = { 0 };
        _cleanup_agent_key_ struct sd_agent_key *key = NULL;
        if (sd_agent_key_generate(&key, &err) < 0) {
                fprintf(stderr, "secretd: %s\n", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        r = sd_agent_key_save(key, key_path, force, &err);
        if (r == -EEXIST) {
                fprintf(stderr, "secretd: an agent key already exists at %s; 'secretd pubkey' prints it, "
                                "'secretd init --force' replaces it\n", key_path);
                return DAEMON_EXIT_EXISTS;
        }
        if (r < 0) {
                fprintf(stderr, "secretd: %s\n", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        fprintf(stderr, "secretd: agent key written to %s; register it on a writer's machine with:\n"
                        "  secretctl recipient add HOSTNAME <the line below>\n", key_path);
        return print_pubkey(key);
}

static int verb_pubkey(int argc, char **argv) {
        const char *key_path = DEFAULT_KEY_PATH;
        bool force = false;
        int r = key_verb_args(argc, argv, usage_pubkey, false, &key_path, &force);
        if (r != DAEMON_EXIT_OK)
                return r < 0 ? DAEMON_EXIT_OK : r;

        sd_error err = { 0 };
        _cleanup_agent_key_ struct sd_agent_key *key = NULL;
        r = sd_agent_key_load(key_path, &key, &err);
        if (r == -ENOENT) {
                fprintf(stderr, "secretd: no agent key at %s; run 'secretd init'\n", key_path);
                return DAEMON_EXIT_FAILURE;
        }
        if (r < 0) {
                fprintf(stderr, "secretd: %s\n", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        return print_pubkey(key);
}

/* The pin's line from argv, or from standard input for "-" (so it can be
 * piped from 'secretctl realm pin' over ssh). */
static int join_read_pin(const char *arg, struct sd_realm_pin *pin, sd_error *err) {
        if (strcmp(arg, "-") != 0)
                return sd_realm_pin_parse(arg, pin, err);
        char line[8192];
        size_t len = 0;
        for (;;) {
                ssize_t n = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return sd_error_set_errno(err, errno, "standard input: read failed");
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == sizeof(line) - 1)
                        return sd_error_set(err, EINVAL, "standard input: longer than a realm pin");
        }
        line[len] = '\0';
        if (strlen(line) != len)
                return sd_error_set(err, EINVAL, "standard input: contains a NUL byte");
        return sd_realm_pin_parse(line, pin, err);
}

static int verb_join(int argc, char **argv) {
        static const struct option options[] = {
                { "realm-file", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *path = SD_CONFIG_DEFAULT_REALM_FILE;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'r':
                        path = optarg;
                        break;
                case 'h':
                        fputs(usage_join, stdout);
                        return DAEMON_EXIT_OK;
                default:
                        return getopt_failed("join ");
                }
        }
        if (argc - optind != 1) {
                fputs("secretd: join: expected one PIN (sdr1:...) or '-'\n", stderr);
                fputs(usage_join, stderr);
                return DAEMON_EXIT_USAGE;
        }
        if (path[0] != '/') {
                fprintf(stderr, "secretd: join: --realm-file '%s' is not an absolute path\n", path);
                return DAEMON_EXIT_USAGE;
        }
        sd_error err = { 0 };
        struct sd_realm_pin pin;
        if (join_read_pin(argv[optind], &pin, &err) < 0) {
                fprintf(stderr, "secretd: join: %s\n", err.message);
                return DAEMON_EXIT_USAGE;
        }
        /* The agent refuses a pin file root does not own. */
        if (geteuid() != 0) {
                fputs("secretd: join: run it as root: the realm file must be root-owned\n", stderr);
                return DAEMON_EXIT_FAILURE;
        }
        if (sd_realm_pin_save_file(path, &pin, &err) < 0) {
                fprintf(stderr, "secretd: join: %s\n", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        char id[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(pin.realm, id);
        printf("realm %s pinned in %s (%zu admin key(s)); (re)start secretd to use it\n", id, path, pin.n_admins);
        return fflush(stdout) == 0 ? DAEMON_EXIT_OK : DAEMON_EXIT_FAILURE;
}

static int verb_run(int argc, char **argv) {
        /* Flag names are the configuration keys, so one table serves both. */
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "store", required_argument, NULL, 1 },
                { "driver", required_argument, NULL, 1 },
                { "key", required_argument, NULL, 1 },
                { "realm", required_argument, NULL, 1 },
                { "realm-file", required_argument, NULL, 1 },
                { "state-dir", required_argument, NULL, 1 },
                { "docker-socket", required_argument, NULL, 1 },
                { "plugin-dir", required_argument, NULL, 1 },
                { "default-size", required_argument, NULL, 1 },
                { "max-size", required_argument, NULL, 1 },
                { "log-level", required_argument, NULL, 1 },
                { "max-volumes", required_argument, NULL, 1 },
                { "max-instances-per-volume", required_argument, NULL, 1 },
                { "max-inodes", required_argument, NULL, 1 },
                { "max-total-tmpfs", required_argument, NULL, 1 },
                { "floor-file", required_argument, NULL, 1 },
                { "cache-dir", required_argument, NULL, 1 },
                { "seccomp", required_argument, NULL, 1 },
                { "connection-timeout", required_argument, NULL, 1 },
                { "admin-socket", required_argument, NULL, 1 },
                { "audit-log", required_argument, NULL, 1 },
                { "etcd-ca", required_argument, NULL, 1 },
                { "etcd-cert", required_argument, NULL, 1 },
                { "etcd-key", required_argument, NULL, 1 },
                { "etcd-auth-file", required_argument, NULL, 1 },
                { "metrics-listen", required_argument, NULL, 1 },
                { "on-unverifiable", required_argument, NULL, 1 },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        struct daemon_flag flags[SD_ARRAY_SIZE(options)];
        size_t n_flags = 0;
        const char *config_path = NULL;
        int c, index;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+h", options, &index)) != -1) {
                switch (c) {
                case 1:
                        /* A repeated flag overrides the earlier one, as in the file. */
                        if (n_flags == SD_ARRAY_SIZE(flags))
                                return usage_error(usage_run, "too many options at", optarg);
                        flags[n_flags++] = (struct daemon_flag) { options[index].name, optarg };
                        break;
                case 'c':
                        config_path = optarg;
                        break;
                case 'h':
                        fputs(usage_run, stdout);
                        return DAEMON_EXIT_OK;
                default:
                        return getopt_failed("run ");
                }
        }
        if (optind < argc)
                return usage_error(usage_run, "unexpected argument", argv[optind]);

        /* From here on everything goes through the log, in the journal's
         * format under systemd, so a refused configuration is an error
         * there too. */
        log_open();
        const struct daemon_config_source source = { config_path, flags, n_flags };
        _cleanup_config_ struct sd_config cfg;
        sd_error err = { 0 };
        int r = daemon_config_load(&source, &cfg, &err);
        if (r == -ENOMEM) {
                log_error("out of memory");
                return DAEMON_EXIT_FAILURE;
        }
        if (r < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_CONFIG;
        }
        return daemon_run(&cfg, &source);
}

static const struct verb {
        const char *name;
        int (*run)(int argc, char **argv);
} verbs[] = {
        { "run", verb_run },
        { "init", verb_init },
        { "pubkey", verb_pubkey },
        { "join", verb_join },
        { "check", check_main },
};

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
                printf("secretd %s\n", SECRETD_VERSION);
                return DAEMON_EXIT_OK;
        }
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                fputs(usage_main, stdout);
                return DAEMON_EXIT_OK;
        }
        if (argc >= 2 && argv[1][0] != '-') {
                for (size_t i = 0; i < SD_ARRAY_SIZE(verbs); i++)
                        if (strcmp(argv[1], verbs[i].name) == 0)
                                return verbs[i].run(argc - 1, argv + 1);
                return usage_error(usage_main, "unknown verb", argv[1]);
        }
        /* No verb: `secretd --store ...` runs the daemon. */
        return verb_run(argc, argv);
}
