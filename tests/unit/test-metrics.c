/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Metrics (Prometheus text), the audit log (JSON lines) and the admin API's
 * routing, without a server: admin_dispatch() is what the server calls
 * after the peer check.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "agent-fixture.h"
#include "audit.h"
#include "delivery.h"
#include "metrics.h"
#include "notes.h"
#include "secretd/config.h"

/* ---- Prometheus text ---- */

struct sample {
        char name[128];
        char labels[128];
        double value;
};

static bool matches(const char *pattern, const char *text) {
        regex_t re;
        cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0, "pattern %s", pattern);
        bool ok = regexec(&re, text, 0, NULL, 0) == 0;
        regfree(&re);
        return ok;
}

/* Render, check every line against the exposition format, and return the
 * samples.  Each sample's metric family must have had its # TYPE line
 * before it; counters end in _total. */
static size_t render_and_parse(struct sample *out, size_t max) {
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(metrics_render_string(&text, &len), 0);
        cr_assert_eq(strlen(text), len);
        cr_assert(len > 0 && text[len - 1] == '\n', "the exposition ends with a newline");

        char types[64][128];
        char kinds[64][16];
        size_t n_types = 0, n = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "# HELP ", 7) == 0) {
                        cr_assert(matches("^# HELP secretd_[a-z_]+ [^ ].*$", line), "bad HELP line: %s", line);
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        cr_assert(matches("^# TYPE secretd_[a-z_]+ (counter|histogram)$", line), "bad TYPE line: %s",
                                  line);
                        cr_assert_lt(n_types, 64);
                        cr_assert_eq(sscanf(line, "# TYPE %127s %15s", types[n_types], kinds[n_types]), 2);
                        if (strcmp(kinds[n_types], "counter") == 0)
                                cr_assert(matches("_total$", types[n_types]), "counter %s must end in _total",
                                          types[n_types]);
                        n_types++;
                        continue;
                }
                cr_assert(matches("^secretd_[a-z_]+(\\{[a-z]+=\"[^\"]*\"\\})? [0-9]+(\\.[0-9]+)?$", line),
                          "bad sample line: '%s'", line);
                cr_assert_lt(n, max);
                struct sample *s = &out[n++];
                *s = (struct sample) { 0 };
                const char *brace = strchr(line, '{'), *space = strrchr(line, ' ');
                size_t name_len = (size_t) ((brace ? brace : space) - line);
                memcpy(s->name, line, name_len);
                if (brace)
                        memcpy(s->labels, brace, (size_t) (space - brace));
                s->value = strtod(space + 1, NULL);

                /* The family: the name itself, or a histogram's base. */
                bool typed = false;
                for (size_t i = 0; i < n_types && !typed; i++) {
                        size_t tl = strlen(types[i]);
                        typed = strcmp(types[i], s->name) == 0 ||
                                (strcmp(kinds[i], "histogram") == 0 && strncmp(types[i], s->name, tl) == 0 &&
                                 (strcmp(s->name + tl, "_bucket") == 0 || strcmp(s->name + tl, "_sum") == 0 ||
                                  strcmp(s->name + tl, "_count") == 0));
                }
                cr_assert(typed, "sample %s has no # TYPE line before it", s->name);
        }
        free(text);
        return n;
}

static const struct sample *find(const struct sample *s, size_t n, const char *name, const char *labels) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(s[i].name, name) == 0 && strcmp(s[i].labels, labels ? labels : "") == 0)
                        return &s[i];
        cr_assert_fail("no sample %s%s", name, labels ? labels : "");
        return NULL;
}

