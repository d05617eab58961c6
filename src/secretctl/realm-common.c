/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the verbs that read or change the realm policy share: your record of
 * the store's realm, the verified policy, publishing a new version or a
 * proposal, and printing policy lists. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretd/cleanup.h"
#include "secretd/client.h"
#include "secretd/names.h"
#include "secretctl.h"

int ctl_load_record(struct ctl_context *ctx, struct sd_realm_record *out) {
        int r = sd_realm_record_load(ctx->realm_path, out, &ctx->err);
        if (r == -ENOENT)
                return sd_error_set(&ctx->err, ENOENT,
                                    "you have not joined the realm of store %s: run 'secretctl realm join PIN' with the "
                                    "line an admin's 'secretctl realm pin' prints, or 'secretctl realm init' to make a "
                                    "new realm",
                                    ctx->store_url);
        return r < 0 ? r : 0;
}

static int save_record(struct ctl_context *ctx, const struct sd_realm_record *rec) {
        return sd_realm_record_save(ctx->realm_path, rec, ctx->store_url, &ctx->err);
}

int ctl_verified_policy(struct ctl_context *ctx, struct sd_store *store, struct sd_policy **out) {
        struct sd_realm_record rec;
        int r = ctl_load_record(ctx, &rec);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *p = NULL;
        struct sd_realm_record now;
        r = sd_realm_walk(store, &rec, NULL, NULL, &p, &now, &ctx->err);
        if (r < 0)
                return r;
        /* Raised only now that every version up to the latest verified. */
        if (r == 1) {
                r = save_record(ctx, &now);
                if (r < 0)
                        return r;
        }
        *out = steal_pointer(&p);
        return 0;
}

int ctl_open_verified(struct ctl_context *ctx, struct sd_store **store_out, struct sd_policy **policy_out) {
        _cleanup_store_ struct sd_store *store = NULL;
        int r = ctl_open_store(ctx, false, &store);
        if (r < 0)
                return r;
        r = ctl_verified_policy(ctx, store, policy_out);
        if (r < 0)
                return r;
        *store_out = steal_pointer(&store);
        return 0;
}

int ctl_open_signer(struct ctl_context *ctx, struct sd_writer_key **key_out, struct sd_store **store_out,
                    struct sd_policy **policy_out) {
        _cleanup_writer_key_ struct sd_writer_key *key = NULL;
        int r = ctl_load_identity(ctx, &key);
        if (r < 0)
                return r;
        r = ctl_open_verified(ctx, store_out, policy_out);
        if (r < 0)
                return r;
        *key_out = steal_pointer(&key);
        return 0;
}

void ctl_default_entry_name(char out[SD_NAME_MAX + 1]) {
        struct passwd *pw = getpwuid(geteuid());
        if (pw && pw->pw_name && sd_name_validate("name", pw->pw_name, strlen(pw->pw_name), NULL) == 0)
                (void) snprintf(out, SD_NAME_MAX + 1, "%s", pw->pw_name);
        else
                (void) snprintf(out, SD_NAME_MAX + 1, "admin");
}

