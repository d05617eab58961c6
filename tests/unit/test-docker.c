/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Docker client's parsers over JSON recorded from a real dockerd 20.10
 * (tests/unit/data/docker/, see docs/docker-client.md for how), plus hostile
 * variants.  No server is started: the I/O paths are only checked for
 * argument validation and for "dockerd is down"; the integration test
 * tests/integration/test-docker-client.sh drives them against dockerd.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "secretd/docker.h"

#define C_VOL_USER "3cba44c52afbe076b1b8caeaa445410def3e0b1b6955ab2689e746bff46e29a9"
#define C_SHORT "fe5c151f8d3b2841556a02158259b0365fd57e6fde1a68bb04030e11db1a5f6b"
#define C_HEALTH "926a47c3845d9cb7297b3a6486bcb4d3153b30a76ecd89dc314c3694e56cbb98"
#define C_ANON "51ec1f7e43400afb05833399abfa74613cffc604dec1dddd66f11698f141d934"

/* ---------------------------------------------------------------- helpers */

static char *read_fixture(const char *name, size_t *len_out) {
        const char *root = secure_getenv("SECRETD_SOURCE_ROOT");
        cr_assert_not_null(root, "SECRETD_SOURCE_ROOT is not set (run through meson test)");
        char path[PATH_MAX];
        cr_assert_lt(snprintf(path, sizeof(path), "%s/tests/unit/data/docker/%s", root, name),
                     (int) sizeof(path));
        FILE *f = fopen(path, "rbe");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        cr_assert_eq(fseek(f, 0, SEEK_END), 0);
        long size = ftell(f);
        cr_assert_geq(size, 0);
        rewind(f);
        char *buf = malloc((size_t) size + 1);
        cr_assert_not_null(buf);
        cr_assert_eq(fread(buf, 1, (size_t) size, f), (size_t) size);
        fclose(f);
        buf[size] = '\0';
        if (len_out)
                *len_out = (size_t) size;
        return buf;
}

/* Line n (0-based) of a fixture, malloc()ed, without '\n'. */
static char *fixture_line(const char *name, size_t n) {
        char *all = read_fixture(name, NULL);
        char *p = all;
        for (size_t i = 0; i < n; i++) {
                p = strchr(p, '\n');
                cr_assert_not_null(p, "%s has fewer than %zu lines", name, n + 1);
                p++;
        }
        size_t l = strcspn(p, "\n");
        char *line = strndup(p, l);
        free(all);
        return line;
}

/* The first line of a fixture holding all the given substrings. */
static char *find_line(const char *name, const char *a, const char *b) {
        char *all = read_fixture(name, NULL);
        char *found = NULL;
        for (char *p = all; *p && !found;) {
                size_t l = strcspn(p, "\n");
                char *line = strndup(p, l);
                if (strstr(line, a) && (!b || strstr(line, b)))
                        found = line;
                else
                        free(line);
                p += l + (p[l] == '\n');
        }
        free(all);
        cr_assert_not_null(found, "%s: no line with '%s' and '%s'", name, a, b ? b : "");
        return found;
}

static void parse_ok(const char *line, struct sd_docker_event *ev) {
        sd_error err = { 0 };
        int r = sd_docker_event_parse(line, strlen(line), ev, &err);
        cr_assert_eq(r, 0, "parse failed (%d): %s\nline: %s", r, err.message, line);
}

static void assert_one_line(const char *msg) {
        cr_assert_null(strchr(msg, '\n'), "message spans lines: %s", msg);
        for (const char *p = msg; *p; p++)
                cr_assert((unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f,
                          "unprintable byte 0x%02x in message: %s", (unsigned char) *p, msg);
}

/* ------------------------------------------------------- recorded events */

Test(docker_events, every_recorded_line_parses) {
        const char *files[] = { "events-container-volume.jsonl", "events-teardown.jsonl" };
        size_t containers = 0, volumes = 0, others = 0;
        for (size_t f = 0; f < SD_ARRAY_SIZE(files); f++) {
                char *all = read_fixture(files[f], NULL);
                for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
                        struct sd_docker_event ev;
                        parse_ok(line, &ev);
                        cr_assert_gt(ev.time, 1700000000);
                        cr_assert_eq(ev.time_nano / 1000000000, ev.time, "time and timeNano agree");
                        if (ev.type == SD_DOCKER_EVENT_CONTAINER) {
                                containers++;
                                cr_assert_eq(strlen(ev.actor_id), 64);
                                cr_assert_neq(ev.name[0], '\0', "container events name the container");
                        } else if (ev.type == SD_DOCKER_EVENT_VOLUME)
                                volumes++;
                        else
                                others++;
                }
                free(all);
        }
        /* Counted in the recordings by hand (grep -c '"Type":"volume"'). */
        cr_assert_eq(volumes, 11);
        cr_assert_eq(others, 2, "two network disconnects in the unfiltered teardown stream");
        cr_assert_eq(containers, 54);
}

/* docker run --rm -v anonvol:/data: the whole life of one container. */
Test(docker_events, container_lifecycle_in_order) {
        char *all = read_fixture("events-container-volume.jsonl", NULL);
        enum sd_docker_action seen[16];
        size_t n = 0;
        for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
                struct sd_docker_event ev;
                parse_ok(line, &ev);
                bool mine = strcmp(ev.actor_id, C_ANON) == 0 || strcmp(ev.container_id, C_ANON) == 0;
                if (mine) {
                        cr_assert_lt(n, SD_ARRAY_SIZE(seen));
                        seen[n++] = ev.action;
                }
                if (ev.type == SD_DOCKER_EVENT_CONTAINER && ev.action == SD_DOCKER_ACTION_DIE && mine) {
                        cr_assert(ev.has_exit_code);
                        cr_assert_eq(ev.exit_code, 0);
                }
        }
        free(all);
        const enum sd_docker_action expected[] = {
                SD_DOCKER_ACTION_CREATE, SD_DOCKER_ACTION_OTHER /* attach */, SD_DOCKER_ACTION_MOUNT,
                SD_DOCKER_ACTION_START,  SD_DOCKER_ACTION_DIE,                SD_DOCKER_ACTION_UNMOUNT,
                SD_DOCKER_ACTION_DESTROY,
        };
        cr_assert_eq(n, SD_ARRAY_SIZE(expected), "saw %zu events for the container", n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(seen[i], expected[i], "event %zu: %d, expected %d", i, seen[i], expected[i]);
}

Test(docker_events, volume_mount_and_unmount_attributes) {
        struct sd_docker_event ev;
        char *line = find_line("events-container-volume.jsonl", "\"Action\":\"mount\"", "sdrec-vol");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.type, SD_DOCKER_EVENT_VOLUME);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_MOUNT);
        cr_assert_str_eq(ev.actor_id, "sdrec-vol", "a volume event's actor is the volume name");
        cr_assert_str_eq(ev.driver, "local");
        cr_assert_str_eq(ev.container_id, C_VOL_USER);
        cr_assert_str_eq(ev.destination, "/run/secrets");
        cr_assert_eq(ev.rw, 0, "mounted :ro");
        cr_assert_eq(ev.time_nano, 1795899902133628000LL);

        line = find_line("events-container-volume.jsonl", "\"Action\":\"mount\"", "anonvol");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.rw, 1);
        cr_assert_str_eq(ev.destination, "/data");

        line = find_line("events-container-volume.jsonl", "\"Action\":\"unmount\"", "sdrec-vol");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_UNMOUNT);
        cr_assert_str_eq(ev.container_id, C_VOL_USER);
        cr_assert_str_eq(ev.destination, "", "unmount carries no destination");
        cr_assert_eq(ev.rw, -1);

        line = find_line("events-teardown.jsonl", "\"Type\":\"volume\",\"Action\":\"destroy\"", "anonvol");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_DESTROY);
        cr_assert_str_eq(ev.driver, "local");
        cr_assert_str_eq(ev.container_id, "");
}

