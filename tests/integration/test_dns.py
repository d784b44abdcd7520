"""DNS between the containers of a user network (aardvark-dns, one server per store): names,
--network-alias es and short ids resolve through the server at the network's gateway (busybox
nslookup asks the server in resolv.conf and never reads /etc/hosts), a container started later
resolves at once, a removed one no more, the default bridge has no such server (as Docker), an
outside name is forwarded to the host's resolvers, and nothing of the server is left.

The host's resolvers are the store's "resolv-conf" file, which names a resolver this module runs
on a loopback address: no query leaves the host.
"""
from __future__ import annotations

import json
import os
import random
import socket
import threading
from pathlib import Path

import pytest

from pyminidocker.network import dns
from tests.integration.conftest import free_subnet, store_with_bb
from tests.integration.servers import wait_until

OUTSIDE = "outside.example.test"
OUTSIDE_IP = "198.51.100.7"  # TEST-NET-2: only ever an answer, never a destination


class Resolver:
    """A DNS server on <loopback address>:53 that knows one name (OUTSIDE) and refuses the
    rest with NXDOMAIN; it records the names it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        for _ in range(20):
            self.address = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.sock.bind((self.address, 53))
                break
            except OSError:
                self.sock.close()
        else:
            pytest.skip("no free loopback address for a resolver on port 53")
        self.sock.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += 1 + query[i]
            qtype = query[i + 1:i + 3]
            name = ".".join(labels)
            self.asked.append(name)
            question = query[12:i + 5]
            known = name == OUTSIDE
            answer = b""
            if known and qtype == b"\x00\x01":
                answer = (b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"
                          + socket.inet_aton(OUTSIDE_IP))
            flags = b"\x81\x80" if known else b"\x81\x83"  # NOERROR / NXDOMAIN
            self.sock.sendto(query[:2] + flags + b"\x00\x01" + (b"\x00\x01" if answer else b"\x00\x00")
                             + b"\x00\x00\x00\x00" + question + answer, peer)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def resolver():
    r = Resolver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def net(request, tmp_path_factory, publish, pmd_factory, resolver):
    run = store_with_bb("dns-bb", request, tmp_path_factory, publish, pmd_factory)
    conf = run.root / "host-resolv.conf"
    conf.write_text(f"nameserver {resolver.address}\n")
    cfg = json.loads((run.root / "config.json").read_text())
    (run.root / "config.json").write_text(json.dumps({**cfg, "resolv-conf": str(conf)}))
    run.subnet = free_subnet()
    run("network", "create", "--subnet", run.subnet, "dnsnet")
    run.gateway = run.subnet.rsplit(".", 1)[0] + ".1"
    yield run
    run("rm", "-f", *run("ps", "-a", "-q").stdout.split(), check=False)
    run("network", "rm", "dnsnet", check=False)


def _config_dir(run) -> Path:
    class _Store:
        root = str(run.root)
    return Path(dns.config_dir(_Store()))  # type: ignore[arg-type]


def _server_pids(d: Path) -> list[int]:
    """The aardvark-dns processes serving d (by their command line)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                argv = (p / "cmdline").read_bytes().split(b"\0")
                state = (p / "stat").read_bytes().rpartition(b")")[2].split()[0]
            except OSError:
                continue
            if any(a.endswith(b"aardvark-dns") for a in argv[:1]) and str(d).encode() in argv \
                    and state != b"Z":
                pids.append(int(p.name))
    return pids


def _nothing_left(run) -> None:
    d = _config_dir(run)
    wait_until(lambda: not _server_pids(d), timeout=5, what="the DNS server to stop")
    assert not d.exists(), f"the DNS config of the store is left: {list(d.iterdir())}"


