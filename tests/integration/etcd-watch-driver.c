/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-etcd-store.sh's window on the store watch: opens the store given as
 * argv[1], takes sd_store_watch_fd() and prints "ready", then for every
 * readable fd calls sd_store_watch_read() and prints "changed NAME" per
 * reported name (stdout, flushed per line).  Warnings (watch lost,
 * restored, compaction) go to stderr as "warning: ...".  Runs until killed.
 *
 * --versions: print "changed NAME N" with the latest version read right
 * after the report, then "health ENDPOINT FAILOVERS REACHABLE" (what
 * sd_store_health says).  The etcd options come from SECRETD_ETCD_CA,
 * SECRETD_ETCD_CERT, SECRETD_ETCD_KEY and SECRETD_ETCD_AUTH_FILE, as for
 * secretctl.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/store.h"

static void on_warn(void *userdata, const char *message) {
        (void) userdata;
        fprintf(stderr, "warning: %s\n", message);
}

static bool with_versions;

static void on_change(void *userdata, const char *name) {
        struct sd_store *store = userdata;
        if (!with_versions) {
                printf("changed %s\n", name);
                fflush(stdout);
                return;
        }
        uint64_t v = 0;
        sd_error err = { 0 };
        if (sd_store_latest(store, name, &v, &err) < 0)
                fprintf(stderr, "latest %s: %s\n", name, err.message);
        struct sd_store_health h;
        sd_store_health(store, &h);
        printf("changed %s %" PRIu64 "\nhealth %s %" PRIu64 " %s\n", name, v, h.endpoint, h.failovers,
               h.reachable ? "reachable" : "unreachable");
        fflush(stdout);
}

static const char *env(const char *name) {
        const char *v = secure_getenv(name);
        return v && v[0] ? v : NULL;
}

int main(int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "--versions") == 0) {
                with_versions = true;
                argv++;
                argc--;
        }
        if (argc != 2) {
                fprintf(stderr, "usage: %s [--versions] STORE_URL\n", argv[0]);
                return 2;
        }
        const struct sd_store_options o = {
                .etcd_ca = env("SECRETD_ETCD_CA"),
                .etcd_cert = env("SECRETD_ETCD_CERT"),
                .etcd_key = env("SECRETD_ETCD_KEY"),
                .etcd_auth_file = env("SECRETD_ETCD_AUTH_FILE"),
        };
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *store = NULL;
        if (sd_store_open_with(argv[1], 0, &o, &store, &err) < 0) {
                fprintf(stderr, "open: %s\n", err.message);
                return 1;
        }
        sd_store_set_warn(store, on_warn, NULL);
        int fd = -1;
        if (sd_store_watch_fd(store, &fd, &err) < 0) {
                fprintf(stderr, "watch_fd: %s\n", err.message);
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return 1;
                sd_error_clear(&err);
                if (sd_store_watch_read(store, on_change, store, &err) < 0) {
                        fprintf(stderr, "watch_read: %s\n", err.message);
                        (void) poll(NULL, 0, 200);
                }
        }
}
