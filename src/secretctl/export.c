/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretctl.h"

static int cmd_export(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        int r = ctl_parse_options(ctx, &ctl_verb_export, argc, argv, "q", options, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, "export", "expected one FILE");
        const char *path = argv[optind];

        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, false, &store);
        if (r < 0)
                return r;
        struct sd_realm_record rec;
        r = ctl_load_record(ctx, &rec);
        if (r < 0)
                return r;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        r = sd_archive_export(store, &rec, &text, &len, &ctx->err);
        if (r < 0)
                return r;

        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, &ctx->err);
        if (dirfd < 0)
                return dirfd;
        r = sd_write_file_at(dirfd, base, text, len, 0600, 0, &ctx->err);
        if (r == -EEXIST)
                return sd_error_set(&ctx->err, EEXIST, "%s already exists; export writes a new file", path);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "%s", path);
        _cleanup_archive_ struct sd_archive *a = NULL;
        r = sd_archive_parse(text, len, &a, &ctx->err);
        if (r < 0)
                return r;
        ctl_say(ctx, "%s: %zu policy version(s) and %zu secret version(s) exported\n", path, a->n_policies,
               a->n_entries - a->n_policies);
        return 0;
}

const struct ctl_verb ctl_verb_export = {
        .name = "export",
        .summary = "write every envelope, version and the policy chain to an archive file",
        .run = cmd_export,
        .help =
        "Usage: secretctl [--store URL] export FILE [--quiet]\n"
        "\n"
        "Writes an archive of the store to FILE (a new file, mode 0600): every\n"
        "version of the realm policy and every version of every secret, byte for\n"
        "byte as stored.  It holds ciphertext only -- envelopes are already\n"
        "encrypted and signed -- so no identity is needed, only your realm record.\n"
        "Everything is verified first, exactly as 'import' will: an entry that\n"
        "does not verify stops the export, named.\n"
        "\n"
        "The archive is text, one JSON object per line: a header\n"
        "  {\"format\":1,\"kind\":\"secretd-archive\",\"realm\":\"...\",\"created\":N,\"entries\":E}\n"
        "then the policy versions in order\n"
        "  {\"kind\":\"policy\",\"version\":1,\"data\":\"<the stored document, base64>\"}\n"
        "then every secret, sorted by name, each version in order\n"
        "  {\"kind\":\"envelope\",\"name\":\"db\",\"version\":1,\"data\":\"<the envelope, base64>\"}\n"
        "\n"
        "Use it to move a store (a file store to etcd) or to keep a copy.\n"
        "\n"
        "Prints \"FILE: K policy version(s) and M secret version(s) exported\".\n"
        "\n"
        "Options:\n"
        "  -q, --quiet  print nothing when the archive was written\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl --store file:///var/lib/secretd/store export /root/store.archive\n"
        "  secretctl --store etcd://10.0.0.5:2379/prod import /root/store.archive\n"
        "\n"
        "Exit status:\n"
        "  0  written\n"
        "  1  system error (the store or FILE unreadable or unwritable)\n"
        "  2  usage error\n"
        "  3  the store does not exist, or you have not joined its realm\n"
        "  4  FILE already exists\n"
        "  5  an entry or the policy chain does not verify\n",
};
