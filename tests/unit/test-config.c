/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretd/config.h"

static int parse(struct sd_config *cfg, const char *text, sd_error *err) {
        return sd_config_parse_string(cfg, text, strlen(text), "test.conf", err);
}

Test(config, defaults_match_the_documented_ones) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        cr_assert_str_eq(cfg.store_url, "file:///var/lib/secretd/store");
        cr_assert_str_eq(cfg.driver, "secretd");
        cr_assert_str_eq(cfg.key_path, "/etc/secretd/agent.key");
        cr_assert_null(cfg.realm);
        cr_assert_str_eq(cfg.realm_file, "/etc/secretd/realm");
        cr_assert_str_eq(cfg.state_dir, "/run/secretd");
        cr_assert_str_eq(cfg.docker_socket, "/var/run/docker.sock");
        cr_assert_str_eq(cfg.plugin_dir, "/run/docker/plugins");
        cr_assert_eq(cfg.default_size, 1 << 20);
        cr_assert_eq(cfg.max_size, 16 << 20);
        cr_assert_eq(cfg.log_level, SD_LOG_INFO);
        cr_assert_eq(cfg.max_volumes, 1024);
        cr_assert_eq(cfg.max_instances_per_volume, 64);
        cr_assert_eq(cfg.max_inodes, 1024);
        cr_assert_eq(cfg.max_total_tmpfs, 256 << 20);
        cr_assert_str_eq(cfg.floor_file, "/var/lib/secretd/delivered.json");
        cr_assert_str_eq(cfg.cache_dir, "/var/lib/secretd/cache");
        cr_assert_eq(cfg.on_unverifiable, SD_ON_UNVERIFIABLE_PREVIOUS);
}

Test(config, on_unverifiable_is_previous_or_refuse) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_config_set(&cfg, "on-unverifiable", "refuse", &err), 0, "%s", err.message);
        cr_assert_eq(cfg.on_unverifiable, SD_ON_UNVERIFIABLE_REFUSE);
        cr_assert_eq(sd_config_set(&cfg, "on-unverifiable", "previous", &err), 0, "%s", err.message);
        cr_assert_eq(cfg.on_unverifiable, SD_ON_UNVERIFIABLE_PREVIOUS);
        cr_assert_eq(sd_config_set(&cfg, "on-unverifiable", "latest", &err), -EINVAL);
        cr_assert_str_eq(err.message, "on-unverifiable 'latest' is not previous or refuse");
        cr_assert_eq(cfg.on_unverifiable, SD_ON_UNVERIFIABLE_PREVIOUS, "a refused value changes nothing");
}

Test(config, resource_caps_and_floor_file_are_read_from_the_file_and_flags) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        int r = parse(&cfg,
                      "[secretd]\n"
                      "max-volumes = 3\n"
                      "max-instances-per-volume = 2\n"
                      "max-inodes = 24\n"
                      "max-total-tmpfs = 4G\n"
                      "floor-file = /srv/secretd/floor.json\n"
                      "cache-dir = /srv/secretd/cache\n",
                      &err);
        cr_assert_eq(r, 0, "%s", err.message);
        cr_assert_eq(cfg.max_volumes, 3);
        cr_assert_eq(cfg.max_instances_per_volume, 2);
        cr_assert_eq(cfg.max_inodes, 24);
        cr_assert_eq(cfg.max_total_tmpfs, (uint64_t) 4 << 30, "a total may exceed the 1G of one volume");
        cr_assert_str_eq(cfg.floor_file, "/srv/secretd/floor.json");
        cr_assert_str_eq(cfg.cache_dir, "/srv/secretd/cache");
        cr_assert_eq(sd_config_set(&cfg, "cache-dir", "", &err), 0, "%s", err.message);
        cr_assert_str_eq(cfg.cache_dir, "", "an empty cache-dir turns the cache off");
        cr_assert_eq(sd_config_set(&cfg, "max-volumes", "1000000", &err), 0, "%s", err.message);
        cr_assert_eq(cfg.max_volumes, 1000000);
        cr_assert_eq(sd_config_set(&cfg, "max-total-tmpfs", "64k", &err), 0, "%s", err.message);
        cr_assert_eq(cfg.max_total_tmpfs, 64 << 10);
}

