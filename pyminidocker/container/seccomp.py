"""Seccomp profiles as data: Docker's JSON profile format and OCI's linux.seccomp, one type.

A Profile is read from either format (Profile.from_docker_json, Profile.from_oci), then turned
into the flat rules of one container (Profile.rules: Docker's includes/excludes resolved
against the container's capabilities, the host's arch and kernel; names resolved to numbers
in each architecture the profile lists), which the C shim compiles to a BPF program
(shim.seccomp_compile, pmd_seccomp_compile in csrc/pmd.h). The default profile is
seccomp_default.json next to this module, in Docker's format; the syscall numbers come from
syscalls.json, generated from the kernel headers at build time (csrc/gen_syscalls.py).

As runc does, a syscall newer than every syscall the profile names (numbered above the
highest, in its architecture) answers ENOSYS rather than the default EPERM, so that libc
falls back to an older call; names this build's tables do not know are skipped, as libseccomp
skips them.

A container start takes its compiled program from the store's cache
(container.specconv.seccomp_cached): compiling means parsing the JSON and the tables, a few
milliseconds that a start should not pay each time; this module is imported only on a miss.
"""
from __future__ import annotations

import os

from pyminidocker.container.spec import SECCOMP_PROFILE as DEFAULT_PROFILE
from pyminidocker.container.spec import SYSCALL_TABLE as SYSCALLS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# seccomp(2)'s return values (linux/seccomp.h); the low 16 bits carry the errno.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS, "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO, "SCMP_ACT_TRACE": RET_TRACE, "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_ALLOW": RET_ALLOW,
}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
# libseccomp's architecture names: (audit arch of pmd.h, table in syscalls.json).
ARCHES = {
    "SCMP_ARCH_X86_64": (0xC000003E, "X86_64"),
    "SCMP_ARCH_X86": (0x40000003, "X86"),
    "SCMP_ARCH_X32": (0x4000003E, "X32"),
    "SCMP_ARCH_AARCH64": (0xC00000B7, "AARCH64"),
    "SCMP_ARCH_ARM": (0x40000028, "ARM"),
}
# The host's native architecture, as libseccomp and Go name it (Docker's includes.arches).
_MACHINE = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64")}


class ProfileError(ValueError):
    """A profile that cannot be used; the message says which field and why."""


def _host() -> tuple[str, str, tuple[int, ...]]:
    """(native SCMP arch, Go arch, kernel version) of this host."""
    u = os.uname()
    native, goarch = _MACHINE.get(u.machine, (f"SCMP_ARCH_{u.machine.upper()}", u.machine))
    return native, goarch, _version(u.release.split("-")[0])


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split("."):
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts)


