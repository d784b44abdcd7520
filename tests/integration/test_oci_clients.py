"""pyminidocker-runc under the real callers of an OCI runtime: containerd (started here with its
own root, state and socket) through `ctr run --runc-binary`, and Podman with `--runtime`.
Each client runs with state of its own and leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration import servers as S
from tests.integration.test_oci_runtime import cgroup_dirs, empty_default_parents, write_launcher

NAMESPACE = "pmdtest"
IMAGE = "localhost/pmd-busybox:latest"


def image_tar(tmp: Path) -> Path:
    """The busybox fixture image as an OCI layout tar (what `ctr image import` reads)."""
    layout = I.write_layout(tmp / "layout", {"latest": I.busybox_image()})
    tar = tmp / "image.tar"
    with tarfile.open(tar, "w") as t:
        for name in os.listdir(layout):
            t.add(layout / name, arcname=name)
    return tar


class Containerd:
    def __init__(self, base: Path, cri: str = ""):
        """cri: the CRI plugin's configuration (TOML tables); without it, the plugin is off."""
        self.base = base
        self.sock = base / "containerd.sock"
        cfg = base / "config.toml"
        off = "" if cri else '"io.containerd.grpc.v1.cri", '
        cfg.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = [{off}"io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = "{base}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
{cri}""")
        self.log = open(base / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        S.SERVER_PIDS.add(self.proc.pid)
        S.wait_until(lambda: self.ctr("version", check=False).returncode == 0, timeout=30,
                     what="containerd to answer")

    def ctr(self, *args: str, check: bool = True, timeout: float = 60, **kw
            ) -> subprocess.CompletedProcess:
        r = subprocess.run(["ctr", "--address", str(self.sock), "-n", NAMESPACE, *args],
                           capture_output=True, text=True, timeout=timeout, check=False, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {args}: rc {r.returncode}: {r.stderr}")
        return r

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        S.SERVER_PIDS.discard(self.proc.pid)
        self.log.close()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is not installed (apt-get install containerd)")
    base = tmp_path_factory.mktemp("containerd")
    d = Containerd(base)
    runc = write_launcher(base / "pyminidocker-runc")
    d.ctr("image", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(image_tar(base)))
    yield d, runc
    d.ctr("image", "rm", IMAGE, check=False)
    d.stop()
    mounts = unmount_under(base)
    shutil.rmtree(f"/run/containerd/runc/{NAMESPACE}", ignore_errors=True)
    remove_cgroup_parent(NAMESPACE)
    assert not empty_default_parents(), "empty pyminidocker-runc parent cgroups left"
    assert not mounts, f"containerd left mounts: {mounts}"


def unmount_under(base: Path) -> list[str]:
    """Lazily unmount what a client left mounted under base (deepest first); what was there."""
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(base))]
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m], check=False)
    return mounts


def remove_cgroup_parent(name: str) -> None:
    """The parent cgroup a client asked for (our runtime made it, as runc does), if empty:
    rmdir refuses one that another test's containers still use."""
    for d in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        try:
            d.rmdir()
        except OSError:
            pass


def shims() -> list[int]:
    return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if "containerd-shim" in S.proc_cmdline(p) and f"-namespace {NAMESPACE}"
            in S.proc_cmdline(p)]


