/*
 * cgroup v2 device rules: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, written
 * instruction by instruction from the caller's rules (no libbpf, no compiler), loaded with
 * bpf(2) and attached to the container's cgroup. See pmd_cgroup_devices in pmd.h.
 *
 * The program sees struct bpf_cgroup_dev_ctx: access_type (BPF_DEVCG_ACC_* << 16 |
 * BPF_DEVCG_DEV_*), major, minor; it returns 1 to allow the access and 0 to refuse it (EPERM).
 * Its shape, with r2 the device type, r3 the requested access, r4 the major, r5 the minor:
 *
 *     r2 = ctx->access_type; r3 = r2; r2 &= 0xffff; r3 >>= 16; r4 = ctx->major; r5 = ctx->minor
 *     for each rule, a block that falls through to the next block when the rule does not match:
 *         if r2 != TYPE goto next                     (type 'b' or 'c' only)
 *         if r3 & ~ACCESS goto next                   (allow: a bit the rule lacks; not for rwm)
 *         r6 = r3; r6 &= ACCESS; if r6 == 0 goto next (deny: no bit in common; not for rwm)
 *         if r4 != MAJOR goto next                    (not for a wildcard)
 *         if r5 != MINOR goto next                    (not for a wildcard)
 *         r0 = ALLOW; exit
 *     r0 = 0; exit                                    (no rule matched: deny)
 * A rule that matches everything ends the program: the verifier refuses dead code.
 *
 * The program calls no helper, so its license does not matter to the verifier (only helpers
 * marked gpl_only check it); it is declared under the project's own license.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <stddef.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/bpf.h>

/* At most 7 instructions per rule, 6 before the first and 2 after the last. */
#define INSNS_PER_RULE 7
#define INSNS_MAX (8 + INSNS_PER_RULE * PMD_DEVICE_RULES_MAX)
#define LOG_SIZE (64 * 1024)
#define CGROUP2_MAGIC 0x63677270  /* CGROUP2_SUPER_MAGIC, linux/magic.h */

/* Programs already attached to the cgroup that a call replaces (one, normally). */
#define OLD_MAX 64

struct prog {
    struct bpf_insn *insns;
    int len;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn *i = &p->insns[p->len++];

    memset(i, 0, sizeof *i);
    i->code = code;
    i->dst_reg = dst;
    i->src_reg = src;
    i->off = off;
    i->imm = imm;
}

/* A conditional jump to the end of the current rule's block; patched by end_block. */
static void jump_next(struct prog *p, uint8_t op, uint8_t dst, int32_t imm, int *pending,
                      int *n_pending)
{
    pending[(*n_pending)++] = p->len;
    emit(p, BPF_JMP | op | BPF_K, dst, 0, 0, imm);
}

static void end_block(struct prog *p, const int *pending, int n_pending)
{
    for (int i = 0; i < n_pending; i++)
        p->insns[pending[i]].off = (int16_t)(p->len - pending[i] - 1);
}

static int check_rule(const struct pmd_device_rule *r, int i, struct pmd_error *err)
{
    if (r->type != 'a' && r->type != 'b' && r->type != 'c')
        return pmd_fail(err, EINVAL, "device rule", "rule %d: type %d is not 'a', 'b' or 'c'",
                        i, r->type);
    if (r->major < -1 || r->minor < -1)
        return pmd_fail(err, EINVAL, "device rule", "rule %d: major %d, minor %d: -1 (any) or "
                        "a device number", i, r->major, r->minor);
    if (r->access == 0 || (r->access & ~PMD_DEV_RWM) != 0)
        return pmd_fail(err, EINVAL, "device rule", "rule %d: access %#x is not a non-empty "
                        "set of PMD_DEV_MKNOD, PMD_DEV_READ, PMD_DEV_WRITE", i, r->access);
    if (r->allow != 0 && r->allow != 1)
        return pmd_fail(err, EINVAL, "device rule", "rule %d: allow is %d, not 0 or 1", i,
                        r->allow);
    return 0;
}

