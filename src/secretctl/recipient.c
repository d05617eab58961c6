/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/keys.h"
#include "secretd/store.h"
#include "secretctl.h"

struct blob_list {
        struct sd_store_blob *blobs;
        size_t n;
};

static void blob_list_free(struct blob_list *l) {
        sd_store_blobs_free(l->blobs, l->n);
}

static int recipient_add(struct ctl_context *ctx, int argc, char **argv) {
        int r = ctl_parse_options(ctx, &ctl_verb_recipient, argc, argv, "", NULL, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind < 2)
                return ctl_usage_error(ctx, "recipient add", "expected NAME and an agent public key (sda1:...)");
        const char *name = argv[optind], *pubkey = argv[optind + 1];
        r = ctl_validate_name(ctx, "recipient name", name);
        if (r < 0)
                return r;
        unsigned char box_pk[SD_BOX_PK_BYTES];
        r = sd_agent_pub_parse(pubkey, box_pk, &ctx->err);
        if (r < 0)
                return r;
        char key_id[SD_KEY_ID_CHARS + 1];
        sd_key_id(box_pk, key_id);
        r = ctl_check_pasted_key_id(ctx, "recipient add", argv + optind + 2, argc - optind - 2, key_id);
        if (r < 0)
                return r;

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        r = ctl_load_identity(ctx, &key);
        if (r < 0)
                return r;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, true, &store);
        if (r < 0)
                return r;

        _cleanup_free_ char *entry = NULL;
        size_t len = 0;
        r = sd_recipient_seal(name, box_pk, key, &entry, &len, &ctx->err);
        if (r < 0)
                return r;
        r = sd_store_recipient_put(store, name, entry, len, &ctx->err);
        if (r < 0)
                return r;
        printf("recipient %s: key id %s\n", name, key_id);
        return 0;
}

static int recipient_ls(struct ctl_context *ctx, int argc, char **argv) {
        bool json = false;
        int r = ctl_parse_json_option(ctx, &ctl_verb_recipient, argc, argv, &json);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "recipient ls", "takes no arguments");

        _cleanup_trust_ struct sd_trust *trust = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_as_reader(ctx, &trust, &store);
        if (r < 0)
                return r;
        _cleanup_(blob_list_free) struct blob_list list = { 0 };
        r = sd_store_recipient_list(store, &list.blobs, &list.n, &ctx->err);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *array = json ? json_array() : NULL;
        if (json && !array)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");

        int status = CTL_EXIT_OK;
        bool header = false;
        for (size_t i = 0; i < list.n; i++) {
                struct sd_recipient_info info = { 0 };
                sd_error err = { 0 };
                r = sd_recipient_verify(list.blobs[i].data, list.blobs[i].len, trust, &info, &err);
                bool trusted = r >= 0;
                if (r >= 0 && strcmp(info.name, list.blobs[i].name) != 0) {
                        char shown[64];
                        sd_escape_for_message(info.name, strlen(info.name), shown, sizeof(shown));
                        r = sd_error_set(&err, EBADMSG, "recipient '%s': entry is signed for '%s' (moved)",
                                         list.blobs[i].name, shown);
                }
                /* An entry by an untrusted writer is listed as such: seeing
                 * who signed it is how one decides whether to trust them. */
                if (r < 0 && r != -EKEYREJECTED) {
                        int s = ctl_report_entry_failure("recipient", list.blobs[i].name, 0, &err, r);
                        status = ctl_listing_status(status, s);
                        continue;
                }
                char key_id[SD_KEY_ID_CHARS + 1];
                sd_key_id(info.box_pk, key_id);
                if (json) {
                        json_t *entry = json_pack("{s:s, s:s, s:s, s:b}", "name", list.blobs[i].name,
                                                  "key_id", key_id, "signer", info.signer_id,
                                                  "trusted", trusted);
                        if (!entry || json_array_append_new(array, entry) < 0)
                                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                        continue;
                }
                if (!header) {
                        printf("%-20s  %-16s  %-16s  %s\n", "NAME", "KEY ID", "SIGNER", "TRUST");
                        header = true;
                }
                printf("%-20s  %-16s  %-16s  %s\n", list.blobs[i].name, key_id, info.signer_id,
                       trusted ? "trusted" : "untrusted (ignored by put)");
        }
        if (json) {
                r = ctl_print_json(ctx, array);
                if (r < 0)
                        return r;
        }
        return status;
}

