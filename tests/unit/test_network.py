"""pyminidocker.network (networks, ipam, ports, firewall rules) without root: parsing, subnet choice against fake host routes, network
records, IPAM (order, release, exhaustion, concurrent processes). No host state is touched:
host_routes is replaced by a fake list in every test that creates a network."""
from __future__ import annotations

import json
import multiprocessing
import os
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pyminidocker import proc
from pyminidocker.config import Config
from pyminidocker.errors import Conflict, NotFound, PmdError, UsageError
from pyminidocker.network import firewall, ipam, networks, ports
from pyminidocker.store import Store
from pyminidocker.store.networks import NetworkStore
from tests.unit.conftest import containers_exist


@pytest.fixture
def routes(monkeypatch):
    """The fake host routing table (a list to fill); no netlink."""
    fake: list[IPv4Network] = []
    monkeypatch.setattr(networks, "host_routes", lambda exclude=(): list(fake))
    return fake


@pytest.fixture
def store(root, routes):
    return Store(root)


def _no_host_state(monkeypatch):
    monkeypatch.setattr(networks, "remove_network_host_state", lambda net: None)


# --------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize("spec, expected", [
    ("8080:80", [ports.PortMapping("", 8080, 80, "tcp")]),
    ("8080:80/tcp", [ports.PortMapping("", 8080, 80, "tcp")]),
    ("8080:80/UDP", [ports.PortMapping("", 8080, 80, "udp")]),
    ("127.0.0.1:8080:80", [ports.PortMapping("127.0.0.1", 8080, 80, "tcp")]),
    ("0.0.0.0:8080:80", [ports.PortMapping("", 8080, 80, "tcp")]),
    ("80", [ports.PortMapping("", 0, 80, "tcp")]),
    ("127.0.0.1::53/udp", [ports.PortMapping("127.0.0.1", 0, 53, "udp")]),
    ("8080-8081:80-81", [ports.PortMapping("", 8080, 80, "tcp"), ports.PortMapping("", 8081, 81, "tcp")]),
])
def test_parse_publish(spec, expected):
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("8080:80/sctpx", "invalid proto: sctpx"),
    ("99999:80", "invalid hostPort: 99999"),
    ("8080:0", "invalid containerPort: 0"),
    ("8080:abc", "invalid containerPort: abc"),
    ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
    ("a:b:c:d", "invalid port format: a:b:c:d"),
    ("8080-8082:80-81", "invalid ranges specified"),
    ("8080:", "no port specified"),
])
def test_parse_publish_errors(spec, message):
    with pytest.raises(UsageError, match=message) as ei:
        ports.parse_publish(spec)
    assert ei.value.exit_code == 125


def test_parse_subnet():
    assert networks.parse_subnet("10.1.0.0/24") == IPv4Network("10.1.0.0/24")
    for bad in ("10.1.0.0", "10.1.0.0/33", "10.300.0.0/16", "nonsense", ""):
        with pytest.raises(UsageError, match=f"invalid CIDR address: {bad}"):
            networks.parse_subnet(bad)
    with pytest.raises(UsageError, match="it should be 10.1.0.0/24"):
        networks.parse_subnet("10.1.0.5/24")
    with pytest.raises(UsageError, match="IPv6"):
        networks.parse_subnet("fd00::/64")
    with pytest.raises(UsageError, match="too small"):
        networks.parse_subnet("10.1.0.0/31")


def test_parse_gateway():
    net = IPv4Network("10.1.0.0/24")
    assert str(networks.parse_gateway("10.1.0.254", net)) == "10.1.0.254"
    for bad in ("10.2.0.1", "10.1.0.0", "10.1.0.255"):
        with pytest.raises(UsageError, match="no matching subnet for gateway"):
            networks.parse_gateway(bad, net)
    with pytest.raises(UsageError, match="invalid gateway address"):
        networks.parse_gateway("x", net)


# --------------------------------------------------------------------------------------------
# subnet choice


def test_pool_order_and_bounds():
    assert networks.POOL[0] == IPv4Network("10.77.0.0/16")
    assert IPv4Network("10.99.0.0/16") in networks.POOL
    assert IPv4Network("10.88.0.0/16") in networks.POOL  # skipped only when Podman's route is there
    assert networks.POOL.index(IPv4Network("172.30.0.0/16")) == 23
    assert not any(p.overlaps(IPv4Network("172.17.0.0/16")) for p in networks.POOL)


