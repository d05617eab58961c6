/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* compose migrate's planner (libyaml tree, interpolation, rewriting, diff)
 * on arbitrary compose files.  env_file names resolve in an empty scratch
 * directory, so only the compose text varies. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretd/compose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[] = "/tmp/fuzz-compose-XXXXXX";
static int scratch_fd = -1;
static struct sd_dotenv *dotenv;

static void remove_scratch(void) {
        (void) rmdir(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (scratch_fd < 0) {
                static const char env[] = "DB_PASSWORD=canary-fuzz-db\nEMPTY=\nREF=${X}\nUID=1000\n";
                if (!mkdtemp(scratch) || (scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
                    sd_dotenv_parse(env, sizeof(env) - 1, ".env", &dotenv, NULL) < 0)
                        abort();
                atexit(remove_scratch);
        }
        static const char *const vars[] = { "DSN" }, *const skip[] = { "OLD_TOKEN" };
        struct sd_compose_options o = {
                .compose_name = "fuzz.yml",
                .output_name = "fuzz.secretd.yml",
                .dirfd = scratch_fd,
                .dotenv = dotenv,
                .dotenv_name = ".env",
                .vars = vars,
                .n_vars = 1,
                .skip = skip,
                .n_skip = 1,
        };
        sd_error err = { 0 };
        struct sd_compose_plan *plan = NULL;
        int r = sd_compose_plan(data, size, &o, &plan, &err);
        if (r < 0) {
                /* One line, and never a planner bug (EPROTO: overlapping
                 * edits, or a rewritten file that does not parse). */
                if (strchr(err.message, '\n') || r == -EPROTO || !err.message[0])
                        abort();
                return 0;
        }
        if (plan->n_secrets == 0 || plan->n_files == 0 || strcmp(plan->files[0].name, "fuzz.secretd.yml") != 0)
                abort();
        for (size_t s = 0; s < plan->n_secrets; s++) {
                const struct sd_secret *v = plan->secrets[s].value;
                if (v->len == 0 || memmem(plan->diff, plan->diff_len, v->data, v->len))
                        abort();
                for (size_t f = 0; f < plan->n_files; f++)
                        if (memmem(plan->files[f].text, plan->files[f].len, v->data, v->len))
                                abort();
        }
        sd_compose_plan_free(plan);
        return 0;
}
