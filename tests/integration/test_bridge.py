"""Containers on a bridge network (attached runs): addresses, container-to-container TCP and
ping, a published port reached from the host's loopback, and nothing left on the host after.

Each module run uses its own bridge and subnet (the store's config.json), checked against the
host's routes, and removes every bridge and rule of the engine at the end (network.reset_host).
Traffic stays on that bridge and loopback.
"""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time

import pytest

from tests.integration.conftest import free_subnet, store_with_bb, veths_settled
from tests.integration.servers import send_when_listening

# A one-shot TCP server on port 7000 that prints what it receives. Its stdin never ends:
# busybox's `nc -l` quits once its stdin (here /dev/null) is at EOF and a client is accepted,
# so data that arrives a moment later (a loaded host) is dropped and the test saw nothing.
NC_SERVER = ["sh", "-c", "mkfifo /tmp/in && exec nc -l -p 7000 <>/tmp/in"]


def _iptables_pmd() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "PMD" in line or "pmd:" in line]


@pytest.fixture(scope="module")
def br(request, tmp_path_factory, publish, pmd_factory):
    before = _iptables_pmd()
    run = store_with_bb("bridge-bb", request, tmp_path_factory, publish, pmd_factory)
    yield run
    run("system", "reset", "-f")
    if not before:
        assert _iptables_pmd() == [], "iptables rules of the engine are left"
    assert " pmd" not in veths_settled()


def _ip_of(run, name: str, proc) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        res = run("inspect", name, check=False)
        if res.returncode == 0:
            # Docker's place for it: the top-level IPAddress is the default bridge's only
            nets = json.loads(res.stdout)[0]["NetworkSettings"]["Networks"].values()
            ip = next((n["IPAddress"] for n in nets if n["IPAddress"]), "")
            if ip:
                return ip
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{name} got no address")


def test_two_containers_talk_over_the_bridge(br):
    srv = br.popen("run", "--rm", "--network", "bridge", "--name", "srv", "bb",
                   *NC_SERVER)
    try:
        ip = _ip_of(br, "srv", srv)
        res = br("run", "--rm", "--network", "bridge", "bb", "sh", "-c",
                 f"ip -4 addr show eth0; ip route; ping -c1 -W2 {ip} && "
                 # the server may not listen yet: a refused connection is tried again
                 f"for i in $(seq 50); do echo hello-over-tcp | nc -w 2 {ip} 7000 && break; "
                 "sleep 0.1; done")
        out, _ = srv.communicate(timeout=30)
    finally:
        if srv.poll() is None:
            br("kill", "srv", check=False)
            srv.communicate(timeout=30)
    assert out == "hello-over-tcp\n", res.stdout + res.stderr
    assert "1 packets received" in res.stdout
    assert "default via" in res.stdout
    assert br("ps", "-a", "-q").stdout == ""
    ipam = json.loads((br.root / "networks" / "ipam" / "bridge.json").read_text())
    assert ipam["allocations"] == {}, "addresses are released"


def test_hosts_file_and_distinct_addresses(br):
    a = br.popen("run", "--rm", "--network", "bridge", "--name", "ha", "bb", "sleep", "30")
    try:
        ip_a = _ip_of(br, "ha", a)
        out = br("run", "--rm", "--network", "bridge", "--name", "hb", "bb", "sh", "-c",
                 "tail -1 /etc/hosts; hostname; ip -4 -o addr show eth0").stdout
        line, hostname, addr = out.splitlines()
        # Docker's default bridge: the address and the host name, no container name
        assert line.split()[1:] == [hostname] and line.split()[0] != ip_a
        assert line.split()[0] in addr
    finally:
        br("kill", "ha", check=False)
        a.communicate(timeout=30)


def test_published_port_reachable_from_host_loopback_and_gone_after(br):
    port = random.randrange(20000, 30000)
    srv = br.popen("run", "--rm", "--network", "bridge", "--name", "pub", "-p",
                   f"127.0.0.1:{port}:7000", "bb", *NC_SERVER)
    try:
        _ip_of(br, "pub", srv)
        assert any(f"--dport {port}" in line for line in _iptables_pmd())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"via-published-port\n")
        out, _ = srv.communicate(timeout=30)
    finally:
        if srv.poll() is None:
            br("kill", "pub", check=False)
            srv.communicate(timeout=30)
    assert out == "via-published-port\n"
    assert not any(f"--dport {port}" in line for line in _iptables_pmd()), "rule left"


def test_bad_network_options_are_125(br):
    res = br("run", "--rm", "--network", "nosuchnet", "bb", "true", check=False)
    assert res.returncode == 125 and "nosuchnet" in res.stderr
    res = br("run", "--rm", "--network", "bridge", "-p", "99999:80", "bb", "true", check=False)
    assert res.returncode == 125 and res.stderr.count("\n") == 1
    res = br("run", "--rm", "--network", "none", "-p", "8080:80", "bb", "true", check=False)
    assert res.returncode == 125
    assert br("ps", "-a", "-q").stdout == ""


