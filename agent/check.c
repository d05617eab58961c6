/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `secretd check`: each check calls what `secretd run` calls at start-up
 * and reports instead of stopping. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "daemon.h"
#include "seccomp-filter.h"
#include "secretd/config.h"
#include "secretd/docker.h"
#include "secretd/keys.h"
#include "secretd/realm.h"
#include "secretd/store.h"
#include "userns.h"

static const char usage_check[] =
        "Usage: secretd check [OPTIONS]\n"
        "\n"
        "Check what 'secretd run' needs, with the same configuration file and flags,\n"
        "and print one line per check: 'ok   WHAT', or 'FAIL WHAT: PROBLEM; FIX'.\n"
        "In order: the configuration file, the agent key, the realm pin (and the\n"
        "store's policy chain from it), the store, dockerd, the plugin directory,\n"
        "dockerd's user-namespace remapping, and the seccomp filter.  A failed\n"
        "check does not stop the others.  Nothing secret is printed.\n"
        "\n"
        "  --config PATH           configuration file (default " SD_CONFIG_DEFAULT_PATH ")\n"
        "  --store URL             store\n"
        "  --key PATH              agent key\n"
        "  --realm PIN             the realm pin line (sdr1:...); overrides --realm-file\n"
        "  --realm-file PATH       file holding the pin\n"
        "  --docker-socket PATH    dockerd's API socket\n"
        "  --plugin-dir DIR        where dockerd finds plugin sockets\n"
        "  --seccomp yes|no        check the system-call allow-list (no: skipped)\n"
        "  --etcd-ca PATH          etcds:// stores: CA bundle (PEM)\n"
        "  --etcd-cert PATH        etcds:// stores: client certificate (PEM)\n"
        "  --etcd-key PATH         its private key (PEM)\n"
        "  --etcd-auth-file PATH   etcd user and password\n"
        "  -h, --help              show this help\n"
        "\n"
        "Defaults are those of 'secretd run --help'.\n"
        "\n"
        "Exit status: 0 every check ok, 1 at least one FAIL, 2 bad command line.\n";

enum {
        CHECK_EXIT_OK = 0,
        CHECK_EXIT_FAILED = 1,
};

struct check_flag {
        const char *key;
        const char *value;
};

struct check_run {
        const char *config_path;        /* --config, or NULL for the default */
        const struct check_flag *flags; /* --KEY VALUE, applied over the file */
        size_t n_flags;
        struct sd_config cfg;
        unsigned n_failed;

        /* Found by one check, used by a later one. */
        struct sd_store *store;         /* NULL: could not be opened (store_err says why) */
        int store_r;                    /* the store's answer to the first call; 1: not asked yet */
        sd_error store_err;
        struct sd_docker *docker;       /* NULL: dockerd did not answer */
};

static void report_v(struct check_run *c, bool ok, const char *fmt, va_list ap) SD_PRINTF(3, 0);
static void report_v(struct check_run *c, bool ok, const char *fmt, va_list ap) {
        fputs(ok ? "ok   " : "FAIL ", stdout);
        vprintf(fmt, ap);
        putchar('\n');
        if (!ok)
                c->n_failed++;
}

static void report_ok(struct check_run *c, const char *fmt, ...) SD_PRINTF(2, 3);
static void report_ok(struct check_run *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        report_v(c, true, fmt, ap);
        va_end(ap);
}

static void report_fail(struct check_run *c, const char *fmt, ...) SD_PRINTF(2, 3);
static void report_fail(struct check_run *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        report_v(c, false, fmt, ap);
        va_end(ap);
}

/* 1. The configuration as `secretd run` builds it: the file (a root of
 * trust), the flags over it, the cross-key checks.  A file that fails only
 * the root-of-trust test is still read, so that the other checks look at
 * what it names.  -ENOMEM when c->cfg could not be rebuilt (no check can
 * go on). */