Test(config, bad_resource_caps_name_the_key_and_value) {
        static const struct {
                const char *key, *value, *message;
        } bad[] = {
                { "max-volumes", "0", "max-volumes '0' must be at least 1" },
                { "max-volumes", "-1", "max-volumes '-1' is not a decimal number" },
                { "max-volumes", "10k", "max-volumes '10k' is not a decimal number" },
                { "max-volumes", "1000001", "max-volumes '1000001' is larger than the limit of 1000000" },
                { "max-instances-per-volume", "0x10", "max-instances-per-volume '0x10' is not a decimal number" },
                { "max-instances-per-volume", "99999999999999999999999", "is larger than the limit" },
                { "max-inodes", " 5", "max-inodes ' 5' is not a decimal number" },
                { "max-total-tmpfs", "2048G", "max-total-tmpfs '2048G' is larger than the limit of 1024G" },
                { "max-total-tmpfs", "1k", "max-total-tmpfs '1k' is smaller than the minimum of 4K" },
                { "max-total-tmpfs", "lots", "max-total-tmpfs 'lots' is not a size" },
                { "floor-file", "delivered.json", "floor-file 'delivered.json' is not an absolute path" },
                { "cache-dir", "cache", "cache-dir 'cache' is not an absolute path" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                _cleanup_config_ struct sd_config cfg;
                cr_assert_eq(sd_config_init(&cfg), 0);
                sd_error err = { 0 };
                cr_assert_eq(sd_config_set(&cfg, bad[i].key, bad[i].value, &err), -EINVAL, "%s = '%s' accepted",
                             bad[i].key, bad[i].value);
                cr_assert(strstr(err.message, bad[i].message), "%s = '%s': %s", bad[i].key, bad[i].value, err.message);
                cr_assert_eq(cfg.max_volumes, 1024, "unchanged on failure");
                cr_assert_eq(cfg.max_total_tmpfs, 256 << 20, "unchanged on failure");
        }
        /* One volume of the largest size must fit in the total. */
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(parse(&cfg, "[secretd]\nmax-total-tmpfs = 8M\n", &err), 0, "%s", err.message);
        cr_assert_eq(sd_config_check(&cfg, &err), -EINVAL);
        cr_assert(strstr(err.message, "max-size (16777216 bytes) is larger than max-total-tmpfs (8388608 bytes)"),
                  "%s", err.message);
        cr_assert_eq(sd_config_set(&cfg, "max-size", "8M", &err), 0);
        cr_assert_eq(sd_config_check(&cfg, &err), 0, "%s", err.message);
}

Test(config, every_key_is_read_from_the_file) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        int r = parse(&cfg,
                      "# comment\n"
                      "; another\n"
                      "[secretd]\n"
                      "store = etcd://127.0.0.1:2379/secretd\n"
                      "driver=secretd-test_1\n"
                      "key = /tmp/k\n"
                      "realm = sdr1:RERERERERERERERERERERNBKsjJ0K7SrOhNovUYV5ObQIkq3GgFrr4UgozLJd4c3\n"
                      "realm-file = /tmp/realm\n"
                      "state-dir = /tmp/state\n"
                      "docker-socket = /tmp/docker.sock\n"
                      "plugin-dir = /tmp/plugins\n"
                      "default-size = 64k\n"
                      "max-size = 1G\n"
                      "log-level = debug ; inline comment\n",
                      &err);
        cr_assert_eq(r, 0, "%s", err.message);
        cr_assert_str_eq(cfg.store_url, "etcd://127.0.0.1:2379/secretd");
        cr_assert_str_eq(cfg.driver, "secretd-test_1");
        cr_assert_str_eq(cfg.key_path, "/tmp/k");
        cr_assert_str_eq(cfg.realm, "sdr1:RERERERERERERERERERERNBKsjJ0K7SrOhNovUYV5ObQIkq3GgFrr4UgozLJd4c3");
        cr_assert_str_eq(cfg.realm_file, "/tmp/realm");
        cr_assert_str_eq(cfg.state_dir, "/tmp/state");
        cr_assert_str_eq(cfg.docker_socket, "/tmp/docker.sock");
        cr_assert_str_eq(cfg.plugin_dir, "/tmp/plugins");
        cr_assert_eq(cfg.default_size, 64 << 10);
        cr_assert_eq(cfg.max_size, (uint64_t) 1 << 30);
        cr_assert_eq(cfg.log_level, SD_LOG_DEBUG);
}

Test(config, max_size_over_one_gigabyte_is_refused) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(parse(&cfg, "[secretd]\nmax-size = 2G\n", &err), -EINVAL);
        cr_assert(strstr(err.message, "test.conf:2: max-size '2G'"), "%s", err.message);
        cr_assert_eq(cfg.max_size, 16 << 20, "the bad value must not be applied");
}

