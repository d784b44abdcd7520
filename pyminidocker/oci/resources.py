"""An OCI config's linux.resources: checked (parse), then turned into the files of a cgroup v1
or v2 (cgroup_files), as runc's fs and fs2 write them. The runtime's create and update write
those files (oci.runtime.write_resources)."""
from __future__ import annotations

from pyminidocker.oci.fields import get, no_nul
from pyminidocker.oci.state import ConfigError
from pyminidocker.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class Resources:
    """linux.resources, checked, whichever cgroup version takes them (cgroup_files() names the
    files): the values as the spec gives them under its own keys, 0 meaning unset as runc reads
    them, plus the device rules in the v1 devices cgroup's syntax."""

    memory: dict[str, int] = field(default_factory=dict)  # limit, swap, reservation, ...
    disable_oom_killer: bool = False
    cpu: dict[str, int] = field(default_factory=dict)     # shares, period, quota, realtime*
    cpuset: dict[str, str] = field(default_factory=dict)  # cpus, mems
    pids: int | None = None
    blkio: dict[str, int] = field(default_factory=dict)   # weight, leafWeight
    # (blockIO key such as "throttleReadBpsDevice", "MAJ:MIN", rate or weight)
    blkio_devices: list[tuple[str, str, int]] = field(default_factory=list)
    hugepages: list[tuple[str, int]] = field(default_factory=list)  # (pageSize, limit)
    class_id: int | None = None
    priorities: list[tuple[str, int]] = field(default_factory=list)  # (interface, priority)
    unified: dict[str, str] = field(default_factory=dict)
    devices: tuple[tuple[str, str], ...] | None = None


def parse(res: dict[str, Any]) -> Resources:
    """linux.resources checked, so that a bad value fails before the cgroup is made."""
    out = Resources()
    mem = get(res, "memory", dict, "linux.resources.", {})
    for key in ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness"):
        value = get(mem, key, int, "linux.resources.memory.")
        # 0 is "not set" for every limit (runc writes none of them; dockerd sends zeros)
        if value is not None and (value != 0 or key == "swappiness"):
            out.memory[key] = value
    out.disable_oom_killer = bool(get(mem, "disableOOMKiller", bool, "linux.resources.memory."))
    cpu = get(res, "cpu", dict, "linux.resources.", {})
    for key in ("shares", "period", "quota", "realtimeRuntime", "realtimePeriod"):
        value = get(cpu, key, int, "linux.resources.cpu.")
        if value:
            out.cpu[key] = value
    for key in ("cpus", "mems"):
        text = get(cpu, key, str, "linux.resources.cpu.")
        if text:
            out.cpuset[key] = text
    pids = get(res, "pids", dict, "linux.resources.", {})
    out.pids = get(pids, "limit", int, "linux.resources.pids.") or None
    blkio = get(res, "blockIO", dict, "linux.resources.", {})
    for key in ("weight", "leafWeight"):
        value = get(blkio, key, int, "linux.resources.blockIO.")
        if value:
            out.blkio[key] = value
    for key in _BLKIO_DEVICE_FILES:
        for d in get(blkio, key, list, "linux.resources.blockIO.", []):
            dev = f"{get(d, 'major', int, '')}:{get(d, 'minor', int, '')}"
            value = d.get("rate", d.get("weight"))
            if isinstance(value, int):
                out.blkio_devices.append((key, dev, value))
    for i, h in enumerate(get(res, "hugepageLimits", list, "linux.resources.", [])):
        size = get(h, "pageSize", str, f"linux.resources.hugepageLimits[{i}].")
        # part of a file name in the cgroup: "2MB", "1GB", nothing that names another file
        if not (size and size[:-2].isdigit() and size[-2:] in ("KB", "MB", "GB")):
            raise ConfigError(f"config.json: linux.resources.hugepageLimits[{i}].pageSize "
                              f"{size!r} is not a page size such as 2MB")
        out.hugepages.append(
            (size, get(h, "limit", int, f"linux.resources.hugepageLimits[{i}].", 0)))
    network = get(res, "network", dict, "linux.resources.", {})
    out.class_id = get(network, "classID", int, "linux.resources.network.")
    for i, p in enumerate(get(network, "priorities", list, "linux.resources.network.", [])):
        where = f"linux.resources.network.priorities[{i}]."
        name, prio = get(p, "name", str, where, ""), get(p, "priority", int, where, 0)
        if not name or len(name) > 15 or any(c.isspace() or c == "/" for c in name):
            raise ConfigError(f"config.json: {where}name {name!r} is not an interface name")
        out.priorities.append((name, prio))
    for key, value in get(res, "unified", dict, "linux.resources.", {}).items():
        ctl, dot, name = key.partition(".")
        # a file of the container's own cgroup directory, never one elsewhere
        if not (ctl and dot and name) or "/" in key or "\0" in key or ".." in key:
            raise ConfigError(f"config.json: linux.resources.unified: {key!r} is not a cgroup "
                              "file name such as memory.high")
        if not isinstance(value, str):
            raise ConfigError(f"config.json: linux.resources.unified.{key}: expected a string")
        if "\0" in value:
            no_nul(f"linux.resources.unified.{key}")
        out.unified[key] = value
    rules = []
    for i, d in enumerate(get(res, "devices", list, "linux.resources.", [])):
        where = f"linux.resources.devices[{i}]."
        kind = get(d, "type", str, where, "a") or "a"
        if kind not in ("a", "b", "c"):
            raise ConfigError(f"config.json: {where}type {kind!r} is not a, b or c")
        major = get(d, "major", int, where)
        minor = get(d, "minor", int, where)
        access = get(d, "access", str, where, "rwm") or "rwm"
        if access.strip("rwm"):
            raise ConfigError(f"config.json: {where}access {access!r} is not made of r, w, m")
        allow = get(d, "allow", bool, where, False)
        rule = "a" if kind == "a" and major is None and minor is None else \
            f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} {access}"
        rules.append(("allow" if allow else "deny", rule))
    if rules:
        out.devices = tuple(rules)
    return out


