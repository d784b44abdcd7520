/*
 * pmd.h: THE boundary between pyminidocker's Python and its C shim.
 *
 * This file is parsed by cffi as the cdef and included by every C source, so it must stay
 * within what both understand: no #include, no include guard, no macros other than integer
 * constants. Rules (see ../shared/ARCHITECTURE.md):
 *   - every entry point returns 0 on success or -1 and fills struct pmd_error;
 *   - only ints, const char *, and the fixed structs below cross the boundary;
 *   - C never returns memory that Python must free.
 * The functions of the "layer extraction" section are a cffi module of their own, the only one
 * linked with libarchive and libcrypto, so that a container start does not load them; all the
 * rest, their types and constants included, is pyminidocker._pmd (see build_ffi.py).
 */

/* ---- errors ------------------------------------------------------------------------- */

#define PMD_OP_MAX 64
#define PMD_PATH_MAX 1024

struct pmd_error {
    int err;                  /* errno (or EINVAL/EIO for format errors) */
    char op[PMD_OP_MAX];      /* what failed, e.g. "mount", "layer entry" */
    char path[PMD_PATH_MAX];  /* the path or detail it failed on, may be empty */
};

/* ---- layer extraction (extract.c) ---------------------------------------------------- */

#define PMD_COMPRESS_NONE 0
#define PMD_COMPRESS_GZIP 1
#define PMD_COMPRESS_ZSTD 2

struct pmd_extract_result {
    char compressed_digest[72];   /* "sha256:<64 hex>" of the bytes read from fd */
    char diff_id[72];             /* "sha256:<64 hex>" of the uncompressed tar stream */
    uint64_t compressed_size;     /* bytes read from fd */
    uint64_t uncompressed_size;   /* bytes of the uncompressed tar stream */
    uint64_t entries;             /* tar entries processed */
};

/*
 * Extract the layer tar read from fd (until EOF) into the existing, empty directory dest,
 * converting OCI whiteouts to overlayfs ones (.wh.NAME -> 0/0 char device, .wh..wh..opq ->
 * trusted.overlay.opaque=y). Hostile entries (.. components, writes through symlinks, links
 * that leave dest) fail the extraction with EPERM/EXDEV and the entry's name in err->path.
 * The whole stream is read and hashed even past the tar's end-of-archive marker.
 * Releases no resources of the caller: fd stays open.
 */
int pmd_layer_extract(int fd, const char *dest, int compression,
                      struct pmd_extract_result *res, struct pmd_error *err);

/* ---- containers (spawn.c, mount.c, confine.c) ----------------------------------------- */