Test(metrics, counters_render_as_valid_prometheus_text) {
        metrics_reset();
        for (int i = 0; i < 3; i++)
                metrics_inc(METRIC_DELIVERIES);
        metrics_inc(METRIC_WIPES);
        metrics_add(METRIC_EVENTS, 42);
        metrics_error(ERROR_VERIFY);
        metrics_error(ERROR_VERIFY);
        metrics_error(ERROR_ROLLBACK);

        struct sample s[128];
        size_t n = render_and_parse(s, 128);
        cr_assert_eq(find(s, n, "secretd_deliveries_total", NULL)->value, 3);
        cr_assert_eq(find(s, n, "secretd_wipes_total", NULL)->value, 1);
        cr_assert_eq(find(s, n, "secretd_rotations_total", NULL)->value, 0, "counters are rendered from zero");
        cr_assert_eq(find(s, n, "secretd_docker_events_total", NULL)->value, 42);
        cr_assert_eq(find(s, n, "secretd_errors_total", "{kind=\"verify\"}")->value, 2);
        cr_assert_eq(find(s, n, "secretd_errors_total", "{kind=\"rollback\"}")->value, 1);
        cr_assert_eq(find(s, n, "secretd_errors_total", "{kind=\"store\"}")->value, 0);
        cr_assert_eq(metrics_get(METRIC_DELIVERIES), 3);
        cr_assert_eq(metrics_get_error(ERROR_VERIFY), 2);
}

Test(metrics, histogram_buckets_are_cumulative_and_inf_equals_count) {
        metrics_reset();
        const double observed[] = { 0.0005, 0.003, 0.2, 0.2, 7, 30, NAN, -1 };
        double sum = 0;
        for (size_t i = 0; i < sizeof(observed) / sizeof(observed[0]); i++) {
                metrics_observe_rotation(observed[i]);
                if (observed[i] > 0)
                        sum += observed[i];
        }

        struct sample s[128];
        size_t n = render_and_parse(s, 128);
        double last_le = -1, last_count = 0, inf = -1;
        size_t buckets = 0;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(s[i].name, "secretd_rotation_duration_seconds_bucket") != 0)
                        continue;
                buckets++;
                cr_assert_geq(s[i].value, last_count, "bucket %s went down", s[i].labels);
                last_count = s[i].value;
                if (strcmp(s[i].labels, "{le=\"+Inf\"}") == 0) {
                        inf = s[i].value;
                        continue;
                }
                cr_assert_eq(inf, -1, "+Inf is the last bucket");
                double le = strtod(s[i].labels + 5, NULL);
                cr_assert_gt(le, last_le, "le bounds increase");
                last_le = le;
        }
        cr_assert_geq(buckets, 10, "1 ms to 10 s needs about a dozen buckets");
        cr_assert_eq(last_le, 10);
        double count = find(s, n, "secretd_rotation_duration_seconds_count", NULL)->value;
        cr_assert_eq(count, 8, "NaN and negative observations are counted (as 0)");
        cr_assert_eq(inf, count, "+Inf bucket equals _count");
        cr_assert_eq(find(s, n, "secretd_rotation_duration_seconds_bucket", "{le=\"0.001\"}")->value, 3);
        cr_assert_eq(find(s, n, "secretd_rotation_duration_seconds_bucket", "{le=\"0.005\"}")->value, 4);
        cr_assert_eq(find(s, n, "secretd_rotation_duration_seconds_bucket", "{le=\"0.25\"}")->value, 6);
        cr_assert_eq(find(s, n, "secretd_rotation_duration_seconds_bucket", "{le=\"10\"}")->value, 7,
                     "30 s lands above the last bound only");
        double got_sum = find(s, n, "secretd_rotation_duration_seconds_sum", NULL)->value;
        cr_assert(fabs(got_sum - sum) < 1e-5, "sum %f, expected %f", got_sum, sum);
}

#define THREADS 4
#define PER_THREAD 100000

static void *bump(void *arg) {
        for (int i = 0; i < PER_THREAD; i++) {
                metrics_inc(METRIC_ROTATIONS);
                metrics_error(ERROR_SIGNAL);
                if (i % 100 == 0)
                        metrics_observe_rotation(0.01);
        }
        return NULL;
}

Test(metrics, concurrent_increments_are_not_lost) {
        metrics_reset();
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
                cr_assert_eq(pthread_create(&t[i], NULL, bump, NULL), 0);
        for (int i = 0; i < THREADS; i++)
                cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(metrics_get(METRIC_ROTATIONS), THREADS * PER_THREAD);
        cr_assert_eq(metrics_get_error(ERROR_SIGNAL), THREADS * PER_THREAD);
        struct sample s[128];
        size_t n = render_and_parse(s, 128);
        cr_assert_eq(find(s, n, "secretd_rotation_duration_seconds_count", NULL)->value, THREADS * PER_THREAD / 100);
}

