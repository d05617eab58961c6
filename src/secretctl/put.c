/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "fileio.h"
#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/policy.h"
#include "secretd/secret.h"
#include "secretctl.h"

struct put_options {
        const char *file;
        uint64_t max_size;
};

static int put_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct put_options *o = userdata;
        switch (opt) {
        case 'F':
                o->file = arg;
                return 0;
        case 'M': {
                int r = ctl_parse_u64(ctx, "--max-size", arg, &o->max_size);
                if (r < 0)
                        return r;
                if (o->max_size > SD_VALUE_MAX)
                        return sd_error_set(&ctx->err, EINVAL,
                                            "--max-size %" PRIu64 " is larger than the limit of %zu bytes",
                                            o->max_size, SD_VALUE_MAX);
                return 0;
        }
        default:
                return -EINVAL;
        }
}

/* The terminal state to put back if a signal ends us while echo is off. */
static struct termios saved_termios;
static int saved_tty_fd = -1;

static void restore_tty_and_die(int sig) {
        if (saved_tty_fd >= 0)
                (void) tcsetattr(saved_tty_fd, TCSAFLUSH, &saved_termios);
        (void) signal(sig, SIG_DFL);
        (void) raise(sig);
}

/* One line typed at the terminal with echo off, without its newline.  The
 * line discipline caps a canonical line at 4095 bytes, so a small locked
 * buffer is enough; longer values come through stdin or --file. */
static int tty_read_value(int tty, const char *prompt, size_t max_len, struct sd_secret **out,
                          sd_error *err) {
        enum { TTY_LINE_MAX = 8192 };
        size_t cap = max_len < TTY_LINE_MAX ? max_len : TTY_LINE_MAX;
        _cleanup_secret_ struct sd_secret *buf = NULL;
        if (sd_secret_new(cap + 1, &buf) < 0)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory");

        struct termios quiet;
        if (tcgetattr(tty, &saved_termios) < 0)
                return sd_error_set_errno(err, errno, "/dev/tty: cannot read terminal settings");
        quiet = saved_termios;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        quiet.c_lflag |= ICANON;

        struct sigaction sa = { .sa_handler = restore_tty_and_die }, old[4];
        static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < 4; i++)
                (void) sigaction(sigs[i], &sa, &old[i]);
        saved_tty_fd = tty;

        /* Echo goes off before the prompt appears: TCSAFLUSH discards what
         * was typed ahead, and nothing typed after the prompt is shown. */
        int r = 0;
        if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0)
                r = -errno;
        if (r >= 0)
                r = sd_write_all(tty, prompt, strlen(prompt));

        size_t len = 0;
        bool newline = false;
        while (r >= 0 && !newline) {
                unsigned char c;
                ssize_t n = read(tty, &c, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (n == 0 || c == '\n')
                        newline = true;
                else if (len >= cap)
                        r = -EFBIG;
                else
                        buf->data[len++] = c;
        }

        (void) tcsetattr(tty, TCSAFLUSH, &saved_termios);
        saved_tty_fd = -1;
        for (size_t i = 0; i < 4; i++)
                (void) sigaction(sigs[i], &old[i], NULL);
        /* Echo was off, so the user's Enter did not move the cursor. */
        (void) sd_write_all(tty, "\n", 1);

        if (r == -EFBIG)
                return sd_error_set(err, EFBIG,
                                    "terminal input: value is larger than the limit of %zu bytes; pipe it on standard input or use --file",
                                    cap);
        if (r < 0)
                return sd_error_set_errno(err, -r, "/dev/tty: cannot read the value");

        struct sd_secret *value;
        if (sd_secret_new_from(buf->data, len, &value) < 0)
                return sd_error_set(err, ENOMEM, "cannot allocate locked memory");
        *out = value;
        return 0;
}

