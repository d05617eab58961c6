/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * secretctl: a thin front end over libsecretd.  main.c parses the global
 * options and dispatches to one file per verb; each verb parses its own
 * arguments, calls the library and reports.  Errors are reported exactly
 * once, by main(), from ctx->err.
 *
 * A verb returns either a negative errno (ctx->err holds the message; main
 * prints it and maps the code to an exit status) or a non-negative exit
 * status it has already reported itself (ls with some bad entries).
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "secretd/error.h"
#include "secretd/keys.h"
#include "secretd/policy.h"
#include "secretd/realm.h"
#include "secretd/store.h"
#include "secretd/trust.h"

/* Exit statuses; docs/secretctl.md "Exit status" lists the same table. */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,      /* general or system error */
        CTL_EXIT_USAGE = 2,        /* bad usage or invalid input */
        CTL_EXIT_NOT_FOUND = 3,    /* no such secret, version, identity, recipient */
        CTL_EXIT_CONFLICT = 4,     /* already exists; compare-and-swap never won */
        CTL_EXIT_VERIFY = 5,       /* bad signature, writer not allowed, tampered, binding, rollback */
        CTL_EXIT_NO_KEY = 6,       /* this identity is not a recipient */
        CTL_EXIT_NOT_WRITER = 7,   /* put/rm: you are not a writer in the realm policy */
        CTL_EXIT_OUTSIDE_PATTERNS = 8,  /* put/rm: the name is outside your patterns */
        CTL_EXIT_NO_RECIPIENT = 9, /* put: no recipient may receive the name */
};

struct ctl_context {
        const char *store_url;     /* --store, $SECRETD_STORE, or the default */
        struct sd_store_options store_options;  /* --etcd-*, $SECRETD_ETCD_* (file names only) */
        char *identity_path;       /* --identity or <config>/identity */
        char *trusted_path;        /* <config>/trusted (legacy: read by realm init) */
        char *realms_dir;          /* <config>/realms: one record per store */
        char *realm_path;          /* <realms_dir>/<hash of store_url>.json */
        sd_error err;              /* the one error main() reports */
        int exit_status;           /* non-zero: main() exits with it instead of mapping err.code */
        bool quiet;                /* the verb's --quiet: ctl_say() prints nothing */
};

/* The --quiet option of a verb whose standard output only reports what it
 * did: put it in the verb's option table (and "q" in its short options);
 * ctl_parse_options() sets ctx->quiet.  Errors and warnings still go to
 * standard error. */
#define CTL_OPTION_QUIET { "quiet", no_argument, NULL, 'q' }

/* One verb.  argv[0] is the verb's name; options may follow positionals. */
struct ctl_verb {
        const char *name;
        const char *summary;       /* one line for `secretctl --help` */
        const char *help;          /* full text: Usage, Description, Options, Examples, Exit status */
        int (*run)(struct ctl_context *ctx, int argc, char **argv);
};

extern const struct ctl_verb ctl_verb_keygen, ctl_verb_whoami, ctl_verb_put, ctl_verb_get,
        ctl_verb_ls, ctl_verb_history, ctl_verb_rm, ctl_verb_recipient, ctl_verb_trust, ctl_verb_status,
        ctl_verb_realm, ctl_verb_writer, ctl_verb_admin, ctl_verb_reseal, ctl_verb_export, ctl_verb_import,
        ctl_verb_import_env, ctl_verb_compose;

/* Print a verb's full help (its text plus the shared Files/Environment). */
void ctl_print_verb_help(const struct ctl_verb *verb, FILE *f);

/* A usage error: fills ctx->err with EINVAL and a hint to --help. */
int ctl_usage_error(struct ctl_context *ctx, const char *verb, const char *fmt, ...) SD_PRINTF(3, 4);

/* Parse a verb's options with getopt_long (GNU permutation, so options may
 * follow positionals).  --help/-h is handled here: returns 1 after printing
 * help (the verb returns 0).  Unknown options: a usage error (negative).
 * --quiet (CTL_OPTION_QUIET) sets ctx->quiet.  on_option is called for every
 * other option. */
struct option;
int ctl_parse_options(struct ctl_context *ctx, const struct ctl_verb *verb, int argc, char **argv,
                      const char *shortopts, const struct option *longopts,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *arg, void *userdata),
                      void *userdata);

/* Parse a positive decimal integer (no sign, no junk) naming `what` in the
 * error. */
int ctl_parse_u64(struct ctl_context *ctx, const char *what, const char *text, uint64_t *out);

/* Validate a secret or recipient name; "what" is "secret name" or
 * "recipient name". */
int ctl_validate_name(struct ctl_context *ctx, const char *what, const char *name);

/* After ctl_parse_options: the verb's one positional argument, a valid
 * secret name ("missing NAME" / "too many arguments; expected only NAME"). */