def test_choose_subnet_skips_overlaps():
    taken = [IPv4Network("10.77.3.0/24"), IPv4Network("10.78.0.0/15")]  # the 2nd covers 10.79
    assert networks.choose_subnet(networks.POOL, taken) == IPv4Network("10.80.0.0/16")
    # a wider route swallows the whole 10.x part of the pool
    assert networks.choose_subnet(networks.POOL, [IPv4Network("10.0.0.0/8")]) == IPv4Network("172.30.0.0/16")
    everything = [IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1")]
    with pytest.raises(PmdError, match="non-overlapping IPv4 address pool"):
        networks.choose_subnet(networks.POOL, everything)


def test_default_network_avoids_host_routes(store, routes):
    routes += [IPv4Network("10.77.0.0/16"), IPv4Network("10.88.0.0/16")]  # as a test, and Podman
    net = networks.default_network(store)
    assert (net.name, net.bridge, net.subnet, net.gateway) == \
        ("bridge", "pmd0", "10.78.0.0/16", "10.78.0.1")
    assert networks.default_network(store) == net  # recorded once, read after


def test_default_network_from_config(store, routes, root):
    cfg = Config(root=root, default_subnet="10.42.0.0/24", default_gateway="10.42.0.254",
                 default_bridge="pmdx0")
    net = networks.default_network(store, cfg)
    assert (net.subnet, net.gateway, net.bridge) == ("10.42.0.0/24", "10.42.0.254", "pmdx0")


def test_config_reads_network_keys(root):
    (root / "config.json").write_text(json.dumps({"default-subnet": "10.50.0.0/16",
                                                  "default-bridge": "pmd9"}))
    cfg = Config.load(root)
    assert (cfg.default_subnet, cfg.default_gateway, cfg.default_bridge) == \
        ("10.50.0.0/16", None, "pmd9")


def test_configured_subnet_overlapping_a_route_is_skipped(store, routes, root):
    routes.append(IPv4Network("10.42.0.0/16"))
    cfg = Config(root=root, default_subnet="10.42.0.0/24", default_gateway="10.42.0.254")
    net = networks.default_network(store, cfg)
    assert (net.subnet, net.gateway) == ("10.77.0.0/16", "10.77.0.1")


# --------------------------------------------------------------------------------------------
# user networks


def test_create_network_record_layout(store, root):
    net = networks.create_network(store, "backend", subnet="10.5.0.0/24", labels={"a": "b"})
    data = json.loads((root / "networks" / "backend.json").read_text())
    assert set(data) == {"name", "id", "driver", "bridge", "subnet", "gateway", "created",
                         "internal", "labels"}
    assert data["driver"] == "bridge" and data["labels"] == {"a": "b"}
    assert len(data["id"]) == 64 and int(data["id"], 16) >= 0
    assert data["bridge"] == f"pmd-{data['id'][:11]}" and len(data["bridge"]) <= 15
    assert (data["subnet"], data["gateway"]) == ("10.5.0.0/24", "10.5.0.1")
    assert data["created"].endswith("Z")
    assert json.loads((root / "networks" / "ipam" / "backend.json").read_text()) == \
        {"allocations": {}, "boot_id": proc.boot_id()}
    assert net.name == "backend"


def test_create_network_picks_free_pool_subnets(store, routes):
    routes.append(IPv4Network("10.77.0.0/16"))
    a = networks.create_network(store, "a")
    b = networks.create_network(store, "b")
    assert (a.subnet, b.subnet) == ("10.78.0.0/16", "10.79.0.0/16")
    assert a.bridge != b.bridge


def test_create_network_errors(store):
    networks.create_network(store, "one", subnet="10.5.0.0/16")
    with pytest.raises(Conflict, match="network with name one already exists"):
        networks.create_network(store, "one", subnet="10.6.0.0/16")
    with pytest.raises(Conflict, match="Pool overlaps with other one on this address space"):
        networks.create_network(store, "two", subnet="10.5.3.0/24")
    with pytest.raises(UsageError, match="invalid CIDR address: 10.7.0.0/99"):
        networks.create_network(store, "two", subnet="10.7.0.0/99")
    with pytest.raises(UsageError, match="no matching subnet for gateway"):
        networks.create_network(store, "two", subnet="10.7.0.0/24", gateway="10.8.0.1")
    with pytest.raises(UsageError, match="pre-defined"):
        networks.create_network(store, "host")
    with pytest.raises(UsageError, match="invalid network name"):
        networks.create_network(store, "-bad")
    assert [n.name for n in networks.list_networks(store)] == ["one"]  # no partial state


def test_inspect_and_resolve(store):
    net = networks.create_network(store, "web", subnet="10.9.0.0/24")
    ipam.allocate(store, "web", "c" * 64)
    doc = networks.inspect_network(store, net.id[:6])
    assert doc["Name"] == "web" and doc["Id"] == net.id
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]
    assert doc["Containers"] == {"c" * 64: {"IPv4Address": "10.9.0.2/24"}}
    with pytest.raises(NotFound, match="network nope not found"):
        networks.inspect_network(store, "nope")