def _uint(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
        raise ProfileError(f"{what}: {v!r} is not an unsigned 64-bit integer")
    return v


def _strings(v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ProfileError(f"{what}: not a list of strings")
    return v


def _cap_bit(name: str) -> int:
    from pyminidocker.container.spec import CAPS

    bit = CAPS.get(name.upper().removeprefix("CAP_"))
    if bit is None:
        raise ProfileError(f"unknown capability {name!r}")
    return bit


class Rule:
    """One entry of "syscalls": names, action (SECCOMP_RET_* | errno), args as
    (index, op, value, value_two), and Docker's includes/excludes (caps as bit numbers)."""

    __slots__ = ("action", "args", "ex_arches", "ex_caps", "in_arches", "in_caps", "min_kernel",
                 "names")

    def __init__(self, names: list[str], action: int, args: list[tuple[int, int, int, int]]):
        self.names = names
        self.action = action
        self.args = args
        self.in_caps: list[int] = []
        self.in_arches: list[str] = []
        self.min_kernel: tuple[int, ...] = ()
        self.ex_caps: list[int] = []
        self.ex_arches: list[str] = []

    def applies(self, caps: int, goarch: str, kernel: tuple[int, ...]) -> bool:
        """Docker's selection: every included cap present, the host's arch listed, the kernel
        recent enough; no excluded cap present, the host's arch not excluded."""
        if any(not caps >> c & 1 for c in self.in_caps) or any(caps >> c & 1 for c in self.ex_caps):
            return False
        if self.in_arches and goarch not in self.in_arches:
            return False
        if goarch in self.ex_arches:
            return False
        return not self.min_kernel or kernel >= self.min_kernel


def _action(name: Any, errno_ret: Any, default_errno: int, what: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"{what}: SCMP_ACT_NOTIFY is not supported")
    if name not in ACTIONS:
        raise ProfileError(f"{what}: unrecognized action {name!r}")
    base = ACTIONS[name]
    if base in (RET_ERRNO, RET_TRACE):
        data = default_errno if errno_ret is None else _uint(errno_ret, f"{what}: errnoRet")
        if data > 0xFFFF:
            raise ProfileError(f"{what}: errnoRet {data} out of range")
        return base | data
    if errno_ret is not None:
        raise ProfileError(f"{what}: errnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE")
    return base


class Profile:
    """default_action, arches (SCMP_ARCH_* names), flags (SECCOMP_FILTER_FLAG_* mask), rules."""

    def __init__(self, default_action: int, arches: list[str], flags: int, rules: list[Rule]):
        self.default_action = default_action
        self.arches = arches
        self.flags = flags
        self.rules = rules

    @classmethod
    def from_docker_json(cls, text: str | bytes) -> Profile:
        """A profile in Docker's format (docker run --security-opt seccomp=FILE).

        Raises ProfileError (a ValueError) naming what is wrong, JSON syntax included."""
        from pyminidocker import record

        try:
            d = record.loads(text)
        except ValueError as e:
            raise ProfileError(str(e)) from None
        return cls._parse(d, docker=True)

    @classmethod
    def from_oci(cls, d: Any) -> Profile:
        """A profile from an OCI config.json's linux.seccomp object (already parsed).

        Raises ProfileError naming what is wrong."""
        return cls._parse(d, docker=False)

    @classmethod
    def default(cls) -> Profile:
        """The default profile (seccomp_default.json)."""
        with open(DEFAULT_PROFILE, "rb") as f:
            return cls.from_docker_json(f.read())

    @classmethod
    def _parse(cls, d: Any, docker: bool) -> Profile:
        if not isinstance(d, dict):
            raise ProfileError("a profile is a JSON object")
        known = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls",
                 "listenerPath", "listenerMetadata"}
        if docker:
            known |= {"archMap", "comment"}
        for key in d:
            if key not in known:
                raise ProfileError(f"unknown field {key!r}")
        if d.get("listenerPath"):
            raise ProfileError("listenerPath (SCMP_ACT_NOTIFY) is not supported")
        default_errno = EPERM
        if d.get("defaultErrnoRet") is not None:
            default_errno = _uint(d["defaultErrnoRet"], "defaultErrnoRet")
        if "defaultAction" not in d:
            raise ProfileError("defaultAction is required")
        default_action = _action(d["defaultAction"], None, default_errno, "defaultAction")
        native = _host()[0]
        arches = _strings(d.get("architectures"), "architectures")
        if docker and d.get("archMap") and not arches:
            # Docker picks the host's entry: its architecture and sub-architectures.
            if not isinstance(d["archMap"], list):
                raise ProfileError("archMap: not a list")
            for entry in d["archMap"]:
                if not isinstance(entry, dict):
                    raise ProfileError("archMap: an entry is not an object")
                if entry.get("architecture") == native:
                    arches = [native, *_strings(entry.get("subArchitectures"),
                                                "archMap subArchitectures")]
        for a in arches:
            if not a.startswith("SCMP_ARCH_"):
                raise ProfileError(f"unknown architecture {a!r}")
        if native not in arches:
            arches = [native, *arches]  # libseccomp always filters the native arch
        flags = 0
        for f in _strings(d.get("flags"), "flags"):
            if f not in FLAGS:
                raise ProfileError(f"unknown flag {f!r}")
            flags |= FLAGS[f]
        rules = []
        syscalls = d.get("syscalls") or []
        if not isinstance(syscalls, list):
            raise ProfileError("syscalls: not a list")
        for i, s in enumerate(syscalls):
            rules.append(cls._rule(s, i, docker, default_errno))
        return cls(default_action, arches, flags, rules)

    @staticmethod
    def _rule(s: Any, i: int, docker: bool, default_errno: int) -> Rule:
        what = f"syscalls[{i}]"
        if not isinstance(s, dict):
            raise ProfileError(f"{what}: not an object")
        known = {"names", "action", "errnoRet", "args"}
        if docker:
            known |= {"name", "comment", "includes", "excludes"}
        for key in s:
            if key not in known:
                raise ProfileError(f"{what}: unknown field {key!r}")
        names = _strings(s.get("names"), f"{what}.names")
        if docker and s.get("name"):
            if names:
                raise ProfileError(f"{what}: both name and names")
            names = [s["name"]] if isinstance(s["name"], str) else []
        if not names:
            raise ProfileError(f"{what}: no syscall names")
        action = _action(s.get("action"), s.get("errnoRet"), EPERM, what)
        args = []
        for j, a in enumerate(s.get("args") or []):
            w = f"{what}.args[{j}]"
            if not isinstance(a, dict):
                raise ProfileError(f"{w}: not an object")
            index = _uint(a.get("index"), f"{w}.index")
            if index > 5:
                raise ProfileError(f"{w}.index: {index} (a syscall has 6 arguments, 0 to 5)")
            if a.get("op") not in OPS:
                raise ProfileError(f"{w}.op: unrecognized comparison {a.get('op')!r}")
            args.append((index, OPS[a["op"]], _uint(a.get("value", 0), f"{w}.value"),
                         _uint(a.get("valueTwo", 0), f"{w}.valueTwo")))
        if len(args) > 6:
            raise ProfileError(f"{what}: more than 6 argument conditions")
        rule = Rule(names, action, args)
        for key, target in (("includes", "in"), ("excludes", "ex")):
            sel = s.get(key) or {}
            if not isinstance(sel, dict):
                raise ProfileError(f"{what}.{key}: not an object")
            setattr(rule, f"{target}_caps",
                    [_cap_bit(c) for c in _strings(sel.get("caps"), f"{what}.{key}.caps")])
            setattr(rule, f"{target}_arches", _strings(sel.get("arches"), f"{what}.{key}.arches"))
            if sel.get("minKernel"):
                if key == "excludes" or not isinstance(sel["minKernel"], str):
                    raise ProfileError(f"{what}.{key}.minKernel: not supported here")
                rule.min_kernel = _version(sel["minKernel"])
        return rule

    def rules_for(self, caps: int) -> list[tuple[int, int, int, list[tuple[int, int, int, int]]]]:
        """The flat rules (audit arch, nr, action, args) for a container whose bounding set is
        caps (bit n = capability n), on this host. Raises ProfileError if this build has no
        syscall table for the host."""
        from pyminidocker import record

        with open(SYSCALLS, "rb") as f:
            tables = record.loads(f.read())
        native, goarch, kernel = _host()
        selected = [r for r in self.rules if r.applies(caps, goarch, kernel)]
        flat = []
        for arch in self.arches:
            if arch not in ARCHES or ARCHES[arch][1] not in tables:
                if arch == native:
                    raise ProfileError(f"no syscall table for {arch} in this build")
                continue  # a foreign arch: its calls cannot come from this host's programs
            audit, table = ARCHES[arch]
            numbers = tables[table]
            for r in selected:
                for name in r.names:
                    nr = numbers.get(name)
                    if nr is not None:
                        flat.append((audit, nr, r.action, r.args))
        return flat

    def audit_arches(self) -> list[int]:
        """The profile's architectures as pmd.h's PMD_AUDIT_ARCH_* values (unknown ones left
        out: no process of this host makes their calls)."""
        tables_known = [a for a in self.arches if a in ARCHES]
        return [ARCHES[a][0] for a in tables_known]

    def compile(self, caps: int) -> bytes:
        """The BPF program (struct sock_filter[]) for a container with bounding set caps."""
        from pyminidocker.native.seccomp import seccomp_compile

        return seccomp_compile(
            self.rules_for(caps), default_action=self.default_action,
            bad_arch_action=RET_KILL_PROCESS, arches=self.audit_arches(),
            # runc's ENOSYS for syscalls newer than the profile, unless everything is allowed
            # anyway or already answers ENOSYS.
            enosys_above=self.default_action not in (RET_ALLOW, RET_ERRNO | ENOSYS))
