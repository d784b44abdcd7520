/*
 * specio.c: the one serialization of a spawn spec, written by the engine (pmd_spec_write, in
 * the cffi module) and read by pmd-monitor (pmd_spec_read), which are built from this same file.
 *
 * Why serialize at all: the monitor is a separate executable (see monitor.c), so the spec must
 * cross an execve. A memfd holds it: no temporary file to clean up, no size limit of argv or
 * of a pipe buffer, and the monitor can mmap it and point into it instead of copying.
 *
 * Layout (native byte order and sizes: writer and reader are the same build on the same host):
 *
 *   struct wire_hdr     magic "PMDS", version, total length, header+spec size, checksum
 *   struct wire_spec    the spec's integers, and byte offsets (from the blob's start) of
 *                       everything else; offset 0 means NULL (0 is inside the header)
 *   data                strings (NUL-terminated), string vectors (u32 count, u32 offsets[]),
 *                       mount and rlimit tables, the groups array, the seccomp program
 *
 * The checksum (FNV-1a, 64 bits, over everything after the header) is not security: the blob
 * comes from root through an fd only root could give. It makes a blob that was truncated or
 * damaged fail loudly, with its reason, rather than run a container with a garbled argv.
 * Bounds are checked independently of the checksum, so even a blob with a "valid" checksum
 * cannot make the reader access memory outside it.
 */
#include "pmd_sys.h"
#include "pmd.h"
#include "specio.h"

#include <stddef.h>
#include <sys/mman.h>

#define SPEC_MAGIC 0x53444d50u /* "PMDS" little-endian */
#define SPEC_VERSION 9u
#define SPEC_MAX (16u << 20)   /* far above any real spec; bounds the monitor's mapping */
#define VEC_MAX 65536u         /* entries in one string vector or table */

struct wire_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t length;   /* the whole blob, this header included */
    uint32_t fixed;    /* sizeof(wire_hdr) + sizeof(wire_spec): catches a layout mismatch */
    uint64_t checksum; /* FNV-1a 64 of bytes [sizeof(wire_hdr), length) */
};

struct wire_spec {
    int32_t namespaces, readonly_root, n_mounts, dev_setup, uid, gid, n_groups, set_caps,
        n_rlimits, no_new_privs, seccomp_len, stdin_fd, stdout_fd, stderr_fd, setsid, ctty, hold,
        join_pid, console, restart_policy, restart_max, health_interval_ms, health_timeout_ms,
        health_start_ms, health_retries, log_max_file, share_pid, share_namespaces, mounts_joined,
        userns_joined, root_propagation;
    uint32_t seccomp_flags;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int64_t log_max_size;
    /* offsets; 0 = NULL */
    uint32_t rootfs, mounts, masked_paths, readonly_paths, hostname, argv, envp, cwd, groups,
        rlimits, cgroup_procs, seccomp_prog, log_path, exit_path, cleanup_mounts, cleanup_dirs,
        exit_argv, exit_envp, restart_path, stop_path, health_argv, health_envp, health_path,
        stdin_path;
};

struct wire_mount {
    uint32_t source, target, fstype, data; /* offsets */
    int32_t flags;
    uint32_t pad;
    uint64_t mount_flags;
};

struct wire_rlimit {
    int32_t resource;
    uint32_t pad;
    uint64_t soft, hard;
};

#define FIXED (sizeof(struct wire_hdr) + sizeof(struct wire_spec))

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- writer ----------------------------------------------------------------------------- */

/*
 * The writer lays the blob out twice with the same code: first with buf == NULL to measure it,
 * then into a buffer of that size. Offsets beyond UINT32_MAX cannot happen (SPEC_MAX).
 */
struct builder {
    unsigned char *buf; /* NULL: measuring */
    size_t pos;
};

static uint32_t reserve(struct builder *b, size_t len, size_t align)
{
    size_t at = (b->pos + align - 1) & ~(align - 1);

    if (b->buf && at > b->pos)
        memset(b->buf + b->pos, 0, at - b->pos);
    b->pos = at + len;
    return (uint32_t)at;
}

static uint32_t put_str(struct builder *b, const char *s)
{
    size_t n;
    uint32_t at;

    if (s == NULL)
        return 0;
    n = strlen(s) + 1;
    at = reserve(b, n, 1);
    if (b->buf)
        memcpy(b->buf + at, s, n);
    return at;
}

