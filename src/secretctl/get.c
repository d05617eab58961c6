/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/secret.h"
#include "secretctl.h"

struct get_options {
        uint64_t version;
        bool force_tty;
};

static int get_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct get_options *o = userdata;
        switch (opt) {
        case 'v':
                return ctl_parse_u64(ctx, "--version", arg, &o->version);
        case 'T':
                o->force_tty = true;
                return 0;
        default:
                return -EINVAL;
        }
}

static int cmd_get(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "version", required_argument, NULL, 'v' },
                { "force-tty", no_argument, NULL, 'T' },
                { NULL, 0, NULL, 0 },
        };
        struct get_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_get, argc, argv, "", options, get_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        const char *name = NULL;
        r = ctl_parse_secret_name(ctx, "get", argc, argv, &name);
        if (r < 0)
                return r;

        /* A value on a terminal lands in its scrollback and over shoulders. */
        if (!o.force_tty && isatty(STDOUT_FILENO))
                return sd_error_set(&ctx->err, EINVAL,
                                    "refusing to print secret '%s' to a terminal; redirect standard output or pass --force-tty",
                                    name);

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        _cleanup_trust_ struct sd_trust *trust = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_as_writer(ctx, false, &key, &trust, &store);
        if (r < 0)
                return r;

        _cleanup_secret_ struct sd_secret *value = NULL;
        r = sd_secret_fetch(store, trust, key->pub.box_pk, key->box_sk, name, o.version, 0, &value,
                            NULL, &ctx->err);
        if (r < 0)
                return r;
        if (!value)
                return sd_error_set(&ctx->err, ENOENT, "secret '%s' was deleted", name);

        /* Straight from locked memory to the fd: stdio would copy the value
         * into an ordinary heap buffer. */
        r = sd_write_all(STDOUT_FILENO, value->data, value->len);
        if (r < 0)
                return sd_error_set_errno(&ctx->err, -r, "cannot write secret '%s' to standard output", name);
        return 0;
}

const struct ctl_verb ctl_verb_get = {
        .name = "get",
        .summary = "decrypt a secret and write its value to standard output",
        .run = cmd_get,
        .help =
        "Usage: secretctl [--store URL] get NAME [--version N] [--force-tty] > FILE\n"
        "\n"
        "Fetches the latest version of the secret NAME (or version N), checks that\n"
        "it is signed by you or by a writer you trust, that it is really version N\n"
        "of NAME, decrypts it with your identity's box key, and writes the value\n"
        "to standard output exactly as stored: no newline is added.\n"
        "\n"
        "You can read a secret when you are one of its recipients, which is always\n"
        "true for the secrets you wrote yourself.\n"
        "\n"
        "To keep values out of terminal scrollback, get refuses to write to a\n"
        "terminal unless --force-tty is given.\n"
        "\n"
        "Options:\n"
        "  --version N    read version N instead of the latest\n"
        "  --force-tty    write the value even when standard output is a terminal\n"
        "  -h, --help     show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl get db_password > /run/user/1000/db_password\n"
        "  secretctl get db_password --version 2 | sha256sum\n"
        "\n"
        "Exit status:\n"
        "  0  the value was written\n"
        "  1  system error (store unreadable, standard output closed)\n"
        "  2  usage error, invalid name, or standard output is a terminal\n"
        "  3  no such secret or version, the secret was deleted, no identity,\n"
        "     or the store does not exist\n"
        "  5  verification failed: bad signature, untrusted writer, tampered\n"
        "     envelope, or an envelope stored under the wrong name or version\n"
        "  6  you are not a recipient of this version\n",
};