Test(docker_events, kill_die_and_reload_label) {
        struct sd_docker_event ev;
        char *line = find_line("events-container-volume.jsonl", "\"Action\":\"kill\"", "\"signal\":\"1\"");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_KILL);
        cr_assert_eq(ev.signal, 1, "docker kill -s HUP");
        cr_assert_str_eq(ev.name, "sdrec-vol-user");
        cr_assert_eq(ev.reload_signal, 1, "label secretd.reload-signal=SIGHUP");
        cr_assert_str_eq(ev.reload_signal_label, "SIGHUP");
        cr_assert_not(ev.has_exit_code);

        line = find_line("events-container-volume.jsonl", "\"Action\":\"die\"", "\"exitCode\":\"137\"");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_DIE);
        cr_assert(ev.has_exit_code);
        cr_assert_eq(ev.exit_code, 137);
        cr_assert_eq(ev.signal, 0);

        line = find_line("events-container-volume.jsonl", "\"Action\":\"die\"", "\"exitCode\":\"3\"");
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.exit_code, 3);
        cr_assert_str_eq(ev.actor_id, C_SHORT);
        cr_assert_eq(ev.reload_signal, 0, "no label");
        cr_assert_str_eq(ev.reload_signal_label, "");

        line = find_line("events-teardown.jsonl", "\"Action\":\"destroy\"", C_HEALTH);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.type, SD_DOCKER_EVENT_CONTAINER);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_DESTROY);
}

Test(docker_events, health_status_and_exec_actions) {
        struct sd_docker_event ev;
        char *line = find_line("events-container-volume.jsonl", "\"Action\":\"health_status: healthy\"", NULL);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_HEALTH_STATUS);
        cr_assert_str_eq(ev.action_name, "health_status");
        cr_assert_str_eq(ev.action_detail, "healthy");
        cr_assert_not(ev.action_detail_truncated);

        line = find_line("events-container-volume.jsonl", "\"Action\":\"exec_start: sh -c", NULL);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_EXEC);
        cr_assert_str_eq(ev.action_name, "exec_start");
        cr_assert_str_eq(ev.action_detail, "sh -c sleep 1.5; cat /tmp/hup");

        line = find_line("events-container-volume.jsonl", "\"Action\":\"rename\"", NULL);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_RENAME);
        cr_assert_str_eq(ev.name, "sdrec-short2", "the new name");

        line = find_line("events-container-volume.jsonl", "\"Action\":\"attach\"", NULL);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_OTHER);
        cr_assert_str_eq(ev.action_name, "attach");
}

Test(docker_events, other_types_parse_without_acting) {
        struct sd_docker_event ev;
        char *line = find_line("events-teardown.jsonl", "\"Type\":\"network\"", NULL);
        parse_ok(line, &ev);
        free(line);
        cr_assert_eq(ev.type, SD_DOCKER_EVENT_OTHER);
        cr_assert_str_eq(ev.type_name, "network");
        cr_assert_str_eq(ev.action_name, "disconnect");
        /* A network's "container" attribute is not read as a volume's. */
        cr_assert_str_eq(ev.container_id, "");
}

Test(docker_events, since_is_sec_dot_nsec) {
        struct sd_docker_event ev;
        char since[SD_DOCKER_SINCE_MAX];
        parse_ok("{\"Type\":\"volume\",\"Action\":\"create\",\"Actor\":{\"ID\":\"v\"},"
                 "\"time\":1795899902,\"timeNano\":1795899902008679286}",
                 &ev);
        sd_docker_event_since(&ev, since);
        cr_assert_str_eq(since, "1795899902.008679286");

        /* Without timeNano (older engines), whole seconds. */
        parse_ok("{\"Type\":\"volume\",\"Action\":\"create\",\"Actor\":{\"ID\":\"v\"},\"time\":12}", &ev);
        cr_assert_eq(ev.time_nano, 12000000000LL);
        sd_docker_event_since(&ev, since);
        cr_assert_str_eq(since, "12.000000000");
}

Test(docker_events, attributes_may_be_absent) {
        struct sd_docker_event ev;
        parse_ok("{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" C_ANON "\"},\"time\":1}", &ev);
        cr_assert_str_eq(ev.name, "");
        cr_assert_eq(ev.reload_signal, 0);
        parse_ok("{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" C_ANON
                 "\",\"Attributes\":null},\"time\":1}",
                 &ev);
        cr_assert_str_eq(ev.actor_id, C_ANON);
}

/* A bad label is the user's problem, but must not hide the event itself. */
Test(docker_events, bad_reload_label_keeps_the_event) {
        struct sd_docker_event ev;
        parse_ok("{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" C_ANON
                 "\",\"Attributes\":{\"exitCode\":\"0\",\"secretd.reload-signal\":\"SIGFOO\"}},\"time\":1}",
                 &ev);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_DIE);
        cr_assert_eq(ev.reload_signal, -EINVAL);
        cr_assert_str_eq(ev.reload_signal_label, "SIGFOO");

        char line[1024];
        char junk[300];
        memset(junk, 'Q', sizeof(junk) - 1);
        junk[sizeof(junk) - 1] = '\0';
        snprintf(line, sizeof(line),
                 "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" C_ANON
                 "\",\"Attributes\":{\"secretd.reload-signal\":\"HUP\\n%s\"}},\"time\":1}",
                 junk);
        parse_ok(line, &ev);
        cr_assert_eq(ev.reload_signal, -EINVAL);
        cr_assert_lt(strlen(ev.reload_signal_label), sizeof(ev.reload_signal_label));
        assert_one_line(ev.reload_signal_label);
        cr_assert(strncmp(ev.reload_signal_label, "HUP\\x0a", 7) == 0, "shown escaped: %s",
                  ev.reload_signal_label);
}

Test(docker_events, long_exec_command_is_cut_not_refused) {
        char cmd[2000];
        memset(cmd, 'z', sizeof(cmd) - 1);
        cmd[sizeof(cmd) - 1] = '\0';
        char line[2400];
        snprintf(line, sizeof(line),
                 "{\"Type\":\"container\",\"Action\":\"exec_start: sh -c %s\",\"Actor\":{\"ID\":\"" C_ANON
                 "\"},\"time\":1}",
                 cmd);
        struct sd_docker_event ev;
        parse_ok(line, &ev);
        cr_assert_eq(ev.action, SD_DOCKER_ACTION_EXEC);
        cr_assert(ev.action_detail_truncated);
        cr_assert_lt(strlen(ev.action_detail), sizeof(ev.action_detail));
        cr_assert(strstr(ev.action_detail, "...") != NULL, "visibly cut: %s", ev.action_detail);

        parse_ok("{\"Type\":\"container\",\"Action\":\"exec_start: printf 'a\\nb'\",\"Actor\":{\"ID\":\"" C_ANON
                 "\"},\"time\":1}",
                 &ev);
        cr_assert_str_eq(ev.action_detail, "printf 'a\\x0ab'");
        cr_assert(ev.action_detail_truncated, "escaped text is not verbatim");
}

/* ------------------------------------------------------- hostile events */

struct bad_event {
        const char *line;
        const char *expect;  /* substring of the message */
};

#define CID "\"" C_ANON "\""
#define ACT_OK "\"Actor\":{\"ID\":" CID "}"