static int check_config(struct check_run *c) {
        const char *path = c->config_path ? c->config_path : SD_CONFIG_DEFAULT_PATH;
        sd_error err = { 0 };
        int r = sd_config_load_agent_file(&c->cfg, c->config_path, &err);
        bool failed = r < 0;
        if (r < 0) {
                if (r == -ENOENT)
                        report_fail(c, "config: %s; create it, or leave out --config to run on the defaults",
                                    err.message);
                else if (r == -EPERM || r == -ELOOP)
                        report_fail(c, "config: %s", err.message);
                else
                        report_fail(c, "config: %s; correct it (secretd.conf(5) lists the keys)", err.message);
                /* The file may hold some of its values: start again. */
                sd_config_free(&c->cfg);
                if (sd_config_init(&c->cfg) < 0)
                        return -ENOMEM;
                if (r == -EPERM || r == -ELOOP) {
                        sd_error ignored = { 0 };
                        if (sd_config_load_file(&c->cfg, path, &ignored) < 0) {
                                sd_config_free(&c->cfg);
                                if (sd_config_init(&c->cfg) < 0)
                                        return -ENOMEM;
                        }
                }
        }
        /* One line per check: the first problem only (the flags after a
         * bad one still apply, for the checks below). */
        for (size_t i = 0; i < c->n_flags; i++)
                if (sd_config_set(&c->cfg, c->flags[i].key, c->flags[i].value, &err) < 0 && !failed) {
                        report_fail(c, "config: --%s; correct the flag", err.message);
                        failed = true;
                }
        if (failed)
                return 0;
        if (sd_config_check(&c->cfg, &err) < 0)
                report_fail(c, "config: %s; correct the values", err.message);
        else if (r == 0 && !c->config_path && access(path, F_OK) < 0)
                report_ok(c, "config: no %s, the built-in defaults and flags", path);
        else
                report_ok(c, "config %s", path);
        return 0;
}

/* 2. The agent key, through the agent's own loader (which refuses a key
 * group or others may read); besides, its owner must be root, the only
 * one meant to read it. */
static void check_agent_key(struct check_run *c) {
        const char *path = c->cfg.key_path;
        sd_error err = { 0 };
        _cleanup_agent_key_ struct sd_agent_key *key = NULL;
        int r = sd_agent_key_load(path, &key, &err);
        if (r == -ENOENT) {
                report_fail(c, "agent key: no agent key at %s; run 'secretd init --key %s' and register the line it "
                               "prints with 'secretctl recipient add HOSTNAME LINE'",
                            path, path);
                return;
        }
        if (r == -EPERM || r == -ELOOP) {
                report_fail(c, "agent key: %s", err.message);
                return;
        }
        if (r < 0) {
                report_fail(c, "agent key: %s; restore the key, or make a new one with 'secretd init --force --key %s' "
                               "and register it as a recipient",
                            err.message, path);
                return;
        }
        struct stat st;
        if (lstat(path, &st) < 0) {
                report_fail(c, "agent key: %s: cannot stat: %s; check the path", path, strerror(errno));
                return;
        }
        if (st.st_uid != geteuid()) {
                report_fail(c, "agent key: %s is owned by uid %u, who can read it; run chown root %s", path,
                            (unsigned) st.st_uid, path);
                return;
        }
        _cleanup_free_ char *pub = NULL;
        if (sd_agent_pub_format(key->box_pk, &pub) < 0) {
                report_fail(c, "agent key: out of memory; free some memory");
                return;
        }
        report_ok(c, "agent key %s (%s)", path, pub);
}

static void store_open(struct check_run *c) {
        struct sd_store_options options;
        sd_config_store_options(&c->cfg, &options);
        c->store_r = 1;
        if (sd_store_open_with(c->cfg.store_url, 0, &options, &c->store, &c->store_err) < 0)
                c->store = NULL;
}

static void realm_warn(void *userdata, const char *message) {
        sd_error *first = userdata;
        if (first->code == 0)
                sd_error_set(first, EBADMSG, "%s", message);
}

