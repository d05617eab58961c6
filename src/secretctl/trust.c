/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "secretd/cleanup.h"
#include "secretd/keys.h"
#include "secretd/trust.h"
#include "secretctl.h"

/* Your own identity's public half, when there is one. */
static int load_self(struct ctl_context *ctx, struct sd_writer_pub *self, bool *have_self) {
        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        int r = sd_writer_key_load(ctx->identity_path, &key, &ctx->err);
        if (r == -ENOENT) {
                sd_error_clear(&ctx->err);
                *have_self = false;
                return 0;
        }
        if (r < 0)
                return r;
        *self = key->pub;
        *have_self = true;
        return 0;
}

/* The trusted file lives in the configuration directory, which may not
 * exist yet on a machine that never ran keygen. */
static int make_parent_dirs(struct ctl_context *ctx, const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        char *slash = strrchr(copy, '/');
        if (!slash || slash == copy)
                return 0;
        *slash = '\0';
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, 0700) < 0 && errno != EEXIST)
                        return sd_error_set_errno(&ctx->err, errno, "%s: cannot create directory", copy);
                *p = '/';
        }
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
                return sd_error_set_errno(&ctx->err, errno, "%s: cannot create directory", copy);
        return 0;
}

struct trust_add_options {
        const char *comment;
};

static int trust_add_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct trust_add_options *o = userdata;
        if (opt == 'c')
                o->comment = arg;
        return 0;
}

static int trust_add(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "comment", required_argument, NULL, 'c' },
                { NULL, 0, NULL, 0 },
        };
        struct trust_add_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_trust, argc, argv, "", options, trust_add_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind == argc)
                return ctl_usage_error(ctx, "trust add", "expected a public identity (sdw1:...)");
        struct sd_writer_pub pub;
        r = sd_writer_pub_parse(argv[optind], &pub, &ctx->err);
        if (r < 0)
                return r;
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(pub.sign_pk, key_id);

        /* The whole whoami line, quoted, is one argument: its tail must
         * name the same key. */
        const char *tail = argv[optind] + strcspn(argv[optind], " \t");
        while (*tail == ' ' || *tail == '\t')
                tail++;
        size_t tail_len = strlen(tail);
        while (tail_len > 0 && isspace((unsigned char) tail[tail_len - 1]))
                tail_len--;
        if (tail_len > 0) {
                char expected[SD_KEY_ID_CHARS + 16];
                (void) snprintf(expected, sizeof(expected), "key id %s", key_id);
                if (tail_len != strlen(expected) || strncmp(tail, expected, tail_len) != 0)
                        return sd_error_set(&ctx->err, EINVAL,
                                            "trust add: the text after the public identity is not \"%s\"",
                                            expected);
        }
        r = ctl_check_pasted_key_id(ctx, "trust add", argv + optind + 1, argc - optind - 1, key_id);
        if (r < 0)
                return r;
        if (o.comment && strpbrk(o.comment, "\r\n"))
                return sd_error_set(&ctx->err, EINVAL, "trust add: --comment must be one line");

        struct sd_writer_pub self;
        bool have_self = false;
        r = load_self(ctx, &self, &have_self);
        if (r < 0)
                return r;
        if (have_self && memcmp(self.sign_pk, pub.sign_pk, sizeof(pub.sign_pk)) == 0)
                return sd_error_set(&ctx->err, EEXIST, "writer %s is your own identity; it is always trusted",
                                    key_id);

        r = make_parent_dirs(ctx, ctx->trusted_path);
        if (r < 0)
                return r;
        r = sd_trust_file_add(ctx->trusted_path, &pub, o.comment, &ctx->err);
        if (r == -EEXIST)
                return sd_error_set(&ctx->err, EEXIST, "writer %s is already trusted (%s)", key_id,
                                    ctx->trusted_path);
        if (r < 0)
                return r;
        printf("trusted writer %s\n", key_id);
        return 0;
}

static bool is_own_key(const struct sd_writer_pub *self, const char *which) {
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(self->sign_pk, key_id);
        struct sd_writer_pub pub;
        if (strncmp(which, "sdw1:", 5) == 0)
                return sd_writer_pub_parse(which, &pub, NULL) >= 0 &&
                       memcmp(pub.sign_pk, self->sign_pk, sizeof(pub.sign_pk)) == 0;
        size_t len = strlen(which);
        return len >= 8 && len <= SD_KEY_ID_CHARS && strncmp(key_id, which, len) == 0;
}

static int trust_rm(struct ctl_context *ctx, int argc, char **argv) {
        int r = ctl_parse_options(ctx, &ctl_verb_trust, argc, argv, "", NULL, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, "trust rm", "expected one public identity or key id");
        const char *which = argv[optind];

        r = sd_trust_file_remove(ctx->trusted_path, which, &ctx->err);
        if (r == -ENOENT) {
                struct sd_writer_pub self;
                bool have_self = false;
                sd_error saved = ctx->err;
                if (load_self(ctx, &self, &have_self) >= 0 && have_self && is_own_key(&self, which))
                        return sd_error_set(&ctx->err, EINVAL,
                                            "that is your own identity, which is always trusted; it cannot be removed");
                ctx->err = saved;
        }
        if (r < 0)
                return r;
        printf("removed\n");
        return 0;
}

