/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The HTTP transport (src/http.c) against a small server on a unix socket
 * in this process: bounded replies, deadlines, the errno map and its
 * messages, concurrent requests from several threads, and the line stream
 * with its stop fd.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "secretd/http.h"

/* What the server answers to every connection. */
enum script {
        ANSWER_OK,         /* 200, body "hello" */
        ANSWER_BIG,        /* 200, 64 KiB body */
        ANSWER_STALL,      /* reads the request, never answers */
        ANSWER_CLOSE,      /* closes without a word */
        ANSWER_STREAM,     /* 200 chunked: two lines, then a tail without '\n', then closes */
        ANSWER_STREAM_IDLE,/* 200 chunked: one line, then stays open */
        ANSWER_REFUSED,    /* 503 with a JSON body */
};

struct server {
        char dir[64];
        char path[128];
        int fd;
        enum script script;
        pthread_t thread;
        int stop;          /* eventfd: the server thread ends */
        int requests;      /* counted under lock */
        int active;        /* connection threads still running, under lock */
        pthread_mutex_t lock;
};

static void write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w <= 0)
                        return;
                s += w;
                n -= (size_t) w;
        }
}

static void read_request(int c) {
        char buf[4096];
        size_t have = 0;
        /* Headers end with a blank line; our requests here have no body. */
        while (have < sizeof(buf) - 1) {
                ssize_t n = read(c, buf + have, sizeof(buf) - 1 - have);
                if (n <= 0)
                        return;
                have += (size_t) n;
                buf[have] = '\0';
                if (strstr(buf, "\r\n\r\n"))
                        return;
        }
}

