/*
 * confine.c: the default seccomp filter (built in the parent) and, in the cloned child, rlimits,
 * no_new_privs, seccomp, the uid/gid switch and the capability sets.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* ---- the default seccomp profile ------------------------------------------------------- */

#if defined(__x86_64__)
#define PMD_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PMD_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/*
 * A denylist with default action ALLOW, returning EPERM for what Docker's default profile refuses
 * to a container without CAP_SYS_ADMIN & co: new mounts and namespaces, kernel modules, kexec, BPF,
 * the keyring (not namespaced), clock and swap changes, handle-based opens (the "shocker" escape),
 * perf, userfaultfd, old or obscure syscalls. Docker's profile is an allowlist; a denylist is
 * smaller and keeps new harmless syscalls working, at the cost of allowing new dangerous ones until
 * they are added here. ptrace is allowed, as Docker does on kernels >= 4.8, where seccomp re-checks
 * a syscall a tracer has changed (so ptrace cannot bypass the filter) and where CAP_SYS_PTRACE,
 * absent by default, still guards tracing anything but the container's own processes.
 * Only the native ABI is allowed: another arch (i386 binaries on x86_64) or the x32 ABI kills the
 * process, since the syscall numbers below would not mean the same there.
 */
static const int denied_syscalls[] = {
#ifdef __NR_mount
    __NR_mount,
#endif
#ifdef __NR_umount
    __NR_umount,
#endif
#ifdef __NR_umount2
    __NR_umount2,
#endif
#ifdef __NR_pivot_root
    __NR_pivot_root,
#endif
#ifdef __NR_move_mount
    __NR_move_mount,
#endif
#ifdef __NR_open_tree
    __NR_open_tree,
#endif
#ifdef __NR_fsopen
    __NR_fsopen,
#endif
#ifdef __NR_fsconfig
    __NR_fsconfig,
#endif
#ifdef __NR_fsmount
    __NR_fsmount,
#endif
#ifdef __NR_fspick
    __NR_fspick,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
#ifdef __NR_unshare
    __NR_unshare,
#endif
#ifdef __NR_setns
    __NR_setns,
#endif
#ifdef __NR_kexec_load
    __NR_kexec_load,
#endif
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
#ifdef __NR_init_module
    __NR_init_module,
#endif
#ifdef __NR_finit_module
    __NR_finit_module,
#endif
#ifdef __NR_delete_module
    __NR_delete_module,
#endif
#ifdef __NR_create_module
    __NR_create_module,
#endif
#ifdef __NR_get_kernel_syms
    __NR_get_kernel_syms,
#endif
#ifdef __NR_query_module
    __NR_query_module,
#endif
#ifdef __NR_bpf
    __NR_bpf,
#endif
#ifdef __NR_keyctl
    __NR_keyctl,
#endif
#ifdef __NR_add_key
    __NR_add_key,
#endif
#ifdef __NR_request_key
    __NR_request_key,
#endif
#ifdef __NR_reboot
    __NR_reboot,
#endif
#ifdef __NR_swapon
    __NR_swapon,
#endif
#ifdef __NR_swapoff
    __NR_swapoff,
#endif
#ifdef __NR_acct
    __NR_acct,
#endif
#ifdef __NR_settimeofday
    __NR_settimeofday,
#endif
#ifdef __NR_stime
    __NR_stime,
#endif
#ifdef __NR_clock_settime
    __NR_clock_settime,
#endif
#ifdef __NR_clock_adjtime
    __NR_clock_adjtime,
#endif
#ifdef __NR_adjtimex
    __NR_adjtimex,
#endif
#ifdef __NR_open_by_handle_at
    __NR_open_by_handle_at,
#endif
#ifdef __NR_name_to_handle_at
    __NR_name_to_handle_at,
#endif
#ifdef __NR_perf_event_open
    __NR_perf_event_open,
#endif
#ifdef __NR_userfaultfd
    __NR_userfaultfd,
#endif
#ifdef __NR_lookup_dcookie
    __NR_lookup_dcookie,
#endif
#ifdef __NR_quotactl
    __NR_quotactl,
#endif
#ifdef __NR_quotactl_fd
    __NR_quotactl_fd,
#endif
#ifdef __NR_iopl
    __NR_iopl,
#endif
#ifdef __NR_ioperm
    __NR_ioperm,
#endif
#ifdef __NR_nfsservctl
    __NR_nfsservctl,
#endif
#ifdef __NR_syslog
    __NR_syslog,
#endif
#ifdef __NR_vm86
    __NR_vm86,
#endif
#ifdef __NR_vm86old
    __NR_vm86old,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
#ifdef __NR_ustat
    __NR_ustat,
#endif
#ifdef __NR_sysfs
    __NR_sysfs,
#endif
#ifdef __NR__sysctl
    __NR__sysctl,
#endif
#ifdef __NR_fanotify_init
    __NR_fanotify_init,
#endif
#ifdef __NR_vhangup
    __NR_vhangup,
#endif
#ifdef __NR_kcmp
    __NR_kcmp,
#endif
};