/* 3. The pin, as `secretd run` reads it (realm, else realm-file), and the
 * store's chain walked from it without touching the realm record: a check
 * writes nothing. */
static void check_realm(struct check_run *c) {
        struct sd_realm_pin pin;
        sd_error err = { 0 };
        int r = c->cfg.realm ? sd_realm_pin_parse(c->cfg.realm, &pin, &err)
                             : sd_realm_pin_load_file(c->cfg.realm_file, &pin, &err);
        if (r == -ENOENT) {
                report_fail(c, "realm pin: %s; run 'secretd join PIN' with the line 'secretctl realm pin' prints",
                            err.message);
                return;
        }
        if (r < 0) {
                report_fail(c, "realm pin: %s%s; pin the store's realm again: secretd join PIN, with the line "
                               "'secretctl realm pin' prints",
                            c->cfg.realm ? "realm: " : "", err.message);
                return;
        }
        char id[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(pin.realm, id);
        const char *from = c->cfg.realm ? "the realm key" : c->cfg.realm_file;

        if (!c->store) {
                report_ok(c, "realm pin %s (%s); not verified: the store cannot be opened (below)", id, from);
                return;
        }
        struct sd_realm_record rec = { .pin = pin };
        struct sd_realm_record now;
        _cleanup_policy_ struct sd_policy *p = NULL;
        sd_error warning = { 0 };
        r = sd_realm_walk(c->store, &rec, realm_warn, &warning, &p, &now, &err);
        /* The errors of the chain itself (as `secretd run` stops on them);
         * any other is the store's, for the store line. */
        bool chain_verdict = r >= 0 || r == -ENOENT || r == -EBADMSG || r == -EKEYREJECTED || r == -ESTALE;
        if (!chain_verdict) {
                c->store_r = r;
                c->store_err = err;
                report_ok(c, "realm pin %s (%s); not verified: the store did not answer (below)", id, from);
                return;
        }
        c->store_r = 0;
        if (r == -ENOENT) {
                report_fail(c, "realm pin %s: the store %s holds no realm policy; make the realm on a writer's "
                               "machine ('secretctl realm init'), or point store at the realm's store",
                            id, c->cfg.store_url);
                return;
        }
        if (r < 0) {
                report_fail(c, "realm pin %s: %s; if this host is pinned to the wrong realm, pin the store's: "
                               "secretd join PIN, with the line 'secretctl realm pin' prints",
                            id, err.message);
                return;
        }
        report_ok(c, "realm pin %s (%s): policy v%" PRIu64 " verified%s%s", id, from, sd_policy_version(p),
                  warning.code ? "; " : "", warning.message);
}

/* 4. The store opens and answers one call (the realm walk's, if there was
 * one).  A store with no policy answered all the same. */
static void check_store(struct check_run *c) {
        const char *url = c->cfg.store_url;
        if (!c->store) {
                report_fail(c, "store %s: %s; correct store (and the etcd-* keys) in the configuration", url,
                            c->store_err.message);
                return;
        }
        if (c->store_r == 1) {
                uint64_t latest;
                c->store_r = sd_store_policy_latest(c->store, &latest, &c->store_err);
                if (c->store_r == -ENOENT)
                        c->store_r = 0;
        }
        if (c->store_r < 0 && sd_store_error_is_transient(c->store_r)) {
                report_fail(c, "store %s: unreachable: %s; start the store, or correct store in the configuration",
                            url, c->store_err.message);
                return;
        }
        if (c->store_r < 0) {
                report_fail(c, "store %s: %s; correct the etcd-* keys or the store's access rights", url,
                            c->store_err.message);
                return;
        }
        report_ok(c, "store %s answers", url);
}

/* 5. dockerd answers on docker-socket, with the timeouts the agent's own
 * user-namespace question uses. */
static void check_docker(struct check_run *c) {
        const char *socket = c->cfg.docker_socket;
        sd_error err = { 0 };
        _cleanup_docker_ struct sd_docker *d = NULL;
        int r = sd_docker_new(socket, &d, &err);
        if (r >= 0) {
                sd_docker_set_timeouts(d, 2000, 5000);
                r = sd_docker_ping(d, &err);
        }
        if (r < 0) {
                report_fail(c, "docker %s: %s; start dockerd, or set docker-socket to the socket it listens on", socket,
                            err.message);
                return;
        }
        c->docker = steal_pointer(&d);
        report_ok(c, "docker %s answers", socket);
}

/* 6. The plugin directory: the agent binds <plugin-dir>/<driver>.sock in
 * it, and dockerd looks for plugins there.  dockerd makes /run/docker/plugins
 * when it starts, so a missing one is a dockerd that has not started, or a
 * plugin-dir it never reads. */
static void check_plugin_dir(struct check_run *c) {
        const char *dir = c->cfg.plugin_dir;
        struct stat st;
        if (stat(dir, &st) < 0) {
                if (errno == ENOENT)
                        report_fail(c, "plugin dir %s: does not exist; start dockerd (it makes /run/docker/plugins), or "
                                       "set plugin-dir to where dockerd looks for plugin sockets",
                                    dir);
                else
                        report_fail(c, "plugin dir %s: %s; check the path", dir, strerror(errno));
                return;
        }
        if (!S_ISDIR(st.st_mode)) {
                report_fail(c, "plugin dir %s: not a directory; set plugin-dir to a directory", dir);
                return;
        }
        /* Whoever may write it may put their own socket in the agent's
         * place, and dockerd would send Mounts there. */
        if (st.st_uid != geteuid() || (st.st_mode & 0022)) {
                report_fail(c, "plugin dir %s: owned by uid %u, mode %04o: others can replace the plugin socket; run "
                               "chown root %s && chmod go-w %s",
                            dir, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777), dir, dir);
                return;
        }
        if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) < 0) {
                report_fail(c, "plugin dir %s: not writable: %s; run secretd check as root, on a writable /run", dir,
                            strerror(errno));
                return;
        }
        report_ok(c, "plugin dir %s", dir);
}

