/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "secretctl.h"

static int admin_add(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_add(ctx, &ctl_verb_admin, SD_POLICY_ADMINS, argc, argv);
}

static int admin_rm(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_rm(ctx, &ctl_verb_admin, SD_POLICY_ADMINS, argc, argv);
}

static int admin_ls(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_ls(ctx, &ctl_verb_admin, SD_POLICY_ADMINS, argc, argv);
}

static int cmd_admin(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "add", admin_add },
                { "rm", admin_rm },
                { "ls", admin_ls },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_admin, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_admin = {
        .name = "admin",
        .summary = "add or remove realm admins, change the signature threshold",
        .run = cmd_admin,
        .help =
        "Usage: secretctl [--store URL] admin add NAME PUBID [--threshold N] [--quiet]\n"
        "       secretctl [--store URL] admin rm NAME [--threshold N] [--quiet]\n"
        "       secretctl [--store URL] admin ls [--json]\n"
        "\n"
        "Admins sign the realm policy's versions.  A new version is in force once\n"
        "it carries valid signatures by at least the threshold of distinct admins\n"
        "of the version before it AND by at least its own threshold of its own\n"
        "admins, so admins can be rotated without hosts pinning anew.  Admins may\n"
        "write every secret, and every put is sealed to their box keys too, so\n"
        "that they can reseal.\n"
        "\n"
        "add NAME PUBID [--threshold N]\n"
        "    Adds the admin NAME with the public identity PUBID (the line\n"
        "    'secretctl whoami' prints), and sets the threshold to N.\n"
        "rm NAME [--threshold N]\n"
        "    Removes the admin NAME; a threshold above the admins left must be\n"
        "    lowered with --threshold.  The last admin cannot be removed.\n"
        "ls [--json]\n"
        "    Lists the admins: name and key id.  --json prints an array of\n"
        "    objects with name, key, key_id and patterns (always empty).\n"
        "\n"
        "With a threshold above 1, add and rm store a proposal signed by you;\n"
        "other admins sign it with 'secretctl realm sign'.  Raising the threshold\n"
        "itself needs the new threshold's signatures: adding a third admin with\n"
        "--threshold 2 is in force once two of the three signed.\n"
        "\n"
        "Options:\n"
        "  --threshold N  (add, rm) the number of admin signatures a policy change\n"
        "                 needs\n"
        "  --json         (ls) print JSON instead of a table\n"
        "  -q, --quiet    (add, rm) print nothing on success\n"
        "  -h, --help     show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl admin add bob \"$(ssh bob@dev secretctl whoami)\"\n"
        "  secretctl admin add carol sdw1:... --threshold 2\n"
        "  secretctl admin rm alice --threshold 1\n"
        "\n"
        "Exit status:\n"
        "  0  done (in force, or proposed and waiting for signatures)\n"
        "  1  system error\n"
        "  2  usage error, invalid name or key, a threshold out of range\n"
        "  3  (rm) no such admin; no identity; you have not joined the realm\n"
        "  4  (add) already an admin; a proposal is pending; another admin\n"
        "     changed the policy meanwhile\n"
        "  5  the store's policy chain does not verify\n"
        "  7  you are not an admin of the realm\n",
};
