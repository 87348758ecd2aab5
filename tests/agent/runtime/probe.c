/* The system calls busybox cannot make, for the seccomp tests: `probe CALL...` prints one line
 * per CALL, "CALL ok" or "CALL E<name>", and exits 0. Built static at test time (see
 * the probe_dir fixture of tests/agent/runtime/conftest.py), so that it runs in a busybox container. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name_of(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    default: return "E?";
    }
}

static void report(const char *call, long rc) {
    if (rc < 0)
        printf("%s %s\n", call, name_of(errno));
    else
        printf("%s ok\n", call);
}

/* A child made with these clone flags exits at once; the parent reaps it. */
static long clone_with(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, 0, 0);
    return pid;
}

/* clone3 takes its flags in a struct, which seccomp cannot look into: the profile answers ENOSYS
 * (without CAP_SYS_ADMIN), so that a libc falls back to clone, whose flags it can. */
static long clone3_newuser(void) {
    unsigned long long args[8] = {0}; /* struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, ... */
    args[0] = CLONE_NEWUSER;
    args[4] = SIGCHLD;
    long pid = syscall(SYS_clone3, args, sizeof args);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, 0, 0);
    return pid;
}

#if defined(__x86_64__)
/* The i386 ABI from a 64-bit process: `int $0x80` with i386 syscall numbers. */
static long int80(long nr, long a, long b, long c) {
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    if (rc < 0 && rc > -4096) {
        errno = -rc;
        return -1;
    }
    return rc;
}
#endif

/* Install a filter of our own that allows everything: filters stack, so the runtime's still holds. */
static long own_filter(void) {
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static long ptrace_child(void) {
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    long rc = ptrace(PTRACE_ATTACH, pid, 0, 0);
    int saved = errno;
    kill(pid, SIGKILL);
    waitpid(pid, 0, 0);
    errno = saved;
    return rc;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *c = argv[i];
        long rc;
        errno = 0;
        if (!strcmp(c, "keyctl"))
            rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
        else if (!strcmp(c, "add_key"))
            rc = syscall(SYS_add_key, "user", "moorage-probe", "x", 1, -3);
        else if (!strcmp(c, "clone_newuser"))
            rc = clone_with(CLONE_NEWUSER);
        else if (!strcmp(c, "clone3_newuser"))
            rc = clone3_newuser();
        else if (!strcmp(c, "clone_plain"))
            rc = clone_with(0);
        else if (!strcmp(c, "unshare_newns"))
            rc = syscall(SYS_unshare, CLONE_NEWNS);
        else if (!strcmp(c, "personality_query"))
            rc = syscall(SYS_personality, 0xffffffffUL);
        else if (!strcmp(c, "personality_linux32"))
            rc = syscall(SYS_personality, 0x0008UL);
        else if (!strcmp(c, "personality_no_randomize"))
            rc = syscall(SYS_personality, 0x0040000UL); /* ADDR_NO_RANDOMIZE: not in the allowlist */
        else if (!strcmp(c, "open_by_handle_at"))
            rc = syscall(SYS_open_by_handle_at, AT_FDCWD, (void *)8 /* a bad address */, O_RDONLY);
        else if (!strcmp(c, "own_filter_then_keyctl")) {
            rc = own_filter();
            report("own_filter", rc);
            rc = syscall(SYS_keyctl, 0, -3, 0);
        } else if (!strcmp(c, "ptrace_child"))
            rc = ptrace_child();
        else if (!strcmp(c, "unknown_syscall"))
            rc = syscall(1000); /* beyond every syscall the filter names */
#if defined(__x86_64__)
        else if (!strcmp(c, "int80_getpid"))
            rc = int80(20, 0, 0, 0);
        else if (!strcmp(c, "int80_keyctl"))
            rc = int80(288, 0, -3, 0);
        else if (!strcmp(c, "int80_unshare_newuser"))
            rc = int80(310, CLONE_NEWUSER, 0, 0);
#endif
        else {
            printf("%s unknown-probe\n", c);
            continue;
        }
        report(c, rc);
    }
    return 0;
}
