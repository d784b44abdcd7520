"""pyminidocker-runc under Kubernetes' node runtime: containerd's CRI plugin (Debian's 1.6,
started here with its own root, state and socket) with a runtime handler "pmd" of type
io.containerd.runc.v2 whose BinaryName is ours, driven through the CRI socket as the kubelet
drives it: RunPodSandbox, CreateContainer, StartContainer, ExecSync, the container's log,
then StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox.

crictl is not packaged in Debian, so a small CRI client is here: gRPC through grpcio, the few
runtime.v1 messages it needs encoded by hand (field numbers from k8s.io/cri-api's api.proto),
which spares generated stubs and a protobuf dependency. The sandbox ("pause") image is the
tests' busybox image with a command that sleeps, imported under the name the plugin's
sandbox_image gives, so nothing is pulled.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration import servers as S
from tests.integration.test_oci_clients import Containerd, remove_cgroup_parent, unmount_under
from tests.integration.test_oci_runtime import empty_default_parents, write_launcher

grpc = pytest.importorskip("grpc", reason="grpcio is not installed (make deps)")

CRI_NS = "k8s.io"  # the containerd namespace the CRI plugin works in
PAUSE = "localhost/pmd-pause:1"
IMAGE = "localhost/pmd-busybox:cri"
SERVICE = "/runtime.v1.RuntimeService/"
NODE = 2  # NamespaceMode.NODE: the pod shares the host's network (no CNI plugin needed)


# ---- protobuf, the little of it the CRI client needs -------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative int64s are ten bytes, as protobuf writes them
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def msg(*fields: tuple[int, object]) -> bytes:
    """A message from (field number, value) pairs: int = varint, str/bytes = length-delimited
    (a nested message is bytes), a list repeats the field."""
    out = bytearray()
    for num, value in fields:
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool | int):
                out += _varint(num << 3) + _varint(int(v))
            else:
                data = v.encode() if isinstance(v, str) else v
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def entry(key: str, value: str) -> bytes:
    """One entry of a map<string, string> (a message of key = 1, value = 2)."""
    return msg((1, key), (2, value))


def parse(data: bytes) -> dict[int, list]:
    """Field number -> values (ints for varints, bytes for length-delimited)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _read_varint(data, i)
        elif kind == 2:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            value, i = int.from_bytes(data[i:i + width], "little"), i + width
        else:
            raise ValueError(f"wire type {kind}")
        out.setdefault(num, []).append(value)
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


class Cri:
    """RuntimeService calls over the CRI socket, raw bytes in and out."""

    def __init__(self, sock: Path):
        self.channel = grpc.insecure_channel(f"unix://{sock}")

    def call(self, method: str, request: bytes, timeout: float = 60) -> dict[int, list]:
        rpc = self.channel.unary_unary(SERVICE + method)
        return parse(rpc(request, timeout=timeout))

    def close(self) -> None:
        self.channel.close()


def sandbox_config(name: str, logs: Path) -> bytes:
    namespaces = msg((1, NODE))  # NamespaceOption: network NODE; pid and ipc per pod
    linux = msg((2, msg((1, namespaces))))  # LinuxPodSandboxConfig.security_context
    return msg((1, msg((1, name), (2, f"uid-{name}"), (3, "default"), (4, 0))),
               (3, str(logs)), (6, entry("test", "pmd")), (8, linux))


def container_config(name: str, command: list[str]) -> bytes:
    return msg((1, msg((1, name))), (2, msg((1, IMAGE))), (3, command),
               (6, msg((1, "GREETING"), (2, "hello-cri"))), (11, f"{name}.log"))


