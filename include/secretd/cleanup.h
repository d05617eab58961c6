/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Scope-bound cleanup, as in systemd and bubblewrap: every resource is
 * declared with the attribute that releases it, and ownership leaves a scope
 * only through steal_pointer()/steal_fd().
 */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <jansson.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void sd_freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(sd_freep)

/* close() keeps errno: cleanup runs on error paths whose errno matters. */
static inline void sd_closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
                *fd = -1;
        }
}
#define _cleanup_close_ _cleanup_(sd_closep)

static inline void sd_fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(sd_fclosep)

static inline void sd_closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(sd_closedirp)

static inline void sd_json_decrefp(json_t **j) {
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(sd_json_decrefp)

/* A held mutex, released when the guard leaves scope:
 *     _cleanup_unlock_ pthread_mutex_t *held = sd_lock(&x->lock);
 * Guards are never read, only destroyed: "unused" keeps clang quiet. */
static inline void sd_unlockp(pthread_mutex_t **m) {
        if (*m)
                (void) pthread_mutex_unlock(*m);
}
#define _cleanup_unlock_ _cleanup_(sd_unlockp) __attribute__((unused))

static inline pthread_mutex_t *sd_lock(pthread_mutex_t *m) {
        (void) pthread_mutex_lock(m);
        return m;
}

#define steal_pointer(pp) __extension__ ({ \
        __typeof__(*(pp)) _stolen = *(pp);   \
        *(pp) = NULL;                        \
        _stolen;                             \
})

#define steal_fd(fdp) __extension__ ({ \
        int _stolen_fd = *(fdp);         \
        *(fdp) = -1;                     \
        _stolen_fd;                      \
})

#define SD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