Test(metrics, error_kinds_by_the_step_that_failed) {
        /* The store: whatever its error, also an etcd reply that makes no
         * sense (EPROTO), which is a store error and not a forgery. */
        cr_assert_eq(delivery_error_kind(DELIVERY_GET, -EPROTO), ERROR_STORE);
        cr_assert_eq(delivery_error_kind(DELIVERY_GET, -ECONNREFUSED), ERROR_STORE);
        cr_assert_eq(delivery_error_kind(DELIVERY_GET, -EBADMSG), ERROR_STORE);
        cr_assert_eq(delivery_error_kind(DELIVERY_OPEN, -EKEYREJECTED), ERROR_VERIFY);
        cr_assert_eq(delivery_error_kind(DELIVERY_OPEN, ENOKEY), ERROR_VERIFY);
        cr_assert_eq(delivery_error_kind(DELIVERY_OPEN, -EBADMSG), ERROR_VERIFY);
        /* A deleted secret is the store's answer, wherever it shows. */
        cr_assert_eq(delivery_error_kind(DELIVERY_OPEN, -ENOENT), ERROR_STORE);
        cr_assert_eq(delivery_error_kind(DELIVERY_DECIDE, -ESTALE), ERROR_ROLLBACK);
        cr_assert_eq(delivery_error_kind(DELIVERY_DECIDE, -EUCLEAN), ERROR_STATE);
        cr_assert_eq(delivery_error_kind(DELIVERY_WRITE, -EFBIG), ERROR_TMPFS);
        cr_assert_str_eq(metrics_error_kind_name(ERROR_TMPFS), "tmpfs");
}

/* ---- audit ---- */

static char dir[] = "/tmp/secretd-audit-XXXXXX";
static char log_path[128];

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        (void) snprintf(log_path, sizeof(log_path), "%s/log/secretd/audit.log", dir);
}

static void teardown(void) {
        char cmd[256];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(audit, .init = setup, .fini = teardown);

static const char *const allowed_keys[] = { "time",   "event",   "container", "container_name", "volume",
                                            "secret", "version", "writer",    "reason",         "instance" };

static json_t *parse_line(const char *line) {
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        cr_assert_not_null(obj, "not JSON: %s (%s)", line, jerr.text);
        cr_assert(json_is_object(obj));
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value) {
                bool known = false;
                for (size_t i = 0; i < sizeof(allowed_keys) / sizeof(allowed_keys[0]); i++)
                        known = known || strcmp(key, allowed_keys[i]) == 0;
                cr_assert(known, "unexpected field '%s' in %s", key, line);
        }
        cr_assert(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                          json_string_value(json_object_get(obj, "time"))),
                  "time is RFC 3339 UTC with milliseconds: %s", line);
        return obj;
}

static char *read_all(const char *path) {
        char *text = fixture_read_path(path, NULL);
        cr_assert_not_null(text, "%s: %s", path, strerror(errno));
        return text;
}

Test(audit, a_line_has_the_fields_given_and_nothing_else) {
        const struct audit_event ev = {
                .kind = AUDIT_DELIVER,
                .container = "0123456789abcdef",
                .container_name = "web",
                .volume = "app",
                .instance = "eb115a7b",
                .secret = "db_password",
                .version = 7,
                .writer = "2d9f5e3424d8a1d2",
        };
        char *line = NULL;
        cr_assert_eq(audit_format(&ev, 1764365054123, &line), 0);
        cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "exactly one newline, at the end");
        json_t *obj = parse_line(line);
        cr_assert_str_eq(json_string_value(json_object_get(obj, "time")), "2025-11-28T21:24:14.123Z");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "event")), "deliver");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "container")), "0123456789abcdef");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "container_name")), "web");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "volume")), "app");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "secret")), "db_password");
        cr_assert_eq(json_integer_value(json_object_get(obj, "version")), 7);
        cr_assert_str_eq(json_string_value(json_object_get(obj, "writer")), "2d9f5e3424d8a1d2");
        cr_assert_null(json_object_get(obj, "reason"), "no reason on a delivery");
        cr_assert_eq(json_object_size(obj), 9);
        json_decref(obj);
        free(line);
}