Test(docker_events, hostile_lines_are_refused_naming_the_field) {
        char long_name[600], long_dest[5200], long_type[300], long_verb[300], long_vol[400];
        snprintf(long_name, sizeof(long_name),
                 "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":" CID
                 ",\"Attributes\":{\"name\":\"%0300d\"}},\"time\":1}",
                 0);
        char dest[5000];
        memset(dest, 'd', sizeof(dest) - 1);
        dest[0] = '/';
        dest[sizeof(dest) - 1] = '\0';
        snprintf(long_dest, sizeof(long_dest),
                 "{\"Type\":\"volume\",\"Action\":\"mount\",\"Actor\":{\"ID\":\"v\",\"Attributes\":"
                 "{\"container\":" CID ",\"destination\":\"%s\"}},\"time\":1}",
                 dest);
        snprintf(long_type, sizeof(long_type), "{\"Type\":\"%040d\",\"Action\":\"x\"," ACT_OK ",\"time\":1}", 0);
        snprintf(long_verb, sizeof(long_verb), "{\"Type\":\"container\",\"Action\":\"a%040d\"," ACT_OK ",\"time\":1}",
                 0);
        snprintf(long_vol, sizeof(long_vol),
                 "{\"Type\":\"volume\",\"Action\":\"create\",\"Actor\":{\"ID\":\"%0300d\"},\"time\":1}", 0);

        const struct bad_event cases[] = {
                { "", "not valid JSON" },
                { "hello", "not valid JSON" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Act", "not valid JSON" },
                { "{\"Type\":\"container\"} trailing", "not valid JSON" },
                { "[1,2]", "expected a JSON object, got an array" },
                { "{\"Action\":\"start\"," ACT_OK ",\"time\":1}", "field 'Type': missing" },
                { "{\"Type\":7,\"Action\":\"start\"," ACT_OK ",\"time\":1}", "field 'Type': expected a string" },
                { "{\"Type\":\"\",\"Action\":\"start\"," ACT_OK ",\"time\":1}", "field 'Type': is empty" },
                { long_type, "field 'Type': 40 bytes long; the limit is 31" },
                { "{\"Type\":\"container\"," ACT_OK ",\"time\":1}", "field 'Action': missing" },
                { "{\"Type\":\"container\",\"Action\":\"\"," ACT_OK ",\"time\":1}", "field 'Action': is empty" },
                { "{\"Type\":\"container\",\"Action\":\"Start\"," ACT_OK ",\"time\":1}", "field 'Action'" },
                { "{\"Type\":\"container\",\"Action\":\": x\"," ACT_OK ",\"time\":1}", "field 'Action'" },
                { "{\"Type\":\"container\",\"Action\":\"st art\"," ACT_OK ",\"time\":1}", "field 'Action'" },
                { long_verb, "field 'Action'" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"time\":1}", "field 'Actor': missing" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":\"x\",\"time\":1}",
                  "field 'Actor': expected an object" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{},\"time\":1}", "field 'Actor.ID': missing" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"abc\"},\"time\":1}",
                  "field 'Actor.ID': 'abc' is not a container id" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" 
                  "3CBA44C52AFBE076B1B8CAEAA445410DEF3E0B1B6955AB2689E746BFF46E29A9\"},\"time\":1}",
                  "field 'Actor.ID'" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"../../etc/passwd\"},\"time\":1}",
                  "field 'Actor.ID'" },
                { "{\"Type\":\"volume\",\"Action\":\"create\",\"Actor\":{\"ID\":\"a/b\"},\"time\":1}",
                  "field 'Actor.ID': contains '/'" },
                { "{\"Type\":\"volume\",\"Action\":\"create\",\"Actor\":{\"ID\":\"\"},\"time\":1}",
                  "field 'Actor.ID': is empty" },
                { long_vol, "field 'Actor.ID': 300 bytes long" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":" CID ",\"Attributes\":[]},\"time\":1}",
                  "field 'Actor.Attributes': expected an object" },
                { long_name, "field 'Actor.Attributes.name': 300 bytes long; the limit is 255" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"name\":\"a\\u001bb\"}},\"time\":1}",
                  "field 'Actor.Attributes.name': contains control byte 0x1b" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"name\":\"a\\u0000b\"}},\"time\":1}",
                  "not valid JSON" },
                { "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"name\":5}},\"time\":1}",
                  "field 'Actor.Attributes.name': expected a string, got an integer" },
                { "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"exitCode\":\"abc\"}},\"time\":1}",
                  "field 'Actor.Attributes.exitCode': 'abc' is not an integer" },
                { "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"exitCode\":\"99999999999\"}},\"time\":1}",
                  "field 'Actor.Attributes.exitCode'" },
                { "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"exitCode\":137}},\"time\":1}",
                  "field 'Actor.Attributes.exitCode': expected a string" },
                { "{\"Type\":\"container\",\"Action\":\"kill\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"signal\":\"99\"}},\"time\":1}",
                  "field 'Actor.Attributes.signal'" },
                { "{\"Type\":\"container\",\"Action\":\"kill\",\"Actor\":{\"ID\":" CID
                  ",\"Attributes\":{\"secretd.reload-signal\":1}},\"time\":1}",
                  "field 'Actor.Attributes.secretd.reload-signal': expected a string" },
                { "{\"Type\":\"volume\",\"Action\":\"mount\",\"Actor\":{\"ID\":\"v\",\"Attributes\":"
                  "{\"driver\":\"local\"}},\"time\":1}",
                  "field 'Actor.Attributes.container': missing" },
                { "{\"Type\":\"volume\",\"Action\":\"unmount\",\"Actor\":{\"ID\":\"v\"},\"time\":1}",
                  "field 'Actor.Attributes.container': missing" },
                { "{\"Type\":\"volume\",\"Action\":\"mount\",\"Actor\":{\"ID\":\"v\",\"Attributes\":"
                  "{\"container\":\"3cba\"}},\"time\":1}",
                  "field 'Actor.Attributes.container': '3cba' is not a container id" },
                { "{\"Type\":\"volume\",\"Action\":\"mount\",\"Actor\":{\"ID\":\"v\",\"Attributes\":"
                  "{\"container\":" CID ",\"read/write\":\"maybe\"}},\"time\":1}",
                  "field 'Actor.Attributes.read/write': expected \"true\" or \"false\"" },
                { long_dest, "field 'Actor.Attributes.destination': 4999 bytes long; the limit is 4095" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK "}", "field 'time': missing" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":\"1\"}",
                  "field 'time': expected an integer, got a string" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":1.5}",
                  "field 'time': expected an integer, got a real number" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":-1}",
                  "field 'time': -1 is out of range" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":99999999999999}",
                  "field 'time'" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":1,\"timeNano\":-5}",
                  "field 'timeNano'" },
                { "{\"Type\":\"container\",\"Action\":\"start\"," ACT_OK ",\"time\":1,\"timeNano\":99999999999999999999}",
                  "not valid JSON" },
                { "{\"Type\":\"container\",\"Type\":\"volume\",\"Action\":\"start\"," ACT_OK ",\"time\":1}",
                  "not valid JSON: duplicate object key" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                const struct bad_event *c = &cases[i];
                struct sd_docker_event ev;
                sd_error err = { 0 };
                int r = sd_docker_event_parse(c->line, strlen(c->line), &ev, &err);
                cr_assert_eq(r, -EBADMSG, "case %zu accepted (%d): %s", i, r, c->line);
                cr_assert_eq(err.code, EBADMSG);
                cr_assert(strstr(err.message, c->expect), "case %zu: message '%s' lacks '%s'", i, err.message,
                          c->expect);
                cr_assert(strncmp(err.message, "docker event: ", 14) == 0, "%s", err.message);
                assert_one_line(err.message);
        }
}

Test(docker_events, truncated_recorded_lines_are_refused) {
        char *line = fixture_line("events-container-volume.jsonl", 3);
        size_t len = strlen(line);
        for (size_t cut = 0; cut < len - 1; cut++) {
                struct sd_docker_event ev;
                sd_error err = { 0 };
                cr_assert_eq(sd_docker_event_parse(line, cut, &ev, &err), -EBADMSG, "prefix of %zu bytes", cut);
        }
        free(line);
}

Test(docker_events, output_untouched_on_failure) {
        struct sd_docker_event ev, before;
        memset(&ev, 0xA5, sizeof(ev));
        before = ev;
        const char *bad = "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"x\"},\"time\":1}";
        cr_assert_eq(sd_docker_event_parse(bad, strlen(bad), &ev, NULL), -EBADMSG, "NULL err is fine");
        cr_assert_eq(memcmp(&ev, &before, sizeof(ev)), 0);
}

/* Every member of a recorded event, deleted or given each wrong JSON type:
 * the parser refuses or accepts, never crashes, and refusals name a field. */
Test(docker_events, recorded_event_mutations) {
        const char *lines[] = {
                "events-container-volume.jsonl",
        };
        json_t *replacements[] = { json_null(), json_true(), json_integer(-1), json_real(0.5),
                                   json_string(""), json_array(), json_object() };
        char *all = read_fixture(lines[0], NULL);
        size_t tried = 0, refused = 0;
        for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
                json_t *orig = json_loads(line, 0, NULL);
                cr_assert_not_null(orig);
                const char *paths[][2] = { { "Type", NULL },  { "Action", NULL },         { "Actor", NULL },
                                           { "time", NULL },  { "timeNano", NULL },       { "Actor", "ID" },
                                           { "Actor", "Attributes" } };
                for (size_t p = 0; p < SD_ARRAY_SIZE(paths); p++)
                        for (size_t k = 0; k <= SD_ARRAY_SIZE(replacements); k++) {
                                json_t *copy = json_deep_copy(orig);
                                json_t *parent = paths[p][1] ? json_object_get(copy, paths[p][0]) : copy;
                                const char *key = paths[p][1] ? paths[p][1] : paths[p][0];
                                if (k == SD_ARRAY_SIZE(replacements))
                                        json_object_del(parent, key);
                                else
                                        json_object_set(parent, key, replacements[k]);
                                char *text = json_dumps(copy, JSON_COMPACT);
                                struct sd_docker_event ev;
                                sd_error err = { 0 };
                                int r = sd_docker_event_parse(text, strlen(text), &ev, &err);
                                cr_assert(r == 0 || r == -EBADMSG, "%d for %s", r, text);
                                if (r < 0) {
                                        refused++;
                                        cr_assert(strstr(err.message, "field '"), "%s", err.message);
                                }
                                tried++;
                                free(text);
                                json_decref(copy);
                        }
                json_decref(orig);
        }
        free(all);
        for (size_t k = 0; k < SD_ARRAY_SIZE(replacements); k++)
                json_decref(replacements[k]);
        cr_assert_gt(refused, tried / 2, "most mutations are refused (%zu of %zu)", refused, tried);
}

/* ------------------------------------------------------------ line buffer */

struct collected {
        char *lines[4096];
        size_t n;
        size_t overlong;
        size_t overlong_len[16];
        int fail_at;  /* return -ECANCELED for line number fail_at (1-based); 0 never */
};

static int collect(void *userdata, const char *line, size_t len, const sd_error *overlong) {
        struct collected *c = userdata;
        if (overlong) {
                cr_assert_null(line);
                cr_assert_eq(overlong->code, EMSGSIZE);
                cr_assert(strstr(overlong->message, "skipped up to the next newline"), "%s", overlong->message);
                if (c->overlong < SD_ARRAY_SIZE(c->overlong_len))
                        c->overlong_len[c->overlong] = len;
                c->overlong++;
                return 0;
        }
        cr_assert_lt(c->n, SD_ARRAY_SIZE(c->lines));
        c->lines[c->n++] = strndup(line, len);
        if (c->fail_at > 0 && (size_t) c->fail_at == c->n)
                return -ECANCELED;
        return 0;
}

static void collected_free(struct collected *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->lines[i]);
        c->n = 0;
}

