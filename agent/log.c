/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_level = SD_LOG_INFO;

void log_set_level(enum sd_log_level level) {
        atomic_store(&log_level, (int) level);
}

enum sd_log_level log_get_level(void) {
        return (enum sd_log_level) atomic_load(&log_level);
}

void log_at(enum sd_log_level level, const char *fmt, ...) {
        if ((int) level > atomic_load(&log_level))
                return;
        int saved = errno;
        char line[1024];
        int n = snprintf(line, sizeof(line), "secretd[%s]: ", sd_log_level_name(level));
        if (n < 0)
                n = 0;
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
        va_end(ap);

        /* One event, one line: a message with a newline (it should have
         * none) must not forge a second log line. */
        size_t len = strlen(line);
        for (size_t i = 0; i < len; i++)
                if (line[i] == '\n' || line[i] == '\r')
                        line[i] = ' ';
        line[len++] = '\n';
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