Test(audit, absent_fields_are_left_out_and_a_reason_stays_on_one_line) {
        const struct audit_event ev = {
                .kind = AUDIT_REFUSE,
                .volume = "app",
                .reason = "volume 'app': bad\nline\r\x01 here",
        };
        char *line = NULL;
        cr_assert_eq(audit_format(&ev, 1000, &line), 0);
        cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "a newline in the reason is escaped: %s", line);
        json_t *obj = parse_line(line);
        cr_assert_str_eq(json_string_value(json_object_get(obj, "event")), "refuse");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "reason")), "volume 'app': bad\nline\r\x01 here");
        cr_assert_null(json_object_get(obj, "container"));
        cr_assert_null(json_object_get(obj, "version"), "version 0 means none");
        cr_assert_eq(json_object_size(obj), 4);
        json_decref(obj);
        free(line);

        /* Not UTF-8 (jansson refuses it): still audited, escaped. */
        const struct audit_event odd = { .kind = AUDIT_WIPE, .container_name = "we\xff" "b" };
        cr_assert_eq(audit_format(&odd, 1000, &line), 0);
        obj = parse_line(line);
        cr_assert_not_null(strstr(json_string_value(json_object_get(obj, "container_name")), "we"));
        json_decref(obj);
        free(line);
}

