/*
 * Probe for test_security.py: calls about sixty syscalls directly, by number, and prints
 * "name=RESULT" for each: "ok" when it returned >= 0, else the errno's name. The arguments are
 * chosen so that a call the filter lets through fails in the kernel on its arguments (a NULL
 * pointer, fd -1, a bad flag: EFAULT, EBADF, EINVAL) rather than doing anything, so that the
 * test can tell the filter's EPERM or ENOSYS from the kernel's own answer by running the probe
 * once more without a filter. Static, so that it runs in any image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define AF_VSOCK_ 40

static void report(const char *name, long r, int e)
{
    const char *s = r >= 0 ? "ok" : strerrorname_np(e);
    printf("%s=%s\n", name, s ? s : "?");
}

#define CALL(name, ...)                                                                            \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long r_ = syscall(__VA_ARGS__);                                                            \
        report(name, r_, errno);                                                                   \
    } while (0)

/* clone: the child exits at once; only the parent reports. */
static void probe_clone(const char *name, unsigned long flags)
{
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    int e = errno;

    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    report(name, r, e);
}

/* The i386 entry point of this 64-bit process: numbers of unistd_32.h, result in eax. */
static void probe_int80(const char *name, long nr)
{
    long ret;

    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(0), "c"(0), "d"(0), "S"(0), "D"(0)
                     : "memory");
    report(name, ret < 0 ? -1 : ret, (int)-ret);
}