# One file of a cgroup that linux.resources writes: (controller, file name, value, optional).
# An optional file is skipped where the kernel lacks it (v2's memory.swap.max without swap
# accounting, when the value asks for nothing: runc's rule).
CgroupFile = tuple[str, str, str, bool]

# blockIO's device lists: their v1 file, and their io.max key on v2 (None: v2 has no such limit)
_BLKIO_DEVICE_FILES = {
    "weightDevice": ("blkio.weight_device", None),
    "throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
    "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
    "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
    "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops"),
}
# v1's memory files, in the order written (the limit before memory+swap, which may not be below
# it)
_MEMORY_V1 = (("limit", "memory.limit_in_bytes"), ("reservation", "memory.soft_limit_in_bytes"),
              ("swap", "memory.memsw.limit_in_bytes"), ("kernel", "memory.kmem.limit_in_bytes"),
              ("kernelTCP", "memory.kmem.tcp.limit_in_bytes"), ("swappiness", "memory.swappiness"))
# v1's cpu files, in the order written: each period before what the kernel checks against it
_CPU_V1 = (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"),
           ("quota", "cpu.cfs_quota_us"), ("realtimePeriod", "cpu.rt_period_us"),
           ("realtimeRuntime", "cpu.rt_runtime_us"))


def cgroup_files(r: Resources, version: str) -> list[CgroupFile]:
    """The files r writes in a cgroup of version "v1" or "v2", in order. Raises ConfigError
    for what that version cannot take (unified on v1; on v2 a swap limit it cannot turn into
    swap alone)."""
    return _v2_files(r) if version == "v2" else _v1_files(r)