Test(audit, open_creates_a_private_file_and_appends) {
        sd_error err = { 0 };
        struct audit *a = NULL;
        cr_assert_eq(audit_open(log_path, &a, &err), 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(stat(log_path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);
        char parent[160];
        (void) snprintf(parent, sizeof(parent), "%s/log/secretd", dir);
        cr_assert_eq(stat(parent, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700);

        const struct audit_event wipe = { .kind = AUDIT_WIPE, .volume = "app", .container = "abc" };
        cr_assert_eq(audit_log(a, &wipe), 0);
        audit_close(a);
        /* Reopened: appended, not truncated. */
        cr_assert_eq(audit_open(log_path, &a, &err), 0, "%s", err.message);
        cr_assert_eq(audit_log(a, &wipe), 0);
        audit_close(a);
        char *text = read_all(log_path);
        size_t lines = 0;
        for (char *p = text; (p = strchr(p, '\n')); p++)
                lines++;
        cr_assert_eq(lines, 2, "%s", text);
        free(text);
}

Test(audit, a_symlink_or_relative_path_is_refused_and_empty_disables) {
        sd_error err = { 0 };
        struct audit *a = NULL;
        char target[160], link_path[160];
        (void) snprintf(target, sizeof(target), "%s/target", dir);
        (void) snprintf(link_path, sizeof(link_path), "%s/audit.log", dir);
        cr_assert_eq(symlink(target, link_path), 0);
        cr_assert_eq(audit_open(link_path, &a, &err), -ELOOP, "%s", err.message);
        cr_assert_not_null(strstr(err.message, link_path), "%s", err.message);
        struct stat st;
        cr_assert_eq(lstat(target, &st), -1, "nothing was created through the link");

        cr_assert_eq(audit_open("var/log/audit.log", &a, &err), -EINVAL);

        cr_assert_eq(audit_open("", &a, &err), 0);
        const struct audit_event ev = { .kind = AUDIT_WIPE, .volume = "app" };
        cr_assert_eq(audit_log(a, &ev), 0, "a disabled log accepts and drops");
        audit_close(a);
        cr_assert_eq(audit_log(NULL, &ev), 0);
}

#define WRITERS 6
#define LINES_PER_WRITER 400

struct writer_arg {
        struct audit *audit;
        int index;
};

static void *write_lines(void *p) {
        struct writer_arg *w = p;
        /* Long lines (several KiB) make torn or interleaved writes likely
         * if a line were written in more than one piece. */
        char reason[4000];
        memset(reason, 'a' + w->index, sizeof(reason) - 1);
        reason[sizeof(reason) - 1] = '\0';
        char secret[32];
        for (int i = 0; i < LINES_PER_WRITER; i++) {
                (void) snprintf(secret, sizeof(secret), "s%d_%d", w->index, i);
                const struct audit_event ev = {
                        .kind = AUDIT_REFUSE, .volume = "app", .secret = secret, .version = (uint64_t) i + 1,
                        .reason = reason,
                };
                cr_assert_eq(audit_log(w->audit, &ev), 0);
        }
        return NULL;
}

Test(audit, concurrent_writers_produce_whole_lines) {
        sd_error err = { 0 };
        /* Two handles on one file as well: like two agents (or a restart
         * overlapping) appending to the same log. */
        struct audit *a1 = NULL, *a2 = NULL;
        cr_assert_eq(audit_open(log_path, &a1, &err), 0, "%s", err.message);
        cr_assert_eq(audit_open(log_path, &a2, &err), 0, "%s", err.message);
        pthread_t t[WRITERS];
        struct writer_arg args[WRITERS];
        for (int i = 0; i < WRITERS; i++) {
                args[i] = (struct writer_arg) { .audit = i % 2 ? a2 : a1, .index = i };
                cr_assert_eq(pthread_create(&t[i], NULL, write_lines, &args[i]), 0);
        }
        for (int i = 0; i < WRITERS; i++)
                cr_assert_eq(pthread_join(t[i], NULL), 0);
        audit_close(a1);
        audit_close(a2);

        char *text = read_all(log_path);
        int seen[WRITERS] = { 0 };
        size_t lines = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                lines++;
                json_t *obj = parse_line(line);
                const char *secret = json_string_value(json_object_get(obj, "secret"));
                int w = -1, i = -1;
                cr_assert_eq(sscanf(secret, "s%d_%d", &w, &i), 2);
                cr_assert(w >= 0 && w < WRITERS);
                const char *reason = json_string_value(json_object_get(obj, "reason"));
                cr_assert_eq(strlen(reason), 3999);
                cr_assert_eq(strspn(reason, (char[]) { (char) ('a' + w), 0 }), 3999, "a line mixes writers");
                cr_assert_eq(json_integer_value(json_object_get(obj, "version")), i + 1);
                seen[w]++;
                json_decref(obj);
        }
        cr_assert_eq(lines, WRITERS * LINES_PER_WRITER);
        for (int w = 0; w < WRITERS; w++)
                cr_assert_eq(seen[w], LINES_PER_WRITER, "writer %d", w);
        free(text);
}

/* ---- admin routing and status ---- */

/* A volume "app" delivering db_password (v3) and one instance of it,
 * linked to container "web". */
#define WEB_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
static void fill_agent(struct agent_fixture *f, char id[65]) {
        fixture_setup(f);
        fixture_put(f, "db_password", "canary-admin-1");
        fixture_put(f, "db_password", "canary-admin-2");
        fixture_put(f, "db_password", "canary-admin-3");
        char *t = fixture_call(f, "/VolumeDriver.Create", NULL, "{\"Name\":\"app\",\"Opts\":{\"secrets\":\"db_password\"}}");
        cr_assert_str_eq(t, "{}");
        free(t);
        fixture_mount_id(0xeb115a7b, id);
        t = fixture_call(f, "/VolumeDriver.Mount", NULL, "{\"Name\":\"app\",\"ID\":\"%s\"}", id);
        cr_assert(strstr(t, "Mountpoint"), "%s", t);
        free(t);
        sd_error err = { 0 };
        cr_assert_eq(registry_link(f->registry, id, WEB_ID, "web", 0, &err), 1, "%s", err.message);
}

Test(admin, status_lists_volumes_instances_and_connection_states) {
        struct agent_fixture f;
        char id[65];
        fill_agent(&f, id);
        notes_store(&f.notes, false, "store 'x': connection refused");
        notes_docker(&f.notes, true, NULL);
        notes_docker_event(&f.notes);
        struct admin adm = { .registry = f.registry, .notes = &f.notes };

        unsigned status = 0;
        const char *type = NULL;
        char *body = NULL;
        cr_assert_eq(admin_dispatch(&adm, "GET", "/v1/status", &status, &type, &body), 0);
        cr_assert_eq(status, 200);
        cr_assert_str_eq(type, "application/json");
        json_error_t jerr;
        json_t *st = json_loads(body, 0, &jerr);
        cr_assert_not_null(st, "%s: %s", jerr.text, body);

        json_t *agent = json_object_get(st, "agent");
        cr_assert_eq(json_integer_value(json_object_get(agent, "pid")), getpid());
        cr_assert_str_eq(json_string_value(json_object_get(agent, "driver")), "test-driver");
        cr_assert(json_is_string(json_object_get(agent, "version")));
        json_t *store = json_object_get(st, "store");
        cr_assert_str_eq(json_string_value(json_object_get(store, "state")), "error");
        cr_assert_str_eq(json_string_value(json_object_get(store, "last_error")), "store 'x': connection refused");
        json_t *docker = json_object_get(st, "docker");
        cr_assert_str_eq(json_string_value(json_object_get(docker, "state")), "connected");
        cr_assert(json_is_string(json_object_get(docker, "last_event_at")));
        cr_assert_geq(json_integer_value(json_object_get(docker, "events")), 1);

        json_t *v = json_array_get(json_object_get(st, "volumes"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(v, "name")), "app");
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "secrets"), 0)), "db_password");
        cr_assert(json_is_object(json_object_get(v, "opts")));
        json_t *m = json_array_get(json_object_get(st, "instances"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(m, "id")), id);
        cr_assert_str_eq(json_string_value(json_object_get(m, "container_id")), WEB_ID);
        cr_assert_str_eq(json_string_value(json_object_get(m, "container_name")), "web");
        cr_assert_eq(json_integer_value(json_object_get(m, "refcount")), 1);
        cr_assert_eq(json_integer_value(json_object_get(m, "generation")), 1);
        cr_assert(json_is_true(json_object_get(m, "live")));
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "delivered"), "db_password")), 3);
        cr_assert_null(strstr(body, "canary-admin"), "no value in the status");

        /* A later success clears the state but keeps the last error. */
        notes_store(&f.notes, true, NULL);
        json_t *again = admin_status_json(f.registry, &f.notes);
        store = json_object_get(again, "store");
        cr_assert_str_eq(json_string_value(json_object_get(store, "state")), "ok");
        cr_assert(json_is_string(json_object_get(store, "last_ok_at")));
        json_decref(again);
        json_decref(st);
        free(body);
        fixture_teardown(&f);
}

