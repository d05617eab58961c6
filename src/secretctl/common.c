/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers every verb shares: option parsing, loading the identity and the
 * store, and mapping library errors to exit statuses.  The realm helpers
 * are in realm-common.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/names.h"
#include "secretctl.h"

int ctl_usage_error(struct ctl_context *ctx, const char *verb, const char *fmt, ...) {
        char what[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (verb)
                return sd_error_set(&ctx->err, EINVAL, "%s: %s; see 'secretctl %s --help'", verb,
                                    what, verb);
        return sd_error_set(&ctx->err, EINVAL, "%s; see 'secretctl --help'", what);
}

int ctl_parse_options(struct ctl_context *ctx, const struct ctl_verb *verb, int argc, char **argv,
                      const char *shortopts, const struct option *longopts,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *arg, void *userdata),
                      void *userdata) {
        size_t n_long = 0;
        while (longopts && longopts[n_long].name)
                n_long++;

        /* Every verb takes --help; append it to the verb's own table. */
        _cleanup_free_ struct option *all = calloc(n_long + 2, sizeof(*all));
        _cleanup_free_ char *shorts = NULL;
        if (!all || asprintf(&shorts, ":h%s", shortopts ? shortopts : "") < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        if (n_long > 0)
                memcpy(all, longopts, n_long * sizeof(*all));
        all[n_long] = (struct option) { "help", no_argument, NULL, 'h' };

        /* optind = 0 makes glibc re-initialise its state: main() already ran
         * getopt_long over the global options. */
        optind = 0;
        opterr = 0;
        for (;;) {
                int opt = getopt_long(argc, argv, shorts, all, NULL);
                if (opt < 0)
                        break;
                if (opt == 'h') {
                        ctl_print_verb_help(verb, stdout);
                        return 1;
                }
                if (opt == '?' || opt == ':') {
                        /* Show the option without any "=value": a user who
                         * typed --value=SECRET must not see it echoed. */
                        const char *bad = argv[optind - 1];
                        char shown[64];
                        if (optopt && strncmp(bad, "--", 2) != 0)
                                (void) snprintf(shown, sizeof(shown), "-%c", optopt);
                        else
                                sd_escape_for_message(bad, strcspn(bad, "="), shown, sizeof(shown));
                        if (opt == ':')
                                return ctl_usage_error(ctx, verb->name, "option '%s' needs a value", shown);
                        /* getopt_long reports "--json=x" as '?' too. */
                        if (strncmp(bad, "--", 2) == 0 && strchr(bad, '='))
                                for (size_t i = 0; i < n_long + 1; i++)
                                        if (strlen(all[i].name) == strcspn(bad + 2, "=") &&
                                            strncmp(all[i].name, bad + 2, strlen(all[i].name)) == 0)
                                                return ctl_usage_error(ctx, verb->name,
                                                                       "option '%s' takes no value", shown);
                        return ctl_usage_error(ctx, verb->name, "unknown option '%s'", shown);
                }
                if (opt == 'q') {
                        ctx->quiet = true;
                        continue;
                }
                int r = on_option ? on_option(ctx, opt, optarg, userdata) : -EINVAL;
                if (r < 0)
                        return r;
        }
        return 0;
}

int ctl_parse_u64(struct ctl_context *ctx, const char *what, const char *text, uint64_t *out) {
        char shown[64];
        sd_escape_for_message(text, strlen(text), shown, sizeof(shown));
        if (text[0] < '0' || text[0] > '9')
                return sd_error_set(&ctx->err, EINVAL, "%s '%s' is not a positive number", what, shown);
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno != 0 || !end || *end != '\0' || v == 0 || v > UINT64_MAX)
                return sd_error_set(&ctx->err, EINVAL, "%s '%s' is not a positive number", what, shown);
        *out = (uint64_t) v;
        return 0;
}

int ctl_validate_name(struct ctl_context *ctx, const char *what, const char *name) {
        return sd_name_validate(what, name, strlen(name), &ctx->err);
}

int ctl_parse_secret_name(struct ctl_context *ctx, const char *verb, int argc, char **argv,
                          const char **name_out) {
        if (optind == argc)
                return ctl_usage_error(ctx, verb, "missing NAME");
        if (argc - optind > 1)
                return ctl_usage_error(ctx, verb, "too many arguments; expected only NAME");
        int r = ctl_validate_name(ctx, "secret name", argv[optind]);
        if (r < 0)
                return r;
        *name_out = argv[optind];
        return 0;
}

static int json_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        bool *json = userdata;
        if (opt == 'j')
                *json = true;
        return 0;
}

int ctl_parse_json_option(struct ctl_context *ctx, const struct ctl_verb *verb, int argc, char **argv,
                          bool *json) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { NULL, 0, NULL, 0 },
        };
        return ctl_parse_options(ctx, verb, argc, argv, "", options, json_option, json);
}

int ctl_load_identity(struct ctl_context *ctx, struct sd_writer_key **out) {
        int r = sd_writer_key_load(ctx->identity_path, out, &ctx->err);
        if (r == -ENOENT)
                return sd_error_set(&ctx->err, ENOENT, "no identity at %s; run 'secretctl keygen'",
                                    ctx->identity_path);
        return r < 0 ? r : 0;
}