static void feed_in_slices(struct sd_line_buffer *lb, const char *data, size_t len, size_t slice,
                           struct collected *c) {
        for (size_t off = 0; off < len; off += slice) {
                size_t n = len - off < slice ? len - off : slice;
                sd_error err = { 0 };
                cr_assert_eq(sd_line_buffer_feed(lb, data + off, n, collect, c, &err), 0, "%s", err.message);
        }
}

Test(line_buffer, recorded_stream_in_any_slicing_gives_the_same_lines) {
        size_t len = 0;
        char *stream = read_fixture("events-container-volume.jsonl", &len);
        const size_t slices[] = { 1, 2, 3, 7, 64, 333, 4096, 16384, len };
        for (size_t s = 0; s < SD_ARRAY_SIZE(slices); s++) {
                _cleanup_line_buffer_ struct sd_line_buffer lb;
                sd_line_buffer_init(&lb, 0);
                struct collected c = { 0 };
                feed_in_slices(&lb, stream, len, slices[s], &c);
                cr_assert_eq(c.n, 52, "slice %zu: %zu lines", slices[s], c.n);
                cr_assert_eq(c.overlong, 0);
                cr_assert_eq(sd_line_buffer_pending(&lb), 0, "the recording ends with a newline");
                const char *p = stream;
                for (size_t i = 0; i < c.n; i++) {
                        size_t l = strcspn(p, "\n");
                        cr_assert_eq(strlen(c.lines[i]), l, "slice %zu line %zu", slices[s], i);
                        cr_assert_eq(memcmp(c.lines[i], p, l), 0);
                        struct sd_docker_event ev;
                        parse_ok(c.lines[i], &ev);
                        p += l + 1;
                }
                collected_free(&c);
        }
        free(stream);
}

Test(line_buffer, huge_slice_of_whole_lines_is_not_copied) {
        size_t len = 0;
        char *stream = read_fixture("events-container-volume.jsonl", &len);
        const size_t copies = 80;  /* ~1.6 MB in one slice */
        char *big = malloc(len * copies);
        cr_assert_not_null(big);
        for (size_t i = 0; i < copies; i++)
                memcpy(big + i * len, stream, len);

        _cleanup_line_buffer_ struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 0);
        struct collected c = { 0 };
        size_t lines = 0;
        /* Count without storing all of them. */
        for (size_t i = 0; i < copies; i++) {
                sd_error err = { 0 };
                cr_assert_eq(sd_line_buffer_feed(&lb, big + i * len, len, collect, &c, &err), 0);
                lines += c.n;
                collected_free(&c);
        }
        cr_assert_eq(lines, 52 * copies);
        cr_assert_eq(lb.cap, 0, "lines wholly inside a slice are handed over in place");

        /* One slice with everything at once. */
        sd_error err = { 0 };
        struct collected *many = calloc(1, sizeof(*many));
        cr_assert_eq(sd_line_buffer_feed(&lb, big, len * 78, collect, many, &err), 0);
        cr_assert_eq(many->n, 52 * 78);
        collected_free(many);
        free(many);
        free(big);
        free(stream);
}

Test(line_buffer, a_line_split_anywhere_is_joined) {
        const char *text = "{\"a\":1}\n{\"bb\":22}\nlast\n";
        size_t len = strlen(text);
        for (size_t i = 0; i <= len; i++)
                for (size_t j = i; j <= len; j++) {
                        _cleanup_line_buffer_ struct sd_line_buffer lb;
                        sd_line_buffer_init(&lb, 64);
                        struct collected c = { 0 };
                        sd_error err = { 0 };
                        cr_assert_eq(sd_line_buffer_feed(&lb, text, i, collect, &c, &err), 0);
                        cr_assert_eq(sd_line_buffer_feed(&lb, text + i, j - i, collect, &c, &err), 0);
                        cr_assert_eq(sd_line_buffer_feed(&lb, text + j, len - j, collect, &c, &err), 0);
                        cr_assert_eq(c.n, 3, "split at %zu,%zu", i, j);
                        cr_assert_str_eq(c.lines[0], "{\"a\":1}");
                        cr_assert_str_eq(c.lines[1], "{\"bb\":22}");
                        cr_assert_str_eq(c.lines[2], "last");
                        collected_free(&c);
                }
}

