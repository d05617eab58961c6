/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretctl.h"

static int print_pin_of(struct ctl_context *ctx, const struct sd_policy *p, FILE *f) {
        struct sd_realm_pin pin;
        sd_realm_pin_of(p, &pin);
        _cleanup_free_ char *line = NULL;
        if (sd_realm_pin_format(&pin, &line) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        fprintf(f, "%s\n", line);
        return 0;
}

/* ---- init ---- */

struct init_options {
        const char *name;
};

static int init_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct init_options *o = userdata;
        if (opt != 'n')
                return -EINVAL;
        o->name = arg;
        return ctl_validate_name(ctx, "admin name", arg);
}

static int realm_init(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "name", required_argument, NULL, 'n' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct init_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_realm, argc, argv, "q", options, init_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "realm init", "takes no arguments");
        char name[SD_NAME_MAX + 1];
        if (o.name)
                (void) snprintf(name, sizeof(name), "%s", o.name);
        else
                ctl_default_entry_name(name);

        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        r = ctl_load_identity(ctx, &key);
        if (r < 0)
                return r;
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, true, &store);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = ctl_create_realm(ctx, store, key, name, &p);
        if (r < 0)
                return r;

        return ctl_say_realm_created(ctx, store, p, name);
}

/* ---- show, pin ---- */

static void say_line(void *userdata, const char *line) {
        ctl_say(userdata, "  %s\n", line);
}

static void add_line(void *userdata, const char *line) {
        (void) json_array_append_new(userdata, json_string(line));
}

/* The pending proposal for the next version, or NULL. */
static int load_proposal(struct ctl_context *ctx, struct sd_store *store, const struct sd_policy *cur,
                         struct sd_policy **out) {
        *out = NULL;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sd_error why = { 0 };
        uint64_t next = sd_policy_version(cur) + 1;
        int r = sd_store_proposal_get(store, next, &data, &len, &why);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                ctx->err = why;
                return r;
        }
        r = sd_policy_parse(data, len, out, &ctx->err);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "the proposal for policy v%" PRIu64, next);
        if (memcmp(sd_policy_realm(*out), sd_policy_realm(cur), SD_REALM_ID_BYTES) != 0 ||
            sd_policy_version(*out) != next) {
                sd_policy_unrefp(out);
                return sd_error_set(&ctx->err, EBADMSG,
                                    "the proposal stored for policy v%" PRIu64 " is not a next version of this realm's "
                                    "policy: drop it with 'secretctl realm sign --discard'",
                                    next);
        }
        return 0;
}

static int show_json(struct ctl_context *ctx, const struct sd_policy *p, const struct sd_policy *proposal) {
        char hex[SD_REALM_ID_BYTES * 2 + 1], created[32];
        sodium_bin2hex(hex, sizeof(hex), sd_policy_realm(p), SD_REALM_ID_BYTES);
        ctl_format_time(sd_policy_created(p), created);
        json_t *lists[3];
        for (int l = 0; l < 3; l++) {
                lists[l] = json_array();
                for (size_t i = 0; lists[l] && i < sd_policy_count(p, (enum sd_policy_list) l); i++)
                        (void) json_array_append_new(lists[l], ctl_policy_entry_json((enum sd_policy_list) l,
                                                                                     sd_policy_get(p, (enum sd_policy_list) l, i)));
        }
        json_t *prop = json_null();
        if (proposal) {
                json_t *changes = json_array();
                sd_policy_describe_changes(p, proposal, add_line, changes);
                json_decref(prop);
                prop = json_pack("{s:I, s:I, s:I, s:o}", "version", (json_int_t) sd_policy_version(proposal),
                                 "signatures_by_current_admins",
                                 (json_int_t) sd_policy_count_signatures(proposal, p), "signatures_by_its_admins",
                                 (json_int_t) sd_policy_count_signatures(proposal, proposal), "changes", changes);
        }
        _cleanup_json_ json_t *root = json_pack("{s:s, s:I, s:I, s:s, s:i, s:o, s:o, s:o, s:o}", "realm", hex, "version",
                                                (json_int_t) sd_policy_version(p), "created",
                                                (json_int_t) sd_policy_created(p), "created_utc", created, "threshold",
                                                (int) sd_policy_threshold(p), "admins", lists[0], "writers", lists[1],
                                                "recipients", lists[2], "proposal", prop);
        if (!root)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        return ctl_print_json(ctx, root);
}