int ctl_parse_secret_name(struct ctl_context *ctx, const char *verb, int argc, char **argv,
                          const char **name_out);

/* ctl_parse_options for verbs whose only option is --json. */
int ctl_parse_json_option(struct ctl_context *ctx, const struct ctl_verb *verb, int argc, char **argv,
                          bool *json);

/* Load the identity at ctx->identity_path; a missing file is -ENOENT with
 * "no identity at PATH; run 'secretctl keygen'". */
int ctl_load_identity(struct ctl_context *ctx, struct sd_writer_key **out);

/* Open the store.  With create false, a missing file store is -ENOENT with
 * "store URL does not exist". */
int ctl_open_store(struct ctl_context *ctx, bool create, struct sd_store **out);

/* Your realm record for this store (ctx->realm_path).  Not joined: -ENOENT
 * "you have not joined the realm of store URL: ...". */
int ctl_load_record(struct ctl_context *ctx, struct sd_realm_record *out);

/* Walk the store's policy chain from your record (sd_realm_walk, strict),
 * keep the raised record, and give the verified latest policy. */
int ctl_verified_policy(struct ctl_context *ctx, struct sd_store *store, struct sd_policy **out);

/* What a verb that reads needs: the store (never created) and the verified
 * policy.  On failure nothing is returned. */
int ctl_open_verified(struct ctl_context *ctx, struct sd_store **store_out, struct sd_policy **policy_out);

/* What a verb that signs needs: your identity, then ctl_open_verified. */
int ctl_open_signer(struct ctl_context *ctx, struct sd_writer_key **key_out, struct sd_store **store_out,
                    struct sd_policy **policy_out);

/* The same for a verb that edits the policy: on an empty file store (no
 * policy, no secret, no legacy recipient entry) that you have not joined,
 * first create a realm with you as its admin, as `realm init` does, saying
 * so on standard error. */
int ctl_verified_policy_or_new_realm(struct ctl_context *ctx, struct sd_store *store,
                                     const struct sd_writer_key *key, struct sd_policy **out);

/* A realm object over store with your record as its state (for get). */
int ctl_open_realm(struct ctl_context *ctx, struct sd_store *store, struct sd_realm **out);

/* Create policy version 1 of a new realm in store (migrating legacy trust
 * and recipient entries, sd_policy_from_legacy) and join it.  -EEXIST when
 * the store has a policy already. */
int ctl_create_realm(struct ctl_context *ctx, struct sd_store *store, const struct sd_writer_key *key,
                     const char *admin_name, struct sd_policy **out);

/* Say that the realm p was created in store, with you as admin_name, and
 * the pin lines for hosts and developers (realm init, and the first policy
 * edit on an empty store). */
int ctl_say_realm_created(struct ctl_context *ctx, struct sd_store *store, const struct sd_policy *p,
                          const char *admin_name);

/* Your default name in a policy: the login name when it is a valid name,
 * else "admin". */
void ctl_default_entry_name(char out[SD_NAME_MAX + 1]);

/* Report a write refusal (sd_policy_check_write) and give its exit status. */
int ctl_write_refusal(struct ctl_context *ctx, enum sd_write_refusal refusal);

/* Publish draft as the next policy version when the signatures it now
 * carries (yours added) meet the chain rule, else store it as a proposal
 * and say who must sign.  Prints what changes either way.  Returns 1 when
 * published, 0 when proposed. */
int ctl_publish_policy(struct ctl_context *ctx, struct sd_store *store, const struct sd_writer_key *key,
                       const struct sd_policy *cur, struct sd_policy *draft);

/* What a verb that edits the policy needs: your identity, the store, the
 * verified policy (with_new_realm: created on an empty file store) and a
 * draft of its next version; refuses a non-admin, and a pending proposal. */
struct ctl_policy_edit {
        struct sd_writer_key *key;
        struct sd_store *store;
        struct sd_policy *cur;
        struct sd_policy *draft;
};
int ctl_policy_edit_begin(struct ctl_context *ctx, bool with_new_realm, struct ctl_policy_edit *edit);
void ctl_policy_edit_done(struct ctl_policy_edit *edit);

/* Parse NAME KEY [key id HEX] for writer/admin/recipient add: a public line
 * of the right kind, a pasted "key id HEX" tail checked. */
int ctl_parse_entry_args(struct ctl_context *ctx, const char *verb, enum sd_policy_list which, int argc, char **argv,
                         const char **name_out, unsigned char sign_pk[SD_SIGN_PK_BYTES],
                         unsigned char box_pk[SD_BOX_PK_BYTES]);

