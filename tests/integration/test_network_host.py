"""pyminidocker.network against the real host (root): bridges made with pyroute2, rules in
iptables, sysctls, a real route to avoid, a real listening socket. No packet is sent.

Every test uses its own bridge names ("pmdt-<hex>") and a fresh store, removes what it made in
a finally block, and the autouse fixture then checks that none of its bridges or tagged rules
remain; when the host had no PMD line in iptables-save before the test, none may remain after.
(If another run of the engine owns PMD rules on this host, the test still checks its own.)
"""
from __future__ import annotations

import multiprocessing
import os
import shlex
import shutil
import socket
import subprocess
import uuid
from collections import Counter
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pyminidocker.errors import Conflict, PmdError
from pyminidocker.network import bridge, firewall, ipam, networks, ports
from pyminidocker.store import Store

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def iptables_save() -> list[str]:
    """Its lines without the "# Generated ... on <time>" comments."""
    return [line for line in subprocess.run(["iptables-save"], capture_output=True, text=True,
                                            check=True).stdout.splitlines()
            if not line.startswith("#")]


def pmd_lines() -> list[str]:
    return [line for line in iptables_save() if "PMD" in line]


def links() -> dict[str, str]:
    """name -> the whole `ip -o -d link` line."""
    out = subprocess.run(["ip", "-o", "-d", "link"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(": ")[1].split("@")[0]: line for line in out.splitlines()}


def ours_bridges() -> list[str]:
    return [n for n, line in links().items() if "alias pyminidocker" in line]


class Host:
    """What a test made: bridge names to check and a store; names() gives fresh bridge names."""

    def __init__(self, root: Path):
        self.store = Store(root)
        self.bridges: list[str] = []
        self.extra_links: list[str] = []

    def bridge(self) -> str:
        name = f"pmdt-{uuid.uuid4().hex[:8]}"
        self.bridges.append(name)
        return name

    def network(self, name: str = "net", **kw) -> networks.Network:
        return networks.create_network(self.store, name, bridge=self.bridge(), **kw)


def nft_comments() -> list[str]:
    """Comments of the rules in the nftables fallback's table (none if there is no table)."""
    from pyminidocker.network import nft as network_nft

    return [c for _, _, c in network_nft.rules()] if shutil.which("nft") else []


@pytest.fixture
def host(root):
    clean_before = not pmd_lines()
    nft_clean_before = not nft_comments()
    h = Host(root)
    try:
        yield h
    finally:
        for net in networks.list_networks(h.store):
            bridge.remove_network_host_state(net)
        for name in h.extra_links:
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
    left_links = [b for b in h.bridges + h.extra_links if b in links()]
    left_rules = [line for line in iptables_save() if any(f"pmd:{b}:" in line for b in h.bridges)]
    assert not left_links, f"links left: {left_links}"
    assert not left_rules, f"rules left: {left_rules}"
    if clean_before:
        assert pmd_lines() == [], "PMD rules left in iptables-save"
    assert not [c for c in nft_comments() if any(f"pmd:{b}:" in c for b in h.bridges)]
    if nft_clean_before:
        assert nft_comments() == [], "nft table pyminidocker left"


def tagged(name: str) -> list[str]:
    return [line for line in iptables_save() if f'"pmd:{name}:' in line]


def sysctl(path: str) -> str:
    return Path("/proc/sys", path).read_text().strip()


# --------------------------------------------------------------------------------------------


def test_ensure_bridge_twice_one_bridge_rules_once(host):
    net = host.network()
    bridge.ensure_bridge(net)
    first = iptables_save()
    bridge.ensure_bridge(net)
    assert iptables_save() == first  # nothing added the second time

    line = links()[net.bridge]
    assert " bridge " in line and "alias pyminidocker" in line and ",UP" in line
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", net.bridge],
                           capture_output=True, text=True, check=True).stdout
    assert f"inet {net.gateway}/{net.prefix_len} " in addrs and addrs.count("inet ") == 1
    assert sysctl("net/ipv4/ip_forward") == "1"
    assert sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet") == "1"

    mine = tagged(net.bridge)
    assert len(mine) == len(set(mine)) == len(firewall.network_rules(net)) == 6
    assert any(f"-A PMD-POSTROUTING -s {net.subnet} ! -o {net.bridge} " in x and
               x.endswith("-j MASQUERADE") for x in mine)
    assert any(x.startswith(f"-A PMD-FORWARD -i {net.bridge} ! -o {net.bridge} ") for x in mine)
    assert any(f"-o {net.bridge} -m conntrack --ctstate RELATED,ESTABLISHED" in x for x in mine)
    counts = Counter(iptables_save())
    for jump in ("-A POSTROUTING -j PMD-POSTROUTING", "-A FORWARD -j PMD-FORWARD",
                 "-A INPUT -j PMD-INPUT",
                 "-A PREROUTING -m addrtype --dst-type LOCAL -j PMD-DNAT",
                 "-A OUTPUT -m addrtype --dst-type LOCAL -j PMD-DNAT"):
        assert counts[jump] == 1, jump

    # a rule or a jump deleted behind our back (a firewall reload) is put back
    masq = next(x for x in mine if x.startswith("-A PMD-POSTROUTING -s " + net.subnet))
    subprocess.run(["iptables", "-w", "-t", "nat", "-D", *shlex.split(masq)[1:]], check=True)
    subprocess.run(["iptables", "-w", "-D", "FORWARD", "-j", "PMD-FORWARD"], check=True)
    bridge.ensure_bridge(net)
    assert sorted(iptables_save()) == sorted(first)

    bridge.remove_network_host_state(net)
    assert net.bridge not in links()
    assert tagged(net.bridge) == []
    bridge.remove_network_host_state(net)  # idempotent


