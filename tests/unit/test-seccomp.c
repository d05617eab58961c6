/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The agent's real seccomp filter, installed in a forked child (a filter
 * cannot be taken off again, and the criterion worker must stay free): the
 * child tries each call, reports through a pipe and exits.  Every probe
 * also runs in a child without the filter, so each refusal is shown to come
 * from the filter and not from the kernel's own checks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "seccomp-filter.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

enum probe {
        TGKILL_FOREIGN,       /* tgkill(victim, victim, 0) */
        TKILL_FOREIGN,        /* tkill(victim, 0) */
        KILL_FOREIGN,         /* kill(victim, 0) */
        SIGQUEUE_FOREIGN,     /* rt_sigqueueinfo(victim, 0, SI_QUEUE) */
        SIGQUEUE_SELF,        /* rt_sigqueueinfo(self, SIGUSR1, SI_QUEUE) */
        RAISE_SELF,           /* raise(SIGUSR1): tgkill(getpid(), gettid()) */
        PTHREAD_KILL_THREAD,  /* pthread_kill(another thread of ours, SIGUSR1) */
        PRCTL_SET_NAME,       /* what libmicrohttpd does */
        PRCTL_SET_DUMPABLE,   /* undoing the agent's own hardening */
        EXECVE,               /* execve("/nonexistent") */
        N_PROBES,
};

static const char *const probe_names[N_PROBES] = {
        [TGKILL_FOREIGN] = "tgkill to another process",
        [TKILL_FOREIGN] = "tkill to another process",
        [KILL_FOREIGN] = "kill to another process",
        [SIGQUEUE_FOREIGN] = "rt_sigqueueinfo to another process",
        [SIGQUEUE_SELF] = "rt_sigqueueinfo to itself",
        [RAISE_SELF] = "raise",
        [PTHREAD_KILL_THREAD] = "pthread_kill to its own thread",
        [PRCTL_SET_NAME] = "prctl(PR_SET_NAME)",
        [PRCTL_SET_DUMPABLE] = "prctl(PR_SET_DUMPABLE, 1)",
        [EXECVE] = "execve",
};

struct outcome {
        int ret;
        int error;      /* errno when ret < 0 */
        bool handled;   /* for signals to itself: the handler ran, on the right thread */
};

struct report {
        int install;    /* seccomp_install()'s result, 0 when not asked */
        char install_message[SD_ERROR_MESSAGE_MAX];
        struct outcome o[N_PROBES];
};

static atomic_int handled_tid;

static void on_sigusr1(int sig) {
        (void) sig;
        atomic_store(&handled_tid, (int) gettid());
}

struct waiter {
        int fd;                  /* read end of a pipe nobody writes to */
        atomic_int tid;
};

/* Waits with SIGUSR1 unblocked only inside ppoll, so a signal sent as soon
 * as tid is published is delivered there, never lost. */
static void *waiter_main(void *arg) {
        struct waiter *w = arg;
        sigset_t during;
        pthread_sigmask(SIG_SETMASK, NULL, &during);
        sigdelset(&during, SIGUSR1);
        atomic_store(&w->tid, (int) gettid());
        struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
        /* Returns -1/EINTR once the handler ran, or 1 when the pipe's
         * write end is closed (the signal was refused); the deadline only
         * keeps a lost signal from hanging the test. */
        const struct timespec deadline = { .tv_sec = 10 };
        (void) ppoll(&pfd, 1, &deadline, &during);
        return NULL;
}

static struct outcome result(long ret) {
        return (struct outcome) { .ret = (int) ret, .error = ret < 0 ? errno : 0 };
}

static void probe_all(pid_t victim, struct report *rep) {
        siginfo_t si;

        rep->o[TGKILL_FOREIGN] = result(syscall(SYS_tgkill, victim, victim, 0));
        rep->o[TKILL_FOREIGN] = result(syscall(SYS_tkill, victim, 0));
        rep->o[KILL_FOREIGN] = result(kill(victim, 0));
        memset(&si, 0, sizeof(si));
        si.si_code = SI_QUEUE;
        si.si_pid = getpid();
        si.si_uid = getuid();
        rep->o[SIGQUEUE_FOREIGN] = result(syscall(SYS_rt_sigqueueinfo, victim, 0, &si));

        atomic_store(&handled_tid, 0);
        rep->o[SIGQUEUE_SELF] = result(syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si));
        rep->o[SIGQUEUE_SELF].handled = atomic_load(&handled_tid) == (int) gettid();

        atomic_store(&handled_tid, 0);
        rep->o[RAISE_SELF] = result(raise(SIGUSR1) == 0 ? 0 : -1);
        rep->o[RAISE_SELF].handled = atomic_load(&handled_tid) == (int) gettid();

        /* A signal to another thread of the process, as the agent's stop
         * path and libraries may send. */
        int p[2];
        struct waiter w = { .fd = -1 };
        pthread_t thread;
        sigset_t usr1, old;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        if (pipe2(p, O_CLOEXEC) == 0) {
                w.fd = p[0];
                atomic_store(&handled_tid, 0);
                pthread_sigmask(SIG_BLOCK, &usr1, &old);
                if (pthread_create(&thread, NULL, waiter_main, &w) == 0) {
                        while (atomic_load(&w.tid) == 0)
                                sched_yield();
                        int e = pthread_kill(thread, SIGUSR1);
                        rep->o[PTHREAD_KILL_THREAD] = (struct outcome) { .ret = e ? -1 : 0, .error = e };
                        /* Only a refused signal needs the pipe to end the
                         * wait: a ready fd would win over a pending signal. */
                        if (e)
                                close(p[1]);
                        pthread_join(thread, NULL);
                        if (!e)
                                close(p[1]);
                        rep->o[PTHREAD_KILL_THREAD].handled = atomic_load(&handled_tid) == atomic_load(&w.tid);
                } else {
                        rep->o[PTHREAD_KILL_THREAD] = (struct outcome) { .ret = -2 };
                        close(p[1]);
                }
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                close(p[0]);
        }

        rep->o[PRCTL_SET_NAME] = result(prctl(PR_SET_NAME, "probe", 0, 0, 0));
        rep->o[PRCTL_SET_DUMPABLE] = result(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
        char *const argv[] = { (char *) "nonexistent", NULL };
        char *const envp[] = { NULL };
        rep->o[EXECVE] = result(execve("/nonexistent/secretd-seccomp-probe", argv, envp));
}