# ---- the fixture ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cri(tmp_path_factory):
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is not installed (apt-get install containerd)")
    base = tmp_path_factory.mktemp("cri")
    # a wrapper that notes each call: the proof that containerd ran ours, not its runc
    launcher = write_launcher(base / "launcher")
    runc = base / "pyminidocker-runc"
    runc.write_text(f'#!/bin/sh\necho "$@" >> {base}/calls\nexec {launcher} "$@"\n')
    runc.chmod(0o755)
    plugin = 'plugins."io.containerd.grpc.v1.cri"'
    d = Containerd(base, cri=f"""[{plugin}]
  sandbox_image = "{PAUSE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
[{plugin}.containerd]
  default_runtime_name = "pmd"
  snapshotter = "overlayfs"
[{plugin}.containerd.runtimes.pmd]
  runtime_type = "io.containerd.runc.v2"
[{plugin}.containerd.runtimes.pmd.options]
  BinaryName = "{runc}"
  SystemdCgroup = false
[{plugin}.cni]
  bin_dir = "{base}/cni/bin"
  conf_dir = "{base}/cni/conf"
""")
    try:
        pause = I.build_image([I.make_layer(I.full_busybox_entries())], cmd=["sleep", "100000"])
        for name, image in ((PAUSE, pause), (IMAGE, I.busybox_image())):
            repo, tag = name.rsplit(":", 1)
            layout = I.write_layout(base / f"layout-{tag}", {tag: image})
            tar = base / f"{tag}.tar"
            with tarfile.open(tar, "w") as t:
                for entry_name in os.listdir(layout):
                    t.add(layout / entry_name, arcname=entry_name)
            r = ctr(d, "image", "import", "--base-name", repo, str(tar))
            assert r.returncode == 0, r.stderr
        client = Cri(d.sock)
        S.wait_until(lambda: _ready(client), timeout=30, what="the CRI plugin to answer")
        try:
            yield client, base
        finally:
            # A failed test's pods go too (their pause processes and shims would outlive us)
            for item in client.call("ListPodSandbox", b"").get(1, []):
                pod = parse(item)[1][0]
                client.call("StopPodSandbox", msg((1, pod)))
                client.call("RemovePodSandbox", msg((1, pod)))
            client.close()
            S.wait_until(lambda: not shims(d), timeout=20, what="the shims to exit")
    finally:
        for name in (PAUSE, IMAGE):
            ctr(d, "image", "rm", name)
        d.stop()
        mounts = unmount_under(base)
        shutil.rmtree(f"/run/containerd/runc/{CRI_NS}", ignore_errors=True)
        remove_cgroup_parent("k8s.io")
        assert not empty_default_parents(), "empty pyminidocker-runc parent cgroups left"
        assert not mounts, f"containerd left mounts: {mounts}"


def ctr(d: Containerd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", str(d.sock), "-n", CRI_NS, *args],
                          capture_output=True, text=True, timeout=120, check=False)


def shims(d: Containerd) -> list[int]:
    return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if "containerd-shim" in S.proc_cmdline(p) and f"-address {d.sock}"
            in S.proc_cmdline(p)]


def _ready(client: Cri) -> bool:
    try:
        client.call("Version", msg((1, "v1")), timeout=5)
        return True
    except grpc.RpcError:
        return False


# ---- the test ------------------------------------------------------------------------------

def test_a_pod_runs_through_pyminidocker_runc(cri):
    client, base = cri
    logs = base / "logs"
    logs.mkdir()
    version = client.call("Version", msg((1, "v1")))
    assert version[2] == [b"containerd"]
    pod = client.call("RunPodSandbox", msg((1, sandbox_config("pod1", logs)),
                                           (2, "pmd")))[1][0].decode()
    status = client.call("PodSandboxStatus", msg((1, pod)))
    assert parse(status[1][0]).get(3, [0]) == [0]  # SANDBOX_READY
    sandbox = sandbox_config("pod1", logs)
    cid = client.call("CreateContainer", msg(
        (1, pod), (2, container_config("c1", ["sh", "-c", "echo $GREETING; echo to-err >&2; "
                                                        "exec sleep 100"])),
        (3, sandbox)))[1][0].decode()
    client.call("StartContainer", msg((1, cid)))
    # pid 1 is the sandbox's: the container joined the pod's pid namespace by its path
    out = client.call("ExecSync", msg((1, cid), (2, ["sh", "-c", "echo exec-ok; cat /proc/1/"
                                                     "cmdline | tr '\\0' ' '; exit 5"]),
                                      (3, 30)))
    assert out.get(1) == [b"exec-ok\nsleep 100000 "] and out.get(3) == [5], out
    # The container's output, in the CRI log format (time stream tag message)
    log = logs / "c1.log"
    S.wait_until(lambda: log.exists() and "to-err" in log.read_text(), timeout=10,
                 what="the container's log")
    lines = [ln.split(" ", 3)[1:] for ln in log.read_text().splitlines()]
    assert ["stdout", "F", "hello-cri"] in lines and ["stderr", "F", "to-err"] in lines
    state = parse(client.call("ContainerStatus", msg((1, cid)))[1][0])
    assert state.get(3) == [1]  # CONTAINER_RUNNING
    client.call("StopContainer", msg((1, cid), (2, 2)))
    state = parse(client.call("ContainerStatus", msg((1, cid)))[1][0])
    assert state.get(3) == [2]  # CONTAINER_EXITED
    client.call("RemoveContainer", msg((1, cid)))
    client.call("StopPodSandbox", msg((1, pod)))
    client.call("RemovePodSandbox", msg((1, pod)))
    assert client.call("ListPodSandbox", b"").get(1) is None
    assert client.call("ListContainers", b"").get(1) is None
    verbs = [v for line in (base / "calls").read_text().splitlines()
             for v in ("create", "start", "exec", "kill", "delete") if v in line.split()]
    assert {"create", "start", "exec", "delete"} <= set(verbs)
    assert verbs.count("create") == 2  # the sandbox and the container
