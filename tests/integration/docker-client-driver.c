/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drives the Docker client library (include/secretd/docker.h) against a real
 * dockerd for tests/integration/test-docker-client.sh.  Talks to the daemon
 * named by DOCKER_HOST (unix://...) and prints one fact per line, for grep:
 *
 *   ping                      "ok"
 *   list [FILTERS_JSON]       "count=N", then per container
 *                             "container ID STATE running=0|1 name=N reload=S mounts=T:NAME:DEST:DRIVER:rw|ro,..."
 *   inspect ID                "container ID STATE running=0|1 pid=P started=T name=N reload=S mounts=..."
 *   kill ID SIGNAL            "ok"
 *   events [--follow] [--since S] [--max N]
 *                             "connected" when the stream is up, then per event
 *                             "event TYPE ACTION ACTOR [name=] [exit=] [signal=] [container=] [dest=] [rw=] [reload=] since=S",
 *                             "bad_line MESSAGE" for lines that do not parse,
 *                             "end ERRNO-NAME MESSAGE" when the stream stops
 *                             (--follow: then reconnects after 100 ms with
 *                             since= the last event, printing an end line
 *                             only when the reason changes), and "stopped"
 *                             after SIGTERM/SIGINT (exit 0).  --max N exits 0
 *                             after N events.
 *
 * Failures print "error ERRNO-NAME MESSAGE" and exit 2.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "secretd/docker.h"

static int fail(int r, const sd_error *err) {
        printf("error %s %s\n", strerrorname_np(-r) ? strerrorname_np(-r) : "?", err->message);
        return 2;
}

static void print_container(const struct sd_docker_container *c, bool with_pid) {
        static const char *const states[] = { "unknown", "created", "running", "paused",
                                              "restarting", "removing", "exited", "dead" };
        printf("container %s %s running=%d", c->id, states[c->state], c->running ? 1 : 0);
        if (with_pid)
                printf(" pid=%d started=%s", c->pid, c->started_at);
        printf(" name=%s reload=%d mounts=", c->n_names ? c->names[0] : "", c->reload_signal);
        for (size_t i = 0; i < c->n_mounts; i++) {
                const struct sd_docker_mount *m = &c->mounts[i];
                static const char *const types[] = { "other", "volume", "bind", "tmpfs" };
                printf("%s%s:%s:%s:%s:%s", i ? "," : "", types[m->type], m->name ? m->name : "",
                       m->destination, m->driver ? m->driver : "", m->rw ? "rw" : "ro");
        }
        printf("\n");
}

struct events_state {
        char since[SD_DOCKER_SINCE_MAX];
        bool have_since;
        long max, seen;
};

static int on_connected(void *userdata, sd_error *err) {
        printf("connected\n");
        fflush(stdout);
        return 0;
}

static int on_event(void *userdata, const struct sd_docker_event *ev, sd_error *err) {
        struct events_state *st = userdata;
        sd_docker_event_since(ev, st->since);
        st->have_since = true;

        printf("event %s %s %s", ev->type_name, ev->action_name, ev->actor_id);
        if (ev->name[0])
                printf(" name=%s", ev->name);
        if (ev->has_exit_code)
                printf(" exit=%d", ev->exit_code);
        if (ev->signal)
                printf(" signal=%d", ev->signal);
        if (ev->container_id[0])
                printf(" container=%s", ev->container_id);
        if (ev->destination[0])
                printf(" dest=%s", ev->destination);
        if (ev->rw >= 0)
                printf(" rw=%d", ev->rw);
        if (ev->reload_signal)
                printf(" reload=%d", ev->reload_signal);
        printf(" since=%s\n", st->since);
        fflush(stdout);

        if (st->max > 0 && ++st->seen >= st->max)
                return sd_error_set(err, ECANCELED, "saw %ld events", st->seen);
        return 0;
}

static int on_bad_line(void *userdata, const sd_error *why, sd_error *err) {
        printf("bad_line %s\n", why->message);
        fflush(stdout);
        return 0;
}

static int cmd_events(struct sd_docker *d, int argc, char **argv) {
        struct events_state st = { 0 };
        bool follow = false;
        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--follow") == 0)
                        follow = true;
                else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
                        snprintf(st.since, sizeof(st.since), "%s", argv[++i]);
                        st.have_since = true;
                } else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
                        char *end;
                        errno = 0;
                        st.max = strtol(argv[++i], &end, 10);
                        if (errno || *end || st.max < 1) {
                                fprintf(stderr, "bad --max\n");
                                return 64;
                        }
                } else {
                        fprintf(stderr, "unknown argument %s\n", argv[i]);
                        return 64;
                }
        }

        /* SIGTERM/SIGINT become a readable fd: the library's stop_fd. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return 1;
        int stop_fd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (stop_fd < 0)
                return 1;

        const struct sd_docker_events_handler h = {
                .connected = on_connected,
                .event = on_event,
                .bad_line = on_bad_line,
                .userdata = &st,
        };
        int last = 0;
        for (;;) {
                sd_error err = { 0 };
                int r = sd_docker_events_run(d, st.have_since ? st.since : NULL, NULL, &h, stop_fd, &err);
                if (r == 0) {
                        printf("stopped\n");
                        return 0;
                }
                if (r == -ECANCELED && st.max > 0)
                        return 0;
                if (r != last || !follow) {
                        printf("end %s %s\n", strerrorname_np(-r) ? strerrorname_np(-r) : "?", err.message);
                        fflush(stdout);
                }
                last = r;
                if (!follow || (r != -ECONNREFUSED && r != -ECONNRESET && r != -ETIMEDOUT))
                        return 2;
                struct pollfd p = { .fd = stop_fd, .events = POLLIN };
                if (poll(&p, 1, 100) > 0) {
                        printf("stopped\n");
                        return 0;
                }
        }
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s ping|list|inspect|kill|events ...\n", argv[0]);
                return 64;
        }
        sd_error err = { 0 };
        struct sd_docker *d = NULL;
        int r = sd_docker_new(secure_getenv("DOCKER_HOST"), &d, &err);
        if (r < 0)
                return fail(r, &err);
        _cleanup_docker_ struct sd_docker *client = d;

        const char *cmd = argv[1];
        if (strcmp(cmd, "ping") == 0) {
                r = sd_docker_ping(client, &err);
                if (r < 0)
                        return fail(r, &err);
                printf("ok\n");
        } else if (strcmp(cmd, "list") == 0) {
                _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
                r = sd_docker_list_containers(client, argc > 2 ? argv[2] : NULL, &list, &err);
                if (r < 0)
                        return fail(r, &err);
                printf("count=%zu\n", list.n);
                for (size_t i = 0; i < list.n; i++)
                        print_container(&list.items[i], false);
        } else if (strcmp(cmd, "inspect") == 0 && argc == 3) {
                _cleanup_docker_container_ struct sd_docker_container c = { 0 };
                r = sd_docker_inspect_container(client, argv[2], &c, &err);
                if (r < 0)
                        return fail(r, &err);
                print_container(&c, true);
        } else if (strcmp(cmd, "kill") == 0 && argc == 4) {
                r = sd_docker_kill(client, argv[2], argv[3], &err);
                if (r < 0)
                        return fail(r, &err);
                printf("ok\n");
        } else if (strcmp(cmd, "events") == 0)
                return cmd_events(client, argc - 2, argv + 2);
        else {
                fprintf(stderr, "unknown command %s\n", cmd);
                return 64;
        }
        return 0;
}
