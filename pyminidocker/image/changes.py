"""An image config made anew for `import` and `commit` (one more layer, one more history
entry), and the Dockerfile instructions of their `-c/--change` applied to it."""
from __future__ import annotations

import copy
import json
from typing import Any

from pyminidocker.errors import UsageError
from pyminidocker.image.platforms import host_platform
from pyminidocker.store.layers import now_iso


def new_config(base: dict[str, Any] | None, diff_id: str, created_by: str, comment: str,
               author: str = "") -> dict[str, Any]:
    """An image config: base's (or an empty one for this host) with one more layer and one
    more history entry, created now."""
    if base is None:
        plat = host_platform()
        config: dict[str, Any] = {"architecture": plat.architecture, "os": plat.os,
                                  "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                                  "history": []}
        if plat.variant:
            config["variant"] = plat.variant
    else:
        config = copy.deepcopy(base)
        for key in ("container", "container_config", "docker_version", "comment", "author"):
            config.pop(key, None)
    created = now_iso()
    config["created"] = created
    config.setdefault("config", {})
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config["rootfs"]["diff_ids"] = list(config["rootfs"].get("diff_ids", [])) + [diff_id]
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
        config["comment"] = comment
    if author:
        entry["author"] = author
        config["author"] = author
    config["history"] = list(config.get("history") or []) + [entry]
    return config


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Apply Dockerfile instructions (`-c/--change` of import and commit) to an image config's
    "config": CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL.
    Raises UsageError (exit code 1, as Docker's daemon refuses them)."""
    c = config.setdefault("config", {})
    for change in changes:
        word, _, rest = change.strip().partition(" ")
        op, rest = word.upper(), rest.strip()
        if op in ("CMD", "ENTRYPOINT"):
            key = "Cmd" if op == "CMD" else "Entrypoint"
            c[key] = _exec_form(rest, change)
        elif op == "ENV":
            env = [e for e in c.get("Env") or []]
            for k, v in _pairs(rest, change):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            c["Env"] = env
        elif op == "LABEL":
            c["Labels"] = {**(c.get("Labels") or {}), **dict(_pairs(rest, change))}
        elif op == "WORKDIR":
            if not rest:
                raise _change_error(f"{op} requires exactly one argument")
            c["WorkingDir"] = rest
        elif op == "USER":
            c["User"] = rest
        elif op == "STOPSIGNAL":
            c["StopSignal"] = rest
        elif op == "EXPOSE":
            ports = c.get("ExposedPorts") or {}
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            c["ExposedPorts"] = ports
        elif op == "VOLUME":
            vols = c.get("Volumes") or {}
            for v in (_exec_form(rest, change) if rest.startswith("[") else rest.split()):
                vols[v] = {}
            c["Volumes"] = vols
        else:
            raise _change_error(f"{word} is not a valid change command")


def _change_error(message: str) -> UsageError:
    # the daemon refuses a change, not the docker CLI: Docker exits 1 (the API answers 400)
    return UsageError(message, exit_code=1)


def _exec_form(rest: str, change: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    if not rest:
        raise _change_error(f"invalid change {change!r}: no command")
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, change: str) -> list[tuple[str, str]]:
    import shlex

    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise _change_error(f"invalid change {change!r}: {e}") from None
    if not words:
        raise _change_error(f"invalid change {change!r}: no value")
    if "=" not in words[0]:  # the old form: ENV KEY VALUE...
        return [(words[0], " ".join(words[1:]))]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise _change_error(f"invalid change {change!r}: {w!r} is not KEY=VALUE")
        out.append((k, v))
    return out
