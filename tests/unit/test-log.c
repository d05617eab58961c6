/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static size_t format(char line[LOG_LINE_MAX], bool journal, int64_t ms, enum sd_log_level level, const char *fmt,
                     ...) SD_PRINTF(5, 6);

static size_t format(char line[LOG_LINE_MAX], bool journal, int64_t ms, enum sd_log_level level, const char *fmt,
                     ...) {
        va_list ap;
        va_start(ap, fmt);
        size_t n = log_format_line(line, journal, ms, level, fmt, ap);
        va_end(ap);
        return n;
}

Test(log, plain_lines_carry_a_utc_timestamp_and_the_level) {
        char line[LOG_LINE_MAX];
        /* 2023-11-14T22:13:20.123Z */
        size_t n = format(line, false, 1700000000123, SD_LOG_WARN, "volume '%s' created", "app");
        cr_assert_str_eq(line, "2023-11-14T22:13:20.123Z secretd[warn]: volume 'app' created\n");
        cr_assert_eq(n, strlen(line));
        format(line, false, 1700000000007, SD_LOG_DEBUG, "x");
        cr_assert_str_eq(line, "2023-11-14T22:13:20.007Z secretd[debug]: x\n");
}

Test(log, journal_lines_carry_the_sd_daemon_priority_and_nothing_else) {
        static const struct {
                enum sd_log_level level;
                const char *want;
        } cases[] = {
                { SD_LOG_ERROR, "<3>m 1\n" },   /* SD_ERR */
                { SD_LOG_WARN, "<4>m 1\n" },    /* SD_WARNING */
                { SD_LOG_INFO, "<6>m 1\n" },    /* SD_INFO */
                { SD_LOG_DEBUG, "<7>m 1\n" },   /* SD_DEBUG */
        };
        char line[LOG_LINE_MAX];
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                format(line, true, 1700000000123, cases[i].level, "m %d", 1);
                cr_assert_str_eq(line, cases[i].want);
        }
}

Test(log, a_message_stays_one_line_and_is_cut_to_the_buffer) {
        char line[LOG_LINE_MAX];
        format(line, true, 0, SD_LOG_INFO, "a\nsecretd[error]: forged\r");
        cr_assert_str_eq(line, "<6>a secretd[error]: forged \n");

        char *big = malloc(4 * LOG_LINE_MAX);
        cr_assert_not_null(big);
        memset(big, 'x', 4 * LOG_LINE_MAX - 1);
        big[4 * LOG_LINE_MAX - 1] = '\0';
        size_t n = format(line, false, 0, SD_LOG_INFO, "%s", big);
        cr_assert_lt(n, LOG_LINE_MAX);
        cr_assert_eq(line[n - 1], '\n');
        cr_assert_eq(strchr(line, '\n'), line + n - 1, "one newline, at the end");
        free(big);
}

Test(log, journal_stream_must_name_the_very_file_on_the_fd) {
        char path[] = "/tmp/secretd-log-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        char value[64];
        snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        cr_assert(log_stream_is_journal(value, fd), "%s", value);

        snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long) st.st_dev,
                 (unsigned long long) st.st_ino + 1);
        cr_assert_not(log_stream_is_journal(value, fd), "another inode: stderr was redirected since");
        static const char *const malformed[] = {
                "", ":", "1:", ":1", "1", "1:2x", "x1:2", "-1:2", "1:-2", " 1:2", "1: 2", "1:2:3",
                "99999999999999999999999:1",
        };
        for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
                cr_assert_not(log_stream_is_journal(malformed[i], fd), "'%s'", malformed[i]);
        cr_assert_not(log_stream_is_journal(NULL, fd));
        close(fd);
        unlink(path);
}

/* The whole path, as under systemd: a child whose stderr is a pipe, with
 * JOURNAL_STREAM naming that pipe (or not), runs log_open() and logs. */
static char *log_from_child(bool journal_stream_matches) {
        int p[2];
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (dup2(p[1], STDERR_FILENO) < 0)
                        _exit(2);
                struct stat st;
                if (fstat(STDERR_FILENO, &st) < 0)
                        _exit(2);
                char value[64];
                snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long) st.st_dev,
                         (unsigned long long) st.st_ino + (journal_stream_matches ? 0 : 1));
                if (setenv("JOURNAL_STREAM", value, 1) < 0)
                        _exit(2);
                log_open();
                log_set_level(SD_LOG_INFO);
                log_error("refused: %s", "why");
                log_info("started");
                log_debug("not shown at level info");
                _exit(0);
        }
        close(p[1]);
        char *out = calloc(1, 4096);
        cr_assert_not_null(out);
        size_t got = 0;
        for (;;) {
                ssize_t n = read(p[0], out + got, 4095 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        close(p[0]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return out;
}

Test(log, under_the_journal_lines_get_priorities_elsewhere_timestamps) {
        char *journal = log_from_child(true);
        cr_assert_str_eq(journal, "<3>refused: why\n<6>started\n");
        free(journal);

        char *plain = log_from_child(false);
        regex_t re;
        cr_assert_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z secretd\\[error\\]: refused: why\n"
                             "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z secretd\\[info\\]: started\n$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
        cr_assert_eq(regexec(&re, plain, 0, NULL, 0), 0, "%s", plain);
        regfree(&re);
        free(plain);
}
