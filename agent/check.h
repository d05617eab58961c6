/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * `secretd check`: what `secretd run` would trip over on this host, found
 * before it starts.  One line per check on standard output, in this order:
 *
 *   config     the configuration file parses and is a root of trust
 *   agent key  exists, only its owner (root) can read it, parses
 *   realm pin  present and valid, and the store's policy chain verifies
 *              from it (when the store answers)
 *   store      opens and answers
 *   docker     dockerd answers GET /_ping on docker-socket
 *   plugin dir exists, a directory root owns and may write
 *   userns     whether dockerd remaps, and if so the dockremap id ranges
 *   seccomp    the agent's filter loads on this kernel (in a child)
 *
 * Each line is "ok   WHAT" or "FAIL WHAT: PROBLEM; FIX".  A failed check
 * does not stop the later ones: each works from what it can get (a
 * configuration file others can write is still read for their values).
 * Nothing secret is printed: of the agent key only its public line.
 */

/* The verb: parses argv (argv[0] is "check"), runs the checks and returns
 * the exit code (0 all ok, 1 any FAIL, 2 bad command line). */
int check_main(int argc, char **argv);
