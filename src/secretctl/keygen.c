/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "secretd/cleanup.h"
#include "secretd/keys.h"
#include "secretctl.h"

struct keygen_options {
        bool force;
};

static int keygen_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct keygen_options *o = userdata;
        if (opt == 'f')
                o->force = true;
        return 0;
}

static int cmd_keygen(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "force", no_argument, NULL, 'f' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct keygen_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_keygen, argc, argv, "fq", options, keygen_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "keygen", "takes no arguments");

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        r = sd_writer_key_generate(&key, &ctx->err);
        if (r < 0)
                return r;
        r = sd_writer_key_save(key, ctx->identity_path, o.force, &ctx->err);
        if (r == -EEXIST)
                return sd_error_set(&ctx->err, EEXIST,
                                    "identity %s already exists; pass --force to replace it",
                                    ctx->identity_path);
        if (r < 0)
                return r;

        return ctl_print_identity_line(ctx, &key->pub);
}

const struct ctl_verb ctl_verb_keygen = {
        .name = "keygen",
        .summary = "create your writer identity (signing and encryption keys)",
        .run = cmd_keygen,
        .help =
        "Usage: secretctl [--identity PATH] keygen [--force] [--quiet]\n"
        "\n"
        "Creates a writer identity: an Ed25519 signing key, with which every\n"
        "envelope you write is signed, and an X25519 box key, so that you can read\n"
        "back what you wrote.  The private keys are written to the identity file\n"
        "(mode 0600, its directory created 0700) by writing a temporary file and\n"
        "renaming it into place.\n"
        "\n"
        "Prints your public identity line, the same line 'secretctl whoami' prints:\n"
        "\n"
        "  sdw1:<base64url of the two public keys>  key id <16 hex digits>\n"
        "\n"
        "The key id is how messages, 'ls', 'history' and the realm policy name\n"
        "you.  Give the line to a realm admin, who adds you with 'secretctl writer\n"
        "add NAME LINE' (or 'secretctl admin add').\n"
        "\n"
        "Options:\n"
        "  -f, --force   replace an existing identity.  Versions sealed to the old\n"
        "                one can no longer be read by you, and the realm policy\n"
        "                knows the new one only once an admin adds it.\n"
        "  -q, --quiet   print nothing ('secretctl whoami' prints the line later)\n"
        "  -h, --help    show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl keygen\n"
        "  secretctl --identity ./ci-identity keygen\n"
        "\n"
        "Exit status:\n"
        "  0  the identity was written\n"
        "  1  the identity file could not be written\n"
        "  2  usage error\n"
        "  4  an identity already exists and --force was not given\n",
};
