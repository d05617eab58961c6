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

static json_t *version_json(uint64_t version, const struct sd_envelope_info *info, const sd_error *err) {
        if (err) {
                return json_pack("{s:I, s:s, s:s}", "version", (json_int_t) version, "status", "error",
                                 "error", err->message);
        }
        char created[32];
        ctl_format_time(info->created, created);
        return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s}", "version", (json_int_t) version,
                         "kind", info->tombstone ? "tombstone" : "value",
                         "created", (json_int_t) info->created, "created_utc", created,
                         "writer", info->signer_id, "status", "ok");
}

static int cmd_history(struct ctl_context *ctx, int argc, char **argv) {
        bool json = false;
        int r = ctl_parse_json_option(ctx, &ctl_verb_history, argc, argv, &json);
        if (r != 0)
                return r < 0 ? r : 0;
        const char *name = NULL;
        r = ctl_parse_secret_name(ctx, "history", argc, argv, &name);
        if (r < 0)
                return r;

        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *policy = NULL;
        r = ctl_open_verified(ctx, &store, &policy);
        if (r < 0)
                return r;

        _cleanup_free_ uint64_t *versions = NULL;
        size_t n = 0;
        r = sd_store_history(store, name, &versions, &n, &ctx->err);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *array = json ? json_array() : NULL;
        if (json && !array)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        if (!json)
                printf("%-7s  %-9s  %-20s  %-16s  %s\n", "VERSION", "KIND", "CREATED", "WRITER", "STATUS");

        int status = CTL_EXIT_OK;
        for (size_t i = 0; i < n; i++) {
                struct sd_envelope_info info = { 0 };
                sd_error err = { 0 };
                r = ctl_verify_version(store, policy, name, versions[i], &info, &err);
                if (r < 0) {
                        if (!err.code)
                                (void) sd_error_set(&err, r, "%s", strerror(-r));
                        status = ctl_listing_status(status, ctl_exit_status(r));
                }
                if (json) {
                        json_t *entry = version_json(versions[i], &info, r < 0 ? &err : NULL);
                        if (!entry || json_array_append_new(array, entry) < 0)
                                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                } else if (r < 0) {
                        printf("%-7" PRIu64 "  %-9s  %-20s  %-16s  error: %s\n", versions[i], "-", "-", "-",
                               err.message);
                } else {
                        char created[32];
                        ctl_format_time(info.created, created);
                        printf("%-7" PRIu64 "  %-9s  %-20s  %-16s  ok\n", versions[i],
                               info.tombstone ? "tombstone" : "value", created, info.signer_id);
                }
        }
        if (json) {
                r = ctl_print_json(ctx, array);
                if (r < 0)
                        return r;
        }
        return status;
}

const struct ctl_verb ctl_verb_history = {
        .name = "history",
        .summary = "list every version of a secret and check each one",
        .run = cmd_history,
        .help =
        "Usage: secretctl [--store URL] history NAME [--json]\n"
        "\n"
        "Lists every stored version of the secret NAME, oldest first: the version,\n"
        "its kind (value, or tombstone for a delete), when it was written (the\n"
        "writer's clock, UTC), the key id of its writer, and its status: \"ok\", or\n"
        "\"error: \" and the cause when the version fails verification (bad\n"
        "signature, a writer the realm policy does not allow for the name,\n"
        "another realm, a legacy format-1 envelope, malformed or moved\n"
        "envelope).  Nothing is decrypted and no identity is needed; you must\n"
        "have joined the store's realm.\n"
        "\n"
        "--json prints an array of objects with the keys version, kind, created\n"
        "(unix seconds), created_utc, writer and status (\"ok\"); a failed version\n"
        "has only version, status (\"error\") and error (the cause).\n"
        "\n"
        "Options:\n"
        "  --json       print JSON instead of a table\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl history db_password\n"
        "  secretctl history db_password --json | jq '.[-1].version'\n"
        "\n"
        "Exit status:\n"
        "  0  every version verified\n"
        "  1  system error (store unreadable)\n"
        "  2  usage error or invalid name\n"
        "  3  no such secret, the store does not exist, or you have not joined\n"
        "     its realm\n"
        "  5  at least one version failed verification (all were listed)\n",
};
