/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "secretd/cleanup.h"
#include "secretd/envelope.h"
#include "secretd/store.h"
#include "secretctl.h"

struct listed_names {
        struct sd_store_name *names;
        size_t n;
};

static void listed_names_free(struct listed_names *l) {
        sd_store_names_free(l->names, l->n);
}

static int cmd_ls(struct ctl_context *ctx, int argc, char **argv) {
        bool json = false;
        int r = ctl_parse_json_option(ctx, &ctl_verb_ls, argc, argv, &json);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "ls", "takes no arguments");

        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *policy = NULL;
        r = ctl_open_verified(ctx, &store, &policy);
        if (r < 0)
                return r;

        _cleanup_(listed_names_free) struct listed_names listed = { 0 };
        r = sd_store_list(store, &listed.names, &listed.n, &ctx->err);
        if (r < 0)
                return r;

        _cleanup_free_ struct sd_envelope_info *infos = calloc(listed.n ? listed.n : 1, sizeof(*infos));
        _cleanup_free_ bool *good = calloc(listed.n ? listed.n : 1, sizeof(*good));
        if (!infos || !good)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");

        int status = CTL_EXIT_OK;
        size_t name_width = 4;
        for (size_t i = 0; i < listed.n; i++) {
                sd_error err = { 0 };
                r = ctl_verify_version(store, policy, listed.names[i].name, listed.names[i].latest,
                                       &infos[i], &err);
                if (r < 0) {
                        int s = ctl_report_entry_failure("secret", listed.names[i].name,
                                                         listed.names[i].latest, &err, r);
                        status = ctl_listing_status(status, s);
                        continue;
                }
                good[i] = true;
                size_t w = strlen(listed.names[i].name);
                if (w > name_width)
                        name_width = w;
        }

        if (json) {
                _cleanup_json_ json_t *array = json_array();
                if (!array)
                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                for (size_t i = 0; i < listed.n; i++) {
                        if (!good[i])
                                continue;
                        char created[32];
                        ctl_format_time(infos[i].created, created);
                        json_t *entry = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s}",
                                                  "name", listed.names[i].name,
                                                  "version", (json_int_t) infos[i].version,
                                                  "state", infos[i].tombstone ? "deleted" : "active",
                                                  "writer", infos[i].signer_id,
                                                  "created", (json_int_t) infos[i].created,
                                                  "created_utc", created);
                        if (!entry || json_array_append_new(array, entry) < 0)
                                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                }
                r = ctl_print_json(ctx, array);
                if (r < 0)
                        return r;
                return status;
        }

        bool header = false;
        for (size_t i = 0; i < listed.n; i++) {
                if (!good[i])
                        continue;
                if (!header) {
                        printf("%-*s  %-7s  %-7s  %-16s  %s\n", (int) name_width, "NAME", "VERSION",
                               "STATE", "WRITER", "CREATED");
                        header = true;
                }
                char created[32];
                ctl_format_time(infos[i].created, created);
                printf("%-*s  %-7" PRIu64 "  %-7s  %-16s  %s\n", (int) name_width, listed.names[i].name,
                       infos[i].version, infos[i].tombstone ? "deleted" : "active", infos[i].signer_id,
                       created);
        }
        return status;
}

const struct ctl_verb ctl_verb_ls = {
        .name = "ls",
        .summary = "list secrets with their latest version, state and writer",
        .run = cmd_ls,
        .help =
        "Usage: secretctl [--store URL] ls [--json]\n"
        "\n"
        "Lists every secret in the store, sorted by name, with its latest version,\n"
        "its state (active, or deleted when the latest version is a tombstone), the\n"
        "key id of the writer that signed that version, and when it was written\n"
        "(the writer's clock, UTC).  Nothing is decrypted and no identity is\n"
        "needed; you must have joined the store's realm.\n"
        "\n"
        "Every listed version is verified against the realm policy: it belongs to\n"
        "the realm, its writer may write the name, its signature holds, and it is\n"
        "bound to its name and version (a legacy format-1 envelope is reported as\n"
        "needing 'secretctl reseal').  An entry that fails is reported on\n"
        "standard error, one line naming the secret and the cause, and the\n"
        "others are still listed.\n"
        "\n"
        "Text output has a header line and one line per secret:\n"
        "  NAME  VERSION  STATE  WRITER  CREATED\n"
        "--json prints an array of objects with the keys name, version, state\n"
        "(\"active\" or \"deleted\"), writer (key id), created (unix seconds) and\n"
        "created_utc.\n"
        "\n"
        "Options:\n"
        "  --json       print JSON instead of a table\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl ls\n"
        "  secretctl ls --json | jq -r '.[] | select(.state == \"active\") | .name'\n"
        "\n"
        "Exit status:\n"
        "  0  every secret was listed\n"
        "  1  system error (store unreadable)\n"
        "  2  usage error\n"
        "  3  the store does not exist, or you have not joined its realm\n"
        "  5  at least one secret failed verification (the others were listed),\n"
        "     or the policy chain does not verify\n",
};
