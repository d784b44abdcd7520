/*
 * spawn.c: clone a container process and run its setup up to execve (see pmd.h for the contract).
 *
 * Why the child is so restricted: the caller is CPython, which has threads (the GIL's, an
 * executor's, ...). clone() copies only the calling thread; any lock another thread held at that
 * instant (malloc's arenas, stdio, the GIL itself) stays locked forever in the child. So after
 * clone the child calls only syscalls and trivial string helpers, writes into memory prepared by
 * the parent (the spec, the seccomp program, an error struct on its own stack), and never returns
 * into Python: it either execs or _exits.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CHILD_FAILED 127
#define CHILD_STACK (256 * 1024) /* the child's deepest frame holds two PATH_MAX buffers */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ALLOWED_NS                                                                                 \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP |      \
     CLONE_NEWUSER)

/*
 * What the child sends on the status channel (a SOCK_SEQPACKET socketpair, close-on-exec, so one
 * message per send and EOF once every child end is gone): MSG_TRACE just before execve, with the
 * console's master fd attached if any; MSG_ERROR if setup or execve failed; MSG_HELD at its
 * second hold (hold_mounted); and, when joining a pid namespace, MSG_PID from the intermediate
 * child with the pid of the process that will exec.
 */
#define MSG_TRACE 1
#define MSG_ERROR 2
#define MSG_PID 3
#define MSG_HELD 4 /* hold_mounted: the mounts and create_hooks are done, waiting for release */

struct child_msg {
    int kind;
    int pid;
    uint64_t trace_ns[PMD_TRACE_N];
    struct pmd_error err;
};

/* setns order. The fds are all opened beforehand (by the parent, through the host's /proc), so
 * the order matters little; the mount namespace goes last as it also moves our root and cwd, but
 * for the user namespace, which setns(2) refuses to a process whose root is not its mount
 * namespace's root (a chroot). */
static const struct {
    int flag;
    const char *name;
} join_order[] = {
    {CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"},       {CLONE_NEWNET, "net"},
    {CLONE_NEWPID, "pid"}, {CLONE_NEWCGROUP, "cgroup"}, {CLONE_NEWNS, "mnt"},
    {CLONE_NEWUSER, "user"},
};
#define N_JOIN (sizeof join_order / sizeof join_order[0])
#define PID_JOIN 3 /* join_order's pid entry */

/* One message, with an fd attached when fd >= 0 (the console's master side). MSG_NOSIGNAL: if
 * the caller gave up on us, we want EPIPE, not SIGPIPE. */
static void send_msg(int sock, const struct child_msg *m, int fd)
{
    struct iovec iov = {(void *)m, sizeof *m};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (fd >= 0) {
        memset(&cm, 0, sizeof cm);
        mh.msg_control = cm.buf;
        mh.msg_controllen = sizeof cm.buf;
        cm.h.cmsg_level = SOL_SOCKET;
        cm.h.cmsg_type = SCM_RIGHTS;
        cm.h.cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(&cm.h), &fd, sizeof fd);
    }
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
}

struct child_ctx {
    const struct pmd_spawn_spec *spec;
    int error_fd;              /* write end, close-on-exec */
    int release_fd;            /* read end, or -1 */
    int error_fd_parent;       /* the parent's ends, closed first thing in the child */
    int release_fd_parent;
    int ns_fds[7];             /* join_pid (share_pid): /proc/<pid>/ns/<x> in join_order, or -1 */
};

/* ---- child ------------------------------------------------------------------------------ */

static const char *env_path(const char *const *envp)
{
    for (; envp && *envp; envp++)
        if (strncmp(*envp, "PATH=", 5) == 0)
            return *envp + 5;
    return DEFAULT_PATH;
}

/* execvpe without malloc: search argv[0] in the container's PATH, as the shell would. */
static int child_exec(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    static const char *const no_env[] = {NULL};
    char *const *argv = (char *const *)s->argv;
    char *const *envp = (char *const *)(s->envp ? s->envp : no_env);
    const char *file = s->argv[0];
    const char *path;
    size_t flen = strlen(file);
    int seen_eacces = 0;
    char buf[PATH_MAX];

    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        return pmd_cfail(err, errno, "exec", file);
    }
    if (file[0] == '\0')
        return pmd_cfail(err, ENOENT, "exec", file);
    for (path = env_path(s->envp);; path++) {
        const char *end = strchrnul(path, ':');
        size_t dlen = (size_t)(end - path);
        if (dlen + 1 + flen + 1 <= sizeof buf) {
            if (dlen == 0) {
                memcpy(buf, file, flen + 1); /* empty entry = current directory */
            } else {
                memcpy(buf, path, dlen);
                buf[dlen] = '/';
                memcpy(buf + dlen + 1, file, flen + 1);
            }
            execve(buf, argv, envp);
            switch (errno) {
            case EACCES:
                seen_eacces = 1;
                break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
            case ELOOP:
            case ENAMETOOLONG:
                break;
            default:
                return pmd_cfail(err, errno, "exec", file);
            }
        }
        if (*end == '\0')
            break;
        path = end;
    }
    return pmd_cfail(err, seen_eacces ? EACCES : ENOENT, "exec", file);
}