static int prompt_value(struct ctl_context *ctx, const char *name, size_t max_len, struct sd_secret **out) {
        _cleanup_close_ int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (tty < 0)
                return sd_error_set_errno(&ctx->err, errno,
                                          "standard input is a terminal but /dev/tty cannot be opened; pipe the value or use --file");

        char prompt[SD_NAME_MAX + 32];
        _cleanup_secret_ struct sd_secret *first = NULL, *second = NULL;
        (void) snprintf(prompt, sizeof(prompt), "Value for %s: ", name);
        int r = tty_read_value(tty, prompt, max_len, &first, &ctx->err);
        if (r < 0)
                return r;
        if (first->len == 0)
                return sd_error_set(&ctx->err, EINVAL, "terminal input: value is empty; refusing to store an empty secret");
        (void) snprintf(prompt, sizeof(prompt), "Again, to confirm: ");
        r = tty_read_value(tty, prompt, max_len, &second, &ctx->err);
        if (r < 0)
                return r;
        if (!sd_secret_equal(first, second))
                return sd_error_set(&ctx->err, EINVAL, "terminal input: the two values do not match; nothing stored");
        *out = steal_pointer(&first);
        return 0;
}

static int read_value(struct ctl_context *ctx, const struct put_options *o, const char *name,
                      size_t max_len, struct sd_secret **out) {
        _cleanup_secret_ struct sd_secret *value = NULL;
        const char *what;
        int r;

        if (o->file && strcmp(o->file, "-") != 0) {
                what = o->file;
                _cleanup_close_ int fd = open(o->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return sd_error_set_errno(&ctx->err, errno, "%s: cannot open", o->file);
                r = sd_secret_read_fd(fd, max_len, what, &value, &ctx->err);
        } else if (!o->file && isatty(STDIN_FILENO)) {
                what = "terminal input";
                r = prompt_value(ctx, name, max_len, &value);
        } else {
                what = "standard input";
                r = sd_secret_read_fd(STDIN_FILENO, max_len, what, &value, &ctx->err);
        }
        if (r < 0)
                return r;
        if (value->len == 0)
                return sd_error_set(&ctx->err, EINVAL, "%s: value is empty; refusing to store an empty secret", what);
        *out = steal_pointer(&value);
        return 0;
}

int ctl_writer_open(struct ctl_context *ctx, struct ctl_writer *w) {
        return ctl_open_signer(ctx, &w->key, &w->store, &w->policy);
}

void ctl_writer_close(struct ctl_writer *w) {
        sd_writer_key_free(w->key);
        sd_policy_unref(w->policy);
        sd_store_free(w->store);
        *w = (struct ctl_writer) { 0 };
}

int ctl_writer_check(struct ctl_context *ctx, struct ctl_writer *w, const char *name) {
        int r = ctl_validate_name(ctx, "secret name", name);
        if (r < 0)
                return r;
        return ctl_write_refusal(ctx, sd_policy_check_write(w->policy, w->key->pub.sign_pk, name, true, &ctx->err));
}

int ctl_writer_put(struct ctl_context *ctx, struct ctl_writer *w, const char *name, const struct sd_secret *value,
                   size_t max_len, uint64_t *version_out) {
        struct sd_put_options put_opts = {
                .max_len = max_len,
                .warn = ctl_warn,
                .warn_userdata = ctx,
        };
        return sd_secret_put(w->store, w->key, w->policy, name, value, &put_opts, version_out, &ctx->err);
}

static int cmd_put(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "file", required_argument, NULL, 'F' },
                { "max-size", required_argument, NULL, 'M' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct put_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_put, argc, argv, "q", options, put_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind == argc)
                return ctl_usage_error(ctx, "put", "missing NAME");
        /* Never echo the extra argument: it is most likely the value. */
        if (argc - optind > 1)
                return ctl_usage_error(ctx, "put",
                                       "too many arguments; values are read from standard input or --file, never from the command line");
        const char *name = argv[optind];
        r = ctl_validate_name(ctx, "secret name", name);
        if (r < 0)
                return r;
        size_t max_len = o.max_size ? (size_t) o.max_size : SD_VALUE_MAX;

        /* Everything that can fail without the value fails before the user
         * is asked to type it, the policy's rules included. */
        _cleanup_ctl_writer_ struct ctl_writer writer = { 0 };
        r = ctl_writer_open(ctx, &writer);
        if (r < 0)
                return r;
        r = ctl_writer_check(ctx, &writer, name);
        if (r < 0)
                return r;

        _cleanup_secret_ struct sd_secret *value = NULL;
        r = read_value(ctx, &o, name, max_len, &value);
        if (r < 0)
                return r;

        uint64_t version = 0;
        r = ctl_writer_put(ctx, &writer, name, value, max_len, &version);
        if (r < 0)
                return r;
        ctl_say(ctx, "%s: version %" PRIu64 "\n", name, version);
        return 0;
}