Test(line_buffer, overlong_line_is_reported_once_and_resyncs) {
        char text[200];
        char xs[61];
        memset(xs, 'x', 60);
        xs[60] = '\0';
        snprintf(text, sizeof(text), "short\n%s\nafter\n%s", xs, "tail");
        size_t len = strlen(text);
        const size_t slices[] = { 1, 5, 8, 17, 40, len };
        for (size_t s = 0; s < SD_ARRAY_SIZE(slices); s++) {
                _cleanup_line_buffer_ struct sd_line_buffer lb;
                sd_line_buffer_init(&lb, 16);
                struct collected c = { 0 };
                feed_in_slices(&lb, text, len, slices[s], &c);
                cr_assert_eq(c.overlong, 1, "slice %zu: reported %zu times", slices[s], c.overlong);
                cr_assert_gt(c.overlong_len[0], 16);
                cr_assert_eq(c.n, 2, "slice %zu: %zu lines", slices[s], c.n);
                cr_assert_str_eq(c.lines[0], "short");
                cr_assert_str_eq(c.lines[1], "after", "resynchronised at the newline");
                cr_assert_eq(sd_line_buffer_pending(&lb), 4, "'tail' waits for its newline");
                collected_free(&c);
        }
}

Test(line_buffer, exactly_max_is_accepted) {
        _cleanup_line_buffer_ struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 8);
        struct collected c = { 0 };
        feed_in_slices(&lb, "12345678\n123456789\nok\n", 22, 3, &c);
        cr_assert_eq(c.n, 2);
        cr_assert_str_eq(c.lines[0], "12345678");
        cr_assert_str_eq(c.lines[1], "ok");
        cr_assert_eq(c.overlong, 1);
        collected_free(&c);
}

Test(line_buffer, memory_stays_bounded_without_newlines) {
        _cleanup_line_buffer_ struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 1024);
        struct collected c = { 0 };
        char slice[4096];
        memset(slice, 'y', sizeof(slice));
        for (int i = 0; i < 2500; i++) {  /* 10 MB, no newline */
                sd_error err = { 0 };
                cr_assert_eq(sd_line_buffer_feed(&lb, slice, sizeof(slice), collect, &c, &err), 0);
        }
        cr_assert_eq(c.overlong, 1, "one report for one endless line");
        cr_assert_leq(lb.cap, 1025);
        cr_assert_eq(sd_line_buffer_pending(&lb), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_line_buffer_feed(&lb, "\nnext\n", 6, collect, &c, &err), 0);
        cr_assert_eq(c.n, 1);
        cr_assert_str_eq(c.lines[0], "next");
        collected_free(&c);
}

Test(line_buffer, callback_error_stops_feeding) {
        _cleanup_line_buffer_ struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 0);
        struct collected c = { .fail_at = 2 };
        sd_error err = { 0 };
        int r = sd_line_buffer_feed(&lb, "a\nb\nc\n", 6, collect, &c, &err);
        cr_assert_eq(r, -ECANCELED);
        cr_assert_eq(c.n, 2, "nothing after the failing line");
        collected_free(&c);
}

Test(line_buffer, empty_lines_and_pending_tail) {
        _cleanup_line_buffer_ struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 0);
        struct collected c = { 0 };
        feed_in_slices(&lb, "\n\npartial", 9, 4, &c);
        cr_assert_eq(c.n, 2);
        cr_assert_str_eq(c.lines[0], "");
        cr_assert_eq(sd_line_buffer_pending(&lb), 7);
        collected_free(&c);
}

/* ------------------------------------------------------------- containers */

static const struct sd_docker_container *by_id(const struct sd_docker_container_list *l, const char *id) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->items[i].id, id) == 0)
                        return &l->items[i];
        cr_assert_fail("container %s not in the list", id);
        return NULL;
}

Test(docker_containers, recorded_list) {
        size_t len = 0;
        char *json = read_fixture("containers-all.json", &len);
        _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_docker_containers_parse(json, len, &list, &err), 0, "%s", err.message);
        free(json);
        cr_assert_eq(list.n, 3);

        const struct sd_docker_container *c = by_id(&list, C_VOL_USER);
        cr_assert_eq(c->n_names, 1);
        cr_assert_str_eq(c->names[0], "sdrec-vol-user", "leading '/' dropped");
        cr_assert_eq(c->state, SD_DOCKER_STATE_RUNNING);
        cr_assert(c->running);
        cr_assert_eq(c->reload_signal, 1);
        cr_assert_str_eq(c->reload_signal_label, "SIGHUP");
        cr_assert_eq(c->pid, 0, "the list has no pid");
        cr_assert_eq(c->n_mounts, 1);
        cr_assert_eq(c->mounts[0].type, SD_DOCKER_MOUNT_VOLUME);
        cr_assert_str_eq(c->mounts[0].name, "sdrec-vol");
        cr_assert_str_eq(c->mounts[0].destination, "/run/secrets");
        cr_assert_str_eq(c->mounts[0].driver, "local");
        cr_assert_not(c->mounts[0].rw);

        c = by_id(&list, C_SHORT);
        cr_assert_eq(c->state, SD_DOCKER_STATE_EXITED);
        cr_assert_not(c->running);
        cr_assert_str_eq(c->names[0], "sdrec-short2");
        cr_assert_eq(c->n_mounts, 0);

        c = by_id(&list, C_HEALTH);
        cr_assert_eq(c->reload_signal, 0);
        cr_assert_str_eq(c->reload_signal_label, "");
}

Test(docker_containers, recorded_volume_filter) {
        size_t len = 0;
        char *json = read_fixture("containers-volume-filter.json", &len);
        _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
        cr_assert_eq(sd_docker_containers_parse(json, len, &list, NULL), 0);
        free(json);
        cr_assert_eq(list.n, 1);
        cr_assert_str_eq(list.items[0].id, C_VOL_USER);
}

Test(docker_containers, empty_and_other_mount_types) {
        _cleanup_docker_container_list_ struct sd_docker_container_list list = { 0 };
        cr_assert_eq(sd_docker_containers_parse("[]", 2, &list, NULL), 0);
        cr_assert_eq(list.n, 0);

        const char *json =
                "[{\"Id\":\"" C_ANON "\",\"Names\":[\"/a\",\"/b/link\"],\"State\":\"hibernating\","
                "\"Labels\":null,\"Mounts\":["
                "{\"Type\":\"bind\",\"Source\":\"/tmp\",\"Destination\":\"/hostbind\",\"Mode\":\"ro\",\"RW\":false,"
                "\"Propagation\":\"rprivate\"},"
                "{\"Type\":\"bind\",\"Name\":\"\",\"Destination\":\"/b\",\"Driver\":\"\",\"RW\":true},"
                "{\"Type\":\"tmpfs\",\"Destination\":\"/scratch\",\"RW\":true},"
                "{\"Type\":\"npipe\",\"Destination\":\"/p\",\"RW\":true}]}]";
        sd_error err = { 0 };
        cr_assert_eq(sd_docker_containers_parse(json, strlen(json), &list, &err), 0, "%s", err.message);
        cr_assert_eq(list.n, 1);
        const struct sd_docker_container *c = &list.items[0];
        cr_assert_eq(c->state, SD_DOCKER_STATE_UNKNOWN, "an unknown state is not an error");
        cr_assert_not(c->running);
        cr_assert_eq(c->n_names, 2);
        cr_assert_str_eq(c->names[1], "b/link");
        cr_assert_eq(c->n_mounts, 4);
        cr_assert_eq(c->mounts[0].type, SD_DOCKER_MOUNT_BIND);
        cr_assert_null(c->mounts[0].name);
        cr_assert_null(c->mounts[0].driver);
        cr_assert_null(c->mounts[1].name, "an empty Name is no name");
        cr_assert_null(c->mounts[1].driver);
        cr_assert(c->mounts[1].rw);
        cr_assert_eq(c->mounts[2].type, SD_DOCKER_MOUNT_TMPFS);
        cr_assert_eq(c->mounts[3].type, SD_DOCKER_MOUNT_OTHER);
}

