/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "secretd/client.h"

struct clitest_env cli;

static void free_env(void) {
        sd_agent_key_free(cli.agent);
        free(cli.agent_pub);
        free(cli.root);
        free(cli.home);
        free(cli.config);
        free(cli.store_dir);
        free(cli.store_url);
        free(cli.identity);
        memset(&cli, 0, sizeof(cli));
}

int clitest_setup_env(void) {
        /* A reader that went away must show up as EPIPE, not kill the test. */
        (void) signal(SIGPIPE, SIG_IGN);

        cli.secretctl = secure_getenv("SECRETCTL");
        if (!cli.secretctl || cli.secretctl[0] == '\0')
                return -ENOENT;
        const char *tmp = secure_getenv("TMPDIR");
        if (!tmp || tmp[0] != '/')
                tmp = "/tmp";
        char *root = NULL;
        if (asprintf(&root, "%s/secretctl-cli-XXXXXX", tmp) < 0)
                return -ENOMEM;
        if (!mkdtemp(root)) {
                int e = errno;
                free(root);
                return -e;
        }
        cli.root = root;
        if (asprintf(&cli.home, "%s/home", root) < 0 || asprintf(&cli.config, "%s/config", root) < 0 ||
            asprintf(&cli.store_dir, "%s/store", root) < 0 ||
            asprintf(&cli.store_url, "file://%s/store", root) < 0 ||
            asprintf(&cli.identity, "%s/config/secretctl/identity", root) < 0)
                return -ENOMEM;
        if (mkdir(cli.home, 0700) < 0 || mkdir(cli.config, 0700) < 0)
                return -errno;
        return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (type == FTW_DP)
                return rmdir(path) < 0 ? -1 : 0;
        return unlink(path) < 0 ? -1 : 0;
}

