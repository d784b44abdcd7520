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

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#define LINE_MAX_BYTES (16 * 1024) /* a longer line is logged in pieces, as Docker does */
#define OUT_BUF (8 * 1024)
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

/* ---- time ------------------------------------------------------------------------------- */

/*
 * RFC 3339 with nanoseconds in UTC, as Docker writes it: 2024-01-02T03:04:05.123456789Z.
 * The civil date is computed here (days since the epoch to year/month/day, in 400-year eras
 * with March-based years so that the leap day comes last) because glibc's gmtime_r goes through
 * its time zone code, which reads TZ and /etc/localtime and allocates: pages we would keep.
 */
static size_t fmt_time(char buf[40])
{
    struct timespec ts;
    long long days, secs, era, doe, yoe, doy, mp, y;
    unsigned d, m;

    clock_gettime(CLOCK_REALTIME, &ts);
    days = ts.tv_sec / 86400;
    secs = ts.tv_sec % 86400;
    days += 719468; /* from 1970-01-01 to 0000-03-01 */
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    y = yoe + era * 400 + (m <= 2);
    return (size_t)snprintf(buf, 40, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%09ldZ", y, m, d,
                            secs / 3600, secs / 60 % 60, secs % 60, ts.tv_nsec);
}

static long long mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- the json-file log ------------------------------------------------------------------ */

/* Zero-initialized (so in .bss, not 8 KiB of .data); fd is set once the log is open. */
static struct {
    int fd;
    size_t len;
    char buf[OUT_BUF];
} out;

static void out_flush(void)
{
    size_t off = 0;

    while (off < out.len) {
        ssize_t n = write(out.fd, out.buf + off, out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* disk full, ...: the line is lost; there is nobody to tell */
        off += (size_t)n;
    }
    out.len = 0;
}

static void out_put(const char *p, size_t n)
{
    while (n > 0) {
        size_t k = sizeof out.buf - out.len;
        if (k == 0) {
            out_flush();
            continue;
        }
        if (k > n)
            k = n;
        memcpy(out.buf + out.len, p, k);
        out.len += k;
        p += k;
        n -= k;
    }
}

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (p[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/*
 * The line as a JSON string: quotes, backslashes and control characters escaped, valid UTF-8
 * kept, each invalid byte replaced by U+FFFD (as Go's encoding/json does, which Docker uses), so
 * the log is valid JSON whatever the container writes.
 */
static void out_json_string(const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i + 1;
            while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\')
                j++;
            out_put((const char *)p + i, j - i);
            i = j;
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            out_put(e, 2);
            i++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (c == '\n' || c == '\t' || c == '\r') {
                e[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
                out_put(e, 2);
            } else {
                out_put(e, 6);
            }
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                out_put("\\ufffd", 6);
                i++;
            } else {
                out_put((const char *)p + i, k);
                i += k;
            }
        }
    }
}

struct stream {
    int fd;
    const char *name;
    size_t len;
    unsigned char line[LINE_MAX_BYTES];
};

/* Field by field: assigning a whole struct would write (and so make resident) its line
 * buffer, 16 KiB of PSS per stream that a container with short lines never needs. */
static void set_stream(struct stream *s, int fd, const char *name)
{
    s->fd = fd;
    s->name = name;
    s->len = 0;
}

static void log_line(struct stream *s, const char *when, size_t when_len)
{
    if (s->len == 0)
        return;
    out_put("{\"log\":\"", 8);
    out_json_string(s->line, s->len);
    out_put("\",\"stream\":\"", 12);
    out_put(s->name, strlen(s->name));
    out_put("\",\"time\":\"", 10);
    out_put(when, when_len);
    out_put("\"}\n", 3);
    out_flush(); /* one record per write: a reader following the file sees whole lines */
    s->len = 0;
}

/* Split what was read into lines (the '\n' included); a line that fills the buffer is logged
 * as it is, and the rest follows as the next record. */
static void feed(struct stream *s, const unsigned char *p, size_t n)
{
    char when[40];
    size_t when_len = fmt_time(when); /* the time of the read, for all its lines */

    while (n > 0) {
        const unsigned char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        size_t room = sizeof s->line - s->len;
        int complete = nl != NULL;
        if (take > room) {
            take = room;
            complete = 1;
        }
        memcpy(s->line + s->len, p, take);
        s->len += take;
        p += take;
        n -= take;
        if (complete)
            log_line(s, when, when_len);
    }
}

static void close_stream(struct stream *s)
{
    char when[40];

    if (s->fd < 0)
        return;
    log_line(s, when, fmt_time(when)); /* a last line without '\n' */
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

/* exit_path, atomically: readers see no file or the whole record, never half of it. */
static void write_exit(const char *exit_path, int code, int oom)
{
    char tmp[PATH_MAX], rec[160], when[40];
    int fd, n;

    fmt_time(when);
    n = snprintf(rec, sizeof rec, "{\"exit_code\": %d, \"finished_at\": \"%s\", "
                                  "\"oom_killed\": %s}\n",
                 code, when, oom ? "true" : "false");
    if (snprintf(tmp, sizeof tmp, "%s.tmp", exit_path) >= (int)sizeof tmp)
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* the container was removed meanwhile: nothing to record */
    if (write(fd, rec, (size_t)n) != n || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    if (rename(tmp, exit_path) < 0)
        unlink(tmp);
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Log the streams until the container has exited and they are drained; its exit code. */
static int watch(int pid, int sigfd, struct stream *st, size_t n_st)
{
    struct pollfd pfd[3];
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
        if (exited) {
            long long left = deadline - mono_ns();
            if (open_streams == 0 || left <= 0)
                break;
            timeout = (int)(left / 1000000) + 1;
        }
        if (poll(pfd, 1 + n_st, timeout) < 0) {
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
                if (waitpid(pid, &status, WNOHANG) == pid) {
                    exited = 1;
                    deadline = mono_ns() + DRAIN_NS;
                    break;
                }
            }
        }
        for (size_t i = 0; i < n_st; i++) {
            ssize_t n;
            if (st[i].fd < 0 || !(pfd[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(st[i].fd, buf, sizeof buf);
            if (n > 0)
                feed(&st[i], buf, (size_t)n);
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
    int spec_fd, status_fd, lo, hi, sigfd, code;
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
    out.fd = open(q.mon.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (out.fd < 0) {
        pmd_fail(&err, errno, "open log", "%s", q.mon.log_path);
        goto fail;
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
        set_stream(&st[0], outp[0], "stdout");
        set_stream(&st[1], errp[0], "stderr");
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
        set_stream(&st[0], proc.console_fd, "stdout");
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

    code = watch(proc.pid, sigfd, st, n_st);
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
