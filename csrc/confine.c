/*
 * confine.c: the seccomp compiler (rules to BPF, run in the parent) and, in the cloned child,
 * rlimits, no_new_privs, seccomp, the uid/gid switch and the capability sets.
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

/* ---- the seccomp compiler (pmd_seccomp_compile, see pmd.h) ---------------------------- */

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (offsetof(struct seccomp_data, args[0]) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args[0]) + 8 * (i) + 4)
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args[0]) + 8 * (i) + 4)
#define ARG_HI(i) (offsetof(struct seccomp_data, args[0]) + 8 * (i))
#endif

#define X32_SYSCALL_BIT 0x40000000u
#define MAX_LABELS (3 * PMD_SECCOMP_PROG_MAX)

/*
 * Classic BPF jumps only forward, and a conditional one at most 255 instructions. The program is
 * laid out so that every conditional jump is short (to the next few instructions); a far target
 * (the right half of a search, a syscall's rules) is reached by an unconditional BPF_JA, whose
 * offset is 32 bits. Targets are labels, resolved once the program is complete.
 * A jump field holds a label id (>= 0) or a literal offset encoded as -1 - offset.
 */
#define LIT(n) (-1 - (n))

struct cc {
    struct pmd_bpf_insn *insns;
    int len;
    int bad;
    int n_labels;
    int label_at[MAX_LABELS];      /* instruction index, or -1 while not placed */
    int jt[PMD_SECCOMP_PROG_MAX];  /* label or LIT; for BPF_JA: the target in jt */
    int jf[PMD_SECCOMP_PROG_MAX];
};

struct cc_set {                    /* the rules of one architecture (x32 apart) */
    const struct pmd_seccomp_rule **rules; /* sorted by nr, stable: the profile's order kept */
    int n;
    unsigned int *nrs;             /* the distinct numbers */
    int *first;                    /* first rule of nrs[i] in rules */
    int *body;                     /* label of nrs[i]'s rules when they have conditions, or -1 */
    int n_nrs;
};

static int label(struct cc *c)
{
    if (c->n_labels >= MAX_LABELS) {
        c->bad = 1;
        return 0;
    }
    c->label_at[c->n_labels] = -1;
    return c->n_labels++;
}

static void place(struct cc *c, int l)
{
    c->label_at[l] = c->len;
}

static void op(struct cc *c, uint16_t code, uint32_t k, int jt, int jf)
{
    if (c->len >= PMD_SECCOMP_PROG_MAX) {
        c->bad = 1;
        return;
    }
    c->insns[c->len] = (struct pmd_bpf_insn){code, 0, 0, k};
    c->jt[c->len] = jt;
    c->jf[c->len] = jf;
    c->len++;
}

#define LD(off) op(c, BPF_LD | BPF_W | BPF_ABS, (off), LIT(0), LIT(0))
#define AND(k) op(c, BPF_ALU | BPF_AND | BPF_K, (k), LIT(0), LIT(0))
#define RET(k) op(c, BPF_RET | BPF_K, (k), LIT(0), LIT(0))
#define JA(l) op(c, BPF_JMP | BPF_JA, 0, (l), LIT(0))
#define JEQ(k, t, f) op(c, BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JGT(k, t, f) op(c, BPF_JMP | BPF_JGT | BPF_K, (k), (t), (f))
#define JGE(k, t, f) op(c, BPF_JMP | BPF_JGE | BPF_K, (k), (t), (f))

static int resolve(struct cc *c, struct pmd_error *err)
{
    if (c->bad)
        return pmd_fail(err, E2BIG, "seccomp", "program longer than %d instructions",
                        PMD_SECCOMP_PROG_MAX);
    for (int i = 0; i < c->len; i++) {
        struct pmd_bpf_insn *in = &c->insns[i];
        int t[2] = {c->jt[i], c->jf[i]};
        long off[2];

        for (int j = 0; j < 2; j++)
            off[j] = t[j] < 0 ? -1 - t[j] : (long)c->label_at[t[j]] - (i + 1);
        if (BPF_CLASS(in->code) != BPF_JMP)
            continue;
        if (BPF_OP(in->code) == BPF_JA) {
            in->k = (uint32_t)off[0];
            continue;
        }
        if (off[0] < 0 || off[0] > 255 || off[1] < 0 || off[1] > 255)
            return pmd_fail(err, EFAULT, "seccomp", "internal: jump at %d out of range", i);
        in->jt = (uint8_t)off[0];
        in->jf = (uint8_t)off[1];
    }
    return 0;
}