static void put_u32(struct builder *b, uint32_t at, uint32_t v)
{
    if (b->buf)
        memcpy(b->buf + at, &v, sizeof v);
}

static uint32_t put_vec(struct builder *b, const char *const *v)
{
    uint32_t n = 0, at;

    if (v == NULL)
        return 0;
    while (v[n])
        n++;
    at = reserve(b, 4 + 4 * (size_t)n, 4);
    put_u32(b, at, n);
    for (uint32_t i = 0; i < n; i++)
        put_u32(b, at + 4 + 4 * i, put_str(b, v[i]));
    return at;
}

static void layout(struct builder *b, const struct pmd_spawn_spec *s,
                   const struct pmd_monitor_spec *mon)
{
    struct wire_spec w = {
        .namespaces = s->namespaces, .readonly_root = s->readonly_root,
        .n_mounts = s->n_mounts, .dev_setup = s->dev_setup, .uid = s->uid, .gid = s->gid,
        .n_groups = s->n_groups, .set_caps = s->set_caps, .n_rlimits = s->n_rlimits,
        .no_new_privs = s->no_new_privs, .seccomp_len = s->seccomp_prog ? s->seccomp_len : 0,
        .seccomp_flags = s->seccomp_flags, .stdin_fd = s->stdin_fd,
        .stdout_fd = s->stdout_fd, .stderr_fd = s->stderr_fd, .setsid = s->setsid,
        .ctty = s->ctty, .hold = s->hold, .join_pid = s->join_pid, .console = s->console,
        .share_pid = s->share_pid, .share_namespaces = s->share_namespaces,
        .mounts_joined = s->mounts_joined, .userns_joined = s->userns_joined,
        .root_propagation = s->root_propagation, .cap_bounding = s->cap_bounding, .cap_effective = s->cap_effective,
        .cap_permitted = s->cap_permitted, .cap_inheritable = s->cap_inheritable,
        .cap_ambient = s->cap_ambient,
    };
    uint32_t at;

    b->pos = FIXED;
    w.rootfs = put_str(b, s->rootfs);
    w.hostname = put_str(b, s->hostname);
    w.cwd = put_str(b, s->cwd);
    w.log_path = put_str(b, mon->log_path);
    w.exit_path = put_str(b, mon->exit_path);
    w.masked_paths = put_vec(b, s->masked_paths);
    w.readonly_paths = put_vec(b, s->readonly_paths);
    w.argv = put_vec(b, s->argv);
    w.envp = put_vec(b, s->envp);
    w.cgroup_procs = put_vec(b, s->cgroup_procs);
    w.cleanup_mounts = put_vec(b, mon->cleanup_mounts);
    w.cleanup_dirs = put_vec(b, mon->cleanup_dirs);
    w.exit_argv = put_vec(b, mon->exit_argv);
    w.exit_envp = put_vec(b, mon->exit_envp);
    w.restart_path = put_str(b, mon->restart_path);
    w.stop_path = put_str(b, mon->stop_path);
    w.stdin_path = put_str(b, mon->stdin_path);
    w.restart_policy = mon->restart_policy;
    w.restart_max = mon->restart_max;
    w.health_argv = put_vec(b, mon->health_argv);
    w.health_envp = put_vec(b, mon->health_envp);
    w.health_path = put_str(b, mon->health_path);
    w.health_interval_ms = mon->health_interval_ms;
    w.health_timeout_ms = mon->health_timeout_ms;
    w.health_start_ms = mon->health_start_ms;
    w.health_retries = mon->health_retries;
    w.log_max_size = mon->log_max_size;
    w.log_max_file = mon->log_max_file;
    if (s->n_groups > 0) {
        w.groups = reserve(b, 4 * (size_t)s->n_groups, 4);
        if (b->buf)
            memcpy(b->buf + w.groups, s->groups, 4 * (size_t)s->n_groups);
    }
    if (s->seccomp_prog != NULL && s->seccomp_len > 0) {
        size_t n = sizeof(struct pmd_bpf_insn) * (size_t)s->seccomp_len;
        w.seccomp_prog = reserve(b, n, 8);
        if (b->buf)
            memcpy(b->buf + w.seccomp_prog, s->seccomp_prog, n);
    }
    if (s->n_rlimits > 0) {
        w.rlimits = reserve(b, sizeof(struct wire_rlimit) * (size_t)s->n_rlimits, 8);
        for (int i = 0; i < s->n_rlimits && b->buf; i++) {
            struct wire_rlimit r = {s->rlimits[i].resource, 0, s->rlimits[i].soft,
                                    s->rlimits[i].hard};
            memcpy(b->buf + w.rlimits + i * sizeof r, &r, sizeof r);
        }
    }
    if (s->n_mounts > 0) {
        w.mounts = reserve(b, sizeof(struct wire_mount) * (size_t)s->n_mounts, 8);
        for (int i = 0; i < s->n_mounts; i++) {
            const struct pmd_mount *m = &s->mounts[i];
            struct wire_mount wm = {0, 0, 0, 0, m->flags, 0, m->mount_flags};
            wm.source = put_str(b, m->source);
            wm.target = put_str(b, m->target);
            wm.fstype = put_str(b, m->fstype);
            wm.data = put_str(b, m->data);
            if (b->buf)
                memcpy(b->buf + w.mounts + i * sizeof wm, &wm, sizeof wm);
        }
    }
    at = reserve(b, 0, 8); /* round the length up: the reader need not care */
    if (b->buf) {
        struct wire_hdr h = {SPEC_MAGIC, SPEC_VERSION, at, (uint32_t)FIXED, 0};
        memcpy(b->buf + sizeof h, &w, sizeof w);
        h.checksum = fnv1a(b->buf + sizeof h, at - sizeof h);
        memcpy(b->buf, &h, sizeof h);
    }
}

