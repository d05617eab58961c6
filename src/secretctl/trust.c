/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "secretctl.h"

/* Per-user trust files were replaced by the realm: say where to go instead
 * of failing as an unknown command. */
static int cmd_trust(struct ctl_context *ctx, int argc, char **argv) {
        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                ctl_print_verb_help(&ctl_verb_trust, stdout);
                return 0;
        }
        return sd_error_set(&ctx->err, EINVAL,
                            "'secretctl trust' was removed: whom you trust is now the realm policy of the store. "
                            "Join a realm with 'secretctl realm join PIN' (an admin's 'secretctl realm pin' prints "
                            "it); admins add writers with 'secretctl writer add' (see docs/trust.md)");
}

const struct ctl_verb ctl_verb_trust = {
        .name = "trust",
        .summary = NULL,  /* removed; not listed */
        .run = cmd_trust,
        .help =
        "Usage: secretctl trust ...   (removed)\n"
        "\n"
        "'secretctl trust' managed a per-user file of trusted writers.  It was\n"
        "replaced by the realm policy kept in the store, signed by the realm's\n"
        "admins (docs/trust.md):\n"
        "\n"
        "  secretctl realm join PIN        trust a store's realm (the pin line an\n"
        "                                  admin's 'secretctl realm pin' prints)\n"
        "  secretctl writer add NAME ID    (admins) allow a writer\n"
        "  secretctl writer ls             who may write which secrets\n"
        "\n"
        "'secretctl realm init' reads an existing trusted file once, to make its\n"
        "writers writers of the new realm.\n"
        "\n"
        "Exit status:\n"
        "  2  always: the command was removed\n",
};