/*
 * Spawning a container process. Python decides policy (which namespaces, mounts, capabilities,
 * paths); C executes it between clone() and execve(), in a child that runs no Python and, since
 * the parent is a multi-threaded CPython, calls no malloc, stdio or lock: everything the child
 * needs (including the seccomp BPF program) is prepared by pmd_spawn before it clones.
 *
 * Child sequence (each step only if asked for):
 *   join cgroups (write "0" to each of cgroup_procs) -> unshare the cgroup namespace (so that its
 *   root is the container's cgroup) -> wait for release (hold) -> setns (join_pid) -> stdio dup2,
 *   every other fd close-on-exec -> setsid (+ TIOCSCTTY on stdin) -> sethostname -> make all
 *   mounts rprivate -> bind rootfs onto itself -> mounts[] in order, targets resolved inside the
 *   rootfs -> standard /dev nodes and symlinks (dev_setup) -> create_hooks -> wait for the second
 *   release (hold_mounted) -> pivot_root (chroot without a mount namespace) -> masked_paths ->
 *   readonly_paths -> read-only root -> console -> rlimits -> no_new_privs -> seccomp_prog
 *   loaded -> drop from the bounding set -> setgroups/setresgid/setresuid keeping capabilities -> capset,
 *   ambient -> chdir(cwd) -> execve (argv[0] without '/' is searched in the PATH of envp).
 *   Signal handlers are reset to default and the signal mask emptied for the new program.
 *
 * Errors. pmd_spawn returns 0 with proc filled, or -1 with err filled and nothing left behind (no
 * child, no fd). The child reports over a close-on-exec pipe: its phase times just before execve,
 * then either EOF (execve succeeded) or struct pmd_error (it failed). "Command not found" is err
 * ENOENT with op "exec" and argv[0] as path (a runtime maps it to exit 127); a command that cannot
 * be run is EACCES (126). A child that dies before reporting (killed during setup) is ECHILD with
 * op "child died during setup". A child that failed is reaped by C before the error is returned.
 *
 * Holding. With hold set, pmd_spawn returns as soon as the child exists (proc->pid is valid and
 * the child, in its cgroups, blocks before its next step; the caller may configure its network now), and
 * the caller must call pmd_spawn_release exactly once, which lets the child go on and returns the
 * child's setup result as above. To abort instead, close proc->release_fd and proc->error_fd and
 * reap the pid: the child sees EOF and exits 127 without running anything.
 * With hold_mounted as well, the child stops a second time, after its mounts and create_hooks,
 * before pivot_root (an OCI `create` whose createContainer hooks must run, and may fail it,
 * before `start`): the first pmd_spawn_release returns 0 once the child is there, with
 * proc->release_fd and proc->error_fd still set (still held), or its setup error; the second
 * lets it go on to execve as above. Aborting works the same at either point.
 *
 * Joining. With join_pid, the child setns()es into the namespaces of that process that the
 * namespaces mask names (after joining cgroup_procs), instead of creating new ones; rootfs, mounts,
 * dev_setup, masked/read-only paths, readonly_root, hostname and hold must be unset (the
 * container's init did all that). Joining a pid namespace only applies to children, so the child
 * then clones once more, with CLONE_PARENT: proc->pid is that grandchild, the caller's own child,
 * in the container's pid namespace; the intermediate is reaped by pmd_spawn. The confinement
 * steps (rlimits to exec) run as for a new container.
 */

struct pmd_hook {
    const char *path;         /* absolute: in the container's filesystem (hooks), the caller's
                                 (create_hooks, which run before pivot_root) */
    const char *const *argv;  /* NULL-terminated; NULL = { path } */
    const char *const *envp;  /* NULL-terminated or NULL (empty environment) */
    int timeout;              /* seconds, 0 = none */
};

#define PMD_MOUNT_MKDIR 1     /* pmd_mount.flags: create the target (dir, or file for a file source) */

struct pmd_mount {
    const char *source;       /* bind source (host path), or the fs's source name ("proc", "tmpfs") */
    const char *target;       /* absolute path inside the container (resolved within rootfs) */
    const char *fstype;       /* NULL for a bind mount (MS_BIND must be in mount_flags) */
    unsigned long mount_flags;/* MS_* flags; MS_RDONLY on a bind mount is applied by a remount */
    const char *data;         /* fs options, e.g. "mode=755,size=65536k"; may be NULL */
    int flags;                /* PMD_MOUNT_* */
};

struct pmd_rlimit {
    int resource;             /* RLIMIT_* */
    uint64_t soft;            /* RLIM_INFINITY is (uint64_t)-1 */
    uint64_t hard;
};

/* One instruction of a classic BPF program: struct sock_filter of linux/filter.h. */
struct pmd_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
};