void clitest_teardown_env(void) {
        if (!cli.root)
                return;
        const char *keep = secure_getenv("SECRETD_TEST_KEEP");
        if (keep && strcmp(keep, "1") == 0)
                fprintf(stderr, "clitest: keeping %s\n", cli.root);
        else
                (void) nftw(cli.root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        free_env();
}

void clitest_setup(void) {
        int r = clitest_setup_env();
        if (r < 0) {
                fprintf(stderr, "clitest: setup failed (%s); is SECRETCTL set?\n", strerror(-r));
                abort();
        }
}

void clitest_teardown(void) {
        clitest_teardown_env();
}

void clitest_setup_with_identity(void) {
        clitest_setup();
        struct cli_result r;
        const char *keygen[] = { "keygen", NULL };
        int e = cli_runv(&r, NULL, keygen);
        if (e < 0 || r.status != 0) {
                fprintf(stderr, "clitest: secretctl keygen failed (%d): %s\n", e < 0 ? e : r.status,
                        r.err ? r.err : "");
                cli_result_free(&r);
                clitest_teardown_env();
                abort();
        }
        cli_result_free(&r);
}

void clitest_setup_with_realm(void) {
        clitest_setup_with_identity();
        if (sd_agent_key_generate(&cli.agent, NULL) < 0 || sd_agent_pub_format(cli.agent->box_pk, &cli.agent_pub) < 0) {
                fprintf(stderr, "clitest: cannot make an agent key\n");
                clitest_teardown_env();
                abort();
        }
        struct cli_result r;
        const char *add[] = { "recipient", "add", "host", cli.agent_pub, NULL };
        int e = cli_runv(&r, NULL, add);
        if (e < 0 || r.status != 0) {
                fprintf(stderr, "clitest: secretctl recipient add failed (%d): %s\n", e < 0 ? e : r.status,
                        r.err ? r.err : "");
                cli_result_free(&r);
                clitest_teardown_env();
                abort();
        }
        cli_result_free(&r);
}

int clitest_agent_fetch(const struct sd_agent_key *agent, const char *name, uint64_t version,
                        struct sd_secret **value, sd_error *err) {
        struct cli_result r;
        const char *pin_args[] = { "realm", "pin", NULL };
        int e = cli_runv(&r, NULL, pin_args);
        if (e < 0 || r.status != 0) {
                int rc = sd_error_set(err, EINVAL, "secretctl realm pin failed: %s", r.err ? r.err : "");
                cli_result_free(&r);
                return rc;
        }
        struct sd_realm_pin pin;
        int rc = sd_realm_pin_parse(r.out, &pin, err);
        cli_result_free(&r);
        if (rc < 0)
                return rc;
        char state[4096];
        (void) snprintf(state, sizeof(state), "%s/agent-realm.json", cli.root);
        struct sd_store *store = NULL;
        rc = sd_store_open(cli.store_url, 0, &store, err);
        if (rc < 0)
                return rc;
        struct sd_realm *realm = NULL;
        rc = sd_realm_new(store, &pin, state, &realm, err);
        if (rc >= 0) {
                const struct sd_box_keypair kp = { agent->box_pk, agent->box_sk };
                rc = sd_secret_fetch(realm, &kp, 1, name, version, 0, value, NULL, err);
        }
        sd_realm_free(realm);
        sd_store_free(store);
        return rc;
}

/* ---- running secretctl ---- */

struct buffer {
        char *data;
        size_t len, cap;
};

static int buffer_append(struct buffer *b, const void *data, size_t len) {
        if (b->len + len + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + len + 1)
                        cap *= 2;
                char *bigger = realloc(b->data, cap);
                if (!bigger)
                        return -ENOMEM;
                b->data = bigger;
                b->cap = cap;
        }
        memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

static char *buffer_steal(struct buffer *b, size_t *len) {
        if (!b->data)
                (void) buffer_append(b, "", 0);
        char *d = b->data;
        *len = b->len;
        b->data = NULL;
        return d;
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

static const char *const passed_through[] = {
        "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MSAN_OPTIONS", "TMPDIR",
};

static int env_push(char ***envp, size_t *n, const char *entry) {
        const char *eq = strchr(entry, '=');
        size_t key_len = eq ? (size_t) (eq - entry) : strlen(entry);
        for (size_t i = 0; i < *n; i++) {
                if (strncmp((*envp)[i], entry, key_len) == 0 && (*envp)[i][key_len] == '=') {
                        free((*envp)[i]);
                        (*envp)[i] = (*envp)[--*n];
                        (*envp)[*n] = NULL;
                        break;
                }
        }
        if (!eq)
                return 0;
        char **bigger = realloc(*envp, (*n + 2) * sizeof(char *));
        if (!bigger)
                return -ENOMEM;
        *envp = bigger;
        if (!(bigger[*n] = strdup(entry)))
                return -ENOMEM;
        bigger[++*n] = NULL;
        return 0;
}

static void env_free(char **envp) {
        for (size_t i = 0; envp && envp[i]; i++)
                free(envp[i]);
        free(envp);
}

static char **build_env(const struct cli_opts *opts) {
        char **envp = NULL, *entry = NULL;
        size_t n = 0;
        int r = 0;
        const char *pairs[][2] = {
                { "PATH", "/usr/local/bin:/usr/bin:/bin" },
                { "HOME", cli.home },
                { "XDG_CONFIG_HOME", cli.config },
                { "SECRETD_STORE", cli.store_url },
                { "LC_ALL", "C" },
        };
        for (size_t i = 0; r >= 0 && i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                if (!pairs[i][1])
                        continue;
                if (asprintf(&entry, "%s=%s", pairs[i][0], pairs[i][1]) < 0)
                        r = -ENOMEM;
                else
                        r = env_push(&envp, &n, entry);
                free(entry);
        }
        for (size_t i = 0; r >= 0 && i < sizeof(passed_through) / sizeof(passed_through[0]); i++) {
                const char *v = secure_getenv(passed_through[i]);
                if (!v)
                        continue;
                if (asprintf(&entry, "%s=%s", passed_through[i], v) < 0)
                        r = -ENOMEM;
                else
                        r = env_push(&envp, &n, entry);
                free(entry);
        }
        for (size_t i = 0; r >= 0 && opts && opts->env && opts->env[i]; i++)
                r = env_push(&envp, &n, opts->env[i]);
        if (r < 0 || !envp) {
                env_free(envp);
                return NULL;
        }
        return envp;
}

static char *read_proc(pid_t pid, const char *what, char sep) {
        char path[64], *data = NULL;
        size_t len = 0;
        (void) snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, what);
        if (clitest_read_file(path, &data, &len) < 0)
                return strdup("");
        for (size_t i = 0; i < len; i++)
                if (data[i] == '\0')
                        data[i] = sep;
        return data;
}

static void close_fd(int *fd) {
        if (*fd >= 0)
                (void) close(*fd);
        *fd = -1;
}

static int open_pty(int *master, int *slave) {
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0)
                return -errno;
        char name[128];
        if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
                int e = errno;
                close(m);
                return -e;
        }
        int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) {
                int e = errno;
                close(m);
                return -e;
        }
        *master = m;
        *slave = s;
        return 0;
}

