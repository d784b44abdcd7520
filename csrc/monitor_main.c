/*
 * pmd-monitor: watches one detached container (see pmd_monitor_start in pmd.h).
 *
 *   pmd-monitor SPEC_FD STATUS_FD   run: started by pmd_monitor_start, never by hand
 *   pmd-monitor --check SPEC_FD     validate a serialized spec and print a summary (tests, tools)
 *
 * Why the monitor is the container's parent: only a parent can wait() for a process and learn
 * its exit status; anyone else can at best notice that the pid is gone (pidfd, /proc polling)
 * without knowing how it ended. So the monitor does the clone itself, with the same pmd_spawn
 * the attached path uses, and stays for the container's whole life.
 *
 * Why it is small: one monitor runs per container, for as long as the container. It maps the
 * spec, clones, then lives in one poll loop with fixed buffers: no malloc, no stdio buffers.
 */
#include "pmd_sys.h"
#include "pmd.h"
#include "specio.h"
#include "jsonlog.h"

#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#define DRAIN_NS 1000000000ll       /* after the exit, how long output may still arrive */
#define RMDIR_TRIES 200             /* x 10 ms: a cgroup is busy until its last task is gone */

static void say(const char *what, const struct pmd_error *e)
{
    char buf[PMD_OP_MAX + PMD_PATH_MAX + 128];
    int n = snprintf(buf, sizeof buf, "pmd-monitor: %s: %s: %s%s%s\n", what, e->op,
                     strerror(e->err), e->path[0] ? ": " : "", e->path);
    if (n > 0 && write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0)
        return;
}

/*
 * A held container (spec->hold: the engine plugs in its network first) is released when the
 * engine writes one byte on the status channel (pmd_monitor_release); EOF instead means the
 * engine gave up or died: the container is ended before it ran anything.
 */
static void report(int fd, int kind, int pid, const struct pmd_error *e);

