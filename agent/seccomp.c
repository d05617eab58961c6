/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "config.h"
#if HAVE_LIBSECCOMP
#include <seccomp.h>
#endif

#include "secretd/cleanup.h"
#include "seccomp-filter.h"

#if defined(__SANITIZE_ADDRESS__)
#define SECRETD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECRETD_SANITIZED 1
#endif
#endif
#ifndef SECRETD_SANITIZED
#define SECRETD_SANITIZED 0
#endif

#if HAVE_LIBSECCOMP
/*
 * Everything the agent does after start-up, collected with strace -f over
 * the integration suite and grouped by why it is needed.  Names this
 * architecture or this libseccomp does not know are skipped, so the list
 * stays portable (e.g. "open" exists on x86_64 but not on aarch64).
 * strace over test-plugin, -rotation, -lifecycle, -agent-restart, -userns,
 * -sockets, -admin, -caps, -store-attacks, -etcd-store and -compose saw 69
 * distinct calls after the filter went on; the rest are their close
 * relatives (pread64 next to pwrite64, epoll_pwait next to poll, the TCP
 * side of sockets for an etcd store) so that a library update choosing a
 * sibling call does not break the agent.
 * Deliberately absent: execve/execveat, ioctl, mount (the old API),
 * ptrace, process_vm_*, bpf, kexec_*, init_module, pivot_root, chroot,
 * setns, unshare, keyctl, userfaultfd, perf_event_open, seccomp,
 * setuid/setgid and friends, kill, tkill, rt_sigqueueinfo,
 * rt_tgsigqueueinfo, arch_prctl.  Signals and prctl are allowed only with
 * the arguments below (allowed_with_args).
 */
static const char *const allowed_syscalls[] = {
        /* files below the state directory, the store, the log */
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
        "pwritev2", "lseek", "close", "close_range", "open", "openat", "openat2", "stat", "fstat",
        "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2",
        "readlink", "readlinkat", "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "unlink",
        "unlinkat", "rename", "renameat", "renameat2", "symlink", "symlinkat", "link", "linkat",
        "chmod", "fchmod", "fchmodat", "fchown", "fchownat", "fsync", "fdatasync", "ftruncate",
        "flock", "fcntl", "dup", "dup2", "dup3", "pipe", "pipe2", "umask", "getcwd", "utimensat",
        "fadvise64",
        /* a Mount copies a file from another instance, tmpfs to tmpfs,
         * without the value passing through user memory (src/tmpfs.c) */
        "sendfile",
        /* tmpfs instances (src/tmpfs.c: the new mount API; umount2 to
         * unmount).  Plain mount(2) is not needed and not allowed.  These
         * take paths and fds a filter cannot inspect, so they could mount
         * anywhere (docs/agent.md "seccomp" says so). */
        "umount2", "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "mount_setattr",
        /* the file store's watch, the event loops of libmicrohttpd and
         * libcurl, stop fds */
        "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "epoll_create", "epoll_create1",
        "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
        "pselect6", "eventfd2",
        /* the plugin and admin sockets, dockerd, etcd, sd_notify */
        "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
        "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
        "sendmmsg", "recvmmsg", "shutdown",
        /* threads (one per connection), locks, memory: sodium_malloc
         * guards and locks its pages */
        "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "clone", "clone3",
        "exit", "exit_group", "set_tid_address", "mmap", "munmap", "mprotect", "mremap", "madvise",
        "mlock", "mlock2", "munlock", "brk", "membarrier", "sched_yield", "sched_getaffinity",
        "getcpu",
        /* time, randomness, identity */
        "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
        "getrandom", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
        "getresuid", "getresgid", "getgroups", "uname", "sysinfo", "prlimit64", "getrlimit",
        "getrusage", "times",
        /* signals: sigwaitinfo on the main thread; sending is tgkill only,
         * below */
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
        "restart_syscall",
#if SECRETD_SANITIZED
        /* Sanitizer builds only (CI's ASan run): LeakSanitizer stops the
         * world at exit with a ptrace-ing helper task and waits for it;
         * without these it aborts with "does not work under ptrace" and
         * the agent exits 1.  It also asks for PR_SET_DUMPABLE,
         * PR_SET_PTRACER and PR_SET_PDEATHSIG, but copes with EPERM for
         * them (the agent runs as root), so those stay refused.  Release
         * builds never allow ptrace. */
        "ptrace", "wait4", "waitid",
#endif
};