int pmd_spec_write(int fd, const struct pmd_spawn_spec *spec, const struct pmd_monitor_spec *mon,
                   struct pmd_error *err)
{
    struct builder b = {NULL, 0};
    size_t off = 0;

    if (spec->n_mounts < 0 || (spec->n_mounts > 0 && spec->mounts == NULL) ||
        spec->n_rlimits < 0 || (spec->n_rlimits > 0 && spec->rlimits == NULL) ||
        (spec->n_groups > 0 && spec->groups == NULL) ||
        (spec->seccomp_prog && (spec->seccomp_len < 1 || spec->seccomp_len > PMD_SECCOMP_PROG_MAX)))
        return pmd_fail(err, EINVAL, "write spec", "%s", "bad array length");
    layout(&b, spec, mon);
    if (b.pos > SPEC_MAX)
        return pmd_fail(err, E2BIG, "write spec", "%zu bytes, at most %u", b.pos, SPEC_MAX);
    b.buf = malloc(b.pos);
    if (b.buf == NULL)
        return pmd_fail(err, ENOMEM, "write spec", "%zu bytes", b.pos);
    layout(&b, spec, mon);
    while (off < b.pos) {
        ssize_t n = write(fd, b.buf + off, b.pos - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(b.buf);
            return pmd_fail(err, e, "write spec", "fd %d", fd);
        }
        off += (size_t)n;
    }
    free(b.buf);
    return 0;
}

/* ---- reader ----------------------------------------------------------------------------- */

struct reader {
    const unsigned char *buf;
    size_t len;
    unsigned char *arena; /* bump allocator for pointer tables and arrays */
    size_t arena_len, arena_pos;
    struct pmd_error *err;
};

static void *alloc(struct reader *r, size_t size)
{
    size_t at = (r->arena_pos + 7) & ~(size_t)7;

    if (at > r->arena_len || size > r->arena_len - at)
        return NULL; /* cannot happen: the arena is sized for the worst case */
    r->arena_pos = at + size;
    return r->arena + at;
}

/* A range [off, off + size) that lies in the data part of the blob, aligned. */
static int range_ok(const struct reader *r, uint64_t off, uint64_t size, unsigned align)
{
    return off >= FIXED && off % align == 0 && off <= r->len && size <= r->len - off;
}

static int get_str(struct reader *r, uint32_t off, const char **out, const char *what)
{
    if (off == 0) {
        *out = NULL;
        return 0;
    }
    if (!range_ok(r, off, 1, 1) || memchr(r->buf + off, '\0', r->len - off) == NULL)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: %s: string at offset %u out of bounds or unterminated",
                        what, off);
    *out = (const char *)r->buf + off;
    return 0;
}