def test_remove_network_refused_while_in_use(store, monkeypatch):
    _no_host_state(monkeypatch)
    networks.create_network(store, "web", subnet="10.9.0.0/24")
    containers_exist(Path(store.root), "c" * 64)
    ipam.allocate(store, "web", "c" * 64)
    with pytest.raises(Conflict, match="has active endpoints"):
        networks.remove_network(store, "web")
    ipam.release(store, "web", "c" * 64)
    with pytest.raises(Conflict, match="has active endpoints"):
        networks.remove_network(store, "web", attached={"d" * 64})
    networks.remove_network(store, "web")
    assert networks.list_networks(store) == []
    assert os.listdir(os.path.join(store.root, "networks", "ipam")) == []
    with pytest.raises(NotFound):
        networks.remove_network(store, "web")


def test_remove_default_network_refused(store, monkeypatch):
    _no_host_state(monkeypatch)
    networks.default_network(store)
    with pytest.raises(Conflict, match="pre-defined"):
        networks.remove_network(store, "bridge")


def test_prune(store, monkeypatch):
    _no_host_state(monkeypatch)
    networks.default_network(store)
    networks.create_network(store, "idle", subnet="10.10.0.0/24")
    networks.create_network(store, "busy", subnet="10.11.0.0/24")
    networks.create_network(store, "kept", subnet="10.12.0.0/24")
    containers_exist(Path(store.root), "e" * 64)
    ipam.allocate(store, "busy", "e" * 64)
    assert networks.prune_networks(store, in_use={"kept"}) == ["idle"]
    assert [n.name for n in networks.list_networks(store)] == ["bridge", "busy", "kept"]


# --------------------------------------------------------------------------------------------
# IPAM


def test_ipam_order_release_exhaustion(store, root):
    networks.create_network(store, "small", subnet="10.20.0.0/29")  # .1 gateway, .2-.6 free, .7 bcast
    containers_exist(root, *(f"{i:064x}" for i in range(5)), "f" * 64)
    got = [ipam.allocate(store, "small", f"{i:064x}") for i in range(5)]
    assert got == [(f"10.20.0.{n}", 29, "10.20.0.1") for n in range(2, 7)]
    # idempotent for one container
    assert ipam.allocate(store, "small", f"{2:064x}") == ("10.20.0.4", 29, "10.20.0.1")
    with pytest.raises(PmdError, match="no available IPv4 addresses on network small"):
        ipam.allocate(store, "small", "f" * 64)
    assert ipam.release(store, "small", f"{1:064x}") == ["10.20.0.3"]
    assert ipam.release(store, "small", f"{1:064x}") == []  # twice is fine
    assert ipam.allocate(store, "small", "f" * 64)[0] == "10.20.0.3"  # the lowest free again
    alloc = json.loads((root / "networks" / "ipam" / "small.json").read_text())["allocations"]
    assert alloc["10.20.0.3"] == "f" * 64 and len(alloc) == 5


def test_ipam_exhaustion_frees_what_killed_commands_left(store, root):
    networks.create_network(store, "tiny", subnet="10.21.0.0/29")
    live = [f"{i:064x}" for i in range(3)]
    containers_exist(root, *live)
    gone = [f"{i:064x}" for i in range(3, 5)]  # their containers were removed meanwhile
    got = [ipam.allocate(store, "tiny", cid)[0] for cid in live + gone]
    # a created container whose `run` is dead (another process's token) holds nothing
    doc = json.loads((root / "networks" / "ipam" / "tiny.json").read_text())
    doc["owners"][got[2]] = "1:0"
    (root / "networks" / "ipam" / "tiny.json").write_text(json.dumps(doc))
    assert ipam.allocate(store, "tiny", "f" * 64)[0] == got[2]  # the lowest stale one, reused
    alloc = NetworkStore(store).allocations("tiny")
    assert sorted(alloc.values()) == sorted([*live[:2], "f" * 64])


