"""Paths and engine settings: the store root, the engine's config file, defaults.

The root is, in order: the --root flag, $PYMINIDOCKER_ROOT, /var/lib/docker-mini.
The engine's config file is <root>/config.json (optional), for example:
    {"insecure-registries": ["myreg:5000"], "max-concurrent-downloads": 3,
     "default-subnet": "10.77.0.0/16", "default-gateway": "10.77.0.1", "default-bridge": "pmd0"}
"""
from __future__ import annotations

import os

from pyminidocker.record import dataclass, field

DEFAULT_ROOT = "/var/lib/docker-mini"


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

    @classmethod
    def load(cls, root: str | os.PathLike[str] | None = None) -> Config:
        """Read <root>/config.json if present. Raises UsageError if it is not valid JSON."""
        from pyminidocker import jsonio
        from pyminidocker.errors import UsageError

        rootp = os.fspath(root) if root else default_root()
        cfg = cls(root=rootp)
        path = os.path.join(rootp, "config.json")
        try:
            with open(path, "rb") as f:
                data = jsonio.loads(f.read())
        except FileNotFoundError:
            return cfg
        except (OSError, ValueError) as e:
            raise UsageError(f"invalid engine config {path}: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"invalid engine config {path}: expected a JSON object")
        cfg.insecure_registries = list(data.get("insecure-registries", []))
        cfg.max_concurrent_downloads = int(data.get("max-concurrent-downloads", 3))
        cfg.default_subnet = data.get("default-subnet") or None
        cfg.default_gateway = data.get("default-gateway") or None
        cfg.default_bridge = data.get("default-bridge") or "pmd0"
        return cfg