static int get_vec(struct reader *r, uint32_t off, const char *const **out, const char *what)
{
    uint32_t n;
    const char **v;

    *out = NULL;
    if (off == 0)
        return 0;
    if (!range_ok(r, off, 4, 4))
        return pmd_fail(r->err, EINVAL, "read spec", "corrupt spec: %s: offset %u out of bounds",
                        what, off);
    memcpy(&n, r->buf + off, 4);
    if (n > VEC_MAX || !range_ok(r, off, 4 + 4 * (uint64_t)n, 4))
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: %s: %u entries at offset %u exceed the blob", what, n, off);
    v = alloc(r, sizeof(char *) * ((size_t)n + 1));
    if (v == NULL)
        return pmd_fail(r->err, ENOMEM, "read spec", "%s", what);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t so;
        memcpy(&so, r->buf + off + 4 + 4 * (size_t)i, 4);
        if (so == 0 || get_str(r, so, &v[i], what) < 0)
            return pmd_fail(r->err, EINVAL, "read spec",
                            "corrupt spec: %s[%u]: bad string offset %u", what, i, so);
    }
    v[n] = NULL;
    *out = v;
    return 0;
}

static int read_tables(struct reader *r, const struct wire_spec *w, struct pmd_monitor_req *q)
{
    struct pmd_spawn_spec *s = &q->spec;

    if (w->n_mounts < 0 || (uint32_t)w->n_mounts > VEC_MAX || w->n_rlimits < 0 ||
        (uint32_t)w->n_rlimits > VEC_MAX || w->n_groups < -1 || w->n_groups > (int)VEC_MAX)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: counts mounts %d rlimits %d groups %d", w->n_mounts,
                        w->n_rlimits, w->n_groups);
    if ((w->n_mounts > 0) != (w->mounts != 0) || (w->n_rlimits > 0) != (w->rlimits != 0) ||
        (w->n_groups > 0) != (w->groups != 0))
        return pmd_fail(r->err, EINVAL, "read spec", "%s",
                        "corrupt spec: array offsets disagree with their counts");
    if (w->seccomp_len < 0 || w->seccomp_len > PMD_SECCOMP_PROG_MAX ||
        (w->seccomp_len > 0) != (w->seccomp_prog != 0))
        return pmd_fail(r->err, EINVAL, "read spec", "corrupt spec: seccomp program of %d",
                        w->seccomp_len);
    if (w->seccomp_len > 0) {
        if (!range_ok(r, w->seccomp_prog, sizeof(struct pmd_bpf_insn) * (uint64_t)w->seccomp_len,
                      8))
            return pmd_fail(r->err, EINVAL, "read spec", "%s",
                            "corrupt spec: seccomp program out of bounds");
        s->seccomp_prog = (const struct pmd_bpf_insn *)(r->buf + w->seccomp_prog);
        s->seccomp_len = w->seccomp_len;
    }
    if (w->n_groups > 0) {
        if (!range_ok(r, w->groups, 4 * (uint64_t)w->n_groups, 4))
            return pmd_fail(r->err, EINVAL, "read spec", "%s", "corrupt spec: groups out of bounds");
        s->groups = (const unsigned int *)(r->buf + w->groups);
    }
    if (w->n_rlimits > 0) {
        struct pmd_rlimit *rl;
        if (!range_ok(r, w->rlimits, sizeof(struct wire_rlimit) * (uint64_t)w->n_rlimits, 8))
            return pmd_fail(r->err, EINVAL, "read spec", "%s",
                            "corrupt spec: rlimits out of bounds");
        if ((rl = alloc(r, sizeof *rl * (size_t)w->n_rlimits)) == NULL)
            return pmd_fail(r->err, ENOMEM, "read spec", "%s", "rlimits");
        for (int i = 0; i < w->n_rlimits; i++) {
            struct wire_rlimit wr;
            memcpy(&wr, r->buf + w->rlimits + i * sizeof wr, sizeof wr);
            rl[i] = (struct pmd_rlimit){wr.resource, wr.soft, wr.hard};
        }
        s->rlimits = rl;
    }
    if (w->n_mounts > 0) {
        struct pmd_mount *ms;
        if (!range_ok(r, w->mounts, sizeof(struct wire_mount) * (uint64_t)w->n_mounts, 8))
            return pmd_fail(r->err, EINVAL, "read spec", "%s",
                            "corrupt spec: mounts out of bounds");
        if ((ms = alloc(r, sizeof *ms * (size_t)w->n_mounts)) == NULL)
            return pmd_fail(r->err, ENOMEM, "read spec", "%s", "mounts");
        for (int i = 0; i < w->n_mounts; i++) {
            struct wire_mount wm;
            memcpy(&wm, r->buf + w->mounts + i * sizeof wm, sizeof wm);
            ms[i].mount_flags = (unsigned long)wm.mount_flags;
            ms[i].flags = wm.flags;
            if (get_str(r, wm.source, &ms[i].source, "mount source") < 0 ||
                get_str(r, wm.target, &ms[i].target, "mount target") < 0 ||
                get_str(r, wm.fstype, &ms[i].fstype, "mount fstype") < 0 ||
                get_str(r, wm.data, &ms[i].data, "mount data") < 0)
                return -1;
            if (ms[i].target == NULL)
                return pmd_fail(r->err, EINVAL, "read spec", "corrupt spec: mount %d has no target",
                                i);
        }
        s->mounts = ms;
    }
    return 0;
}