/* Put the requested fds on 0, 1, 2. Dup all of them high first, so that a request like
 * stdout=0 is not clobbered by an earlier dup2 onto 0. */
static int child_stdio(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    int want[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
    int high[3] = {-1, -1, -1};

    for (int i = 0; i < 3; i++)
        if (want[i] >= 0 && (high[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 3)) < 0)
            return pmd_cfail(err, errno, "dup", i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr");
    for (int i = 0; i < 3; i++)
        if (high[i] >= 0 && dup2(high[i], i) < 0) /* dup2 clears close-on-exec on i */
            return pmd_cfail(err, errno, "dup2", i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr");
    return 0;
}

static int child_cgroups(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    /*
     * Write "0", which cgroupfs (v1 and v2) reads as "the writing process" (in a v1 tasks file,
     * "the writing thread": this child has only the one, and that write skips the global lock
     * a cgroup.procs write takes for an RCU grace period, see cgroups.py). Our pid as getpid()
     * reports it is the one in the new pid namespace (1); the kernel would resolve it in the
     * writer's namespace and get it right, but "0" leaves no room for confusion in a reader.
     */
    for (const char *const *p = s->cgroup_procs; p && *p; p++) {
        int fd = open(*p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return pmd_cfail(err, errno, "join cgroup", *p);
        if (write(fd, "0", 1) != 1) {
            int e = errno;
            close(fd);
            return pmd_cfail(err, e, "join cgroup", *p);
        }
        close(fd);
    }
    return 0;
}

/*
 * Enter the namespaces of a running container. A joined pid namespace only applies to our
 * children, so we clone once more: with CLONE_PARENT the new process is the caller's child (the
 * caller can wait for it) and lives in the container's pid namespace. It returns here and goes
 * on with the setup; we, the intermediate, report its pid and exit. A plain fork-like clone: our
 * memory may be the caller's (CLONE_VM), and the grandchild must not share it.
 */
static int child_join(const struct child_ctx *c, struct child_msg *m)
{
    long pid;

    for (size_t i = 0; i < N_JOIN; i++) {
        /* a shared pid namespace was entered by the parent's clone: we are in it already */
        if (c->spec->join_pid <= 0 && join_order[i].flag == CLONE_NEWPID)
            continue;
        if (c->ns_fds[i] >= 0 && setns(c->ns_fds[i], join_order[i].flag) < 0)
            return pmd_cfail(&m->err, errno, "setns", join_order[i].name);
    }
    if (c->spec->join_pid <= 0 || !(c->spec->namespaces & CLONE_NEWPID))
        return 0;
    pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, NULL);
    if (pid < 0)
        return pmd_cfail(&m->err, errno, "clone", "into the joined pid namespace");
    if (pid == 0)
        return 0;
    m->kind = MSG_PID;
    m->pid = (int)pid;
    send_msg(c->error_fd, m, -1);
    _exit(0);
}

/*
 * A terminal that belongs to the container: the pty pair comes from the container's own devpts
 * instance (so `tty` names it /dev/pts/0 there, and the host's ptys stay invisible). The peer
 * becomes stdin/stdout/stderr and the controlling terminal of a new session, and is bound on
 * /dev/console; the master side travels to the caller with our last message. TIOCGPTPEER opens
 * the peer through the master, not by a path that the container could have replaced.
 * Returns the master fd.
 */
static int child_console(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    char path[32] = "/dev/pts/";
    unsigned int ptn, unlock = 0;
    int master, peer, i = 9;
    char digits[12];
    int nd = 0;

    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return pmd_cfail(err, errno, "open console", "/dev/ptmx");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &ptn) < 0)
        return pmd_cfail(err, errno, "ioctl console", "/dev/ptmx");
    peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (peer < 0)
        return pmd_cfail(err, errno, "open console peer", "/dev/ptmx");
    do
        digits[nd++] = (char)('0' + ptn % 10);
    while ((ptn /= 10) > 0);
    while (nd > 0)
        path[i++] = digits[--nd];
    path[i] = '\0';
    if (s->uid >= 0 && fchown(peer, (uid_t)s->uid, (gid_t)-1) < 0)
        return pmd_cfail(err, errno, "chown console", path);
    /* /dev/console: an empty file in the /dev tmpfs with the peer bound over it (best effort
     * without a /dev tmpfs). Not when joining: that would change the running container's. */
    int f = -1;
    if (s->join_pid <= 0)
        f = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f >= 0) {
        close(f);
        if (mount(path, "/dev/console", NULL, MS_BIND, NULL) < 0)
            return pmd_cfail2(err, errno, "bind mount", path, "/dev/console");
    }
    if (!s->setsid && setsid() < 0)
        return pmd_cfail(err, errno, "setsid", "");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(peer, fd) < 0)
            return pmd_cfail(err, errno, "dup2", path);
    close(peer);
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return pmd_cfail(err, errno, "ioctl TIOCSCTTY", path);
    return master;
}