def _ip(run, name: str) -> str:
    nets = json.loads(run("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
    return nets["dnsnet"]["IPAddress"]


def _lookup(run, container: str, name: str):
    return run("exec", container, "nslookup", name, check=False)


def test_names_aliases_and_short_ids_resolve_through_the_server(net):
    net("run", "-d", "--network", "dnsnet", "--name", "web", "--network-alias", "www", "bb",
        "sleep", "60")
    try:
        web = _ip(net, "web")
        web_id = net("inspect", "-f", "{{.Id}}", "web").stdout.strip()
        out = net("run", "--rm", "--network", "dnsnet", "--name", "client", "bb", "sh", "-c",
                  f"cat /etc/resolv.conf; nslookup web; nslookup www; nslookup {web_id[:12]}; "
                  "ping -c1 -W2 www").stdout
        assert f"nameserver {net.gateway}\n" in out
        assert f"Server:\t\t{net.gateway}" in out, out
        assert out.count(f"Address: {web}") == 3, out
        assert "1 packets received" in out
        d = _config_dir(net)
        assert len(_server_pids(d)) == 1, "one server for the store"
        bridge = json.loads(net("network", "inspect", "dnsnet").stdout)[0]["Options"][
            "com.docker.network.bridge.name"]
        sysfs = Path("/sys/class/net") / bridge
        gw_mac = "02:42:" + ":".join(f"{int(b):02x}" for b in net.gateway.split("."))
        assert (sysfs / "address").read_text().strip() == gw_mac
        assert (sysfs / "addr_assign_type").read_text().strip() == "3"  # NET_ADDR_SET: kept
    finally:
        net("rm", "-f", "web")
    _nothing_left(net)


def test_a_container_started_later_resolves_and_a_removed_one_stops(net):
    net("run", "-d", "--network", "dnsnet", "--name", "early", "bb", "sleep", "60")
    try:
        assert "can't find late" in _lookup(net, "early", "late").stdout + \
            _lookup(net, "early", "late").stderr
        net("run", "-d", "--network", "dnsnet", "--name", "late", "bb", "sleep", "60")
        late = _ip(net, "late")
        # early was neither restarted nor told: it asks the server, which knows late now
        res = _lookup(net, "early", "late")
        assert res.returncode == 0 and f"Address: {late}" in res.stdout, res.stdout + res.stderr
        assert net("exec", "late", "nslookup", "early").returncode == 0
        net("rename", "late", "later")  # the server answers the new name, not the old
        assert _lookup(net, "early", "later").returncode == 0
        assert _lookup(net, "early", "late").returncode != 0
        net("rm", "-f", "later")
        res = _lookup(net, "early", "late")
        assert res.returncode != 0 and "NXDOMAIN" in res.stdout + res.stderr, res.stdout
        assert _server_pids(_config_dir(net)), "the server stays for early"
    finally:
        net("rm", "-f", "early", "late", "later", check=False)
    _nothing_left(net)


def test_a_container_connected_later_resolves_until_it_is_disconnected(net):
    net("run", "-d", "--network", "dnsnet", "--name", "member", "bb", "sleep", "60")
    net("run", "-d", "--name", "visitor", "bb", "sleep", "60")  # on the default bridge
    try:
        address = net("network", "connect", "dnsnet", "visitor") and \
            json.loads(net("inspect", "visitor").stdout)[0]["NetworkSettings"]["Networks"][
                "dnsnet"]["IPAddress"]
        res = _lookup(net, "member", "visitor")
        assert res.returncode == 0 and f"Address: {address}" in res.stdout, res.stdout
        net("network", "disconnect", "dnsnet", "visitor")
        # the bridge's address is its own: the member's ARP entry for the gateway stays
        # good when the visitor's port (maybe the lowest address) leaves the bridge
        assert "NXDOMAIN" in _lookup(net, "member", "visitor").stdout
    finally:
        net("rm", "-f", "member", "visitor")
    _nothing_left(net)


@pytest.fixture
def second(net):
    """A second user network, "dns2", with a member of its own, "b"."""
    net("network", "create", "--subnet", free_subnet(), "dns2")
    net("run", "-d", "--network", "dns2", "--name", "b", "bb", "sleep", "60")
    net.gateway2 = json.loads(net("network", "inspect", "dns2").stdout)[0]["IPAM"]["Config"][
        0]["Gateway"]
    yield net
    net("rm", "-f", *net("ps", "-a", "-q").stdout.split(), check=False)
    net("network", "rm", "dns2", check=False)


def _answers(run, container: str, name: str) -> str | None:
    """The address nslookup in container finds for name, None for none (NXDOMAIN)."""
    res = _lookup(run, container, name)
    found = [ln.split()[-1] for ln in res.stdout.split("Name:", 1)[-1].splitlines()
             if ln.startswith("Address")] if "Name:" in res.stdout else []
    return found[0] if res.returncode == 0 and found else None


def test_aliases_belong_to_a_network_and_a_connected_container_resolves_there(second):
    """A member of dnsnet (alias "front" there) connected to dns2 with the alias "back":
    each network's members find it by its name and by that network's alias only; it
    finds dns2's members (asking its own network's server, which scopes a query by every
    network of the asker), and after disconnect none of that holds."""
    net = second
    net("run", "-d", "--network", "dnsnet", "--network-alias", "front", "--name", "both",
        "bb", "sleep", "60")
    net("run", "-d", "--network", "dnsnet", "--name", "a", "bb", "sleep", "60")
    net("network", "connect", "--alias", "back", "dns2", "both")
    nets = json.loads(net("inspect", "both").stdout)[0]["NetworkSettings"]["Networks"]
    both_id = net("inspect", "-f", "{{.Id}}", "both").stdout.strip()[:12]
    assert nets["dnsnet"]["Aliases"] == ["front", both_id]
    assert nets["dns2"]["Aliases"] == ["back", both_id]
    on1, on2 = nets["dnsnet"]["IPAddress"], nets["dns2"]["IPAddress"]
    assert (_answers(net, "b", "both"), _answers(net, "b", "back")) == (on2, on2)
    assert _answers(net, "b", "front") is None, "dnsnet's alias is not dns2's"
    assert (_answers(net, "a", "both"), _answers(net, "a", "front")) == (on1, on1)
    assert _answers(net, "a", "back") is None, "dns2's alias is not dnsnet's"
    b_ip = json.loads(net("inspect", "b").stdout)[0]["NetworkSettings"]["Networks"]["dns2"][
        "IPAddress"]
    assert _answers(net, "both", "b") == b_ip
    hosts = net("exec", "b", "cat", "/etc/hosts").stdout
    assert f"{on2}\t" in hosts and "front" not in hosts and " back" in hosts

    net("network", "disconnect", "dns2", "both")
    assert _answers(net, "b", "both") is None and _answers(net, "b", "back") is None
    assert _answers(net, "both", "b") is None
    assert _answers(net, "a", "front") == on1, "its own network's alias stays"
    nets = json.loads(net("inspect", "both").stdout)[0]["NetworkSettings"]["Networks"]
    assert list(nets) == ["dnsnet"]


def test_a_default_bridge_container_asks_the_server_of_the_network_it_joins(second):
    """Docker's embedded server comes with a container's first user network: a container of
    the default bridge connected to dns2 resolves dns2's names from then on (at once, and
    after a restart), and asks the host's resolvers again once disconnected."""
    net = second
    net("run", "-d", "--name", "plain", "bb", "sleep", "60")
    assert net.gateway2 not in net("exec", "plain", "cat", "/etc/resolv.conf").stdout
    net("network", "connect", "--alias", "plainly", "dns2", "plain")
    assert f"nameserver {net.gateway2}\n" in net("exec", "plain", "cat",
                                                  "/etc/resolv.conf").stdout
    assert _answers(net, "plain", "b") is not None
    assert _answers(net, "b", "plainly") is not None
    net("restart", "-t", "1", "plain")
    assert f"nameserver {net.gateway2}\n" in net("exec", "plain", "cat",
                                                  "/etc/resolv.conf").stdout
    assert _answers(net, "plain", "b") is not None and _answers(net, "b", "plainly")
    net("network", "disconnect", "dns2", "plain")
    assert net.gateway2 not in net("exec", "plain", "cat", "/etc/resolv.conf").stdout
    assert _answers(net, "b", "plain") is None and _answers(net, "b", "plainly") is None


def test_aliases_of_a_stopped_container_apply_at_its_start(second):
    net = second
    net("create", "--network", "dnsnet", "--name", "later", "bb", "sleep", "60")
    net("network", "connect", "--alias", "soon", "dns2", "later")
    assert json.loads(net("inspect", "later").stdout)[0]["NetworkSettings"]["Networks"][
        "dns2"]["Aliases"][0] == "soon"
    net("start", "later")
    assert _answers(net, "b", "soon") is not None
    bad = net("network", "connect", "--alias", "x", "bridge", "later", check=False)
    assert bad.returncode != 0 and "network-scoped alias is supported only" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_an_outside_name_is_forwarded_to_the_hosts_resolver(net, resolver):
    res = net("run", "--rm", "--network", "dnsnet", "bb", "nslookup", OUTSIDE)
    assert f"Address: {OUTSIDE_IP}" in res.stdout, res.stdout + res.stderr
    assert OUTSIDE in resolver.asked
    # a name of the network is answered by the server itself, never forwarded
    assert not [n for n in resolver.asked if n.startswith("web")]
    _nothing_left(net)


def test_a_containers_dns_servers_are_its_upstreams(net, resolver):
    """Docker's rule on user networks: --dns feeds the network's server, which the container
    asks; the host's resolvers are not asked for that container."""
    own = Resolver()
    before = len(resolver.asked)
    try:
        out = net("run", "--rm", "--network", "dnsnet", "--dns", own.address, "bb", "sh", "-c",
                  f"cat /etc/resolv.conf; nslookup {OUTSIDE}").stdout
    finally:
        own.close()
    assert f"nameserver {net.gateway}\n" in out and own.address not in out
    assert f"Address: {OUTSIDE_IP}" in out
    assert OUTSIDE in own.asked and resolver.asked[before:] == []
    _nothing_left(net)


def test_the_default_bridge_has_no_embedded_dns(net):
    net("run", "-d", "--network", "dnsnet", "--name", "onuser", "bb", "sleep", "60")
    try:
        out = net("run", "--rm", "--network", "bridge", "bb", "sh", "-c",
                  "cat /etc/resolv.conf; nslookup onuser", check=False).stdout
        assert net.gateway not in out, "a default-bridge container asks no engine server"
        assert "Address: " + _ip(net, "onuser") not in out
    finally:
        net("rm", "-f", "onuser")
    _nothing_left(net)


def test_network_rm_and_system_reset_leave_nothing(net, tmp_path):
    net("network", "create", "--subnet", free_subnet(), "gonenet")
    net("run", "-d", "--network", "gonenet", "--name", "a1", "bb", "sleep", "60")
    net("run", "-d", "--network", "dnsnet", "--name", "a2", "bb", "sleep", "60")
    d = _config_dir(net)
    assert len(_server_pids(d)) == 1 and len(os.listdir(d)) == 3  # two networks, the pid
    net("rm", "-f", "a1")
    net("network", "rm", "gonenet")
    assert len(os.listdir(d)) == 2
    assert net("exec", "a2", "nslookup", "a2").returncode == 0, "the server serves dnsnet still"
    net("system", "reset", "-f")
    _nothing_left(net)