def test_existing_bridge_is_reused_and_a_non_bridge_refused(host):
    net = host.network()
    subprocess.run(["ip", "link", "add", net.bridge, "type", "bridge"], check=True)
    bridge.ensure_bridge(net)  # adds the address, brings it up
    assert ",UP" in links()[net.bridge]
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", net.bridge],
                         capture_output=True, text=True, check=True).stdout
    assert f"{net.gateway}/{net.prefix_len}" in out

    other = host.network("other")
    peer = f"pmdt-p{uuid.uuid4().hex[:6]}"
    host.extra_links += [other.bridge, peer]
    subprocess.run(["ip", "link", "add", other.bridge, "type", "veth", "peer", "name", peer],
                   check=True)
    with pytest.raises(Conflict, match="is a veth, not a bridge"):
        bridge.ensure_bridge(other)
    assert " veth " in links()[other.bridge]  # left alone


def test_publish_and_unpublish(host):
    net = host.network()
    bridge.ensure_bridge(net)
    base = tagged(net.bridge)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    # the second has no host port: publish() picks one
    wanted = ports.parse_publish(f"127.0.0.1:{free}:80") + ports.parse_publish("53/udp")
    done = ports.publish(net, _addr(net, 2), wanted)
    assert done[0] == wanted[0] and done[1].host_port > 0
    dnat = [x for x in iptables_save() if x.startswith("-A PMD-DNAT ")]
    cip = _addr(net, 2)
    assert any(f"-d 127.0.0.1/32 -p tcp -m tcp --dport {free} " in x and
               x.endswith(f"--to-destination {cip}:80") for x in dnat)
    assert any(f"-p udp -m udp --dport {done[1].host_port} " in x and " -d " not in x and
               x.endswith(f"--to-destination {cip}:53") for x in dnat)
    assert any(f"-A PMD-FORWARD -d {cip}/32 ! -i {net.bridge} -o {net.bridge} -p tcp" in x
               for x in iptables_save())
    assert len(tagged(net.bridge)) == len(base) + 6
    with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{free} failed: port is already "
                                       "allocated"):
        ports.publish(net, _addr(net, 3), [ports.PortMapping("", free, 81, "tcp")])

    ports.unpublish(net, cip, done)
    assert tagged(net.bridge) == base
    ports.unpublish(net, cip, done)  # idempotent

    # without the list: every port of one container goes, another container's stay
    other = _addr(net, 25)
    ports.publish(net, cip, [ports.PortMapping("127.0.0.1", 0, 80, "tcp"),
                         ports.PortMapping("", 0, 81, "udp")])
    kept = ports.publish(net, other, [ports.PortMapping("127.0.0.1", 0, 80, "tcp")])
    ports.unpublish_all(net, cip)
    assert len(tagged(net.bridge)) == len(base) + 3
    assert not [x for x in tagged(net.bridge) if f"{cip}:" in x or f"{cip}/32" in x]
    ports.unpublish(net, other, kept)
    assert tagged(net.bridge) == base


def _addr(net: networks.Network, n: int) -> str:
    return str(IPv4Network(net.subnet).network_address + n)