int ctl_open_store(struct ctl_context *ctx, bool create, struct sd_store **out) {
        struct sd_store *store = NULL;
        int r = sd_store_open_with(ctx->store_url, create ? 1 : 0, &ctx->store_options, &store, &ctx->err);
        if (r == -ENOENT && !create)
                return sd_error_set(&ctx->err, ENOENT, "store %s does not exist", ctx->store_url);
        if (r < 0)
                return r;
        sd_store_set_warn(store, ctl_warn, ctx);
        *out = store;
        return 0;
}

void ctl_say(struct ctl_context *ctx, const char *fmt, ...) {
        if (ctx->quiet)
                return;
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
}

void ctl_warn(void *userdata, const char *message) {
        (void) userdata;
        (void) fflush(stdout);
        fprintf(stderr, "secretctl: warning: %s\n", message);
}

void ctl_report(const char *fmt, ...) {
        va_list ap;
        (void) fflush(stdout);
        fputs("secretctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int ctl_print_identity_line(struct ctl_context *ctx, const struct sd_writer_pub *pub) {
        _cleanup_free_ char *pubid = NULL;
        if (sd_writer_pub_format(pub, &pubid) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(pub->sign_pk, key_id);
        ctl_say(ctx, "%s  key id %s\n", pubid, key_id);
        return 0;
}

void ctl_format_time(int64_t t, char out[32]) {
        struct tm tm;
        time_t tt = (time_t) t;
        if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(out, 32, "@%" PRId64, t);
}

int ctl_exit_status(int negative_errno) {
        switch (-negative_errno) {
        case 0:
                return CTL_EXIT_OK;
        case EINVAL:
        case EFBIG:
        case E2BIG:
        case ENAMETOOLONG:
                return CTL_EXIT_USAGE;
        case ENOENT:
                return CTL_EXIT_NOT_FOUND;
        case EEXIST:
                return CTL_EXIT_CONFLICT;
        case EBADMSG:
        case EKEYREJECTED:
        case ESTALE:
                return CTL_EXIT_VERIFY;
        case ENOKEY:
                return CTL_EXIT_NO_KEY;
        default:
                return CTL_EXIT_FAILURE;
        }
}

int ctl_verify_version(struct sd_store *store, const struct sd_policy *policy, const char *name, uint64_t version,
                       struct sd_envelope_info *info, sd_error *err) {
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        uint64_t got = 0;
        int r = sd_store_get(store, name, version, &json, &len, &got, err);
        if (r < 0)
                return r;
        struct sd_envelope_info i = { 0 };
        r = sd_envelope_verify(json, len, policy, 0, &i, err);
        /* The policy is the latest the chain verifies to: a newer one named
         * by an envelope does not exist. */
        if (r == -EAGAIN)
                r = -EBADMSG;
        if (r < 0)
                return r;
        /* The signature covers name and version, but an envelope signed for
         * another slot can still be copied here: check the binding. */
        if (strcmp(i.name, name) != 0 || i.version != version) {
                char shown[64];
                sd_escape_for_message(i.name, strlen(i.name), shown, sizeof(shown));
                return sd_error_set(err, EBADMSG,
                                    "secret '%s' version %" PRIu64 ": envelope is signed for '%s' version %" PRIu64 " (moved or replayed)",
                                    name, version, shown, i.version);
        }
        *info = i;
        return 0;
}

int ctl_listing_status(int status, int s) {
        return status == CTL_EXIT_OK || s == CTL_EXIT_VERIFY ? s : status;
}

int ctl_print_json(struct ctl_context *ctx, json_t *json) {
        _cleanup_free_ char *text = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        printf("%s\n", text);
        return 0;
}

int ctl_report_entry_failure(const char *kind, const char *name, uint64_t version, const sd_error *err,
                             int r) {
        char quoted[SD_NAME_MAX + 8];
        (void) snprintf(quoted, sizeof(quoted), "'%s'", name);
        const char *message = err->code ? err->message : strerror(-r);
        if (strstr(message, quoted))
                ctl_report("%s", message);
        else if (version)
                ctl_report("%s %s version %" PRIu64 ": %s", kind, quoted, version, message);
        else
                ctl_report("%s %s: %s", kind, quoted, message);
        return ctl_exit_status(r);
}

int ctl_check_pasted_key_id(struct ctl_context *ctx, const char *verb, char **extra, int n_extra,
                            const char *key_id) {
        if (n_extra == 0)
                return 0;
        if (n_extra == 3 && strcmp(extra[0], "key") == 0 && strcmp(extra[1], "id") == 0) {
                if (strcmp(extra[2], key_id) == 0)
                        return 0;
                char shown[64];
                sd_escape_for_message(extra[2], strlen(extra[2]), shown, sizeof(shown));
                return sd_error_set(&ctx->err, EINVAL, "%s: the key's id is %s, not %s as pasted", verb,
                                    key_id, shown);
        }
        return ctl_usage_error(ctx, verb, "too many arguments");
}

int ctl_dispatch_subverb(struct ctl_context *ctx, const struct ctl_verb *verb,
                         const struct ctl_subverb *subverbs, size_t n, int argc, char **argv) {
        if (argc < 2)
                return ctl_usage_error(ctx, verb->name, "missing subcommand");
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                ctl_print_verb_help(verb, stdout);
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                if (strcmp(subverbs[i].name, argv[1]) == 0)
                        return subverbs[i].run(ctx, argc - 1, argv + 1);
        char shown[64];
        sd_escape_for_message(argv[1], strlen(argv[1]), shown, sizeof(shown));
        return ctl_usage_error(ctx, verb->name, "unknown subcommand '%s'", shown);
}
