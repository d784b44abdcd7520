"""The seccomp compiler (csrc/confine.c): rules made the BPF program that SpawnSpec.seccomp
takes. The engine keeps the programs it compiles in the store (container.specconv's
seccomp_cached), so a container start imports this only when that cache misses.
"""
from __future__ import annotations

from pyminidocker.native import _raise, ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["SECCOMP_PROG_MAX", "seccomp_compile"]

SECCOMP_PROG_MAX = lib.PMD_SECCOMP_PROG_MAX


def seccomp_compile(rules: Iterable[tuple[int, int, int, Sequence[tuple[int, int, int, int]]]],
                    default_action: int, bad_arch_action: int, arches: Sequence[int],
                    enosys_above: bool) -> bytes:
    """The BPF program for seccomp rules (see pmd_seccomp_compile in pmd.h), as the bytes of a
    struct sock_filter array: each rule is (audit arch, syscall number, action, conditions),
    a condition (argument index, PMD_SCMP_CMP_* op, value, value_two).

    Raises OSError: EINVAL (bad arch, op, index), E2BIG (the program would exceed
    SECCOMP_PROG_MAX instructions)."""
    rules = list(rules)
    f = ffi.new("struct pmd_seccomp_filter *")
    rs = ffi.new("struct pmd_seccomp_rule[]", max(len(rules), 1))
    for i, (arch, nr, action, args) in enumerate(rules):
        r = rs[i]
        r.arch, r.nr, r.action, r.n_args = arch, nr, action, len(args)
        if len(args) > lib.PMD_SECCOMP_ARGS_MAX:
            raise OSError(22, f"seccomp rule: {len(args)} argument conditions")
        for j, (index, op, value, value_two) in enumerate(args):
            r.args[j].index, r.args[j].op = index, op
            r.args[j].value, r.args[j].value_two = value, value_two
    ar = ffi.new("unsigned int[]", list(arches) or [0])
    f.default_action, f.bad_arch_action = default_action, bad_arch_action
    f.arches, f.n_arches = ar, len(arches)
    f.rules, f.n_rules = rs, len(rules)
    f.enosys_above = int(enosys_above)
    out = ffi.new("struct pmd_seccomp_prog *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_seccomp_compile(f, out, err) != 0:
        _raise(err)
    return bytes(ffi.buffer(out.insns, out.len * ffi.sizeof("struct pmd_bpf_insn")))