struct pmd_spawn_spec {
    int namespaces;           /* CLONE_NEW* mask: NEWNS NEWUTS NEWIPC NEWPID NEWNET NEWCGROUP
                                 NEWUSER (see uid_map) */
    const char *rootfs;       /* directory to pivot_root into (needs CLONE_NEWNS); NULL = host fs */
    int readonly_root;        /* remount the root read-only after the mounts */
    const struct pmd_mount *mounts;    /* mounted in order, after rootfs is bound */
    int n_mounts;
    int dev_setup;            /* create null zero full random urandom tty, ptmx/fd/std* symlinks in
                                 /dev (a tmpfs the mounts provide) */
    const char *const *masked_paths;   /* NULL-terminated or NULL; /dev/null or ro tmpfs over each */
    const char *const *readonly_paths; /* NULL-terminated or NULL; bind + remount read-only */
    const char *hostname;     /* NULL = unchanged (needs CLONE_NEWUTS) */
    const char *const *argv;  /* NULL-terminated, argv[0] required */
    const char *const *envp;  /* NULL-terminated or NULL (empty environment) */
    const char *cwd;          /* NULL = "/" */
    int uid;                  /* -1 = unchanged */
    int gid;                  /* -1 = unchanged */
    const unsigned int *groups;/* supplementary groups */
    int n_groups;             /* -1 = unchanged, 0 = none */
    int set_caps;             /* 0: leave capabilities as inherited; 1: apply the five sets below */
    uint64_t cap_bounding;    /* bit n = capability n (CAP_CHOWN = 0, ...) */
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_inheritable;
    uint64_t cap_ambient;
    const struct pmd_rlimit *rlimits;
    int n_rlimits;
    int no_new_privs;
    const struct pmd_bpf_insn *seccomp_prog; /* a program of pmd_seccomp_compile, or NULL: none */
    int seccomp_len;          /* its instructions, 1..PMD_SECCOMP_PROG_MAX */
    unsigned int seccomp_flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2), e.g. LOG = 2 */
    /* NULL-terminated or NULL: the cgroup.procs (v1: tasks) files to join */
    const char *const *cgroup_procs;
    int stdin_fd;             /* -1 = inherit the caller's fd 0; likewise for 1 and 2 */
    int stdout_fd;
    int stderr_fd;
    int setsid;               /* new session; with ctty, stdin (a tty) becomes the controlling tty */
    int ctty;
    int hold;                 /* see "Holding" above */
    int join_pid;             /* > 0: enter the `namespaces` of this running process instead of
                                 creating new ones (docker exec); see "Joining" above */
    int console;              /* allocate a pty in the container's /dev/pts (after pivot_root):
                                 its peer becomes stdio, controlling tty (new session) and
                                 /dev/console; the master comes back in pmd_proc.console_fd */
    /* Run in order in the container, after the confinement, just before execve (the OCI
       startContainer hooks): each as a child of the container's process, with its ids,
       capabilities and namespaces, its path resolved in the container's root; stdin reads
       hooks_stdin_fd from offset 0 (the caller writes the state there, e.g. into a memfd,
       before the release); its stdout and stderr are kept apart (memfds; the container's
       where those are refused). A hook that exits non-zero fails the spawn with EIO, op
       "startContainer hook N: exit status S", path "stdout: ..., stderr: ..." (its output, one
       line, cut to fit); one that outlives its timeout is killed and fails it with ETIMEDOUT,
       path its path. */
    const struct pmd_hook *hooks;
    int n_hooks;
    int hooks_stdin_fd;       /* -1: hooks read an empty stdin (/dev/null's EOF) */
    /* The OCI createContainer hooks: run as hooks are (same ids, output, errors, op
       "createContainer hook N: ..."), but after the mounts and /dev and before pivot_root, in
       the container's namespaces with the caller's filesystem as root; stdin reads
       create_hooks_stdin_fd (the caller writes it before the release that reaches them). */
    const struct pmd_hook *create_hooks;
    int n_create_hooks;
    int create_hooks_stdin_fd;
    int hold_mounted;         /* with hold: stop again before pivot_root (see "Holding") */
    /* CLONE_NEWUSER in namespaces (needs hold): after clone, pmd_spawn writes these to the
       child's /proc/PID/uid_map and gid_map ("inside outside count" lines), before the caller
       can release it; the child then takes uid/gid 0 of its namespace before its first step
       (joining cgroups is done before, as the host's root, as the files' owner). */
    const char *uid_map;
    const char *gid_map;
    /* Sharing (docker run --pid/--ipc container:X): the namespaces in share_namespaces
       (CLONE_NEWPID, CLONE_NEWIPC; none of them in namespaces) are those of the running
       process share_pid, entered instead of created, while the rest of the spec makes a new
       container as usual. A pid namespace applies to children only: pmd_spawn enters it
       around its clone and returns to its own; the others the child enters before its mounts
       (so /dev/mqueue is the shared namespace's). Excludes join_pid. */
    int share_pid;
    int share_namespaces;
    /* The mount namespace. With mounts_joined, the caller has entered the one the container is
       to use (an OCI namespace joined by path) and the filesystem sequence (rootfs, mounts,
       pivot_root, paths) runs in it as in a new one, without CLONE_NEWNS in namespaces.
       Without either, rootfs is entered by chroot and nothing may be mounted (an OCI config
       without a mount namespace: the container shares the caller's, which is not ours to
       change). */
    int mounts_joined;
    /* The caller has entered the user namespace the container is to use (joined by path): the
       child takes uid/gid 0 of it, as of a new one, after joining its cgroups. */
    int userns_joined;
    /* MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE, with MS_REC or not: applied to the new
       root once everything is mounted (OCI linux.rootfsPropagation); 0 = it stays private. */
    int root_propagation;
};