/* One argument condition: falls through when it holds, jumps to fail otherwise. */
static void condition(struct cc *c, const struct pmd_seccomp_arg *a, int fail)
{
    uint32_t hi = (uint32_t)(a->value >> 32), lo = (uint32_t)a->value;
    int pass = label(c);

    switch (a->op) {
    case PMD_SCMP_CMP_EQ:
        LD(ARG_HI(a->index));
        JEQ(hi, LIT(0), fail);
        LD(ARG_LO(a->index));
        JEQ(lo, pass, fail);
        break;
    case PMD_SCMP_CMP_NE:
        LD(ARG_HI(a->index));
        JEQ(hi, LIT(0), pass);
        LD(ARG_LO(a->index));
        JEQ(lo, fail, pass);
        break;
    case PMD_SCMP_CMP_GT: /* hi > HI, or hi == HI and lo > LO */
    case PMD_SCMP_CMP_GE:
        LD(ARG_HI(a->index));
        JGT(hi, pass, LIT(0));
        JEQ(hi, LIT(0), fail);
        LD(ARG_LO(a->index));
        if (a->op == PMD_SCMP_CMP_GT)
            JGT(lo, pass, fail);
        else
            JGE(lo, pass, fail);
        break;
    case PMD_SCMP_CMP_LT: /* hi < HI, or hi == HI and lo < LO */
    case PMD_SCMP_CMP_LE:
        LD(ARG_HI(a->index));
        JGE(hi, LIT(0), pass);
        JEQ(hi, LIT(0), fail);
        LD(ARG_LO(a->index));
        if (a->op == PMD_SCMP_CMP_LT)
            JGE(lo, fail, pass);
        else
            JGT(lo, fail, pass);
        break;
    case PMD_SCMP_CMP_MASKED_EQ:
        LD(ARG_HI(a->index));
        AND((uint32_t)(a->value >> 32));
        JEQ((uint32_t)(a->value_two >> 32), LIT(0), fail);
        LD(ARG_LO(a->index));
        AND((uint32_t)a->value);
        JEQ((uint32_t)a->value_two, pass, fail);
        break;
    }
    place(c, pass);
}

/* The rules of one syscall, s->rules[from..to): conditional ones in order, then the first
 * unconditional one, else the default. Every path returns. */
static void rules_body(struct cc *c, const struct cc_set *s, int from, int to, uint32_t dflt)
{
    const struct pmd_seccomp_rule *plain = NULL;

    for (int i = from; i < to; i++) {
        const struct pmd_seccomp_rule *r = s->rules[i];
        int fail;

        if (r->n_args == 0) {
            if (plain == NULL)
                plain = r;
            continue;
        }
        fail = label(c);
        for (int j = 0; j < r->n_args; j++)
            condition(c, &r->args[j], fail);
        RET(r->action);
        place(c, fail);
    }
    RET(plain ? plain->action : dflt);
}

static int rules_end(const struct cc_set *s, int i)
{
    return i + 1 < s->n_nrs ? s->first[i + 1] : s->n;
}

/* A syscall whose rules have no conditions: its action, found without leaving the leaf. */
static int plain_action(const struct cc_set *s, int i, uint32_t *action)
{
    for (int r = s->first[i]; r < rules_end(s, i); r++)
        if (s->rules[r]->n_args > 0)
            return 0;
    *action = s->rules[s->first[i]]->action;
    return 1;
}

/*
 * The number line of one architecture as segments: a run of consecutive numbers that end the
 * same way (one return, allowed or refused, or the rules of one syscall with conditions) is
 * one segment, gaps between named syscalls included (they get the default action, the last
 * one ENOSYS with enosys_above). Syscall numbers cluster, so a profile of some 350 syscalls
 * makes a few dozen segments, and a binary search over their starts costs a few
 * comparisons per call and a program the kernel loads fast (its cost grows with the length).
 */
struct seg {
    uint32_t lo;      /* first number of the segment; it ends where the next one starts */
    int body;         /* >= 0: label of the syscall's rules; -1: return action */
    uint32_t action;
};

static int add_seg(struct seg *segs, int n, uint32_t lo, int body, uint32_t action)
{
    if (n > 0 && body < 0 && segs[n - 1].body < 0 && segs[n - 1].action == action)
        return n; /* the previous segment ends the same way: it grows */
    segs[n] = (struct seg){lo, body, action};
    return n + 1;
}

/* Instructions search() emits for segs[lo..hi). */
static int search_len(int lo, int hi)
{
    if (hi - lo == 1)
        return 1;
    int mid = lo + (hi - lo) / 2, left = search_len(lo, mid);

    return (left <= 255 ? 1 : 2) + left + search_len(mid, hi);
}