def test_names_resolve_on_a_user_network(br):
    br("network", "create", "--subnet", free_subnet(), "usernet")
    alpha = br.popen("run", "--rm", "--network", "usernet", "--name", "alpha", "bb",
                     "sleep", "30")
    try:
        ip_a = _ip_of(br, "alpha", alpha)
        bravo = br.popen("run", "--rm", "--network", "usernet", "--name", "bravo", "bb",
                         "sh", "-c", "ping -c1 -W2 alpha && sleep 30")
        ip_b = _ip_of(br, "bravo", bravo)
        # alpha, started first, learns bravo's name too
        assert f"{ip_b}\t" in br("exec", "alpha", "cat", "/etc/hosts").stdout
        assert br("exec", "alpha", "ping", "-c1", "-W2", "bravo").returncode == 0
        br("kill", "bravo")
        out, _ = bravo.communicate(timeout=30)
        assert f"from {ip_a}" in out or "1 packets received" in out
        assert "bravo" not in br("exec", "alpha", "cat", "/etc/hosts").stdout
    finally:
        br("kill", "alpha", check=False)
        alpha.communicate(timeout=30)
    res = br("network", "rm", "usernet")
    assert res.returncode == 0


@pytest.fixture
def outside(request):
    """Another network namespace playing the host outside: its own veth and subnet, routed
    through the host (10.253.X.1 on the host, .2 inside). Removed after the test."""
    third = random.randrange(1, 254)
    ns, host_if = f"pmdt-out{third}", f"pmdto{third}"
    hip, oip = f"10.253.{third}.1", f"10.253.{third}.2"
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"{hip}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{oip}/24", "dev", "eth0")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, hip, oip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True, check=False).stdout


def test_nat_to_the_outside_shows_the_hosts_address(br, outside):
    ns, host_ip, outside_ip = outside
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns, "python3", "-c",
         "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
         "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 7001)); s.listen(1); s.settimeout(20); "
         "c, a = s.accept(); print(a[0], c.recv(100).decode().strip(), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        res = br("run", "--rm", "--network", "bridge", "bb", "sh", "-c",
                 f"ip -4 -o addr show eth0; echo from-container | nc -w 3 {outside_ip} 7001")
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    peer, msg = out.split()
    assert msg == "from-container"
    assert peer == host_ip, "the outside host sees the host's address (MASQUERADE)"
    assert peer not in res.stdout


def test_detached_container_with_a_published_port(br):
    port = random.randrange(30000, 40000)
    cid = br("run", "-d", "--network", "bridge", "--name", "dpub", "-p",
             f"127.0.0.1:{port}:7000", "bb", *NC_SERVER).stdout.strip()
    try:
        assert br("port", "dpub").stdout == f"7000/tcp -> 127.0.0.1:{port}\n"
        assert f"127.0.0.1:{port}->7000/tcp" in br("ps").stdout
        send_when_listening("127.0.0.1", port, b"to-a-detached-container\n")
        assert br("wait", cid).stdout == "0\n"
        assert br("logs", cid).stdout == "to-a-detached-container\n"
        assert not any(f"--dport {port}" in line for line in _iptables_pmd()), "rule left"
    finally:
        br("rm", "-f", cid)
    ipam = json.loads((br.root / "networks" / "ipam" / "bridge.json").read_text())
    assert ipam["allocations"] == {}


def test_a_container_given_a_freed_address_is_reached_at_once(br):
    """While the bridge lives on (another container holds it), the host's neighbour cache
    still maps a freed address to the gone container's MAC. The next container given that
    address has the same MAC (Docker's 02:42 and the address's bytes), so the host reaches its
    published port at once; with a random MAC the connection timed out (the CI VM)."""
    keep = br("run", "-d", "--network", "bridge", "bb", "sleep", "120").stdout.strip()
    port = random.randrange(30000, 40000)
    cid = ""
    try:
        # it pings the gateway: the host learns its address and MAC
        ip, mac = br("run", "--rm", "--network", "bridge", "bb", "sh", "-c",
                     "ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null; "
                     "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1; "
                     "cat /sys/class/net/eth0/address").stdout.split()
        assert mac == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        cid = br("run", "-d", "--network", "bridge", "-p", f"127.0.0.1:{port}:7000", "bb",
                 *NC_SERVER).stdout.strip()
        assert br("inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.MacAddress}}",
                  cid).stdout == f"{ip} {mac}\n"   # Docker shows it too
        send_when_listening("127.0.0.1", port, b"at-once\n")
        assert br("wait", cid).stdout == "0\n"
        assert br("logs", cid).stdout == "at-once\n"
    finally:
        br("rm", "-f", keep, *([cid] if cid else []))