/*
 * pmd_proc.trace_ns: CLOCK_MONOTONIC nanoseconds at each phase, 0 for a phase not reached; filled
 * by pmd_spawn (held: by pmd_spawn_release), also when the child failed.
 */
#define PMD_TRACE_CLONE 0     /* parent, just before clone */
#define PMD_TRACE_START 1     /* child running (after the release, if held) */
#define PMD_TRACE_PROCESS 2   /* cgroups, cgroup ns, stdio, session, hostname done */
#define PMD_TRACE_MOUNTS 3    /* rootfs bound, mounts[] and /dev done */
#define PMD_TRACE_PIVOT 4     /* pivot_root, masked and read-only paths, read-only root done
                                 (after create_hooks and the second hold, if any) */
#define PMD_TRACE_CONFINE 5   /* rlimits, seccomp, ids, capabilities, chdir done: execve next */
#define PMD_TRACE_N 6

struct pmd_proc {
    int pid;                  /* in the caller's pid namespace */
    int release_fd;           /* hold only, else -1: pmd_spawn_release writes and closes it */
    int error_fd;             /* hold only, else -1: pmd_spawn_release reads and closes it */
    uint64_t trace_ns[6];     /* PMD_TRACE_N */
    int console_fd;           /* spec->console: the pty master (close-on-exec), else -1; the
                                 caller owns it once pmd_spawn (held: pmd_spawn_release) succeeds */
};

int pmd_spawn(const struct pmd_spawn_spec *spec, struct pmd_proc *proc, struct pmd_error *err);
int pmd_spawn_release(struct pmd_proc *proc, struct pmd_error *err);

#define PMD_OVERLAY_RDONLY 1   /* pmd_overlay_mount flags: MS_RDONLY */
#define PMD_OVERLAY_VOLATILE 2 /* the upper layer is never synced (Linux >= 5.10; else ignored) */

/*
 * Mount an overlay on target. lowerdirs is a ':'-separated list, top layer first (no ',' or ':' or
 * '\\' inside a path: EINVAL). upper and work are NULL for a read-only overlay (then at least two
 * lowers are needed). flags: PMD_OVERLAY_*. VOLATILE suits an upper layer that is thrown away
 * after one use: the kernel skips every sync of it (fsync in the container, and the sync of the
 * whole upper filesystem at umount); it leaves a marker in work/ that makes a later mount of
 * the same upper fail (EINVAL) unless the caller removes work/work/incompat first. Options
 * index=off and redirect_dir=off are always set (layers may be shared between overlays and
 * moved). When the option string does not fit in a page, the new mount API is used, adding the
 * lowers one by one ("lowerdir+", Linux >= 6.8); E2BIG on older kernels.
 */
int pmd_overlay_mount(const char *lowerdirs, const char *upper, const char *work,
                      const char *target, int flags, struct pmd_error *err);

/* umount2(target, flags) (MNT_DETACH = 2). */
int pmd_umount(const char *target, int flags, struct pmd_error *err);

/* ---- seccomp filters (confine.c) ------------------------------------------------------ */

