/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's configuration: built-in defaults, then the INI file
 * (/etc/secretd/secretd.conf, section [secretd]), then command-line flags.
 * A flag `--max-size 8M` and a file line `max-size = 8M` go through the same
 * sd_config_set(), so both accept and refuse exactly the same values.
 *
 *   [secretd]
 *   store = file:///var/lib/secretd/store
 *   driver = secretd
 *   key = /etc/secretd/agent.key
 *   realm = sdr1:...             (the realm pin; or realm-file)
 *   realm-file = /etc/secretd/realm   (holds the pin; `secretd join PIN` writes it)
 *   state-dir = /run/secretd
 *   docker-socket = /var/run/docker.sock
 *   plugin-dir = /run/docker/plugins
 *   default-size = 1M
 *   max-size = 16M
 *   log-level = info
 *   max-volumes = 1024           (resource caps: each refusal names its key)
 *   max-instances-per-volume = 64
 *   max-inodes = 1024            (nr_inodes of one instance)
 *   max-total-tmpfs = 256M       (sum of the size caps of live instances)
 *   floor-file = /var/lib/secretd/delivered.json   (rollback floor)
 *   cache-dir = /var/lib/secretd/cache   (etcd stores: verified envelopes for outages; empty disables)
 *   admin-socket = /run/secretd/admin.sock   (read-only admin API for root)
 *   audit-log = /var/log/secretd/audit.log   (JSON lines; empty disables)
 *   seccomp = yes                (yes|no; a system-call allow-list)
 *   connection-timeout = 150     (seconds an idle plugin connection lives)
 *   on-unverifiable = previous   (previous|refuse: when a secret's newest
 *                                version does not verify, deliver the newest
 *                                one that does, or refuse)
 *   etcd-ca = /etc/secretd/etcd-ca.pem      (etcds://: the CA; empty: system CAs)
 *   etcd-cert = /etc/secretd/etcd-client.pem  (etcds://: client certificate)
 *   etcd-key = /etc/secretd/etcd-client.key   (its key: root-owned, 0600)
 *   etcd-auth-file = /etc/secretd/etcd-auth   (etcd user and password: root-owned, 0600)
 *   metrics-listen = 127.0.0.1:9101   (GET /metrics over loopback TCP; empty: off)
 *
 * Unknown sections and keys are errors (a typo must not silently fall back
 * to a default); every message names the file, the line and the key.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"

#define SD_CONFIG_DEFAULT_PATH "/etc/secretd/secretd.conf"
#define SD_CONFIG_SECTION "secretd"
/* Largest configuration file read (it is a dozen short lines). */
#define SD_CONFIG_MAX_BYTES ((size_t) 64 << 10)
/* Lines longer than this are refused: libinih would split them silently. */
#define SD_CONFIG_MAX_LINE 190
/* tmpfs sizes: at least one page per file is needed, and more than 1 GiB of
 * secrets in RAM per container is certainly a mistake. */
#define SD_SIZE_MIN ((uint64_t) 4096)
#define SD_SIZE_MAX ((uint64_t) 1 << 30)
/* max-total-tmpfs adds up many instances: up to 1024G. */
#define SD_TOTAL_SIZE_MAX ((uint64_t) 1 << 40)
/* Counts (max-volumes, max-instances-per-volume, max-inodes): 1..this. */
#define SD_COUNT_MAX ((uint64_t) 1000000)
/* Where `secretd join` writes the realm pin. */
#define SD_CONFIG_DEFAULT_REALM_FILE "/etc/secretd/realm"
/* The rollback floor must outlive a reboot, so not under /run. */
#define SD_CONFIG_DEFAULT_FLOOR_FILE "/var/lib/secretd/delivered.json"
/* So must the envelopes kept for a store outage (docs/agent.md "Store outages"). */
#define SD_CONFIG_DEFAULT_CACHE_DIR "/var/lib/secretd/cache"

/* What the agent does when a secret's newest version fails verification
 * (unknown writer, forged, outside its writer's patterns). */
enum sd_on_unverifiable {
        SD_ON_UNVERIFIABLE_PREVIOUS = 0,  /* deliver the newest version that verifies, not below the floor */
        SD_ON_UNVERIFIABLE_REFUSE = 1,    /* refuse the Mount (running containers keep their files) */
};

enum sd_log_level {
        SD_LOG_ERROR = 0,
        SD_LOG_WARN = 1,
        SD_LOG_INFO = 2,
        SD_LOG_DEBUG = 3,
};

struct sd_config {
        char *store_url;        /* store */
        char *driver;           /* driver: plugin name, socket <plugin_dir>/<driver>.sock */
        char *key_path;         /* key */
        char *realm;            /* realm: the pin line; NULL: read realm-file */
        char *realm_file;       /* realm-file (absolute) */
        char *state_dir;        /* state-dir (absolute) */
        char *docker_socket;    /* docker-socket (absolute) */
        char *plugin_dir;       /* plugin-dir (absolute) */
        uint64_t default_size;  /* default-size, bytes */
        uint64_t max_size;      /* max-size, bytes */
        enum sd_log_level log_level;
        /* Resource caps; each refusal names its key. */
        uint64_t max_volumes;               /* max-volumes: volume definitions */
        uint64_t max_instances_per_volume;  /* max-instances-per-volume: live tmpfs instances */
        uint64_t max_inodes;                /* max-inodes: nr_inodes of one instance */
        uint64_t max_total_tmpfs;           /* max-total-tmpfs: bytes, sum of live instances' size caps */
        char *floor_file;                   /* floor-file: the rollback floor (absolute) */
        char *cache_dir;                    /* cache-dir: envelopes kept for outages (absolute, "" none) */
        char *admin_socket;     /* admin-socket (absolute) */
        char *audit_log;        /* audit-log (absolute, or "" for none) */
        bool seccomp;                 /* seccomp: yes|no (default yes when built with libseccomp) */
        unsigned connection_timeout;  /* connection-timeout, seconds, 1..3600 */
        /* etcd-ca, etcd-cert, etcd-key, etcd-auth-file: absolute paths, ""
         * when unset (struct sd_store_options, docs/store.md). */
        char *etcd_ca;
        char *etcd_cert;
        char *etcd_key;
        char *etcd_auth_file;
        /* metrics-listen: "" (off, the default), or a loopback address and
         * port, "127.0.0.1:9101" or "[::1]:9101" (sd_config_loopback_address). */
        char *metrics_listen;
        enum sd_on_unverifiable on_unverifiable;  /* on-unverifiable */
};

/* Fill cfg with the built-in defaults (strings malloc()ed).  -ENOMEM. */
int sd_config_init(struct sd_config *cfg);
void sd_config_free(struct sd_config *cfg);
#define _cleanup_config_ _cleanup_(sd_config_free)

/* Set one key (file spelling: "max-size", "log-level", ...) from its text.
 * -EINVAL naming the key and the value if the key is unknown or the value
 * bad.  cfg is unchanged on failure. */
int sd_config_set(struct sd_config *cfg, const char *key, const char *value, sd_error *err);

/* Parse INI text text[0..len) (need not be NUL-terminated; a NUL byte is an
 * error) and apply it over cfg.  `source` names it in messages
 * ("/etc/secretd/secretd.conf:7: unknown key 'maxsize' ...").  On failure cfg
 * may hold some of the file's earlier values: callers discard it. */
int sd_config_parse_string(struct sd_config *cfg, const char *text, size_t len, const char *source,
                           sd_error *err);

/* Read path and apply it over cfg.  A missing file is -ENOENT, which the
 * caller ignores for the default path and reports for an explicit one. */
int sd_config_load_file(struct sd_config *cfg, const char *path, sd_error *err);

/* The agent's configuration file as the agent reads it: path, or
 * SD_CONFIG_DEFAULT_PATH when NULL, checked as a root of trust
 * (sd_trust_root_check(): whoever can change it owns the agent) and
 * applied over cfg.  A missing default file leaves cfg as it is (the agent
 * runs on the defaults); a missing explicit one is -ENOENT.  The errors of
 * those two otherwise. */
int sd_config_load_agent_file(struct sd_config *cfg, const char *path, sd_error *err);

struct sd_store_options;
/* The store options the configuration names (unset keys: NULL). */
void sd_config_store_options(const struct sd_config *cfg, struct sd_store_options *out);

/* The metrics-listen value text as a socket address: "IPV4:PORT" or
 * "[IPV6]:PORT", numeric only, the address a loopback one (127.0.0.0/8 or
 * ::1: /metrics has no authentication, so it is never served beyond this
 * host) and the port 1..65535.  Fills *addr and *len_out.  -EINVAL naming
 * the value and what is wrong (a non-loopback address says so and what to
 * use instead). */
int sd_config_loopback_address(const char *text, struct sockaddr_storage *addr, socklen_t *len_out,
                               sd_error *err);

/* Every key of the configuration file, for sd_config_diff()'s array. */
#define SD_CONFIG_KEYS 27

/* The keys (file spelling, in the order secretd.conf(5) lists them) whose
 * values differ between a and b: the first max in keys_out; returns how
 * many differ.  SIGHUP uses it to tell what a reload changed. */
size_t sd_config_diff(const struct sd_config *a, const struct sd_config *b, const char **keys_out, size_t max);

/* Checks across keys, run once everything is applied: default-size must not
 * exceed max-size, nor max-size max-total-tmpfs. */
int sd_config_check(const struct sd_config *cfg, sd_error *err);

/* "previous", "refuse". */
int sd_on_unverifiable_parse(const char *text, enum sd_on_unverifiable *out, sd_error *err);
const char *sd_on_unverifiable_name(enum sd_on_unverifiable v);

/* "16M" -> 16777216.  Decimal digits with an optional K, M or G suffix
 * (powers of 1024, either case); result between SD_SIZE_MIN and SD_SIZE_MAX.
 * `what` names the thing in messages ("max-size", "option 'size'"). */
int sd_size_parse(const char *what, const char *text, uint64_t *out, sd_error *err);

/* "error", "warn", "info", "debug". */
int sd_log_level_parse(const char *text, enum sd_log_level *out, sd_error *err);
const char *sd_log_level_name(enum sd_log_level level);
