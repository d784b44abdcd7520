"""The verbs that report on containers: list, ps and events --stats."""
from __future__ import annotations

import json

from pyminidocker.container.cgroups import Cgroup
from pyminidocker.container.observe import cgroup_usage
from pyminidocker.errors import PmdError
from pyminidocker.oci import runtime as rt
from pyminidocker.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def list_(root: str, args: Any) -> str:
    recs = []
    for cid in st.ids(root):
        try:
            recs.append(st.load(root, cid))
        except PmdError:
            continue
    if args.quiet:
        return "".join(r["id"] + "\n" for r in recs)
    states = [st.oci_state(r) for r in recs]
    if args.format == "json":
        return json.dumps(states or None) + "\n"
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")] + [
        (s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root") for s in states]
    widths = [max(max(len(r[i]) for r in rows) + 1, 12) for i in range(5)]
    return "".join("".join(v.ljust(w) for v, w in zip(r, widths)) + r[5] + "\n" for r in rows)


def ps(root: str, args: Any) -> str:
    import subprocess

    rec = st.load(root, args.id)
    cg_id, parent = rec["cgroup"]
    pids = Cgroup(cg_id, parent).pids() if st.status(rec) != "stopped" else []
    if args.format == "json":
        return json.dumps(pids) + "\n"
    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise rt.RuntimeError_(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise rt.RuntimeError_("couldn't find PID field in ps output") from None
    keep = [lines[0]] + [ln for ln in lines[1:] if len(ln.split()) > col and
                         ln.split()[col].isdigit() and int(ln.split()[col]) in pids]
    return "\n".join(keep) + "\n"


def events(root: str, args: Any) -> str:
    if not args.stats:
        raise rt.RuntimeError_("events: only --stats (one sample) is supported")
    rec = st.load(root, args.id)
    if st.status(rec) == "stopped":
        raise rt.RuntimeError_("container not running")
    cg_id, parent = rec["cgroup"]
    s = cgroup_usage(Cgroup(cg_id, parent))
    data = {
        "cpu": {"usage": {"total": s.get("cpu_usage_ns") or 0}},
        "memory": {"usage": {"usage": s.get("memory_usage") or 0,
                             "limit": s.get("memory_limit") or 0}},
        "pids": {"current": s.get("pids") or 0},
    }
    return json.dumps({"type": "stats", "id": args.id, "data": data}) + "\n"