static int realm_show(struct ctl_context *ctx, int argc, char **argv) {
        bool json = false;
        int r = ctl_parse_json_option(ctx, &ctl_verb_realm, argc, argv, &json);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "realm show", "takes no arguments");
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = ctl_open_verified(ctx, &store, &p);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *proposal = NULL;
        r = load_proposal(ctx, store, p, &proposal);
        if (r < 0)
                return r;
        if (json)
                return show_json(ctx, p, proposal);

        char hex[SD_REALM_ID_BYTES * 2 + 1], created[32];
        sodium_bin2hex(hex, sizeof(hex), sd_policy_realm(p), SD_REALM_ID_BYTES);
        ctl_format_time(sd_policy_created(p), created);
        printf("realm      %s\n", hex);
        printf("store      %s\n", ctx->store_url);
        printf("policy     v%" PRIu64 " (%s)\n", sd_policy_version(p), created);
        printf("threshold  %u of %zu admin(s)\n\n", sd_policy_threshold(p), sd_policy_count(p, SD_POLICY_ADMINS));
        static const char *const titles[] = { "Admins:", "Writers:", "Recipients:" };
        for (int l = 0; l < 3; l++) {
                printf("%s\n", titles[l]);
                if (sd_policy_count(p, (enum sd_policy_list) l) == 0)
                        printf("  (none)\n");
                r = ctl_print_policy_list(ctx, p, (enum sd_policy_list) l, false);
                if (r < 0)
                        return r;
                printf("\n");
        }
        if (proposal) {
                printf("Pending proposal v%" PRIu64 " (signed by %zu admin(s) of v%" PRIu64 " of %u needed, %zu of its own of %u):\n",
                       sd_policy_version(proposal), sd_policy_count_signatures(proposal, p), sd_policy_version(p),
                       sd_policy_threshold(p), sd_policy_count_signatures(proposal, proposal),
                       sd_policy_threshold(proposal));
                sd_policy_describe_changes(p, proposal, say_line, ctx);
        }
        return 0;
}

static int realm_pin(struct ctl_context *ctx, int argc, char **argv) {
        int r = ctl_parse_options(ctx, &ctl_verb_realm, argc, argv, "", NULL, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "realm pin", "takes no arguments");
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = ctl_open_verified(ctx, &store, &p);
        if (r < 0)
                return r;
        return print_pin_of(ctx, p, stdout);
}

/* ---- join ---- */

static int realm_join(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        int r = ctl_parse_options(ctx, &ctl_verb_realm, argc, argv, "q", options, NULL, NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, "realm join", "expected one PIN (sdr1:...)");
        struct sd_realm_record rec = { 0 };
        r = sd_realm_pin_parse(argv[optind], &rec.pin, &ctx->err);
        if (r < 0)
                return r;
        /* Joining again keeps the highest version verified so far: a pin
         * pasted anew must not reopen the door to a rollback. */
        struct sd_realm_record old;
        sd_error why = { 0 };
        if (sd_realm_record_load(ctx->realm_path, &old, &why) >= 0 &&
            memcmp(old.pin.realm, rec.pin.realm, SD_REALM_ID_BYTES) == 0) {
                rec.version = old.version;
                memcpy(rec.digest, old.digest, SD_POLICY_DIGEST_BYTES);
        }
        _cleanup_store_ struct sd_store *store = NULL;
        r = ctl_open_store(ctx, false, &store);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *p = NULL;
        struct sd_realm_record now;
        r = sd_realm_walk(store, &rec, NULL, NULL, &p, &now, &ctx->err);
        if (r < 0)
                return sd_error_prefix(&ctx->err, r, "cannot join: the store's policy does not verify from this pin");
        r = sd_realm_record_save(ctx->realm_path, &now, ctx->store_url, &ctx->err);
        if (r < 0)
                return r;
        char realm[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(sd_policy_realm(p), realm);
        ctl_say(ctx, "joined realm %s of %s at policy v%" PRIu64 " (%zu admin(s), %zu writer(s), %zu recipient(s))\n", realm,
               ctx->store_url, sd_policy_version(p), sd_policy_count(p, SD_POLICY_ADMINS),
               sd_policy_count(p, SD_POLICY_WRITERS), sd_policy_count(p, SD_POLICY_RECIPIENTS));
        return 0;
}

/* ---- sign ---- */

struct sign_options {
        bool discard;
};

static int sign_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct sign_options *o = userdata;
        if (opt != 'd')
                return -EINVAL;
        o->discard = true;
        return 0;
}

static int realm_sign(struct ctl_context *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "discard", no_argument, NULL, 'd' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        struct sign_options o = { 0 };
        int r = ctl_parse_options(ctx, &ctl_verb_realm, argc, argv, "q", options, sign_option, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, "realm sign", "takes no arguments");
        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *cur = NULL;
        r = ctl_open_signer(ctx, &key, &store, &cur);
        if (r < 0)
                return r;
        uint64_t next = sd_policy_version(cur) + 1;
        if (o.discard) {
                r = sd_store_proposal_remove(store, next, &ctx->err);
                if (r == -ENOENT)
                        return sd_error_set(&ctx->err, ENOENT, "no proposal for policy v%" PRIu64 " to discard", next);
                if (r < 0)
                        return r;
                ctl_say(ctx, "proposal for policy v%" PRIu64 " discarded\n", next);
                return 0;
        }
        _cleanup_policy_ struct sd_policy *proposal = NULL;
        r = load_proposal(ctx, store, cur, &proposal);
        if (r < 0)
                return r;
        if (!proposal)
                return sd_error_set(&ctx->err, ENOENT, "nothing to sign: no proposal for policy v%" PRIu64 " is pending",
                                    next);
        if (!sd_policy_is_admin(cur, key->pub.sign_pk) && !sd_policy_is_admin(proposal, key->pub.sign_pk)) {
                ctx->exit_status = CTL_EXIT_NOT_WRITER;
                return sd_error_set(&ctx->err, EPERM, "you are an admin of neither policy v%" PRIu64 " nor the proposed v%" PRIu64,
                                    sd_policy_version(cur), next);
        }
        r = ctl_publish_policy(ctx, store, key, cur, proposal);
        return r < 0 ? r : 0;
}

