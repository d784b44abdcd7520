"""Paths and engine settings: the store root, the engine's config file, defaults.

The root is, in order: the --root flag, $PYMINIDOCKER_ROOT, /var/lib/docker-mini.
The engine's config file is <root>/config.json (optional), for example:
    {"insecure-registries": ["myreg:5000"], "max-concurrent-downloads": 3,
     "default-subnet": "10.77.0.0/16", "default-gateway": "10.77.0.1", "default-bridge": "pmd0",
     "resolv-conf": "/etc/resolv.conf"}
("resolv-conf": the file naming the host's resolvers, to which the DNS server of user networks
forwards the names it does not know.)
"""
from __future__ import annotations

import os

from pyminidocker.record import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_ROOT = "/var/lib/docker-mini"


def check_root(root: str) -> None:
    """Refuse a store root that another user could have prepared: one owned by another user,
    or reached through a symlink owned by one (they could point it anywhere later). The root's
    own mode is the store's business (Store.ensure makes it 0700). Raises UsageError."""
    from pyminidocker.errors import UsageError

    me = os.geteuid()
    path = ""
    for part in os.path.abspath(root).split("/")[1:]:
        path += "/" + part
        try:
            st = os.lstat(path)
        except OSError:
            return  # the rest does not exist yet: the store makes it, as its own
        if st.st_uid not in (0, me):
            what = "reached through a symlink" if (st.st_mode & 0o170000) == 0o120000 \
                else "a directory"
            raise UsageError(f"refusing the store at {root}: {path} is {what} owned by uid "
                             f"{st.st_uid}, not by root")
        if (st.st_mode & 0o170000) == 0o120000:
            target = os.path.realpath(path)
            if target != path:
                check_root(os.path.join(target, os.path.relpath(os.path.abspath(root), path)))
                return


def default_root() -> str:
    return os.environ.get("PYMINIDOCKER_ROOT") or DEFAULT_ROOT


def _docker_config() -> str:
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"),
                        "config.json")


@dataclass
class Config:
    root: str | os.PathLike[str]
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    # the default "bridge" network (issue 4); None: the first free subnet of the pool
    default_subnet: str | None = None
    default_gateway: str | None = None
    default_bridge: str = "pmd0"
    docker_config: str | os.PathLike[str] = field(default_factory=_docker_config)
    resolv_conf: str = "/etc/resolv.conf"

    @classmethod
    def load(cls, root: str | os.PathLike[str] | None = None) -> Config:
        """Read <root>/config.json if present. Raises UsageError if it is not valid JSON."""
        from pyminidocker import record
        from pyminidocker.errors import UsageError

        rootp = os.fspath(root) if root else default_root()
        check_root(rootp)
        cfg = cls(root=rootp)
        path = os.path.join(rootp, "config.json")
        try:
            with open(path, "rb") as f:
                data = record.loads(f.read())
        except FileNotFoundError:
            return cfg
        except PermissionError:
            raise UsageError(f"cannot read {path}: permission denied (the engine needs root; "
                             "there is no rootless mode yet)") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"invalid engine config {path}: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"invalid engine config {path}: expected a JSON object")

        # The file is input like any other (whoever could write it is not trusted to crash
        # us): each value is checked for its type, and a bad one is named.
        def value(key: str, kind: type, default: Any,
                  check: Callable[[Any], bool] | None = None) -> Any:
            v = data.get(key, default)
            if v is None or v == "":
                return default
            ok = isinstance(v, kind) and not isinstance(v, bool) and (check is None or check(v))
            if not ok:
                raise UsageError(f"invalid engine config {path}: {key}: {v!r} is not "
                                 f"a valid {kind.__name__} here")
            return v

        regs = value("insecure-registries", list, [])
        if not all(isinstance(r, str) and r for r in regs):
            raise UsageError(f"invalid engine config {path}: insecure-registries: "
                             "expected a list of host[:port] strings")
        cfg.insecure_registries = regs
        cfg.max_concurrent_downloads = value("max-concurrent-downloads", int, 3,
                                             lambda n: 0 < n <= 64)
        cfg.default_subnet = value("default-subnet", str, None)
        cfg.default_gateway = value("default-gateway", str, None)
        cfg.default_bridge = value(
            "default-bridge", str, "pmd0",
            lambda b: len(b) <= 15 and b.isascii() and not any(c in b for c in "/: \t\n"))
        cfg.resolv_conf = value("resolv-conf", str, "/etc/resolv.conf", os.path.isabs)
        return cfg