Test(admin, only_get_on_two_paths) {
        struct notes notes;
        notes_init(&notes, NULL, "secretd", "file:///x");
        struct admin adm = { .notes = &notes };
        static const struct {
                const char *method, *path;
                unsigned status;
        } cases[] = {
                { "GET", "/v1/status", 200 },    { "GET", "/metrics", 200 },   { "POST", "/v1/status", 405 },
                { "DELETE", "/metrics", 405 },   { "PUT", "/v1/status", 405 }, { "GET", "/v1/status/", 404 },
                { "GET", "/VolumeDriver.Mount", 404 }, { "POST", "/nothing", 404 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                unsigned status = 0;
                const char *type = NULL;
                char *body = NULL;
                cr_assert_eq(admin_dispatch(&adm, cases[i].method, cases[i].path, &status, &type, &body), 0);
                cr_assert_eq(status, cases[i].status, "%s %s: %u", cases[i].method, cases[i].path, status);
                cr_assert_not_null(body);
                if (strcmp(cases[i].path, "/metrics") == 0 && status == 200)
                        cr_assert_str_eq(type, "text/plain; version=0.0.4; charset=utf-8");
                else
                        cr_assert_str_eq(type, "application/json");
                free(body);
        }
        notes_done(&notes);
}

Test(admin, notes_count_and_audit_without_values) {
        char path[] = "/tmp/secretd-notes-XXXXXX";
        cr_assert_not_null(mkdtemp(path));
        char log[64];
        (void) snprintf(log, sizeof(log), "%s/audit.log", path);
        metrics_reset();
        sd_error err = { 0 };
        struct audit *audit = NULL;
        cr_assert_eq(audit_open(log, &audit, &err), 0, "%s", err.message);
        struct notes notes;
        notes_init(&notes, audit, "secretd", "file:///x");

        const struct note_instance in = {
                .id = "eb115a7bebb47d7b", .volume = "app", .container_id = WEB_ID, .container_name = "web",
        };
        note_delivery(&notes, &in, "db_password", 3, "2d9f5e3424d8a1d2");
        note_wipe(&notes, &in, "unmount");
        const struct note_instance mounting = { .id = "eb115a7bebb47d7b", .volume = "app" };
        note_refusal(&notes, ERROR_ROLLBACK, "app", NULL, &mounting, 1,
                     "volume 'app': secret 'db_password': refusing a rollback");
        audit_close(audit);

        cr_assert_eq(metrics_get(METRIC_DELIVERIES), 1);
        cr_assert_eq(metrics_get(METRIC_WIPES), 1);
        cr_assert_eq(metrics_get(METRIC_REFUSALS), 1);
        cr_assert_eq(metrics_get_error(ERROR_ROLLBACK), 1);

        char *text = read_all(log);
        const char *expect[] = { "deliver", "wipe", "refuse" };
        size_t n = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                cr_assert_lt(n, 3);
                json_t *obj = parse_line(line);
                cr_assert_str_eq(json_string_value(json_object_get(obj, "event")), expect[n]);
                cr_assert_str_eq(json_string_value(json_object_get(obj, "volume")), "app");
                cr_assert_str_eq(json_string_value(json_object_get(obj, "instance")), "eb115a7bebb47d7b");
                if (n < 2) {
                        cr_assert_str_eq(json_string_value(json_object_get(obj, "container")), WEB_ID);
                        cr_assert_str_eq(json_string_value(json_object_get(obj, "container_name")), "web");
                }
                if (n == 0) {
                        cr_assert_str_eq(json_string_value(json_object_get(obj, "secret")), "db_password");
                        cr_assert_eq(json_integer_value(json_object_get(obj, "version")), 3);
                        cr_assert_str_eq(json_string_value(json_object_get(obj, "writer")), "2d9f5e3424d8a1d2");
                }
                json_decref(obj);
        }
        cr_assert_eq(n, 3);
        free(text);
        notes_done(&notes);
        char cmd[96];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        cr_assert_eq(system(cmd), 0);
}

