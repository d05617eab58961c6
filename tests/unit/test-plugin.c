/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-fixture.h"
#include "driver.h"
#include "httpd.h"
#include "log.h"
#include "request.h"

static const struct volume_limits limits = { .default_size = 1 << 20, .max_size = 16 << 20 };

/* Parse an opts object given as JSON text. */
static int opts(const char *json, struct volume_spec *spec, sd_error *err) {
        json_error_t jerr;
        json_t *o = json_loads(json, 0, &jerr);
        cr_assert_not_null(o, "test input %s: %s", json, jerr.text);
        int r = volume_opts_parse(o, &limits, spec, err);
        json_decref(o);
        return r;
}

struct bad_input {
        const char *json;
        const char *expect;  /* substring of the message */
};

/* ---- options ---- */

Test(volume_opts, defaults_and_a_full_set) {
        struct volume_spec spec;
        sd_error err = { 0 };
        cr_assert_eq(opts("{\"secrets\":\"db_password\"}", &spec, &err), 0, "%s", err.message);
        cr_assert_eq(spec.n_secrets, 1);
        cr_assert_str_eq(spec.secrets[0].name, "db_password");
        cr_assert_str_eq(spec.secrets[0].file, "db_password");
        cr_assert_eq(spec.uid, 0);
        cr_assert_eq(spec.gid, 0);
        cr_assert_eq(spec.mode, 0400);
        cr_assert_eq(spec.size, 1 << 20, "default-size applies");
        cr_assert_eq(spec.on_delete, VOLUME_ON_DELETE_KEEP);

        cr_assert_eq(opts("{\"secrets\":\"tls.key:server.key, db_password ,api\",\"uid\":\"999\",\"gid\":\"2147483647\","
                          "\"mode\":\"0440\",\"size\":\"16M\",\"on-delete\":\"remove\"}",
                          &spec, &err),
                     0, "%s", err.message);
        cr_assert_eq(spec.n_secrets, 3);
        /* Sorted by file name, whatever order the user wrote. */
        cr_assert_str_eq(spec.secrets[0].file, "api");
        cr_assert_str_eq(spec.secrets[1].file, "db_password");
        cr_assert_str_eq(spec.secrets[2].name, "tls.key");
        cr_assert_str_eq(spec.secrets[2].file, "server.key");
        cr_assert_eq(spec.uid, 999);
        cr_assert_eq(spec.gid, 2147483647u);
        cr_assert_eq(spec.mode, 0440);
        cr_assert_eq(spec.size, 16 << 20);
        cr_assert_eq(spec.on_delete, VOLUME_ON_DELETE_REMOVE);
}

