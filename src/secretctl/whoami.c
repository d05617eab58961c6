/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "secretd/cleanup.h"
#include "secretd/keys.h"
#include "secretctl.h"

static int cmd_whoami(struct ctl_context *ctx, int argc, char **argv) {
        int r = ctl_parse_options(ctx, &ctl_verb_whoami, argc, argv, "", NULL, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "whoami", "takes no arguments");

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        r = ctl_load_identity(ctx, &key);
        if (r < 0)
                return r;
        return ctl_print_identity_line(ctx, &key->pub);
}

const struct ctl_verb ctl_verb_whoami = {
        .name = "whoami",
        .summary = "print your public identity line",
        .run = cmd_whoami,
        .help =
        "Usage: secretctl [--identity PATH] whoami\n"
        "\n"
        "Prints the public line of your writer identity, exactly as 'secretctl\n"
        "keygen' printed it:\n"
        "\n"
        "  sdw1:<base64url of the two public keys>  key id <16 hex digits>\n"
        "\n"
        "The whole line, or its first word, is what a realm admin gives to\n"
        "'secretctl writer add NAME' and 'secretctl admin add NAME'; the key id is\n"
        "how messages, 'ls', 'history' and the realm policy name you.\n"
        "\n"
        "Options:\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl whoami\n"
        "  secretctl --identity ./ci-identity whoami\n"
        "\n"
        "Exit status:\n"
        "  0  the line was printed\n"
        "  1  the identity file could not be read (for example, readable by others)\n"
        "  2  usage error, or the file is not an identity\n"
        "  3  there is no identity; run 'secretctl keygen'\n",
};