#define ITEM_OK_HEAD "{\"Id\":\"" C_ANON "\",\"Names\":[\"/a\"],\"State\":\"running\""

Test(docker_containers, hostile_lists_are_refused_naming_the_element) {
        char long_dest[5200];
        char dest[4200];
        memset(dest, 'd', sizeof(dest) - 1);
        dest[0] = '/';
        dest[sizeof(dest) - 1] = '\0';
        snprintf(long_dest, sizeof(long_dest),
                 "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"bind\",\"Destination\":\"%s\",\"RW\":true}]}]", dest);
        const struct bad_event cases[] = {
                { "", "not valid JSON" },
                { "{}", "expected a JSON array, got an object" },
                { "[1]", "element '[0]': expected an object" },
                { "[{\"Names\":[],\"State\":\"running\",\"Mounts\":[]}]", "field '[0].Id': missing" },
                { "[{\"Id\":\"abc\",\"Names\":[],\"State\":\"running\",\"Mounts\":[]}]", "field '[0].Id': 'abc' is not" },
                { "[{\"Id\":\"" C_ANON "\",\"State\":\"running\",\"Mounts\":[]}]", "field '[0].Names': missing" },
                { "[{\"Id\":\"" C_ANON "\",\"Names\":\"/a\",\"State\":\"running\",\"Mounts\":[]}]",
                  "field '[0].Names': expected an array" },
                { "[{\"Id\":\"" C_ANON "\",\"Names\":[\"/a\",7],\"State\":\"running\",\"Mounts\":[]}]",
                  "field '[0].Names[1]': expected a string" },
                { "[{\"Id\":\"" C_ANON "\",\"Names\":[\"/a\\nb\"],\"State\":\"running\",\"Mounts\":[]}]",
                  "field '[0].Names[0]': contains control byte 0x0a" },
                { "[{\"Id\":\"" C_ANON "\",\"Names\":[],\"Mounts\":[]}]", "field '[0].State': missing" },
                { "[{\"Id\":\"" C_ANON "\",\"Names\":[],\"State\":1,\"Mounts\":[]}]", "field '[0].State': expected a string" },
                { "[" ITEM_OK_HEAD ",\"Labels\":[],\"Mounts\":[]}]", "field '[0].Labels': expected an object" },
                { "[" ITEM_OK_HEAD ",\"Labels\":{\"secretd.reload-signal\":true},\"Mounts\":[]}]",
                  "field '[0].Labels.secretd.reload-signal': expected a string" },
                { "[" ITEM_OK_HEAD "}]", "field '[0].Mounts': missing" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":null}]", "field '[0].Mounts': expected an array, got null" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[\"x\"]}]", "field '[0].Mounts[0]': expected an object" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Destination\":\"/d\",\"RW\":true}]}]",
                  "field '[0].Mounts[0].Type': missing" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"volume\",\"Destination\":\"/d\",\"RW\":true}]}]",
                  "field '[0].Mounts[0].Name': missing for a volume mount" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"volume\",\"Name\":\"../x\",\"Destination\":\"/d\",\"RW\":true}]}]",
                  "field '[0].Mounts[0].Name': contains '/'" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"bind\",\"RW\":true}]}]",
                  "field '[0].Mounts[0].Destination': missing" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"bind\",\"Destination\":\"/d\",\"RW\":\"true\"}]}]",
                  "field '[0].Mounts[0].RW': expected true or false, got a string" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"bind\",\"Destination\":\"/d\"}]}]",
                  "field '[0].Mounts[0].RW': missing" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[{\"Type\":\"volume\",\"Name\":\"v\",\"Driver\":7,\"Destination\":\"/d\",\"RW\":true}]}]",
                  "field '[0].Mounts[0].Driver': expected a string" },
                { long_dest, "field '[0].Mounts[0].Destination': 4199 bytes long; the limit is 4095" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[]}," ITEM_OK_HEAD ",\"Mounts\":[],\"Mounts\":[]}]",
                  "duplicate object key" },
                { "[" ITEM_OK_HEAD ",\"Mounts\":[]},{\"Id\":\"" C_ANON "\"}]", "field '[1].Names': missing" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                const struct bad_event *c = &cases[i];
                struct sd_docker_container_list list = { .items = (void *) 0x1, .n = 77 };
                sd_error err = { 0 };
                int r = sd_docker_containers_parse(c->line, strlen(c->line), &list, &err);
                cr_assert_eq(r, -EBADMSG, "case %zu accepted (%d): %s", i, r, c->line);
                cr_assert(strstr(err.message, c->expect), "case %zu: message '%s' lacks '%s'", i, err.message,
                          c->expect);
                cr_assert(strncmp(err.message, "docker containers: ", 19) == 0, "%s", err.message);
                assert_one_line(err.message);
                cr_assert(list.items == (void *) 0x1 && list.n == 77, "output untouched");
        }
}

/* ---------------------------------------------------------------- inspect */

Test(docker_inspect, recorded_running_and_exited) {
        size_t len = 0;
        char *json = read_fixture("inspect-running.json", &len);
        _cleanup_docker_container_ struct sd_docker_container c = { 0 };
        sd_error err = { 0 };
        cr_assert_eq(sd_docker_container_inspect_parse(json, len, &c, &err), 0, "%s", err.message);
        free(json);
        cr_assert_str_eq(c.id, C_VOL_USER);
        cr_assert_eq(c.n_names, 1);
        cr_assert_str_eq(c.names[0], "sdrec-vol-user");
        cr_assert_eq(c.state, SD_DOCKER_STATE_RUNNING);
        cr_assert(c.running);
        cr_assert_eq(c.pid, 11211);
        cr_assert_str_eq(c.started_at, "2026-11-28T21:05:09.029407234Z");
        cr_assert_eq(c.reload_signal, 1);
        cr_assert_eq(c.n_mounts, 1);
        cr_assert_str_eq(c.mounts[0].name, "sdrec-vol");
        cr_assert_str_eq(c.mounts[0].destination, "/run/secrets");
        cr_assert_not(c.mounts[0].rw);

        sd_docker_container_clear(&c);
        json = read_fixture("inspect-exited.json", &len);
        cr_assert_eq(sd_docker_container_inspect_parse(json, len, &c, &err), 0, "%s", err.message);
        free(json);
        cr_assert_str_eq(c.id, C_SHORT);
        cr_assert_str_eq(c.names[0], "sdrec-short2");
        cr_assert_eq(c.state, SD_DOCKER_STATE_EXITED);
        cr_assert_not(c.running);
        cr_assert_eq(c.pid, 0);
        cr_assert_eq(c.reload_signal, 0);
        cr_assert_eq(c.n_mounts, 0);
}

/* Set path (dot-separated) in a copy of the recorded inspect to value (NULL:
 * delete it) and parse. */
static int inspect_mutated(const char *path, json_t *value, sd_error *err) {
        size_t len = 0;
        char *json = read_fixture("inspect-running.json", &len);
        json_t *root = json_loadb(json, len, 0, NULL);
        free(json);
        cr_assert_not_null(root);
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", path);
        json_t *parent = root;
        char *key = buf;
        for (char *dot; (dot = strchr(key, '.'));) {
                *dot = '\0';
                parent = json_object_get(parent, key);
                cr_assert_not_null(parent, "%s", path);
                key = dot + 1;
        }
        if (value)
                json_object_set_new(parent, key, value);
        else
                json_object_del(parent, key);
        char *text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        struct sd_docker_container c = { 0 };
        int r = sd_docker_container_inspect_parse(text, strlen(text), &c, err);
        free(text);
        sd_docker_container_clear(&c);
        return r;
}

Test(docker_inspect, hostile_variants_are_refused_naming_the_field) {
        const struct {
                const char *path;
                json_t *value;
                const char *expect;
        } cases[] = {
                { "Id", NULL, "field 'Id': missing" },
                { "Id", json_string("3cba44c52afb"), "field 'Id': '3cba44c52afb' is not a container id" },
                { "Name", NULL, "field 'Name': missing" },
                { "Name", json_string("/x\ty"), "field 'Name': contains control byte 0x09" },
                { "State", NULL, "field 'State': missing" },
                { "State", json_string("running"), "field 'State': expected an object" },
                { "State.Status", NULL, "field 'State.Status': missing" },
                { "State.Running", json_string("true"), "field 'State.Running': expected true or false" },
                { "State.Running", NULL, "field 'State.Running': missing" },
                { "State.Pid", json_integer(-1), "field 'State.Pid': -1 is out of range" },
                { "State.Pid", json_integer(1LL << 40), "field 'State.Pid'" },
                { "State.Pid", json_real(3.0), "field 'State.Pid': expected an integer, got a real number" },
                { "State.StartedAt", json_integer(0), "field 'State.StartedAt': expected a string" },
                { "Config", NULL, "field 'Config': missing" },
                { "Config.Labels", json_array(), "field 'Config.Labels': expected an object" },
                { "Config.Labels", json_pack("{s:i}", "secretd.reload-signal", 1),
                  "field 'Config.Labels.secretd.reload-signal': expected a string" },
                { "Mounts", json_string("none"), "field 'Mounts': expected an array" },
                { "Mounts", NULL, "field 'Mounts': missing" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                sd_error err = { 0 };
                int r = inspect_mutated(cases[i].path, cases[i].value, &err);
                cr_assert_eq(r, -EBADMSG, "case %zu (%s) accepted", i, cases[i].path);
                cr_assert(strstr(err.message, cases[i].expect), "case %zu: '%s' lacks '%s'", i, err.message,
                          cases[i].expect);
                cr_assert(strncmp(err.message, "docker inspect: ", 16) == 0, "%s", err.message);
                assert_one_line(err.message);
        }
}

Test(docker_inspect, tolerated_variants) {
        sd_error err = { 0 };
        cr_assert_eq(inspect_mutated("Config.Labels", json_null(), &err), 0, "null labels: %s", err.message);
        cr_assert_eq(inspect_mutated("Config.Labels", NULL, &err), 0, "no labels: %s", err.message);
        cr_assert_eq(inspect_mutated("Mounts", json_null(), &err), 0, "null mounts: %s", err.message);
        cr_assert_eq(inspect_mutated("State.Status", json_string("zombie"), &err), 0, "%s", err.message);
        cr_assert_eq(inspect_mutated("Config.Labels", json_pack("{s:s}", "secretd.reload-signal", "nope"), &err), 0);
}

/* ----------------------------------------------------------------- signals */

Test(docker_signals, accepted) {
        const struct {
                const char *name;
                int signo;
        } cases[] = {
                { "SIGHUP", 1 },   { "HUP", 1 },       { "hup", 1 },       { "SigHup", 1 },
                { "1", 1 },        { "SIGTERM", 15 },  { "USR1", 10 },     { "sigusr2", 12 },
                { "SIGKILL", 9 },  { "WINCH", 28 },    { "RTMIN", 34 },    { "RTMIN+3", 37 },
                { "SIGRTMAX-2", 62 }, { "RTMAX", 64 }, { "64", 64 },       { "SIGIOT", 6 },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                int signo = -1;
                sd_error err = { 0 };
                cr_assert_eq(sd_docker_signal_from_name(cases[i].name, &signo, &err), 0, "%s: %s", cases[i].name,
                             err.message);
                cr_assert_eq(signo, cases[i].signo, "%s -> %d", cases[i].name, signo);
        }
}

Test(docker_signals, refused) {
        const char *bad[] = { "",         "0",        "65",       "-1",         "1x",     "SIG",
                              "SIGFOO",   "RTMIN+",   "RTMIN+31", "RTMAX-31",   "HUP ",   " HUP",
                              "sig hup",  "SIGHUPSIGHUPSIGHUP", "+1", "RTMIN-1", "SIG\nHUP", "01234567890123456789" };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad); i++) {
                int signo = -7;
                sd_error err = { 0 };
                cr_assert_eq(sd_docker_signal_from_name(bad[i], &signo, &err), -EINVAL, "'%s' accepted", bad[i]);
                cr_assert_eq(signo, -7, "output untouched");
                cr_assert(strncmp(err.message, "signal", 6) == 0, "%s", err.message);
                assert_one_line(err.message);
        }
        cr_assert_eq(sd_docker_signal_from_name(NULL, NULL, NULL), -EINVAL);
}

/* ------------------------------------------------------------ HTTP errors */

Test(docker_errors, recorded_error_bodies) {
        const struct {
                const char *file;
                const char *method, *path;
                long status;
                int code;
                const char *message;
        } cases[] = {
                { "error-inspect-404.json", "GET", "/containers/nosuchthing/json", 404, -ENOENT,
                  "docker: GET /containers/nosuchthing/json: 404 No such container: nosuchthing" },
                { "error-kill-409.json", "POST", "/containers/sdrec-short2/kill", 409, -EBUSY,
                  "docker: POST /containers/sdrec-short2/kill: 409 Cannot kill container: sdrec-short2: Container "
                  C_SHORT " is not running" },
                { "error-kill-404.json", "POST", "/containers/nosuch/kill", 404, -ENOENT,
                  "docker: POST /containers/nosuch/kill: 404 Cannot kill container: nosuch: No such container: nosuch" },
                { "error-kill-400.json", "POST", "/containers/x/kill", 400, -EINVAL,
                  "docker: POST /containers/x/kill: 400 Invalid signal: SIGFOO" },
                { "error-events-bad-filter-500.json", "GET", "/events", 500, -EPROTO,
                  "docker: GET /events: 500 invalid character 'b' looking for beginning of object key string" },
                { "error-list-unknown-filter-400.json", "GET", "/containers/json", 400, -EINVAL,
                  "docker: GET /containers/json: 400 Invalid filter 'nosuchfilter'" },
                { "error-ping-version-400.json", "GET", "/_ping", 400, -EINVAL,
                  "docker: GET /_ping: 400 client version 9.99 is too new. Maximum supported API version is 1.41" },
        };
        for (size_t i = 0; i < SD_ARRAY_SIZE(cases); i++) {
                size_t len = 0;
                char *body = read_fixture(cases[i].file, &len);
                sd_error err = { 0 };
                int r = sd_docker_error_from_response(cases[i].method, cases[i].path, cases[i].status, body, len, &err);
                free(body);
                cr_assert_eq(r, cases[i].code, "%s: %d", cases[i].file, r);
                cr_assert_str_eq(err.message, cases[i].message);
        }
}

Test(docker_errors, bodies_without_a_message) {
        sd_error err = { 0 };
        cr_assert_eq(sd_docker_error_from_response("GET", "/x", 404, "", 0, &err), -ENOENT);
        cr_assert_str_eq(err.message, "docker: GET /x: 404 Not Found");
        cr_assert_eq(sd_docker_error_from_response("GET", "/x", 502, "<html>bad gateway</html>", 24, &err), -EPROTO);
        cr_assert_str_eq(err.message, "docker: GET /x: 502 unexpected status");
        cr_assert_eq(sd_docker_error_from_response("GET", "/x", 403, "{\"message\":7}", 13, &err), -EACCES);
        cr_assert_str_eq(err.message, "docker: GET /x: 403 Forbidden");
        cr_assert_eq(sd_docker_error_from_response("GET", "/x", 500, NULL, 0, &err), -EPROTO);

        /* A hostile message stays one bounded, printable line. */
        char body[4096];
        char spam[3000];
        memset(spam, 'm', sizeof(spam) - 1);
        spam[sizeof(spam) - 1] = '\0';
        snprintf(body, sizeof(body), "{\"message\":\"line1\\nline2\\u001b[31m%s\"}", spam);
        cr_assert_eq(sd_docker_error_from_response("GET", "/x", 409, body, strlen(body), &err), -EBUSY);
        assert_one_line(err.message);
        cr_assert(strstr(err.message, "line1\\x0aline2\\x1b[31m"), "%s", err.message);
        cr_assert(strstr(err.message, "..."), "visibly cut: %s", err.message);
}

/* ------------------------------------------------------------------ client */

Test(docker_client, socket_paths) {
        struct sd_docker *d = NULL;
        sd_error err = { 0 };
        cr_assert_eq(sd_docker_new(NULL, &d, &err), 0, "%s", err.message);
        cr_assert_str_eq(sd_docker_socket_path(d), SD_DOCKER_DEFAULT_SOCKET);
        sd_docker_free(d);

        cr_assert_eq(sd_docker_new("unix:///tmp/x/docker.sock", &d, &err), 0, "%s", err.message);
        cr_assert_str_eq(sd_docker_socket_path(d), "/tmp/x/docker.sock");
        sd_docker_free(d);

        char path[200] = "/";
        memset(path + 1, 'p', 106);
        path[107] = '\0';
        cr_assert_eq(sd_docker_new(path, &d, &err), 0, "107 bytes fit: %s", err.message);
        sd_docker_free(d);
        d = NULL;
        strcat(path, "q");
        cr_assert_eq(sd_docker_new(path, &d, &err), -ENAMETOOLONG);
        cr_assert(strstr(err.message, "108 bytes long; a unix socket path holds at most 107"), "%s", err.message);
        cr_assert_null(d, "output untouched");

        cr_assert_eq(sd_docker_new("tcp://127.0.0.1:2375", &d, &err), -EINVAL);
        cr_assert(strstr(err.message, "only unix:// sockets"), "%s", err.message);
        cr_assert_eq(sd_docker_new("docker.sock", &d, &err), -EINVAL);
        cr_assert(strstr(err.message, "not an absolute path"), "%s", err.message);
        cr_assert_eq(sd_docker_new("unix://relative", &d, &err), -EINVAL);
}

/* A socket path in a fresh directory where nothing listens. */
static struct sd_docker *client_for_missing_socket(char *dir, size_t dir_size) {
        snprintf(dir, dir_size, "/tmp/sd-docker-test.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        char path[128];
        snprintf(path, sizeof(path), "%s/docker.sock", dir);
        struct sd_docker *d = NULL;
        cr_assert_eq(sd_docker_new(path, &d, NULL), 0);
        sd_docker_set_timeouts(d, 2000, 2000);
        return d;
}

static int never_event(void *userdata, const struct sd_docker_event *ev, sd_error *err) {
        cr_assert_fail("no event expected");
        return 0;
}

Test(docker_client, missing_socket_means_dockerd_is_down) {
        char dir[64];
        _cleanup_docker_ struct sd_docker *d = client_for_missing_socket(dir, sizeof(dir));
        sd_error err = { 0 };

        cr_assert_eq(sd_docker_ping(d, &err), -ECONNREFUSED, "%s", err.message);
        cr_assert(strstr(err.message, "docker at /") && strstr(err.message, " is unreachable: GET /_ping: "), "%s",
                  err.message);
        cr_assert(strstr(err.message, "No such file or directory (is dockerd running?)"), "%s", err.message);

        const struct sd_docker_events_handler h = { .event = never_event };
        cr_assert_eq(sd_docker_events_run(d, NULL, NULL, &h, -1, &err), -ECONNREFUSED, "%s", err.message);
        cr_assert(strstr(err.message, " is unreachable: GET /events: "), "%s", err.message);

        /* A stale socket file (dockerd crashed without unlinking it). */
        char path[128];
        snprintf(path, sizeof(path), "%s", sd_docker_socket_path(d));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        cr_assert_lt(strlen(path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(fd);
        cr_assert_eq(sd_docker_ping(d, &err), -ECONNREFUSED, "%s", err.message);
        cr_assert(strstr(err.message, "Connection refused"), "%s", err.message);

        unlink(path);
        rmdir(dir);
}

Test(docker_client, arguments_are_checked_before_connecting) {
        char dir[64];
        _cleanup_docker_ struct sd_docker *d = client_for_missing_socket(dir, sizeof(dir));
        sd_error err = { 0 };
        /* Each would be -ECONNREFUSED had it tried to connect. */
        cr_assert_eq(sd_docker_kill(d, C_ANON, "SIGFOO", &err), -EINVAL);
        cr_assert_str_eq(err.message, "signal 'SIGFOO': unknown signal name");
        cr_assert_eq(sd_docker_kill(d, "../../_ping", "HUP", &err), -EINVAL);
        cr_assert(strstr(err.message, "not a container id or name"), "%s", err.message);
        cr_assert_eq(sd_docker_kill(d, "a?signal=9", "HUP", &err), -EINVAL);
        cr_assert_eq(sd_docker_kill(d, "", "HUP", &err), -EINVAL);

        struct sd_docker_container c = { 0 };
        cr_assert_eq(sd_docker_inspect_container(d, "x/../y", &c, &err), -EINVAL);
        struct sd_docker_container_list l = { 0 };
        cr_assert_eq(sd_docker_list_containers(d, "[\"volume\"]", &l, &err), -EINVAL);
        cr_assert(strstr(err.message, "docker filters: not a JSON object"), "%s", err.message);
        cr_assert_eq(sd_docker_list_containers(d, "{\"volume\":", &l, &err), -EINVAL);

        const struct sd_docker_events_handler h = { .event = never_event };
        const char *bad_since[] = { "abc", "1.", ".5", "1.1234567890", "1e9", "-1", "12345678901234567890", "1 " };
        for (size_t i = 0; i < SD_ARRAY_SIZE(bad_since); i++) {
                cr_assert_eq(sd_docker_events_run(d, bad_since[i], NULL, &h, -1, &err), -EINVAL, "since '%s'",
                             bad_since[i]);
                cr_assert(strstr(err.message, "is not seconds[.nanoseconds]"), "%s", err.message);
        }
        cr_assert_eq(sd_docker_events_run(d, NULL, "{\"type\":", &h, -1, &err), -EINVAL);
        const struct sd_docker_events_handler no_event = { 0 };
        cr_assert_eq(sd_docker_events_run(d, NULL, NULL, &no_event, -1, &err), -EINVAL);

        /* Valid arguments do reach the (missing) socket. */
        cr_assert_eq(sd_docker_events_run(d, "1795899902.008679286", NULL, &h, -1, &err), -ECONNREFUSED);
        cr_assert_eq(sd_docker_kill(d, C_ANON, "hup", &err), -ECONNREFUSED);
        cr_assert_eq(sd_docker_list_containers(d, "{\"volume\":[\"db\"]}", &l, &err), -ECONNREFUSED);
        rmdir(dir);
}