def test_ctr_run_through_pyminidocker_runc(containerd):
    d, runc = containerd
    r = d.ctr("run", "--runc-binary", str(runc), "--rm", IMAGE, "ctr1", "sh", "-c",
              "echo hello from $(hostname); echo to-stderr >&2; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    # containerd's default spec has a UTS namespace and no hostname: the host's name, copied
    assert r.stdout == f"hello from {os.uname().nodename}\n"
    assert "to-stderr" in r.stderr
    # containerd's cgroupsPath is /<namespace>/<id>, with a memory limit from --memory-limit
    r = d.ctr("run", "--runc-binary", str(runc), "--rm", "--memory-limit", "33554432", IMAGE,
              "ctr2", "cat", "/proc/self/cgroup", check=False)
    assert r.returncode == 0, r.stderr
    assert f"memory:/{NAMESPACE}/ctr2\n" in r.stdout
    assert d.ctr("containers", "ls", "-q").stdout == ""
    S.wait_until(lambda: not shims(), timeout=10, what="the shims to exit")
    assert not cgroup_dirs("ctr1")


def test_ctr_run_tty(containerd):
    d, runc = containerd
    master, slave = os.openpty()
    try:
        p = subprocess.Popen(["ctr", "--address", str(d.sock), "-n", NAMESPACE, "run",
                              "--runc-binary", str(runc), "--rm", "--tty", IMAGE, "ctr3", "sh",
                              "-c", "[ -t 0 ] && echo is-a-tty; exit 4"],
                             stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        assert p.wait(timeout=30) == 4, out
        assert b"is-a-tty" in out
    finally:
        os.close(master)
    S.wait_until(lambda: not shims(), timeout=10, what="the shims to exit")


def test_ctr_run_a_command_that_is_not_there(containerd):
    d, runc = containerd
    r = d.ctr("run", "--runc-binary", str(runc), "--rm", IMAGE, "ctr4", "nosuch", check=False)
    assert r.returncode != 0
    assert 'exec: "nosuch": executable file not found' in r.stderr
    # ctr leaves a task whose start failed, as it does with runc
    d.ctr("task", "delete", "--force", "ctr4", check=False)
    d.ctr("containers", "rm", "ctr4", check=False)
    assert d.ctr("containers", "ls", "-q").stdout == ""
    S.wait_until(lambda: not shims(), timeout=10, what="the shims to exit")


# ---- Podman ----------------------------------------------------------------------------------

# This host withholds CAP_SYS_RESOURCE: Podman's default ulimits (raised to the hard limits)
# cannot be set here, so the tests ask for what the host gives.
PODMAN_RUN = ["run", "--network", "none", "--ulimit", "nofile=1024:1024",
              "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman)")
    base = tmp_path_factory.mktemp("podman")
    runc = write_launcher(base / "pyminidocker-runc")
    cmd = ["podman", "--root", f"{base}/storage", "--runroot", f"{base}/run",
           "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--storage-driver",
           "overlay", "--tmpdir", f"{base}/tmp", "--runtime", str(runc)]

    def run(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120,
                           check=False, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {args}: rc {r.returncode}: {r.stderr}")
        return r

    out = run("load", "-i", str(image_tar(base))).stdout
    image = out.strip().rsplit("Loaded image: ", 1)[-1].strip()
    yield run, image
    run("rm", "-a", "-f", check=False)
    run("rmi", "-a", "-f", check=False)
    unmount_under(base)  # containers/storage binds its own home privately
    remove_cgroup_parent("libpod_parent/conmon")  # podman puts conmon there
    remove_cgroup_parent("libpod_parent")
    assert not empty_default_parents(), "empty pyminidocker-runc parent cgroups left"


def test_podman_run_through_pyminidocker_runc(podman):
    run, image = podman
    r = run(*PODMAN_RUN, "--rm", image, "sh", "-c", "echo hi from podman; exit 5", check=False)
    assert (r.returncode, r.stdout) == (5, "hi from podman\n"), r.stderr
    r = run(*PODMAN_RUN, "--rm", "-t", image, "sh", "-c", "[ -t 0 ] && echo is-a-tty",
            stdin=subprocess.DEVNULL)
    assert r.stdout.strip() == "is-a-tty"
    run(*PODMAN_RUN, "-d", "--name", "pd1", image, "sleep", "30")
    r = run("exec", "pd1", "sh", "-c", "echo exec-ok; exit 6", check=False)
    assert (r.returncode, r.stdout) == (6, "exec-ok\n")
    assert "Up" in run("ps", "--filter", "name=pd1").stdout
    run("rm", "-f", "-t", "0", "pd1")
    assert run("ps", "-a", "-q").stdout == ""


# ---- dockerd ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    """dockerd with roots of its own, no bridge and no iptables (the host's network is not
    touched), pyminidocker-runc added as the runtime "pmd"; the busybox image loaded."""
    # /usr/local/bin/docker on this machine is a client only: Debian's is the one that matches
    if not shutil.which("dockerd") or not os.path.exists("/usr/bin/docker"):
        pytest.skip("docker.io is not installed (apt-get install docker.io)")
    base = Path(tempfile.mkdtemp(prefix="pmd-dockerd-", dir="/tmp"))  # sun_path: keep it short
    runc = write_launcher(base / "pyminidocker-runc")
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", f"{base}/data", "--exec-root", f"{base}/exec",
         "-H", f"unix://{sock}", "--pidfile", f"{base}/docker.pid", "--bridge=none",
         "--iptables=false", "--ip-masq=false", "--ip-forward=false",
         "--storage-driver", "overlay2", "--add-runtime", f"pmd={runc}",
         "--containerd-namespace", "pmdtest-docker",
         "--containerd-plugins-namespace", "pmdtest-docker-plugins"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    S.SERVER_PIDS.add(proc.pid)

    def docker(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(["/usr/bin/docker", "-H", f"unix://{sock}", *args],
                           capture_output=True, text=True, timeout=120, check=False, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {args}: rc {r.returncode}: {r.stderr}")
        return r

    try:
        S.wait_until(lambda: docker("version", check=False).returncode == 0, timeout=60,
                     what="dockerd to answer")
        layout = I.write_layout(base / "layout", {"latest": I.busybox_image()})
        subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:latest",
                        f"docker-archive:{base}/image.tar:{IMAGE}"], check=True)
        docker("load", "-i", f"{base}/image.tar")
        yield docker
    finally:
        docker("rm", "-f", *docker("ps", "-aq", check=False).stdout.split(), check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        S.SERVER_PIDS.discard(proc.pid)
        log.close()
        mounts = unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        remove_cgroup_parent("docker")
        assert not empty_default_parents(), "empty pyminidocker-runc parent cgroups left"
        # dockerd binds its data root over itself to make it shared where its parent mount is
        # private (a root made with pivot_root, as in the fresh-install test) and may leave
        # that bind behind: its own, not the runtime's
        leaked = [m for m in mounts if m != f"{base}/data"]
        assert not leaked, f"dockerd left mounts: {leaked}"


def test_docker_run_with_runtime_pmd(dockerd):
    docker = dockerd
    r = docker("run", "--runtime", "pmd", "--rm", "--network", "none", IMAGE, "sh", "-c",
               "echo hi from docker; exit 9", check=False)
    assert (r.returncode, r.stdout) == (9, "hi from docker\n"), r.stderr
    docker("run", "--runtime", "pmd", "-d", "--name", "dk1", "--network", "none", IMAGE,
           "sleep", "30")
    r = docker("exec", "dk1", "sh", "-c", "echo exec-ok; exit 4", check=False)
    assert (r.returncode, r.stdout) == (4, "exec-ok\n")
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", "dk1").stdout == "pmd\n"
    docker("rm", "-f", "dk1")
    assert docker("ps", "-aq").stdout == ""
    S.wait_until(lambda: not cgroup_dirs("dk1"), timeout=10, what="cgroups to go")