/*
 * A new network namespace starts with its loopback down; Docker's containers (with --network
 * none too) have it up. One SIOCSIFFLAGS is all it takes, no netlink needed for that.
 */
static int child_loopback_up(struct pmd_error *err)
{
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return pmd_cfail(err, errno, "socket", "loopback");
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
        (ifr.ifr_flags |= IFF_UP | IFF_RUNNING, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
        int e = errno;
        close(fd);
        return pmd_cfail(err, e, "ioctl SIOCSIFFLAGS", "lo");
    }
    close(fd);
    return 0;
}

/*
 * SIG_DFL for sig, by the raw system call: glibc's sigaction() refuses its two internal
 * real-time signals (32 and 33) with EINVAL, yet an ignored one is inherited across execve
 * from whatever started the engine (seen here: a sandbox shell that ignored signal 32).
 */
static void reset_signal(int sig)
{
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } dfl = {SIG_DFL, 0, NULL, 0};

    syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
}

/* The decimal digits of v into buf (at least 12 bytes); no snprintf in the child. */
static void fmt_int(char *buf, int v)
{
    char tmp[12];
    int n = 0, i = 0;
    unsigned int u = v < 0 ? (unsigned int)-v : (unsigned int)v;

    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (v < 0)
        buf[i++] = '-';
    while (n > 0)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

/*
 * A failed hook's output, for its error as runc words it: "stdout: ..., stderr: ...", each
 * trimmed of surrounding blanks, newlines made spaces (one line), cut to fit dst.
 */
static void hook_output(const int fds[2], char *dst, size_t size)
{
    static const char *const label[2] = {"stdout: ", ", stderr: "};
    char buf[PMD_PATH_MAX / 2 - 16];
    size_t at = 0;

    for (int k = 0; k < 2; k++) {
        ssize_t n = fds[k] >= 0 ? pread(fds[k], buf, sizeof buf, 0) : 0;
        size_t lo = 0, hi = n > 0 ? (size_t)n : 0;

        while (lo < hi && (buf[lo] == ' ' || buf[lo] == '\n' || buf[lo] == '\t'))
            lo++;
        while (hi > lo && (buf[hi - 1] == ' ' || buf[hi - 1] == '\n' || buf[hi - 1] == '\t'))
            hi--;
        for (const char *p = label[k]; *p && at + 1 < size; p++)
            dst[at++] = *p;
        for (size_t i = lo; i < hi && at + 1 < size; i++)
            dst[at++] = buf[i] == '\n' ? ' ' : buf[i];
    }
    dst[at] = '\0';
}

/*
 * The OCI hooks of one stage (see pmd.h: hooks, create_hooks), in order, each reading stdin_fd.
 * Each is a fork-like clone of ours: the raw syscall, since we may share the caller's memory
 * (CLONE_VM) and glibc's fork would run the caller's atfork handlers. It waits by polling: no
 * signal handler may run here, and a hook is expected to take milliseconds; the timeout is
 * checked every millisecond at first, every 10 ms after a while.
 */
static int child_hooks(const char *stage, const struct pmd_hook *hooks, int n, int stdin_fd,
                       struct pmd_error *err)
{
    static const char *const no_env[] = {NULL};
    char output[PMD_PATH_MAX];

    for (int i = 0; i < n; i++) {
        const struct pmd_hook *h = &hooks[i];
        const char *argv_self[2] = {h->path, NULL};
        uint64_t start = pmd_now_ns(), limit = (uint64_t)h->timeout * 1000000000ULL;
        struct timespec nap = {0, 1000000};
        char op[PMD_OP_MAX];
        int status, r;
        long pid;
        /* Its output is kept for the error (runc's), not given to the container's stdio; where
           the profile forbids memfds it goes there as before. */
        pmd_cleanup_fd int out = (int)syscall(SYS_memfd_create, "hook-stdout", MFD_CLOEXEC);
        pmd_cleanup_fd int errout = (int)syscall(SYS_memfd_create, "hook-stderr", MFD_CLOEXEC);
        const int fds[2] = {out, errout};

        memcpy(op, stage, strlen(stage)); /* "startContainer" or "createContainer": fits */
        memcpy(op + strlen(stage), " hook ", sizeof " hook ");
        fmt_int(op + strlen(op), i);
        if (stdin_fd >= 0 && lseek(stdin_fd, 0, SEEK_SET) < 0)
            return pmd_cfail(err, errno, op, "stdin");
        pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0)
            return pmd_cfail(err, errno, op, h->path);
        if (pid == 0) {
            sigset_t none;
            int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (in < 0 || dup2(in, 0) < 0 || (out >= 0 && dup2(out, 1) < 0) ||
                (errout >= 0 && dup2(errout, 2) < 0))
                _exit(126);
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            execve(h->path, (char *const *)(h->argv ? h->argv : argv_self),
                   (char *const *)(h->envp ? h->envp : no_env));
            _exit(errno == ENOENT ? 127 : 126);
        }
        for (int polls = 0;; polls++) {
            r = (int)waitpid((pid_t)pid, &status, WNOHANG);
            if (r != 0)
                break;
            if (h->timeout > 0 && pmd_now_ns() - start > limit) {
                kill((pid_t)pid, SIGKILL);
                waitpid((pid_t)pid, &status, 0);
                return pmd_cfail(err, ETIMEDOUT, op, h->path);
            }
            if (polls == 100)
                nap.tv_nsec = 10000000;
            nanosleep(&nap, NULL);
        }
        if (r < 0)
            return pmd_cfail(err, errno, op, h->path);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            size_t at = strlen(op);
            const char *what = WIFEXITED(status) ? ": exit status " : ": signal ";
            memcpy(op + at, what, strlen(what) + 1);
            fmt_int(op + strlen(op), WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            hook_output(fds, output, sizeof output);
            return pmd_cfail(err, EIO, op, output);
        }
    }
    return 0;
}