/* Binary search over segs[lo..hi) with the number in A: the left half inline, the right
 * half after it, reached by the comparison itself when the left half is short enough. */
static void search(struct cc *c, const struct seg *segs, int lo, int hi)
{
    if (hi - lo == 1) {
        if (segs[lo].body >= 0)
            JA(segs[lo].body);
        else
            RET(segs[lo].action);
        return;
    }
    int mid = lo + (hi - lo) / 2, right = label(c);

    if (search_len(lo, mid) <= 255) {
        JGE(segs[mid].lo, right, LIT(0));
    } else {
        JGE(segs[mid].lo, LIT(0), LIT(1));
        JA(right);
    }
    search(c, segs, lo, mid);
    place(c, right);
    search(c, segs, mid, hi);
}

/* One architecture's section, the syscall number in A. */
static void section(struct cc *c, const struct cc_set *s, const struct pmd_seccomp_filter *f,
                    struct seg *segs)
{
    uint32_t after = f->enosys_above ? SECCOMP_RET_ERRNO | ENOSYS : f->default_action, next = 0;
    int n = 0, *body = s->body;

    for (int i = 0; i < s->n_nrs; i++) {
        uint32_t a = 0;

        if (s->nrs[i] > next)
            n = add_seg(segs, n, next, -1, f->default_action);
        body[i] = plain_action(s, i, &a) ? -1 : label(c);
        n = add_seg(segs, n, s->nrs[i], body[i], body[i] >= 0 ? 0 : a);
        next = s->nrs[i] + 1;
    }
    if (s->n_nrs == 0 || next != 0) /* 0: the last number was UINT32_MAX */
        n = add_seg(segs, n, next, -1, after);
    search(c, segs, 0, n);
    for (int i = 0; i < s->n_nrs; i++) {
        if (body[i] < 0)
            continue;
        place(c, body[i]);
        rules_body(c, s, s->first[i], rules_end(s, i), f->default_action);
    }
}

static int by_nr(const void *a, const void *b)
{
    const struct pmd_seccomp_rule *x = *(const struct pmd_seccomp_rule *const *)a;
    const struct pmd_seccomp_rule *y = *(const struct pmd_seccomp_rule *const *)b;

    if (x->nr != y->nr)
        return x->nr < y->nr ? -1 : 1;
    return x < y ? -1 : x > y; /* stable: rules are in one array, in the profile's order */
}

/* The rules of arch (pointers into f->rules), sorted, and their distinct numbers. */
static int collect(const struct pmd_seccomp_filter *f, unsigned int arch, struct cc_set *s)
{
    s->n = s->n_nrs = 0;
    for (int i = 0; i < f->n_rules; i++)
        if (f->rules[i].arch == arch)
            s->rules[s->n++] = &f->rules[i];
    qsort(s->rules, (size_t)s->n, sizeof s->rules[0], by_nr);
    for (int i = 0; i < s->n; i++)
        if (i == 0 || s->rules[i]->nr != s->rules[i - 1]->nr) {
            if (s->n_nrs >= PMD_SECCOMP_PROG_MAX)
                return -1;
            s->nrs[s->n_nrs] = s->rules[i]->nr;
            s->first[s->n_nrs++] = i;
        }
    return 0;
}

static int check_filter(const struct pmd_seccomp_filter *f, struct pmd_error *err)
{
    if (f->n_arches < 1 || f->n_arches > 8 || f->arches == NULL)
        return pmd_fail(err, EINVAL, "seccomp", "%d architectures (1 to 8)", f->n_arches);
    if (f->n_rules < 0 || (f->n_rules > 0 && f->rules == NULL))
        return pmd_fail(err, EINVAL, "seccomp", "%s", "bad rule count");
    for (int i = 0; i < f->n_rules; i++) {
        const struct pmd_seccomp_rule *r = &f->rules[i];
        int known = 0;

        for (int j = 0; j < f->n_arches; j++)
            known |= f->arches[j] == r->arch;
        if (!known)
            return pmd_fail(err, EINVAL, "seccomp rule", "rule %d: arch %#x not in the filter's",
                            i, r->arch);
        if (r->arch == PMD_AUDIT_ARCH_X32 && !(r->nr & X32_SYSCALL_BIT))
            return pmd_fail(err, EINVAL, "seccomp rule", "rule %d: x32 number %u without bit 30",
                            i, r->nr);
        if (r->n_args < 0 || r->n_args > PMD_SECCOMP_ARGS_MAX)
            return pmd_fail(err, EINVAL, "seccomp rule", "rule %d: %d argument conditions", i,
                            r->n_args);
        for (int j = 0; j < r->n_args; j++) {
            if (r->args[j].index > 5)
                return pmd_fail(err, EINVAL, "seccomp rule", "rule %d: argument index %u", i,
                                r->args[j].index);
            if (r->args[j].op < PMD_SCMP_CMP_NE || r->args[j].op > PMD_SCMP_CMP_MASKED_EQ)
                return pmd_fail(err, EINVAL, "seccomp rule", "rule %d: comparison %u", i,
                                r->args[j].op);
        }
    }
    return 0;
}

