"""The per-container network path (csrc/netlink.c) from Python, as root.

Each test gets a bridge of its own (pmdt-<hex>, on a free 10.250.X.0/24 that no host route
or address overlaps) and "containers" spawned held in new namespaces (rootfs None, /bin/sleep),
as the runtime does before releasing a container's init. Traffic stays on that bridge: pings
go only to the test's own addresses. `ip` is used only to build and inspect the fixtures;
everything is removed in finally blocks, and each test's teardown asserts that no bridge,
veth, process or fd of the test is left.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import random
import statistics
import subprocess
import threading
import time
import uuid

import pytest

from pyminidocker import shim as n

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs /bin/busybox (ping)"),
]

NS = n.CLONE_NEWNET | n.CLONE_NEWNS | n.CLONE_NEWPID


# ---- helpers -----------------------------------------------------------------------------------

def ip(*args: str, ns: int | None = None, check: bool = True) -> str:
    cmd = ["ip", *args] if ns is None else ["nsenter", "-t", str(ns), "-n", "ip", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def links(*, ns: int | None = None, kind: str | None = None) -> set[str]:
    """Interface names (without @peer) in the host's netns or in the netns of pid ns."""
    out = ip("-o", "link", "show", *(("type", kind) if kind else ()), ns=ns)
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def link(name: str, *, ns: int | None = None) -> str:
    return ip("-o", "-d", "link", "show", "dev", name, ns=ns)


def ping(pid: int, addr: str) -> bool:
    """One ping from the netns of pid (busybox: the host may have no ping of its own)."""
    r = subprocess.run(["nsenter", "-t", str(pid), "-n", "/bin/busybox", "ping", "-c1", "-W2",
                        addr], capture_output=True, text=True, check=False)
    return r.returncode == 0


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes or has an address in (all tables), default excluded."""
    nets = []
    for line in ip("-4", "-o", "route", "show", "table", "all").splitlines():
        toks = line.split()
        if toks and toks[0] in ("local", "broadcast", "unicast", "anycast", "multicast",
                                "blackhole", "unreachable", "prohibit", "throw", "nat"):
            toks = toks[1:]
        if toks and toks[0] != "default":
            try:
                nets.append(ipaddress.ip_network(toks[0], strict=False))
            except ValueError:
                pass
    for line in ip("-4", "-o", "addr", "show").splitlines():
        nets.append(ipaddress.ip_interface(line.split()[3]).network)
    return nets


def free_subnet() -> ipaddress.IPv4Network:
    taken = host_networks()
    for _ in range(100):
        net = ipaddress.ip_network(f"10.250.{random.randrange(1, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    pytest.skip("no free 10.250.X.0/24 on this host")


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


# ---- fixtures ----------------------------------------------------------------------------------

class Net:
    """The test's bridge, subnet and host interface names; addr(i) is the subnet's host i."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.bridge = f"pmdt-{tag}"
        self.subnet = free_subnet()
        self.gateway = self.addr(1)
        self.prefix = self.subnet.prefixlen
        self._n = 0

    def addr(self, i: int) -> str:
        return str(self.subnet.network_address + i)

    def ifname(self) -> str:
        """A fresh host-end name of this test (pmdv<tag><n>: 11-12 bytes, below IFNAMSIZ)."""
        self._n += 1
        return f"pmdv{self.tag}{self._n}"

    def mine(self, names: set[str]) -> set[str]:
        return {x for x in names if self.tag in x}


@pytest.fixture
def net():
    fds = sorted(os.listdir("/proc/self/fd"))
    net = Net()
    ip("link", "add", net.bridge, "type", "bridge")
    try:
        ip("addr", "add", f"{net.gateway}/{net.prefix}", "dev", net.bridge)
        ip("link", "set", net.bridge, "up")
        yield net
    finally:
        for name in net.mine(links(kind="veth")):
            ip("link", "del", name, check=False)
        ip("link", "del", net.bridge, check=False)
    assert net.mine(links()) == set(), "a bridge or veth of the test was left on the host"
    # new ones only: an fd of an earlier test may be closed meanwhile (its object collected;
    # Debian 13's Python 3.13 did, and this check failed on an fd fewer)
    assert set(os.listdir("/proc/self/fd")) <= set(fds), "an fd was left open"


