"""Seccomp profiles (pyminidocker/container/seccomp.py) and their compiler (pmd_seccomp_compile):
the programs are run here by a small classic-BPF interpreter on made-up seccomp_data, so that
every comparison, architecture and boundary is checked without the kernel; test_security.py
checks the same programs in the kernel."""
from __future__ import annotations

import errno
import json
import struct

import pytest

from pyminidocker import shim
from pyminidocker.container import seccomp as sc
from pyminidocker.container import spec as d
from pyminidocker.container.specconv import seccomp_cached

X86_64, I386, X32 = 0xC000003E, 0x40000003, 0x4000003E
ALLOW, KILL = sc.RET_ALLOW, sc.RET_KILL_PROCESS


def errno_ret(e: int) -> int:
    return sc.RET_ERRNO | e


def run_bpf(prog: bytes, nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> int:
    """What the kernel's seccomp would return for this call (classic BPF, the subset a
    seccomp filter may use)."""
    args = (*args, *[0] * (6 - len(args)))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # BPF_ALU | BPF_AND | BPF_K
            a &= k
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code == 0x05:  # BPF_JMP | BPF_JA
            pc += k
        else:
            cond = {0x15: a == k, 0x25: a > k, 0x35: a >= k}[code]
            pc += jt if cond else jf


EPERM_RET = sc.RET_ERRNO | errno.EPERM


def compile_rules(rules, default=EPERM_RET, arches=(X86_64,), enosys=False):
    return shim.seccomp_compile(rules, default_action=default, bad_arch_action=KILL,
                                arches=list(arches), enosys_above=enosys)


BIG = 0x1_0000_0005  # a value whose high word matters


@pytest.mark.parametrize("op,value,holds,fails", [
    (4, BIG, [BIG], [5, BIG + 1, 1 << 32]),                                   # EQ
    (1, BIG, [5, BIG + 1, 0], [BIG]),                                         # NE
    (6, BIG, [BIG + 1, 2 << 32], [BIG, 5, 0xFFFFFFFF]),                       # GT
    (5, BIG, [BIG, 2 << 32], [BIG - 1, 5]),                                   # GE
    (2, BIG, [BIG - 1, 0xFFFFFFFF, 5], [BIG, 2 << 32, (1 << 32) | 6]),        # LT
    (3, BIG, [BIG, 5, (1 << 32) | 4], [BIG + 1, 2 << 32]),                    # LE
])
def test_every_comparison_on_64_bit_arguments(op, value, holds, fails):
    prog = compile_rules([(X86_64, 10, ALLOW, [(2, op, value, 0)])])
    for v in holds:
        assert run_bpf(prog, 10, args=(0, 0, v)) == ALLOW, hex(v)
    for v in fails:
        assert run_bpf(prog, 10, args=(0, 0, v)) == errno_ret(errno.EPERM), hex(v)


def test_masked_eq_and_several_conditions_and_rule_order():
    clone_ns = 0x7E020000
    prog = compile_rules([
        (X86_64, 56, ALLOW, [(0, 7, clone_ns, 0)]),                  # no namespace flag
        (X86_64, 41, errno_ret(errno.EACCES), [(0, 4, 40, 0), (1, 4, 1, 0)]),
        (X86_64, 41, ALLOW, []),                                      # else: allowed
    ])
    assert run_bpf(prog, 56, args=(0x11,)) == ALLOW
    assert run_bpf(prog, 56, args=(0x20000 | 0x11,)) == errno_ret(errno.EPERM)
    assert run_bpf(prog, 56, args=((1 << 40) | 0x11,)) == ALLOW  # high word: not in the mask
    assert run_bpf(prog, 41, args=(40, 1)) == errno_ret(errno.EACCES)
    assert run_bpf(prog, 41, args=(40, 2)) == ALLOW
    assert run_bpf(prog, 41, args=(2, 1)) == ALLOW


def test_architectures_x32_and_enosys_above_the_newest():
    prog = compile_rules([(X86_64, 0, ALLOW, []), (X86_64, 300, ALLOW, []),
                          (I386, 3, ALLOW, []), (X32, 0x40000000, ALLOW, [])],
                         arches=(X86_64, I386, X32), enosys=True)
    assert run_bpf(prog, 0) == ALLOW and run_bpf(prog, 300) == ALLOW
    assert run_bpf(prog, 1) == errno_ret(errno.EPERM)        # known, not allowed
    assert run_bpf(prog, 301) == errno_ret(errno.ENOSYS)     # newer than the profile
    assert run_bpf(prog, 3, I386) == ALLOW and run_bpf(prog, 0, I386) == errno_ret(errno.EPERM)
    assert run_bpf(prog, 0x40000000) == ALLOW                 # x32's read
    assert run_bpf(prog, 0x40000001) == errno_ret(errno.ENOSYS)
    assert run_bpf(prog, 0, 0xC00000B7) == KILL               # another arch
    no_x32 = compile_rules([(X86_64, 0, ALLOW, [])])
    assert run_bpf(no_x32, 0x40000000) == KILL                # x32 numbers without X32


def test_a_long_profile_stays_a_short_search():
    rules = [(X86_64, nr, ALLOW, []) for nr in range(0, 400, 2)]  # 200 segments, worst case
    prog = compile_rules(rules, enosys=True)
    for nr in range(0, 402):
        want = ALLOW if nr % 2 == 0 and nr < 400 else errno_ret(
            errno.ENOSYS if nr >= 399 else errno.EPERM)
        assert run_bpf(prog, nr) == want, nr


def test_compile_errors():
    with pytest.raises(OSError) as e:
        compile_rules([(I386, 1, ALLOW, [])])                     # arch not in the filter
    assert e.value.errno == errno.EINVAL and "not in the filter" in str(e.value.filename)
    with pytest.raises(OSError) as e:
        compile_rules([(X86_64, 1, ALLOW, [(6, 4, 0, 0)])])
    assert e.value.errno == errno.EINVAL and "argument index" in str(e.value.filename)
    with pytest.raises(OSError) as e:
        compile_rules([(X86_64, 1, ALLOW, [(0, 9, 0, 0)])])
    assert e.value.errno == errno.EINVAL
    many = [(X86_64, nr, ALLOW, [(i, 6, nr, 0) for i in range(6)]) for nr in range(200)]
    with pytest.raises(OSError) as e:
        compile_rules(many)
    assert e.value.errno == errno.E2BIG


def test_the_default_profile_for_a_container():
    p = sc.Profile.default()
    assert p.arches[:3] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    prog = p.compile(d.DEFAULT_CAP_MASK)
    assert len(prog) // 8 < 1000  # loading costs the kernel time in proportion
    assert run_bpf(prog, 39) == ALLOW                                    # getpid
    assert run_bpf(prog, 165) == errno_ret(errno.EPERM)                  # mount
    assert run_bpf(prog, 272, args=(0x20000,)) == errno_ret(errno.EPERM)  # unshare
    assert run_bpf(prog, 56, args=(0x11,)) == ALLOW                      # clone: a fork
    assert run_bpf(prog, 435) == errno_ret(errno.ENOSYS)                 # clone3
    assert run_bpf(prog, 467) == errno_ret(errno.ENOSYS)                 # open_tree_attr
    assert run_bpf(prog, 41, args=(40,)) == errno_ret(errno.EPERM)       # socket(AF_VSOCK)
    assert run_bpf(prog, 41, args=(2,)) == ALLOW
    admin = p.compile(d.DEFAULT_CAP_MASK | 1 << d.CAPS["SYS_ADMIN"])
    assert run_bpf(admin, 272) == ALLOW and run_bpf(admin, 435) == ALLOW
    assert run_bpf(admin, 165) == errno_ret(errno.EPERM)  # the mount family: never


PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["read", "nosuchcall"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
    ],
}