struct bad_config {
        const char *text;
        const char *expect;  /* substring of the message */
};

Test(config, errors_name_file_line_key_and_value) {
        char long_line[300];
        memset(long_line, 'a', sizeof(long_line) - 1);
        long_line[sizeof(long_line) - 1] = '\0';
        memcpy(long_line, "key=/", 5);
        char long_text[320];
        (void) snprintf(long_text, sizeof(long_text), "[secretd]\n%s\n", long_line);

        const struct bad_config cases[] = {
                { "[secretd]\nmaxsize = 8M\n", "test.conf:2: unknown key 'maxsize'" },
                { "[secretd]\n\n\nsize = 8M\n", "test.conf:4: unknown key 'size'" },
                { "[secretd]\nmax-size = 12Q\n", "test.conf:2: max-size '12Q' has an unknown unit" },
                { "[secretd]\nmax-size = -1\n", "max-size '-1' is not a size" },
                { "[secretd]\nmax-size = 1MB\n", "max-size '1MB' has trailing characters" },
                { "[secretd]\nmax-size = 99999999999999999999999\n", "is too large" },
                { "[secretd]\ndefault-size = 1\n", "smaller than the minimum of 4K" },
                { "[secretd]\nlog-level = loud\n", "test.conf:2: log-level 'loud' is not one of error, warn, info, debug" },
                { "[docker]\nstore = x\n", "test.conf:1: unknown section '[docker]'" },
                { "[secretd]\nstore=x\n[other]\n", "test.conf:3: unknown section '[other]'" },
                { "store = x\n", "test.conf:1: key 'store' outside the [secretd] section" },
                { "[secretd]\nthis line has no equals sign\n", "test.conf:2: syntax error" },
                { "[secretd]\nstate-dir = relative/dir\n", "state-dir 'relative/dir' is not an absolute path" },
                { "[secretd]\nplugin-dir = plugins\n", "plugin-dir 'plugins' is not an absolute path" },
                { "[secretd]\ndriver = ../evil\n", "driver '../evil' must start with a letter or digit" },
                { "[secretd]\ndriver = a/b\n", "contains '/'" },
                { "[secretd]\nstore =\n", "test.conf:2: store: empty value" },
                { "[secretd\nstore = x\n", "test.conf:1: section header without ']'" },
                { long_text, "test.conf:2: line is longer than" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_config_ struct sd_config cfg;
                cr_assert_eq(sd_config_init(&cfg), 0);
                sd_error err = { 0 };
                int r = parse(&cfg, cases[i].text, &err);
                cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
                cr_assert(strstr(err.message, cases[i].expect), "case %zu: '%s' lacks '%s'", i, err.message,
                          cases[i].expect);
                cr_assert_null(strchr(err.message, '\n'), "case %zu: one line", i);
        }
}

Test(config, nul_byte_in_the_file_is_refused) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        const char text[] = "[secretd]\nstore = a\0b\n";
        cr_assert_eq(sd_config_parse_string(&cfg, text, sizeof(text) - 1, "x.conf", &err), -EINVAL);
        cr_assert(strstr(err.message, "x.conf:2: contains a NUL byte"), "%s", err.message);
}

Test(config, first_error_wins_when_there_are_several) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(parse(&cfg, "[secretd]\nno equals here\nbogus = 1\n", &err), -EINVAL);
        cr_assert(strstr(err.message, "test.conf:2: syntax error"), "%s", err.message);
        cr_assert_eq(parse(&cfg, "[secretd]\nbogus = 1\nno equals here\n", &err), -EINVAL);
        cr_assert(strstr(err.message, "test.conf:2: unknown key 'bogus'"), "%s", err.message);
}

Test(config, sizes_accept_k_m_g_suffixes) {
        const struct {
                const char *text;
                uint64_t bytes;
        } good[] = {
                { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 }, { "1M", 1 << 20 },
                { "16m", 16 << 20 }, { "1G", (uint64_t) 1 << 30 }, { "1024K", 1 << 20 },
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                uint64_t v = 0;
                sd_error err = { 0 };
                cr_assert_eq(sd_size_parse("size", good[i].text, &v, &err), 0, "%s: %s", good[i].text, err.message);
                cr_assert_eq(v, good[i].bytes, "%s", good[i].text);
        }
        const char *bad[] = { "", "K", "1.5M", " 1M", "1M ", "0x10", "+1", "1T", "4095", "0", "2G", "1KK" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint64_t v = 7;
                sd_error err = { 0 };
                cr_assert_eq(sd_size_parse("size", bad[i], &v, &err), -EINVAL, "'%s' accepted", bad[i]);
                cr_assert_eq(v, 7, "output untouched on failure");
                cr_assert(strncmp(err.message, "size '", 6) == 0, "%s", err.message);
        }
}