@pytest.fixture
def containers():
    """spawn() -> a held Process in new net/mount/pid namespaces running /bin/sleep 60 once
    released; all are killed and reaped at teardown."""
    procs: list[n.Process] = []

    def spawn(hold: bool = True) -> n.Process:
        p = n.spawn(n.SpawnSpec(argv=["/bin/sleep", "60"], namespaces=NS, hold=hold))
        procs.append(p)
        return p

    try:
        yield spawn
    finally:
        # Newest first: a held child inherited the release pipes of those spawned before it
        # (they are close-on-exec, and it has not exec'd), so an older one sees EOF on its
        # pipe only once every younger held child has exited.
        for p in reversed(procs):
            if p.held:
                p.abort()
            elif not gone(p.pid):
                try:
                    os.kill(p.pid, 9)
                    p.wait()
                except (ProcessLookupError, ChildProcessError):
                    pass
    assert all(gone(p.pid) for p in procs), "a container process was left"


def attach(net: Net, p: n.Process, i: int, **kw) -> str:
    host = kw.pop("host_ifname", None) or net.ifname()
    n.net_attach(p.pid, net.bridge, host, net.addr(i), net.prefix,
                 **{"gateway": net.gateway, **kw})
    return host


def assert_nothing_left(net: Net, p: n.Process | None = None, ifname: str = "eth0") -> None:
    assert net.mine(links(kind="veth")) == set(), "a veth was left on the host"
    if p is not None and not gone(p.pid):
        assert ifname not in links(ns=p.pid), "a veth was left in the container"


# ---- what attach sets up -----------------------------------------------------------------------

def test_two_containers_on_a_bridge(net, containers):
    a, b = containers(), containers()
    ha = attach(net, a, 2)
    hb = attach(net, b, 3)
    a.release()
    b.release()

    for p, i, h in ((a, 2, ha), (b, 3, hb)):
        eth0 = link("eth0", ns=p.pid)
        assert ",UP," in eth0 or ",UP>" in eth0
        assert "state UP" in eth0
        assert "veth" in eth0
        lo = link("lo", ns=p.pid)
        assert "UP" in lo.split(">")[0]
        addrs = ip("-4", "-o", "addr", "show", "dev", "eth0", ns=p.pid)
        assert f"inet {net.addr(i)}/{net.prefix} brd {net.subnet.broadcast_address} " in addrs
        assert ip("-4", "route", "show", "default", ns=p.pid).split() == [
            "default", "via", net.gateway, "dev", "eth0"]
        assert links(ns=p.pid) == {"lo", "eth0"}
        # the host end: a port of the bridge, up, with eth0 as its peer
        host = link(h)
        assert f"master {net.bridge} " in host
        assert "state UP" in host
        assert "veth" in host and "bridge_slave" in host
        # both ends take the bridge's MTU by default
        assert " mtu 1500 " in host and " mtu 1500 " in eth0

    assert ping(a.pid, net.addr(3))
    assert ping(b.pid, net.addr(2))
    assert ping(a.pid, net.gateway)
    assert ping(b.pid, net.gateway)

    n.net_detach(ha)
    assert ha not in links() and "eth0" not in links(ns=a.pid)
    n.net_detach(ha)  # idempotent
    n.net_detach(hb)
    assert_nothing_left(net)


def test_mtu_mac_and_no_gateway(net, containers):
    p = containers()
    h = attach(net, p, 9, gateway=None, mtu=1400, mac="02:42:0A:fa:00:09",
               container_ifname="net1")
    eth = link("net1", ns=p.pid)
    assert " mtu 1400 " in eth and "link/ether 02:42:0a:fa:00:09 " in eth
    assert " mtu 1400 " in link(h)
    assert ip("-4", "route", "show", "default", ns=p.pid).strip() == ""
    assert ping(p.pid, net.gateway)  # on-link, no route needed
    n.net_detach(h)
    assert_nothing_left(net, p, "net1")


def test_caller_thread_stays_in_its_netns(net, containers):
    """The container-side socket is made on a thread of C's own: the caller's thread (and any
    other) must not end up in the container's netns."""
    mine = os.readlink("/proc/thread-self/ns/net")
    p = containers()
    h = attach(net, p, 4)
    assert os.readlink("/proc/thread-self/ns/net") == mine
    for tid in os.listdir("/proc/self/task"):
        assert os.readlink(f"/proc/self/task/{tid}/ns/net") == mine
    n.net_detach(h)


