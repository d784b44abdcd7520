"""Spec policy in one place: the engine's container (a record: image config + host config) and
the OCI runtime's config.json describing the same container reach the same SpawnSpec, through
the same tables (namespaces, mount options, rlimits, capabilities, the working directory)."""
from __future__ import annotations

import os

from pyminidocker import shim
from pyminidocker.container import spec as defaults
from pyminidocker.container.spec import capabilities
from pyminidocker.container.specconv import spawn_spec
from pyminidocker.oci import config as oci
from pyminidocker.store.containers import ContainerRecord, HostConfig

PATH = defaults.DEFAULT_ENV_PATH


def _bundle(tmp_path):
    rootfs = tmp_path / "bundle" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "true").write_text("")
    os.chmod(rootfs / "bin" / "true", 0o755)
    etc = tmp_path / "ctr"
    etc.mkdir()
    for name in ("hostname", "hosts", "resolv.conf"):
        (etc / name).write_text("")
    return os.path.realpath(rootfs), str(etc)


def _record(**host) -> ContainerRecord:
    return ContainerRecord(
        id="c" * 64, name="same", image="i" * 64, image_name="bb", created="", argv=["/bin/true"],
        env=["A=1"], cwd="/work", user="1000:1000", hostname="h",
        host=HostConfig.from_json({"network": "none", "read_only": True, "no_new_privs": True,
                                   "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"],
                                   "tmpfs": ["/scratch:size=1m"],
                                   "ulimits": {"nofile": [1024, 2048]}, **host}))


def _config(rootfs: str, etc: str, caps: int) -> dict:
    names = [f"CAP_{n}" for n, bit in defaults.CAPS.items() if caps >> bit & 1]
    nsd = ["nosuid", "noexec", "nodev"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": nsd},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nsd, "ro"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nsd, "mode=1777", "size=67108864"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nsd},
        *({"destination": f"/etc/{n}", "type": "bind", "source": f"{etc}/{n}",
           "options": ["bind"]} for n in ("hostname", "hosts", "resolv.conf")),
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": [*nsd, "size=1m"]},
    ]
    return {
        "ociVersion": "1.2.0", "hostname": "h", "root": {"path": rootfs, "readonly": True},
        "process": {"args": ["/bin/true"], "cwd": "/work",
                    "env": ["A=1", PATH, "HOSTNAME=h", "HOME=/"],
                    "user": {"uid": 1000, "gid": 1000},
                    "capabilities": {"bounding": names, "effective": names, "permitted": names},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}],
                    "noNewPrivileges": True},
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                       "cgroup")],
                  "maskedPaths": defaults.MASKED_PATHS,
                  "readonlyPaths": defaults.READONLY_PATHS},
    }


def test_the_engine_and_the_oci_runtime_reach_the_same_spawn_spec(tmp_path):
    rootfs, etc = _bundle(tmp_path)
    rec = _record()
    engine = spawn_spec(rec, rootfs, etc)
    caps = capabilities(False, ["NET_ADMIN"], ["MKNOD"])
    runtime = oci.parse(_config(rootfs, etc, caps), os.path.dirname(rootfs)).spec
    assert engine == runtime
    # and it is the container asked for, not two equal mistakes
    assert (engine.uid, engine.gid, engine.cwd, engine.hostname) == (1000, 1000, "/work", "h")
    assert engine.rlimits == {7: (1024, 2048)} and engine.no_new_privs and engine.readonly_root
    assert engine.cap_bounding == caps and caps & (1 << defaults.CAPS["NET_ADMIN"])
    assert not caps & (1 << defaults.CAPS["MKNOD"])
    assert shim.Mount("/scratch", "tmpfs", "tmpfs",
                      shim.MS_NOSUID | shim.MS_NODEV | shim.MS_NOEXEC, "size=1m",
                      mkdir=True) in engine.mounts
    assert os.path.isdir(os.path.join(rootfs, "work"))  # both make a missing workdir


def test_host_namespaces_leave_the_same_namespaces_out(tmp_path):
    rootfs, etc = _bundle(tmp_path)
    engine = spawn_spec(_record(pid_mode="host", ipc_mode="host"), rootfs, etc)
    doc = _config(rootfs, etc, capabilities(False, ["NET_ADMIN"], ["MKNOD"]))
    doc["linux"]["namespaces"] = [{"type": t} for t in ("network", "uts", "mount", "cgroup")]
    assert engine.namespaces == oci.parse(doc, os.path.dirname(rootfs)).spec.namespaces
    assert not engine.namespaces & (shim.CLONE_NEWPID | shim.CLONE_NEWIPC)