def test_port_in_use_on_the_host(host):
    net = host.network()
    bridge.ensure_bridge(net)
    base = tagged(net.bridge)
    with socket.socket() as listener, socket.socket() as free_sock:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        free_sock.bind(("127.0.0.1", 0))
        free = free_sock.getsockname()[1]
        free_sock.close()
        for hip in ("127.0.0.1", ""):  # the wildcard overlaps the listener's address
            with pytest.raises(Conflict, match=f"Bind for {hip or '0.0.0.0'}:{port} failed: "
                                               "port is already in use"):
                ports.publish(net, _addr(net, 2), [ports.PortMapping(hip, port, 80, "tcp")])
        # all or nothing: the free port published first is taken back
        with pytest.raises(Conflict):
            ports.publish(net, _addr(net, 2), [ports.PortMapping("127.0.0.1", free, 80, "tcp"),
                                           ports.PortMapping("127.0.0.1", port, 81, "tcp")])
    assert tagged(net.bridge) == base
    assert not [x for x in iptables_save() if x.startswith("-A PMD-DNAT ")
                and f"pmd:{net.bridge}:" in x]


def test_default_subnet_skips_a_real_route(host):
    first = networks.choose_subnet(networks.POOL, [*networks.host_routes(), *(IPv4Network(n.subnet)
                                                        for n in networks.list_networks(host.store))])
    # a bridge of the test's own (no "pyminidocker" alias) holds the route: no dummy module here
    dummy = f"pmdt-r{uuid.uuid4().hex[:6]}"
    host.extra_links.append(dummy)
    subprocess.run(["ip", "link", "add", dummy, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", dummy, "up"], check=True)
    subprocess.run(["ip", "route", "add", str(first), "dev", dummy], check=True)
    assert first in networks.host_routes()
    assert first not in networks.host_routes([dummy])
    from pyminidocker.config import Config
    cfg = Config(root=host.store.root, default_bridge=host.bridge(), default_subnet=str(first))
    net = networks.default_network(host.store, cfg)
    assert not IPv4Network(net.subnet).overlaps(first)
    assert IPv4Network(net.subnet) in networks.POOL
    user = networks.create_network(host.store, "user", bridge=host.bridge())
    assert not IPv4Network(user.subnet).overlaps(first)
    assert not IPv4Network(user.subnet).overlaps(IPv4Network(net.subnet))


def test_remove_network_in_use_keeps_everything(host):
    net = host.network("busy")
    bridge.ensure_bridge(net)
    # a container that exists: the reconciliation frees the addresses of those that do not
    os.makedirs(os.path.join(host.store.root, "containers", "a" * 64))
    ipam.allocate(host.store, net, "a" * 64)
    before = tagged(net.bridge)
    with pytest.raises(Conflict, match="has active endpoints"):
        networks.remove_network(host.store, "busy")
    assert net.bridge in links() and tagged(net.bridge) == before
    ipam.release(host.store, net, "a" * 64)
    networks.remove_network(host.store, "busy")
    assert net.bridge not in links() and tagged(net.bridge) == []
    assert networks.list_networks(host.store) == []


def _ensure_in_child(root: str, name: str) -> None:
    net = networks.NetworkStore(Store(root)).get(name)
    bridge.ensure_bridge(net)


def test_concurrent_ensure_bridge(host):
    net = host.network()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ensure_in_child, args=(str(host.store.root), net.name))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert list(links()).count(net.bridge) == 1
    mine = tagged(net.bridge)
    assert len(mine) == len(set(mine)) == 6
    assert Counter(iptables_save())["-A FORWARD -j PMD-FORWARD"] == 1


def _allocate_in_child(root: str, worker: int, out) -> None:
    st = Store(root)
    out.put([ipam.allocate(st, "net", f"{worker:032x}{i:032x}")[0] for i in range(10)])


def test_concurrent_ipam_four_processes(host):
    host.network(subnet="10.254.77.0/26")  # 61 hosts for 40 containers
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_allocate_in_child, args=(str(host.store.root), w, q))
             for w in range(4)]
    for p in procs:
        p.start()
    addrs = [a for _ in procs for a in q.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(addrs) == len(set(addrs)) == 40


def test_reset_host_removes_everything(host, monkeypatch):
    if pmd_lines() or ours_bridges() or nft_comments():
        pytest.skip("another engine's networks are on this host; reset_host would remove them")
    a, b = host.network("a"), host.network("b")
    for net in (a, b):
        bridge.ensure_bridge(net)
    if shutil.which("nft"):  # and one network made by the nftables fallback
        with monkeypatch.context() as m:
            m.setattr(firewall, "backend", lambda: "nft")
            bridge.ensure_bridge(host.network("c"))
        assert nft_comments()
    ports.publish(a, _addr(a, 2), [ports.PortMapping("127.0.0.1", 0, 80, "tcp")])
    # a chain this version does not know (as an older one might have left), jumped to
    try:
        subprocess.run(["iptables", "-w", "-N", "PMD-OLD"], check=True)
        subprocess.run(["iptables", "-w", "-A", "FORWARD", "-i", a.bridge, "-j", "PMD-OLD"],
                       check=True)
        subprocess.run(["iptables", "-w", "-A", "PMD-OLD", "-j", "PMD-FORWARD"], check=True)
        assert pmd_lines() and set(ours_bridges()) == set(host.bridges)
        bridge.reset_host(host.store)
        assert pmd_lines() == [] and ours_bridges() == [] and nft_comments() == []
        bridge.reset_host()  # nothing left to do
    finally:
        subprocess.run(["iptables", "-w", "-D", "FORWARD", "-i", a.bridge, "-j", "PMD-OLD"],
                       capture_output=True, check=False)
        subprocess.run(["iptables", "-w", "-F", "PMD-OLD"], capture_output=True, check=False)
        subprocess.run(["iptables", "-w", "-X", "PMD-OLD"], capture_output=True, check=False)


def test_missing_iptables_is_a_clear_error(host, monkeypatch):
    net = host.network()
    monkeypatch.setattr(firewall, "which", lambda name: None)
    with pytest.raises(PmdError, match="neither iptables nor nft found"):
        bridge.ensure_bridge(net)
    monkeypatch.undo()
    bridge.remove_network_host_state(net)  # the bridge was made before iptables was needed


def test_connect_and_disconnect(host, monkeypatch):
    from pyminidocker.config import Config

    cfg = Config(root=host.store.root, default_bridge=host.bridge())
    ep = networks.connect(host.store, "bridge", "a" * 64, cfg)
    net = networks.NetworkStore(host.store).get("bridge")
    assert (ep.network, ep.bridge, ep.gateway, ep.prefix_len) == \
        ("bridge", cfg.default_bridge, net.gateway, net.prefix_len)
    assert ep.address == _addr(net, 2) and ep.bridge in links()
    assert networks.connect(host.store, "bridge", "a" * 64, cfg) == ep  # idempotent
    networks.disconnect(host.store, "bridge", "a" * 64)
    assert networks.NetworkStore(host.store).allocations("bridge") == {}
    networks.disconnect(host.store, "gone", "a" * 64)  # an unknown network is fine

    # the host cannot be set up: no address stays allocated
    monkeypatch.setattr(firewall, "which", lambda name: None)
    with pytest.raises(PmdError, match="neither iptables nor nft found"):
        networks.connect(host.store, "bridge", "b" * 64, cfg)
    assert networks.NetworkStore(host.store).allocations("bridge") == {}


@pytest.mark.skipif(not shutil.which("nft"), reason="no nft binary")
def test_nft_fallback(host, monkeypatch):
    from pyminidocker.network import nft as network_nft

    monkeypatch.setattr(firewall, "backend", lambda: "nft")  # as on a host without iptables
    before_ipt = iptables_save()
    net = host.network()
    bridge.ensure_bridge(net)
    bridge.ensure_bridge(net)
    mine = [c for c in nft_comments() if c.startswith(f"pmd:{net.bridge}:")]
    assert sorted(mine) == sorted(f"pmd:{net.bridge}:{w}" for w in (
        "masquerade", "loopback", "members", "out", "replies", "loopback-guard"))
    assert nft_comments().count(network_nft.JUMP_TAG) == 2  # prerouting, output; once
    assert ",UP" in links()[net.bridge]
    assert iptables_save() == before_ipt  # nothing went to iptables

    cip = _addr(net, 2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(Conflict, match="already in use"):
            ports.publish(net, cip, [ports.PortMapping("127.0.0.1", busy, 80, "tcp")])
    done = ports.publish(net, cip, [ports.PortMapping("127.0.0.1", 0, 80, "tcp"),
                                ports.PortMapping("", 0, 53, "udp")])
    assert network_nft.published() == [("tcp", "127.0.0.1", done[0].host_port),
                                       ("udp", "", done[1].host_port)]
    with pytest.raises(Conflict, match="already allocated"):
        ports.publish(net, _addr(net, 3), [ports.PortMapping("", done[0].host_port, 80, "tcp")])
    listing = subprocess.run(["nft", "list", "table", "ip", network_nft.TABLE],
                             capture_output=True, text=True, check=True).stdout
    assert f"ip daddr 127.0.0.1 tcp dport {done[0].host_port} dnat to {cip}:80" in listing
    assert "ct status ! dnat drop" in listing  # the flag is not set
    ports.unpublish(net, cip, done[:1])
    assert network_nft.published() == [("udp", "", done[1].host_port)]
    ports.unpublish_all(net, cip)
    assert network_nft.published() == []
    assert len([c for c in nft_comments() if c.startswith(f"pmd:{net.bridge}:")]) == 6

    bridge.remove_network_host_state(net)
    assert net.bridge not in links()
    assert not [c for c in nft_comments() if c.startswith(f"pmd:{net.bridge}:")]