/*
 * pmd_seccomp_compile turns a flat list of rules into a classic BPF program for seccomp(2);
 * pmd_spawn loads such a program (seccomp_prog) in the child. Policy stays in Python
 * (pyminidocker/container/seccomp.py reads Docker's and OCI's profile formats, resolves names to
 * numbers per architecture and picks the rules a container's capabilities allow); this is only
 * the code generator, so that every front end gets the same filter for the same rules.
 *
 * The program: the architecture of the call (seccomp_data.arch) selects a section, one per
 * entry of arches; any other architecture gets bad_arch_action. PMD_AUDIT_ARCH_X32 is
 * libseccomp's pseudo-architecture for the x32 ABI: calls that x86_64's audit arch reports with
 * __X32_SYSCALL_BIT set in their number; without it in arches, such calls get bad_arch_action
 * (so that the x32 numbers of a refused syscall are not a way around the filter). In a section,
 * with enosys_above set, a syscall numbered above the highest one that has a rule in that
 * architecture answers ENOSYS (runc's rule: a syscall newer than the profile is unknown to it,
 * and ENOSYS makes libc fall back to an older call instead of failing). Then a binary search on
 * the number (a few comparisons per call whatever the number of rules) finds the syscall's
 * rules: those with argument conditions are tried first, in their order, the first whose
 * conditions all hold deciding; then the first rule without conditions; else default_action.
 * An argument condition compares the 64-bit argument `index` (0..5) with value as op says;
 * PMD_SCMP_CMP_MASKED_EQ holds when (arg & value) == value_two (libseccomp's and OCI's order).
 * Actions are seccomp's return values: SECCOMP_RET_* | data (the errno for SECCOMP_RET_ERRNO).
 *
 * Errors: EINVAL (op "seccomp rule", path "rule N: ...") for a bad arch, op or argument index
 * or more than PMD_SECCOMP_ARGS_MAX conditions; E2BIG (op "seccomp") when the program does
 * not fit in PMD_SECCOMP_PROG_MAX instructions.
 */
#define PMD_SECCOMP_ARGS_MAX 6
#define PMD_SECCOMP_PROG_MAX 4096       /* the kernel's BPF_MAXINSNS */
#define PMD_SCMP_CMP_NE 1               /* libseccomp's enum scmp_compare */
#define PMD_SCMP_CMP_LT 2
#define PMD_SCMP_CMP_LE 3
#define PMD_SCMP_CMP_EQ 4
#define PMD_SCMP_CMP_GE 5
#define PMD_SCMP_CMP_GT 6
#define PMD_SCMP_CMP_MASKED_EQ 7
#define PMD_AUDIT_ARCH_X86_64 3221225534  /* 0xc000003e */
#define PMD_AUDIT_ARCH_I386 1073741827    /* 0x40000003 */
#define PMD_AUDIT_ARCH_X32 1073741886     /* 0x4000003e: x86_64's, without __AUDIT_ARCH_64BIT */
#define PMD_AUDIT_ARCH_AARCH64 3221225655 /* 0xc00000b7 */
#define PMD_AUDIT_ARCH_ARM 1073741864     /* 0x40000028 */

struct pmd_seccomp_arg {
    unsigned int index;       /* 0..5 */
    unsigned int op;          /* PMD_SCMP_CMP_* */
    uint64_t value;
    uint64_t value_two;       /* MASKED_EQ only */
};

struct pmd_seccomp_rule {
    unsigned int arch;        /* PMD_AUDIT_ARCH_*, one of the filter's arches */
    unsigned int nr;          /* the syscall's number in that arch (x32: with bit 30 set) */
    unsigned int action;      /* SECCOMP_RET_* | data */
    int n_args;               /* conditions in args, 0..PMD_SECCOMP_ARGS_MAX; all must hold */
    struct pmd_seccomp_arg args[6];
};

struct pmd_seccomp_filter {
    unsigned int default_action;   /* for a syscall no rule decides */
    unsigned int bad_arch_action;  /* for a call from an architecture not in arches */
    const unsigned int *arches;    /* PMD_AUDIT_ARCH_*, 1..8 of them */
    int n_arches;
    const struct pmd_seccomp_rule *rules;
    int n_rules;
    int enosys_above;              /* see above */
};

struct pmd_seccomp_prog {
    int len;                       /* out: instructions used */
    struct pmd_bpf_insn insns[4096]; /* PMD_SECCOMP_PROG_MAX */
};

int pmd_seccomp_compile(const struct pmd_seccomp_filter *f, struct pmd_seccomp_prog *out,
                        struct pmd_error *err);

/* ---- cgroup v2 device rules (devices.c) ---------------------------------------------- */

