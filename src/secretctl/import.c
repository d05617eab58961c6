/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretctl.h"

struct import_options {
        const char *pin;
};

static int import_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct import_options *o = userdata;
        if (opt != 'p')
                return -EINVAL;
        o->pin = arg;
        return 0;
}

/* Which pin vouches for the archive's realm: --pin, else your record for
 * this store, else any of your records for that realm (the store it was
 * exported from). */
static int find_pin(struct ctl_context *ctx, const struct import_options *o, const unsigned char realm[SD_REALM_ID_BYTES],
                    struct sd_realm_pin *out) {
        if (o->pin)
                return sd_realm_pin_parse(o->pin, out, &ctx->err);
        struct sd_realm_record rec;
        sd_error why = { 0 };
        if (sd_realm_record_load(ctx->realm_path, &rec, &why) >= 0 &&
            memcmp(rec.pin.realm, realm, SD_REALM_ID_BYTES) == 0) {
                *out = rec.pin;
                return 0;
        }
        _cleanup_closedir_ DIR *d = opendir(ctx->realms_dir);
        for (struct dirent *de; d && (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", ctx->realms_dir, de->d_name) < 0)
                        return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                if (sd_realm_record_load(path, &rec, &why) >= 0 &&
                    memcmp(rec.pin.realm, realm, SD_REALM_ID_BYTES) == 0) {
                        *out = rec.pin;
                        return 0;
                }
        }
        char shown[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(realm, shown);
        return sd_error_set(&ctx->err, ENOENT,
                            "the archive is of realm %s, which you have not joined: 'secretctl realm join PIN' on the "
                            "store it came from, or give --pin PIN",
                            shown);
}

static int cmd_import(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "pin", required_argument, NULL, 'p' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct import_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_import, argc, argv, "q", options, import_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, "import", "expected one FILE");
        const char *path = argv[optind];

        const char *base;
        _cleanup_close_ int dirfd = sd_open_parent(path, false, 0, &base, &ctx->err);
        if (dirfd < 0)
                return dirfd;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        r = sd_read_file_at(dirfd, base, SD_ARCHIVE_MAX_BYTES, &text, &len, &ctx->err);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "%s", path);
        _cleanup_archive_ struct sd_archive *a = NULL;
        r = sd_archive_parse(text, len, &a, &ctx->err);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "%s", path);
        struct sd_realm_pin pin;
        r = find_pin(ctx, &o, a->realm, &pin);
        if (r < 0)
                return r;

        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, true, &store);
        if (r < 0)
                return r;
        struct sd_realm_record rec;
        r = sd_archive_import(store, a, &pin, &rec, &ctx->err);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "%s", path);
        r = sd_realm_record_save(ctx->realm_path, &rec, ctx->store_url, &ctx->err);
        if (r < 0)
                return r;
        ctl_say(ctx, "%s: %zu policy version(s) and %zu secret version(s) imported into %s (policy v%" PRIu64 ")\n", path,
               a->n_policies, a->n_entries - a->n_policies, ctx->store_url, rec.version);
        return 0;
}

const struct ctl_verb ctl_verb_import = {
        .name = "import",
        .summary = "verify an archive and write it into the store, byte for byte",
        .run = cmd_import,
        .help =
        "Usage: secretctl [--store URL] import FILE [--pin PIN] [--quiet]\n"
        "\n"
        "Reads an archive made by 'secretctl export', verifies all of it, then\n"
        "writes it into the store: every policy version and every secret version\n"
        "with its version number, envelope and signatures unchanged.  Nothing is\n"
        "written unless everything verifies: the policy chain from your pin of the\n"
        "archive's realm (the chain rule for every version), and every envelope\n"
        "against the policy version it was sealed under, bound to its name and\n"
        "version.  A tampered archive is refused naming the entry, e.g.\n"
        "  archive line 12 (secret 'db' version 3): signature ... does not verify\n"
        "\n"
        "The pin comes from --pin, else from your record of this store, else from\n"
        "your record of any store of the same realm (the one exported).  Entries\n"
        "the store already holds must be identical, so an interrupted import can\n"
        "be run again; a differing one is a conflict.  Afterwards you have joined\n"
        "the realm of this store.\n"
        "\n"
        "Options:\n"
        "  --pin PIN    the realm pin to verify the archive with\n"
        "  -q, --quiet  print nothing when the archive was imported\n"
        "  -h, --help   show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl --store etcd://10.0.0.5:2379/prod import /root/store.archive\n"
        "\n"
        "Exit status:\n"
        "  0  imported\n"
        "  1  system error (FILE unreadable, the store unwritable)\n"
        "  2  usage error, a malformed PIN\n"
        "  3  FILE does not exist; no pin for the archive's realm\n"
        "  4  the store already holds a different entry\n"
        "  5  the archive is malformed, tampered, or does not verify from the pin\n",
};