const struct ctl_verb ctl_verb_put = {
        .name = "put",
        .summary = "store a new version of a secret, read from standard input",
        .run = cmd_put,
        .help =
        "Usage: secretctl [--store URL] put NAME [--file PATH] [--max-size BYTES] [--quiet] < VALUE\n"
        "\n"
        "Stores a new version of the secret NAME.  The value is read from standard\n"
        "input until end of file, or from PATH with --file; it is never taken from\n"
        "the command line, where other users could see it.  The value is taken\n"
        "byte for byte (a trailing newline is kept; use printf %s, not echo).\n"
        "\n"
        "When standard input is a terminal, secretctl asks for the value on\n"
        "/dev/tty with echo turned off, then asks again to confirm it; a typed\n"
        "value is one line (the newline is not part of it).\n"
        "\n"
        "The value is encrypted with a fresh data key that is sealed to you, to\n"
        "every recipient (agent) whose patterns in the realm policy cover NAME,\n"
        "and to the realm's admins (so they can reseal), signed with your\n"
        "identity, and stored as the next version.  The store's policy chain is\n"
        "verified from your realm record first (see 'secretctl realm').  A\n"
        "concurrent writer is handled by re-reading the latest version and\n"
        "retrying.\n"
        "\n"
        "The policy decides before the value is read, and nothing is stored when\n"
        "it refuses: you must be an admin or a writer of the realm, NAME must\n"
        "match one of your writer patterns, and at least one recipient's\n"
        "patterns must cover NAME (a put no host could open is an error).\n"
        "\n"
        "NAME is 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter\n"
        "or a digit and never containing '..'.  An empty value is refused; values\n"
        "over 1 MiB (1048576 bytes) are refused.\n"
        "\n"
        "Prints \"NAME: version N\".\n"
        "\n"
        "Options:\n"
        "  --file PATH         read the value from PATH instead of standard input\n"
        "                      ('-' means standard input)\n"
        "  --max-size BYTES    refuse values larger than BYTES (at most 1048576)\n"
        "  -q, --quiet         print nothing when the version was stored\n"
        "  -h, --help          show this help\n"
        "\n"
        "Examples:\n"
        "  printf %s \"$PW\" | secretctl put db_password\n"
        "  secretctl put tls_key --file ./server.key\n"
        "  secretctl put api_token            (asks twice, without echo)\n"
        "\n"
        "Exit status:\n"
        "  0  the version was stored\n"
        "  1  system error (store not writable, I/O)\n"
        "  2  usage error, invalid name, empty value, value too large, the two\n"
        "     typed values differ, or an extra argument (values never come from argv)\n"
        "  3  no identity ('secretctl keygen'), no store, or you have not joined\n"
        "     the store's realm ('secretctl realm join PIN')\n"
        "  4  concurrent writers kept winning after every retry\n"
        "  5  the store's policy chain does not verify (tampered, rolled back,\n"
        "     another realm)\n"
        "  7  you are not a writer in the realm policy\n"
        "  8  NAME is outside the patterns you may write\n"
        "  9  no recipient of the realm may receive NAME\n",
};