static int cmd_realm(struct ctl_context *ctx, int argc, char **argv) {
        static const struct ctl_subverb subverbs[] = {
                { "init", realm_init },
                { "show", realm_show },
                { "pin", realm_pin },
                { "join", realm_join },
                { "sign", realm_sign },
        };
        return ctl_dispatch_subverb(ctx, &ctl_verb_realm, subverbs, SD_ARRAY_SIZE(subverbs), argc, argv);
}

const struct ctl_verb ctl_verb_realm = {
        .name = "realm",
        .summary = "create, show, pin, join a store's realm; sign policy proposals",
        .run = cmd_realm,
        .help =
        "Usage: secretctl [--store URL] realm init [--name NAME] [--quiet]\n"
        "       secretctl [--store URL] realm show [--json]\n"
        "       secretctl [--store URL] realm pin\n"
        "       secretctl [--store URL] realm join PIN [--quiet]\n"
        "       secretctl [--store URL] realm sign [--discard] [--quiet]\n"
        "\n"
        "A realm is a store's trust root: one signed, versioned policy kept in the\n"
        "store that names its admins (and how many of them must sign a change),\n"
        "its writers with the secret names each may write, and its recipients\n"
        "(agent keys) with the names each may receive.  Hosts and developers trust\n"
        "it through a PIN, one line holding the realm id and the admins' keys;\n"
        "secretctl keeps your pin and the highest policy version you verified in\n"
        "$XDG_CONFIG_HOME/secretctl/realms/, and refuses a store that offers an\n"
        "older version, a different one under the same number, or a change not\n"
        "signed by enough admins (docs/trust.md).\n"
        "\n"
        "init [--name NAME]\n"
        "    Creates policy version 1 of a new realm in the store: you are its\n"
        "    admin (named NAME, by default your login name), threshold 1, and a\n"
        "    writer of every name.  It migrates what came before: the writers of\n"
        "    your trusted file become writers of every name, and the store's\n"
        "    recipient entries that verify against your trust become recipients\n"
        "    of every name.  Prints the realm and the lines with its PIN to run\n"
        "    on each host and for each developer.\n"
        "show [--json]\n"
        "    Prints the realm id, policy version, threshold, admins, writers,\n"
        "    recipients, and a pending proposal with what it changes.  --json\n"
        "    prints an object: realm, version, created, created_utc, threshold,\n"
        "    admins, writers and recipients (each entry as 'writer ls --json'\n"
        "    prints it), and proposal (null, or version,\n"
        "    signatures_by_current_admins, signatures_by_its_admins, changes).\n"
        "pin\n"
        "    Prints the PIN of the current policy: the line hosts give to\n"
        "    'secretd join' and developers to 'secretctl realm join'.\n"
        "join PIN\n"
        "    Trusts the store's realm from PIN.  Refused unless the store's policy\n"
        "    chain verifies from it: a version signed by enough pinned admins,\n"
        "    then every later version signed as the chain rule requires.\n"
        "sign [--discard]\n"
        "    Adds your admin signature to the pending proposal for the next\n"
        "    policy version and puts it in force once enough admins signed;\n"
        "    prints what it changes and whether it is in force.  --discard\n"
        "    drops the proposal instead.\n"
        "\n"
        "Options:\n"
        "  --name NAME   (init) your name as admin and writer\n"
        "  --json        (show) print JSON\n"
        "  --discard     (sign) drop the pending proposal\n"
        "  -q, --quiet   (init, join, sign) print nothing on success\n"
        "  -h, --help    show this help\n"
        "\n"
        "Examples:\n"
        "  secretctl realm init\n"
        "  secretctl realm pin | ssh host1 sudo secretd join -\n"
        "  secretctl realm join sdr1:...\n"
        "  secretctl realm sign\n"
        "\n"
        "Exit status:\n"
        "  0  done\n"
        "  1  system error\n"
        "  2  usage error or a malformed PIN\n"
        "  3  no identity; the store does not exist or has no realm; you have not\n"
        "     joined it; (sign) no pending proposal\n"
        "  4  (init) the store already has a realm; another admin changed the\n"
        "     policy meanwhile\n"
        "  5  the policy chain does not verify from your pin or record: another\n"
        "     realm, a rollback, a forged or tampered version\n"
        "  7  (sign) you are not an admin\n",
};
