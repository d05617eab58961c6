/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "secretd/clock.h"

static atomic_int log_level = SD_LOG_INFO;
static atomic_bool log_to_journal = false;

/* sd-daemon(3)'s SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG (syslog levels). */
static const int journal_priority[] = {
        [SD_LOG_ERROR] = 3,
        [SD_LOG_WARN] = 4,
        [SD_LOG_INFO] = 6,
        [SD_LOG_DEBUG] = 7,
};

void log_set_level(enum sd_log_level level) {
        atomic_store(&log_level, (int) level);
}

enum sd_log_level log_get_level(void) {
        return (enum sd_log_level) atomic_load(&log_level);
}

/* Decimal digits up to `stop`, into *out; false on anything else or on
 * overflow. */
static bool parse_decimal(const char **p, char stop, unsigned long long *out) {
        const char *s = *p;
        unsigned long long v = 0;
        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned) (*s - '0');
                if (v > (~0ULL - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (*s != stop)
                return false;
        *p = stop ? s + 1 : s;
        *out = v;
        return true;
}

bool log_stream_is_journal(const char *journal_stream, int fd) {
        /* systemd.exec(5): set when stdout or stderr is connected to the
         * journal; a program whose stderr was redirected since (a shell
         * wrapper's 2>file) still inherits it, hence the comparison. */
        if (!journal_stream)
                return false;
        unsigned long long dev, ino;
        const char *p = journal_stream;
        if (!parse_decimal(&p, ':', &dev) || !parse_decimal(&p, '\0', &ino))
                return false;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_open(void) {
        atomic_store(&log_to_journal, log_stream_is_journal(secure_getenv("JOURNAL_STREAM"), STDERR_FILENO));
}

size_t log_format_line(char line[LOG_LINE_MAX], bool journal, int64_t realtime_ms, enum sd_log_level level,
                       const char *fmt, va_list ap) {
        int n;
        if (journal) {
                int priority = (size_t) level < SD_ARRAY_SIZE(journal_priority) ? journal_priority[level] : 6;
                n = snprintf(line, LOG_LINE_MAX, "<%d>", priority);
        } else {
                char stamp[SD_TIMESTAMP_MAX];
                sd_format_timestamp_ms(realtime_ms, stamp);
                n = snprintf(line, LOG_LINE_MAX, "%s secretd[%s]: ", stamp, sd_log_level_name(level));
        }
        if (n < 0)
                n = 0;
        /* Room for the newline. */
        (void) vsnprintf(line + n, LOG_LINE_MAX - 1 - (size_t) n, fmt, ap);

        /* One event, one line: a message with a newline (it should have
         * none) must not forge a second log line. */
        size_t len = strlen(line);
        for (size_t i = (size_t) n; i < len; i++)
                if (line[i] == '\n' || line[i] == '\r')
                        line[i] = ' ';
        line[len++] = '\n';
        line[len] = '\0';
        return len;
}

void log_at(enum sd_log_level level, const char *fmt, ...) {
        if ((int) level > atomic_load(&log_level))
                return;
        int saved = errno;
        char line[LOG_LINE_MAX];
        va_list ap;
        va_start(ap, fmt);
        size_t len = log_format_line(line, atomic_load(&log_to_journal), sd_realtime_ms(), level, fmt, ap);
        va_end(ap);

        const char *p = line;
        while (len > 0) {
                ssize_t w = write(STDERR_FILENO, p, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        break;
                p += w;
                len -= (size_t) w;
        }
        errno = saved;
}