def _v1_files(r: Resources) -> list[CgroupFile]:
    if r.unified:
        raise ConfigError("linux.resources.unified needs cgroup v2; this host runs cgroup v1")
    out: list[CgroupFile] = [("memory", name, str(r.memory[key]), False)
                             for key, name in _MEMORY_V1 if key in r.memory]
    if r.disable_oom_killer:
        out.append(("memory", "memory.oom_control", "1", False))
    out += [("cpu", name, str(r.cpu[key]), False) for key, name in _CPU_V1 if key in r.cpu]
    out += [("cpuset", f"cpuset.{key}", value, False) for key, value in r.cpuset.items()]
    if r.pids:
        out.append(("pids", "pids.max", _max(r.pids), False))
    out += [("blkio", "blkio.leaf_weight" if key == "leafWeight" else "blkio.weight", str(value),
             False) for key, value in r.blkio.items()]
    out += [("blkio", _BLKIO_DEVICE_FILES[key][0], f"{dev} {value}", False)
            for key, dev, value in r.blkio_devices]
    out += [("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit), False)
            for size, limit in r.hugepages]
    if r.class_id is not None:
        out.append(("net_cls", "net_cls.classid", str(r.class_id), False))
    out += [("net_prio", "net_prio.ifpriomap", f"{name} {prio}", False)
            for name, prio in r.priorities]
    return out


def _v2_files(r: Resources) -> list[CgroupFile]:
    """As runc's fs2 (opencontainers/cgroups): the v1 values converted where v2 has an
    equivalent, in its order, the unified keys last so that they override. What v2 does not
    have is ignored as there: kernel memory limits, swappiness, disableOOMKiller, real-time
    periods, net_cls and net_prio, the blkio leaf and per-device weights (the last taken by
    runc only where the BFQ scheduler's io.bfq.weight exists)."""
    from pyminidocker.container.cgroups import CPU_PERIOD, shares_to_weight

    out: list[CgroupFile] = []
    if r.pids:
        out.append(("pids", "pids.max", _max(r.pids), False))
    limit, swap = r.memory.get("limit"), r.memory.get("swap")
    swap_only = _swap_v2(swap, limit)
    if swap_only is not None:
        # unlimited or no swap: nothing to ask of a kernel that does not account swap
        out.append(("memory", "memory.swap.max", _max(swap_only), swap_only in (-1, 0)))
    if limit:
        out.append(("memory", "memory.max", _max(limit), False))
    if r.memory.get("reservation"):
        out.append(("memory", "memory.low", _max(r.memory["reservation"]), False))
    if r.blkio.get("weight"):
        out.append(("io", "io.weight", str(1 + (r.blkio["weight"] - 10) * 9999 // 990), False))
    out += [("io", "io.max", f"{dev} {_BLKIO_DEVICE_FILES[key][1]}={value}", False)
            for key, dev, value in r.blkio_devices if _BLKIO_DEVICE_FILES[key][1]]
    if "shares" in r.cpu:
        # v1 clamps shares to [2, 262144] silently; so does this, to cpu.weight's [1, 10000]
        weight = min(max(shares_to_weight(r.cpu["shares"]), 1), 10_000)
        out.append(("cpu", "cpu.weight", str(weight), False))
    if "quota" in r.cpu or "period" in r.cpu:
        quota = r.cpu.get("quota", -1)
        out.append(("cpu", "cpu.max", f"{quota if quota > 0 else 'max'} "
                    f"{r.cpu.get('period') or CPU_PERIOD}", False))
    out += [("cpuset", f"cpuset.{key}", value, False) for key, value in r.cpuset.items()]
    for size, value in r.hugepages:
        # the reservation limit too, where the kernel has it (5.7), as runc does
        out += [("hugetlb", f"hugetlb.{size}.max", str(value), False),
                ("hugetlb", f"hugetlb.{size}.rsvd.max", str(value), True)]
    out += [(key.partition(".")[0], key, value, False) for key, value in r.unified.items()]
    return out


def _max(value: int) -> str:
    # v2's word for no limit, which v1's pids.max takes too
    return "max" if value < 0 else str(value)


def _swap_v2(swap: int | None, limit: int | None) -> int | None:
    """memory.swap.max from the spec's swap, which is memory + swap (v1's memsw): swap alone,
    -1 for no limit, None to leave it (runc's ConvertMemorySwapToCgroupV2Value). Raises
    ConfigError where there is no such value."""
    if swap is None:
        # unlimited memory without a word on swap: unlimited swap too, as v1's memsw would be
        return -1 if limit == -1 else None
    if swap == -1 or limit == -1:
        return swap
    if limit is None:
        raise ConfigError("linux.resources.memory.swap: unable to set swap limit without "
                          "memory limit (cgroup v2 limits swap alone)")
    if limit < 0:
        raise ConfigError(f"linux.resources.memory.limit: invalid memory value: {limit}")
    if swap < limit:
        raise ConfigError("linux.resources.memory: memory+swap limit (swap) should be >= "
                          "memory limit")
    return swap - limit