static int list_entry(struct ctl_context *ctx, json_t *array, const struct sd_writer_pub *pub,
                      const char *comment, bool you) {
        _cleanup_free_ char *pubid = NULL;
        if (sd_writer_pub_format(pub, &pubid) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(pub->sign_pk, key_id);
        if (array) {
                json_t *entry = json_pack("{s:s, s:s, s:s, s:b}", "identity", pubid, "key_id", key_id,
                                          "comment", comment ? comment : "", "you", you);
                if (!entry || json_array_append_new(array, entry) < 0)
                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                return 0;
        }
        printf("%s  key id %s%s%s%s\n", pubid, key_id, you ? "  (you)" : "", comment && *comment ? "  " : "",
               comment ? comment : "");
        return 0;
}

static int trust_ls(struct ctl_context *ctx, int argc, char **argv) {
        bool json = false;
        int r = ctl_parse_json_option(ctx, &ctl_verb_trust, argc, argv, &json);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "trust ls", "takes no arguments");

        struct sd_writer_pub self;
        bool have_self = false;
        r = load_self(ctx, &self, &have_self);
        if (r < 0)
                return r;
        /* Validate the whole file through the library first, so a malformed
         * line is an error here exactly as it is for put and get. */
        _cleanup_trust_ struct sd_trust *trust = NULL;
        r = ctl_load_trust(ctx, NULL, &trust);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *array = json ? json_array() : NULL;
        if (json && !array)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        if (have_self) {
                r = list_entry(ctx, array, &self, NULL, true);
                if (r < 0)
                        return r;
        }

        /* The library keeps keys, not comments: read the comments here. */
        _cleanup_fclose_ FILE *f = fopen(ctx->trusted_path, "re");
        if (!f && errno != ENOENT)
                return sd_error_set_errno(&ctx->err, errno, "%s: cannot open", ctx->trusted_path);
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        while (f && getline(&line, &cap, f) >= 0) {
                line[strcspn(line, "\r\n")] = '\0';
                char *p = line;
                while (isspace((unsigned char) *p))
                        p++;
                if (*p == '\0' || *p == '#')
                        continue;
                struct sd_writer_pub pub;
                if (sd_writer_pub_parse(p, &pub, NULL) < 0)
                        continue;
                if (have_self && memcmp(pub.sign_pk, self.sign_pk, sizeof(pub.sign_pk)) == 0)
                        continue;
                char *comment = p + strcspn(p, " \t");
                while (isspace((unsigned char) *comment))
                        comment++;
                r = list_entry(ctx, array, &pub, comment, false);
                if (r < 0)
                        return r;
        }
        if (json)
                return ctl_print_json(ctx, array);
        return 0;
}

static int cmd_trust(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "add", trust_add },
                { "ls", trust_ls },
                { "rm", trust_rm },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_trust, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_trust = {
        .name = "trust",
        .summary = "manage the writers whose signatures you accept",
        .run = cmd_trust,
        .help =
        "Usage: secretctl trust add PUBID [--comment TEXT]\n"
        "       secretctl trust ls [--json]\n"
        "       secretctl trust rm PUBID-or-KEYID\n"
        "\n"
        "Your trusted file lists the other writers whose signed envelopes and\n"
        "recipient entries you accept.  Your own identity is always trusted.\n"
        "'get', 'ls' and 'history' refuse versions signed by anyone else, and\n"
        "'put' seals new versions only to recipients registered by trusted\n"
        "writers.\n"
        "\n"
        "add PUBID [--comment TEXT]\n"
        "    Trusts the writer whose public identity is PUBID: the line their\n"
        "    'secretctl whoami' prints (sdw1:... alone, or the whole line with its\n"
        "    \"key id HEX\" tail, which is checked).  Prints \"trusted writer HEX\".\n"
        "ls [--json]\n"
        "    Lists your own identity, marked \"(you)\", then every trusted writer\n"
        "    as \"sdw1:...  key id HEX  COMMENT\".  --json prints an array of\n"
        "    objects with identity, key_id, comment and you.\n"
        "rm PUBID-or-KEYID\n"
        "    Stops trusting a writer, named by its public identity, its key id, or\n"
        "    a unique prefix of at least 8 hex digits of its key id.\n"
        "\n"
        "Options:\n"
        "  --comment TEXT   (add) a one-line note kept next to the key\n"
        "  --json           (ls) print JSON\n"
        "  -h, --help       show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl trust add \"$(ssh alice@dev1 secretctl whoami)\" --comment alice\n"
        "  secretctl trust ls\n"
        "  secretctl trust rm 3f9a1b2c\n"
        "\n"
        "Exit status:\n"
        "  0  done\n"
        "  1  system error (the trusted file cannot be written)\n"
        "  2  usage error, malformed identity, a key id tail that does not match,\n"
        "     a malformed trusted file, or an attempt to remove your own identity\n"
        "  3  (rm) no such trusted writer\n"
        "  4  (add) the writer is already trusted, or is you\n",
};
