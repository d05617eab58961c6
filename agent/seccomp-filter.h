/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Not "seccomp.h": agent/ is on the include path and would hide
 * libseccomp's <seccomp.h>. */

/*
 * The agent's system-call allow-list (docs/agent.md, "seccomp").  Installed
 * once start-up is done (configuration, keys, store, state and socket are
 * open) and before the plugin server starts, on every thread of the process
 * (SECCOMP_FILTER_FLAG_TSYNC).  A call outside the list fails with EPERM
 * instead of killing the agent, and the kernel logs it (audit type 1326,
 * "syscall=N") so a missing entry is found from the journal or dmesg.
 * Signals may be sent only to the installing process's own thread group
 * (tgkill with its pid), and prctl only with the options the agent uses.
 */

#include <stddef.h>

#include "secretd/error.h"

/* Install the filter.  -EOPNOTSUPP when built without libseccomp;
 * otherwise a libseccomp or kernel failure.  *n_allowed_out: how many
 * system calls the list holds on this architecture. */
int seccomp_install(size_t *n_allowed_out, sd_error *err);