static int child_wait_release(int fd, struct pmd_error *err)
{
    char go;
    ssize_t n;

    do
        n = read(fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return pmd_cfail(err, n < 0 ? errno : ECANCELED, "wait for release", "");
    return 0;
}

/*
 * After the mounts, before pivot_root: the createContainer hooks (with the caller's umask, not
 * the 0 the mounts are made with), then, with hold_mounted, the caller's second go-ahead.
 */
static int child_mounted(const struct child_ctx *c, struct child_msg *m, mode_t caller_umask)
{
    const struct pmd_spawn_spec *s = c->spec;

    if (s->n_create_hooks > 0) {
        umask(caller_umask);
        if (child_hooks("createContainer", s->create_hooks, s->n_create_hooks,
                        s->create_hooks_stdin_fd, &m->err) < 0)
            return -1;
        umask(0);
    }
    if (!s->hold_mounted)
        return 0;
    m->kind = MSG_HELD;
    send_msg(c->error_fd, m, -1);
    if (child_wait_release(c->release_fd, &m->err) < 0)
        return -1;
    close(c->release_fd);
    return 0;
}

static int child_setup(const struct child_ctx *c, struct child_msg *m)
{
    const struct pmd_spawn_spec *s = c->spec;
    struct pmd_error *err = &m->err;
    int rootfd, console = -1;
    sigset_t none;
    mode_t old_umask;

    /*
     * Signal dispositions: CPython's handlers (SIGINT, ...) would run Python-owned C in the child
     * and write to the parent's wakeup fd; its SIG_IGN of SIGPIPE and SIGXFSZ would survive
     * execve. All signals are blocked since before clone; reset everything to default while
     * they are, and unblock just before execve.
     */
    for (int sig = 1; sig < _NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            reset_signal(sig);
    /*
     * The cgroups first, held or not: a created container is in them (as runc's is, and callers
     * such as containerd look there), and "0" written by the child itself is the cheap way in;
     * the caller writing the child's pid would take the kernel's global lock that waits for an
     * RCU grace period, milliseconds for each hierarchy (see cgroups.py).
     */
    if (child_cgroups(s, err) < 0)
        return -1;
    /*
     * A cgroup namespace takes the caller's cgroup as its root at the moment it is created. Made
     * by clone, that would be the engine's cgroup and the container would see its own cgroup as
     * a subdirectory; so pmd_spawn leaves CLONE_NEWCGROUP out of clone and we unshare it here,
     * once we are in the container's cgroups (and before a hold: a created container has it).
     */
    if (s->join_pid <= 0 && (s->namespaces & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
        return pmd_cfail(err, errno, "unshare", "cgroup namespace");
    if (c->release_fd >= 0) {
        if (child_wait_release(c->release_fd, err) < 0)
            return -1;
        if (!s->hold_mounted) /* else kept for the second hold, in child_mounted */
            close(c->release_fd);
    }
    m->trace_ns[PMD_TRACE_START] = pmd_now_ns();
    old_umask = umask(0);
    /*
     * In a new user namespace we are still the host's root by our ids, which the namespace does
     * not map (files we create on its own mounts, the /dev tmpfs, would fail with EOVERFLOW):
     * become its root, as the maps are written now. After the cgroups: as the mapped uid we
     * could no longer open their root-owned files. Raw syscalls, see confine.c.
     */
    if (((s->namespaces & CLONE_NEWUSER) || s->userns_joined) && s->join_pid <= 0 &&
        (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0))
        return pmd_cfail(err, errno, "setresuid", "root of the user namespace");
    if ((s->join_pid > 0 || s->share_pid > 0) && child_join(c, m) < 0)
        return -1;
    if (child_stdio(s, err) < 0)
        return -1;
    /* close_other_fds kept the caller's stdio fds (now copied to 0-2) and the namespaces to
     * join; none of them, if the caller opened it without O_CLOEXEC, may reach the container. */
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    if (s->setsid && setsid() < 0)
        return pmd_cfail(err, errno, "setsid", "");
    if (s->ctty && ioctl(0, TIOCSCTTY, 0) < 0)
        return pmd_cfail(err, errno, "ioctl TIOCSCTTY", "stdin");
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        return pmd_cfail(err, errno, "sethostname", s->hostname);
    if ((s->namespaces & CLONE_NEWNET) && s->join_pid <= 0 && child_loopback_up(err) < 0)
        return -1;
    m->trace_ns[PMD_TRACE_PROCESS] = pmd_now_ns();
    if (pmd_child_mounts(s, &rootfd, err) < 0)
        return -1;
    m->trace_ns[PMD_TRACE_MOUNTS] = pmd_now_ns();
    if (child_mounted(c, m, old_umask) < 0)
        return -1;
    if (pmd_child_pivot(s, rootfd, err) < 0)
        return -1;
    if (s->console && (console = child_console(s, err)) < 0)
        return -1;
    m->trace_ns[PMD_TRACE_PIVOT] = pmd_now_ns();
    if (pmd_child_confine(s, err) < 0)
        return -1;
    if (chdir(s->cwd ? s->cwd : "/") < 0)
        return pmd_cfail(err, errno, "chdir", s->cwd ? s->cwd : "/");
    umask(old_umask);
    if (child_hooks("startContainer", s->hooks, s->n_hooks, s->hooks_stdin_fd, err) < 0)
        return -1;
    m->trace_ns[PMD_TRACE_CONFINE] = pmd_now_ns();
    m->kind = MSG_TRACE;
    send_msg(c->error_fd, m, console);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return child_exec(s, err);
}

/*
 * Close every descriptor above 2 that this child does not use (its own pipe ends, the stdio it
 * is to get, the namespaces it joins), before it waits for anything. What the caller had open
 * is not ours to keep; and a caller that holds several children at once must be able to abort
 * one by closing its release pipe, which a copy kept in another held child would prevent.
 */
static void close_other_fds(const struct child_ctx *c)
{
    const struct pmd_spawn_spec *s = c->spec;
    int keep[7 + N_JOIN];
    size_t n = 0;
    unsigned int lo = 3;

    int cand[] = {c->error_fd, c->release_fd, s->stdin_fd, s->stdout_fd, s->stderr_fd,
                  s->n_hooks > 0 ? s->hooks_stdin_fd : -1,
                  s->n_create_hooks > 0 ? s->create_hooks_stdin_fd : -1};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        keep[n++] = cand[i];
    for (size_t i = 0; i < N_JOIN; i++)
        keep[n++] = c->ns_fds[i];
    for (size_t i = 1; i < n; i++) /* insertion sort: a dozen values, no libc qsort needed */
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int)lo)
            continue; /* -1, stdio, or a duplicate */
        if ((unsigned int)keep[i] > lo)
            syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0U);
        lo = (unsigned int)keep[i] + 1;
    }
    syscall(SYS_close_range, lo, ~0U, 0U);
}

