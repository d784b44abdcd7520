"""What this runtime offers: `features` (runc's JSON) and `spec` (a default config.json)."""
from __future__ import annotations

import os

from pyminidocker.container import spec as defaults
from pyminidocker.oci import config as cfg
from pyminidocker.oci import runtime as rt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features(version: str) -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": cfg.SUPPORTED_OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(cfg.MOUNT_OPTIONS),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [f"CAP_{c}" for c in defaults.CAPS],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": [], "operators": [], "archs": []},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.version": f"pyminidocker-runc {version}"},
    }


def _default_mounts() -> list[dict[str, Any]]:
    nsd = ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nsd, "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nsd},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nsd, "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*nsd, "relatime", "ro"]},
    ]


def spec(bundle: str) -> None:
    """Write runc's default config.json into bundle (refusing to overwrite one)."""
    import json

    path = os.path.join(bundle or ".", "config.json")
    if os.path.exists(path):
        raise rt.RuntimeError_("File config.json exists. Remove it first.")
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    doc = {
        "ociVersion": cfg.SUPPORTED_OCI_VERSION,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": [defaults.DEFAULT_ENV_PATH, "TERM=xterm"], "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": _default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                 "cgroup")],
            "maskedPaths": defaults.MASKED_PATHS,
            "readonlyPaths": defaults.READONLY_PATHS,
        },
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