def test_parallel_attach_from_threads(net, containers):
    """Four Python threads attach four containers at once (the GIL is released in C)."""
    ps = [containers() for _ in range(4)]
    names = [net.ifname() for _ in ps]
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            n.net_attach(ps[i].pid, net.bridge, names[i], net.addr(10 + i), net.prefix,
                         net.gateway)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    ts = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    for i, p in enumerate(ps):
        assert f"inet {net.addr(10 + i)}/" in ip("-4", "-o", "addr", "show", "dev", "eth0",
                                                  ns=p.pid)
    assert ping(ps[0].pid, net.addr(13))
    for h in names:
        n.net_detach(h)
    assert_nothing_left(net)


# ---- failures: errno, and nothing left behind -------------------------------------------------

def test_bridge_missing(net, containers):
    p = containers()
    missing = f"pmdt-no{net.tag}"
    with pytest.raises(OSError) as ei:
        n.net_attach(p.pid, missing, net.ifname(), net.addr(2), net.prefix, net.gateway)
    assert ei.value.errno == errno.ENODEV
    assert ei.value.op == "find bridge"
    assert ei.value.filename == missing
    assert_nothing_left(net, p)


def test_master_not_a_bridge(net, containers):
    """A master that cannot take ports: the kernel refuses the whole request and undoes the
    pair it had registered, so nothing is left either."""
    p = containers()
    dummy = f"pmdd{net.tag}"
    # any device that cannot be a master will do; kernels lack one module or the other
    if not any(ip("link", "add", dummy, "type", kind, check=False) == "" and dummy in links()
               for kind in ("dummy", "ifb")):
        pytest.skip("neither dummy nor ifb devices can be created here")
    try:
        with pytest.raises(OSError) as ei:
            n.net_attach(p.pid, dummy, net.ifname(), net.addr(2), net.prefix, net.gateway)
        assert ei.value.op == "create veth"
        assert ei.value.errno in (errno.EOPNOTSUPP, errno.EINVAL)
        assert dummy in ei.value.filename
        assert_nothing_left(net, p)
    finally:
        ip("link", "del", dummy, check=False)


def test_pid_gone(net, containers):
    p = containers(hold=False)
    os.kill(p.pid, 9)
    p.wait()
    with pytest.raises(OSError) as ei:
        n.net_attach(p.pid, net.bridge, net.ifname(), net.addr(2), net.prefix, net.gateway)
    assert ei.value.errno in (errno.ENOENT, errno.ESRCH)
    assert str(p.pid) in ei.value.filename
    assert_nothing_left(net)


def test_pid_in_our_own_netns(net):
    """A pid without a netns of its own (here: ours) is refused before anything is made: the
    host must never get an eth0, an address or a default route from a wrong pid."""
    with pytest.raises(OSError) as ei:
        n.net_attach(os.getpid(), net.bridge, net.ifname(), net.addr(2), net.prefix,
                     net.gateway, container_ifname=f"pmdc{net.tag}")
    assert ei.value.errno == errno.EINVAL and ei.value.op == "netns pid"
    assert f"pmdc{net.tag}" not in ip("-4", "route", "show", "table", "all")
    assert net.mine(links()) == {net.bridge}
    assert_nothing_left(net)


@pytest.mark.parametrize("field,value,op", [
    ("address", "10.250.0.300", "address"),
    ("address", "not-an-ip", "address"),
    ("address", "fd00::5", "address"),          # IPv4 only, for now
    ("prefix_len", 33, "prefix length"),
    ("prefix_len", 0, "prefix length"),
    ("gateway", "10.250.0", "gateway"),
    ("mac", "02:42:0a:fa:00", "mac address"),
    ("mac", "01:00:5e:00:00:01", "mac address"),  # multicast
    ("mac", "00:00:00:00:00:00", "mac address"),
    ("mac", "+2:42:0a:fa:00:09", "mac address"),
    ("mtu", -1, "mtu"),
    ("host_ifname", "a" * 16, "interface name"),
    ("host_ifname", "has space", "interface name"),
    ("container_ifname", "", "interface name"),
    ("bridge", "a/b", "bridge name"),
])
def test_invalid_argument(net, containers, field, value, op):
    p = containers()
    kw = {"pid": p.pid, "bridge": net.bridge, "host_ifname": net.ifname(),
          "address": net.addr(2), "prefix_len": net.prefix, "gateway": net.gateway}
    kw[field] = value
    with pytest.raises(OSError) as ei:
        n.net_attach(**kw)
    assert ei.value.errno == errno.EINVAL
    assert ei.value.op == op
    assert_nothing_left(net, p)