Test(volume_opts, hostile_and_wrong_values_are_refused_with_a_reason) {
        char many[VOLUME_SECRETS_MAX * 8 + 64];
        size_t used = (size_t) snprintf(many, sizeof(many), "{\"secrets\":\"");
        for (int i = 0; i <= VOLUME_SECRETS_MAX; i++)
                used += (size_t) snprintf(many + used, sizeof(many) - used, "%ss%d", i ? "," : "", i);
        (void) snprintf(many + used, sizeof(many) - used, "\"}");

        const struct bad_input cases[] = {
                { "{}", "option 'secrets' is required" },
                { "{\"uid\":\"0\"}", "option 'secrets' is required" },
                { "{\"secrets\":\"\"}", "has an empty entry" },
                { "{\"secrets\":\"a,,b\"}", "has an empty entry" },
                { "{\"secrets\":\"a,\"}", "has an empty entry" },
                { "{\"secrets\":\" , \"}", "has an empty entry" },
                { "{\"secrets\":\"a:x,b:x\"}", "delivers two secrets as file 'x'" },
                { "{\"secrets\":\"a,a\"}", "delivers two secrets as file 'a'" },
                { "{\"secrets\":\"../x\"}", "secret name '../x' must start with a letter or digit" },
                { "{\"secrets\":\"a:../x\"}", "file name '../x' must start" },
                { "{\"secrets\":\"a:..data\"}", "file name '..data' must start" },
                { "{\"secrets\":\"a/b\"}", "contains '/'" },
                { "{\"secrets\":\"a:b:c\"}", "contains ':'" },
                { "{\"secrets\":\"a:\"}", "file name is empty" },
                { "{\"secrets\":\":a\"}", "secret name is empty" },
                { many, "lists more than 128 secrets" },
                { "{\"secrets\":\"a\",\"mode\":\"999\"}", "option 'mode' value '999' is not an octal mode" },
                { "{\"secrets\":\"a\",\"mode\":\"0044\"}", "does not let the owner read" },
                { "{\"secrets\":\"a\",\"mode\":\"4755\"}", "setuid, setgid or sticky" },
                { "{\"secrets\":\"a\",\"mode\":\"\"}", "not an octal mode" },
                { "{\"secrets\":\"a\",\"mode\":\"00400\"}", "not an octal mode" },
                { "{\"secrets\":\"a\",\"uid\":\"-1\"}", "option 'uid' value '-1' is not a decimal number" },
                { "{\"secrets\":\"a\",\"uid\":\"abc\"}", "option 'uid' value 'abc'" },
                { "{\"secrets\":\"a\",\"uid\":\"2147483648\"}", "is larger than 2147483647" },
                { "{\"secrets\":\"a\",\"gid\":\"99999999999\"}", "option 'gid'" },
                { "{\"secrets\":\"a\",\"uid\":\" 1\"}", "not a decimal number" },
                { "{\"secrets\":\"a\",\"size\":\"32M\"}", "larger than this agent's max-size" },
                { "{\"secrets\":\"a\",\"size\":\"12Q\"}", "unknown unit" },
                { "{\"secrets\":\"a\",\"size\":\"1\"}", "smaller than the minimum" },
                { "{\"secrets\":\"a\",\"on-delete\":\"shred\"}", "'on-delete' value 'shred' is not 'keep' or 'remove'" },
                { "{\"secrets\":\"a\",\"color\":\"blue\"}",
                  "unknown option 'color'; valid options: secrets, uid, gid, mode, size, on-delete" },
                { "{\"secrets\":\"a\",\"uid\":0}", "option 'uid' must be a string" },
                { "{\"secrets\":[\"a\"]}", "option 'secrets' must be a string" },
                { "{\"secrets\":null}", "option 'secrets' must be a string" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct volume_spec spec;
                spec.n_secrets = 12345;
                sd_error err = { 0 };
                cr_assert_eq(opts(cases[i].json, &spec, &err), -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(err.message, cases[i].expect), "case %zu: '%s' lacks '%s'", i, err.message,
                          cases[i].expect);
                cr_assert_null(strchr(err.message, '\n'));
                cr_assert_eq(spec.n_secrets, 12345, "case %zu: output touched on failure", i);
        }
}

Test(volume_opts, null_or_missing_opts_mean_no_secrets) {
        struct volume_spec spec;
        sd_error err = { 0 };
        cr_assert_eq(volume_opts_parse(NULL, &limits, &spec, &err), -EINVAL);
        cr_assert(strstr(err.message, "'secrets' is required"), "%s", err.message);
        json_t *arr = json_array();
        cr_assert_eq(volume_opts_parse(arr, &limits, &spec, &err), -EINVAL);
        cr_assert(strstr(err.message, "Opts must be an object"), "%s", err.message);
        json_decref(arr);
}

Test(volume_opts, canonical_form_makes_create_idempotent) {
        /* Spelled differently, same volume: order, spaces, name:name,
         * sizes and mode notation. */
        struct volume_spec a, b, c;
        sd_error err = { 0 };
        cr_assert_eq(opts("{\"secrets\":\"b,a\",\"size\":\"1M\",\"mode\":\"400\"}", &a, &err), 0, "%s", err.message);
        cr_assert_eq(opts("{\"secrets\":\"a:a, b:b\",\"size\":\"1024K\",\"mode\":\"0400\",\"uid\":\"0\","
                          "\"on-delete\":\"keep\"}",
                          &b, &err),
                     0, "%s", err.message);
        cr_assert(volume_spec_equal(&a, &b));
        cr_assert_eq(opts("{\"secrets\":\"a,b\",\"uid\":\"1\"}", &c, &err), 0);
        cr_assert_not(volume_spec_equal(&a, &c), "a different uid is a different volume");
        cr_assert_eq(opts("{\"secrets\":\"a,b:c\"}", &c, &err), 0);
        cr_assert_not(volume_spec_equal(&a, &c), "a different file name is a different volume");

        json_t *canon = volume_spec_to_json(&b);
        cr_assert_not_null(canon);
        char *text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
        cr_assert_str_eq(text, "{\"gid\":\"0\",\"mode\":\"0400\",\"on-delete\":\"keep\",\"secrets\":\"a:a,b:b\","
                               "\"size\":\"1048576\",\"uid\":\"0\"}");
        struct volume_spec again;
        cr_assert_eq(volume_opts_parse(canon, &limits, &again, &err), 0, "%s", err.message);
        cr_assert(volume_spec_equal(&b, &again), "canonical form parses back to the same spec");
        free(text);
        json_decref(canon);
}

/* ---- request bodies ---- */

Test(plugin_request, names_and_ids_are_validated) {
        struct plugin_mount_request m;
        sd_error err = { 0 };
        const char *ok = "{\"Name\":\"app_secrets\",\"ID\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}\n";
        cr_assert_eq(plugin_parse_mount_request(ok, strlen(ok), &m, &err), 0, "%s", err.message);
        cr_assert_str_eq(m.name, "app_secrets");
        cr_assert_eq(strlen(m.id), 64);

        char huge[200000];
        memset(huge, 'a', sizeof(huge));
        memcpy(huge, "{\"Name\":\"", 9);
        memcpy(huge + sizeof(huge) - 3, "\"}", 3);
        char huge_id[400];
        memset(huge_id, 'b', sizeof(huge_id));
        memcpy(huge_id, "{\"Name\":\"v\",\"ID\":\"", 18);
        memcpy(huge_id + sizeof(huge_id) - 3, "\"}", 3);

        const struct bad_input cases[] = {
                { "{\"ID\":\"abc\"}", "request has no 'Name'" },
                { "{\"Name\":\"v\"}", "request has no 'ID'" },
                { "{\"Name\":null,\"ID\":\"a\"}", "request has no 'Name'" },
                { "{\"Name\":\"a/b\",\"ID\":\"a\"}", "volume name 'a/b' contains '/'" },
                { "{\"Name\":\"..\",\"ID\":\"a\"}", "volume name '..' must start" },
                { "{\"Name\":\"v\",\"ID\":\"../x\"}", "mount id '../x' may contain only" },
                { "{\"Name\":\"v\",\"ID\":\"a.b\"}", "mount id 'a.b' may contain only" },
                { "{\"Name\":\"v\",\"ID\":\"\"}", "mount id is empty" },
                { "{\"Name\":7,\"ID\":\"a\"}", "field 'Name' must be a string" },
                { "{\"Name\":\"v\",\"ID\":[]}", "field 'ID' must be a string" },
                { "{\"Name\":\"v\\u0000x\",\"ID\":\"a\"}", "not valid JSON" },
                { "{\"Name\":\"v\",\"Name\":\"w\",\"ID\":\"a\"}", "not valid JSON" },
                { "[\"v\"]", "must be a JSON object" },
                { "\"v\"", "not valid JSON" },
                { "null", "not valid JSON" },
                { "", "not valid JSON" },
                { "{\"Name\":\"v\",", "not valid JSON" },
                { huge, "is 199988 bytes long; the limit is 128" },
                { huge_id, "bytes long; the limit is 128" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sd_error e = { 0 };
                strcpy(m.name, "untouched");
                int r = plugin_parse_mount_request(cases[i].json, strlen(cases[i].json), &m, &e);
                cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(e.message, cases[i].expect), "case %zu: '%s' lacks '%s'", i, e.message, cases[i].expect);
                cr_assert_str_eq(m.name, "untouched", "case %zu: output touched on failure", i);
                cr_assert_null(strchr(e.message, '\n'));
        }
}

Test(plugin_request, name_only_requests) {
        struct plugin_name_request n;
        sd_error err = { 0 };
        const char *ok = "{\"Name\":\"v1\"}";
        cr_assert_eq(plugin_parse_name_request(ok, strlen(ok), &n, &err), 0, "%s", err.message);
        cr_assert_str_eq(n.name, "v1");
        /* Unknown fields are ignored: newer dockerd versions may add some. */
        const char *extra = "{\"Name\":\"v1\",\"Future\":{\"x\":1}}";
        cr_assert_eq(plugin_parse_name_request(extra, strlen(extra), &n, &err), 0, "%s", err.message);
        const char *bad = "{\"Name\":\"\"}";
        cr_assert_eq(plugin_parse_name_request(bad, strlen(bad), &n, &err), -EINVAL);
        cr_assert(strstr(err.message, "volume name is empty"), "%s", err.message);
        /* Not NUL-terminated input: the length is what counts. */
        const char *cut = "{\"Name\":\"v1\"}garbage";
        cr_assert_eq(plugin_parse_name_request(cut, 13, &n, &err), 0, "%s", err.message);
}

Test(plugin_request, empty_requests) {
        sd_error err = { 0 };
        cr_assert_eq(plugin_parse_empty_request("", 0, &err), 0, "Activate has no body");
        cr_assert_eq(plugin_parse_empty_request("{}\n", 3, &err), 0);
        cr_assert_eq(plugin_parse_empty_request(" \n", 2, &err), 0);
        cr_assert_eq(plugin_parse_empty_request("{", 1, &err), -EINVAL);
        cr_assert_eq(plugin_parse_empty_request("[]", 2, &err), -EINVAL);
}

Test(plugin_request, create_parses_name_and_opts) {
        struct plugin_create_request c;
        sd_error err = { 0 };
        const char *ok = "{\"Name\":\"app_secrets\",\"Opts\":{\"secrets\":\"db_password\",\"uid\":\"999\"}}\n";
        cr_assert_eq(plugin_parse_create_request(ok, strlen(ok), &limits, &c, &err), 0, "%s", err.message);
        cr_assert_str_eq(c.name, "app_secrets");
        cr_assert_eq(c.spec.uid, 999);

        const struct bad_input cases[] = {
                { "{\"Name\":\"v\",\"Opts\":null}", "volume 'v': option 'secrets' is required" },
                { "{\"Name\":\"v\"}", "volume 'v': option 'secrets' is required" },
                { "{\"Name\":\"v\",\"Opts\":{}}", "option 'secrets' is required" },
                { "{\"Name\":\"v\",\"Opts\":\"secrets=a\"}", "Opts must be an object" },
                { "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"a\",\"x\":\"y\"}}", "unknown option 'x'" },
                { "{\"Opts\":{\"secrets\":\"a\"}}", "request has no 'Name'" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sd_error e = { 0 };
                cr_assert_eq(plugin_parse_create_request(cases[i].json, strlen(cases[i].json), &limits, &c, &e),
                             -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(e.message, cases[i].expect), "case %zu: '%s' lacks '%s'", i, e.message, cases[i].expect);
        }
}

/* ---- dispatch without HTTP, on an agent with no store or state ---- */

static void quiet(void) {
        log_set_level(SD_LOG_ERROR);
}

Test(plugin_dispatch, handshake_unknown_paths_and_unknown_volumes, .init = quiet) {
        struct agent_fixture fx;
        fixture_setup(&fx);
        unsigned status;
        char *t;

        t = fixture_call(&fx, "/Plugin.Activate", &status, "%s", "");
        cr_assert_eq(status, 200);
        cr_assert_str_eq(t, "{\"Implements\":[\"VolumeDriver\"]}");
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Capabilities", &status, "{}\n");
        cr_assert_str_eq(t, "{\"Capabilities\":{\"Scope\":\"local\"}}");
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.List", &status, "{}\n");
        cr_assert_str_eq(t, "{\"Volumes\":[]}");
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Get", &status, "{\"Name\":\"nope\"}\n");
        cr_assert_eq(status, 500, "an Err reply is not a 200, so dockerd names the endpoint");
        cr_assert_str_eq(t, "{\"Err\":\"no such volume\"}");
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Mount", &status, "{\"Name\":\"nope\",\"ID\":\"abc\"}\n");
        cr_assert(strstr(t, "\"Err\":\"no such volume 'nope'\""), "%s", t);
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Unmount", &status, "{\"Name\":\"nope\",\"ID\":\"abc\"}\n");
        cr_assert_str_eq(t, "{}", "an unknown mount id unmounts successfully (dockerd would retry)");
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Bogus", &status, "{}");
        cr_assert_eq(status, 404);
        cr_assert(strstr(t, "unknown endpoint '/VolumeDriver.Bogus'"), "%s", t);
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Get", &status, "{\"Name\":");
        cr_assert_eq(status, 400);
        cr_assert(strstr(t, "\"Err\":\"request body is not valid JSON"), "%s", t);
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Create", &status,
                         "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"a\",\"mode\":\"0044\"}}");
        cr_assert_eq(status, 400);
        cr_assert(strstr(t, "does not let the owner read"), "%s", t);
        free(t);
        t = fixture_call(&fx, "/VolumeDriver.Create", &status, "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"a\"}}");
        cr_assert(strstr(t, "\"Err\":\"volume 'v': ") && strstr(t, "secret 'a' not found"), "%s", t);
        free(t);
        fixture_teardown(&fx);
}

/* ---- the HTTP server on a temporary socket (no dockerd needed) ---- */

struct server_fixture {
        struct agent_fixture fx;
        char dir[64];
        char *socket_path;
        struct httpd *server;
};

static void server_start(struct server_fixture *f) {
        quiet();
        fixture_setup(&f->fx);
        strcpy(f->dir, "/tmp/secretd-plugin-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
        sd_error err = { 0 };
        int fd = driver_socket_listen(f->dir, "test-driver", &f->socket_path, &err);
        cr_assert_geq(fd, 0, "%s", err.message);
        struct stat st;
        cr_assert_eq(stat(f->socket_path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600, "socket is root-only");
        cr_assert_eq(driver_serve(&f->fx.driver, fd, f->socket_path, 0, &f->server, &err), 0, "%s", err.message);
}

static void server_stop(struct server_fixture *f) {
        httpd_stop(f->server);
        struct stat st;
        cr_assert_neq(lstat(f->socket_path, &st), 0, "the socket is unlinked on stop");
        fixture_teardown(&f->fx);
        free(f->socket_path);
        rmdir(f->dir);
}

struct buffer {
        char data[4096];
        size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *userdata) {
        struct buffer *b = userdata;
        size_t len = size * n;
        if (len > sizeof(b->data) - 1 - b->len)
                len = sizeof(b->data) - 1 - b->len;
        memcpy(b->data + b->len, p, len);
        b->len += len;
        b->data[b->len] = '\0';
        return size * n;
}

/* CURLE_SEND_ERROR is returned as -1 where send_error_ok: see post_refused. */
static long post_maybe(const char *socket_path, const char *path, const char *body, size_t len, bool chunked,
                       bool send_error_ok, struct buffer *out) {
        CURL *curl = curl_easy_init();
        cr_assert_not_null(curl);
        char url[256];
        (void) snprintf(url, sizeof(url), "http://localhost%s", path);
        out->len = 0;
        out->data[0] = '\0';
        struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/vnd.docker.plugins.v1.2+json");
        if (chunked)
                headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        if (!chunked)
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        CURLcode rc = curl_easy_perform(curl);
        long code = -1;
        if (!(send_error_ok && rc == CURLE_SEND_ERROR)) {
                cr_assert_eq(rc, CURLE_OK, "%s %s: %s", socket_path, path, curl_easy_strerror(rc));
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        }
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return code;
}

static long post_with(const char *socket_path, const char *path, const char *body, size_t len, bool chunked,
                      struct buffer *out) {
        return post_maybe(socket_path, path, body, len, chunked, false, out);
}

/* The server answers a too-large body before reading all of it and closes
 * the connection, so curl, still sending, may see the close before the
 * answer (a race a loaded machine loses now and then).  The answer must
 * still arrive on some attempt: tried up to ten times. */
static long post_refused(const char *socket_path, const char *path, const char *body, size_t len, bool chunked,
                         struct buffer *out) {
        long code = -1;
        for (int attempt = 0; attempt < 10 && code == -1; attempt++)
                code = post_maybe(socket_path, path, body, len, chunked, true, out);
        return code;
}

static long post(const char *socket_path, const char *path, const char *body, size_t len, struct buffer *out) {
        return post_with(socket_path, path, body, len, false, out);
}

Test(plugin_server, speaks_the_plugin_protocol_over_the_socket) {
        struct server_fixture f;
        server_start(&f);
        struct buffer b;

        cr_assert_eq(post(f.socket_path, "/Plugin.Activate", "", 0, &b), 200);
        cr_assert_str_eq(b.data, "{\"Implements\":[\"VolumeDriver\"]}");
        cr_assert_eq(post(f.socket_path, "/VolumeDriver.Capabilities", "{}\n", 3, &b), 200);
        cr_assert_str_eq(b.data, "{\"Capabilities\":{\"Scope\":\"local\"}}");
        const char *get = "{\"Name\":\"unknown\"}\n";
        cr_assert_eq(post(f.socket_path, "/VolumeDriver.Get", get, strlen(get), &b), 500);
        cr_assert_str_eq(b.data, "{\"Err\":\"no such volume\"}");
        cr_assert_eq(post(f.socket_path, "/Nope", "{}", 2, &b), 404);
        cr_assert(strstr(b.data, "\"Err\":"), "%s", b.data);
        cr_assert_eq(post(f.socket_path, "/VolumeDriver.Get", "{oops", 5, &b), 400);
        cr_assert(strstr(b.data, "\"Err\":\"request body is not valid JSON"), "%s", b.data);

        size_t big = PLUGIN_BODY_MAX + 1;
        char *body = malloc(big + 1);
        memset(body, ' ', big);
        body[big] = '\0';
        cr_assert_eq(post_refused(f.socket_path, "/VolumeDriver.Get", body, big, false, &b), 413);
        cr_assert(strstr(b.data, "\"Err\":\"request body is too large\""), "%s", b.data);
        /* A chunked body has no Content-Length to refuse up front. */
        cr_assert_eq(post_refused(f.socket_path, "/VolumeDriver.Get", body, 0, true, &b), 413);
        cr_assert(strstr(b.data, "\"Err\":\"request body is too large\""), "%s", b.data);
        const char *small = "{\"Name\":\"unknown\"}";
        cr_assert_eq(post_with(f.socket_path, "/VolumeDriver.Get", small, 0, true, &b), 500);
        cr_assert_str_eq(b.data, "{\"Err\":\"no such volume\"}", "a small chunked body is parsed");
        /* Exactly at the limit is still parsed (and is bad JSON). */
        cr_assert_eq(post(f.socket_path, "/VolumeDriver.Get", body, PLUGIN_BODY_MAX, &b), 400);
        free(body);

        server_stop(&f);
}

/* Raw HTTP from a forked child that dropped to nobody: only syscalls, since
 * the parent runs libmicrohttpd threads. */
static int request_as_nobody(const char *socket_path, char *status_line, size_t size) {
        int pipefd[2];
        cr_assert_eq(pipe(pipefd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                if (setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(2);
                struct sockaddr_un addr = { .sun_family = AF_UNIX };
                strncpy(addr.sun_path, socket_path, sizeof(addr.sun_path) - 1);
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0)
                        _exit(3);
                static const char req[] = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                          "Connection: close\r\n\r\n{}";
                if (write(fd, req, sizeof(req) - 1) != (ssize_t) sizeof(req) - 1)
                        _exit(4);
                char buf[512];
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        _exit(5);
                if (write(pipefd[1], buf, (size_t) n) != n)
                        _exit(6);
                _exit(0);
        }
        close(pipefd[1]);
        ssize_t n = read(pipefd[0], status_line, size - 1);
        close(pipefd[0]);
        status_line[n > 0 ? n : 0] = '\0';
        int wstatus;
        cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
        return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

Test(plugin_server, refuses_peers_that_are_not_root) {
        if (geteuid() != 0)
                cr_skip_test("needs root to switch to nobody");
        struct server_fixture f;
        server_start(&f);

        /* The 0600 socket already keeps nobody out... */
        char reply[512];
        cr_assert_eq(request_as_nobody(f.socket_path, reply, sizeof(reply)), 3, "nobody connected to a 0600 socket");

        /* ...and if its mode is ever loosened, the peer check still does. */
        cr_assert_eq(chmod(f.dir, 0755), 0);
        cr_assert_eq(chmod(f.socket_path, 0666), 0);
        cr_assert_eq(request_as_nobody(f.socket_path, reply, sizeof(reply)), 0, "child failed");
        cr_assert(strncmp(reply, "HTTP/1.1 403", 12) == 0, "%s", reply);
        cr_assert(strstr(reply, "\"Err\":\"permission denied"), "%s", reply);

        server_stop(&f);
}

Test(plugin_server, replaces_only_a_stale_socket) {
        struct server_fixture f;
        server_start(&f);
        sd_error err = { 0 };
        char *path = NULL;
        cr_assert_eq(driver_socket_listen(f.dir, "test-driver", &path, &err), -EADDRINUSE,
                     "a live socket was taken over");
        cr_assert(strstr(err.message, "another process is serving"), "%s", err.message);

        /* A regular file where the socket goes is not ours to delete. */
        char file[128];
        (void) snprintf(file, sizeof(file), "%s/plain.sock", f.dir);
        FILE *fp = fopen(file, "we");
        cr_assert_not_null(fp);
        fclose(fp);
        cr_assert_eq(driver_socket_listen(f.dir, "plain", &path, &err), -EEXIST);
        cr_assert(strstr(err.message, "is not a socket"), "%s", err.message);
        unlink(file);

        /* A socket left by a crashed agent: nobody listens, so it goes. */
        char stale[128];
        (void) snprintf(stale, sizeof(stale), "%s/stale.sock", f.dir);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        strcpy(addr.sun_path, stale);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        cr_assert_eq(bind(s, (struct sockaddr *) &addr, sizeof(addr)), 0);
        close(s);
        int fd = driver_socket_listen(f.dir, "stale", &path, &err);
        cr_assert_geq(fd, 0, "%s", err.message);
        cr_assert_str_eq(path, stale);
        close(fd);
        unlink(path);
        free(path);

        server_stop(&f);
}