/* 7. What dockerd says about --userns-remap, and the id ranges the agent
 * then maps file owners into (userns.c reads the same files). */
static void check_userns(struct check_run *c) {
        if (!c->docker) {
                report_fail(c, "userns remapping: unknown: dockerd did not answer; fix the docker line above");
                return;
        }
        bool remapped = false;
        sd_error err = { 0 };
        if (sd_docker_userns_remapped(c->docker, &remapped, &err) < 0) {
                report_fail(c, "userns remapping: unknown: %s; check that dockerd answers GET /info", err.message);
                return;
        }
        if (!remapped) {
                report_ok(c, "userns remapping: off (dockerd does not remap)");
                return;
        }
        uint64_t ustart, ucount, gstart, gcount;
        if (userns_subid_range("/etc/subuid", USERNS_REMAP_USER, &ustart, &ucount, &err) < 0 ||
            userns_subid_range("/etc/subgid", USERNS_REMAP_USER, &gstart, &gcount, &err) < 0) {
                report_fail(c, "userns remapping: dockerd remaps, but %s; start dockerd with --userns-remap=default "
                               "(it adds the " USERNS_REMAP_USER " ranges), or add them to /etc/subuid and /etc/subgid",
                            err.message);
                return;
        }
        report_ok(c, "userns remapping: on, " USERNS_REMAP_USER " uids %" PRIu64 "+%" PRIu64 ", gids %" PRIu64
                     "+%" PRIu64,
                  ustart, ucount, gstart, gcount);
}

/* What the seccomp child tells its parent, in one write (under PIPE_BUF). */
struct seccomp_answer {
        int r;
        size_t n_allowed;
        char message[SD_ERROR_MESSAGE_MAX];
};

/* 8. The agent's filter, built and loaded in a child: once loaded it
 * cannot be taken off, and this process still has work to do. */