/*
 * cgroup v2 has no devices.allow: the kernel asks the eBPF programs of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to a process's cgroup and to each of its ancestors, and
 * an access goes through only if all of them allow it. pmd_cgroup_devices writes such a program
 * from rules (by hand, as instructions: no libbpf), loads it and attaches it to the cgroup
 * directory cgroup_dir (BPF_CGROUP_DEVICE with BPF_F_ALLOW_MULTI), then detaches the programs
 * that were attached to that directory before, so that a second call replaces the rules of the
 * first and the cgroup is never without a program in between. Needs the capabilities bpf(2)
 * asks of cgroup programs (root's); a program goes away with its cgroup.
 *
 * The rules are checked in order and the first that matches decides; an access that no rule
 * matches is refused (EPERM to the process). A rule matches a device of its type ('a': block
 * or character) whose major and minor equal its own (-1: any); then an allow rule matches if
 * its access holds every bit the process asks for (open O_RDWR asks for read and write), a deny
 * rule if its access holds any of them. No rules at all: every device is refused.
 *
 * Errors: EINVAL (op "device rule", path "rule N: ...") for a bad type, number, access or
 * allow, checked before anything is loaded; E2BIG over PMD_DEVICE_RULES_MAX rules; op "open
 * cgroup" for cgroup_dir (ENOTDIR: not a directory of a cgroup2 filesystem); op "bpf prog
 * load" (path: cgroup_dir, and the verifier's reason when it refused the program), "bpf prog
 * query", "bpf prog attach", "bpf prog detach" with bpf(2)'s errno (EPERM without the
 * capabilities). Should a detach fail, both programs stay attached: an access then needs both
 * to allow it.
 */
#define PMD_DEV_MKNOD 1            /* pmd_device_rule.access: the kernel's BPF_DEVCG_ACC_* */
#define PMD_DEV_READ 2
#define PMD_DEV_WRITE 4
#define PMD_DEV_RWM 7
#define PMD_DEVICE_RULES_MAX 512

struct pmd_device_rule {
    int allow;                /* 1 = allow, 0 = deny */
    int type;                 /* 'a' (any), 'b' (block) or 'c' (character) */
    int major;                /* -1 = any */
    int minor;                /* -1 = any */
    int access;               /* PMD_DEV_MKNOD | PMD_DEV_READ | PMD_DEV_WRITE, not empty */
};

int pmd_cgroup_devices(const char *cgroup_dir, const struct pmd_device_rule *rules, int n_rules,
                       struct pmd_error *err);

/* ---- attached containers: the output relay (relay.c, jsonlog.c) ------------------------- */

/*
 * An attached container writes to pipes (or its pty), not to the caller's own stdout and
 * stderr: pmd_relay_run copies what it writes there and logs it on the way, in the json-file
 * format pmd-monitor writes for a detached one (both are jsonlog.c), so the container's log
 * is the same however it was started. It returns once the process has exited, its streams are
 * drained and it is reaped:
 *
 *   - src[0] is logged as stream "stdout" and src[1] as "stderr" (a pty's master, in src[0]
 *     alone, is "stdout", as Docker logs a tty), each to log_fd, then written to dst[i]. A
 *     stream ends at EOF (EIO from a pty's master once its other side is closed), or when a
 *     write to dst[i] fails (EPIPE: the reader went away): the relay then closes src[i] and sets
 *     it to -1, so that the container's next write fails as it would have on dst[i] itself (on a
 *     pipe: SIGPIPE). The src fds are the relay's to close; no other fd is closed.
 *   - pidfd (pidfd_open(2) of pid) says when pid has exited. Its streams are then read until
 *     EOF (at once, unless a process that outlived it holds them), for a second at most; each
 *     stream's unfinished last line is logged, the src fds left are closed, pid is reaped and
 *     status is its wait status. Returns 0.
 *   - A signal interrupts it: -1 with err->err EINTR (op "relay"), whatever was read logged and
 *     the rest of the work kept in r, so that the caller can act on the signal (CPython runs
 *     its handlers: forwarding it to the container, say) and call again with the same r. Each
 *     call may end that way, until one returns 0. A signal that arrives while the relay is not
 *     in a system call interrupts nothing: the caller's handler writes to wake_fd (CPython's
 *     signal.set_wakeup_fd does), which the relay watches in each wait. With wake_fd -1 such a
 *     signal is seen only when another interrupts a wait.
 *
 * Other errors: -1 with errno and op: EBADF for a pidfd or src fd that is not open, ECHILD
 * (op "waitpid") if pid is not the caller's child. A log that cannot be written loses those
 * records, as pmd-monitor's does. The caller ignores SIGPIPE (CPython does), else a
 * destination that went away kills it.
 */
#define PMD_RELAY_PRIVATE 13500  /* uint64_t words: the state kept between calls, 105 KiB */

