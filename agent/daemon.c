/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `secretd run`: the daemon's life from start-up to a clean stop. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin.h"
#include "audit.h"
#include "cache.h"
#include "daemon.h"
#include "delivery.h"
#include "driver.h"
#include "events.h"
#include "httpd.h"
#include "listen.h"
#include "log.h"
#include "notes.h"
#include "registry.h"
#include "reload.h"
#include "rotate.h"
#include "seccomp-filter.h"
#include "secretd/keys.h"
#include "secretd/realm.h"
#include "secretd/store.h"
#include "userns.h"

static void notify(const char *state) {
#if HAVE_LIBSYSTEMD
        (void) sd_notify(0, state);
#else
        (void) state;
#endif
}

static void store_warn(void *userdata, const char *message) {
        log_warn("store: %s", message);
}

/* Plaintext lives in this process's memory: keep it out of core files and
 * away from ptrace by non-root and /proc/PID/mem readers. */
static int harden_process(sd_error *err) {
        const struct rlimit no_core = { 0, 0 };
        if (setrlimit(RLIMIT_CORE, &no_core) < 0)
                return sd_error_set_errno(err, errno, "cannot disable core dumps");
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return sd_error_set_errno(err, errno, "cannot make the process non-dumpable");
        return 0;
}

static void httpd_stopp(struct httpd **h) {
        httpd_stop(*h);
}

static void events_stopp(struct events **e) {
        events_stop(*e);
}

static void rotator_stopp(struct rotator **r) {
        rotator_stop(*r);
}

static void registry_freep(struct registry **r) {
        registry_free(*r);
}

static void delivery_freep(struct delivery **d) {
        delivery_free(*d);
}

static void userns_freep(struct userns **u) {
        userns_free(*u);
}

static void notes_donep(struct notes *n) {
        notes_done(n);
}

static void cache_freep(struct cache **c) {
        cache_free(*c);
}

static uint64_t floor_of(void *registry, const char *name) {
        return registry_floor(registry, name);
}

/* With an etcd store, the local cache of envelopes (cache.h); a file store
 * is on this host and needs none.  *out stays NULL without one. */
static int cache_setup(const struct sd_config *cfg, struct sd_store *store, const struct envelope_source *inner,
                       struct registry *registry, struct notes *notes, struct cache **out) {
        if (strncmp(sd_store_url(store), "file:", 5) == 0) {
                log_debug("cache-dir is not used: a file store is on this host already");
                return 0;
        }
        if (!cfg->cache_dir[0]) {
                log_warn("the local cache is off (cache-dir is empty): new containers cannot start while the store "
                         "is unreachable");
                return 0;
        }
        const struct cache_config cache_cfg = {
                .dir = cfg->cache_dir,
                .inner = inner,
                .floor = floor_of,
                .floor_ctx = registry,
                .notes = notes,
        };
        sd_error err = { 0 };
        if (cache_open(&cache_cfg, out, &err) < 0) {
                log_error("%s (cache-dir = \"\" turns the cache off)", err.message);
                return -1;
        }
        log_info("cache of verified envelopes in %s (%zu entries): Mounts use it while the store is unreachable",
                 cfg->cache_dir, cache_entries(*out));
        return 0;
}

static void realm_warn(void *userdata, const char *message) {
        log_warn("realm: %s", message);
}

/* The pin (config key realm, else realm-file) and the realm verified from
 * it.  The highest verified policy version is kept next to the rollback
 * floor, where nothing from the store can write.  A store that cannot be
 * reached now is retried at the first fetch; a chain that does not verify
 * stops the agent. */