static int release_when_told(int status_fd, struct pmd_proc *proc, struct pmd_error *err)
{
    char go;
    ssize_t n;

    report(status_fd, PMD_MON_HELD, proc->pid, NULL);
    do
        n = read(status_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        close(proc->release_fd);
        close(proc->error_fd);
        while (waitpid(proc->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return pmd_fail(err, ECANCELED, "wait for release", "%s", "the engine went away");
    }
    return pmd_spawn_release(proc, err);
}

/* Report to pmd_monitor_start; the channel holds the message even if nobody reads it yet. */
static void report(int fd, int kind, int pid, const struct pmd_error *e)
{
    struct pmd_monitor_msg m;
    ssize_t n;

    if (fd < 0)
        return;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.pid = pid;
    m.monitor_pid = (int)getpid();
    if (e)
        m.err = *e;
    do
        n = write(fd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
}

static int parse_fd(const char *s)
{
    long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > INT_MAX / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

/* ---- the json-file log (jsonlog.c) ------------------------------------------------------ */

/* The log and (in main) the streams are zero-initialized statics, in .bss: the pages of their
 * buffers that are never written never become resident. out.fd is set once the log is open. */
static struct pmd_log out;

struct stream {
    int fd;
    struct pmd_log_stream log;
};

static void close_stream(struct stream *s)
{
    if (s->fd < 0)
        return;
    pmd_log_end(&out, &s->log); /* a last line without '\n' */
    close(s->fd);
    s->fd = -1;
}

/* ---- after the exit --------------------------------------------------------------------- */

/* Did the kernel's OOM killer kill in one of the container's cgroups? Read before rmdir. */
static int oom_killed(const char *const *dirs)
{
    static const char *const files[] = {"memory.oom_control", "memory.events"}; /* v1, v2 */
    char path[PATH_MAX], buf[1024];

    for (; dirs && *dirs; dirs++) {
        for (size_t i = 0; i < 2; i++) {
            int fd;
            ssize_t n;
            const char *k;
            snprintf(path, sizeof path, "%s/%s", *dirs, files[i]);
            if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                continue;
            n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n <= 0)
                continue;
            buf[n] = '\0';
            if ((k = strstr(buf, "oom_kill ")) != NULL && atoi(k + 9) > 0)
                return 1;
        }
    }
    return 0;
}

static void cleanup(const struct pmd_monitor_req *q)
{
    struct timespec ten_ms = {0, 10 * 1000 * 1000};

    /* MNT_DETACH: a process that still has a file open below (a `logs` of ours does not, but
     * a host shell's cd might) must not keep the container's rootfs mounted. */
    for (const char *const *m = q->mon.cleanup_mounts; m && *m; m++)
        umount2(*m, MNT_DETACH);
    for (const char *const *d = q->mon.cleanup_dirs; d && *d; d++)
        for (int i = 0; rmdir(*d) < 0 && errno == EBUSY && i < RMDIR_TRIES; i++)
            nanosleep(&ten_ms, NULL);
}

/* path, atomically: readers see no file or the whole record, never half of it. A failure
 * (the container was removed meanwhile) leaves nothing to record, and nobody to tell. */
static void write_record(const char *path, const char *rec, int n, int sync)
{
    char tmp[PATH_MAX];
    int fd;

    if (n <= 0 || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, rec, (size_t)n) != n || (sync && fsync(fd) < 0)) {
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    if (rename(tmp, path) < 0)
        unlink(tmp);
}

/* The exit record's room, taken before the container runs: a container that fills the store's
 * filesystem (its upper layer is there) must not cost it its exit code. <exit>.slot holds
 * EXIT_SLOT bytes of spaces (the blocks are the file's from this write on: ext4's delayed
 * allocation reserves them now); at the exit the record overwrites them in place, padded with
 * spaces (JSON's whitespace), and the slot is renamed over <exit>. container/watch.py, which
 * stands in for a killed monitor, fills the same slot. */
#define EXIT_SLOT 256
static int exit_slot = -1;

static void reserve_exit(const char *exit_path)
{
    char path[PATH_MAX], blank[EXIT_SLOT];

    if (snprintf(path, sizeof path, "%s.slot", exit_path) >= (int)sizeof path)
        return;
    exit_slot = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (exit_slot < 0)
        return;
    memset(blank, ' ', sizeof blank);
    if (write(exit_slot, blank, sizeof blank) != (ssize_t)sizeof blank) {
        close(exit_slot);
        exit_slot = -1;
        unlink(path);
    }
}

static void write_exit(const char *exit_path, int code, int oom)
{
    char rec[EXIT_SLOT], when[40], slot[PATH_MAX];
    int n;

    pmd_log_time(when);
    n = snprintf(rec, sizeof rec, "{\"exit_code\": %d, \"finished_at\": \"%s\", "
                                  "\"oom_killed\": %s}\n",
                 code, when, oom ? "true" : "false");
    if (exit_slot >= 0 && n > 0 && n < EXIT_SLOT &&
        snprintf(slot, sizeof slot, "%s.slot", exit_path) < (int)sizeof slot) {
        memset(rec + n, ' ', sizeof rec - (size_t)n);
        if (pwrite(exit_slot, rec, sizeof rec, 0) == (ssize_t)sizeof rec &&
            fsync(exit_slot) == 0 && rename(slot, exit_path) == 0) {
            close(exit_slot);
            exit_slot = -1;
            return;
        }
        close(exit_slot);
        exit_slot = -1;
        unlink(slot);
    }
    write_record(exit_path, rec, n, 1);
}

/* ---- the restart policy ---------------------------------------------------------------- */

#define BACKOFF_FIRST_NS 100000000ll   /* Docker's: 100 ms, doubling at each restart, */
#define BACKOFF_MAX_NS 60000000000ll   /* at most a minute, */
#define BACKOFF_RESET_NS 10000000000ll /* and 100 ms again after a run of 10 s or more */

static int should_restart(const struct pmd_monitor_spec *m, int code, int count)
{
    if (m->restart_policy == PMD_RESTART_NO || access(m->stop_path, F_OK) == 0)
        return 0;
    if (m->restart_policy == PMD_RESTART_ON_FAILURE)
        return code != 0 && (m->restart_max <= 0 || count < m->restart_max);
    return 1;
}

/* restart_path (as write_exit, not synced: a reboot ends the restarts anyway): what
 * `inspect` shows as RestartCount and the engine reads to follow the container to its new pid. */
static void write_restart(const char *path, int count, int pid, int restarting)
{
    char rec[200], when[40];

    pmd_log_time(when);
    write_record(path, rec,
                 snprintf(rec, sizeof rec, "{\"restart_count\": %d, \"pid\": %d, "
                                           "\"restarting\": %s, \"started_at\": \"%s\"}\n",
                          count, pid, restarting ? "true" : "false", when), 0);
}

/* Sleep ns, waking early (returning 1) once the engine asks for a stop. The signals we watch
 * stay blocked: one that arrives now waits in the signalfd for the next run. */
static int backoff(const struct pmd_monitor_spec *m, long long ns)
{
    long long end = pmd_now_ns() + ns;
    struct timespec step = {0, 20 * 1000 * 1000};

    while (pmd_now_ns() < end) {
        if (access(m->stop_path, F_OK) == 0)
            return 1;
        nanosleep(&step, NULL);
    }
    return access(m->stop_path, F_OK) == 0;
}

/* ---- the healthcheck ------------------------------------------------------------------- */

#define HEALTH_OUT_MAX 4096 /* of each run's output, kept (Docker keeps 4 KiB too) */
#define HEALTH_LOG_N 5      /* runs kept in the record, as Docker's State.Health.Log */
#define MS 1000000ll

struct health_run {
    char start[40], end[40];
    int code;
    size_t len;
    unsigned char out[HEALTH_OUT_MAX];
};

/* In .bss: its pages become resident only for a container that has a healthcheck. */
static struct {
    const struct pmd_monitor_spec *m;
    long long next, deadline, since; /* next run; the running one's end; the container's start */
    int pid, fd, streak, status, n; /* status: 0 starting, 1 healthy, 2 unhealthy */
    struct health_run cur, log[HEALTH_LOG_N];
} hc = {.fd = -1};

static const char *const health_names[] = {"starting", "healthy", "unhealthy"};

static void health_reset(long long now)
{
    hc.since = now;
    hc.next = now + hc.m->health_interval_ms * MS;
    hc.status = 0;
    hc.streak = 0;
}

static void health_write(void)
{
    static struct pmd_log rec;
    char tmp[PATH_MAX], num[64];
    int n;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", hc.m->health_path) >= (int)sizeof tmp)
        return;
    rec.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (rec.fd < 0)
        return;
    rec.len = 0;
    n = snprintf(num, sizeof num, "{\"Status\": \"%s\", \"FailingStreak\": %d, \"Log\": [",
                 health_names[hc.status], hc.streak);
    pmd_log_put(&rec, num, (size_t)n);
    for (int i = 0; i < hc.n; i++) {
        const struct health_run *r = &hc.log[i];
        pmd_log_put(&rec, i ? ", {\"Start\": \"" : "{\"Start\": \"", i ? 13 : 11);
        pmd_log_put(&rec, r->start, strlen(r->start));
        pmd_log_put(&rec, "\", \"End\": \"", 11);
        pmd_log_put(&rec, r->end, strlen(r->end));
        n = snprintf(num, sizeof num, "\", \"ExitCode\": %d, \"Output\": \"", r->code);
        pmd_log_put(&rec, num, (size_t)n);
        pmd_log_json(&rec, r->out, r->len);
        pmd_log_put(&rec, "\"}", 2);
    }
    pmd_log_put(&rec, "]}\n", 3);
    pmd_log_flush(&rec);
    close(rec.fd);
    if (rename(tmp, hc.m->health_path) < 0)
        unlink(tmp);
}

static void health_read(void)
{
    unsigned char buf[1024];
    ssize_t n;

    while (hc.fd >= 0) {
        n = read(hc.fd, buf, sizeof buf);
        if (n > 0) {
            size_t k = (size_t)n;
            if (k > HEALTH_OUT_MAX - hc.cur.len)
                k = HEALTH_OUT_MAX - hc.cur.len;
            memcpy(hc.cur.out + hc.cur.len, buf, k);
            hc.cur.len += k;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close(hc.fd); /* EOF */
        hc.fd = -1;
    }
}

static void health_done(int code, long long now)
{
    health_read();
    if (hc.fd >= 0) {
        close(hc.fd);
        hc.fd = -1;
    }
    hc.pid = 0;
    hc.cur.code = code;
    pmd_log_time(hc.cur.end);
    if (hc.n == HEALTH_LOG_N) {
        memmove(&hc.log[0], &hc.log[1], sizeof hc.log[0] * (HEALTH_LOG_N - 1));
        hc.n--;
    }
    hc.log[hc.n++] = hc.cur;
    if (code == 0) {
        hc.status = 1;
        hc.streak = 0;
    } else if (hc.status != 0 || now - hc.since >= hc.m->health_start_ms * MS) {
        /* within the start period a failure does not count (Docker's --health-start-period) */
        if (++hc.streak >= hc.m->health_retries)
            hc.status = 2;
    }
    health_write();
    hc.next = now + hc.m->health_interval_ms * MS;
}

static void health_start(long long now)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0) {
        hc.next = now + hc.m->health_interval_ms * MS;
        return;
    }
    pid = fork();
    if (pid == 0) {
        sigset_t all;
        int null = open("/dev/null", O_RDONLY);
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        dup2(null, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execve(hc.m->health_argv[0], (char *const *)hc.m->health_argv,
               (char *const *)(hc.m->health_envp ? hc.m->health_envp : (const char *const[]){NULL}));
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        hc.next = now + hc.m->health_interval_ms * MS;
        return;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    hc.pid = pid;
    hc.fd = p[0];
    hc.cur.len = 0;
    pmd_log_time(hc.cur.start);
    hc.deadline = now + hc.m->health_timeout_ms * MS;
}

/* What is due: a run to start, or one to end for its timeout. Returns the poll timeout (ms)
 * until the next such moment, or -1 without a healthcheck. */
static int health_tick(void)
{
    long long now = pmd_now_ns(), at;

    if (!hc.m)
        return -1;
    if (hc.pid > 0 && now >= hc.deadline) {
        char msg[80];
        int n;
        kill(hc.pid, SIGKILL);
        while (waitpid(hc.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        health_read();
        /* Go's Duration.String() of whole seconds or milliseconds, as Docker prints it */
        n = hc.m->health_timeout_ms % 1000
                ? snprintf(msg, sizeof msg, "Health check exceeded timeout (%dms)",
                           hc.m->health_timeout_ms)
                : snprintf(msg, sizeof msg, "Health check exceeded timeout (%ds)",
                           hc.m->health_timeout_ms / 1000);
        memcpy(hc.cur.out, msg, (size_t)n);
        hc.cur.len = (size_t)n;
        if (hc.fd >= 0) {
            close(hc.fd);
            hc.fd = -1;
        }
        health_done(-1, now);
    }
    if (hc.pid == 0 && now >= hc.next)
        health_start(now);
    at = hc.pid > 0 ? hc.deadline : hc.next;
    return at <= now ? 0 : (int)((at - now) / MS) + 1;
}

/* A SIGCHLD: is it the check's? */
static void health_reap(void)
{
    int status;

    if (hc.pid > 0 && waitpid(hc.pid, &status, WNOHANG) == hc.pid)
        health_done(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                    pmd_now_ns());
}

/* The container has exited: a check still running is ended, unrecorded. */
static void health_stop(void)
{
    if (hc.pid > 0) {
        kill(hc.pid, SIGKILL);
        while (waitpid(hc.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        hc.pid = 0;
    }
    if (hc.fd >= 0) {
        close(hc.fd);
        hc.fd = -1;
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Log the streams until the container has exited and they are drained; its exit code. */
/*
 * in_fd >= 0 (a tty container whose stdin was asked for: `run -dit`): what `attach` writes
 * into the stdin fifo goes to the console, st[0]. Written without blocking: input the
 * container does not read fast enough is dropped rather than stalling its output (Docker
 * blocks there instead; a monitor that blocks would stop logging).
 */
static void pass_input(int in_fd, int console)
{
    static unsigned char in[4096];
    ssize_t n = read(in_fd, in, sizeof in);

    if (n <= 0 || console < 0)
        return;
    /* its reads come after poll() and take EAGAIN in their stride */
    fcntl(console, F_SETFL, fcntl(console, F_GETFL) | O_NONBLOCK);
    if (write(console, in, (size_t)n) < 0) {
        /* dropped (EAGAIN: its input queue is full) */
    }
}

static int watch(int pid, int sigfd, struct stream *st, size_t n_st, int in_fd)
{
    struct pollfd pfd[5];
    static unsigned char buf[16 * 1024];
    long long deadline = 0;
    int exited = 0, status = 0;

    for (;;) {
        size_t open_streams = 0;
        int timeout = -1;
        pfd[0] = (struct pollfd){exited ? -1 : sigfd, POLLIN, 0};
        for (size_t i = 0; i < n_st; i++) {
            pfd[1 + i] = (struct pollfd){st[i].fd, POLLIN, 0};
            open_streams += st[i].fd >= 0;
        }
        pfd[1 + n_st] = (struct pollfd){hc.fd, POLLIN, 0};
        pfd[2 + n_st] = (struct pollfd){exited ? -1 : in_fd, POLLIN, 0};
        if (exited) {
            long long left = deadline - pmd_now_ns();
            if (open_streams == 0 || left <= 0)
                break;
            timeout = (int)(left / 1000000) + 1;
        } else {
            timeout = health_tick();
            pfd[1 + n_st].fd = hc.fd;
        }
        if (poll(pfd, 3 + n_st, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo != SIGCHLD) {
                    kill(pid, (int)si.ssi_signo); /* forwarded: see pmd.h */
                    continue;
                }
                /* SIGCHLDs coalesce: ask for the container, whatever the signal was about. */
                health_reap();
                if (waitpid(pid, &status, WNOHANG) == pid) {
                    exited = 1;
                    deadline = pmd_now_ns() + DRAIN_NS;
                    health_stop();
                    break;
                }
            }
        }
        if (hc.fd >= 0 && (pfd[1 + n_st].revents & (POLLIN | POLLHUP | POLLERR)))
            health_read();
        if (pfd[2 + n_st].fd >= 0 && (pfd[2 + n_st].revents & POLLIN))
            pass_input(in_fd, st[0].fd);
        for (size_t i = 0; i < n_st; i++) {
            ssize_t n;
            if (st[i].fd < 0 || !(pfd[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(st[i].fd, buf, sizeof buf);
            if (n > 0)
                pmd_log_feed(&out, &st[i].log, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                close_stream(&st[i]); /* EOF; a pty master says EIO once the slave is gone */
        }
    }
    for (size_t i = 0; i < n_st; i++)
        close_stream(&st[i]);
    if (!exited) /* the loop broke on a poll error: wait for the container anyway */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * Detach from whoever started us. The first half (our parent is pmd_monitor_start's caller)
 * forks and exits at once: the caller reaps it and is rid of us, and we are reparented to init
 * (or a subreaper) instead of lingering as the CLI's child, so a long-lived caller never
 * accumulates zombie monitors and a CLI that exits does not take us with it. setsid: no
 * terminal, and no SIGHUP or ^C sent to the CLI's process group reaches us.
 */
static int detach(struct pmd_error *err)
{
    pid_t pid = fork();
    int null;

    if (pid < 0)
        return pmd_fail(err, errno, "fork", "%s", "monitor");
    if (pid > 0)
        _exit(0);
    setsid();
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (chdir("/") < 0) /* do not pin the caller's cwd (it may be a mount to be removed) */
        return pmd_fail(err, errno, "chdir", "%s", "/");
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return pmd_fail(err, errno, "open", "%s", "/dev/null");
    for (int i = 0; i < 3; i++)
        if (dup2(null, i) < 0)
            return pmd_fail(err, errno, "dup2", "%s", "/dev/null");
    close(null);
    return 0;
}

static int check_only(const char *arg)
{
    struct pmd_monitor_req q;
    struct pmd_error err = {0};
    char buf[256];
    int fd = parse_fd(arg), n;

    if (fd < 0 || pmd_spec_read(fd, &q, &err) < 0) {
        if (fd < 0)
            pmd_fail(&err, EBADF, "read spec", "bad fd %s", arg);
        say("rejected", &err);
        return 1;
    }
    n = snprintf(buf, sizeof buf, "ok: argv[0]=%s mounts=%d log=%s exit=%s exit_argv[0]=%s\n",
                 q.spec.argv[0], q.spec.n_mounts, q.mon.log_path ? q.mon.log_path : "-",
                 q.mon.exit_path ? q.mon.exit_path : "-",
                 q.mon.exit_argv && q.mon.exit_argv[0] ? q.mon.exit_argv[0] : "-");
    if (write(1, buf, (size_t)n) < 0)
        return 1;
    pmd_spec_release(&q);
    return 0;
}

int main(int argc, char **argv)
{
    struct pmd_monitor_req q;
    struct pmd_error err = {0};
    struct pmd_proc proc;
    static struct stream st[2];
    int spec_fd, status_fd, lo, hi, sigfd, code, in_fd = -1;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    size_t n_st = 0;
    sigset_t watched;

    if (argc == 3 && strcmp(argv[1], "--check") == 0)
        return check_only(argv[2]);
    if (argc != 3 || (spec_fd = parse_fd(argv[1])) < 3 || (status_fd = parse_fd(argv[2])) < 3 ||
        spec_fd == status_fd) {
        static const char usage[] = "usage: pmd-monitor SPEC_FD STATUS_FD | --check SPEC_FD\n"
                                    "(started by pyminidocker for a detached container)\n";
        if (write(2, usage, sizeof usage - 1) < 0)
            return 2;
        return 2;
    }
    /* Nothing else we might have inherited stays open: not in us, not in the container. */
    lo = spec_fd < status_fd ? spec_fd : status_fd;
    hi = spec_fd < status_fd ? status_fd : spec_fd;
    syscall(SYS_close_range, 3U, (unsigned)lo - 1, 0U);
    syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0U);
    syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0U);
    fcntl(status_fd, F_SETFD, FD_CLOEXEC);

    if (pmd_spec_read(spec_fd, &q, &err) < 0)
        goto fail;
    close(spec_fd);
    if (q.mon.log_path == NULL || q.mon.exit_path == NULL || q.spec.stdin_fd != -1 ||
        q.spec.stdout_fd != -1 || q.spec.stderr_fd != -1) {
        pmd_fail(&err, EINVAL, "read spec", "%s",
                 "a monitored spec needs log and exit paths, no stdio fds");
        goto fail;
    }
    if (detach(&err) < 0)
        goto fail;
    reserve_exit(q.mon.exit_path);
    if (q.mon.stdin_path != NULL) {
        /* read-write: never EOF while no writer is attached */
        in_fd = open(q.mon.stdin_path, O_RDWR | O_CLOEXEC | (q.spec.console ? O_NONBLOCK : 0));
        if (in_fd < 0) {
            pmd_fail(&err, errno, "open stdin", "%s", q.mon.stdin_path);
            goto fail;
        }
        if (!q.spec.console) {
            /* fd 0, which the container inherits (its stdin_fd is -1), across restarts too */
            if (dup2(in_fd, 0) < 0) {
                pmd_fail(&err, errno, "dup2 stdin", "%s", q.mon.stdin_path);
                goto fail;
            }
            close(in_fd);
            in_fd = -1;
        }
    }
    out.fd = open(q.mon.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (out.fd < 0) {
        pmd_fail(&err, errno, "open log", "%s", q.mon.log_path);
        goto fail;
    }
    if (q.mon.log_max_size > 0) {
        struct stat lst;
        out.path = q.mon.log_path;
        out.max_size = q.mon.log_max_size;
        out.max_file = q.mon.log_max_file > 0 ? q.mon.log_max_file : 1;
        out.size = fstat(out.fd, &lst) == 0 ? (long long)lst.st_size : 0;
    }
    if (q.spec.console) {
        /* -t: the shim allocates the pty in the container's own devpts (so it is /dev/pts/0 and
         * the controlling tty in there); its master comes back from pmd_spawn below. */
    } else {
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
            pmd_fail(&err, errno, "pipe", "%s", "container output");
            goto fail;
        }
        q.spec.stdout_fd = outp[1];
        q.spec.stderr_fd = errp[1];
        st[0].fd = outp[0];
        pmd_log_stream_init(&st[0].log, "stdout");
        st[1].fd = errp[0];
        pmd_log_stream_init(&st[1].log, "stderr");
        n_st = 2;
    }
    /*
     * Block the signals we watch before the container exists, so that none is lost between the
     * clone and the signalfd (pmd_spawn keeps our mask, and the child resets its own).
     */
    sigemptyset(&watched);
    sigaddset(&watched, SIGCHLD);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGQUIT);
    sigprocmask(SIG_BLOCK, &watched, NULL);
    sigfd = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        pmd_fail(&err, errno, "signalfd", "%s", "");
        goto fail;
    }
    if (pmd_spawn(&q.spec, &proc, &err) < 0)
        goto fail;
    if (q.spec.hold && release_when_told(status_fd, &proc, &err) < 0)
        goto fail;
    if (q.spec.console) {
        st[0].fd = proc.console_fd;
        pmd_log_stream_init(&st[0].log, "stdout");
        n_st = 1;
    }
    /* Only the container holds the write ends now: EOF on them means it (and its
     * descendants) closed them. */
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    report(status_fd, PMD_MON_OK, proc.pid, NULL);
    close(status_fd);

    if (q.mon.health_argv != NULL) {
        hc.m = &q.mon;
        health_reset(pmd_now_ns());
        health_write(); /* "starting" from the first moment, as Docker shows it */
    }
    code = watch(proc.pid, sigfd, st, n_st, in_fd);
    if (q.mon.restart_policy != PMD_RESTART_NO) {
        /*
         * Restarts. The container's network namespace outlives its processes only while
         * something holds it: we keep it open and enter it ourselves before each new spawn,
         * which then inherits it (its namespaces mask without CLONE_NEWNET), so the container
         * keeps its veth, address and published ports. Its rootfs stays mounted and its
         * cgroup stays: the new init joins it again.
         */
        int netfd = -1, count = 0;
        long long delay = 0, started = pmd_now_ns();
        char nspath[64];

        if (q.spec.namespaces & CLONE_NEWNET) {
            snprintf(nspath, sizeof nspath, "/proc/%d/ns/net", proc.pid);
            netfd = open(nspath, O_RDONLY | O_CLOEXEC); /* the zombie still names it */
        }
        while (should_restart(&q.mon, code, count)) {
            delay = pmd_now_ns() - started >= BACKOFF_RESET_NS || delay == 0
                        ? BACKOFF_FIRST_NS
                        : (delay * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : delay * 2);
            write_restart(q.mon.restart_path, count, 0, 1);
            if (backoff(&q.mon, delay))
                break;
            if (netfd >= 0) {
                if (setns(netfd, CLONE_NEWNET) < 0) {
                    pmd_fail(&err, errno, "setns", "%s", "the container's network");
                    say("cannot restart the container", &err);
                    break;
                }
                q.spec.namespaces &= ~CLONE_NEWNET;
            }
            q.spec.hold = 0;
            if (!q.spec.console) {
                if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                    pmd_fail(&err, errno, "pipe", "%s", "container output");
                    say("cannot restart the container", &err);
                    break;
                }
                q.spec.stdout_fd = outp[1];
                q.spec.stderr_fd = errp[1];
                st[0].fd = outp[0];
                pmd_log_stream_init(&st[0].log, "stdout");
                st[1].fd = errp[0];
                pmd_log_stream_init(&st[1].log, "stderr");
            }
            if (pmd_spawn(&q.spec, &proc, &err) < 0) {
                say("cannot restart the container", &err);
                code = 127;
                break;
            }
            if (q.spec.console) {
                st[0].fd = proc.console_fd;
                pmd_log_stream_init(&st[0].log, "stdout");
            } else {
                close(outp[1]);
                close(errp[1]);
            }
            count++;
            started = pmd_now_ns();
            if (hc.m) /* a restarted container starts its health over, as Docker's */
                health_reset(started);
            write_restart(q.mon.restart_path, count, proc.pid, 0);
            code = watch(proc.pid, sigfd, st, n_st, in_fd);
        }
        if (netfd >= 0)
            close(netfd);
        write_restart(q.mon.restart_path, count, 0, 0);
    }
    {
        int oom = oom_killed(q.mon.cleanup_dirs);
        cleanup(&q);
        write_exit(q.mon.exit_path, code, oom);
    }
    if (q.mon.exit_argv && q.mon.exit_argv[0]) {
        /* The exit hook replaces us (same pid: whoever waits for the monitor waits for it).
         * Our signal mask would be inherited: the hook gets a clean one. */
        static const char *const no_env[] = {NULL};
        sigprocmask(SIG_UNBLOCK, &watched, NULL);
        execve(q.mon.exit_argv[0], (char *const *)q.mon.exit_argv,
               (char *const *)(q.mon.exit_envp ? q.mon.exit_envp : no_env));
        return 1; /* stdio is /dev/null: nobody to tell */
    }
    return 0;

fail:
    /* The caller undoes mounts and cgroups (it made them); we only say why. */
    report(status_fd, PMD_MON_ERROR, 0, &err);
    say("cannot start the container", &err);
    return 1;
}