int cli_runv(struct cli_result *res, const struct cli_opts *opts, const char *const *args) {
        static const struct cli_opts defaults = { 0 };
        if (!opts)
                opts = &defaults;
        memset(res, 0, sizeof(*res));
        res->status = -1;

        size_t n_args = 0;
        while (args[n_args])
                n_args++;
        const char **argv = calloc(n_args + 2, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        argv[0] = cli.secretctl;
        struct buffer joined = { 0 };
        (void) buffer_append(&joined, cli.secretctl, strlen(cli.secretctl));
        for (size_t i = 0; i < n_args; i++) {
                argv[i + 1] = args[i];
                (void) buffer_append(&joined, " ", 1);
                (void) buffer_append(&joined, args[i], strlen(args[i]));
        }
        size_t ignored;
        res->cmdline = buffer_steal(&joined, &ignored);

        char **envp = build_env(opts);
        if (!envp) {
                free(argv);
                return -ENOMEM;
        }

        int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
        int exec_pipe[2] = { -1, -1 }, master = -1, slave = -1;
        int r = 0;
        if ((opts->input && pipe2(in_pipe, O_CLOEXEC) < 0) || pipe2(out_pipe, O_CLOEXEC) < 0 ||
            pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(exec_pipe, O_CLOEXEC) < 0)
                r = -errno;
        if (r >= 0 && (opts->tty_stdin || opts->tty_stdout))
                r = open_pty(&master, &slave);

        double start = now_ms();
        pid_t pid = r >= 0 ? fork() : -1;
        if (r >= 0 && pid < 0)
                r = -errno;
        if (pid == 0) {
                /* Child: only async-signal-safe calls until execve. */
                int in = opts->input ? in_pipe[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (slave >= 0) {
                        (void) setsid();
                        (void) ioctl(slave, TIOCSCTTY, 0);
                }
                if (opts->tty_stdin)
                        in = slave;
                int out = opts->tty_stdout ? slave : out_pipe[1];
                if (dup2(in, 0) >= 0 && dup2(out, 1) >= 0 && dup2(err_pipe[1], 2) >= 0) {
                        (void) signal(SIGPIPE, SIG_DFL);
                        execve(cli.secretctl, (char *const *) argv, envp);
                }
                int e = errno;
                (void) !write(exec_pipe[1], &e, sizeof(e));
                _exit(127);
        }
        close_fd(&in_pipe[0]);
        close_fd(&out_pipe[1]);
        close_fd(&err_pipe[1]);
        close_fd(&exec_pipe[1]);
        close_fd(&slave);
        free(argv);
        env_free(envp);
        if (r < 0) {
                close_fd(&in_pipe[1]);
                close_fd(&out_pipe[0]);
                close_fd(&err_pipe[0]);
                close_fd(&exec_pipe[0]);
                close_fd(&master);
                return r;
        }

        /* EOF on the close-on-exec pipe: execve succeeded.  Until stdin is
         * written the child cannot have consumed its value, so what /proc
         * shows now is what any other user could have seen. */
        int exec_errno = 0;
        ssize_t got;
        do
                got = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
        while (got < 0 && errno == EINTR);
        close_fd(&exec_pipe[0]);
        if (got > 0) {
                (void) waitpid(pid, NULL, 0);
                close_fd(&in_pipe[1]);
                close_fd(&out_pipe[0]);
                close_fd(&err_pipe[0]);
                close_fd(&master);
                return -exec_errno;
        }
        res->proc_cmdline = read_proc(pid, "cmdline", ' ');
        res->proc_environ = read_proc(pid, "environ", '\n');

        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (in_pipe[1] >= 0)
                (void) fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
        int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 120000;
        double deadline = start + timeout;
        size_t in_off = 0, step = 0, tty_seen = 0;
        struct buffer out = { 0 }, err = { 0 }, tty = { 0 };
        bool exited = false;
        int wstatus = 0;

        while (!exited || out_pipe[0] >= 0 || err_pipe[0] >= 0) {
                struct pollfd p[5];
                int np = 0, i_in = -1, i_out = -1, i_err = -1, i_tty = -1, i_pid = -1;
                if (in_pipe[1] >= 0)
                        p[i_in = np++] = (struct pollfd) { in_pipe[1], POLLOUT, 0 };
                if (out_pipe[0] >= 0)
                        p[i_out = np++] = (struct pollfd) { out_pipe[0], POLLIN, 0 };
                if (err_pipe[0] >= 0)
                        p[i_err = np++] = (struct pollfd) { err_pipe[0], POLLIN, 0 };
                if (master >= 0)
                        p[i_tty = np++] = (struct pollfd) { master, POLLIN, 0 };
                if (pidfd >= 0 && !exited)
                        p[i_pid = np++] = (struct pollfd) { pidfd, POLLIN, 0 };

                int left = (int) (deadline - now_ms());
                if (left <= 0) {
                        res->timed_out = true;
                        break;
                }
                /* Without a pidfd, fall back to checking for exit every 10 ms. */
                int n = poll(p, (nfds_t) np, pidfd >= 0 ? left : (left < 10 ? left : 10));
                if (n < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (n <= 0 && pidfd >= 0)
                        continue;

                if (i_in >= 0 && p[i_in].revents) {
                        ssize_t w = write(in_pipe[1], (const char *) opts->input + in_off,
                                          opts->input_len - in_off);
                        if (w > 0)
                                in_off += (size_t) w;
                        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == opts->input_len)
                                close_fd(&in_pipe[1]);
                }
                int fds[2] = { i_out, i_err };
                int *pipes[2] = { &out_pipe[0], &err_pipe[0] };
                struct buffer *bufs[2] = { &out, &err };
                for (int k = 0; k < 2; k++) {
                        if (fds[k] < 0 || !p[fds[k]].revents)
                                continue;
                        char chunk[65536];
                        ssize_t rd = read(*pipes[k], chunk, sizeof(chunk));
                        if (rd > 0)
                                (void) buffer_append(bufs[k], chunk, (size_t) rd);
                        else if (rd == 0 || (errno != EINTR && errno != EAGAIN))
                                close_fd(pipes[k]);
                }
                if (i_tty >= 0 && p[i_tty].revents) {
                        char chunk[4096];
                        ssize_t rd = read(master, chunk, sizeof(chunk));
                        if (rd > 0)
                                (void) buffer_append(&tty, chunk, (size_t) rd);
                        else if (rd == 0 || (errno != EINTR && errno != EAGAIN))
                                close_fd(&master);  /* EIO: the last slave fd closed */
                }
                /* Type the next line once the terminal shows what we wait for. */
                if (master >= 0 && opts->tty_script && opts->tty_script[step].expect && tty.data) {
                        const char *found = strstr(tty.data + tty_seen, opts->tty_script[step].expect);
                        if (found) {
                                tty_seen = (size_t) (found - tty.data) + strlen(opts->tty_script[step].expect);
                                const char *s = opts->tty_script[step].send;
                                (void) !write(master, s, strlen(s));
                                step++;
                        }
                }
                if (!exited && (i_pid < 0 || p[i_pid].revents)) {
                        pid_t w = waitpid(pid, &wstatus, pidfd >= 0 ? 0 : WNOHANG);
                        if (w == pid)
                                exited = true;
                }
        }
        if (!exited) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, &wstatus, 0);
        }
        res->elapsed_ms = now_ms() - start;
        if (pidfd >= 0)
                close(pidfd);
        close_fd(&in_pipe[1]);
        close_fd(&out_pipe[0]);
        close_fd(&err_pipe[0]);
        /* Drain what the terminal still holds. */
        while (master >= 0) {
                struct pollfd pm = { master, POLLIN, 0 };
                char chunk[4096];
                ssize_t rd;
                if (poll(&pm, 1, 0) <= 0 || (rd = read(master, chunk, sizeof(chunk))) <= 0)
                        break;
                (void) buffer_append(&tty, chunk, (size_t) rd);
        }
        close_fd(&master);

        res->out = buffer_steal(&out, &res->out_len);
        res->err = buffer_steal(&err, &res->err_len);
        res->tty = buffer_steal(&tty, &res->tty_len);
        if (res->timed_out)
                res->status = -1;
        else if (WIFEXITED(wstatus))
                res->status = WEXITSTATUS(wstatus);
        else if (WIFSIGNALED(wstatus))
                res->status = 128 + WTERMSIG(wstatus);
        return r;
}