/* Options of prctl(2) the agent still uses once the filter is on.  strace
 * over the suite saw one: libmicrohttpd names each of its threads
 * ("MHD-connection", "MHD-listen").  Everything else (PR_SET_DUMPABLE back
 * to 1, PR_SET_SECCOMP, PR_CAP_AMBIENT, PR_SET_MM, PR_SET_PTRACER, ...)
 * fails with EPERM. */
static const unsigned long allowed_prctl_options[] = {
        PR_SET_NAME,
};

/* Argument 0 equals value in its low 32 bits: the kernel reads tgkill's
 * tgid and prctl's option as int, so the upper half is not looked at.
 * (libseccomp's SCMP_A0_32() spells the same, through a variadic macro
 * that clang's -Wpedantic refuses.) */
static struct scmp_arg_cmp arg0_is(uint32_t value) {
        return (struct scmp_arg_cmp) {
                .arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = UINT32_MAX, .datum_b = value,
        };
}

static void seccomp_releasep(scmp_filter_ctx *ctx) {
        if (*ctx)
                seccomp_release(*ctx);
}

int seccomp_install(size_t *n_allowed_out, sd_error *err) {
        /* EPERM, not KILL_PROCESS: a forgotten entry turns into one failed
         * request with a message in the log, not an agent that vanishes
         * while containers depend on it (running containers keep their
         * secrets either way).  CTL_LOG makes the kernel record every
         * refused call. */
        __attribute__((cleanup(seccomp_releasep))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return sd_error_set(err, ENOMEM, "seccomp: cannot create a filter");
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r < 0)
                return sd_error_set_errno(err, -r, "seccomp: cannot ask for all threads");
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
        if (r < 0 && r != -EOPNOTSUPP)
                return sd_error_set_errno(err, -r, "seccomp: cannot turn on logging");

        size_t n = 0;
        for (size_t i = 0; i < SD_ARRAY_SIZE(allowed_syscalls); i++) {
                int nr = seccomp_syscall_resolve_name(allowed_syscalls[i]);
                if (nr == __NR_SCMP_ERROR || nr < 0)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
                if (r < 0)
                        return sd_error_set_errno(err, -r, "seccomp: cannot allow %s", allowed_syscalls[i]);
                n++;
        }

        /* Signals only to the agent's own thread group: raise(), abort()
         * and pthread_kill() all send with tgkill(getpid(), tid, sig).
         * tkill (any tid, no thread group to check), kill and
         * rt_sigqueueinfo are not allowed at all.  The pid is taken now:
         * the filter is installed after the last fork. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, arg0_is((uint32_t) getpid()));
        if (r < 0)
                return sd_error_set_errno(err, -r, "seccomp: cannot allow tgkill to this process");
        n++;
        for (size_t i = 0; i < SD_ARRAY_SIZE(allowed_prctl_options); i++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                     arg0_is((uint32_t) allowed_prctl_options[i]));
                if (r < 0)
                        return sd_error_set_errno(err, -r, "seccomp: cannot allow prctl option %lu",
                                                  allowed_prctl_options[i]);
        }
        n++;
        r = seccomp_load(ctx);
        if (r < 0)
                return sd_error_set_errno(err, -r, "seccomp: the kernel refused the filter");
        *n_allowed_out = n;
        return 0;
}
#else
int seccomp_install(size_t *n_allowed_out, sd_error *err) {
        return sd_error_set(err, EOPNOTSUPP, "seccomp: secretd was built without libseccomp");
}
#endif
