/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The agent's parts wired as daemon.c wires them, in a temporary directory
 * and without CAP_SYS_ADMIN: a file store with a realm (policy v1: the
 * writer is its admin and a writer of every name, this agent's key the
 * recipient "host"), the agent pinned to it, the notes, a registry over
 * in-memory instances (fake-instances.h), delivery and the plugin
 * endpoints.  Secrets are put with the library, as `secretctl put` does.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "delivery.h"
#include "driver.h"
#include "fake-instances.h"
#include "notes.h"
#include "registry.h"
#include "secretd/client.h"
#include "secretd/keys.h"
#include "secretd/store.h"
#include "secretd/policy.h"
#include "secretd/realm.h"

struct agent_fixture {
        char dir[64];                     /* everything lives below it */
        char state_dir[128];
        char floor_path[128];
        char audit_path[128];
        char store_url[160];
        struct sd_writer_key *writer;     /* the realm's admin; puts sign with it */
        struct sd_policy *policy;         /* the latest published version */
        struct sd_realm *realm;           /* the agent's view, pinned to version 1 */
        struct sd_agent_key *key;
        struct sd_box_keypair keys[1];
        struct sd_store *store;
        struct fake_instances *instances;
        struct audit *audit;
        struct notes notes;
        struct registry_caps caps;
        /* Set before fixture_open() to read envelopes from elsewhere. */
        const struct envelope_source *source;
        /* Set before fixture_open(): how long a Mount retries an
         * unreachable store (0: delivery's default). */
        unsigned store_retry_ms;
        /* Set before fixture_open(): what a Mount does when the newest
         * version does not verify. */
        enum sd_on_unverifiable on_unverifiable;
        struct registry *registry;
        struct delivery *delivery;
        struct driver driver;
};

/* Everything but the registry and delivery, then fixture_open(). */
void fixture_setup(struct agent_fixture *f);
/* Open the registry (loading the state directory) and delivery.  0 or the
 * registry_open() error (err filled). */
int fixture_open(struct agent_fixture *f, sd_error *err);
/* Free the registry and delivery, as an agent that stops. */
void fixture_close(struct agent_fixture *f);
void fixture_teardown(struct agent_fixture *f);

/* Put text as the next version of name; the version. */
uint64_t fixture_put(struct agent_fixture *f, const char *name, const char *text);
/* Sign draft (the next version of f->policy) as the admin and store it as
 * the realm's latest policy; f->policy becomes it.  Takes the draft. */
void fixture_publish(struct agent_fixture *f, struct sd_policy *draft);
/* Store, as the next version of name, an envelope sealed and signed by
 * `signer` under a policy of the same realm id that signer made up (the
 * store is untrusted: anyone may write it); the version. */
uint64_t fixture_put_forged(struct agent_fixture *f, const struct sd_writer_key *signer, const char *name,
                            const char *text);
/* A tombstone as the next version. */
uint64_t fixture_delete(struct agent_fixture *f, const char *name);

/* POST body to path through driver_dispatch; the reply as compact JSON
 * text with sorted keys (malloc()ed), its status in *status (may be
 * NULL). */
char *fixture_call(struct agent_fixture *f, const char *path, unsigned *status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* The whole file at path (malloc()ed, its length in *len_out, may be
 * NULL), "" for one that cannot be read, NULL if it cannot be opened. */
char *fixture_read_path(const char *path, size_t *len_out);
/* The same for a path under the fixture's directory. */
char *fixture_read(struct agent_fixture *f, const char *relative);

/* File `file` of instance id holds want (NULL: there is no such file). */
void fixture_assert_file(struct agent_fixture *f, const char *id, const char *file, const char *want);
/* Some line of the audit log contains a (and b, unless NULL). */
bool fixture_audit_has(struct agent_fixture *f, const char *a, const char *b);

/* A 64-hex mount id made from n. */
void fixture_mount_id(unsigned n, char out[65]);