Test(config, flags_use_the_same_rules_and_override_the_file) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(parse(&cfg, "[secretd]\nmax-size = 8M\nlog-level = warn\n", &err), 0, "%s", err.message);
        cr_assert_eq(sd_config_set(&cfg, "max-size", "4M", &err), 0);
        cr_assert_eq(cfg.max_size, 4 << 20);
        cr_assert_eq(cfg.log_level, SD_LOG_WARN);
        cr_assert_eq(sd_config_set(&cfg, "log-level", "loud", &err), -EINVAL);
        cr_assert_eq(cfg.log_level, SD_LOG_WARN, "unchanged on failure");
        cr_assert_eq(sd_config_set(&cfg, "config", "/x", &err), -EINVAL);
        cr_assert(strstr(err.message, "unknown key 'config'"), "%s", err.message);
}

Test(config, default_size_above_max_size_is_refused) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_config_check(&cfg, &err), 0);
        cr_assert_eq(parse(&cfg, "[secretd]\ndefault-size = 32M\n", &err), 0, "%s", err.message);
        cr_assert_eq(sd_config_check(&cfg, &err), -EINVAL);
        cr_assert(strstr(err.message, "default-size"), "%s", err.message);
}

Test(config, file_missing_unreadable_and_present) {
        char dir[] = "/tmp/secretd-config-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char path[128];
        (void) snprintf(path, sizeof(path), "%s/secretd.conf", dir);

        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_config_load_file(&cfg, path, &err), -ENOENT);
        cr_assert(strstr(err.message, path), "%s", err.message);

        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs("[secretd]\nstate-dir = /tmp/x\nbad-key = 1\n", f);
        fclose(f);
        cr_assert_eq(sd_config_load_file(&cfg, path, &err), -EINVAL);
        char expect[160];
        (void) snprintf(expect, sizeof(expect), "%s:3: unknown key 'bad-key'", path);
        cr_assert(strstr(err.message, expect), "%s", err.message);

        cr_assert_eq(sd_config_load_file(&cfg, dir, &err), -EINVAL, "a directory is not a config file");
        unlink(path);
        rmdir(dir);
}

Test(config, the_shipped_example_is_valid_and_says_the_defaults) {
        const char *root = secure_getenv("SECRETD_SOURCE_ROOT");
        if (!root)
                cr_skip_test("SECRETD_SOURCE_ROOT is not set (meson test sets it)");
        char path[4096];
        (void) snprintf(path, sizeof(path), "%s/examples/secretd.conf", root);
        _cleanup_config_ struct sd_config example, defaults;
        cr_assert_eq(sd_config_init(&example), 0);
        cr_assert_eq(sd_config_init(&defaults), 0);
        sd_error err = { 0 };
        cr_assert_eq(sd_config_load_file(&example, path, &err), 0, "%s", err.message);
        cr_assert_str_eq(example.store_url, defaults.store_url);
        cr_assert_str_eq(example.driver, defaults.driver);
        cr_assert_str_eq(example.key_path, defaults.key_path);
        cr_assert_str_eq(example.realm_file, defaults.realm_file);
        cr_assert_null(example.realm);
        cr_assert_str_eq(example.state_dir, defaults.state_dir);
        cr_assert_str_eq(example.docker_socket, defaults.docker_socket);
        cr_assert_str_eq(example.plugin_dir, defaults.plugin_dir);
        cr_assert_eq(example.default_size, defaults.default_size);
        cr_assert_eq(example.max_size, defaults.max_size);
        cr_assert_eq(example.max_volumes, defaults.max_volumes);
        cr_assert_eq(example.max_instances_per_volume, defaults.max_instances_per_volume);
        cr_assert_eq(example.max_inodes, defaults.max_inodes);
        cr_assert_eq(example.max_total_tmpfs, defaults.max_total_tmpfs);
        cr_assert_str_eq(example.floor_file, defaults.floor_file);
        cr_assert_str_eq(example.cache_dir, defaults.cache_dir);
        cr_assert_eq(example.log_level, defaults.log_level);
}