def test_oci_and_docker_formats_read_alike():
    oci = sc.Profile.from_oci(PROFILE)
    docker = sc.Profile.from_docker_json(json.dumps(PROFILE))
    assert oci.rules_for(0) == docker.rules_for(0) == [
        (X86_64, 0, ALLOW, []), (X86_64, 1, errno_ret(13), []),
        (X86_64, 62, ALLOW, [(1, 1, 9, 0)])]  # unknown names are skipped, as libseccomp does
    prog = oci.compile(0)
    assert run_bpf(prog, 0) == ALLOW and run_bpf(prog, 2) == errno_ret(38)
    assert run_bpf(prog, 62, args=(1, 15)) == ALLOW
    assert run_bpf(prog, 62, args=(1, 9)) == errno_ret(38)


def test_docker_includes_and_excludes():
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        {"names": ["iopl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
    ]}
    p = sc.Profile.from_docker_json(json.dumps(prof))
    names = {r[1] for r in p.rules_for(0)}
    assert names == {39}  # getpid only
    admin_kill = {r[1] for r in p.rules_for(1 << 21 | 1 << 5)}
    assert admin_kill == {165}


@pytest.mark.parametrize("text,message", [
    ("{nope", "Expecting property name"),
    ('{"syscalls": []}', "defaultAction is required"),
    ('{"defaultAction": "SCMP_ACT_BOGUS"}', "unrecognized action"),
    ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "not supported"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}', "unknown field 'bogus'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["NOPE"]}', "unknown flag"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86"]}', "unknown architecture"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}',
     "syscalls[0]: no syscall names"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}', "errnoRet is only for"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}',
     "args[0].index: 6"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}',
     "not an unsigned 64-bit integer"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}',
     "unrecognized comparison"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_NOPE"]}}]}',
     "unknown capability"),
])
def test_bad_profiles_say_what_is_wrong(text, message):
    with pytest.raises(sc.ProfileError) as e:
        sc.Profile.from_docker_json(text)
    assert message in str(e.value)