struct pmd_relay {
    int pid;                  /* a child of the caller, not yet reaped */
    int pidfd;                /* pidfd_open(pid): the caller's, left open */
    int src[2];               /* read ends of its stdout and stderr, or [0] a pty's master and [1]
                                 -1; -1 once closed by the relay */
    int dst[2];               /* where each is copied (e.g. 1 and 2); -1: logged only */
    int log_fd;               /* the json-file log, opened O_APPEND; -1: nothing is logged */
    int wake_fd;              /* readable once a signal arrived (non-blocking; the relay reads
                                 it empty); -1: none */
    int status;               /* out: pid's wait status, once pmd_relay_run has returned 0 */
    uint64_t priv[PMD_RELAY_PRIVATE]; /* C's: priv[0] = 0 before the first call, the rest
                                 need not be zeroed; then left alone */
};

int pmd_relay_run(struct pmd_relay *r, struct pmd_error *err);

/* ---- detached containers: the monitor (monitor.c, specio.c, monitor_main.c, jsonlog.c) ---- */

/*
 * A detached container is watched by a small C executable, pmd-monitor, not by a Python
 * process: a process forked from the CLI would keep CPython's pages (megabytes of PSS per
 * container once the CLI has exited), the monitor costs a few hundred KiB.
 *
 * pmd_monitor_start serializes spec and mon into a memfd (see specio.c), runs monitor_path with
 * it and a close-on-exec status pipe, and returns once the monitor has reported: 0 with info
 * filled (the container runs), or -1 with err filled, the container's setup error included
 * (ENOENT/"exec"/argv[0] for a command not found). On error no process is left; mounts and
 * cgroups are the caller's to undo.
 *
 * The monitor detaches (double fork, setsid, stdio on /dev/null), clones the container with
 * pmd_spawn (so it is its parent and gets its wait status), writes each line of the container's
 * stdout and stderr to mon->log_path in Docker's json-file format, and when the container has
 * exited: unmounts each of mon->cleanup_mounts (MNT_DETACH), removes each of mon->cleanup_dirs
 * (retrying on EBUSY), writes mon->exit_path atomically as {"exit_code": N, "finished_at":
 * "RFC 3339", "oom_killed": bool} with N the exit status or 128 + signal, and finally execs
 * mon->exit_argv if set (the engine's `rm` for `run --rm`). SIGTERM, SIGINT and SIGQUIT sent to
 * the monitor are forwarded to the container; SIGHUP and SIGPIPE are ignored.
 *
 * spec's stdio fds must be -1: the monitor provides them (pipes, or with spec->console the
 * container's own pty, whose output is logged as stdout). With spec->hold, pmd_monitor_start
 * returns as soon as the container exists (info->pid valid, info->status_fd open) and the
 * caller must then call pmd_monitor_release exactly once (it returns the container's setup
 * result as pmd_spawn would), or close info->status_fd to have the monitor end it unrun.
 */
struct pmd_monitor_spec {
    const char *log_path;               /* required */
    const char *exit_path;              /* required */
    const char *const *cleanup_mounts;  /* NULL-terminated or NULL */
    const char *const *cleanup_dirs;    /* NULL-terminated or NULL */
    const char *const *exit_argv;       /* NULL-terminated or NULL: execve'd last, argv[0] a path */
    const char *const *exit_envp;       /* NULL-terminated or NULL (empty environment) */
    /*
     * Restart policy (Docker's --restart), applied by the monitor when the container exits:
     * PMD_RESTART_NO, _ALWAYS, _ON_FAILURE (a non-zero exit, at most restart_max times when
     * > 0), _UNLESS_STOPPED (as always while the monitor lives). Never once stop_path exists
     * (the engine's `stop` makes it). Between runs: Docker's back-off, 100 ms doubling, back to
     * 100 ms after a run of 10 s or more. The network namespace is kept and joined again: the
     * container keeps its address. restart_path receives {"restart_count", "pid",
     * "restarting", "started_at"} (atomically) as it changes; both paths required with a
     * policy.
     */
    int restart_policy;
    int restart_max;
    const char *restart_path;
    const char *stop_path;
    /*
     * Healthcheck (Docker's HEALTHCHECK / --health-*): every health_interval_ms while the
     * container runs, the monitor runs health_argv (a path, environment health_envp: the
     * engine's `exec` of the test in the container), its output captured (4 KiB), killed after
     * health_timeout_ms. Status: "starting", "healthy" after a success, "unhealthy" after
     * health_retries failures in a row (failures within health_start_ms of the start do not
     * count). health_path receives {"Status", "FailingStreak", "Log": the last 5 runs} after
     * each run. NULL health_argv: no healthcheck.
     */
    const char *const *health_argv;
    const char *const *health_envp;
    const char *health_path;
    int health_interval_ms;
    int health_timeout_ms;
    int health_start_ms;
    int health_retries;
    /* --log-opt max-size/max-file: rotate log_path past log_max_size bytes, keeping
     * log_max_file files in all (jsonlog.c); 0: never rotate. */
    long long log_max_size;
    int log_max_file;
    /* NULL, or a fifo the container's stdin comes from (run -d -i): the monitor opens it
     * read-write, so the container never reads EOF while nobody writes (Docker keeps the
     * stdin of -i open), and `attach` writes into it. With spec->console, the monitor copies
     * what comes in to the console instead. */
    const char *stdin_path;
};