static void build(struct prog *p, const struct pmd_device_rule *rules, int n)
{
    const int16_t at_type = offsetof(struct bpf_cgroup_dev_ctx, access_type);
    const int16_t at_major = offsetof(struct bpf_cgroup_dev_ctx, major);
    const int16_t at_minor = offsetof(struct bpf_cgroup_dev_ctx, minor);

    /* The context allows 32-bit loads only (narrower ones for access_type), read-only. */
    emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, at_type, 0);
    emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
    emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
    emit(p, BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, at_major, 0);
    emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, at_minor, 0);

    for (int i = 0; i < n; i++) {
        const struct pmd_device_rule *r = &rules[i];
        int pending[4], n_pending = 0;

        if (r->type != 'a')
            jump_next(p, BPF_JNE, BPF_REG_2,
                      r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
                      pending, &n_pending);
        if (r->access != PMD_DEV_RWM) {
            if (r->allow) {
                /* allowed only if every requested bit is in the rule's access */
                jump_next(p, BPF_JSET, BPF_REG_3, ~r->access & PMD_DEV_RWM, pending, &n_pending);
            } else {
                /* refused if any requested bit is in the rule's access */
                emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_3, 0, 0);
                emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_6, 0, 0, r->access);
                jump_next(p, BPF_JEQ, BPF_REG_6, 0, pending, &n_pending);
            }
        }
        /* Device numbers are below 2^31 (check_rule), so the sign-extended immediate
         * compares equal to the zero-extended 32-bit field. */
        if (r->major != -1)
            jump_next(p, BPF_JNE, BPF_REG_4, r->major, pending, &n_pending);
        if (r->minor != -1)
            jump_next(p, BPF_JNE, BPF_REG_5, r->minor, pending, &n_pending);
        emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow);
        emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        /* A rule without conditions ('a *:* rwm') matches every access: what follows it could
         * never run, and the verifier refuses unreachable instructions. */
        if (n_pending == 0)
            return;
        end_block(p, pending, n_pending);
    }
    emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
    emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* The verifier's conclusion: the last line of its log that is not a statistics line. */
static const char *verifier_reason(char *log)
{
    char *line = NULL, *save = NULL;
    const char *reason = "";

    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "processed ", 10) != 0 && line[0] != '\0')
            reason = line;
    }
    return reason;
}

static int load(const struct prog *p, const char *cgroup_dir, struct pmd_error *err)
{
    static const char license[] = "Apache-2.0";
    union bpf_attr attr;
    const char *reason;
    char *log;
    int fd, e;

    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)p->insns;
    attr.insn_cnt = (uint32_t)p->len;
    attr.license = (uint64_t)(uintptr_t)license;
    snprintf(attr.prog_name, sizeof attr.prog_name, "pmd_devices");
    fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0)
        return fd;
    e = errno;
    if (e != EINVAL && e != EACCES)  /* EPERM: no CAP_BPF/CAP_SYS_ADMIN; ENOSYS; ENOMEM */
        return pmd_fail(err, e, "bpf prog load", "%s", cgroup_dir);

    /* Refused by the verifier (EACCES), or a kernel without this program type (EINVAL): load
     * again with a log to say why. */
    log = calloc(1, LOG_SIZE);
    if (log == NULL)
        return pmd_fail(err, e, "bpf prog load", "%s", cgroup_dir);
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = LOG_SIZE;
    attr.log_level = 1;
    fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) {  /* accepted this time after all */
        free(log);
        return fd;
    }
    log[LOG_SIZE - 1] = '\0';
    reason = verifier_reason(log);
    if (reason[0] != '\0')
        pmd_fail(err, e, "bpf prog load", "%s: verifier: %s", cgroup_dir, reason);
    else  /* no log: the kernel refused before verifying (no such program type) */
        pmd_fail(err, e, "bpf prog load", "%s", cgroup_dir);
    free(log);
    return -1;
}