static void check_seccomp(struct check_run *c) {
        if (!c->cfg.seccomp) {
                report_ok(c, "seccomp: off (seccomp = no); not checked");
                return;
        }
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0) {
                report_fail(c, "seccomp: pipe: %s; free some file descriptors", strerror(errno));
                return;
        }
        _cleanup_close_ int rfd = fds[0];
        _cleanup_close_ int wfd = fds[1];
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
                report_fail(c, "seccomp: fork: %s; free some memory or processes", strerror(errno));
                return;
        }
        if (pid == 0) {
                struct seccomp_answer a = { 0 };
                sd_error err = { 0 };
                a.r = seccomp_install(&a.n_allowed, &err);
                memcpy(a.message, err.message, sizeof(a.message));
                ssize_t n = write(wfd, &a, sizeof(a));
                _exit(n == (ssize_t) sizeof(a) ? 0 : 1);
        }
        close(steal_fd(&wfd));
        struct seccomp_answer a = { 0 };
        ssize_t n;
        do
                n = read(rfd, &a, sizeof(a));
        while (n < 0 && errno == EINTR);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (n != (ssize_t) sizeof(a)) {
                report_fail(c, "seccomp: the child that loads the filter died (wait status %d); run secretd check "
                               "again, or set seccomp = no",
                            status);
                return;
        }
        a.message[sizeof(a.message) - 1] = '\0';
        if (a.r < 0) {
                report_fail(c, "%s; set seccomp = no to run without it", a.message);
                return;
        }
        report_ok(c, "seccomp: the filter loads (%zu system calls allowed)", a.n_allowed);
}

static int usage_error(const char *what, const char *arg) {
        fprintf(stderr, "secretd: check: %s '%s'\n", what, arg);
        fputs(usage_check, stderr);
        return DAEMON_EXIT_USAGE;
}

int check_main(int argc, char **argv) {
        /* The flags `secretd run` takes that a check looks at, named as
         * their configuration keys. */
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "store", required_argument, NULL, 1 },
                { "key", required_argument, NULL, 1 },
                { "realm", required_argument, NULL, 1 },
                { "realm-file", required_argument, NULL, 1 },
                { "docker-socket", required_argument, NULL, 1 },
                { "plugin-dir", required_argument, NULL, 1 },
                { "seccomp", required_argument, NULL, 1 },
                { "etcd-ca", required_argument, NULL, 1 },
                { "etcd-cert", required_argument, NULL, 1 },
                { "etcd-key", required_argument, NULL, 1 },
                { "etcd-auth-file", required_argument, NULL, 1 },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        struct check_flag flags[SD_ARRAY_SIZE(options)];
        struct check_run c = { .store_r = 1 };
        int opt, index;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "+h", options, &index)) != -1) {
                switch (opt) {
                case 1:
                        if (c.n_flags == SD_ARRAY_SIZE(flags))
                                return usage_error("too many options at", optarg);
                        flags[c.n_flags++] = (struct check_flag) { options[index].name, optarg };
                        break;
                case 'c':
                        c.config_path = optarg;
                        break;
                case 'h':
                        fputs(usage_check, stdout);
                        return DAEMON_EXIT_OK;
                default:
                        fputs("Try 'secretd check --help'.\n", stderr);
                        return DAEMON_EXIT_USAGE;
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument", argv[optind]);
        c.flags = flags;

        if (sd_config_init(&c.cfg) < 0 || check_config(&c) < 0) {
                fputs("secretd: check: out of memory\n", stderr);
                return CHECK_EXIT_FAILED;
        }
        check_agent_key(&c);
        store_open(&c);
        check_realm(&c);
        check_store(&c);
        check_docker(&c);
        check_plugin_dir(&c);
        check_userns(&c);
        check_seccomp(&c);

        sd_docker_free(c.docker);
        sd_store_free(c.store);
        sd_config_free(&c.cfg);
        if (fflush(stdout) != 0)
                return CHECK_EXIT_FAILED;
        return c.n_failed ? CHECK_EXIT_FAILED : CHECK_EXIT_OK;
}