#define PMD_RESTART_NO 0
#define PMD_RESTART_ALWAYS 1
#define PMD_RESTART_ON_FAILURE 2
#define PMD_RESTART_UNLESS_STOPPED 3

struct pmd_monitor_info {
    int pid;                  /* the container's init, in the caller's pid namespace */
    int monitor_pid;
    int status_fd;            /* spec->hold only, else -1: for pmd_monitor_release */
};

int pmd_monitor_start(const char *monitor_path, const struct pmd_spawn_spec *spec,
                      const struct pmd_monitor_spec *mon, struct pmd_monitor_info *info,
                      struct pmd_error *err);
int pmd_monitor_release(struct pmd_monitor_info *info, struct pmd_error *err);

/*
 * Write the serialized form of spec and mon to fd, as pmd_monitor_start does (exposed for tests
 * and tools: `pmd-monitor --check FD` validates such a blob).
 */
int pmd_spec_write(int fd, const struct pmd_spawn_spec *spec, const struct pmd_monitor_spec *mon,
                   struct pmd_error *err);

/* ---- network (netlink.c) ------------------------------------------------------------------ */

/*
 * The per-container network path, over rtnetlink (no `ip`, no libnl). Policy (bridge, names,
 * address) is the caller's; the bridge must exist and be up.
 *
 * pmd_net_attach creates a veth pair: the host end host_ifname, a port of bridge (IFLA_MASTER),
 * up; its peer created directly in the netns of netns_pid (via /proc/<pid>/ns/net) under the
 * name container_ifname (so there is no rename or move to race with). Then, inside that netns:
 * lo up, container_ifname up with address/prefix_len (and its broadcast address), and a default
 * route via gateway if it is not NULL. mtu 0 takes the bridge's; mac NULL lets the kernel pick
 * a random one. On error nothing is left: a pair already created is deleted. Errors: EINVAL for
 * a bad name, address, prefix (1..32), gateway, mtu or mac (op names which); ENOENT (op "open
 * netns") when the process is gone; ENODEV (op "find bridge", path the bridge) for a missing
 * bridge; EEXIST (op "create veth") when host_ifname exists; otherwise the kernel's errno, with
 * its extended-ack message appended to err->path.
 *
 * pmd_net_detach deletes the veth host_ifname (and so its peer). A link that is no longer there
 * is success (the pair goes away by itself when the container's netns dies); a link of that
 * name that is not a veth is refused with EINVAL and left alone.
 */
struct pmd_net_attach {
    const char *bridge;
    const char *host_ifname;
    const char *container_ifname;  /* e.g. "eth0" */
    int netns_pid;                 /* a process in the container's netns (the held init) */
    const char *address;           /* IPv4, e.g. "10.77.0.5" */
    int prefix_len;
    const char *gateway;           /* IPv4 or NULL: no default route */
    int mtu;                       /* 0 = the bridge's */
    const char *mac;               /* "02:42:0a:4d:00:05" or NULL = random */
};

int pmd_net_attach(const struct pmd_net_attach *a, struct pmd_error *err);
int pmd_net_detach(const char *host_ifname, struct pmd_error *err);
