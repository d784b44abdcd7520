/*
 * relay.c: an attached container's output, from its pipes (or pty) to the caller's stdout and
 * stderr and into its json-file log (pmd_relay_run; see pmd.h).
 *
 * Why in C: the log must be written exactly as pmd-monitor writes a detached container's, and
 * there is one writer of that format, jsonlog.c, which the monitor cannot do without.
 *
 * Why it returns on a signal: the caller is CPython, whose signal handlers run only between
 * bytecodes of its main thread, and an attached `run` forwards SIGINT, SIGTERM, ... to the
 * container from such handlers. A loop that retried EINTR would keep them from running until
 * the container exits, so a signal makes it return instead, its state kept in the caller's
 * struct for the next call. EINTR alone is not enough: while output pours through, the loop
 * is mostly in its own code (reading, logging, writing), and a signal delivered then
 * interrupts nothing; it was missed every time in a test with a flooding container. So every
 * wait also watches wake_fd, CPython's signal wakeup fd, which the handler writes to.
 */
#include "pmd_sys.h"
#include "pmd.h"
#include "jsonlog.h"

#include <poll.h>
#include <sys/wait.h>

#define RELAY_BUF (64 * 1024)     /* a pipe's default capacity: one read empties it */
#define DRAIN_NS 1000000000ll     /* after the exit, how long output may still arrive */

/* What pmd_relay_run keeps between calls, in pmd_relay.priv. Only `started` (its first word)
 * must be 0 before the first call, which sets up the rest: the caller need not zero 105 KiB,
 * and the pages of buffers that are never used are never touched. */
struct relay_state {
    int started;
    int exited;
    long long deadline;           /* exited: when to stop waiting for EOF */
    int pend_stream;              /* the stream whose chunk is being written to its dst */
    size_t pend_off, pend_len;    /* that chunk: buf[pend_off, pend_off + pend_len) */
    struct pmd_log log;
    struct pmd_log_stream st[2];
    unsigned char buf[RELAY_BUF];
};

_Static_assert(sizeof(struct relay_state) <= sizeof(((struct pmd_relay *)0)->priv),
               "struct relay_state does not fit in pmd_relay.priv: raise PMD_RELAY_PRIVATE");
_Static_assert(_Alignof(struct relay_state) <= _Alignof(uint64_t),
               "struct relay_state needs more alignment than pmd_relay.priv has");

/* A signal arrived: say so, the wake-up bytes it left read (the next call waits again). */
static int interrupted(struct pmd_relay *r, struct pmd_error *err)
{
    char drain[256];

    if (r->wake_fd >= 0 && read(r->wake_fd, drain, sizeof drain) < 0 && errno != EAGAIN)
        return pmd_fail(err, errno, "read", "%s", "wake_fd");
    return pmd_fail(err, EINTR, "relay", "%s", "interrupted by a signal: call again");
}

static void end_stream(struct pmd_relay *r, struct relay_state *s, int i)
{
    pmd_log_end(&s->log, &s->st[i]);
    if (r->src[i] >= 0) {
        close(r->src[i]);
        r->src[i] = -1;
    }
}

/*
 * Write the pending chunk to its stream's destination; a destination that fails ends the
 * stream (see pmd.h). Resumable: a signal leaves the rest pending. Each write waits for room
 * in poll, where wake_fd is watched too: a signal that arrived since the last system call is
 * seen there, not after a write that could block for as long as nobody reads the other end.
 */