static int read_blob(struct reader *r, struct pmd_monitor_req *q)
{
    struct pmd_spawn_spec *s = &q->spec;
    struct wire_hdr h;
    struct wire_spec w;

    if (r->len < FIXED)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: truncated: %zu bytes, the header alone is %zu", r->len,
                        FIXED);
    memcpy(&h, r->buf, sizeof h);
    if (h.magic != SPEC_MAGIC)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: bad magic %#x (not a pyminidocker spec)", h.magic);
    if (h.version != SPEC_VERSION || h.fixed != FIXED)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "spec version %u (header %u bytes), this monitor reads version %u (%zu): "
                        "engine and monitor are from different builds",
                        h.version, h.fixed, SPEC_VERSION, FIXED);
    if (h.length != r->len)
        return pmd_fail(r->err, EINVAL, "read spec",
                        "corrupt spec: truncated or padded: %zu bytes, the header says %u",
                        r->len, h.length);
    if (fnv1a(r->buf + sizeof h, r->len - sizeof h) != h.checksum)
        return pmd_fail(r->err, EINVAL, "read spec", "%s", "corrupt spec: checksum mismatch");
    memcpy(&w, r->buf + sizeof h, sizeof w);

    *s = (struct pmd_spawn_spec){
        .namespaces = w.namespaces, .readonly_root = w.readonly_root, .n_mounts = w.n_mounts,
        .dev_setup = w.dev_setup, .uid = w.uid, .gid = w.gid, .n_groups = w.n_groups,
        .set_caps = w.set_caps, .cap_bounding = w.cap_bounding,
        .cap_effective = w.cap_effective, .cap_permitted = w.cap_permitted,
        .cap_inheritable = w.cap_inheritable, .cap_ambient = w.cap_ambient,
        .n_rlimits = w.n_rlimits, .no_new_privs = w.no_new_privs,
        .seccomp_flags = w.seccomp_flags,
        .stdin_fd = w.stdin_fd, .stdout_fd = w.stdout_fd, .stderr_fd = w.stderr_fd,
        .setsid = w.setsid, .ctty = w.ctty, .hold = w.hold, .join_pid = w.join_pid,
        .console = w.console, .share_pid = w.share_pid, .share_namespaces = w.share_namespaces,
        .mounts_joined = w.mounts_joined, .userns_joined = w.userns_joined,
        .root_propagation = w.root_propagation,
    };
    if (get_str(r, w.rootfs, &s->rootfs, "rootfs") < 0 ||
        get_str(r, w.hostname, &s->hostname, "hostname") < 0 ||
        get_str(r, w.cwd, &s->cwd, "cwd") < 0 ||
        get_str(r, w.log_path, &q->mon.log_path, "log path") < 0 ||
        get_str(r, w.exit_path, &q->mon.exit_path, "exit path") < 0 ||
        get_vec(r, w.masked_paths, &s->masked_paths, "masked paths") < 0 ||
        get_vec(r, w.readonly_paths, &s->readonly_paths, "read-only paths") < 0 ||
        get_vec(r, w.argv, &s->argv, "argv") < 0 || get_vec(r, w.envp, &s->envp, "envp") < 0 ||
        get_vec(r, w.cgroup_procs, &s->cgroup_procs, "cgroup procs") < 0 ||
        get_vec(r, w.cleanup_mounts, &q->mon.cleanup_mounts, "cleanup mounts") < 0 ||
        get_vec(r, w.cleanup_dirs, &q->mon.cleanup_dirs, "cleanup dirs") < 0 ||
        get_vec(r, w.exit_argv, &q->mon.exit_argv, "exit argv") < 0 ||
        get_vec(r, w.exit_envp, &q->mon.exit_envp, "exit envp") < 0 ||
        get_str(r, w.restart_path, &q->mon.restart_path, "restart path") < 0 ||
        get_str(r, w.stop_path, &q->mon.stop_path, "stop path") < 0 ||
        get_str(r, w.stdin_path, &q->mon.stdin_path, "stdin path") < 0 ||
        get_vec(r, w.health_argv, &q->mon.health_argv, "health argv") < 0 ||
        get_vec(r, w.health_envp, &q->mon.health_envp, "health envp") < 0 ||
        get_str(r, w.health_path, &q->mon.health_path, "health path") < 0)
        return -1;
    q->mon.health_interval_ms = w.health_interval_ms;
    q->mon.health_timeout_ms = w.health_timeout_ms;
    q->mon.health_start_ms = w.health_start_ms;
    q->mon.health_retries = w.health_retries;
    q->mon.log_max_size = w.log_max_size;
    q->mon.log_max_file = w.log_max_file;
    if (q->mon.health_argv != NULL &&
        (q->mon.health_argv[0] == NULL || q->mon.health_path == NULL ||
         q->mon.health_interval_ms <= 0 || q->mon.health_timeout_ms <= 0 ||
         q->mon.health_retries <= 0))
        return pmd_fail(r->err, EINVAL, "read spec", "%s",
                        "corrupt spec: a healthcheck needs argv, path, interval, timeout, retries");
    q->mon.restart_policy = w.restart_policy;
    q->mon.restart_max = w.restart_max;
    if (q->mon.restart_policy < PMD_RESTART_NO || q->mon.restart_policy > PMD_RESTART_UNLESS_STOPPED ||
        (q->mon.restart_policy != PMD_RESTART_NO &&
         (q->mon.restart_path == NULL || q->mon.stop_path == NULL)))
        return pmd_fail(r->err, EINVAL, "read spec", "%s",
                        "corrupt spec: a bad restart policy, or no restart or stop path");
    if (s->argv == NULL || s->argv[0] == NULL)
        return pmd_fail(r->err, EINVAL, "read spec", "%s", "corrupt spec: no argv");
    return read_tables(r, &w, q);
}

