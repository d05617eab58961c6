/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretctl.h"

struct reseal_options {
        bool all, dry_run;
};

static int reseal_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct reseal_options *o = userdata;
        switch (opt) {
        case 'a':
                o->all = true;
                return 0;
        case 'n':
                o->dry_run = true;
                return 0;
        default:
                return -EINVAL;
        }
}

struct reseal_report {
        struct ctl_context *ctx;
        size_t done, current, needed, deleted, failed;
};

static void report_item(void *userdata, const struct sd_reseal_item *item) {
        struct reseal_report *rep = userdata;
        switch (item->state) {
        case SD_RESEAL_CURRENT:
                rep->current++;
                break;
        case SD_RESEAL_DELETED:
                rep->deleted++;
                break;
        case SD_RESEAL_NEEDED:
                rep->needed++;
                ctl_say(rep->ctx, "%s: version %" PRIu64 " would be resealed: %s\n", item->name, item->version,
                        item->reason);
                break;
        case SD_RESEAL_DONE:
                rep->done++;
                ctl_say(rep->ctx, "%s: version %" PRIu64 " resealed as version %" PRIu64 ": %s\n", item->name,
                        item->version, item->new_version, item->reason);
                break;
        case SD_RESEAL_FAILED:
                rep->failed++;
                ctl_report("%s", item->error.message);
                break;
        }
}

static int cmd_reseal(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "all", no_argument, NULL, 'a' },
                { "dry-run", no_argument, NULL, 'n' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct reseal_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_reseal, argc, argv, "q", options, reseal_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (o.all == (optind < argc))
                return ctl_usage_error(ctx, "reseal", o.all ? "give NAMEs or --all, not both" : "give NAMEs or --all");
        for (int i = optind; i < argc; i++) {
                r = ctl_validate_name(ctx, "secret name", argv[i]);
                if (r < 0)
                        return r;
        }

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *policy = NULL;
        r = ctl_open_signer(ctx, &key, &store, &policy);
        if (r < 0)
                return r;
        if (!sd_policy_is_admin(policy, key->pub.sign_pk)) {
                char id[SD_KEY_ID_CHARS + 1];
                sd_key_id(key->pub.sign_pk, id);
                ctx->exit_status = CTL_EXIT_NOT_WRITER;
                return sd_error_set(&ctx->err, EPERM,
                                    "you (%s) are not an admin of policy v%" PRIu64 ": only admins receive every secret and can reseal",
                                    id, sd_policy_version(policy));
        }

        struct reseal_report rep = { .ctx = ctx };
        struct sd_put_options put = { .warn = ctl_warn, .warn_userdata = ctx };
        r = sd_secret_reseal(store, key, policy, (const char *const *) argv + optind, (size_t) (argc - optind),
                             o.dry_run, &put, report_item, &rep, &ctx->err);
        if (r < 0)
                return r;
        if (o.dry_run)
                ctl_say(ctx, "%zu secret(s) would be resealed, %zu already match policy v%" PRIu64 ", %zu deleted, %zu failed\n",
                        rep.needed, rep.current, sd_policy_version(policy), rep.deleted, rep.failed);
        else
                ctl_say(ctx, "%zu secret(s) resealed, %zu already matched policy v%" PRIu64 ", %zu deleted, %zu failed\n",
                        rep.done, rep.current, sd_policy_version(policy), rep.deleted, rep.failed);
        return rep.failed ? CTL_EXIT_FAILURE : 0;
}

const struct ctl_verb ctl_verb_reseal = {
        .name = "reseal",
        .summary = "re-seal secrets to the realm's current recipients (admin)",
        .run = cmd_reseal,
        .help =
        "Usage: secretctl [--store URL] reseal NAME... [--dry-run] [--quiet]\n"
        "       secretctl [--store URL] reseal --all [--dry-run] [--quiet]\n"
        "\n"
        "For each secret NAME (or every secret with --all) whose latest version is\n"
        "sealed to other recipients than the realm policy gives that name now --\n"
        "a recipient was added or removed, patterns changed, or the version was\n"
        "written before the realm (format 1) -- writes a new version with the same\n"
        "value, a fresh data key and the current recipients, signed by you.  A\n"
        "secret already sealed to exactly those recipients, or deleted, is left\n"
        "alone.  The value is never shown; it goes from the old envelope to the\n"
        "new one in locked memory.  Only admins can reseal: every put is sealed\n"
        "to the admins' box keys for that purpose.\n"
        "\n"
        "A resealed version is a new version: a concurrent put is never\n"
        "overwritten (the name is examined again), and agents deliver it like any\n"
        "other.  A removed recipient cannot open resealed versions, but it kept\n"
        "what it could read before: rotate those values.\n"
        "\n"
        "Prints one line per secret resealed (or, with --dry-run, that would be)\n"
        "with the reason, e.g.\n"
        "  db_password: version 4 resealed as version 5: + recipient host3 (a0d6e03834b0c91b)\n"
        "then a summary line.  A secret that cannot be resealed (its latest\n"
        "version does not verify, or you are not a recipient of it) is reported\n"
        "on standard error and the others go on.\n"
        "\n"
        "Options:\n"
        "  --all        every secret in the store\n"
        "  --dry-run    list what would change and why; write nothing\n"
        "  -q, --quiet  print nothing but the errors\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl reseal --all --dry-run\n"
        "  secretctl reseal --all\n"
        "  secretctl reseal db_password api_token\n"
        "\n"
        "Exit status:\n"
        "  0  every secret matches the policy (or would, after the reseal)\n"
        "  1  at least one secret could not be resealed, or a system error\n"
        "  2  usage error or invalid name\n"
        "  3  no identity; the store does not exist; you have not joined its realm\n"
        "  5  the store's policy chain does not verify\n"
        "  7  you are not an admin of the realm\n",
};