int ctl_create_realm(struct ctl_context *ctx, struct sd_store *store, const struct sd_writer_key *key,
                     const char *admin_name, struct sd_policy **out) {
        uint64_t latest = 0;
        sd_error why = { 0 };
        int r = sd_store_policy_latest(store, &latest, &why);
        if (r >= 0)
                return sd_error_set(&ctx->err, EEXIST,
                                    "store %s already has a realm (policy v%" PRIu64 "): join it with 'secretctl realm "
                                    "join PIN' (an admin's 'secretctl realm pin' prints it)",
                                    ctx->store_url, latest);
        if (r != -ENOENT) {
                ctx->err = why;
                return r;
        }
        _cleanup_trust_ struct sd_trust *trust = NULL;
        if (sd_trust_new(&trust) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        r = sd_trust_load_file(trust, ctx->trusted_path, &ctx->err);
        if (r < 0)
                return r;
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = sd_policy_from_legacy(store, key, admin_name, trust, ctl_warn, ctx, &p, &ctx->err);
        if (r < 0)
                return r;
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        if (sd_policy_to_json(p, &json, &len) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        r = sd_store_policy_put(store, 1, json, len, &ctx->err);
        if (r == -EEXIST)
                return sd_error_set(&ctx->err, EEXIST,
                                    "someone else created a realm in store %s meanwhile: join it with 'secretctl realm join PIN'",
                                    ctx->store_url);
        if (r < 0)
                return r;
        struct sd_realm_record rec = { .version = 1 };
        sd_realm_pin_of(p, &rec.pin);
        if (sd_policy_digest(p, rec.digest) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        r = save_record(ctx, &rec);
        if (r < 0)
                return r;
        *out = steal_pointer(&p);
        return 0;
}

/* A store a new realm may be made in without asking: the embedded file
 * store, still empty. */
static int store_is_empty_file_store(struct ctl_context *ctx, struct sd_store *store, bool *out) {
        *out = false;
        if (strncmp(ctx->store_url, "file://", 7) != 0)
                return 0;
        uint64_t latest = 0;
        sd_error why = { 0 };
        int r = sd_store_policy_latest(store, &latest, &why);
        if (r >= 0)
                return 0;
        if (r != -ENOENT) {
                ctx->err = why;
                return r;
        }
        struct sd_store_name *names = NULL;
        size_t n_names = 0;
        r = sd_store_list(store, &names, &n_names, &ctx->err);
        if (r < 0)
                return r;
        sd_store_names_free(names, n_names);
        struct sd_store_blob *blobs = NULL;
        size_t n_blobs = 0;
        r = sd_store_recipient_list(store, &blobs, &n_blobs, &ctx->err);
        if (r < 0)
                return r;
        sd_store_blobs_free(blobs, n_blobs);
        *out = n_names == 0 && n_blobs == 0;
        return 0;
}

int ctl_verified_policy_or_new_realm(struct ctl_context *ctx, struct sd_store *store,
                                     const struct sd_writer_key *key, struct sd_policy **out) {
        struct sd_realm_record rec;
        sd_error why = { 0 };
        int r = sd_realm_record_load(ctx->realm_path, &rec, &why);
        if (r != -ENOENT)
                return ctl_verified_policy(ctx, store, out);
        bool empty = false;
        r = store_is_empty_file_store(ctx, store, &empty);
        if (r < 0)
                return r;
        if (!empty)
                return ctl_verified_policy(ctx, store, out);
        char name[SD_NAME_MAX + 1];
        ctl_default_entry_name(name);
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = ctl_create_realm(ctx, store, key, name, &p);
        if (r < 0)
                return r;
        r = ctl_say_realm_created(ctx, store, p, name);
        if (r < 0)
                return r;
        *out = steal_pointer(&p);
        return 0;
}

int ctl_say_realm_created(struct ctl_context *ctx, struct sd_store *store, const struct sd_policy *p,
                          const char *admin_name) {
        struct sd_realm_pin pin;
        sd_realm_pin_of(p, &pin);
        _cleanup_free_ char *line = NULL;
        if (sd_realm_pin_format(&pin, &line) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        char realm[SD_REALM_ID_SHORT_CHARS + 1];
        sd_realm_id_short(sd_policy_realm(p), realm);
        ctl_say(ctx, "realm %s created in %s: policy v1, admin '%s' (you), threshold 1, %zu writer(s), %zu recipient(s)\n",
                realm, ctx->store_url, admin_name, sd_policy_count(p, SD_POLICY_WRITERS),
                sd_policy_count(p, SD_POLICY_RECIPIENTS));
        struct sd_store_name *names = NULL;
        size_t n_names = 0;
        int r = sd_store_list(store, &names, &n_names, &ctx->err);
        if (r < 0)
                return r;
        sd_store_names_free(names, n_names);
        if (n_names > 0)
                ctl_say(ctx, "%zu secret(s) were written before the realm; agents refuse them until an admin runs\n"
                             "  secretctl reseal --all\n",
                        n_names);
        ctl_say(ctx, "Pin it on each host (as root) and for each developer:\n"
                     "  sudo secretd join %s\n"
                     "  secretctl realm join %s\n",
                line, line);
        return 0;
}

int ctl_open_realm(struct ctl_context *ctx, struct sd_store *store, struct sd_realm **out) {
        struct sd_realm_record rec;
        int r = ctl_load_record(ctx, &rec);
        if (r < 0)
                return r;
        return sd_realm_new(store, &rec.pin, ctx->realm_path, out, &ctx->err);
}

int ctl_write_refusal(struct ctl_context *ctx, enum sd_write_refusal refusal) {
        switch (refusal) {
        case SD_WRITE_NOT_A_WRITER:
                ctx->exit_status = CTL_EXIT_NOT_WRITER;
                break;
        case SD_WRITE_OUTSIDE_PATTERNS:
                ctx->exit_status = CTL_EXIT_OUTSIDE_PATTERNS;
                break;
        case SD_WRITE_NO_RECIPIENT:
                ctx->exit_status = CTL_EXIT_NO_RECIPIENT;
                break;
        case SD_WRITE_ALLOWED:
                return 0;
        }
        return -ctx->err.code;
}

/* ---- publishing a policy change ---- */

static void say_change(void *userdata, const char *line) {
        ctl_say(userdata, "  %s\n", line);
}

/* "alice, carol": the admins of `of` who have not signed p. */
static void missing_signers(const struct sd_policy *p, const struct sd_policy *of, char *out, size_t size) {
        size_t len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < sd_policy_count(of, SD_POLICY_ADMINS); i++) {
                const struct sd_policy_entry *e = sd_policy_get(of, SD_POLICY_ADMINS, i);
                if (sd_policy_signed_by(p, e->sign_pk))
                        continue;
                int n = snprintf(out + len, size - len, "%s%s", len ? ", " : "", e->name);
                if (n < 0 || (size_t) n >= size - len)
                        return;
                len += (size_t) n;
        }
}

int ctl_publish_policy(struct ctl_context *ctx, struct sd_store *store, const struct sd_writer_key *key,
                       const struct sd_policy *cur, struct sd_policy *draft) {
        int r = sd_policy_check(draft, &ctx->err);
        if (r < 0)
                return r;
        r = sd_policy_sign(draft, key, &ctx->err);
        if (r < 0)
                return r;
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        if (sd_policy_to_json(draft, &json, &len) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        uint64_t version = sd_policy_version(draft);

        sd_error why = { 0 };
        r = sd_policy_verify_next(cur, draft, &why);
        if (r == -EKEYREJECTED) {
                r = sd_store_proposal_put(store, version, json, len, &ctx->err);
                if (r < 0)
                        return r;
                size_t by_old = sd_policy_count_signatures(draft, cur), by_new = sd_policy_count_signatures(draft, draft);
                ctl_say(ctx, "policy v%" PRIu64 " is proposed, signed by you, not in force yet:\n", version);
                sd_policy_describe_changes(cur, draft, say_change, ctx);
                char names[512];
                if (by_old < sd_policy_threshold(cur)) {
                        missing_signers(draft, cur, names, sizeof(names));
                        ctl_say(ctx, "it needs %zu more signature(s) by admins of v%" PRIu64 " (%s): they run 'secretctl realm sign'\n",
                               sd_policy_threshold(cur) - by_old, sd_policy_version(cur), names);
                }
                if (by_new < sd_policy_threshold(draft)) {
                        missing_signers(draft, draft, names, sizeof(names));
                        ctl_say(ctx, "it needs %zu more signature(s) by admins of v%" PRIu64 " (%s): they run 'secretctl realm sign'\n",
                               sd_policy_threshold(draft) - by_new, version, names);
                }
                return 0;
        }
        if (r < 0) {
                ctx->err = why;
                return r;
        }
        r = sd_store_policy_put(store, version, json, len, &ctx->err);
        if (r == -EEXIST)
                return sd_error_set(&ctx->err, EEXIST,
                                    "another admin published policy v%" PRIu64 " meanwhile; nothing changed: run the command again",
                                    version);
        if (r < 0)
                return r;
        sd_error ignored = { 0 };
        (void) sd_store_proposal_remove(store, version, &ignored);

        /* draft follows the verified cur by the chain rule: it is the
         * highest verified version now. */
        struct sd_realm_record rec;
        r = ctl_load_record(ctx, &rec);
        if (r < 0)
                return r;
        rec.version = version;
        if (sd_policy_digest(draft, rec.digest) < 0)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        r = save_record(ctx, &rec);
        if (r < 0)
                return r;
        ctl_say(ctx, "policy v%" PRIu64 " is in force:\n", version);
        sd_policy_describe_changes(cur, draft, say_change, ctx);
        return 1;
}

int ctl_policy_edit_begin(struct ctl_context *ctx, bool with_new_realm, struct ctl_policy_edit *edit) {
        *edit = (struct ctl_policy_edit) { 0 };
        int r = ctl_load_identity(ctx, &edit->key);
        if (r < 0)
                return r;
        r = ctl_open_store(ctx, with_new_realm, &edit->store);
        if (r < 0)
                return r;
        r = with_new_realm ? ctl_verified_policy_or_new_realm(ctx, edit->store, edit->key, &edit->cur)
                           : ctl_verified_policy(ctx, edit->store, &edit->cur);
        if (r < 0)
                return r;
        if (!sd_policy_is_admin(edit->cur, edit->key->pub.sign_pk)) {
                char id[SD_KEY_ID_CHARS + 1], names[512] = "";
                sd_key_id(edit->key->pub.sign_pk, id);
                for (size_t i = 0, len = 0; i < sd_policy_count(edit->cur, SD_POLICY_ADMINS); i++) {
                        int n = snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                                         sd_policy_get(edit->cur, SD_POLICY_ADMINS, i)->name);
                        if (n < 0 || (size_t) n >= sizeof(names) - len)
                                break;
                        len += (size_t) n;
                }
                ctx->exit_status = CTL_EXIT_NOT_WRITER;
                return sd_error_set(&ctx->err, EPERM,
                                    "you (%s) are not an admin of policy v%" PRIu64 "; ask one of its admins: %s", id,
                                    sd_policy_version(edit->cur), names);
        }
        uint64_t next = sd_policy_version(edit->cur) + 1;
        _cleanup_free_ char *pending = NULL;
        size_t len = 0;
        sd_error why = { 0 };
        r = sd_store_proposal_get(edit->store, next, &pending, &len, &why);
        if (r >= 0)
                return sd_error_set(&ctx->err, EEXIST,
                                    "policy v%" PRIu64 " is already proposed and waits for signatures: see it with "
                                    "'secretctl realm show', sign it with 'secretctl realm sign', or drop it with "
                                    "'secretctl realm sign --discard'",
                                    next);
        if (r != -ENOENT) {
                ctx->err = why;
                return r;
        }
        return sd_policy_next_draft(edit->cur, &edit->draft, &ctx->err);
}

void ctl_policy_edit_done(struct ctl_policy_edit *edit) {
        sd_policy_unref(edit->draft);
        sd_policy_unref(edit->cur);
        sd_store_free(edit->store);
        sd_writer_key_free(edit->key);
        *edit = (struct ctl_policy_edit) { 0 };
}

int ctl_parse_entry_args(struct ctl_context *ctx, const char *verb, enum sd_policy_list which, int argc, char **argv,
                         const char **name_out, unsigned char sign_pk[SD_SIGN_PK_BYTES],
                         unsigned char box_pk[SD_BOX_PK_BYTES]) {
        bool agent = which == SD_POLICY_RECIPIENTS;
        if (argc - optind < 2)
                return ctl_usage_error(ctx, verb, "expected NAME and %s",
                                       agent ? "an agent public key (sda1:...)" : "a writer public key (sdw1:...)");
        const char *name = argv[optind], *key = argv[optind + 1];
        int r = ctl_validate_name(ctx, agent ? "recipient name" : which == SD_POLICY_ADMINS ? "admin name" : "writer name",
                                  name);
        if (r < 0)
                return r;
        char id[SD_KEY_ID_CHARS + 1];
        if (agent) {
                r = sd_agent_pub_parse(key, box_pk, &ctx->err);
                if (r < 0)
                        return r;
                sd_key_id(box_pk, id);
        } else {
                struct sd_writer_pub pub;
                r = sd_writer_pub_parse(key, &pub, &ctx->err);
                if (r < 0)
                        return r;
                memcpy(sign_pk, pub.sign_pk, SD_SIGN_PK_BYTES);
                memcpy(box_pk, pub.box_pk, SD_BOX_PK_BYTES);
                sd_key_id(pub.sign_pk, id);
        }
        /* The whole whoami line, quoted, is one argument: its tail must
         * name the same key. */
        const char *tail = key + strcspn(key, " \t");
        tail += strspn(tail, " \t");
        if (*tail) {
                char expected[SD_KEY_ID_CHARS + 16];
                (void) snprintf(expected, sizeof(expected), "key id %s", id);
                size_t tail_len = strlen(tail);
                while (tail_len > 0 && (tail[tail_len - 1] == ' ' || tail[tail_len - 1] == '\t' || tail[tail_len - 1] == '\n'))
                        tail_len--;
                if (tail_len != strlen(expected) || strncmp(tail, expected, tail_len) != 0)
                        return sd_error_set(&ctx->err, EINVAL, "%s: the text after the public key is not \"%s\"", verb,
                                            expected);
        }
        r = ctl_check_pasted_key_id(ctx, verb, argv + optind + 2, argc - optind - 2, id);
        if (r < 0)
                return r;
        *name_out = name;
        return 0;
}

json_t *ctl_policy_entry_json(enum sd_policy_list which, const struct sd_policy_entry *e) {
        char id[SD_KEY_ID_CHARS + 1];
        sd_policy_entry_key_id(which, e, id);
        _cleanup_free_ char *key = NULL;
        if (which == SD_POLICY_RECIPIENTS) {
                if (sd_agent_pub_format(e->box_pk, &key) < 0)
                        return NULL;
        } else {
                struct sd_writer_pub pub;
                memcpy(pub.sign_pk, e->sign_pk, SD_SIGN_PK_BYTES);
                memcpy(pub.box_pk, e->box_pk, SD_BOX_PK_BYTES);
                if (sd_writer_pub_format(&pub, &key) < 0)
                        return NULL;
        }
        _cleanup_json_ json_t *patterns = json_array();
        for (size_t k = 0; patterns && k < e->n_patterns; k++)
                if (json_array_append_new(patterns, json_string(e->patterns[k])) < 0)
                        return NULL;
        if (!patterns)
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:O}", "name", e->name, "key", key, "key_id", id, "patterns", patterns);
}

int ctl_print_policy_list(struct ctl_context *ctx, const struct sd_policy *p, enum sd_policy_list which, bool json) {
        _cleanup_json_ json_t *array = json ? json_array() : NULL;
        if (json && !array)
                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
        size_t n = sd_policy_count(p, which);
        size_t width = 4;
        for (size_t i = 0; i < n; i++) {
                size_t w = strlen(sd_policy_get(p, which, i)->name);
                if (w > width)
                        width = w;
        }
        if (!json && n > 0) {
                if (which == SD_POLICY_ADMINS)
                        printf("%-*s  %s\n", (int) width, "NAME", "KEY ID");
                else
                        printf("%-*s  %-16s  %s\n", (int) width, "NAME", "KEY ID", "PATTERNS");
        }
        for (size_t i = 0; i < n; i++) {
                const struct sd_policy_entry *e = sd_policy_get(p, which, i);
                if (json) {
                        json_t *entry = ctl_policy_entry_json(which, e);
                        if (!entry || json_array_append_new(array, entry) < 0)
                                return sd_error_set(&ctx->err, ENOMEM, "out of memory");
                        continue;
                }
                char id[SD_KEY_ID_CHARS + 1];
                sd_policy_entry_key_id(which, e, id);
                if (which == SD_POLICY_ADMINS) {
                        printf("%-*s  %s\n", (int) width, e->name, id);
                        continue;
                }
                printf("%-*s  %-16s ", (int) width, e->name, id);
                for (size_t k = 0; k < e->n_patterns; k++)
                        printf(" %s", e->patterns[k]);
                putchar('\n');
        }
        if (json)
                return ctl_print_json(ctx, array);
        return 0;
}

/* ---- writer, recipient and admin add/rm/ls ---- */

struct entry_options {
        const char *patterns[SD_POLICY_MAX_PATTERNS];
        size_t n_patterns;
        uint64_t threshold;      /* 0: unchanged */
        bool json;
        const char *verb;
};

static int entry_option(struct ctl_context *ctx, int opt, const char *arg, void *userdata) {
        struct entry_options *o = userdata;
        switch (opt) {
        case 'p':
                if (o->n_patterns == SD_POLICY_MAX_PATTERNS)
                        return ctl_usage_error(ctx, o->verb, "at most %d --pattern options", SD_POLICY_MAX_PATTERNS);
                o->patterns[o->n_patterns++] = arg;
                return sd_pattern_validate(arg, &ctx->err);
        case 't': {
                int r = ctl_parse_u64(ctx, "--threshold", arg, &o->threshold);
                if (r >= 0 && o->threshold > SD_POLICY_MAX_ADMINS)
                        r = sd_error_set(&ctx->err, EINVAL, "--threshold %" PRIu64 " is more than the %d admins a realm can have",
                                         o->threshold, SD_POLICY_MAX_ADMINS);
                return r;
        }
        case 'j':
                o->json = true;
                return 0;
        default:
                return -EINVAL;
        }
}

static int parse_entry_options(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which,
                               bool listing, int argc, char **argv, struct entry_options *o) {
        static const struct option pattern_options[] = {
                { "pattern", required_argument, NULL, 'p' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        static const struct option threshold_options[] = {
                { "threshold", required_argument, NULL, 't' },
                CTL_OPTION_QUIET,
                { NULL, 0, NULL, 0 },
        };
        static const struct option json_options[] = {
                { "json", no_argument, NULL, 'j' },
                { NULL, 0, NULL, 0 },
        };
        const struct option *options = listing ? json_options
                                     : which == SD_POLICY_ADMINS ? threshold_options : pattern_options;
        return ctl_parse_options(ctx, verb, argc, argv, listing ? "" : "q", options, entry_option, o);
}

static void edit_donep(struct ctl_policy_edit *e) {
        ctl_policy_edit_done(e);
}

int ctl_entry_add(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                  char **argv) {
        char verb_name[32];
        (void) snprintf(verb_name, sizeof(verb_name), "%s add", sd_policy_list_noun(which));
        struct entry_options o = { .verb = verb_name };
        int r = parse_entry_options(ctx, verb, which, false, argc, argv, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        const char *name = NULL;
        unsigned char sign_pk[SD_SIGN_PK_BYTES] = { 0 }, box_pk[SD_BOX_PK_BYTES] = { 0 };
        r = ctl_parse_entry_args(ctx, verb_name, which, argc, argv, &name, sign_pk, box_pk);
        if (r < 0)
                return r;

        __attribute__((cleanup(edit_donep))) struct ctl_policy_edit edit = { 0 };
        /* The first recipient (or writer, or admin) added to an empty
         * embedded store makes its realm. */
        r = ctl_policy_edit_begin(ctx, true, &edit);
        if (r < 0)
                return r;
        r = sd_policy_add(edit.draft, which, name, sign_pk, box_pk, o.patterns, o.n_patterns, &ctx->err);
        if (r >= 0 && o.threshold)
                r = sd_policy_set_threshold(edit.draft, (unsigned) o.threshold, &ctx->err);
        if (r < 0)
                return r;
        r = ctl_publish_policy(ctx, edit.store, edit.key, edit.cur, edit.draft);
        return r < 0 ? r : 0;
}

/* What removing an entry cannot undo, said after the change. */
static void say_removal_note(struct ctl_context *ctx, enum sd_policy_list which, const char *name, bool in_force) {
        const char *when = in_force ? "" : ", once the proposal is in force";
        switch (which) {
        case SD_POLICY_WRITERS:
                /* Its versions already in the store fail verification. */
                ctl_say(ctx, "note: agents and secretctl refuse the versions %s signed%s; an admin reseals those "
                             "that must stay ('secretctl reseal NAME')\n",
                        name, when);
                break;
        case SD_POLICY_RECIPIENTS:
                /* A removed key keeps what it could already decrypt. */
                ctl_say(ctx, "note: %s can still read the versions already sealed to it%s: put new values of those "
                             "it must not know; 'secretctl reseal --all' seals the current versions again without it\n",
                        name, in_force ? "" : " (and new ones until the proposal is in force)");
                break;
        case SD_POLICY_ADMINS:
                break;
        }
}

int ctl_entry_rm(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                 char **argv) {
        char verb_name[32];
        (void) snprintf(verb_name, sizeof(verb_name), "%s rm", sd_policy_list_noun(which));
        struct entry_options o = { .verb = verb_name };
        int r = parse_entry_options(ctx, verb, which, false, argc, argv, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (argc - optind != 1)
                return ctl_usage_error(ctx, verb_name, "expected exactly one NAME");
        const char *name = argv[optind];
        char kind[32];
        (void) snprintf(kind, sizeof(kind), "%s name", sd_policy_list_noun(which));
        r = ctl_validate_name(ctx, kind, name);
        if (r < 0)
                return r;

        __attribute__((cleanup(edit_donep))) struct ctl_policy_edit edit = { 0 };
        r = ctl_policy_edit_begin(ctx, false, &edit);
        if (r < 0)
                return r;
        r = sd_policy_remove(edit.draft, which, name, &ctx->err);
        if (r < 0)
                return r;
        size_t admins = sd_policy_count(edit.draft, SD_POLICY_ADMINS);
        if (o.threshold)
                r = sd_policy_set_threshold(edit.draft, (unsigned) o.threshold, &ctx->err);
        else if (which == SD_POLICY_ADMINS && admins == 0)
                r = sd_error_set(&ctx->err, EINVAL, "'%s' is the last admin; a realm needs one: add another first", name);
        else if (which == SD_POLICY_ADMINS && sd_policy_threshold(edit.draft) > admins)
                r = sd_error_set(&ctx->err, EINVAL,
                                 "removing admin '%s' leaves %zu admin(s) under a threshold of %u: give --threshold %zu or lower",
                                 name, admins, sd_policy_threshold(edit.draft), admins);
        if (r < 0)
                return r;
        r = ctl_publish_policy(ctx, edit.store, edit.key, edit.cur, edit.draft);
        if (r < 0)
                return r;
        say_removal_note(ctx, which, name, r == 1);
        return 0;
}

int ctl_entry_ls(struct ctl_context *ctx, const struct ctl_verb *verb, enum sd_policy_list which, int argc,
                 char **argv) {
        char verb_name[32];
        (void) snprintf(verb_name, sizeof(verb_name), "%s ls", sd_policy_list_noun(which));
        struct entry_options o = { .verb = verb_name };
        int r = parse_entry_options(ctx, verb, which, true, argc, argv, &o);
        if (r != 0)
                return r < 0 ? r : 0;
        if (optind != argc)
                return ctl_usage_error(ctx, verb_name, "takes no arguments");
        _cleanup_store_ struct sd_store *store = NULL;
        _cleanup_policy_ struct sd_policy *p = NULL;
        r = ctl_open_verified(ctx, &store, &p);
        if (r < 0)
                return r;
        return ctl_print_policy_list(ctx, p, which, o.json);
}