/* ---- configuration keys ---- */

Test(admin_config, admin_socket_and_audit_log_keys) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        cr_assert_str_eq(cfg.admin_socket, "/run/secretd/admin.sock");
        cr_assert_str_eq(cfg.audit_log, "/var/log/secretd/audit.log");
        sd_error err = { 0 };
        cr_assert_eq(sd_config_set(&cfg, "admin-socket", "/run/x/admin.sock", &err), 0, "%s", err.message);
        cr_assert_str_eq(cfg.admin_socket, "/run/x/admin.sock");
        cr_assert_eq(sd_config_set(&cfg, "admin-socket", "", &err), -EINVAL, "the admin socket cannot be empty");
        cr_assert_eq(sd_config_set(&cfg, "admin-socket", "admin.sock", &err), -EINVAL);
        cr_assert_not_null(strstr(err.message, "not an absolute path"), "%s", err.message);
        cr_assert_eq(sd_config_set(&cfg, "audit-log", "", &err), 0, "empty turns the audit log off: %s", err.message);
        cr_assert_str_eq(cfg.audit_log, "");
        cr_assert_eq(sd_config_set(&cfg, "audit-log", "audit.log", &err), -EINVAL);
        cr_assert_str_eq(cfg.audit_log, "", "unchanged on failure");

        const char text[] = "[secretd]\naudit-log =\nadmin-socket = /tmp/a.sock\n";
        cr_assert_eq(sd_config_parse_string(&cfg, text, strlen(text), "test.conf", &err), 0, "%s", err.message);
        cr_assert_str_eq(cfg.audit_log, "");
        cr_assert_str_eq(cfg.admin_socket, "/tmp/a.sock");
}