#define NS_CLONE_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |     \
     CLONE_NEWCGROUP)

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#endif

static int emit(struct pmd_bpf *b, unsigned short code, unsigned int k, unsigned char jt,
                unsigned char jf)
{
    if (b->len >= PMD_BPF_MAX)
        return -1;
    b->insns[b->len++] = (struct sock_filter){code, jt, jf, k};
    return 0;
}

#define LD_ABS(off) emit(b, BPF_LD | BPF_W | BPF_ABS, (off), 0, 0)
#define JEQ(k, jt, jf) emit(b, BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define RET(k) emit(b, BPF_RET | BPF_K, (k), 0, 0)
#define DENY (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

int pmd_seccomp_build(int profile, struct pmd_bpf *b, struct pmd_error *err)
{
    int bad = 0;

    b->len = 0;
#ifndef PMD_AUDIT_ARCH
    return pmd_fail(err, ENOSYS, "seccomp", "%s", "no default profile for this architecture");
#else
    if (profile != PMD_SECCOMP_DEFAULT)
        return pmd_fail(err, EINVAL, "seccomp", "unknown profile %d", profile);
    bad |= LD_ABS(offsetof(struct seccomp_data, arch));
    bad |= JEQ(PMD_AUDIT_ARCH, 1, 0);
    bad |= RET(SECCOMP_RET_KILL_PROCESS);
    bad |= LD_ABS(offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
    bad |= emit(b, BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1);
    bad |= RET(SECCOMP_RET_KILL_PROCESS);
#endif
    for (size_t i = 0; i < sizeof denied_syscalls / sizeof denied_syscalls[0]; i++) {
        bad |= JEQ((unsigned)denied_syscalls[i], 0, 1);
        bad |= RET(DENY);
    }
    /* clone: refuse namespace flags (the flags are the low word of arg 0 on every ABI). */
    bad |= JEQ(__NR_clone, 0, 4);
    bad |= LD_ABS(ARG0_LO);
    bad |= emit(b, BPF_JMP | BPF_JSET | BPF_K, NS_CLONE_FLAGS, 0, 1);
    bad |= RET(DENY);
    bad |= RET(SECCOMP_RET_ALLOW);
    /*
     * clone3 passes its flags in memory, which seccomp cannot read: answer ENOSYS, so that glibc
     * (>= 2.34) falls back to clone, which is filtered above. This is what Docker does.
     */
#ifdef __NR_clone3
    bad |= JEQ(__NR_clone3, 0, 1);
    bad |= RET(SECCOMP_RET_ERRNO | ENOSYS);
#endif
    /* personality: only the values Docker allows (Linux, 32-bit, UNAME26, query). */
    bad |= JEQ(__NR_personality, 0, 8);
    bad |= LD_ABS(ARG0_LO);
    bad |= JEQ(0x0, 5, 0);
    bad |= JEQ(0x8, 4, 0);
    bad |= JEQ(0x20000, 3, 0);
    bad |= JEQ(0x20008, 2, 0);
    bad |= JEQ(0xffffffff, 1, 0);
    bad |= RET(DENY);
    bad |= RET(SECCOMP_RET_ALLOW);
    bad |= RET(SECCOMP_RET_ALLOW);
    if (bad)
        return pmd_fail(err, E2BIG, "seccomp", "%s", "filter longer than PMD_BPF_MAX");
    return 0;
#endif
}

/* ---- child: rlimits, no_new_privs, seccomp, identity, capabilities ----------------------- */

/*
 * The uid/gid calls go through syscall() on purpose. glibc's setresuid/setgroups are "setxid"
 * calls: in a process it believes multi-threaded (and our child inherited that belief from
 * CPython) they signal every other thread so that all change credentials together, and wait for
 * them. In the cloned child those threads do not exist, so the wrapper would signal stale thread
 * ids and wait forever. The raw syscalls change only the calling thread, which is all we have.
 */
static int child_identity(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    if (s->n_groups >= 0 && syscall(SYS_setgroups, (size_t)s->n_groups, s->groups) < 0)
        return pmd_cfail(err, errno, "setgroups", "");
    if (s->gid >= 0 && syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0)
        return pmd_cfail(err, errno, "setresgid", "");
    if (s->uid >= 0 && syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
        return pmd_cfail(err, errno, "setresuid", "");
    return 0;
}

/* The bounding set can only shrink, and dropping needs CAP_SETPCAP in the effective set, which a
 * switch to a non-zero uid clears: so this runs before child_identity. */
static int child_bounding(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    for (int cap = 0; cap < 64; cap++) {
        if (s->cap_bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past CAP_LAST_CAP of this kernel */
            return pmd_cfail(err, errno, "capbset drop", "");
        }
    }
    return 0;
}

static int child_caps(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)s->cap_effective, (uint32_t)s->cap_permitted, (uint32_t)s->cap_inheritable},
        {(uint32_t)(s->cap_effective >> 32), (uint32_t)(s->cap_permitted >> 32),
         (uint32_t)(s->cap_inheritable >> 32)},
    };

    if (syscall(SYS_capset, &hdr, data) < 0)
        return pmd_cfail(err, errno, "capset", "");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return pmd_cfail(err, errno, "ambient clear", "");
    for (int cap = 0; cap < 64; cap++)
        if ((s->cap_ambient & (1ULL << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return pmd_cfail(err, errno, "ambient raise", "");
    return 0;
}

int pmd_child_confine(const struct pmd_spawn_spec *s, const struct pmd_bpf *bpf,
                      struct pmd_error *err)
{
    static const char *const rlimit_names[] = {
        "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
        "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime",
    };

    /* Before the uid switch: lowering a hard limit is always allowed, raising needs
     * CAP_SYS_RESOURCE (EPERM here otherwise). */
    for (int i = 0; i < s->n_rlimits; i++) {
        const struct pmd_rlimit *r = &s->rlimits[i];
        struct rlimit rl = {(rlim_t)r->soft, (rlim_t)r->hard};
        if (setrlimit(r->resource, &rl) < 0)
            return pmd_cfail(err, errno, "setrlimit",
                             r->resource >= 0 && r->resource < 16 ? rlimit_names[r->resource] : "?");
    }
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pmd_cfail(err, errno, "prctl", "no_new_privs");
    /*
     * The filter goes in before the uid and capability changes: installing one needs either
     * no_new_privs or CAP_SYS_ADMIN, and we still hold the latter here, so seccomp works without
     * forcing no_new_privs. Nothing we do afterwards (setresuid, capset, prctl, chdir, execve) is
     * on the denylist.
     */
    if (bpf != NULL) {
        struct sock_fprog prog = {bpf->len, (struct sock_filter *)bpf->insns};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            return pmd_cfail(err, errno, "seccomp", "");
    }
    /* Keep the permitted set across the switch to a non-zero uid; capset then sets it exactly. */
    if (s->set_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return pmd_cfail(err, errno, "prctl", "keepcaps");
    if (s->set_caps && child_bounding(s, err) < 0)
        return -1;
    if (child_identity(s, err) < 0)
        return -1;
    if (s->set_caps && child_caps(s, err) < 0)
        return -1;
    return 0;
}
