/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "secretctl.h"

static int writer_add(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_add(ctx, &ctl_verb_writer, SD_POLICY_WRITERS, argc, argv);
}

static int writer_rm(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_rm(ctx, &ctl_verb_writer, SD_POLICY_WRITERS, argc, argv);
}

static int writer_ls(struct ctl_context *ctx, int argc, char **argv) {
        return ctl_entry_ls(ctx, &ctl_verb_writer, SD_POLICY_WRITERS, argc, argv);
}

static int cmd_writer(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "add", writer_add },
                { "rm", writer_rm },
                { "ls", writer_ls },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_writer, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_writer = {
        .name = "writer",
        .summary = "add, remove or list who may write which secrets (realm policy)",
        .run = cmd_writer,
        .help =
        "Usage: secretctl [--store URL] writer add NAME PUBID [--pattern P]... [--quiet]\n"
        "       secretctl [--store URL] writer rm NAME [--quiet]\n"
        "       secretctl [--store URL] writer ls [--json]\n"
        "\n"
        "Writers are the developer identities (sdw1:...) whose puts and deletes the\n"
        "realm accepts, each limited to the secret names its patterns cover.\n"
        "Agents and secretctl refuse a version signed by anyone else, or by a\n"
        "writer outside its patterns, and 'put' refuses before storing anything.\n"
        "Admins may write every name without being listed here.\n"
        "\n"
        "add and rm are admin commands: each writes the next policy version,\n"
        "signed by you.  With a threshold above 1 the change is stored as a\n"
        "proposal and other admins add their signatures with 'secretctl realm\n"
        "sign'; it is in force once enough admins signed.  Agents pick up a new\n"
        "policy version from the store by themselves.\n"
        "\n"
        "add NAME PUBID [--pattern P]...\n"
        "    Adds the writer NAME with the public identity PUBID: the line\n"
        "    'secretctl whoami' prints (sdw1:... alone, or with its \"key id HEX\"\n"
        "    tail, which is checked).  Each --pattern is a glob over secret names\n"
        "    with * and ? (for example db_* or app?_token); without one the writer\n"
        "    may write every name.  At most 32 patterns.\n"
        "rm NAME\n"
        "    Removes the writer NAME, and notes that the versions it signed are\n"
        "    refused from then on: an admin reseals those that must stay\n"
        "    ('secretctl reseal NAME').\n"
        "ls [--json]\n"
        "    Lists the writers: name, key id and patterns.  --json prints an\n"
        "    array of objects with name, key, key_id and patterns.\n"
        "\n"
        "Options:\n"
        "  --pattern P  (add) a name pattern; repeat for several\n"
        "  --json       (ls) print JSON instead of a table\n"
        "  -q, --quiet  (add, rm) print nothing on success\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl writer add ci \"$(ssh ci secretctl whoami)\" --pattern 'db_*'\n"
        "  secretctl writer ls\n"
        "  secretctl writer rm ci\n"
        "\n"
        "Exit status:\n"
        "  0  done (in force, or proposed and waiting for signatures)\n"
        "  1  system error\n"
        "  2  usage error, invalid name, pattern or public key\n"
        "  3  (rm) no such writer; no identity; you have not joined the realm\n"
        "  4  (add) the name or key is already a writer; a proposal is pending;\n"
        "     another admin changed the policy meanwhile\n"
        "  5  the store's policy chain does not verify\n"
        "  7  you are not an admin of the realm\n",
};
