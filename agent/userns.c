/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "secretd/docker.h"
#include "userns.h"

static void file_closep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

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
        __attribute__((cleanup(file_closep))) FILE *f = fopen(path, "re");
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

int userns_host_ids(const struct agent *a, uint32_t uid, uint32_t gid, uid_t *uid_out, gid_t *gid_out,
                    sd_error *warning_out, sd_error *err) {
        bool remapped = false;
        if (a->docker_socket) {
                _cleanup_docker_ struct sd_docker *d = NULL;
                sd_error sub = { 0 };
                int r = sd_docker_new(a->docker_socket, &d, &sub);
                if (r >= 0) {
                        /* dockerd is waiting for this Mount: it answers at
                         * once or not at all. */
                        sd_docker_set_timeouts(d, 2000, 5000);
                        r = sd_docker_userns_remapped(d, &remapped, &sub);
                }
                if (r < 0)
                        sd_error_set(warning_out, -r, "cannot ask dockerd whether it remaps user namespaces "
                                     "(%s); files keep uid %" PRIu32 ", gid %" PRIu32, sub.message, uid, gid);
        }
        if (!remapped) {
                *uid_out = (uid_t) uid;
                *gid_out = (gid_t) gid;
                return 0;
        }
        uint64_t ustart, ucount, gstart, gcount;
        int r = userns_subid_range("/etc/subuid", USERNS_REMAP_USER, &ustart, &ucount, err);
        if (r < 0)
                return r;
        r = userns_subid_range("/etc/subgid", USERNS_REMAP_USER, &gstart, &gcount, err);
        if (r < 0)
                return r;
        if (uid >= ucount || gid >= gcount)
                return sd_error_set(err, ERANGE,
                                    "dockerd remaps user namespaces to %" PRIu64 "+%" PRIu64 " (uids) and %" PRIu64
                                    "+%" PRIu64 " (gids) of " USERNS_REMAP_USER "; uid %" PRIu32 " or gid %" PRIu32
                                    " is outside that range",
                                    ustart, ucount, gstart, gcount, uid, gid);
        *uid_out = (uid_t) (ustart + uid);
        *gid_out = (gid_t) (gstart + gid);
        return 0;
}