int pmd_seccomp_compile(const struct pmd_seccomp_filter *f, struct pmd_seccomp_prog *out,
                        struct pmd_error *err)
{
    unsigned int real[8];
    int n_real = 0, has_x32 = 0, has_x86_64 = 0, rc = -1;
    struct cc_set set = {0};
    struct seg *segs;
    struct cc *c;

    out->len = 0;
    if (check_filter(f, err) < 0)
        return -1;
    c = calloc(1, sizeof *c);
    set.rules = calloc((size_t)f->n_rules + 1, sizeof set.rules[0]);
    set.nrs = calloc((size_t)f->n_rules + 1, sizeof set.nrs[0]);
    set.first = calloc((size_t)f->n_rules + 1, sizeof set.first[0]);
    set.body = calloc((size_t)f->n_rules + 1, sizeof set.body[0]);
    segs = calloc(2 * (size_t)f->n_rules + 2, sizeof *segs); /* a syscall and a gap each, + 1 */
    if (!c || !set.rules || !set.nrs || !set.first || !set.body || !segs) {
        pmd_fail(err, ENOMEM, "seccomp", "%s", "compiler state");
        goto out;
    }
    c->insns = out->insns;
    /* The audit arches the kernel reports: x32 calls come as x86_64's. */
    for (int i = 0; i < f->n_arches; i++) {
        unsigned int a = f->arches[i] == PMD_AUDIT_ARCH_X32 ? (unsigned int)PMD_AUDIT_ARCH_X86_64
                                                             : f->arches[i];
        int seen = 0;

        has_x32 |= f->arches[i] == PMD_AUDIT_ARCH_X32;
        has_x86_64 |= f->arches[i] == PMD_AUDIT_ARCH_X86_64;
        for (int j = 0; j < n_real; j++)
            seen |= real[j] == a;
        if (!seen)
            real[n_real++] = a;
    }
    int arch_label[8];

    LD(offsetof(struct seccomp_data, arch));
    for (int i = 0; i < n_real; i++) {
        arch_label[i] = label(c);
        JEQ(real[i], LIT(0), LIT(1));
        JA(arch_label[i]);
    }
    RET(f->bad_arch_action);
    for (int i = 0; i < n_real; i++) {
        place(c, arch_label[i]);
        LD(offsetof(struct seccomp_data, nr));
        if (real[i] == PMD_AUDIT_ARCH_X86_64) {
            int x32 = label(c);

            JGE(X32_SYSCALL_BIT, LIT(0), LIT(1));
            JA(x32);
            if (has_x86_64) {
                if (collect(f, PMD_AUDIT_ARCH_X86_64, &set) < 0)
                    c->bad = 1;
                section(c, &set, f, segs);
            } else {
                RET(f->bad_arch_action);
            }
            place(c, x32);
            if (has_x32) {
                if (collect(f, PMD_AUDIT_ARCH_X32, &set) < 0)
                    c->bad = 1;
                section(c, &set, f, segs);
            } else {
                RET(f->bad_arch_action);
            }
            continue;
        }
        if (collect(f, real[i], &set) < 0)
            c->bad = 1;
        section(c, &set, f, segs);
    }
    if (resolve(c, err) == 0) {
        out->len = c->len;
        rc = 0;
    }
out:
    free(set.rules);
    free(set.nrs);
    free(set.first);
    free(set.body);
    free(segs);
    free(c);
    return rc;
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

int pmd_child_confine(const struct pmd_spawn_spec *s, struct pmd_error *err)
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
     * forcing no_new_privs. What we do afterwards (setgroups, setresuid, capset, prctl, chdir,
     * execve) must be allowed by the profile, as it must be under runc (Docker's default allows
     * all of it).
     */
    if (s->seccomp_prog != NULL) {
        struct sock_fprog prog = {(unsigned short)s->seccomp_len,
                                  (struct sock_filter *)s->seccomp_prog};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->seccomp_flags, &prog) < 0)
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