def test_a_record_from_before_the_boot_is_reconciled_at_the_first_allocation(store, root):
    """After a power cut nothing the IPAM record names runs: the first allocation of the new
    boot frees what it holds for containers that are gone, without waiting for exhaustion."""
    networks.create_network(store, "boot", subnet="10.23.0.0/24")
    gone, new = "a" * 64, "b" * 64
    containers_exist(root, gone, new)
    held = ipam.allocate(store, "boot", gone)[0]
    path = root / "networks" / "ipam" / "boot.json"
    doc = json.loads(path.read_text())
    doc["owners"][held] = "1:0"  # its `run` died with the host
    path.write_text(json.dumps(doc))
    ipam.allocate(store, "boot", "c" * 64)  # the same boot: kept until the network runs out
    assert NetworkStore(store).allocations("boot").get(held) == gone
    doc = json.loads(path.read_text())
    doc["boot_id"] = "an-earlier-boot"
    path.write_text(json.dumps(doc))
    assert ipam.allocate(store, "boot", new)[0] == held  # freed first, then the lowest free
    assert json.loads(path.read_text())["boot_id"] == proc.boot_id()


def test_a_release_after_the_boot_leaves_the_rest_to_be_reconciled(store, root):
    """A release (rm of one container) in the new boot must not stamp the record as this
    boot's: the addresses it still holds for containers of the last boot are freed at the
    next allocation all the same (a power-cut round found one held after rm and run)."""
    networks.create_network(store, "boot2", subnet="10.24.0.0/24")
    gone, removed, new = "a" * 64, "d" * 64, "b" * 64
    containers_exist(root, gone, removed, new)
    held = ipam.allocate(store, "boot2", gone)[0]
    ipam.allocate(store, "boot2", removed)
    path = root / "networks" / "ipam" / "boot2.json"
    doc = json.loads(path.read_text())
    doc["owners"][held] = "1:0"  # its `run` died with the host
    doc["boot_id"] = "an-earlier-boot"
    path.write_text(json.dumps(doc))
    ipam.release(store, "boot2", removed)  # `rm -f` of the other one, first in the new boot
    assert json.loads(path.read_text())["boot_id"] == "an-earlier-boot"
    assert ipam.allocate(store, "boot2", new)[0] == held
    assert json.loads(path.read_text())["boot_id"] == proc.boot_id()
    # reconciled with nothing stale: stamped all the same, so the next start does not redo it
    doc = json.loads(path.read_text())
    doc["boot_id"] = "an-earlier-boot"
    path.write_text(json.dumps(doc))
    ipam.allocate(store, "boot2", "c" * 64)
    assert json.loads(path.read_text())["boot_id"] == proc.boot_id()


def test_two_stores_on_one_bridge_never_share_an_address(tmp_path, routes):
    stores = [Store(tmp_path / name) for name in ("one", "two")]
    for st in stores:  # as two stores' default networks on pmd0
        networks.create_network(st, "shared", subnet="10.22.0.0/24", bridge="pmdt-shared")
    got = []
    for i, st in enumerate(stores * 2):
        cid = f"{i:064x}"
        containers_exist(Path(st.root), cid)
        got.append(ipam.allocate(st, "shared", cid)[0])
    assert len(set(got)) == 4, got
    ipam.release(stores[0], "shared", f"{0:064x}")
    containers_exist(Path(stores[1].root), "e" * 64)
    assert ipam.allocate(stores[1], "shared", "e" * 64)[0] == got[0]  # freed in the book too


def test_ipam_skips_a_gateway_in_the_middle(store):
    networks.create_network(store, "mid", subnet="10.21.0.0/29", gateway="10.21.0.3")
    got = [ipam.allocate(store, "mid", f"{i:064x}")[0] for i in range(5)]
    assert got == ["10.21.0.1", "10.21.0.2", "10.21.0.4", "10.21.0.5", "10.21.0.6"]


def test_ipam_unknown_network(store):
    with pytest.raises(NotFound):
        ipam.allocate(store, "nope", "a" * 64)


def _allocate_many(root: str, worker: int, n: int, out) -> None:
    st = Store(root)
    out.put([ipam.allocate(st, "busy", f"{worker:032x}{i:032x}")[0] for i in range(n)])


def test_ipam_concurrent_processes_never_share(store, root):
    networks.create_network(store, "busy", subnet="10.30.0.0/24")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_allocate_many, args=(str(root), w, 25, q)) for w in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    addrs = [a for r in results for a in r]
    assert len(addrs) == 100 and len(set(addrs)) == 100
    assert sorted(addrs, key=lambda a: int(a.rsplit(".", 1)[1])) == \
        [f"10.30.0.{n}" for n in range(2, 102)]
    assert len(NetworkStore(store).allocations("busy")) == 100


