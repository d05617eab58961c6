/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-etcd-store.sh's window on the store watch: opens the store given as
 * argv[1], takes sd_store_watch_fd() and prints "ready", then for every
 * readable fd calls sd_store_watch_read() and prints "changed NAME" per
 * reported name (stdout, flushed per line).  Warnings (watch lost,
 * restored, compaction) go to stderr as "warning: ...".  Runs until killed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>

#include "secretd/store.h"

static void on_warn(void *userdata, const char *message) {
        (void) userdata;
        fprintf(stderr, "warning: %s\n", message);
}

static void on_change(void *userdata, const char *name) {
        (void) userdata;
        printf("changed %s\n", name);
        fflush(stdout);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s STORE_URL\n", argv[0]);
                return 2;
        }
        sd_error err = { 0 };
        _cleanup_store_ struct sd_store *store = NULL;
        if (sd_store_open(argv[1], 0, &store, &err) < 0) {
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
                if (sd_store_watch_read(store, on_change, NULL, &err) < 0) {
                        fprintf(stderr, "watch_read: %s\n", err.message);
                        (void) poll(NULL, 0, 200);
                }
        }
}
