"""Each container's state under the runtime's --root: <root>/<id>/state.json, written atomically.

The record says what the runtime did (the init's pid and its start time; created while the
holder's socket exists); the status a command reports is that record checked against the
kernel, so it tells the truth after a crash: a pid that is gone, or reused by another
process, is a stopped container.
"""
from __future__ import annotations

import os

from pyminidocker import proc, record
from pyminidocker.errors import NotFound, PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/pyminidocker-runc"
# The state's ociVersion, as runc reports the version of the spec it implements.
OCI_VERSION = "1.2.0"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class ConfigError(PmdError):
    """config.json is missing, malformed, hostile or asks for what this runtime cannot do.
    (Here, below the config reader, so that the runtime raises it without importing that.)"""


class RuntimeError_(PmdError):
    """An operation failed; runc's exit code 1. (Here, so that `start` and `delete` raise it
    without importing the runtime's cgroup code.)"""


def check_id(container_id: str) -> None:
    """runc's rule for an id: [A-Za-z0-9_+.-]+, not "." or "..". Raises PmdError."""
    if not container_id or container_id in (".", "..") or \
            not set(container_id) <= _ID_CHARS or len(container_id) > 1024:
        raise PmdError(f"invalid container id format: {container_id}")


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def load(root: str, container_id: str) -> dict[str, Any]:
    """The record of container_id. Raises NotFound ("container does not exist")."""
    path = os.path.join(container_dir(root, container_id), "state.json")
    try:
        with open(path, "rb") as f:
            rec = record.loads(f.read())
    except FileNotFoundError:
        raise NotFound("container does not exist") from None
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        raise PmdError(f"corrupt state {path}")
    return rec


def save(root: str, rec: dict[str, Any]) -> None:
    """Written once per container (create, run), whole (record.atomic_write), so that a
    concurrent `state` reads all of it or none. /run is a tmpfs: a crash of the host forgets
    every container anyway, so no fsync."""
    record.write_json(os.path.join(root, rec["id"], "state.json"), rec, durable=False)


def remove(root: str, container_id: str) -> None:
    d = container_dir(root, container_id)
    try:  # the usual directory: state.json alone (the socket went with the hold)
        os.unlink(os.path.join(d, "state.json"))
        os.rmdir(d)
    except OSError:
        from pyminidocker.store.files import remove_tree

        remove_tree(d)


def ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, "state.json"))]


def alive(rec: dict[str, Any]) -> bool:
    """The container's init still runs (not a zombie, not a recycled pid)."""
    return proc.alive(rec.get("pid") or 0, rec.get("pid_start") or "")


pid_start = proc.start_time


def status(rec: dict[str, Any]) -> str:
    """created, running, paused or stopped, as the kernel says now."""
    if not alive(rec):
        return "stopped"
    if os.path.exists(rec.get("ctl", "")):
        return "created"  # the holder still holds it (it removes its socket when it lets go)
    freezer = rec.get("freezer")
    if freezer:
        try:
            with open(os.path.join(freezer, "freezer.state")) as f:
                if f.read().strip() in ("FROZEN", "FREEZING"):
                    return "paused"
        except OSError:
            pass
    return "running"


def oci_state(rec: dict[str, Any], current: str | None = None) -> dict[str, Any]:
    """The state object of the OCI runtime spec, with runc's extra fields (rootfs, created,
    owner); also what hooks read on their stdin."""
    current = current or status(rec)
    return {
        "ociVersion": OCI_VERSION,
        "id": rec["id"],
        "pid": rec.get("pid", 0) if current != "stopped" else 0,
        "status": current,
        "bundle": rec.get("bundle", ""),
        "rootfs": rec.get("rootfs", ""),
        "created": rec.get("created", ""),
        "owner": "",
        "annotations": rec.get("annotations") or {},
    }