/* Fork, optionally install the agent's filter, probe, report. */
static void run_child(bool filtered, pid_t victim, struct report *rep) {
        int p[2];
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                struct report mine;
                memset(&mine, 0, sizeof(mine));
                struct sigaction sa = { .sa_handler = on_sigusr1 };
                sigemptyset(&sa.sa_mask);
                (void) sigaction(SIGUSR1, &sa, NULL);
                if (filtered) {
                        size_t n = 0;
                        sd_error err = { 0 };
                        mine.install = seccomp_install(&n, &err);
                        memcpy(mine.install_message, err.message, sizeof(err.message));
                }
                if (mine.install == 0)
                        probe_all(victim, &mine);
                ssize_t w = write(p[1], &mine, sizeof(mine));
                _exit(w == (ssize_t) sizeof(mine) ? 0 : 3);
        }
        close(p[1]);
        size_t got = 0;
        while (got < sizeof(*rep)) {
                ssize_t n = read(p[0], (char *) rep + got, sizeof(*rep) - got);
                if (n < 0 && errno == EINTR)
                        continue;
                cr_assert_gt(n, 0, "the probing child died before reporting");
                got += (size_t) n;
        }
        close(p[0]);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

static pid_t start_victim(void) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                for (;;)
                        pause();
        }
        return pid;
}

static void stop_victim(pid_t pid) {
        cr_assert_eq(kill(pid, SIGKILL), 0, "the victim survived every probe (signal 0 only)");
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
}

static void assert_allowed(const struct report *rep, enum probe p, bool needs_handler) {
        cr_expect_eq(rep->o[p].ret, 0, "%s: %s", probe_names[p], strerror(rep->o[p].error));
        if (needs_handler)
                cr_expect(rep->o[p].handled, "%s: the handler did not run on the target thread", probe_names[p]);
}

static void assert_refused(const struct report *rep, enum probe p) {
        cr_expect_eq(rep->o[p].ret, -1, "%s: allowed under the filter", probe_names[p]);
        cr_expect_eq(rep->o[p].error, EPERM, "%s: %s, not EPERM", probe_names[p], strerror(rep->o[p].error));
}

Test(seccomp, signals_reach_only_the_agents_own_thread_group) {
#if !HAVE_LIBSECCOMP
        cr_skip_test("built without libseccomp");
#endif
        /* valgrind runs the child on its own signal machinery and cannot
         * apply a filter to all threads (TSYNC); the plain and ASan runs of
         * this test cover the filter. */
        if (RUNNING_ON_VALGRIND)
                cr_skip_test("under valgrind");
        pid_t victim = start_victim();
        struct report bare, filtered;
        run_child(false, victim, &bare);
        run_child(true, victim, &filtered);
        stop_victim(victim);

        /* Control: without the filter every probe works, so the refusals
         * below are the filter's. */
        assert_allowed(&bare, TGKILL_FOREIGN, false);
        assert_allowed(&bare, TKILL_FOREIGN, false);
        assert_allowed(&bare, KILL_FOREIGN, false);
        assert_allowed(&bare, SIGQUEUE_FOREIGN, false);
        assert_allowed(&bare, SIGQUEUE_SELF, true);
        assert_allowed(&bare, RAISE_SELF, true);
        assert_allowed(&bare, PTHREAD_KILL_THREAD, true);
        assert_allowed(&bare, PRCTL_SET_DUMPABLE, false);
        cr_expect_eq(bare.o[EXECVE].error, ENOENT, "control: execve of a missing file is ENOENT");

        cr_assert_eq(filtered.install, 0, "seccomp_install: %s", filtered.install_message);
        assert_refused(&filtered, TGKILL_FOREIGN);
        assert_refused(&filtered, TKILL_FOREIGN);
        assert_refused(&filtered, KILL_FOREIGN);
        assert_refused(&filtered, SIGQUEUE_FOREIGN);
        assert_refused(&filtered, SIGQUEUE_SELF);
        assert_allowed(&filtered, RAISE_SELF, true);
        assert_allowed(&filtered, PTHREAD_KILL_THREAD, true);
        assert_allowed(&filtered, PRCTL_SET_NAME, false);
        assert_refused(&filtered, PRCTL_SET_DUMPABLE);
        assert_refused(&filtered, EXECVE);
}
