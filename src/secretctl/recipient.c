/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "secretctl.h"

static int recipient_add(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_add(ctx, &ctl_verb_recipient, SD_POLICY_RECIPIENTS, argc, argv);
}

static int recipient_rm(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_rm(ctx, &ctl_verb_recipient, SD_POLICY_RECIPIENTS, argc, argv);
}

static int recipient_ls(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_ls(ctx, &ctl_verb_recipient, SD_POLICY_RECIPIENTS, argc, argv);
}

static int cmd_recipient(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "add", recipient_add },
                { "rm", recipient_rm },
                { "ls", recipient_ls },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_recipient, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_recipient = {
        .name = "recipient",
        .summary = "add, remove or list the agents that may receive which secrets (realm policy)",
        .run = cmd_recipient,
        .help =
        "Usage: secretctl [--store URL] recipient add NAME PUBKEY [--pattern P]... [--quiet]\n"
        "       secretctl [--store URL] recipient rm NAME [--quiet]\n"
        "       secretctl [--store URL] recipient ls [--json]\n"
        "\n"
        "Recipients are the agents (secretd on each Docker host) that can decrypt\n"
        "secrets: each is a name, the agent's public box key and the secret-name\n"
        "patterns it may receive, in the realm policy.  'put' seals every new\n"
        "version to the recipients whose patterns cover the name (and to the\n"
        "admins), and refuses a name no recipient may receive.  The policy is the\n"
        "only source of recipients: an entry copied into the store, or restored\n"
        "after 'rm', has no effect.\n"
        "\n"
        "add and rm are admin commands: each writes the next policy version,\n"
        "signed by you (a proposal to be signed with 'secretctl realm sign' when\n"
        "the realm's threshold is above 1).  On an empty file store that you have\n"
        "not joined, 'recipient add' first creates the realm, with you as its\n"
        "admin, and prints the pin line hosts need ('secretd join PIN').\n"
        "\n"
        "add NAME PUBKEY [--pattern P]...\n"
        "    Adds the agent public key PUBKEY (the sda1:... line 'secretd init'\n"
        "    and 'secretd pubkey' print; a pasted \"key id HEX\" tail is checked)\n"
        "    as recipient NAME.  Each --pattern is a glob with * and ? over\n"
        "    secret names; without one it may receive every name.  Versions\n"
        "    written before keep the recipients they were sealed to: run\n"
        "    'secretctl reseal --all' so the new host can open them.\n"
        "rm NAME\n"
        "    Removes the recipient NAME, and notes what removing cannot do: it\n"
        "    can still read the versions already sealed to it, so put new values\n"
        "    of those it must not know; 'secretctl reseal --all' seals the\n"
        "    current versions again without it.\n"
        "ls [--json]\n"
        "    Lists the recipients: name, key id and patterns.  --json prints an\n"
        "    array of objects with name, key, key_id and patterns.\n"
        "\n"
        "NAME follows the rules of secret names: 1 to 128 characters from\n"
        "A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'.\n"
        "\n"
        "Options:\n"
        "  --pattern P  (add) a name pattern; repeat for several\n"
        "  --json       (ls) print JSON instead of a table\n"
        "  -q, --quiet  (add, rm) print nothing on success\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl recipient add host1 sda1:2Xy...\n"
        "  secretctl recipient add host2 \"$(ssh host2 sudo secretd pubkey)\" --pattern 'web_*'\n"
        "  secretctl recipient ls\n"
        "  secretctl recipient rm host1\n"
        "\n"
        "Exit status:\n"
        "  0  done (in force, or proposed and waiting for signatures)\n"
        "  1  system error\n"
        "  2  usage error, invalid name, pattern or malformed public key\n"
        "  3  (rm) no such recipient; no identity; the store does not exist or\n"
        "     you have not joined its realm\n"
        "  4  (add) the name or key is already a recipient; a proposal is\n"
        "     pending; another admin changed the policy meanwhile\n"
        "  5  the store's policy chain does not verify\n"
        "  7  you are not an admin of the realm\n",
};
