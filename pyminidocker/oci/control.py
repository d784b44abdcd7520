"""The verbs that act on a container that exists: kill, delete, pause/resume and update."""
from __future__ import annotations

import os
import sys

from pyminidocker.errors import NotFound, UsageError
from pyminidocker.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
# update's flags: where each goes in linux.resources
_UPDATE_FLAGS = {
    "memory": ("memory", "limit"), "memory_swap": ("memory", "swap"),
    "memory_reservation": ("memory", "reservation"), "kernel_memory": ("memory", "kernel"),
    "cpu_quota": ("cpu", "quota"), "cpu_period": ("cpu", "period"),
    "cpu_shares": ("cpu", "shares"), "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"), "pids_limit": ("pids", "limit"),
    "blkio_weight": ("blockIO", "weight"), "cpu_rt_period": ("cpu", "realtimePeriod"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime"),
}


def parse_signal(text: str) -> int:
    """"KILL", "SIGKILL", "9", "SIGRTMIN+3" → the number. Raises UsageError."""
    name = text.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) <= 64:
        return int(text)
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base, _, off = name[5:].partition("+") if "+" in name else (name[5:], "", "")
        if not base and (not off or off.isdigit()):
            return 34 + int(off or 0) if name.startswith("RTMIN") else 64 - int(off or 0)
    raise UsageError(f"unknown signal {text!r}", exit_code=1)


def kill(root: str, args: Any) -> None:
    rec = st.load(root, args.id)
    sig = parse_signal(args.signal)
    if st.status(rec) == "stopped":
        raise st.RuntimeError_("container not running")
    if args.all:
        from pyminidocker.container.cgroups import Cgroup

        cg_id, parent = rec["cgroup"]
        Cgroup(cg_id, parent).kill(sig)
        return
    try:
        os.kill(rec["pid"], sig)
    except ProcessLookupError:
        raise st.RuntimeError_("container not running") from None


def delete(root: str, args: Any) -> None:
    try:
        rec = st.load(root, args.id)
    except NotFound:
        if args.force:
            return
        raise
    # Not at the top: containerd's last call is a `delete --force` of a container its `delete`
    # removed, which ends above (the runtime module and its imports are 1 ms of that call).
    from pyminidocker.oci import runtime as rt

    status = st.status(rec)
    if status != "stopped":
        # The runtime spec's rule ("MUST generate an error"); runc 1.1 deletes a created one.
        if not args.force:
            raise st.RuntimeError_(f"cannot delete container {args.id} that is not stopped: "
                                   f"{status}")
        from pyminidocker.container.cgroups import Cgroup

        cg_id, parent = rec["cgroup"]
        if status == "paused":
            _freeze(rec, False)
        Cgroup(cg_id, parent).kill(9)
        try:
            os.kill(rec["pid"], 9)
        except ProcessLookupError:
            pass
        if not rt.wait_gone(rec, 10):
            raise st.RuntimeError_(f"container {args.id} does not die")
    failures = rt.run_hooks(rt.hooks_of(rec).get("poststop", []), "poststop",
                            st.oci_state(rec, "stopped"), warn_only=True)
    rt.cleanup(root, rec)
    for msg in failures:
        sys.stderr.write(f"warning: {msg}\n")


def _freeze(rec: dict[str, Any], on: bool) -> None:
    freezer = rec.get("freezer")
    if not freezer:
        raise st.RuntimeError_("this host has no freezer cgroup: cannot pause")
    try:
        with open(os.path.join(freezer, "freezer.state"), "w") as f:
            f.write("FROZEN" if on else "THAWED")
    except OSError as e:
        raise st.RuntimeError_(f"freezer: {e.strerror}") from None


def pause(root: str, container_id: str, on: bool) -> None:
    rec = st.load(root, container_id)
    status = st.status(rec)
    if on and status != "running":
        raise st.RuntimeError_("container not running")
    if not on and status != "paused":
        raise st.RuntimeError_("container not paused")
    _freeze(rec, on)


def _update_resources(args: Any) -> dict[str, Any]:
    """linux.resources from --resources (a file, - for stdin) with the flags on top."""
    import json

    res: dict[str, Any] = {}
    if args.resources:
        try:
            text = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
            res = json.loads(text)
        except (OSError, ValueError) as e:
            raise st.RuntimeError_(f"resources: {e}") from None
    for dest, (group, key) in _UPDATE_FLAGS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if key not in ("cpus", "mems"):
            try:
                value = int(value)
            except ValueError:
                from pyminidocker.container.cgroups import parse_bytes

                value = parse_bytes(value, allow_unlimited=True)
        res.setdefault(group, {})[key] = value
    return res


def update(root: str, args: Any) -> None:
    from pyminidocker.container.cgroups import Cgroup, read_control
    from pyminidocker.oci import resources as oci_resources
    from pyminidocker.oci import runtime as rt

    rec = st.load(root, args.id)
    if st.status(rec) == "stopped":
        raise st.RuntimeError_("container not running")
    resources = oci_resources.parse(_update_resources(args))
    cg_id, parent = rec["cgroup"]
    cg = Cgroup(cg_id, parent)
    memory = resources.memory
    if cg.version == "v2" and "swap" in memory and "limit" not in memory:
        # v2's memory.swap.max is swap alone and the spec's swap memory + swap: the limit in
        # force is subtracted (runc keeps the config's, with the updates merged in)
        current = (read_control(os.path.join(cg.dirs[""], "memory.max")) or "").strip()
        if current.isdigit() or current == "max":
            memory["limit"] = -1 if current == "max" else int(current)
    files = oci_resources.cgroup_files(resources, cg.version)
    extra: dict[str, str] = {}
    for d in rec.get("extra_cgroups") or []:
        for ctl in rt._EXTRA_CONTROLLERS:
            mount = cg.layout.controllers.get(ctl)
            if mount and d.startswith(mount + "/"):
                extra[ctl] = d
    rt.write_resources(cg, files, extra)