def test_docker_only_fields_are_refused_in_oci():
    with pytest.raises(sc.ProfileError, match="unknown field 'includes'"):
        sc.Profile.from_oci({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {}}]})


def test_programs_are_cached_per_profile_and_capabilities(tmp_path):
    a = seccomp_cached(str(tmp_path), None, d.DEFAULT_CAP_MASK)
    b = seccomp_cached(str(tmp_path), None, d.DEFAULT_CAP_MASK | 1 << 21)
    c = seccomp_cached(str(tmp_path), json.dumps(PROFILE), 0)
    assert len({a, b, c}) == 3 and len(list(tmp_path.iterdir())) == 3
    assert seccomp_cached(str(tmp_path), None, d.DEFAULT_CAP_MASK) == a
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.iterdir())  # root's alone


def test_a_damaged_cache_entry_is_compiled_again(tmp_path):
    good = seccomp_cached(str(tmp_path), None, d.DEFAULT_CAP_MASK)
    (entry,) = tmp_path.iterdir()
    for damage in (b"", good[:-3]):
        entry.write_bytes(damage)
        assert seccomp_cached(str(tmp_path), None, d.DEFAULT_CAP_MASK) == good
        assert entry.read_bytes() == good


def test_seccomp_default_comes_with_the_public_shim_not_the_wrappers():
    """native (the engine's wrappers) knows no profile; importing pyminidocker.shim gives
    SECCOMP_DEFAULT Docker's default profile, the program the engine compiles itself."""
    import subprocess
    import sys

    code = ("import pyminidocker.native as n\n"
            "try:\n    n.default_seccomp(None)\nexcept ValueError as e:\n    print('refused:', e)\n"
            "import pyminidocker.shim\n"
            "from pyminidocker.container.seccomp import Profile\n"
            "from pyminidocker.container.spec import DEFAULT_CAP_MASK\n"
            "print(n.default_seccomp(None) == Profile.default().compile(DEFAULT_CAP_MASK))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.startswith("refused: seccomp: SECCOMP_DEFAULT is Docker's default profile")
    assert out.endswith("True\n")