int main(void)
{
    pid_t me = getpid();

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Ordinary calls, allowed everywhere. */
    CALL("getpid", SYS_getpid);
    CALL("read", SYS_read, -1, NULL, 0);
    CALL("openat", SYS_openat, -1, NULL, 0);
    CALL("io_uring_setup", SYS_io_uring_setup, 0, NULL);
    CALL("name_to_handle_at", SYS_name_to_handle_at, -1, NULL, NULL, NULL, 0);
    CALL("socket_unix", SYS_socket, 1 /* AF_UNIX */, 0xdead, 0);
    CALL("personality_query", SYS_personality, 0xffffffffUL);
    CALL("futex_waitv", 449, NULL, 0, 0xdead, NULL, 0);
    probe_clone("clone_plain", 0);
    /* Argument filters. */
    CALL("socket_vsock", SYS_socket, AF_VSOCK_, 0xdead, 0);
    CALL("personality_norandom", SYS_personality, 0x0040000UL);
    probe_clone("clone_newns", CLONE_NEWNS);
    probe_clone("clone_newuser", CLONE_NEWUSER);
    CALL("clone3", SYS_clone3, NULL, 0);
    /* CAP_SYS_ADMIN's. */
    CALL("unshare", SYS_unshare, 0x1 /* not a flag unshare takes */);
    CALL("setns", SYS_setns, -1, 0);
    CALL("bpf", SYS_bpf, -1, NULL, 0);
    CALL("perf_event_open", SYS_perf_event_open, NULL, 0, -1, -1, 0);
    CALL("fanotify_init", SYS_fanotify_init, 0xffffffff, 0);
    CALL("quotactl", SYS_quotactl, 0, NULL, 0, NULL);
    CALL("quotactl_fd", SYS_quotactl_fd, -1, 0, 0, NULL);
    CALL("sethostname", SYS_sethostname, NULL, 100000);
    CALL("syslog", SYS_syslog, 10000, NULL, 0);
    /* The mount family: refused whatever the capabilities (stricter than Docker). */
    CALL("mount", SYS_mount, NULL, NULL, NULL, 0, NULL);
    CALL("umount2", SYS_umount2, NULL, 0);
    CALL("pivot_root", SYS_pivot_root, NULL, NULL);
    CALL("open_tree", SYS_open_tree, -1, NULL, 0);
    CALL("move_mount", SYS_move_mount, -1, NULL, -1, NULL, 0);
    CALL("fsopen", SYS_fsopen, NULL, 0);
    CALL("fsconfig", SYS_fsconfig, -1, 0, NULL, NULL, 0);
    CALL("fsmount", SYS_fsmount, -1, 0, 0);
    CALL("fspick", SYS_fspick, -1, NULL, 0);
    CALL("mount_setattr", SYS_mount_setattr, -1, NULL, 0, NULL, 0);
    /* Keyring: not namespaced. */
    CALL("add_key", SYS_add_key, NULL, NULL, NULL, 0, 0);
    CALL("keyctl", SYS_keyctl, -1, 0, 0, 0, 0);
    CALL("request_key", SYS_request_key, NULL, NULL, NULL, 0);
    /* CAP_SYS_PTRACE's (process_vm_*: stricter than Docker's profile, which allows them). */
    CALL("ptrace", SYS_ptrace, 0x7fff, 0, NULL, NULL);
    CALL("process_vm_readv", SYS_process_vm_readv, me, NULL, 1, NULL, 1, 0xdead);
    CALL("process_vm_writev", SYS_process_vm_writev, me, NULL, 1, NULL, 1, 0xdead);
    CALL("pidfd_getfd", SYS_pidfd_getfd, -1, -1, 0);
    CALL("process_madvise", SYS_process_madvise, -1, NULL, 0, 0, 0);
    CALL("kcmp", SYS_kcmp, me, me, 0xdead, 0, 0);
    /* CAP_SYS_NICE's: NUMA placement (migrate_pages and move_pages never, as in Docker). */
    CALL("mbind", SYS_mbind, NULL, 0, 0xdead, NULL, 0, 0);
    CALL("set_mempolicy", SYS_set_mempolicy, 0xdead, NULL, 0);
    CALL("get_mempolicy", SYS_get_mempolicy, NULL, NULL, 0, NULL, 0xdead);
    CALL("migrate_pages", SYS_migrate_pages, me, 0, NULL, NULL);
    CALL("move_pages", SYS_move_pages, me, 1, NULL, NULL, NULL, 0xdead);
    CALL("set_mempolicy_home_node", 450, 0, 0, 0, 0xdead);
    /* Others' capabilities, and old or obscure calls Docker refuses. */
    CALL("reboot", SYS_reboot, 0, 0, 0, NULL);
    CALL("open_by_handle_at", SYS_open_by_handle_at, -1, NULL, 0);
    CALL("clock_settime", SYS_clock_settime, 0xdead, NULL);
    CALL("settimeofday", SYS_settimeofday, NULL, (void *)1);
    CALL("iopl", SYS_iopl, 0xdead);
    CALL("acct", SYS_acct, (void *)1);
    CALL("userfaultfd", SYS_userfaultfd, 0xdead);
    CALL("uselib", SYS_uselib, NULL);
    CALL("ustat", SYS_ustat, 0, NULL);
    CALL("sysfs", SYS_sysfs, 0xdead, 0, 0);
    CALL("vhangup", SYS_vhangup);
    CALL("lookup_dcookie", SYS_lookup_dcookie, 0, NULL, 0);
    /* Newer than Docker's profile: numbers above its newest syscall answer ENOSYS. */
    CALL("cachestat", 451, -1, NULL, NULL, 0);
    CALL("fchmodat2", 452, -1, NULL, 0, 0xdead);
    CALL("map_shadow_stack", 453, 0, 0, 0xdead);
    CALL("statmount", 457, NULL, NULL, 0, 0xdead);
    CALL("listmount", 458, NULL, NULL, 0, 0xdead);
    CALL("lsm_list_modules", 461, NULL, NULL, 0xdead);
    CALL("mseal", 462, 1, 0, 0xdead);
    CALL("open_tree_attr", 467, -1, NULL, 0, NULL, 0);
    /* The i386 entry point (int 0x80) of a 64-bit process is filtered with i386's numbers. */
    probe_int80("int80_getpid", 20);
    probe_int80("int80_mount", 21);
    probe_int80("int80_unshare", 310);
    probe_int80("int80_keyctl", 288);
    /* The x32 numbers of x86_64 calls (bit 30). */
    CALL("x32_mount", 0x40000000 | 165, NULL, NULL, NULL, 0, NULL);
    return 0;
}