def test_two_hundred_bridged_cycles_leave_nothing(br):
    """run/rm through the library (what the CLI verbs call) 200 times on the bridge: no veth,
    address, rule or namespace is left, and no address was ever handed out twice."""
    from pyminidocker.container.runtime import CreateOptions, Runtime
    from pyminidocker.store import Store

    rt = Runtime(Store(br.root))
    veths_before = subprocess.run(["ip", "-o", "link", "show", "type", "veth"],
                                  capture_output=True, text=True, check=True).stdout
    def port_rules() -> list[str]:
        return [line for line in _iptables_pmd() if ":port:" in line]

    devnull = os.open(os.devnull, os.O_RDWR)
    seen = []
    try:
        for i in range(200):
            rec = rt.create(CreateOptions(image="bb", cmd=["true"], name=f"cyc{i}",
                                          network="bridge", publish=[f"127.0.0.1::{7000}"]))
            assert rt.start(rec, attach=True, stdio=(devnull, devnull, devnull)) == 0
            seen.append(rt.get(rec.id).state)
            rt.remove(rt.get(rec.id))
    finally:
        os.close(devnull)
    assert rt.list() == []
    ipam = json.loads((br.root / "networks" / "ipam" / "bridge.json").read_text())
    assert ipam["allocations"] == {}
    assert veths_settled(veths_before) == veths_before
    assert port_rules() == [], "published-port rules are left"
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout == ""


def test_publish_all_exposed_ports_on_free_host_ports(br):
    cid = br("run", "-d", "--network", "bridge", "-P", "bb", *NC_SERVER
             ).stdout.strip()
    try:
        mapping = br("port", cid).stdout.strip()
        inside, _, outside = mapping.partition(" -> ")
        assert inside == "7000/tcp" and outside.startswith("0.0.0.0:")
        port = int(outside.rsplit(":", 1)[1])
        send_when_listening("127.0.0.1", port, b"via-P\n")
        assert br("wait", cid).stdout == "0\n"
        assert br("logs", cid).stdout == "via-P\n"
    finally:
        br("rm", "-f", cid)


def test_published_port_reachable_from_the_outside_host(br, outside):
    ns, host_ip, _ = outside
    port = random.randrange(40000, 50000)
    cid = br("run", "-d", "--name", "outpub", "-p", f"{port}:7000", "bb",
             *NC_SERVER).stdout.strip()
    try:
        client = ["ip", "netns", "exec", ns, "python3", "-c",
                  "import socket, sys, time\n"
                  "for _ in range(100):\n"
                  "    try:\n"
                  f"        s = socket.create_connection(('{host_ip}', {port}), timeout=3)\n"
                  "        break\n"
                  "    except ConnectionRefusedError:\n"
                  "        time.sleep(0.05)\n"
                  "s.sendall(b'from-the-outside\\n'); s.close()"]
        subprocess.run(client, check=True, timeout=30)
        assert br("wait", cid).stdout == "0\n"
        assert br("logs", cid).stdout == "from-the-outside\n"
    finally:
        br("rm", "-f", cid)
    assert not any(f"--dport {port}" in line for line in _iptables_pmd()), "rule left"


def test_network_connect_and_disconnect_a_running_container(br):
    br("network", "create", "--subnet", free_subnet(), "neta")
    br("network", "create", "--subnet", free_subnet(), "netb")
    one = br.popen("run", "--rm", "--network", "neta", "--name", "one", "bb", "sleep", "30")
    two = br.popen("run", "--rm", "--network", "netb", "--name", "two", "bb", "sleep", "30")
    try:
        _ip_of(br, "one", one)
        _ip_of(br, "two", two)
        assert br("exec", "two", "ping", "-c1", "-W1", "one", check=False).returncode != 0
        br("network", "connect", "neta", "two")
        out = br("exec", "two", "sh", "-c", "ip -4 -o addr show eth1; ping -c1 -W2 one").stdout
        assert "eth1" in out and "1 packets received" in out
        assert " two" in br("exec", "one", "cat", "/etc/hosts").stdout
        members = json.loads(br("network", "inspect", "neta").stdout)[0]["Containers"]
        assert sorted(m["Name"] for m in members.values()) == ["one", "two"]  # as Docker's
        res = br("network", "connect", "neta", "two", check=False)
        assert res.returncode == 1 and "already" in res.stderr
        br("network", "disconnect", "neta", "two")
        assert br("exec", "two", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]
        assert " two" not in br("exec", "one", "cat", "/etc/hosts").stdout
    finally:
        for name, proc in (("one", one), ("two", two)):
            br("kill", name, check=False)
            proc.communicate(timeout=30)
    br("network", "rm", "neta", "netb")