# --------------------------------------------------------------------------------------------
# the rules, as built (pure)


def _net(internal: bool = False) -> networks.Network:
    return networks.Network(name="n", id="a" * 64, bridge="pmd-aaaa", subnet="10.5.0.0/24",
                     gateway="10.5.0.1", created="", internal=internal)


def _flat(rules):
    return [(t, c, " ".join(r)) for t, c, r in rules]


def test_network_rules():
    rules = _flat(firewall.network_rules(_net()))
    assert ("nat", "PMD-POSTROUTING", "-s 10.5.0.0/24 ! -o pmd-aaaa -m comment --comment "
            "pmd:pmd-aaaa:masquerade -j MASQUERADE") in rules
    assert ("filter", "PMD-FORWARD", "-o pmd-aaaa -m conntrack --ctstate RELATED,ESTABLISHED "
            "-m comment --comment pmd:pmd-aaaa:replies -j ACCEPT") in rules
    assert any(c == "PMD-INPUT" and "-d 127.0.0.0/8" in r and r.endswith("-j DROP")
               for _, c, r in rules)
    comments = [r.split("--comment ")[1].split()[0] for _, _, r in rules]
    assert len(comments) == len(set(comments)) == 6  # one per rule: the fast check relies on it
    # internal: members only, nothing to or from the outside
    internal = _flat(firewall.network_rules(_net(internal=True)))
    assert not any("masquerade" in r or ":out " in r or ":replies " in r for _, _, r in internal)
    assert any(":members " in r for _, _, r in internal)


def test_port_rules():
    rules = _flat(ports.port_rules(_net(), "10.5.0.2", ports.PortMapping("127.0.0.1", 8080, 80)))
    assert rules[0] == ("nat", "PMD-DNAT", "-p tcp -d 127.0.0.1 --dport 8080 -m comment "
                        "--comment pmd:pmd-aaaa:port:10.5.0.2 -j DNAT --to-destination 10.5.0.2:80")
    assert rules[1][1] == "PMD-FORWARD" and "-d 10.5.0.2/32 ! -i pmd-aaaa -o pmd-aaaa" in rules[1][2]
    every = _flat(ports.port_rules(_net(), "10.5.0.2", ports.PortMapping("", 53, 53, "udp")))
    assert every[0][2].startswith("-p udp --dport 53 ")  # no -d: every host address


def test_release_stale(store):
    networks.create_network(store, "a", subnet="10.40.0.0/24")
    networks.create_network(store, "b", subnet="10.41.0.0/24")
    ipam.allocate(store, "a", "1" * 64)
    ipam.allocate(store, "a", "2" * 64)
    ipam.allocate(store, "b", "2" * 64)
    ipam.allocate(store, "b", "3" * 64)
    freed = ipam.release_stale(store, live={"1" * 64, "3" * 64})
    assert sorted(freed) == [("a", "10.40.0.3", "2" * 64), ("b", "10.41.0.2", "2" * 64)]
    assert NetworkStore(store).allocations("a") == {"10.40.0.2": "1" * 64}
    assert NetworkStore(store).allocations("b") == {"10.41.0.3": "3" * 64}
    assert ipam.release_stale(store, live={"1" * 64, "3" * 64}) == []


def test_nft_rules_and_published(monkeypatch):
    from pyminidocker.network import nft

    rules = nft.network_rules("pmd-aaaa", "10.5.0.0/24", internal=False)
    assert ("postrouting", 'ip saddr 10.5.0.0/24 oifname != "pmd-aaaa" masquerade',
            "pmd:pmd-aaaa:masquerade") in rules
    assert [c for _, _, c in rules] == [c for _, _, r in firewall.network_rules(_net())
                                        for c in [r[r.index("--comment") + 1]]]
    assert len(nft.network_rules("pmd-aaaa", "10.5.0.0/24", internal=True)) == 3
    ports = nft.port_rules("pmd-aaaa", "10.5.0.2", "tcp", "127.0.0.1", 8080, 80)
    assert ports[0] == ("published", "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.5.0.2:80",
                        "pmd:pmd-aaaa:port:10.5.0.2 tcp 127.0.0.1 8080 80 dnat")
    every = nft.port_rules("pmd-aaaa", "10.5.0.2", "udp", "", 53, 53)
    monkeypatch.setattr(nft, "rules", lambda: [(c, i, t) for i, (c, _, t) in
                                               enumerate(ports + every + rules)])
    assert nft.published() == [("tcp", "127.0.0.1", 8080), ("udp", "", 53)]