static __attribute__((noreturn)) void child_main(const struct child_ctx *c)
{
    struct child_msg m;

    if (c->error_fd_parent >= 0)
        close(c->error_fd_parent);
    if (c->release_fd_parent >= 0)
        close(c->release_fd_parent);
    close_other_fds(c);
    memset(&m, 0, sizeof m);
    child_setup(c, &m);
    if (m.err.err == 0)
        m.err.err = EIO;
    m.kind = MSG_ERROR;
    send_msg(c->error_fd, &m, -1);
    _exit(CHILD_FAILED);
}

static int child_entry(void *arg)
{
    child_main(arg);
}

/* ---- parent ----------------------------------------------------------------------------- */

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* One message; an attached fd (the console) is stored in *fd, close-on-exec. */
static ssize_t read_msg(int sock, struct child_msg *m, int *fd)
{
    struct iovec iov = {m, sizeof *m};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                        .msg_controllen = sizeof cm.buf};
    ssize_t n;

    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n > 0 && mh.msg_controllen >= CMSG_LEN(sizeof(int))) {
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            if (*fd >= 0)
                close(*fd);
            memcpy(fd, CMSG_DATA(h), sizeof *fd);
        }
    }
    return n;
}

/*
 * Wait for the child's verdict: read its messages until EOF, which comes when every writer has
 * exec'd or exited. A trace then EOF is success (0); an error is failure (-1); MSG_HELD, the
 * child waiting at its second hold, returns 1 at once. When joining a pid
 * namespace, the intermediate child sends the pid of the real one and exits: reap it and follow
 * the grandchild from then on. The grandchild may report before the intermediate does, so an
 * error does not stop the reading: only EOF guarantees that every process is accounted for. On
 * failure, reap the child.
 */