static int realm_open(const struct sd_config *cfg, struct sd_store *store, struct sd_realm **out) {
        sd_error err = { 0 };
        struct sd_realm_pin pin;
        int r = cfg->realm ? sd_realm_pin_parse(cfg->realm, &pin, &err)
                           : sd_realm_pin_load_file(cfg->realm_file, &pin, &err);
        if (r == -ENOENT) {
                log_error("no realm pinned: %s; run 'secretd join PIN' with the line 'secretctl realm pin' prints",
                          err.message);
                return r;
        }
        if (r < 0) {
                /* A pin file's message names it ("realm pin PATH ..."). */
                log_error("%s%s", cfg->realm ? "realm: " : "", err.message);
                return r;
        }
        _cleanup_free_ char *state = NULL;
        const char *slash = strrchr(cfg->floor_file, '/');
        if (asprintf(&state, "%.*s/realm-state.json", (int) (slash - cfg->floor_file), cfg->floor_file) < 0) {
                log_error("out of memory");
                return -ENOMEM;
        }
        _cleanup_realm_ struct sd_realm *realm = NULL;
        r = sd_realm_new(store, &pin, state, &realm, &err);
        if (r < 0) {
                log_error("realm state: %s", err.message);
                return r;
        }
        sd_realm_set_warn(realm, realm_warn, NULL);
        char id[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(pin.realm, id);
        r = sd_realm_refresh(realm, &err);
        if (r == -EBADMSG || r == -EKEYREJECTED || r == -ESTALE || r == -ENOENT || r == -EPERM || r == -ELOOP) {
                log_error("realm %s: %s", id, err.message);
                return r;
        }
        if (r < 0) {
                log_warn("realm %s: %s; verifying once the store answers", id, err.message);
        } else {
                _cleanup_policy_ struct sd_policy *p = sd_realm_policy(realm);
                log_info("realm %s: policy v%" PRIu64 " verified (%zu writer(s), %zu recipient(s)); state in %s", id,
                         sd_policy_version(p), sd_policy_count(p, SD_POLICY_WRITERS),
                         sd_policy_count(p, SD_POLICY_RECIPIENTS), state);
        }
        *out = steal_pointer(&realm);
        return 0;
}

int daemon_config_load(const struct daemon_config_source *src, struct sd_config *cfg, sd_error *err) {
        if (sd_config_init(cfg) < 0)
                return sd_error_set(err, ENOMEM, "out of memory");
        int r = sd_config_load_agent_file(cfg, src->config_path, err);
        for (size_t i = 0; r >= 0 && i < src->n_flags; i++) {
                r = sd_config_set(cfg, src->flags[i].key, src->flags[i].value, err);
                if (r < 0) {
                        char message[SD_ERROR_MESSAGE_MAX];
                        (void) snprintf(message, sizeof(message), "%s", err->message);
                        (void) sd_error_set(err, r, "--%s", message);
                }
        }
        if (r >= 0)
                r = sd_config_check(cfg, err);
        if (r < 0)
                sd_config_free(cfg);
        return r < 0 ? r : 0;
}

/* SIGHUP: build the configuration again and apply what can be applied
 * live (reload.h).  *applied is what the last reload applied. */
static void reload_config(const struct daemon_config_source *src, const struct sd_config *started,
                          struct sd_config *applied, const struct reload_targets *targets) {
        notify("RELOADING=1\nSTATUS=reloading the configuration");
        sd_error err = { 0 };
        struct sd_config next;
        if (daemon_config_load(src, &next, &err) < 0) {
                log_error("SIGHUP: configuration not reloaded: %s; the agent runs on with the previous configuration",
                          err.message);
        } else if (reload_apply(targets, started, applied->store_url ? applied : started /* no reload yet */,
                                &next) == 0) {
                sd_config_free(applied);
                *applied = next;
        } else {
                sd_config_free(&next);
        }
        notify("READY=1\nSTATUS=serving the volume plugin");
}

int daemon_run(const struct sd_config *cfg, const struct daemon_config_source *src) {
        sd_error err = { 0 };
        log_set_level(cfg->log_level);
        log_info("secretd " SECRETD_VERSION " starting (driver '%s', store %s, state %s)", cfg->driver,
                 cfg->store_url, cfg->state_dir);

        if (harden_process(&err) < 0 || sodium_init() < 0) {
                log_error("%s", err.message[0] ? err.message : "libsodium failed to initialise");
                return DAEMON_EXIT_FAILURE;
        }

        /* Handler threads inherit this mask; the main thread takes the
         * signals synchronously with sigwaitinfo(). */
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGHUP);
        if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0) {
                log_error("cannot block signals");
                return DAEMON_EXIT_FAILURE;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        _cleanup_agent_key_ struct sd_agent_key *key = NULL;
        int r = sd_agent_key_load(cfg->key_path, &key, &err);
        if (r == -ENOENT) {
                log_error("no agent key at %s; run 'secretd init'", cfg->key_path);
                return DAEMON_EXIT_FAILURE;
        }
        if (r < 0) {
                log_error("agent key %s: %s", cfg->key_path, err.message);
                return DAEMON_EXIT_FAILURE;
        }
        _cleanup_free_ char *pubkey = NULL;
        if (sd_agent_pub_format(key->box_pk, &pubkey) < 0) {
                log_error("out of memory");
                return DAEMON_EXIT_FAILURE;
        }
        log_info("agent key %s loaded: %s", cfg->key_path, pubkey);

        _cleanup_store_ struct sd_store *store = NULL;
        struct sd_store_options store_options;
        sd_config_store_options(cfg, &store_options);
        r = sd_store_open_with(cfg->store_url, 0, &store_options, &store, &err);
        if (r < 0) {
                log_error("store %s: %s", cfg->store_url, err.message);
                return DAEMON_EXIT_FAILURE;
        }
        sd_store_set_warn(store, store_warn, NULL);

        _cleanup_realm_ struct sd_realm *realm = NULL;
        if (realm_open(cfg, store, &realm) < 0)
                return DAEMON_EXIT_FAILURE;
        const struct sd_box_keypair keys[] = { { key->box_pk, key->box_sk } };

        _cleanup_audit_ struct audit *audit = NULL;
        if (audit_open(cfg->audit_log, &audit, &err) < 0) {
                log_error("%s (audit-log = \"\" turns the audit log off)", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        if (cfg->audit_log[0])
                log_info("audit log %s", cfg->audit_log);
        else
                log_warn("the audit log is off (audit-log is empty)");
        __attribute__((cleanup(notes_donep))) struct notes notes;
        notes_init(&notes, audit, cfg->driver, cfg->store_url);

        __attribute__((cleanup(registry_freep))) struct registry *registry = NULL;
        const struct registry_config registry_cfg = {
                .state_dir = cfg->state_dir,
                .floor_file = cfg->floor_file,
                .notes = &notes,
                .limits = { .default_size = cfg->default_size, .max_size = cfg->max_size },
                .caps = {
                        .max_volumes = cfg->max_volumes,
                        .max_instances_per_volume = cfg->max_instances_per_volume,
                        .max_inodes = cfg->max_inodes,
                        .max_total_tmpfs = cfg->max_total_tmpfs,
                },
        };
        if (registry_open(&registry_cfg, &registry, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        notes_set_store(&notes, store);
        struct envelope_source store_source;
        delivery_store_source(store, &store_source);
        __attribute__((cleanup(cache_freep))) struct cache *cache = NULL;
        if (cache_setup(cfg, store, &store_source, registry, &notes, &cache) < 0)
                return DAEMON_EXIT_FAILURE;
        __attribute__((cleanup(userns_freep))) struct userns *userns = NULL;
        __attribute__((cleanup(delivery_freep))) struct delivery *delivery = NULL;
        if (userns_new(cfg->docker_socket, &userns, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        const struct delivery_config delivery_cfg = {
                .store = store,
                .source = cache ? cache_source(cache) : NULL,
                .realm = realm,
                .keys = keys,
                .n_keys = SD_ARRAY_SIZE(keys),
                .pubkey_line = pubkey,
                .instances = registry_instances(registry),
                .userns = userns,
                .notes = &notes,
                .on_unverifiable = cfg->on_unverifiable,
        };
        if (delivery_new(&delivery_cfg, &delivery, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        delivery_note_realm(delivery);
        struct driver driver = { .registry = registry, .delivery = delivery, .notes = &notes };
        struct admin admin_api = { .registry = registry, .notes = &notes };
        struct admin metrics_api = { .registry = registry, .notes = &notes, .metrics_only = true };

        __attribute__((cleanup(agent_sockets_close))) struct agent_sockets sockets = {
                .plugin = { .fd = -1 },
                .admin = { .fd = -1 },
                .metrics_fd = -1,
        };
        if (agent_sockets_open(cfg, &sockets, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        /* Everything is open: from here on the agent only serves. */
        if (cfg->seccomp) {
                size_t n_allowed = 0;
                if (seccomp_install(&n_allowed, &err) < 0) {
                        log_error("%s (seccomp = no turns the filter off)", err.message);
                        return DAEMON_EXIT_FAILURE;
                }
                log_info("seccomp: %zu system calls allowed, others fail with EPERM", n_allowed);
        } else {
                log_warn("seccomp is off: the agent may make any system call");
        }
        __attribute__((cleanup(httpd_stopp))) struct httpd *server = NULL;
        if (driver_serve(&driver, steal_fd(&sockets.plugin.fd), agent_socket_unlink_path(&sockets.plugin),
                         cfg->connection_timeout, &server, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        sockets.plugin.served = true;
        log_info("serving the volume plugin '%s' on %s", cfg->driver, sockets.plugin.path);
        __attribute__((cleanup(httpd_stopp))) struct httpd *admin = NULL;
        if (admin_serve(&admin_api, steal_fd(&sockets.admin.fd), agent_socket_unlink_path(&sockets.admin), &admin,
                        &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        sockets.admin.served = true;
        log_info("admin API (status, metrics) for root on %s", cfg->admin_socket);
        __attribute__((cleanup(httpd_stopp))) struct httpd *metrics_server = NULL;
        if (sockets.metrics_fd >= 0) {
                if (admin_serve_metrics(&metrics_api, steal_fd(&sockets.metrics_fd), &metrics_server, &err) < 0) {
                        log_error("%s", err.message);
                        return DAEMON_EXIT_FAILURE;
                }
                log_info("GET /metrics on %s (metrics-listen; loopback only)", cfg->metrics_listen);
        }
        /* After the plugin server: the first reconcile may take a while
         * and must not delay dockerd's Mounts. */
        __attribute__((cleanup(events_stopp))) struct events *events = NULL;
        const struct events_config events_cfg = {
                .registry = registry,
                .notes = &notes,
                .userns = userns,
                .docker_socket = cfg->docker_socket,
                .driver = cfg->driver,
        };
        if (events_start(&events_cfg, &events, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        __attribute__((cleanup(rotator_stopp))) struct rotator *rotator = NULL;
        const struct rotator_config rotator_cfg = {
                .registry = registry,
                .delivery = delivery,
                .notes = &notes,
                .store = store,
                .docker_socket = cfg->docker_socket,
                .cache = cache,
                .realm = realm,
        };
        if (rotator_start(&rotator_cfg, &rotator, &err) < 0) {
                log_error("%s", err.message);
                return DAEMON_EXIT_FAILURE;
        }
        notify("READY=1\nSTATUS=serving the volume plugin");

        const struct reload_targets reload_targets = { .registry = registry, .delivery = delivery, .audit = audit };
        _cleanup_config_ struct sd_config applied = { 0 };
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&stop_signals, &si);
                if (sig < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("sigwaitinfo: %s", strerror(errno));
                        break;
                }
                if (sig == SIGHUP) {
                        reload_config(src, cfg, &applied, &reload_targets);
                        continue;
                }
                log_info("%s received: stopping; running containers keep their secrets",
                         sig == SIGTERM ? "SIGTERM" : "SIGINT");
                break;
        }
        notify("STOPPING=1");
        /* Mounts of running containers stay: dockerd still holds them and
         * their records are adopted at the next start.  State files are
         * written on every change, so nothing is left to flush. */
        rotator_stop(steal_pointer(&rotator));
        events_stop(steal_pointer(&events));
        httpd_stop(steal_pointer(&metrics_server));
        httpd_stop(steal_pointer(&admin));
        httpd_stop(steal_pointer(&server));
        log_info("stopped");
        return DAEMON_EXIT_OK;
}