Test(config, a_bad_pin_and_the_old_trusted_writers_key_are_refused_with_advice) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        sd_error err = { 0 };
        cr_assert_eq(parse(&cfg, "[secretd]\nrealm = sdw1:AAAA\n", &err), -EINVAL);
        cr_assert(strstr(err.message, "test.conf:2:") && strstr(err.message, "realm: not a realm pin"), "%s", err.message);
        cr_assert_eq(parse(&cfg, "[secretd]\ntrusted-writers = /etc/secretd/trusted-writers\n", &err), -EINVAL);
        cr_assert(strstr(err.message, "trusted-writers is no longer used") && strstr(err.message, "secretd join PIN"),
                  "%s", err.message);
        cr_assert_eq(sd_config_set(&cfg, "realm-file", "relative/realm", &err), -EINVAL);
        cr_assert(strstr(err.message, "not an absolute path"), "%s", err.message);
}

Test(config, metrics_listen_is_off_by_default_and_takes_loopback_only) {
        _cleanup_config_ struct sd_config cfg;
        cr_assert_eq(sd_config_init(&cfg), 0);
        cr_assert_str_eq(cfg.metrics_listen, "", "metrics-listen must be off by default");
        sd_error err = { 0 };
        static const char *const good[] = { "127.0.0.1:9101", "127.1.2.3:1", "[::1]:65535", "" };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                cr_assert_eq(sd_config_set(&cfg, "metrics-listen", good[i], &err), 0, "%s: %s", good[i], err.message);
                cr_assert_str_eq(cfg.metrics_listen, good[i]);
        }
        static const struct {
                const char *value, *says;
        } bad[] = {
                { "0.0.0.0:9101", "0.0.0.0 is not a loopback address" },
                { "192.168.1.5:9101", "192.168.1.5 is not a loopback address" },
                { "[::]:9101", ":: is not a loopback address" },
                { "[::ffff:127.0.0.1]:9101", "is not a loopback address" },
                { "localhost:9101", "names are not resolved" },
                { "127.0.0.1", "is not ADDRESS:PORT" },
                { "127.0.0.1:0", "the port is not a number from 1 to 65535" },
                { "127.0.0.1:65536", "the port is not a number from 1 to 65535" },
                { "127.0.0.1:+80", "the port is not a number" },
                { "127.0.0.1: 80", "the port is not a number" },
                { "[::1]9101", "is not [IPV6]:PORT" },
                { "[::1:9101", "is not [IPV6]:PORT" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err = (sd_error) { 0 };
                cr_assert_eq(sd_config_set(&cfg, "metrics-listen", bad[i].value, &err), -EINVAL, "%s accepted",
                             bad[i].value);
                cr_assert(strstr(err.message, bad[i].says), "%s: %s", bad[i].value, err.message);
                cr_assert_str_eq(cfg.metrics_listen, "", "a refused value changed the configuration");
        }
}

Test(config, diff_names_the_changed_keys_in_table_order) {
        _cleanup_config_ struct sd_config a;
        _cleanup_config_ struct sd_config b;
        sd_error err = { 0 };
        cr_assert_eq(sd_config_init(&a), 0);
        cr_assert_eq(sd_config_init(&b), 0);
        const char *keys[SD_CONFIG_KEYS];
        cr_assert_eq(sd_config_diff(&a, &b, keys, SD_CONFIG_KEYS), 0, "two default configurations are equal");

        /* One key of each kind of value: string, pin (NULL vs set), size,
         * count, level, bool, seconds, word. */
        cr_assert_eq(parse(&b, "[secretd]\nstore = file:///elsewhere\nmax-size = 2M\nmax-volumes = 3\n"
                               "log-level = debug\nseccomp = no\nconnection-timeout = 30\n"
                               "on-unverifiable = refuse\naudit-log =\n",
                           &err), 0, "%s", err.message);
        size_t n = sd_config_diff(&a, &b, keys, SD_CONFIG_KEYS);
        const char *expected[] = { "store", "max-size", "max-volumes", "log-level", "audit-log", "seccomp",
                                   "connection-timeout", "on-unverifiable" };
        cr_assert_eq(n, sizeof(expected) / sizeof(expected[0]));
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(keys[i], expected[i]);

        /* The same value spelled differently is no change. */
        cr_assert_eq(parse(&a, "[secretd]\nmax-size = 2048K\n", &err), 0, "%s", err.message);
        n = sd_config_diff(&a, &b, keys, 1);
        cr_assert_eq(n, 7, "max-size 2048K equals 2M");
        cr_assert_str_eq(keys[0], "store", "only the first max keys are stored");
}