/* The NULL-terminated arguments of a variadic call, at most 63. */
static void collect_args(const char *args[64], va_list ap) {
        size_t n = 0;
        for (const char *a; (a = va_arg(ap, const char *)) && n < 63;)
                args[n++] = a;
        args[n] = NULL;
}

int cli_run(struct cli_result *res, const struct cli_opts *opts, ...) {
        const char *args[64];
        va_list ap;
        va_start(ap, opts);
        collect_args(args, ap);
        va_end(ap);
        return cli_runv(res, opts, args);
}

int cli_run_as(struct cli_result *res, const char *who, const char *input, ...) {
        const char *args[64];
        va_list ap;
        va_start(ap, input);
        collect_args(args, ap);
        va_end(ap);
        char env[4200];
        (void) snprintf(env, sizeof(env), "XDG_CONFIG_HOME=%s/%s", cli.root, who ? who : "config");
        const char *envs[] = { env, NULL };
        struct cli_opts opts = { .env = envs, .input = input, .input_len = input ? strlen(input) : 0 };
        return cli_runv(res, &opts, args);
}

int clitest_person(const char *who, char line[512]) {
        char dir[4200];
        (void) snprintf(dir, sizeof(dir), "%s/%s", cli.root, who);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        struct cli_result r = { 0 };
        int ret = cli_run_as(&r, who, NULL, "keygen", NULL);
        if (ret == 0 && r.status != 0)
                ret = -EIO;
        if (ret == 0)
                (void) snprintf(line, 512, "%.*s", (int) strcspn(r.out, "\n"), r.out);
        cli_result_free(&r);
        return ret;
}