static int write_pending(struct pmd_relay *r, struct relay_state *s, struct pmd_error *err)
{
    int i = s->pend_stream;

    while (s->pend_len > 0) {
        struct pollfd p[2] = {{r->dst[i], POLLOUT, 0}, {r->wake_fd, POLLIN, 0}};
        ssize_t n;
        if (poll(p, 2, -1) < 0)
            return errno == EINTR ? interrupted(r, err) : pmd_fail(err, errno, "poll", "%s", "dst");
        if (p[1].revents & POLLIN)
            return interrupted(r, err);
        n = write(r->dst[i], s->buf + s->pend_off, s->pend_len);
        if (n > 0) {
            s->pend_off += (size_t)n;
            s->pend_len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            return interrupted(r, err);
        } else if (n < 0 && errno == EAGAIN) {
            continue; /* a non-blocking destination (a terminal's O_NONBLOCK is shared by
                         every process that has it open): poll waits for room */
        } else {
            s->pend_len = 0;
            end_stream(r, s, i);
        }
    }
    return 0;
}

int pmd_relay_run(struct pmd_relay *r, struct pmd_error *err)
{
    struct relay_state *s = (struct relay_state *)r->priv;
    int status;

    if (r->pidfd < 0)
        return pmd_fail(err, EBADF, "relay", "%s", "pidfd");
    if (!s->started) {
        s->started = 1;
        s->exited = 0;
        s->deadline = 0;
        s->pend_stream = 0;
        s->pend_off = s->pend_len = 0;
        s->log.fd = r->log_fd;
        s->log.len = 0;
        s->log.path = NULL; /* no rotation for an attached container's log */
        s->log.max_size = 0;
        pmd_log_stream_init(&s->st[0], "stdout");
        pmd_log_stream_init(&s->st[1], "stderr");
    }
    if (write_pending(r, s, err) < 0)
        return -1;
    for (;;) {
        struct pollfd pfd[4];
        int timeout = -1, open_streams = 0;

        pfd[0] = (struct pollfd){s->exited ? -1 : r->pidfd, POLLIN, 0};
        for (int i = 0; i < 2; i++) {
            pfd[1 + i] = (struct pollfd){r->src[i], POLLIN, 0};
            open_streams += r->src[i] >= 0;
        }
        pfd[3] = (struct pollfd){r->wake_fd, POLLIN, 0};
        if (s->exited) {
            long long left = s->deadline - pmd_now_ns();
            if (open_streams == 0 || left <= 0)
                break;
            timeout = (int)(left / 1000000) + 1;
        }
        if (poll(pfd, 4, timeout) < 0)
            return errno == EINTR ? interrupted(r, err)
                                  : pmd_fail(err, errno, "poll", "%s", "relay");
        if (pfd[3].revents & POLLIN)
            return interrupted(r, err);
        if (pfd[0].revents & POLLNVAL)
            return pmd_fail(err, EBADF, "relay", "%s", "pidfd");
        if (pfd[0].revents & POLLIN) {
            s->exited = 1;
            s->deadline = pmd_now_ns() + DRAIN_NS;
        }
        /* Each stream that has something, once per round: neither starves the other. */
        for (int i = 0; i < 2; i++) {
            ssize_t n;
            if (r->src[i] < 0 || !pfd[1 + i].revents)
                continue;
            if (pfd[1 + i].revents & POLLNVAL)
                return pmd_fail(err, EBADF, "relay", "%s", i ? "src[1]" : "src[0]");
            n = read(r->src[i], s->buf, sizeof s->buf);
            if (n > 0) {
                pmd_log_feed(&s->log, &s->st[i], s->buf, (size_t)n);
                if (r->dst[i] >= 0) {
                    s->pend_stream = i;
                    s->pend_off = 0;
                    s->pend_len = (size_t)n;
                    if (write_pending(r, s, err) < 0)
                        return -1;
                }
            } else if (n < 0 && errno == EINTR) {
                return interrupted(r, err);
            } else if (n == 0 || errno != EAGAIN) {
                end_stream(r, s, i); /* EOF; a pty's master says EIO once the other side is gone */
            }
        }
    }
    for (int i = 0; i < 2; i++)
        end_stream(r, s, i);
    if (waitpid(r->pid, &status, 0) < 0)
        return errno == EINTR ? interrupted(r, err) : pmd_fail(err, errno, "waitpid", "%d", r->pid);
    r->status = status;
    return 0;
}