/* `writer|recipient|admin add|rm|ls`: one implementation for the three
 * lists.  add takes NAME KEY and --pattern P (writers, recipients) or
 * --threshold N (admins); rm takes NAME (and --threshold N for admins) and
 * adds a note on what removing a writer or a recipient cannot undo; ls
 * takes --json.  Each returns 0 or a negative errno. */
int ctl_entry_add(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                  char **argv);
int ctl_entry_rm(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                 char **argv);
int ctl_entry_ls(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                 char **argv);

/* One entry of the policy as the JSON of `writer|recipient|admin ls --json`
 * and `realm show --json`: name, key (its public line), key_id
 * (sd_policy_entry_key_id) and patterns.  NULL when out of memory. */
json_t *ctl_policy_entry_json(enum sd_policy_list which, const struct sd_policy_entry *e);

/* Print a list of the policy (writers, recipients, admins) as a table or
 * JSON. */
int ctl_print_policy_list(struct ctl_context *ctx, const struct sd_policy *p, enum sd_policy_list which, bool json);

/* What `put` opens before it reads a value, and the one put that every verb
 * storing a secret goes through (put, import-env, compose migrate), so a rule
 * added to put holds for all of them.  ctl_writer_open: ctl_open_signer. */
struct ctl_writer {
        struct sd_writer_key *key;
        struct sd_store *store;
        struct sd_policy *policy;
};
int ctl_writer_open(struct ctl_context *ctx, struct ctl_writer *w);
void ctl_writer_close(struct ctl_writer *w);
#define _cleanup_ctl_writer_ _cleanup_(ctl_writer_close)
/* Whether w may put name, decided before any value is read (put asks for
 * the value only after it; import-env and compose migrate check every name
 * before the first put, so a refusal stores nothing).  Each rule put follows
 * about a name goes here: a valid name, and the policy's write rule
 * (sd_policy_check_write, with a recipient required). */
int ctl_writer_check(struct ctl_context *ctx, struct ctl_writer *w, const char *name);
/* Store value as the next version of name (at most max_len bytes; 0 means
 * SD_VALUE_MAX); *version_out (may be NULL) is the version written. */
struct sd_secret;
int ctl_writer_put(struct ctl_context *ctx, struct ctl_writer *w, const char *name, const struct sd_secret *value,
                   size_t max_len, uint64_t *version_out);


/* Report what a verb did on standard output, unless --quiet. */
void ctl_say(struct ctl_context *ctx, const char *fmt, ...) SD_PRINTF(2, 3);

/* The library's warnings: "secretctl: warning: ..." on stderr. */
void ctl_warn(void *userdata, const char *message);

/* Report a non-fatal error line ("secretctl: ...") on stderr. */
void ctl_report(const char *fmt, ...) SD_PRINTF(1, 2);

/* Print "<sdw1:...>  key id <16 hex>" on stdout: the line keygen and whoami
 * print and `writer add` accepts. */
int ctl_print_identity_line(struct ctl_context *ctx, const struct sd_writer_pub *pub);

/* Unix seconds as "2024-11-28T12:00:00Z" (UTC). */
void ctl_format_time(int64_t t, char out[32]);

/* Map a library error code to an exit status. */
int ctl_exit_status(int negative_errno);

struct sd_envelope_info;
/* Fetch version `version` of name and verify it against policy without
 * decrypting: format, realm, signer's rights, signature, and that it is
 * bound to this name and version.  Fills err (not ctx->err) so a listing can
 * report and go on. */
int ctl_verify_version(struct sd_store *store, const struct sd_policy *policy, const char *name, uint64_t version,
                       struct sd_envelope_info *info, sd_error *err);

/* A listing's exit status after one more bad entry that maps to s: the
 * first failure counts, but a verification failure outranks other causes. */
int ctl_listing_status(int status, int s);

/* Print a JSON value (array or object) on stdout, indented, with a newline. */
int ctl_print_json(struct ctl_context *ctx, json_t *json);

/* Report one bad entry of a listing on stderr, making sure the line names
 * the secret; returns the exit status the failure maps to. */
int ctl_report_entry_failure(const char *kind, const char *name, uint64_t version, const sd_error *err,
                             int r);

/* `writer add` and `recipient add` accept a public line pasted unquoted, as
 * several arguments: "KEY key id HEX".  Checks that extra arguments are
 * exactly "key" "id" <the key's id>; names the verb in errors. */
int ctl_check_pasted_key_id(struct ctl_context *ctx, const char *verb, char **extra, int n_extra,
                            const char *key_id);

/* Run a subcommand from a table (realm, writer, recipient, admin); handles
 * --help. */
struct ctl_subverb {
        const char *name;
        int (*run)(struct ctl_context *ctx, int argc, char **argv);
};
int ctl_dispatch_subverb(struct ctl_context *ctx, const struct ctl_verb *verb,
                         const struct ctl_subverb *subverbs, size_t n, int argc, char **argv);
