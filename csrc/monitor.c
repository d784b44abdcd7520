/*
 * monitor.c: the engine's side of a detached container (pmd_monitor_start; see pmd.h). The
 * monitor itself is monitor_main.c, a separate executable.
 *
 * Why a separate executable rather than a fork of the caller: the caller is CPython. A forked
 * copy would share CPython's pages copy-on-write only while the CLI lives; once the CLI exits,
 * every page the monitor still maps (the interpreter, its heap, the loaded modules) is counted
 * to the monitor alone: megabytes of PSS per running container. An exec'd C program maps libc
 * and a few pages of its own.
 */
#include "pmd_sys.h"
#include "pmd.h"
#include "specio.h"

#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

static ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/*
 * posix_spawn rather than fork: it clones with CLONE_VM|CLONE_VFORK, so CPython's page tables
 * are not copied and no atfork handler of another thread's library runs, and it resets the
 * signal mask and dispositions that CPython set (SIGPIPE ignored, handlers) for the monitor.
 * Only the two fds the monitor needs are inherited: adddup2(fd, fd) clears their
 * close-on-exec flag in the child alone (glibc >= 2.29).
 */
static int run_monitor(const char *path, int spec_fd, int status_fd, pid_t *pid,
                       struct pmd_error *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char a1[16], a2[16];
    char *argv[] = {(char *)path, a1, a2, NULL};
    char *envp[] = {NULL};
    int rc;

    snprintf(a1, sizeof a1, "%d", spec_fd);
    snprintf(a2, sizeof a2, "%d", status_fd);
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return pmd_fail(err, rc, "spawn monitor", "%s", path);
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return pmd_fail(err, rc, "spawn monitor", "%s", path);
    }
    if ((rc = posix_spawn_file_actions_adddup2(&fa, spec_fd, spec_fd)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, status_fd, status_fd)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) == 0 &&
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) ==
            0)
        rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return pmd_fail(err, rc, "spawn monitor", "%s", path);
    return 0;
}

/* A report of the expected kind, or the error it carries (a failed spawn's, as is). */
static int check_report(struct pmd_monitor_msg *msg, int want, struct pmd_error *err)
{
    if (msg->kind == PMD_MON_ERROR) {
        msg->err.op[sizeof msg->err.op - 1] = '\0';
        msg->err.path[sizeof msg->err.path - 1] = '\0';
        *err = msg->err;
        if (err->err == 0)
            err->err = EIO;
        return -1;
    }
    if (msg->kind != want || msg->pid <= 0 || msg->monitor_pid <= 0)
        return pmd_fail(err, EIO, "read monitor status", "bad report (kind %d)", msg->kind);
    return 0;
}

int pmd_monitor_start(const char *monitor_path, const struct pmd_spawn_spec *spec,
                      const struct pmd_monitor_spec *mon, struct pmd_monitor_info *info,
                      struct pmd_error *err)
{
    pmd_cleanup_fd int spec_fd = -1, status_rd = -1, status_wr = -1;
    struct pmd_monitor_msg msg;
    int fds[2], status = 0;
    pid_t pid;
    ssize_t n;

    info->pid = info->monitor_pid = info->status_fd = -1;
    if (monitor_path == NULL || mon->log_path == NULL || mon->exit_path == NULL)
        return pmd_fail(err, EINVAL, "monitor start", "%s",
                        "monitor, log and exit paths are required");
    if (spec->stdin_fd != -1 || spec->stdout_fd != -1 || spec->stderr_fd != -1)
        return pmd_fail(err, EINVAL, "monitor start", "%s",
                        "the monitor provides stdio: stdio fds must be -1");
    spec_fd = memfd_create("pmd-spec", MFD_CLOEXEC);
    if (spec_fd < 0)
        return pmd_fail(err, errno, "memfd_create", "%s", "pmd-spec");
    if (pmd_spec_write(spec_fd, spec, mon, err) < 0)
        return -1;
    /* A socket, not a pipe: with spec->hold the engine answers on it (pmd_monitor_release). */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return pmd_fail(err, errno, "socketpair", "%s", "monitor status");
    status_rd = fds[0];
    status_wr = fds[1];
    if (run_monitor(monitor_path, spec_fd, status_wr, &pid, err) < 0)
        return -1;
    close(status_wr);
    status_wr = -1;
    /*
     * The process we spawned is only the monitor's first half: it forks the real monitor and
     * exits, so we reap it at once and the monitor is nobody's child we must wait for (it is
     * reparented to init or the nearest subreaper). The report comes from the real monitor;
     * EOF without one means both halves died before reporting.
     */
    n = read_full(status_rd, &msg, sizeof msg);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return pmd_fail(err, errno, "read monitor status", "%s", monitor_path);
    if (n != (ssize_t)sizeof msg)
        return pmd_fail(err, ECHILD, "monitor died during setup", "%s: wait status %#x",
                        monitor_path, (unsigned)status);
    if (check_report(&msg, spec->hold ? PMD_MON_HELD : PMD_MON_OK, err) < 0)
        return -1;
    info->pid = msg.pid;
    info->monitor_pid = msg.monitor_pid;
    if (spec->hold) {
        info->status_fd = status_rd;
        status_rd = -1; /* kept for pmd_monitor_release */
    }
    return 0;
}

int pmd_monitor_release(struct pmd_monitor_info *info, struct pmd_error *err)
{
    pmd_cleanup_fd int fd = info->status_fd;
    struct pmd_monitor_msg msg;
    ssize_t n;

    info->status_fd = -1;
    if (fd < 0)
        return pmd_fail(err, EINVAL, "monitor release", "%s", "the container is not held");
    if (write(fd, "g", 1) != 1)
        return pmd_fail(err, errno, "monitor release", "%s", "write");
    n = read_full(fd, &msg, sizeof msg);
    if (n < 0)
        return pmd_fail(err, errno, "read monitor status", "%s", "after release");
    if (n != (ssize_t)sizeof msg)
        return pmd_fail(err, ECHILD, "monitor died during setup", "%s", "after release");
    return check_report(&msg, PMD_MON_OK, err);
}
