/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Events stream parsing, as the agent does it: the input is cut into slices
 * (size chosen by the first byte, like curl's arbitrary de-chunked pieces),
 * split into lines with a small line limit so over-long lines and
 * resynchronisation get exercised, and every line is parsed.  The whole input
 * is also parsed as one event, and its start as a signal name.  Invariants of
 * a successful parse are checked: a violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct sd_docker_event *ev) {
        char since[SD_DOCKER_SINCE_MAX];
        if (strlen(ev->type_name) == 0 || strlen(ev->action_name) == 0)
                abort();
        if (ev->type == SD_DOCKER_EVENT_CONTAINER && strlen(ev->actor_id) != SD_DOCKER_CONTAINER_ID_LEN)
                abort();
        if ((ev->action == SD_DOCKER_ACTION_MOUNT || ev->action == SD_DOCKER_ACTION_UNMOUNT) &&
            ev->type == SD_DOCKER_EVENT_VOLUME && strlen(ev->container_id) != SD_DOCKER_CONTAINER_ID_LEN)
                abort();
        if (ev->rw < -1 || ev->rw > 1 || ev->time < 0 || ev->time_nano < 0)
                abort();
        for (const char *p = ev->name; *p; p++)
                if ((unsigned char) *p < 0x20)
                        abort();
        for (const char *p = ev->action_detail; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f)
                        abort();
        sd_docker_event_since(ev, since);
        if (strlen(since) < 11)
                abort();
}

static int on_line(void *userdata, const char *line, size_t len, const sd_error *overlong) {
        size_t *max = userdata;
        if (overlong)
                return line == NULL && len > *max ? 0 : (abort(), 0);
        if (len > *max)
                abort();
        struct sd_docker_event ev;
        if (sd_docker_event_parse(line, len, &ev, NULL) == 0)
                check_event(&ev);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        struct sd_docker_event ev;
        sd_error err = { 0 };

        if (sd_docker_event_parse(text, size, &ev, &err) == 0)
                check_event(&ev);
        else if (err.code == 0 || strchr(err.message, '\n'))
                abort();

        if (size > 0) {
                size_t slice = 1 + data[0] % 97;
                size_t max = 512;
                struct sd_line_buffer lb;
                sd_line_buffer_init(&lb, max);
                for (size_t off = 1; off < size; off += slice) {
                        size_t n = size - off < slice ? size - off : slice;
                        if (sd_line_buffer_feed(&lb, text + off, n, on_line, &max, NULL) < 0)
                                abort();
                        if (sd_line_buffer_pending(&lb) > max)
                                abort();
                }
                sd_line_buffer_done(&lb);
        }

        char name[24];
        size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
        memcpy(name, data, n);
        name[n] = '\0';
        int signo = 0;
        if (sd_docker_signal_from_name(name, &signo, NULL) == 0 && (signo < 1 || signo > 64))
                abort();
        return 0;
}