void cli_result_free(struct cli_result *res) {
        free(res->out);
        free(res->err);
        free(res->tty);
        free(res->cmdline);
        free(res->proc_cmdline);
        free(res->proc_environ);
        memset(res, 0, sizeof(*res));
}

/* ---- files ---- */

int clitest_read_file(const char *path, char **data, size_t *len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct buffer b = { 0 };
        for (;;) {
                char chunk[65536];
                ssize_t n = read(fd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        close(fd);
                        free(b.data);
                        return -e;
                }
                if (n == 0)
                        break;
                if (buffer_append(&b, chunk, (size_t) n) < 0) {
                        close(fd);
                        free(b.data);
                        return -ENOMEM;
                }
        }
        close(fd);
        *data = buffer_steal(&b, len);
        return 0;
}

int clitest_write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                p += n;
                len -= (size_t) n;
        }
        return close(fd) < 0 ? -errno : 0;
}

bool clitest_memmem(const void *hay, size_t hay_len, const char *needle) {
        return hay && memmem(hay, hay_len, needle, strlen(needle)) != NULL;
}

int clitest_walk(const char *dir, int (*fn)(const char *path, const char *data, size_t len, void *u),
                 void *u) {
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        int r = 0;
        for (struct dirent *de; r == 0 && (de = readdir(d));) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char *path = NULL;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                struct stat st;
                if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                        r = clitest_walk(path, fn, u);
                } else if (S_ISREG(st.st_mode)) {
                        char *data = NULL;
                        size_t len = 0;
                        if (clitest_read_file(path, &data, &len) == 0)
                                r = fn(path, data, len, u);
                        free(data);
                }
                free(path);
        }
        closedir(d);
        return r;
}

struct find_envelope {
        const char *name;
        uint64_t version;
        char *found;
};

static int match_envelope(const char *path, const char *data, size_t len, void *u) {
        struct find_envelope *f = u;
        json_t *j = json_loadb(data, len, 0, NULL);
        if (!j)
                return 0;
        const char *name = json_string_value(json_object_get(j, "name"));
        json_t *version = json_object_get(j, "version");
        const char *kind = json_string_value(json_object_get(j, "kind"));
        int hit = name && kind && strcmp(kind, "recipient") != 0 && strcmp(name, f->name) == 0 &&
                  json_is_integer(version) && (uint64_t) json_integer_value(version) == f->version;
        json_decref(j);
        if (hit)
                f->found = strdup(path);
        return hit;
}

char *clitest_find_envelope(const char *name, uint64_t version) {
        struct find_envelope f = { name, version, NULL };
        (void) clitest_walk(cli.store_dir, match_envelope, &f);
        return f.found;
}

char *clitest_random_text(size_t len) {
        char *s = malloc(len + 1);
        if (!s)
                return NULL;
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = 0;
                if (fd < 0 || read(fd, &c, 1) != 1)
                        c = (unsigned char) rand();
                s[i] = "0123456789abcdef"[c & 15];
        }
        if (fd >= 0)
                close(fd);
        s[len] = '\0';
        return s;
}