def test_network_connect_a_stopped_container_holds_for_its_starts(br):
    """As Docker: a network connected to a container that is not running is joined at its
    start, and at every start after, until it is disconnected."""
    br("network", "create", "--subnet", free_subnet(), "netc")
    br("create", "--name", "later", "bb", "sh", "-c",
       "ls /sys/class/net; ip -4 -o addr show eth1 2>/dev/null; true")
    try:
        assert br("network", "connect", "netc", "later").stdout == ""
        res = br("network", "connect", "netc", "later", check=False)
        assert res.returncode == 1 and "already" in res.stderr
        res = br("network", "connect", "nosuch", "later", check=False)
        assert res.returncode == 1 and "not found" in res.stderr
        for _ in range(2):  # the first start and a restart
            out = br("start", "-a", "later").stdout
            assert out.split()[:3] == ["eth0", "eth1", "lo"] and " eth1 " in out
        netc = json.loads(br("network", "inspect", "netc").stdout)[0]
        assert netc["Containers"] == {}, "the address is released when it stops"
        br("network", "disconnect", "netc", "later")
        assert br("start", "-a", "later").stdout.split() == ["eth0", "lo"]
        # interfaces are numbered from the first free one: eth1 again after eth1 was left
        br("network", "create", "--subnet", free_subnet(), "netd")
        br("network", "connect", "netd", "later")
        br("network", "connect", "netc", "later")
        br("network", "disconnect", "netd", "later")
        out = br("start", "-a", "later").stdout
        assert out.split()[:3] == ["eth0", "eth1", "lo"] and " eth1 " in out
    finally:
        br("rm", "-f", "later")
    br("network", "rm", "netc", "netd")
    none = br("create", "--network", "none", "bb", "true").stdout.strip()
    try:
        res = br("network", "connect", "bridge", none, check=False)
        assert res.returncode == 1 and "cannot be connected" in res.stderr
    finally:
        br("rm", none)


def test_a_restarted_container_has_its_name_once_in_hosts(br):
    br("create", "--name", "twice", "-h", "twice", "bb", "grep", "-c", "twice", "/etc/hosts")
    try:
        assert [br("start", "-a", "twice").stdout for _ in range(2)] == ["1\n", "1\n"]
    finally:
        br("rm", "twice")


def test_network_connect_with_an_ip_keeps_it_across_starts(br):
    """`network connect --ip`: the address on that network now and at each start, shown in
    inspect's IPAMConfig as Docker's; refused on the default bridge, outside the subnet, and
    when another live container holds it; gone with disconnect."""
    subnet = free_subnet()
    base = subnet.rsplit(".", 1)[0]
    br("network", "create", "--subnet", subnet, "netip")
    br("network", "create", "--subnet", free_subnet(), "otherip")
    br("run", "-d", "--name", "ipc", "bb", "sleep", "60")
    br("run", "-d", "--name", "ipd", "--network", "otherip", "bb", "sleep", "60")
    ipam = '{{(index .NetworkSettings.Networks "netip").IPAMConfig.IPv4Address}}'
    try:
        assert br("network", "connect", "--ip", f"{base}.77", "netip", "ipc").stdout == ""
        for _ in range(2):  # now, and after a restart
            out = br("exec", "ipc", "ip", "-4", "-o", "addr", "show", "eth1").stdout
            assert f" {base}.77/24 " in out, out
            assert br("inspect", "-f", ipam, "ipc").stdout == f"{base}.77\n"
            br("restart", "-t", "0", "ipc")
        for args, why in ((("--ip", f"{base}.77", "netip", "ipd"), "already in use"),
                          (("--ip", "10.253.9.9", "netip", "ipd"), "10.253.9.9"),
                          (("--ip", "10.1.1.1", "bridge", "ipd"), "user configured subnets"),
                          (("--ip", "not-an-ip", "netip", "ipd"), "invalid IPv4 address: not-an-ip")):
            res = br("network", "connect", *args, check=False)
            assert res.returncode != 0 and res.stderr.count("\n") == 1, res
            assert why in res.stderr and "internal error" not in res.stderr, res.stderr
        assert "\"netip\"" not in br("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "ipd").stdout  # nothing half-made by the refusals
        br("network", "disconnect", "netip", "ipc")
        assert "\"netip\"" not in br("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "ipc").stdout
        br("network", "connect", "--ip", f"{base}.77", "netip", "ipd")  # free again
        assert f" {base}.77/24 " in br("exec", "ipd", "ip", "-4", "-o", "addr", "show",
                                       "eth1").stdout
    finally:
        br("rm", "-f", "ipc", "ipd")
    br("network", "rm", "netip", "otherip")
