"""Integration fixtures: real registries, fixture images pushed by skopeo, fault injection,
and a check after every test that nothing was left behind.

Registries (session-scoped, each a servers.Registry with .host "127.0.0.1:PORT", .url,
.storage, .creds "user:password" or None):
    registry         no auth
    registry_basic   htpasswd Basic auth, user BASIC_USER / BASIC_PASSWORD
    registry_token   auth: token, served by servers.TokenServer (.token_server), user
                     TOKEN_USER / TOKEN_PASSWORD; anonymous token requests are refused

Images (session-scoped, pushed once to `registry`; each a Pushed, see below):
    single           OCI, one gzip layer (the base rootfs)
    sharing          OCI, single's base layer + one more (for "Already exists")
    multi            OCI, 3 gzip layers: base; whiteout, opaque dir, hardlink, symlink,
                     setuid, uid 1000; one more file
    oci_index        OCI index: linux/amd64 + linux/arm64 (configs differ in /etc/arch) +
                     an attestation manifest (unknown/unknown)
    docker_list      the same two platforms as a Docker manifest list (skopeo --format v2s2)
    v2s2             single's image converted by skopeo to Docker schema2
    compressed       {"gzip": Pushed, "zstd": Pushed, "none": Pushed}, one layer each

Factories:
    publish(obj, repo, tag="latest", fmt="oci", all=False, registry=None) -> Pushed
        write obj (Image or Index) to a layout and push it; for per-test repos
    unique_repo() -> "t-<hex>": a repo name nobody else uses
    faulty_proxy(registry, mode, cut_after=..., parties=2) -> servers.FaultyProxy (closed at
        teardown; modes in servers.FaultyProxy)
"""
from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration import servers as S
from tests.integration import storecheck

