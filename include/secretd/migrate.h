/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * From environment variables to secrets: the rules `secretctl import-env`
 * and `secretctl compose migrate` share (docs/migrating.md).
 *
 * Secret names.  A variable becomes the secret named by its name in lower
 * case: DB_PASSWORD -> db_password.  compose migrate always applies this
 * rule; import-env applies it with --lowercase and otherwise keeps the name
 * as the file writes it.  Either way two secrets whose names differ only in
 * case are refused, among the names of one run and against the secrets
 * already in the store, so DB_PASSWORD and db_password never silently
 * become two secrets.
 *
 * Secret-looking variables (compose migrate's default choice).  The name,
 * upper-cased and split at '_', ends in one of PASSWORD PASSWD PASS PWD
 * PASSPHRASE SECRET TOKEN KEY APIKEY CREDENTIALS, or has SECRET as one of
 * its words; a name whose last word is FILE never is (DB_PASSWORD_FILE
 * already points at a file).
 */

#include <stdbool.h>
#include <stddef.h>

#include "secretd/error.h"
#include "secretd/names.h"
#include "secretd/store.h"

/* The secret name for variable var: var itself, or in lower case when
 * lowercase is set; it must be a valid secret name (-EINVAL naming the
 * variable otherwise). */
int sd_migrate_secret_name(const char *var, bool lowercase, char out[SD_NAME_MAX + 1], sd_error *err);

/* True if var looks like it holds a secret (the rule above). */
bool sd_migrate_name_looks_secret(const char *var);

/* Refuse (-EEXIST) names[0..n) if two of them differ only in case, or one
 * differs only in case from a secret in store (store may be NULL: skipped).
 * A name equal to a stored one is fine: it becomes the next version.
 * origins[i] (may be NULL, or NULL entries) says where names[i] came from,
 * for the message ("DB_PASSWORD, app.env line 3"). */
int sd_migrate_check_case(struct sd_store *store, const char *const *names, const char *const *origins, size_t n,
                          sd_error *err);
