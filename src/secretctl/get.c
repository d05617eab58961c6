/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/envelope.h"
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
        r = ctl_load_identity(ctx, &key);
        if (r < 0)
                return r;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, false, &store);
        if (r < 0)
                return r;
        _cleanup_realm_ struct sd_realm *realm = NULL;
        r = ctl_open_realm(ctx, store, &realm);
        if (r < 0)
                return r;

        const struct sd_box_keypair kp = { key->pub.box_pk, key->box_sk };
        _cleanup_secret_ struct sd_secret *value = NULL;
        struct sd_envelope_info info = { 0 };
        r = sd_secret_fetch(realm, &kp, 1, name, o.version, 0, &value, &info, &ctx->err);
        if (r == -ENOKEY) {
                /* The library names the box key it tried; a writer is
                 * known by its signing key's id (whoami, ls, policy). */
                char id[SD_KEY_ID_CHARS + 1];
                sd_key_id(key->pub.sign_pk, id);
                return sd_error_set(&ctx->err, ENOKEY,
                                    "secret '%s' version %" PRIu64 ": not sealed to you (%s); a version is sealed to "
                                    "its writer, the realm's admins and the recipients whose patterns cover the name",
                                    name, info.version, id);
        }
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
        "Fetches the latest version of the secret NAME (or version N), verifies it\n"
        "against the realm policy (it belongs to your realm, its writer may write\n"
        "NAME, its signature holds, it is really version N of NAME), decrypts it\n"
        "with your identity's box key, and writes the value to standard output\n"
        "exactly as stored: no newline is added.  An envelope that names a newer\n"
        "policy version than you verified makes secretctl walk the chain again.\n"
        "\n"
        "You can read a secret when you are one of its recipients: always for the\n"
        "secrets you wrote yourself, and for every secret when you are an admin.\n"
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
        "     the store does not exist, or you have not joined its realm\n"
        "  5  verification failed: bad signature, a writer the policy does not\n"
        "     allow, another realm, tampered envelope or policy, an envelope\n"
        "     stored under the wrong name or version, a legacy format-1 envelope\n"
        "  6  you are not a recipient of this version\n",
};