def test_host_ifname_exists(net, containers):
    a, b = containers(), containers()
    h = attach(net, a, 2)
    with pytest.raises(FileExistsError) as ei:
        attach(net, b, 3, host_ifname=h)
    assert ei.value.errno == errno.EEXIST and ei.value.op == "create veth"
    assert h in ei.value.filename
    # the existing pair, not ours, is untouched; b got nothing
    assert "eth0" in links(ns=a.pid) and h in links(kind="veth")
    assert "eth0" not in links(ns=b.pid)
    # a name taken by something else than a veth: the bridge itself, which must survive
    with pytest.raises(FileExistsError):
        attach(net, b, 3, host_ifname=net.bridge)
    assert net.bridge in links()
    n.net_detach(h)
    assert_nothing_left(net, b)


def test_container_ifname_exists(net, containers):
    p = containers()
    with pytest.raises(FileExistsError) as ei:
        attach(net, p, 2, container_ifname="lo")
    assert ei.value.op == "create veth"
    assert_nothing_left(net)
    assert links(ns=p.pid) == {"lo"}


def test_failure_after_creation_deletes_the_pair(net, containers):
    """A gateway off the subnet fails the last step (the route): the pair made before is
    deleted, on both sides."""
    p = containers()
    with pytest.raises(OSError) as ei:
        attach(net, p, 2, gateway="10.249.0.1")
    assert ei.value.op == "add route"
    assert ei.value.errno in (errno.ENETUNREACH, errno.EINVAL)
    assert "10.249.0.1" in ei.value.filename
    assert "(kernel: " in ei.value.filename  # the extended ack's reason comes along
    assert_nothing_left(net, p)
    # and the container can be attached afterwards as if nothing happened
    h = attach(net, p, 2)
    assert ping(p.pid, net.gateway)
    n.net_detach(h)


def test_python_argument_checks(net, containers):
    p = containers()
    with pytest.raises(ValueError):
        n.net_attach(p.pid, net.bridge, "x\0y", net.addr(2), net.prefix)
    with pytest.raises(TypeError):
        n.net_attach(p.pid, net.bridge, None, net.addr(2), net.prefix)  # type: ignore[arg-type]
    assert_nothing_left(net, p)


# ---- detach ------------------------------------------------------------------------------------

def test_detach_is_idempotent_and_deletes_only_veths(net):
    n.net_detach(f"pmdv{net.tag}x")  # never existed: fine
    with pytest.raises(OSError) as ei:
        n.net_detach(net.bridge)
    assert ei.value.errno == errno.EINVAL and "not a veth" in ei.value.filename
    assert net.bridge in links()
    with pytest.raises(OSError) as ei:
        n.net_detach("")
    assert ei.value.errno == errno.EINVAL


def test_pair_gone_with_the_container(net, containers):
    p = containers()
    h = attach(net, p, 2)
    p.release()
    os.kill(p.pid, 9)
    p.wait()
    # the netns is torn down asynchronously (cleanup_net runs on a workqueue)
    deadline = time.monotonic() + 10
    while h in links() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert h not in links()
    n.net_detach(h)  # already gone: success
    assert_nothing_left(net)


# ---- speed -------------------------------------------------------------------------------------

def test_attach_time(net, containers):
    """Median attach time over 50 attach/detach cycles on one held container."""
    p = containers()
    times = []
    for _ in range(50):
        h = net.ifname()
        t0 = time.perf_counter()
        n.net_attach(p.pid, net.bridge, h, net.addr(2), net.prefix, net.gateway)
        times.append(time.perf_counter() - t0)
        n.net_detach(h)
    med = statistics.median(times) * 1e3
    print(f"\nnet_attach: median {med:.2f} ms, min {min(times) * 1e3:.2f} ms, "
          f"max {max(times) * 1e3:.2f} ms over {len(times)} cycles")
    assert med < 50, f"attach median {med:.1f} ms"
    assert_nothing_left(net, p)