static void *serve_one(void *userdata) {
        struct server *s = ((struct server **) userdata)[0];
        int c = (int) (intptr_t) ((void **) userdata)[1];
        free(userdata);
        read_request(c);
        pthread_mutex_lock(&s->lock);
        s->requests++;
        pthread_mutex_unlock(&s->lock);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        switch (s->script) {
        case ANSWER_OK:
                write_all(c, ok, sizeof(ok) - 1);
                break;
        case ANSWER_BIG: {
                static char big[65536 + 128];
                int n = snprintf(big, 128, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\nConnection: close\r\n\r\n");
                memset(big + n, 'x', 65536);
                write_all(c, big, (size_t) n + 65536);
                break;
        }
        case ANSWER_STALL:
        case ANSWER_STREAM_IDLE: {
                if (s->script == ANSWER_STREAM_IDLE) {
                        static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                   "6\r\nfirst\n\r\n";
                        write_all(c, head, sizeof(head) - 1);
                }
                char b;
                /* Until the client goes away. */
                while (read(c, &b, 1) > 0)
                        ;
                break;
        }
        case ANSWER_CLOSE:
                break;
        case ANSWER_STREAM: {
                static const char body[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                           "4\r\none\n\r\n" "3\r\ntwo\r\n" "6\r\n\nthree\r\n" "0\r\n\r\n";
                write_all(c, body, sizeof(body) - 1);
                break;
        }
        case ANSWER_REFUSED: {
                static const char body[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\n"
                                           "Connection: close\r\n\r\n{\"message\":\"no\"}\n";
                write_all(c, body, sizeof(body) - 1);
                break;
        }
        }
        close(c);
        pthread_mutex_lock(&s->lock);
        s->active--;
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void *server_main(void *userdata) {
        struct server *s = userdata;
        for (;;) {
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        return NULL;
                void **arg = malloc(2 * sizeof(void *));
                arg[0] = s;
                arg[1] = (void *) (intptr_t) c;
                pthread_mutex_lock(&s->lock);
                s->active++;
                pthread_mutex_unlock(&s->lock);
                pthread_t t;
                pthread_create(&t, NULL, serve_one, arg);
                pthread_detach(t);
        }
}

static struct server *server_start(enum script script) {
        struct server *s = calloc(1, sizeof(*s));
        snprintf(s->dir, sizeof(s->dir), "/tmp/sd-http-test.XXXXXX");
        cr_assert_not_null(mkdtemp(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/s.sock", s->dir);
        s->script = script;
        pthread_mutex_init(&s->lock, NULL);
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, s->path);
        cr_assert_eq(bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(s->fd, 64), 0);
        pthread_create(&s->thread, NULL, server_main, s);
        return s;
}

static void server_stop(struct server *s) {
        /* shutdown() wakes accept(); detached connection threads end when
         * their clients close. */
        shutdown(s->fd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->fd);
        unlink(s->path);
        rmdir(s->dir);
        /* Connection threads end once their client is gone: wait for
         * that (with a deadline) before freeing what they use. */
        int active = 1;
        for (int i = 0; i < 500 && active; i++) {
                pthread_mutex_lock(&s->lock);
                active = s->active;
                pthread_mutex_unlock(&s->lock);
                if (active)
                        usleep(10000);
        }
        cr_assert_eq(active, 0, "a connection thread of the test server did not end");
        pthread_mutex_destroy(&s->lock);
        free(s);
}

static struct sd_http *client_for(const char *path, long request_ms) {
        const struct sd_http_options o = {
                .peer = "test at sock",
                .unreachable_hint = " (is it running?)",
                .unix_socket = path,
                .request_timeout_ms = request_ms,
        };
        struct sd_http *h = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_http_new(&o, &h, &err), 0, "%s", err.message);
        return h;
}

static const struct sd_http_request get_x = { .method = "GET", .path = "/x", .what = "GET /x" };

Test(http, request_reply_and_status) {
        struct server *s = server_start(ANSWER_OK);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        _cleanup_http_reply_ struct sd_http_reply r = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_request(h, &get_x, &r, &err), 0, "%s", err.message);
        cr_assert_eq(r.status, 200);
        cr_assert_eq(r.len, 5);
        cr_assert_str_eq(r.body, "hello");
        server_stop(s);
}

Test(http, reply_over_the_cap_is_efbig) {
        struct server *s = server_start(ANSWER_BIG);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        struct sd_http_request rq = get_x;
        rq.max_reply = 1000;
        struct sd_http_reply r = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_request(h, &rq, &r, &err), -EFBIG, "%s", err.message);
        cr_assert_str_eq(err.message, "test at sock: GET /x: reply over 1000 bytes");
        cr_assert_null(r.body, "output untouched on failure");
        rq.max_reply = 65536;
        cr_assert_eq(sd_http_request(h, &rq, &r, &err), 0, "exactly the cap is fine: %s", err.message);
        cr_assert_eq(r.len, 65536);
        sd_http_reply_done(&r);
        server_stop(s);
}

Test(http, deadline_is_etimedout) {
        struct server *s = server_start(ANSWER_STALL);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 300);
        struct sd_http_reply r = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_request(h, &get_x, &r, &err), -ETIMEDOUT, "%s", err.message);
        cr_assert_str_eq(err.message, "test at sock did not answer in time: GET /x (300 ms)");
        server_stop(s);
}

Test(http, closed_connection_is_econnreset) {
        struct server *s = server_start(ANSWER_CLOSE);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        struct sd_http_reply r = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_request(h, &get_x, &r, &err), -ECONNRESET, "%s", err.message);
        cr_assert(strstr(err.message, "test at sock: GET /x: connection lost: "), "%s", err.message);
        server_stop(s);
}

Test(http, missing_socket_is_econnrefused_with_the_hint) {
        _cleanup_http_ struct sd_http *h = client_for("/nonexistent/secretd-test.sock", 0);
        struct sd_http_reply r = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_request(h, &get_x, &r, &err), -ECONNREFUSED, "%s", err.message);
        cr_assert_str_eq(err.message, "test at sock is unreachable: GET /x: No such file or directory (is it running?)");
}

struct parallel {
        struct sd_http *h;
        int failures;
};

static void *hammer(void *userdata) {
        struct parallel *p = userdata;
        for (int i = 0; i < 25; i++) {
                _cleanup_http_reply_ struct sd_http_reply r = { 0 };
                sd_error err = { 0 };
                if (sd_http_request(p->h, &get_x, &r, &err) < 0 || r.status != 200 || strcmp(r.body, "hello") != 0)
                        __atomic_add_fetch(&p->failures, 1, __ATOMIC_SEQ_CST);
        }
        return NULL;
}

