/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretctl.h"

static int cmd_rm(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        int r = ctl_parse_options(ctx, &ctl_verb_rm, argc, argv, "q", options, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        const char *name = NULL;
        r = ctl_parse_secret_name(ctx, "rm", argc, argv, &name);
        if (r < 0)
                return r;

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *policy = NULL;
        r = ctl_open_signer(ctx, &key, &store, &policy);
        if (r < 0)
                return r;
        r = ctl_write_refusal(ctx, sd_policy_check_write(policy, key->pub.sign_pk, name, false, &ctx->err));
        if (r < 0)
                return r;

        struct sd_put_options opts = { .warn = ctl_warn, .warn_userdata = ctx };
        uint64_t version = 0;
        r = sd_secret_delete(store, key, policy, name, &opts, &version, &ctx->err);
        if (r < 0)
                return r;
        ctl_say(ctx, "%s: deleted in version %" PRIu64 "\n", name, version);
        return 0;
}

const struct ctl_verb ctl_verb_rm = {
        .name = "rm",
        .summary = "delete a secret (writes a signed tombstone version)",
        .run = cmd_rm,
        .help =
        "Usage: secretctl [--store URL] rm NAME [--quiet]\n"
        "\n"
        "Deletes the secret NAME by storing a signed tombstone as its next\n"
        "version.  The realm policy's writer rules apply as for 'put': you must\n"
        "be an admin, or a writer whose patterns cover NAME.  Agents stop\n"
        "delivering it and 'get' reports it as deleted.  Earlier versions stay in\n"
        "the store (still encrypted), listed by 'history' and readable with\n"
        "'get --version N'.  A later 'put' of the name makes it active again.\n"
        "\n"
        "Prints \"NAME: deleted in version N\".\n"
        "\n"
        "Options:\n"
        "  -q, --quiet  print nothing when the tombstone was stored\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl rm old_api_key\n"
        "\n"
        "Exit status:\n"
        "  0  the tombstone was stored\n"
        "  1  system error\n"
        "  2  usage error or invalid name\n"
        "  3  no such secret, it is already deleted, no identity, the store\n"
        "     does not exist, or you have not joined its realm\n"
        "  4  concurrent writers kept winning after every retry\n"
        "  5  the store's policy chain does not verify\n"
        "  7  you are not a writer in the realm policy\n"
        "  8  NAME is outside the patterns you may write\n",
};
