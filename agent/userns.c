/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/clock.h"
#include "secretd/docker.h"
#include "userns.h"

static bool parse_u64(const char *s, size_t n, uint64_t *out) {
        if (n == 0 || n > 10)
                return false;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *out = v;
        return true;
}

int userns_subid_range(const char *path, const char *user, uint64_t *start_out, uint64_t *count_out,
                       sd_error *err) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return sd_error_set(err, ENOENT, "%s: missing, so no id range for %s", path, user);
                return sd_error_set_errno(err, errno, "%s: cannot open", path);
        }
        char line[256];
        size_t ulen = strlen(user);
        while (fgets(line, sizeof(line), f)) {
                /* name:start:count; dockerd sorts a user's ranges by
                 * start, and its first range holds container id 0. */
                if (strncmp(line, user, ulen) != 0 || line[ulen] != ':')
                        continue;
                const char *start = line + ulen + 1;
                const char *colon = strchr(start, ':');
                if (!colon)
                        continue;
                const char *count = colon + 1;
                size_t clen = strcspn(count, "\r\n");
                uint64_t s, c;
                if (!parse_u64(start, (size_t) (colon - start), &s) || !parse_u64(count, clen, &c) || c == 0)
                        continue;
                *start_out = s;
                *count_out = c;
                return 0;
        }
        if (ferror(f))
                return sd_error_set(err, EIO, "%s: read failed", path);
        return sd_error_set(err, ENOENT, "%s: no id range for %s", path, user);
}

enum remap_state {
        REMAP_UNKNOWN,
        REMAP_NO,
        REMAP_YES,
        REMAP_BROKEN,          /* remaps, but the dockremap ranges are unusable */
};

/* A Mount or rotation that finds dockerd unreachable does not ask again
 * for this long (a fan-out to 1,000 instances would ask 1,000 times). */
#define RETRY_AFTER_MS 5000

struct userns {
        char *docker_socket;   /* NULL: never asked */
        int64_t failed_ms;     /* CLOCK_MONOTONIC of the last failed ask, 0: none */
        sd_error failure;
        pthread_mutex_t lock;  /* guards the fields below; held across the one /info call */
        enum remap_state state;
        uint64_t ustart, ucount, gstart, gcount;
        sd_error broken;       /* REMAP_BROKEN: why */
};

int userns_new(const char *docker_socket, struct userns **out, sd_error *err) {
        struct userns *u = calloc(1, sizeof(*u));
        if (!u)
                return sd_error_set(err, ENOMEM, "out of memory");
        if (docker_socket) {
                u->docker_socket = strdup(docker_socket);
                if (!u->docker_socket) {
                        free(u);
                        return sd_error_set(err, ENOMEM, "out of memory");
                }
        }
        (void) pthread_mutex_init(&u->lock, NULL);
        u->state = docker_socket ? REMAP_UNKNOWN : REMAP_NO;
        *out = u;
        return 0;
}

void userns_free(struct userns *u) {
        if (!u)
                return;
        (void) pthread_mutex_destroy(&u->lock);
        free(u->docker_socket);
        free(u);
}

/* Lock held. */
static int refresh_locked(struct userns *u, sd_error *warning_out) {
        if (!u->docker_socket)
                return 0;
        bool remapped = false;
        _cleanup_docker_ struct sd_docker *d = NULL;
        sd_error sub = { 0 };
        int r = sd_docker_new(u->docker_socket, &d, &sub);
        if (r >= 0) {
                /* A Mount may be waiting for this: dockerd answers at
                 * once or not at all. */
                sd_docker_set_timeouts(d, 2000, 5000);
                r = sd_docker_userns_remapped(d, &remapped, &sub);
        }
        if (r < 0) {
                u->state = REMAP_UNKNOWN;
                u->failed_ms = sd_monotonic_ms();
                sd_error_set(&u->failure, -r, "cannot ask dockerd whether it remaps user namespaces (%s)",
                             sub.message);
                return sd_error_set(warning_out, -r, "%s", u->failure.message);
        }
        u->failed_ms = 0;
        if (!remapped) {
                u->state = REMAP_NO;
                return 0;
        }
        sd_error_clear(&u->broken);
        u->state = REMAP_BROKEN;
        if (userns_subid_range("/etc/subuid", USERNS_REMAP_USER, &u->ustart, &u->ucount, &u->broken) < 0 ||
            userns_subid_range("/etc/subgid", USERNS_REMAP_USER, &u->gstart, &u->gcount, &u->broken) < 0)
                return 0;
        u->state = REMAP_YES;
        return 0;
}

int userns_refresh(struct userns *u, sd_error *warning_out) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&u->lock);
        return refresh_locked(u, warning_out);
}

int userns_host_ids(struct userns *u, uint32_t uid, uint32_t gid, uid_t *uid_out, gid_t *gid_out,
                    sd_error *warning_out, sd_error *err) {
        _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&u->lock);
        if (u->state == REMAP_UNKNOWN) {
                sd_error warning = { 0 };
                bool asked_lately = u->failed_ms && sd_monotonic_ms() - u->failed_ms < RETRY_AFTER_MS;
                if (asked_lately)
                        warning = u->failure;
                if ((asked_lately || refresh_locked(u, &warning) < 0) && warning_out)
                        sd_error_set(warning_out, warning.code, "%s; files keep uid %" PRIu32 ", gid %" PRIu32,
                                     warning.message, uid, gid);
        }
        switch (u->state) {
        case REMAP_UNKNOWN:
        case REMAP_NO:
                *uid_out = (uid_t) uid;
                *gid_out = (gid_t) gid;
                return 0;
        case REMAP_BROKEN:
                return sd_error_set(err, u->broken.code, "%s", u->broken.message);
        case REMAP_YES:
                break;
        }
        if (uid >= u->ucount || gid >= u->gcount)
                return sd_error_set(err, ERANGE,
                                    "dockerd remaps user namespaces to %" PRIu64 "+%" PRIu64 " (uids) and %" PRIu64
                                    "+%" PRIu64 " (gids) of " USERNS_REMAP_USER "; uid %" PRIu32 " or gid %" PRIu32
                                    " is outside that range",
                                    u->ustart, u->ucount, u->gstart, u->gcount, uid, gid);
        *uid_out = (uid_t) (u->ustart + uid);
        *gid_out = (gid_t) (u->gstart + gid);
        return 0;
}