Test(http, one_client_serves_threads_at_once) {
        struct server *s = server_start(ANSWER_OK);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        struct parallel p = { .h = h };
        pthread_t t[8];
        for (size_t i = 0; i < 8; i++)
                pthread_create(&t[i], NULL, hammer, &p);
        for (size_t i = 0; i < 8; i++)
                pthread_join(t[i], NULL);
        cr_assert_eq(p.failures, 0);
        cr_assert_eq(s->requests, 200);
        server_stop(s);
}

struct lines {
        char seen[8][32];
        size_t n;
        int opened;
        int broken_code;
        size_t broken_len;
        int stop_on_first;     /* written when "first" arrives; -1: none */
};

static int on_open(void *userdata, sd_error *err) {
        ((struct lines *) userdata)->opened++;
        return 0;
}

static int on_line(void *userdata, const char *line, size_t len, const sd_error *broken, sd_error *err) {
        struct lines *l = userdata;
        if (broken) {
                l->broken_code = broken->code;
                l->broken_len = len;
                return 0;
        }
        if (l->n < 8)
                snprintf(l->seen[l->n++], 32, "%.*s", (int) len, line);
        if (l->stop_on_first >= 0 && len == 5 && memcmp(line, "first", 5) == 0) {
                uint64_t one = 1;
                cr_assert_eq(write(l->stop_on_first, &one, sizeof(one)), (ssize_t) sizeof(one));
        }
        return 0;
}

Test(http_stream, lines_in_order_then_the_end_and_its_tail) {
        struct server *s = server_start(ANSWER_STREAM);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        struct lines l = { .stop_on_first = -1 };
        const struct sd_http_stream_handler sh = { .opened = on_open, .line = on_line, .userdata = &l };
        _cleanup_http_reply_ struct sd_http_reply refused = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_stream(h, &get_x, 0, &sh, -1, &refused, &err), -ECONNRESET, "%s", err.message);
        cr_assert(strstr(err.message, "test at sock: GET /x: stream ended"), "%s", err.message);
        cr_assert_eq(l.opened, 1);
        cr_assert_eq(l.n, 2);
        cr_assert_str_eq(l.seen[0], "one");
        cr_assert_str_eq(l.seen[1], "two");
        cr_assert_eq(l.broken_code, EBADMSG, "the unfinished 'three' is reported");
        cr_assert_eq(l.broken_len, 5);
        server_stop(s);
}

Test(http_stream, stop_fd_ends_an_idle_stream) {
        struct server *s = server_start(ANSWER_STREAM_IDLE);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        /* The handler makes the stop fd readable once the first line is in:
         * the stream is open and idle, and only the fd can end it. */
        int stop = eventfd(0, EFD_CLOEXEC);
        struct lines l = { .stop_on_first = stop };
        const struct sd_http_stream_handler sh = { .line = on_line, .userdata = &l };
        _cleanup_http_reply_ struct sd_http_reply refused = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_stream(h, &get_x, 0, &sh, stop, &refused, &err), 0, "%s", err.message);
        cr_assert_eq(l.n, 1);
        close(stop);
        server_stop(s);
}

Test(http_stream, refused_status_hands_back_the_body) {
        struct server *s = server_start(ANSWER_REFUSED);
        _cleanup_http_ struct sd_http *h = client_for(s->path, 0);
        struct lines l = { .stop_on_first = -1 };
        const struct sd_http_stream_handler sh = { .opened = on_open, .line = on_line, .userdata = &l };
        _cleanup_http_reply_ struct sd_http_reply refused = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_http_stream(h, &get_x, 0, &sh, -1, &refused, &err), -EPROTO, "%s", err.message);
        cr_assert_eq(refused.status, 503);
        cr_assert_str_eq(refused.body, "{\"message\":\"no\"}\n");
        cr_assert_eq(l.opened, 0);
        cr_assert_eq(l.n, 0);
        server_stop(s);
}

Test(http, options_are_checked) {
        const struct sd_http_pem pem = { "x", 1 };
        const struct sd_http_options o = { .peer = "p", .client_cert = &pem };
        struct sd_http *h = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_http_new(&o, &h, &err), -EINVAL);
        cr_assert(strstr(err.message, "needs its key"), "%s", err.message);
        char longpath[200];
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        const struct sd_http_options o2 = { .peer = "p", .unix_socket = longpath };
        cr_assert_eq(sd_http_new(&o2, &h, &err), -ENAMETOOLONG);
        cr_assert_null(h);
}
