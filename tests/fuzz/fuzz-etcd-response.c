/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Everything the etcd backend parses from the network: the input is fed as
 * a range reply, a txn reply, a deleterange reply and an error body; cut
 * into slices (sizes from the first byte, like curl's de-chunked pieces) and
 * split into lines as the watch stream is; every decoded key is classified
 * against a prefix; the input is also tried as an etcd:// URL.  Invariants
 * of each successful parse are checked: a violation aborts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secretd/http.h"
#include "secretd/names.h"
#include "store-etcd-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "p"

static void check_message(const sd_error *err, int r) {
        if (r >= 0)
                return;
        if (err->code != -r || strlen(err->message) == 0 || strchr(err->message, '\n'))
                abort();
}

static void check_key(const char *key, size_t len) {
        if (len == 0 || len > SD_ETCD_KEY_MAX || strlen(key) != len)
                abort();
        struct sd_etcd_key k;
        sd_error err = { 0 };
        int r = sd_etcd_key_parse(PREFIX, key, len, &k, &err);
        check_message(&err, r);
        if (r < 0) {
                if (r != -EPROTO && r != -EBADMSG)
                        abort();
                return;
        }
        if (sd_name_validate("name", k.name, strlen(k.name), NULL) < 0)
                abort();
        if (k.kind == SD_ETCD_KEY_SECRET && k.version == 0)
                abort();
        if (strncmp(key, PREFIX "/", strlen(PREFIX "/")) != 0)
                abort();
}

static int watch_line(void *userdata, const char *line, size_t len, const sd_error *overlong) {
        (void) userdata;
        if (overlong)
                return 0;
        struct sd_etcd_watch_msg m;
        sd_error err = { 0 };
        int r = sd_etcd_parse_watch("127.0.0.1:2379", line, len, &m, &err);
        check_message(&err, r);
        if (r < 0)
                return 0;
        if (m.revision < 0 || m.compact_revision < 0)
                abort();
        if (m.kind != SD_ETCD_WATCH_EVENTS && m.kind != SD_ETCD_WATCH_CREATED && m.kind != SD_ETCD_WATCH_CANCELED)
                abort();
        for (size_t i = 0; i < m.n_events; i++) {
                if (m.events[i].mod_revision < 0)
                        abort();
                check_key(m.events[i].key, m.events[i].key_len);
        }
        sd_etcd_watch_msg_done(&m);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        sd_error err = { 0 };

        struct sd_etcd_range rr;
        int r = sd_etcd_parse_range(text, size, 4096, &rr, &err);
        check_message(&err, r);
        if (r == 0) {
                if (rr.revision <= 0 || rr.count < 0)
                        abort();
                for (size_t i = 0; i < rr.n_kvs; i++) {
                        check_key(rr.kvs[i].key, rr.kvs[i].key_len);
                        if (rr.kvs[i].value && (rr.kvs[i].value_len > 4096 || rr.kvs[i].value[rr.kvs[i].value_len]))
                                abort();
                }
                sd_etcd_range_done(&rr);
        }

        bool ok = false;
        int64_t rev = 0;
        sd_error_clear(&err);
        r = sd_etcd_parse_txn(text, size, &ok, &rev, &err);
        check_message(&err, r);
        if (r == 0 && rev <= 0)
                abort();

        int64_t deleted = 0;
        sd_error_clear(&err);
        r = sd_etcd_parse_deleterange(text, size, &deleted, &err);
        check_message(&err, r);
        if (r == 0 && deleted < 0)
                abort();

        sd_error_clear(&err);
        enum sd_etcd_fault fault = SD_ETCD_FAULT_NONE;
        r = sd_etcd_error_from_body("127.0.0.1:2379", "range", 400, text, size, &fault, &err);
        if (fault == SD_ETCD_FAULT_NONE)
                abort();
        if (r >= 0)
                abort();
        check_message(&err, r);

        char *token = NULL;
        sd_error_clear(&err);
        r = sd_etcd_parse_auth(text, size, &token, &err);
        check_message(&err, r);
        if (r == 0) {
                if (!token[0] || strlen(token) > SD_ETCD_TOKEN_MAX || strpbrk(token, "\r\n"))
                        abort();
                free(token);
        }

        /* The watch stream, cut into slices of 1..256 bytes. */
        struct sd_line_buffer lb;
        sd_line_buffer_init(&lb, 2048);
        size_t slice = size > 0 ? (size_t) data[0] + 1 : 1;
        for (size_t off = 0; off < size; off += slice) {
                size_t n = size - off < slice ? size - off : slice;
                if (sd_line_buffer_feed(&lb, text + off, n, watch_line, NULL, NULL) < 0)
                        break;
        }
        sd_line_buffer_done(&lb);

        /* Raw bytes as a key, and as the rest of an etcd:// URL. */
        if (size > 0 && size <= SD_ETCD_KEY_MAX && !memchr(data, '\0', size)) {
                char *copy = malloc(size + 1);
                if (!copy)
                        return 0;
                memcpy(copy, data, size);
                copy[size] = '\0';
                check_key(copy, size);
                struct sd_etcd_url u = { 0 };
                sd_error_clear(&err);
                r = sd_etcd_url_parse(copy, &u, &err);
                check_message(&err, r);
                if (r == 0) {
                        /* Segments like "...x" are fine; "." and ".." are not. */
                        const char *prefix = u.prefix;
                        size_t plen = strlen(prefix);
                        if (plen == 0 || prefix[0] == '/' || prefix[plen - 1] == '/' || strstr(prefix, "//"))
                                abort();
                        for (const char *seg = prefix; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
                                size_t sl = strcspn(seg, "/");
                                if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                                        abort();
                        }
                        if (u.n_endpoints == 0 || u.n_endpoints > SD_ETCD_ENDPOINTS_MAX)
                                abort();
                        for (size_t i = 0; i < u.n_endpoints; i++)
                                if (!strchr(u.endpoints[i], ':') || strchr(u.endpoints[i], ','))
                                        abort();
                        sd_etcd_url_done(&u);
                } else if (u.n_endpoints || u.prefix) {
                        abort();
                }
                free(copy);
        }
        return 0;
}