BASIC_USER, BASIC_PASSWORD = "basicuser", "b4sic-Pass"
TOKEN_USER, TOKEN_PASSWORD = "tokenuser", "t0ken-Pass"

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(
    platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"

REQUIRED = ["docker-registry", "skopeo", "htpasswd", "zstd"]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = None
    if os.geteuid() != 0:
        reason = "integration tests need root"
    else:
        missing = [b for b in REQUIRED if not shutil.which(b)]
        if missing or not I.BUSYBOX.exists():
            reason = f"missing: {' '.join(missing) or '/bin/busybox'} (make deps)"
    if reason:
        for item in items:
            if Path(item.fspath).is_relative_to(here):
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Pushed:
    """What was pushed where: ref "HOST/REPO:TAG", the manifest (or index) digest the registry
    reports, and the object (`image` for the host's platform; `index` if it was a list)."""

    host: str
    repo: str
    tag: str
    digest: str
    image: I.Image
    index: I.Index | None = None

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repo}"

    @property
    def by_digest(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"

    def platform(self, arch: str) -> I.Image:
        assert self.index is not None
        return self.index.platform(arch)


# --------------------------------------------------------------------------------------------
# Registries


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    reg = S.start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry-basic")
    hp = S.htpasswd_file(d / "htpasswd", BASIC_USER, BASIC_PASSWORD)
    reg = S.start_registry(d, auth={"htpasswd": {"realm": "pmd-basic", "path": str(hp)}},
                           kind="basic", user=BASIC_USER, password=BASIC_PASSWORD)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry-token")
    ts = S.TokenServer(d, {TOKEN_USER: TOKEN_PASSWORD})
    try:
        reg = S.start_registry(d, auth=ts.auth_config(), kind="token", user=TOKEN_USER,
                               password=TOKEN_PASSWORD)
    except BaseException:
        ts.close()
        raise
    reg.token_server = ts
    try:
        yield reg
    finally:
        reg.close()


# --------------------------------------------------------------------------------------------
# Images


@pytest.fixture(scope="session")
def layouts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("layouts")


@pytest.fixture(scope="session")
def publish(layouts, registry):
    def publish(obj, repo: str, tag: str = "latest", fmt: str = "oci", all: bool = False,
                registry: S.Registry = registry) -> Pushed:
        lay = I.write_layout(layouts / f"{repo}-{tag}-{uuid.uuid4().hex[:6]}", {tag: obj})
        digest = I.push(lay, f"{registry.host}/{repo}:{tag}", fmt=fmt,
                        creds=registry.creds, all=all)
        if isinstance(obj, I.Index):
            return Pushed(registry.host, repo, tag, digest, obj.platform(HOST_ARCH), obj)
        return Pushed(registry.host, repo, tag, digest, obj)

    return publish


@pytest.fixture
def unique_repo():
    return lambda: "t-" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def base_layer() -> I.Layer:
    return I.make_layer(I.base_entries())


@pytest.fixture(scope="session")
def single(publish, base_layer) -> Pushed:
    return publish(I.build_image([base_layer]), "single", "v1")


@pytest.fixture(scope="session")
def sharing(publish, base_layer) -> Pushed:
    top = I.make_layer([I.Entry("etc", "dir", 0o755),
                        I.Entry("etc/sharing", data=b"on top of the base\n")])
    return publish(I.build_image([base_layer, top]), "sharing", "v1")


@pytest.fixture(scope="session")
def multi(publish, base_layer) -> Pushed:
    l2, l3 = (I.make_layer(e) for e in I.multi_entries())
    return publish(I.build_image([base_layer, l2, l3]), "multi", "v1")


def _arch_image(arch: str, docker: bool = False) -> I.Image:
    layer = I.make_layer(I.base_entries() + [I.Entry("etc/arch", data=f"{arch}\n".encode())])
    return I.build_image([layer], arch=arch, labels={"arch": arch}, docker=docker)


@pytest.fixture(scope="session")
def oci_index(publish) -> Pushed:
    idx = I.build_index([_arch_image("amd64"), _arch_image("arm64")], attestation=True)
    p = publish(idx, "multiarch", "oci", all=True)
    assert p.digest == idx.digest, "skopeo changed the index"
    return p


@pytest.fixture(scope="session")
def docker_list(publish) -> Pushed:
    idx = I.build_index([_arch_image("amd64"), _arch_image("arm64")])
    p = publish(idx, "multiarch", "docker", fmt="v2s2", all=True)
    _, mt, _ = I.registry_manifest(p.ref)
    assert mt == I.DOCKER_LIST, mt
    return p


@pytest.fixture(scope="session")
def v2s2(publish, base_layer) -> Pushed:
    p = publish(I.build_image([base_layer], labels={"format": "v2s2"}), "v2s2", "v1",
                fmt="v2s2")
    _, mt, _ = I.registry_manifest(p.ref)
    assert mt == I.DOCKER_MANIFEST, mt
    return p


@pytest.fixture(scope="session")
def compressed(publish) -> dict[str, Pushed]:
    out = {}
    for how in ("gzip", "zstd", "none"):
        layer = I.make_layer(I.base_entries(f"compressed with {how}\n".encode()), how)
        out[how] = publish(I.build_image([layer]), "compressed", how)
    return out


@pytest.fixture(scope="session")
def big(publish) -> Pushed:
    """An image of about 5 MiB (random, incompressible), for the full-disk test."""
    data = os.urandom(5 * 1024 * 1024)
    layer = I.make_layer([I.Entry("data", "dir", 0o755),
                          I.Entry("data/random.bin", data=data)])
    return publish(I.build_image([I.make_layer(I.base_entries()), layer]), "big", "v1")


# --------------------------------------------------------------------------------------------
# Fault injection


@pytest.fixture
def faulty_proxy():
    proxies: list[S.FaultyProxy] = []

    def make(registry: S.Registry, mode: str, cut_after: int = 64 * 1024,
             parties: int = 2) -> S.FaultyProxy:
        p = S.FaultyProxy(registry.host, mode, cut_after, parties=parties)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()


# --------------------------------------------------------------------------------------------
# One test module at a time on this host


@pytest.fixture(scope="module", autouse=True)
def _host_lock():
    """Hold a host-wide lock for the module's whole life. Bridges, firewall chains, cgroups and
    the leftover checks are host-wide, and every module ends with `system reset`: two suites
    (two checkouts on one machine) running modules at the same time would break each other's
    networks and see each other's containers as leaks. Modules of two suites interleave instead.
    A fresh root or VM has its own /run, so a suite run inside one takes its own lock."""
    path = os.environ.get("PMD_TEST_LOCK", "/run/pyminidocker-tests.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------
# After every test: no mounts, no processes, no staging dirs, a consistent store


def _server_pids() -> set[int]:
    pids = set(S.SERVER_PIDS)
    for p in list(pids):
        pids.update(S.children_of(p))
    return pids


@pytest.fixture(autouse=True)
def _leak_check(request, tmp_path):
    yield
    problems: list[str] = []
    me = os.getpid()

    def stray() -> list[int]:
        return [p for p in S.children_of(me) if p not in _server_pids()]

    try:
        S.wait_until(lambda: not stray(), timeout=5, what="child processes to exit")
    except TimeoutError:
        problems.append("processes left: " + "; ".join(
            f"{p} {S.proc_cmdline(p)}" for p in stray()))
    mounts = S.mounts_under(tmp_path)
    if mounts:
        problems.append(f"mounts left: {mounts}")
        for m in reversed(mounts):  # do not let one test's leak break the next ones
            subprocess.run(["umount", "-l", m], check=False)
    runner = request.node.funcargs.get("pmd")
    if runner is not None:
        roots: dict[Path, int] = {}
        for root, _args, rc in runner.calls:
            roots[root] = rc
        for root, last_rc in roots.items():
            if last_rc == 0:
                left = storecheck.leftovers(root)
                if left:
                    problems.append(f"{root}: staging/temporary entries after a successful "
                                    f"command: {left}")
            bad = storecheck.inconsistencies(root)
            if bad:
                problems.append(f"{root}: store inconsistent: {bad}")
    if problems:
        pytest.fail("left behind:\n" + "\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------------------------
# Containers


_SUBNETS_GIVEN: set[str] = set()


def free_subnet(prefix: str = "10.252") -> str:
    """A /24 under prefix that no route or address of the host uses, and that this test
    session has not handed out before: a store's default network (store_with_bb) has one
    too, and its bridge, so its route, exists only once a container used it."""
    import random

    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True).stdout
    for _ in range(100):
        net = f"{prefix}.{random.randrange(1, 254)}"
        if f"{net}." not in routes and net not in _SUBNETS_GIVEN:
            _SUBNETS_GIVEN.add(net)
            return f"{net}.0/24"
    pytest.skip(f"no free {prefix}.x.0/24 on this host")


def module_ctr(repo: str):
    """A module-scoped `ctr` fixture: store_with_bb's runner, and at the module's end the
    check that no container or cgroup of it is left."""
    @pytest.fixture(scope="module")
    def ctr(request, tmp_path_factory, publish, pmd_factory):
        run = store_with_bb(repo, request, tmp_path_factory, publish, pmd_factory)
        yield run
        assert remove_leftovers(run) == [], "containers left behind by the tests"
        assert not cgroups_left(), "cgroups left behind"
    return ctr


def store_with_bb(repo: str, request, tmp_path_factory, publish, pmd_factory,
                  root: Path | None = None):
    """A runner on a fresh store (at root, a new directory by default) that holds
    images.busybox_image() as `bb` (pulled from the test registry), for a module of container
    tests. The store's default network gets a
    bridge and subnet of its own (run.bridge), so that the tests never touch a real pmd0, and
    everything the engine added to the host is removed when the module is done."""
    pushed = publish(I.busybox_image(), repo, "v1")
    run = pmd_factory(root or tmp_path_factory.mktemp(f"{repo}-store"))
    run.bridge = f"pmdt{uuid.uuid4().hex[:8]}"
    (run.root / "config.json").write_text(
        f'{{"default-subnet": "{free_subnet()}", "default-bridge": "{run.bridge}"}}')
    run("pull", "-q", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    run("tag", f"{pushed.host}/{pushed.repo}:{pushed.tag}", "bb")

    def reset() -> None:
        run("system", "reset", "-f")
        assert not Path(f"/sys/class/net/{run.bridge}").exists(), "the bridge is left"
        assert cgroups_left() == [], "container cgroups are left"
        parents = [*Path("/sys/fs/cgroup").glob("*/pyminidocker"),
                   *Path("/sys/fs/cgroup").glob("pyminidocker")]
        assert parents == [], "the engine's parent cgroups are left"

    request.addfinalizer(reset)
    return run


def veths_settled(before: str | None = None, timeout: float = 5.0) -> str:
    """The host's veths (`ip -o link show type veth`) once the engine's are gone, or are back
    to `before`: a stopped container's pair goes with its network namespace, which the kernel
    dismantles asynchronously, a few milliseconds after the last process exited. Returns the
    listing as last seen (the caller asserts on it), after at most `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"],
                               capture_output=True, text=True, check=True).stdout
        settled = veths == before if before is not None else " pmd" not in veths
        if settled or time.monotonic() > deadline:
            return veths
        time.sleep(0.02)


def remove_leftovers(run) -> list[str]:
    """At the end of a module: remove the containers its tests left in run's store, so that
    nothing outlives the module, and return their ids for the module to fail on. The store's
    containers/ must be empty afterwards (every rm removed its directory)."""
    leftover = run("ps", "-a", "-q").stdout.split()
    for cid in leftover:
        run("rm", "-f", cid, check=False)
    cdir = run.root / "containers"
    assert not cdir.is_dir() or list(cdir.iterdir()) == [], "container directories left"
    return leftover


def cgroups_left() -> list[str]:
    """Container cgroups of the engine on this host (v1: under every controller; v2)."""
    base = Path("/sys/fs/cgroup")
    return [str(p) for p in [*base.glob("*/pyminidocker/*"), *base.glob("pyminidocker/*")]
            if p.is_dir()]


def drain_pty(master: int, proc: subprocess.Popen, on_output=None, timeout: float = 30) -> str:
    """What a process on a pty (its master end here) writes until it exits; on_output(out)
    is called with the output so far after each read (to type at a prompt)."""
    import select
    import time

    out = b""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if on_output is not None:
            on_output(out)
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    proc.wait(timeout=timeout)
    return out.decode(errors="replace")
