"""`exec`: another process in a running container, from --process FILE or the command line,
joined to the init's namespaces and cgroups."""
from __future__ import annotations

import os

from pyminidocker import native as shim
from pyminidocker.container.cgroups import Cgroup
from pyminidocker.errors import PmdError, UsageError
from pyminidocker.oci import config as cfg
from pyminidocker.oci import process
from pyminidocker.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ExecFailed(PmdError):
    exit_code = 255


def _process_doc(rec: dict[str, Any], args: Any) -> dict[str, Any]:
    """The OCI process object to run: --process's file, or the container's own with the
    command line's changes."""
    import json

    if args.process:
        try:
            with open(args.process) as f:
                doc: dict[str, Any] = json.load(f)
        except (OSError, ValueError) as e:
            raise ExecFailed(f"process {args.process}: {e}") from None
        return doc
    doc = dict(rec.get("config", {}).get("process") or {})
    if not args.command:
        raise UsageError("exec: a command is required", exit_code=1)
    doc["args"] = args.command
    doc["env"] = [*(doc.get("env") or []), *(args.env or [])]
    doc["terminal"] = args.tty
    if args.cwd:
        doc["cwd"] = args.cwd
    if args.user:
        u, _, g = args.user.partition(":")
        doc["user"] = {"uid": int(u), "gid": int(g or 0),
                       "additionalGids": [int(x) for x in args.additional_gids or []]}
    if args.no_new_privs:
        doc["noNewPrivileges"] = True
    if args.cap:
        caps = dict(doc.get("capabilities") or {})
        for key in ("bounding", "effective", "permitted"):
            caps[key] = [*caps.get(key, []), *args.cap]
        doc["capabilities"] = caps
    return doc


def _spec(rec: dict[str, Any], doc: dict[str, Any]) -> shim.SpawnSpec:
    """The spawn spec: the process, the container's seccomp profile, its init's namespaces
    and cgroups."""
    try:
        spec = cfg.process_spec(doc, None, [])
        seccomp = (rec.get("config", {}).get("linux") or {}).get("seccomp")
        if isinstance(seccomp, dict):
            cfg._seccomp(seccomp, spec)
    except cfg.ConfigError as e:
        raise ExecFailed(str(e)) from None
    spec.join_pid = rec["pid"]
    spec.namespaces = rec.get("ns_mask", 0)
    cg_id, parent = rec["cgroup"]
    spec.cgroup_procs = [*Cgroup(cg_id, parent).procs_files(),
                         *(os.path.join(d, "tasks") for d in rec.get("extra_cgroups") or [])]
    spec.setsid = True
    return spec


def exec_(root: str, args: Any) -> int:
    rec = st.load(root, args.id)
    status = st.status(rec)
    if status == "paused" and not args.ignore_paused:
        raise ExecFailed("cannot exec in a paused container (use --ignore-paused to override)")
    if status in ("stopped", "created"):
        raise ExecFailed(f"cannot exec in a {status} container")
    doc = _process_doc(rec, args)
    spec = _spec(rec, doc)
    terminal = bool(doc.get("terminal"))
    if terminal and args.detach and not args.console_socket:
        raise ExecFailed("cannot allocate tty if runc will detach without setting console "
                         "socket")
    master = slave = -1
    try:
        if terminal:
            size = doc.get("consoleSize") or {}
            master, slave = process.open_console((size.get("height", 0), size.get("width", 0)))
            process.stdio_pty(spec, slave)
        try:
            proc = shim.spawn(spec)
        except OSError as e:
            raise ExecFailed(f"exec failed: {process.start_error(e, spec.argv[0])}") from None
        if slave >= 0:
            os.close(slave)
            slave = -1
        process.write_pid_file(args.pid_file, proc.pid)
        if args.detach:
            if master >= 0:
                process.send_console(args.console_socket, master)
            return 0
        fd, master = master, -1  # wait closes it
        return process.wait(proc.pid, fd)
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