static int recipient_rm(struct ctl_context *ctx, int argc, char **argv) {
        int r = ctl_parse_options(ctx, &ctl_verb_recipient, argc, argv, "", NULL, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, "recipient rm", "expected exactly one NAME");
        const char *name = argv[optind];
        r = ctl_validate_name(ctx, "recipient name", name);
        if (r < 0)
                return r;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, false, &store);
        if (r < 0)
                return r;
        r = sd_store_recipient_remove(store, name, &ctx->err);
        if (r < 0)
                return r;
        printf("recipient %s: removed\n", name);
        return 0;
}

static int cmd_recipient(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "add", recipient_add },
                { "ls", recipient_ls },
                { "rm", recipient_rm },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_recipient, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_recipient = {
        .name = "recipient",
        .summary = "add, list or remove the agents that can decrypt new versions",
        .run = cmd_recipient,
        .help =
        "Usage: secretctl [--store URL] recipient add NAME PUBKEY\n"
        "       secretctl [--store URL] recipient ls [--json]\n"
        "       secretctl [--store URL] recipient rm NAME\n"
        "\n"
        "Recipients are the agents (secretd on each Docker host) that can decrypt\n"
        "secrets.  Each is an entry in the store: a name, the agent's public box\n"
        "key, and the signature of the writer who added it.  'put' seals every new\n"
        "version to you and to every recipient whose entry is signed by you or by\n"
        "a writer you trust; entries signed by anyone else are skipped with a\n"
        "warning naming them.  Versions written before a change keep the\n"
        "recipients they were sealed to: after 'recipient rm', put the secrets\n"
        "again so the removed agent cannot read their new versions.\n"
        "\n"
        "add NAME PUBKEY\n"
        "    Signs an entry for the agent public key PUBKEY (the sda1:... line\n"
        "    'secretd init' and 'secretd pubkey' print; a pasted \"key id HEX\"\n"
        "    tail is checked and accepted) and stores it under NAME, replacing an\n"
        "    entry of that name.\n"
        "    Prints \"recipient NAME: key id HEX\".  Creates a file store that does\n"
        "    not exist.\n"
        "ls [--json]\n"
        "    Lists the entries: name, key id of the agent key, key id of the\n"
        "    writer who signed it, and whether that writer is trusted.  --json\n"
        "    prints an array of objects with name, key_id, signer and trusted.\n"
        "    Malformed entries are reported on standard error, one line each.\n"
        "    For an untrusted entry the signer shown is the one it claims; its\n"
        "    signature is checked once you trust that writer.\n"
        "rm NAME\n"
        "    Removes the entry NAME.\n"
        "\n"
        "NAME follows the rules of secret names: 1 to 128 characters from\n"
        "A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'.\n"
        "\n"
        "Options:\n"
        "  --json       (ls) print JSON instead of a table\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl recipient add host1 sda1:2Xy...\n"
        "  secretctl recipient add host2 \"$(ssh host2 sudo secretd pubkey)\"\n"
        "  secretctl recipient ls\n"
        "  secretctl recipient rm host1\n"
        "\n"
        "Exit status:\n"
        "  0  done\n"
        "  1  system error\n"
        "  2  usage error, invalid name or malformed public key\n"
        "  3  (rm) no such recipient; no identity (add); the store does not exist\n"
        "  5  (ls) at least one entry is malformed or its signature is bad\n",
};