static int read_verdict(struct pmd_proc *proc, int fd, struct pmd_error *err)
{
    struct child_msg m;
    struct pmd_error child_err;
    ssize_t n;
    int status = 0, traced = 0, failed = 0, bad_read = 0, console = -1;

    while ((n = read_msg(fd, &m, &console)) != 0) {
        if (n != (ssize_t)sizeof m) {
            bad_read = n < 0 ? errno : EIO;
            break;
        }
        if (m.kind == MSG_HELD) { /* at its second hold: the caller releases it again */
            memcpy(&proc->trace_ns[1], &m.trace_ns[1], sizeof m.trace_ns - sizeof m.trace_ns[0]);
            return 1;
        }
        if (m.kind == MSG_PID) {
            while (waitpid(proc->pid, &status, 0) < 0 && errno == EINTR)
                ;
            proc->pid = m.pid;
            continue;
        }
        memcpy(&proc->trace_ns[1], &m.trace_ns[1], sizeof m.trace_ns - sizeof m.trace_ns[0]);
        if (m.kind == MSG_TRACE) {
            traced = 1;
        } else if (!failed) {
            failed = 1;
            child_err = m.err;
        }
    }
    if (!failed && !bad_read && traced) {
        proc->console_fd = console;
        return 0;
    }
    if (console >= 0)
        close(console);
    while (waitpid(proc->pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (bad_read)
        return pmd_fail(err, bad_read, "read child status", "pid %d", proc->pid);
    if (!failed)
        return pmd_fail(err, ECHILD, "child died during setup", "pid %d, wait status %#x",
                        proc->pid, (unsigned)status);
    child_err.op[sizeof child_err.op - 1] = '\0';
    child_err.path[sizeof child_err.path - 1] = '\0';
    *err = child_err;
    if (err->err == 0)
        err->err = EIO;
    return -1;
}

static int check_spec(const struct pmd_spawn_spec *s, struct pmd_error *err)
{
    if (s->argv == NULL || s->argv[0] == NULL)
        return pmd_fail(err, EINVAL, "spawn", "%s", "argv[0] is required");
    if (s->namespaces & ~ALLOWED_NS)
        return pmd_fail(err, EINVAL, "spawn", "unsupported namespace flags %#x",
                        s->namespaces & ~ALLOWED_NS);
    if (s->join_pid <= 0 && (s->n_mounts > 0 || s->masked_paths || s->readonly_paths ||
         s->readonly_root || s->dev_setup || s->root_propagation) &&
        !(s->namespaces & CLONE_NEWNS) && !s->mounts_joined)
        return pmd_fail(err, EINVAL, "spawn", "%s", "mounts need CLONE_NEWNS or mounts_joined");
    if (s->hostname && !(s->namespaces & CLONE_NEWUTS))
        return pmd_fail(err, EINVAL, "spawn", "%s", "hostname needs CLONE_NEWUTS");
    if (s->n_mounts < 0 || (s->n_mounts > 0 && s->mounts == NULL) || s->n_rlimits < 0 ||
        (s->n_rlimits > 0 && s->rlimits == NULL) || (s->n_groups > 0 && s->groups == NULL))
        return pmd_fail(err, EINVAL, "spawn", "%s", "bad array length");
    if (s->seccomp_prog != NULL && (s->seccomp_len < 1 || s->seccomp_len > PMD_SECCOMP_PROG_MAX))
        return pmd_fail(err, EINVAL, "spawn", "seccomp program of %d instructions",
                        s->seccomp_len);
    if (s->join_pid > 0 && (s->rootfs || s->n_mounts > 0 || s->masked_paths ||
                            s->readonly_paths || s->readonly_root || s->dev_setup ||
                            s->hostname || s->hold))
        return pmd_fail(err, EINVAL, "spawn", "%s",
                        "join_pid excludes rootfs, mounts, paths, hostname and hold");
    if (s->share_pid > 0 && (s->join_pid > 0 || (s->share_namespaces & s->namespaces) ||
                             (s->share_namespaces & ~(CLONE_NEWPID | CLONE_NEWIPC))))
        return pmd_fail(err, EINVAL, "spawn", "%s",
                        "share_namespaces: pid or ipc, not in namespaces, without join_pid");
    if ((s->namespaces & CLONE_NEWUSER) && s->join_pid <= 0 && !s->hold)
        return pmd_fail(err, EINVAL, "spawn", "%s", "a user namespace needs hold");
    if (s->n_hooks < 0 || (s->n_hooks > 0 && s->hooks == NULL) || s->n_create_hooks < 0 ||
        (s->n_create_hooks > 0 && s->create_hooks == NULL))
        return pmd_fail(err, EINVAL, "spawn", "%s", "bad array length");
    if ((s->hold_mounted && !s->hold) || (s->n_create_hooks > 0 && s->join_pid > 0))
        return pmd_fail(err, EINVAL, "spawn", "%s",
                        "hold_mounted needs hold; create_hooks exclude join_pid");
    if (s->console && s->ctty)
        return pmd_fail(err, EINVAL, "spawn", "%s", "console and ctty exclude each other");
    if (s->ctty && !s->setsid)
        return pmd_fail(err, EINVAL, "spawn", "%s", "ctty needs setsid");
    /* The rootfs is checked here so that the common mistake is reported with its path
     * before anything is cloned. */
    if (s->rootfs) {
        struct stat st;
        if (stat(s->rootfs, &st) < 0)
            return pmd_fail(err, errno, "rootfs", "%s", s->rootfs);
        if (!S_ISDIR(st.st_mode))
            return pmd_fail(err, ENOTDIR, "rootfs", "%s", s->rootfs);
    }
    return 0;
}

/* One write of the whole map, as the kernel takes it (a second write is refused). */
static int write_id_map(int pid, const char *file, const char *map, struct pmd_error *err)
{
    char path[64];
    size_t len = map ? strlen(map) : 0;
    int fd;
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    if (len == 0)
        return pmd_fail(err, EINVAL, "user namespace", "%s: no mapping given", file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return pmd_fail(err, errno, "open", "%s", path);
    n = write(fd, map, len);
    if (n != (ssize_t)len) {
        int e = n < 0 ? errno : EIO;
        close(fd);
        return pmd_fail(err, e, "write", "%s: %s", path, map);
    }
    close(fd);
    return 0;
}

int pmd_spawn(const struct pmd_spawn_spec *spec, struct pmd_proc *proc, struct pmd_error *err)
{
    struct child_ctx ctx = {spec, -1, -1, -1, -1, {-1, -1, -1, -1, -1, -1, -1}};
    pmd_cleanup_fd int err_rd = -1, err_wr = -1, rel_rd = -1, rel_wr = -1;
    int fds[2];
    sigset_t all, old;
    void *stack;
    int pid, flags, e, own_pidns;

    memset(proc, 0, sizeof *proc);
    proc->pid = -1;
    proc->release_fd = -1;
    proc->error_fd = -1;
    proc->console_fd = -1;
    if (check_spec(spec, err) < 0)
        return -1;
    /* SOCK_SEQPACKET: message boundaries kept, fds can travel, EOF once every child end is
     * closed by exec or exit, exactly as a pipe. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
        return pmd_fail(err, errno, "socketpair", "%s", "child status channel");
    err_rd = fds[0];
    err_wr = fds[1];
    if (spec->hold) {
        if (pipe2(fds, O_CLOEXEC) < 0)
            return pmd_fail(err, errno, "pipe", "%s", "release pipe");
        rel_rd = fds[0];
        rel_wr = fds[1];
    }
    ctx.error_fd = err_wr;
    ctx.release_fd = rel_rd;
    ctx.error_fd_parent = err_rd;
    ctx.release_fd_parent = rel_wr;
    /* Joining (sharing): open the namespaces here, where a vanished container is reported with
     * its path. */
    int from = spec->join_pid > 0 ? spec->join_pid : spec->share_pid;
    int which = spec->join_pid > 0 ? spec->namespaces : spec->share_namespaces;
    for (size_t i = 0; from > 0 && i < N_JOIN; i++) {
        char path[64];
        if (!(which & join_order[i].flag))
            continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", from, join_order[i].name);
        ctx.ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (ctx.ns_fds[i] < 0) {
            e = errno;
            close_fds(ctx.ns_fds, i);
            return pmd_fail(err, e, "open namespace", "%s", path);
        }
    }

    /*
     * Not held, we wait for the child's exec anyway, so clone as vfork does: CLONE_VM shares our
     * memory instead of copying CPython's page tables (about half a millisecond saved per spawn),
     * and CLONE_VFORK suspends this thread until the child has exec'd or exited. The child runs
     * on its own stack; it shares our TLS (errno), which is harmless while we are suspended,
     * but not our signal handlers (no CLONE_SIGHAND: sigaction in the child is its own), nor
     * our fd table or cwd. Held, the child must wait for the caller, so it gets a copy of our
     * memory instead (fork semantics). Either way all signals stay blocked across the clone so
     * that no handler of CPython runs in the child, and glibc's fork machinery (atfork handlers,
     * lock resets) is bypassed: the child touches nothing it would protect.
     */
    stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
    if (stack == MAP_FAILED) {
        e = errno;
        close_fds(ctx.ns_fds, N_JOIN);
        return pmd_fail(err, e, "mmap", "%s", "child stack");
    }
    flags = (spec->join_pid > 0 ? 0 : spec->namespaces & ~CLONE_NEWCGROUP) | SIGCHLD |
            (spec->hold ? 0 : CLONE_VM | CLONE_VFORK);
    /* A shared pid namespace: ours for our next child only (setns(2) on a pid namespace sets
     * pid_for_children), then our own again (allowed: it is our active one). */
    own_pidns = -1;
    if (spec->join_pid <= 0 && ctx.ns_fds[PID_JOIN] >= 0) {
        own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own_pidns < 0 || setns(ctx.ns_fds[PID_JOIN], CLONE_NEWPID) < 0) {
            e = errno;
            if (own_pidns >= 0)
                close(own_pidns);
            munmap(stack, CHILD_STACK);
            close_fds(ctx.ns_fds, N_JOIN);
            return pmd_fail(err, e, "setns", "/proc/%d/ns/pid", spec->share_pid);
        }
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    proc->trace_ns[PMD_TRACE_CLONE] = pmd_now_ns();
    pid = clone(child_entry, (char *)stack + CHILD_STACK, flags, &ctx);
    e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (own_pidns >= 0) {
        if (setns(own_pidns, CLONE_NEWPID) < 0)
            abort(); /* never: our own active namespace; a caller left in another is worse */
        close(own_pidns);
    }
    munmap(stack, CHILD_STACK);
    close_fds(ctx.ns_fds, N_JOIN);
    if (pid < 0)
        return pmd_fail(err, e, "clone", "flags %#x", flags);
    close(err_wr);
    err_wr = -1;
    proc->pid = (int)pid;
    if ((spec->namespaces & CLONE_NEWUSER) && spec->join_pid <= 0 &&
        (write_id_map(pid, "uid_map", spec->uid_map, err) < 0 ||
         write_id_map(pid, "gid_map", spec->gid_map, err) < 0)) {
        kill(pid, SIGKILL); /* it is blocked on the release pipe: nothing ran */
        waitpid(pid, NULL, 0);
        proc->pid = -1;
        return -1;
    }
    if (spec->hold) {
        proc->release_fd = rel_wr;
        proc->error_fd = err_rd;
        rel_wr = err_rd = -1; /* handed over to the caller */
        return 0;
    }
    if (read_verdict(proc, err_rd, err) < 0) {
        proc->pid = -1;
        return -1;
    }
    return 0;
}

int pmd_spawn_release(struct pmd_proc *proc, struct pmd_error *err)
{
    pmd_cleanup_fd int rel = proc->release_fd, errfd = proc->error_fd;
    ssize_t n;

    if (proc->pid <= 0 || rel < 0 || errfd < 0)
        return pmd_fail(err, EINVAL, "spawn release", "%s", "not a held process");
    proc->release_fd = proc->error_fd = -1;
    do
        n = write(rel, "g", 1);
    while (n < 0 && errno == EINTR);
    /* EPIPE (SIGPIPE is ignored by CPython): the child is gone already; read_verdict says why. */
    switch (read_verdict(proc, errfd, err)) {
    case -1:
        proc->pid = -1;
        return -1;
    case 1: /* held again (hold_mounted): the channels stay the caller's */
        proc->release_fd = rel;
        proc->error_fd = errfd;
        rel = errfd = -1;
    }
    return 0;
}
