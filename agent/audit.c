/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "fileio.h"
#include "log.h"
#include "metrics.h"
#include "secretd/clock.h"
#include "secretd/cleanup.h"
#include "secretd/names.h"

/* A failed audit write is logged at most this often: a full disk must not
 * turn every Mount into a log line. */
#define AUDIT_WARN_INTERVAL_MS 60000

struct audit {
        pthread_rwlock_t lock;      /* write side: audit_reopen() swapping the two below */
        int fd;                     /* -1: disabled */
        char *path;
        atomic_llong last_warn_ms;
};

static const char *const kind_names[] = {
        [AUDIT_DELIVER] = "deliver",
        [AUDIT_ROTATE] = "rotate",
        [AUDIT_WIPE] = "wipe",
        [AUDIT_REFUSE] = "refuse",
};

const char *audit_event_kind_name(enum audit_event_kind k) {
        if ((size_t) k >= SD_ARRAY_SIZE(kind_names))
                return "?";
        return kind_names[k];
}

/* Open path for appending: *fd_out, or -1 for NULL or "" (disabled). */
static int audit_open_fd(const char *path, int *fd_out, sd_error *err) {
        *fd_out = -1;
        if (!path || !path[0])
                return 0;
        if (path[0] != '/')
                return sd_error_set(err, EINVAL, "audit log '%s' is not an absolute path", path);
        const char *base = NULL;
        sd_error sub = { 0 };
        _cleanup_close_ int dirfd = sd_open_parent(path, true, 0700, &base, &sub);
        if (dirfd < 0)
                return sd_error_set(err, -dirfd, "audit log %s: %s", path, sub.message);
        /* O_NOFOLLOW: a symlink planted at the log's name must not make
         * root append to some other file. */
        _cleanup_close_ int fd = openat(dirfd, base, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                                        0600);
        if (fd < 0)
                return sd_error_set_errno(err, errno, "audit log %s: cannot open", path);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return sd_error_set(err, EINVAL, "audit log %s is not a regular file", path);
        *fd_out = steal_fd(&fd);
        return 0;
}

int audit_open(const char *path, struct audit **out, sd_error *err) {
        _cleanup_free_ struct audit *a = calloc(1, sizeof(*a));
        if (!a)
                return sd_error_set(err, ENOMEM, "out of memory");
        int r = audit_open_fd(path, &a->fd, err);
        if (r < 0)
                return r;
        if (a->fd >= 0 && !(a->path = strdup(path))) {
                sd_closep(&a->fd);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        if (pthread_rwlock_init(&a->lock, NULL) != 0) {
                sd_closep(&a->fd);
                free(a->path);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        *out = steal_pointer(&a);
        return 0;
}

int audit_reopen(struct audit *a, const char *path, sd_error *err) {
        int fd = -1;
        int r = audit_open_fd(path, &fd, err);
        if (r < 0)
                return r;
        char *copy = NULL;
        if (fd >= 0 && !(copy = strdup(path))) {
                (void) close(fd);
                return sd_error_set(err, ENOMEM, "out of memory");
        }
        /* Writers hold the read side across their write(2): the old fd is
         * closed only when none is using it, so no line goes to a file
         * that reused its number. */
        pthread_rwlock_wrlock(&a->lock);
        int old_fd = a->fd;
        char *old_path = a->path;
        a->fd = fd;
        a->path = copy;
        pthread_rwlock_unlock(&a->lock);
        sd_closep(&old_fd);
        free(old_path);
        return 0;
}

void audit_close(struct audit *a) {
        if (!a)
                return;
        sd_closep(&a->fd);
        free(a->path);
        pthread_rwlock_destroy(&a->lock);
        free(a);
}

/* jansson refuses strings that are not UTF-8; an odd container name must
 * still be audited, escaped. */
static int set_string(json_t *obj, const char *key, const char *value) {
        if (!value)
                return 0;
        json_t *s = json_string(value);
        if (!s) {
                char shown[512];
                s = json_string(sd_escape_for_message(value, strlen(value), shown, sizeof(shown)));
        }
        if (!s)
                return -ENOMEM;
        return json_object_set_new(obj, key, s) < 0 ? -ENOMEM : 0;
}

int audit_format(const struct audit_event *ev, int64_t time_ms, char **line_out) {
        time_t secs = (time_t) (time_ms / 1000);
        struct tm tm;
        if (!gmtime_r(&secs, &tm))
                return -EINVAL;
        char stamp[40];
        size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0)
                return -EINVAL;
        (void) snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", (int) (time_ms % 1000));

        _cleanup_json_ json_t *obj = json_object();
        if (!obj)
                return -ENOMEM;
        if (set_string(obj, "time", stamp) < 0 || set_string(obj, "event", audit_event_kind_name(ev->kind)) < 0 ||
            set_string(obj, "container", ev->container) < 0 ||
            set_string(obj, "container_name", ev->container_name) < 0 ||
            set_string(obj, "volume", ev->volume) < 0 || set_string(obj, "instance", ev->instance) < 0 ||
            set_string(obj, "secret", ev->secret) < 0)
                return -ENOMEM;
        if (ev->version > 0 && json_object_set_new(obj, "version", json_integer((json_int_t) ev->version)) < 0)
                return -ENOMEM;
        if (set_string(obj, "writer", ev->writer) < 0 || set_string(obj, "reason", ev->reason) < 0)
                return -ENOMEM;

        /* JSON_COMPACT escapes control characters, so a line is one line. */
        _cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *line = malloc(len + 2);
        if (!line)
                return -ENOMEM;
        memcpy(line, text, len);
        line[len] = '\n';
        line[len + 1] = '\0';
        *line_out = line;
        return 0;
}

/* Under a->lock (read side), with a->fd open. */
static int audit_append(struct audit *a, const struct audit_event *ev) {
        int64_t now = sd_realtime_ms();
        _cleanup_free_ char *line = NULL;
        int r = audit_format(ev, now, &line);
        if (r == 0) {
                /* One write(2) on an O_APPEND fd: the kernel appends the
                 * whole line at the end under the inode lock, so lines of
                 * concurrent writers never interleave.  A short write
                 * (disk full) is an error, not retried: a torn retry could
                 * land after another writer's line. */
                size_t len = strlen(line);
                ssize_t w;
                do
                        w = write(a->fd, line, len);
                while (w < 0 && errno == EINTR);
                if (w < 0)
                        r = -errno;
                else if ((size_t) w != len)
                        r = -ENOSPC;
        }
        if (r < 0) {
                metrics_error(ERROR_AUDIT);
                long long last = atomic_load(&a->last_warn_ms);
                if ((last == 0 || now - last >= AUDIT_WARN_INTERVAL_MS) &&
                    atomic_compare_exchange_strong(&a->last_warn_ms, &last, (long long) now))
                        log_warn("audit log %s: cannot append a '%s' record: %s", a->path,
                                 audit_event_kind_name(ev->kind), strerror(-r));
        }
        return r;
}

int audit_log(struct audit *a, const struct audit_event *ev) {
        if (!a)
                return 0;
        pthread_rwlock_rdlock(&a->lock);
        int r = a->fd < 0 ? 0 : audit_append(a, ev);
        pthread_rwlock_unlock(&a->lock);
        return r;
}