int pmd_spec_read(int fd, struct pmd_monitor_req *req, struct pmd_error *err)
{
    struct reader r = {NULL, 0, NULL, 0, 0, err};
    struct stat st;
    void *map, *arena;

    memset(req, 0, sizeof *req);
    if (fstat(fd, &st) < 0)
        return pmd_fail(err, errno, "read spec", "fd %d", fd);
    if (!S_ISREG(st.st_mode))
        return pmd_fail(err, EINVAL, "read spec", "fd %d is not a memfd or file", fd);
    if (st.st_size < (off_t)FIXED)
        return pmd_fail(err, EINVAL, "read spec",
                        "corrupt spec: truncated: %lld bytes, the header alone is %zu",
                        (long long)st.st_size, FIXED);
    if (st.st_size > (off_t)SPEC_MAX)
        return pmd_fail(err, EINVAL, "read spec", "corrupt spec: %lld bytes, at most %u",
                        (long long)st.st_size, SPEC_MAX);
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return pmd_fail(err, errno, "read spec", "mmap of fd %d", fd);
    /*
     * Every pointer slot comes from at least 4 bytes of the blob (a vector entry, or a vector's
     * count for its NULL), every struct pmd_mount (48 bytes) from a 32-byte wire_mount, every
     * pmd_rlimit from a wire_rlimit of its size: twice the blob's length is always enough.
     * Only the pages used are ever touched.
     */
    r.arena_len = 2 * (size_t)st.st_size;
    arena = mmap(NULL, r.arena_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) {
        int e = errno;
        munmap(map, (size_t)st.st_size);
        return pmd_fail(err, e, "read spec", "%s", "mmap of the arena");
    }
    r.buf = map;
    r.len = (size_t)st.st_size;
    r.arena = arena;
    req->map = map;
    req->map_len = r.len;
    req->arena = arena;
    req->arena_len = r.arena_len;
    if (read_blob(&r, req) < 0) {
        pmd_spec_release(req);
        return -1;
    }
    return 0;
}

void pmd_spec_release(struct pmd_monitor_req *req)
{
    if (req->map)
        munmap(req->map, req->map_len);
    if (req->arena)
        munmap(req->arena, req->arena_len);
    memset(req, 0, sizeof *req);
}