/* Detach the programs in old[] from the cgroup (those attached before this call's). */
static int detach_old(int cgfd, const uint32_t *old, uint32_t n, const char *cgroup_dir,
                      struct pmd_error *err)
{
    union bpf_attr attr;

    for (uint32_t i = 0; i < n; i++) {
        int fd pmd_cleanup_fd = -1;

        memset(&attr, 0, sizeof attr);
        attr.prog_id = old[i];
        fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
        if (fd < 0) {
            if (errno == ENOENT)  /* detached and freed meanwhile */
                continue;
            return pmd_fail(err, errno, "bpf prog get fd", "%s: program id %u", cgroup_dir,
                            old[i]);
        }
        memset(&attr, 0, sizeof attr);
        attr.target_fd = (uint32_t)cgfd;
        attr.attach_bpf_fd = (uint32_t)fd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, &attr) < 0 && errno != ENOENT)
            return pmd_fail(err, errno, "bpf prog detach", "%s: program id %u", cgroup_dir,
                            old[i]);
    }
    return 0;
}

int pmd_cgroup_devices(const char *cgroup_dir, const struct pmd_device_rule *rules, int n_rules,
                       struct pmd_error *err)
{
    int cgfd pmd_cleanup_fd = -1;
    int progfd pmd_cleanup_fd = -1;
    uint32_t old[OLD_MAX];
    uint32_t n_old;
    union bpf_attr attr;
    struct statfs fs;
    struct prog p;
    int rc;

    if (cgroup_dir == NULL || (n_rules > 0 && rules == NULL) || n_rules < 0)
        return pmd_fail(err, EINVAL, "device rules", "no cgroup directory or no rules");
    if (n_rules > PMD_DEVICE_RULES_MAX)
        return pmd_fail(err, E2BIG, "device rules", "%d rules, at most %d", n_rules,
                        PMD_DEVICE_RULES_MAX);
    for (int i = 0; i < n_rules; i++)
        if (check_rule(&rules[i], i, err) < 0)
            return -1;

    cgfd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0)
        return pmd_fail(err, errno, "open cgroup", "%s", cgroup_dir);
    /* bpf(2) would say EBADF of any other directory, a v1 cgroup's included. */
    if (fstatfs(cgfd, &fs) < 0)
        return pmd_fail(err, errno, "open cgroup", "%s", cgroup_dir);
    if (fs.f_type != CGROUP2_MAGIC)
        return pmd_fail(err, ENOTDIR, "open cgroup", "%s: not a cgroup2 directory", cgroup_dir);

    p.insns = calloc(INSNS_MAX, sizeof *p.insns);
    if (p.insns == NULL)
        return pmd_fail(err, ENOMEM, "device rules", "%s", cgroup_dir);
    p.len = 0;
    build(&p, rules, n_rules);
    progfd = load(&p, cgroup_dir, err);
    free(p.insns);
    if (progfd < 0)
        return -1;

    /* The programs attached to this cgroup itself (not its ancestors'), to replace. */
    memset(&attr, 0, sizeof attr);
    attr.query.target_fd = (uint32_t)cgfd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = (uint64_t)(uintptr_t)old;
    attr.query.prog_cnt = OLD_MAX;
    if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
        return pmd_fail(err, errno, "bpf prog query", "%s", cgroup_dir);
    n_old = attr.query.prog_cnt;

    /* The new program first, so that the cgroup is never without one. */
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgfd;
    attr.attach_bpf_fd = (uint32_t)progfd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
        return pmd_fail(err, errno, "bpf prog attach", "%s", cgroup_dir);

    rc = detach_old(cgfd, old, n_old, cgroup_dir, err);
    /* The attachment holds the program; our fd goes (pmd_cleanup_fd). */
    return rc;
}
