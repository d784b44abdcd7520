"""The host side of networking: networks, IPAM, the bridge, NAT and published ports.

The cold path (bridge administration, iptables) lives here; the per-container veth work is done
in C. Nothing here sends a packet.

Networks are records in the store (store/networks.py). The default network is named "bridge",
its interface "pmd0"; user networks get "pmd-<11 hex of the id>" (Docker's "br-<12 hex>" has a
3-letter prefix; ours has 4, and an interface name has at most 15 characters, IFNAMSIZ - 1).

Host state is made of, and only of:
  - one Linux bridge per network, created with pyroute2, tagged with the alias "pyminidocker"
    (IFLA_IFALIAS) so that reset_host() finds exactly the bridges the engine created;
  - net.ipv4.ip_forward = 1 (never set back: other software on the host may rely on it, as
    Docker does), and net.ipv4.conf.<bridge>.route_localnet = 1 (see "Loopback" below);
  - iptables rules in chains of the engine's own, each rule tagged with the comment
    "pmd:<bridge>:<what>" so that one network's rules can be found and removed as a group
    (and a second ensure_bridge() can see with one iptables-save that they are all there):
        nat    PMD-POSTROUTING  <- POSTROUTING          MASQUERADE for the subnets
        nat    PMD-DNAT         <- PREROUTING, OUTPUT   DNAT for published ports
                                   (-m addrtype --dst-type LOCAL)
        filter PMD-FORWARD      <- FORWARD              accept to/from/between the bridges
        filter PMD-INPUT        <- INPUT                guard for route_localnet (below)
    Jumps are inserted first in the built-in chains (a host whose FORWARD policy is DROP, as
    Docker leaves it, still forwards our traffic). When the last network's rules go, the chains
    and their jumps go too, so an idle host shows no PMD line in iptables-save.

All changes of host state are made under a host-wide lock (/run/pyminidocker/network.lock):
iptables and the bridges are shared by every store on the host, so the store lock is not enough.
Every step is idempotent (iptables -C before -A/-I; an existing bridge or address is reused).

Loopback (127.0.0.1:HOSTPORT): route_localnet, not a userland proxy. The engine is daemonless:
a proxy would be one more process per published port for the monitor to keep alive, and it
hides the client's address from the container. With route_localnet=1 on the bridge, a packet
from 127.0.0.1 DNATed in OUTPUT may leave through the bridge; a MASQUERADE for
-s 127.0.0.0/8 -o BRIDGE gives it the gateway's address, so the container's reply comes back.
route_localnet also lets a packet that *arrives* on the bridge be addressed to 127.0.0.0/8,
which would expose the host's loopback services to containers (the kube-proxy CVE-2020-8558);
PMD-INPUT drops such packets unless they belong to a connection the host opened (RELATED,
ESTABLISHED) or were DNATed. Only the bridge gets route_localnet, never "all".

nftables: where the iptables binary is missing (iptables-nft counts as iptables), the same rules
go into a table of the engine's own, `ip pyminidocker`, by the nft binary (network_nft.py).
"""
from __future__ import annotations

import errno
import os
import time

from pyminidocker.errors import Conflict, CorruptRecord, NotFound, PmdError, UsageError, suppress
from pyminidocker.record import dataclass
from pyminidocker.store.files import FileLock, valid_name
from pyminidocker.store.networks import Network, NetworkStore

# A container's start on a bridge runs get_network, allocate, ensure_bridge (when all is in
# place already) and release: those stay clear of modules whose import costs milliseconds
# (ipaddress, subprocess, shutil, socket and re, through enum and functools). The rest of the
# module imports them where it needs them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterable
    from ipaddress import IPv4Address, IPv4Network
    from typing import Any

    from pyminidocker.config import Config
    from pyminidocker.store import Store

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")
BRIDGE_ALIAS = "pyminidocker"
HOST_LOCK = "/run/pyminidocker/network.lock"

_pool: tuple[IPv4Network, ...] = ()


def pool() -> tuple[IPv4Network, ...]:
    """Like Docker's default address pools (172.17-31/16, then 192.168.x/20), but starting
    where neither Docker's docker0 (172.17) nor Podman's podman0 (10.88) usually lives; every
    network without an explicit subnet takes the first one that overlaps no host route and no
    other network, so 10.88 is skipped only on a host where Podman's route is really there."""
    global _pool
    if not _pool:
        from ipaddress import IPv4Network

        _pool = (*(IPv4Network(f"10.{b}.0.0/16") for b in range(77, 100)),
                 IPv4Network("172.30.0.0/16"), IPv4Network("172.31.0.0/16"),
                 *(IPv4Network(f"192.168.{c}.0/20") for c in range(0, 256, 16)))
    return _pool


def __getattr__(name: str) -> Any:
    if name == "POOL":  # built on first use: it needs ipaddress
        return pool()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# (table, chain, [(builtin chain, jump rule), ...]) in the order they are created
CHAINS: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("nat", "PMD-POSTROUTING", (("POSTROUTING", ()),)),
    ("nat", "PMD-DNAT", (("PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL")),
                         ("OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL")))),
    ("filter", "PMD-FORWARD", (("FORWARD", ()),)),
    ("filter", "PMD-INPUT", (("INPUT", ()),)),
)

_PROTOS = ("tcp", "udp")


# --------------------------------------------------------------------------------------------
# Parsing and validation (pure)


@dataclass(frozen=True)
class PortMapping:
    """One published port. host_ip "" means every address; host_port 0 means "pick one"."""

    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        return f"{self.container_port}/{self.proto} -> {self.host_ip or '0.0.0.0'}:" \
               f"{self.host_port}"


def parse_subnet(text: str) -> IPv4Network:
    """"10.1.0.0/24" -> IPv4Network. Raises UsageError for a bad CIDR, host bits set, IPv6,
    or a subnet too small to hold a gateway and one container (/31, /32)."""
    import ipaddress

    if "/" not in text:
        raise UsageError(f"invalid CIDR address: {text}")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise UsageError(f"invalid CIDR address: {text}") from None
    if iface.version != 4:
        raise UsageError(f"invalid subnet {text}: IPv6 networks are not supported")
    net = iface.network
    if iface.ip != net.network_address:
        raise UsageError(f"invalid subnet {text}: it should be {net}")
    if net.prefixlen > 30:
        raise UsageError(f"invalid subnet {text}: too small (a /30 at most)")
    return ipaddress.IPv4Network(net)


def parse_gateway(text: str, subnet: IPv4Network) -> IPv4Address:
    """Raises UsageError if not an IPv4 address usable as a host of subnet."""
    from ipaddress import IPv4Address

    try:
        gw = IPv4Address(text)
    except ValueError:
        raise UsageError(f"invalid gateway address: {text}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"no matching subnet for gateway {text}: not a host address of "
                         f"{subnet}")
    return gw


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid {what}: {text}")
    return int(text)


def _port_range(text: str, what: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    if not sep:
        return [_port(text, what)]
    a, b = _port(lo, what), _port(hi, what)
    if b < a:
        raise UsageError(f"invalid {what}: {text}")
    return list(range(a, b + 1))


def parse_publish(spec: str) -> list[PortMapping]:
    """Docker's -p syntax: [[HOSTIP:]HOSTPORT:]CONTAINERPORT[/PROTO], each port may be a range
    (8080-8081:80-81). No host port ("80", "127.0.0.1::80") gives host_port 0: publish() picks
    a free one. Raises UsageError with Docker's wording."""
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in _PROTOS:
        raise UsageError(f"invalid proto: {proto}")
    # an IPv6 host address would be bracketed; unsupported, so every ':' is a separator
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host_port, cport = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, host_port, cport = "", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, cport = parts
    else:
        raise UsageError(f"invalid port format: {spec}")
    if host_ip:
        from ipaddress import IPv4Address

        try:
            ip = IPv4Address(host_ip)
        except ValueError:
            raise UsageError(f"invalid IP address: {host_ip}") from None
        host_ip = "" if ip == IPv4Address("0.0.0.0") else str(ip)
    if not cport:
        raise UsageError(f"no port specified: {spec}<empty>")
    cports = _port_range(cport, "containerPort")
    if host_port:
        hports = _port_range(host_port, "hostPort")
        if len(hports) != len(cports):
            raise UsageError(f"invalid ranges specified for container and host Ports: "
                             f"{cport} and {host_port}")
    else:
        hports = [0] * len(cports)
    return [PortMapping(host_ip, h, c, proto) for h, c in zip(hports, cports)]


def check_network_name(name: str) -> str:
    """Raises UsageError."""
    if not valid_name(name) or len(name) > 128:
        raise UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                         "allowed")
    return name


# --------------------------------------------------------------------------------------------
# Subnet choice (pure, over a given list of taken subnets)


def overlaps(net: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    """The first of taken that overlaps net, or None."""
    return next((t for t in taken if net.overlaps(t)), None)


def choose_subnet(candidates: Iterable[IPv4Network],
                  taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first candidate that overlaps nothing taken. Raises PmdError when none is free."""
    taken = list(taken)
    for cand in candidates:
        if overlaps(cand, taken) is None:
            return cand
    raise PmdError("could not find an available, non-overlapping IPv4 address pool among the "
                   "defaults to assign to the network",
                   hint="pass --subnet, or set default-subnet in the engine's config.json")


def host_routes(exclude_ifnames: Iterable[str] = ()) -> list[IPv4Network]:
    """The IPv4 destinations routed on the host (every table but "local"; no default route),
    except those through the interfaces named. Raises PmdError if netlink fails."""
    import socket
    from ipaddress import IPv4Network

    from pyroute2 import IPRoute  # cold path only: never imported by run/start

    out = []
    try:
        with IPRoute() as ipr:
            skip = set()
            for name in exclude_ifnames:
                skip.update(ipr.link_lookup(ifname=name))
            for r in ipr.get_routes(family=socket.AF_INET):
                # the local table (255) holds the host's own addresses, not networks
                if r.get_attr("RTA_TABLE") == 255 or r["dst_len"] == 0:
                    continue
                if r.get_attr("RTA_OIF") in skip:
                    continue
                dst = r.get_attr("RTA_DST")
                if dst:
                    out.append(IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
    except OSError as e:
        raise PmdError(f"cannot read the host's routes: {e}") from None
    return out


# --------------------------------------------------------------------------------------------
# Network records


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _new_id(existing: Iterable[Network]) -> str:
    used = {n.id[:11] for n in existing}
    while True:
        nid = os.urandom(32).hex()
        if nid[:11] not in used:  # the bridge name is made of these
            return nid


def _resolve(ns: NetworkStore, name_or_id: str) -> Network:
    """By name, full id or unique id prefix. Raises NotFound, Conflict (ambiguous prefix),
    CorruptRecord (the network of that name has a corrupt record)."""
    with suppress(NotFound):
        if valid_name(name_or_id):
            return ns.get(name_or_id)
    matches = [n for n in ns.all() if n.id.startswith(name_or_id)] if name_or_id else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise Conflict(f"network {name_or_id} is ambiguous ({len(matches)} matches found based "
                       "on ID prefix)")
    raise NotFound(f"network {name_or_id} not found")


def _host_routes_or_none(exclude: Iterable[str]) -> list[IPv4Network]:
    try:
        return host_routes(exclude)
    except (ImportError, PmdError):
        # no netlink (unprivileged sandbox): other networks are still avoided
        return []


def _bridge_routes(own_bridge: str | None) -> list[IPv4Network]:
    """The IPv4 routes the host has through bridge interfaces other than own_bridge (from
    /proc/net/route: no netlink needed)."""
    import socket
    import struct
    from ipaddress import IPv4Network

    out = []
    try:
        with open("/proc/net/route") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return []
    for row in rows:
        if len(row) < 8 or row[0] == own_bridge or \
                not os.path.isdir(f"/sys/class/net/{row[0]}/bridge"):
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(row[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(row[7], 16)))
        if mask != "0.0.0.0":
            out.append(IPv4Network(f"{dest}/{mask}", strict=False))
    return out


def _create_locked(ns: NetworkStore, name: str, subnet: str | None, gateway: str | None,
                   bridge: str | None, internal: bool, labels: dict[str, str] | None,
                   candidates: Iterable[IPv4Network] | None = None) -> Network:
    """Caller holds the store lock."""
    import re
    from ipaddress import IPv4Network

    existing = ns.all()
    if any(n.name == name for n in existing):
        raise Conflict(f"network with name {name} already exists")
    others = [IPv4Network(n.subnet) for n in existing]
    if subnet is not None:
        net = parse_subnet(subnet)
        # an explicit subnet is the user's decision, even over a host route (as Docker), but
        # not over another bridge's (another engine's network): two bridges would route the
        # same addresses and neither would work
        if overlaps(net, [*others, *_bridge_routes(bridge)]) is not None:
            raise Conflict("Pool overlaps with other one on this address space")
    else:
        net = choose_subnet(candidates or pool(),
                            [*others, *_host_routes_or_none([bridge] if bridge else [])])
    gw = parse_gateway(gateway, net) if gateway else net.network_address + 1
    nid = _new_id(existing)
    br = bridge or f"pmd-{nid[:11]}"
    if len(br) > 15 or not re.fullmatch(r"[a-zA-Z0-9_.-]+", br):
        raise UsageError(f"invalid bridge name {br!r}: at most 15 of [a-zA-Z0-9_.-]")
    if any(n.bridge == br for n in existing):
        raise Conflict(f"bridge {br} is already used by another network")
    rec = Network(name=name, id=nid, bridge=br, subnet=str(net), gateway=str(gw),
                  created=_now(), internal=internal, labels=dict(labels or {}))
    ns.put(rec)
    ns.put_allocations(name, {})
    return rec


def create_network(store: Store, name: str, subnet: str | None = None,
                   gateway: str | None = None, bridge: str | None = None,
                   internal: bool = False, labels: dict[str, str] | None = None) -> Network:
    """Record a user network (its bridge is made by ensure_bridge(), on first use).

    Without subnet, the first pool subnet that overlaps no host route and no other network.
    Raises UsageError (bad name, CIDR, gateway; a predefined name), Conflict (name taken,
    "Pool overlaps with other one on this address space"), PmdError (pool exhausted),
    StoreError.
    """
    check_network_name(name)
    if name in PREDEFINED:
        raise UsageError(f"{name} is a pre-defined network and cannot be created")
    with store.lock():
        return _create_locked(NetworkStore(store), name, subnet, gateway, bridge, internal,
                              labels)


def default_network(store: Store, cfg: Config | None = None) -> Network:
    """The "bridge" network's record, created on first use from the engine's config: its
    default-subnet (else 10.77.0.0/16) if that overlaps no host route and no other network,
    else the next free pool subnet; gateway default-gateway or .1; bridge default-bridge or
    "pmd0". Raises UsageError (a bad config value), PmdError (pool exhausted), StoreError."""
    ns = NetworkStore(store)
    with suppress(NotFound):
        return ns.get(DEFAULT_NETWORK)
    from ipaddress import IPv4Address, IPv4Network

    first = parse_subnet(cfg.default_subnet) if cfg and cfg.default_subnet else pool()[0]
    gateway = cfg.default_gateway if cfg else None
    bridge = cfg.default_bridge if cfg else "pmd0"
    with store.lock():
        with suppress(NotFound):
            return ns.get(DEFAULT_NETWORK)  # made by another process while we waited
        existing = ns.all()
        taken = [*(IPv4Network(n.subnet) for n in existing), *_host_routes_or_none([bridge])]
        net = choose_subnet([first, *(p for p in pool() if p != first)], taken)
        if gateway and IPv4Address(gateway) not in net:
            gateway = None  # configured for a subnet we had to skip
        return _create_locked(ns, DEFAULT_NETWORK, str(net), gateway, bridge, False, None)


def list_networks(store: Store, warnings: list[str] | None = None) -> list[Network]:
    """Every readable network record, by name; a line for each corrupt one is appended to
    warnings. Raises StoreError."""
    ns = NetworkStore(store)
    nets = ns.all()
    if warnings is not None:
        warnings += ns.corrupt.values()
    return nets


def inspect_network(store: Store, name_or_id: str) -> dict[str, Any]:
    """Docker-like inspect document. Raises NotFound, Conflict (ambiguous id), StoreError."""
    from ipaddress import IPv4Address

    ns = NetworkStore(store)
    net = _resolve(ns, name_or_id)
    alloc = ns.allocations(net.name)
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
        "Driver": net.driver, "EnableIPv6": False, "Internal": net.internal,
        "IPAM": {"Driver": "default",
                 "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}]},
        "Options": {"com.docker.network.bridge.name": net.bridge},
        "Labels": dict(net.labels),
        "Containers": {cid: {"IPv4Address": f"{addr}/{net.prefix_len}"}
                       for addr, cid in sorted(alloc.items(), key=lambda kv: IPv4Address(kv[0]))},
    }


def remove_network(store: Store, name_or_id: str, attached: Iterable[str] = (),
                   force: bool = False) -> Network | None:
    """Remove a user network: its host state, then its record.

    Refused while a container is attached: `attached` (container ids the caller knows of) or
    addresses still allocated. force: a network whose record is corrupt is removed too, with
    the bridge and rules its record still names (returns None). Raises NotFound, Conflict
    (in use; a predefined network), CorruptRecord (without force), PmdError (host state),
    StoreError.
    """
    ns = NetworkStore(store)
    with store.lock():
        try:
            net = _resolve(ns, name_or_id)
        except CorruptRecord as e:
            if not force or e.object_id in PREDEFINED:
                raise
            bridge = ns.salvage_bridge(e.object_id)
            if bridge:
                remove_network_host_state(Network(name=e.object_id, id="", bridge=bridge,
                                                  subnet="0.0.0.0/0", gateway="", created=""))
                _forget_names(store, bridge)
            ns.delete(e.object_id)
            return None
        if net.name in PREDEFINED:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        _reconcile_locked(ns, net)  # what killed commands left holds nothing
        users = set(attached) | set(ns.allocations(net.name).values())
        if users:
            raise Conflict(f"error while removing network: network {net.name} id {net.id} has "
                           f"active endpoints ({', '.join(sorted(u[:12] for u in users))})")
        remove_network_host_state(net)
        _forget_names(store, net.bridge)
        ns.delete(net.name)
    return net


def prune_networks(store: Store, in_use: Iterable[str] = ()) -> list[str]:
    """Remove every user network with no allocated address whose name or id is not in
    in_use. Returns the names removed. Raises PmdError, StoreError."""
    keep = set(in_use)
    removed = []
    ns = NetworkStore(store)
    with store.lock():
        for net in ns.all():
            if net.name in PREDEFINED or net.name in keep or net.id in keep:
                continue
            _reconcile_locked(ns, net)
            if ns.allocations(net.name):
                continue
            remove_network_host_state(net)
            _forget_names(store, net.bridge)
            ns.delete(net.name)
            removed.append(net.name)
    return removed


def _forget_names(store: Store, bridge: str) -> None:
    """The removed network's names leave the store's DNS server (left there by a crash)."""
    from pyminidocker.network import dns

    dns.drop_network(store, bridge)


# --------------------------------------------------------------------------------------------
# IPAM


def _ip_int(address: str) -> int:
    return int.from_bytes(bytes(int(b) for b in address.split(".")), "big")


def _ip_str(n: int) -> str:
    return ".".join(str(b) for b in n.to_bytes(4, "big"))


def _host_range(net: Network) -> tuple[int, int, int]:
    """(network address, broadcast address, gateway) of the network, as integers."""
    first = _ip_int(net.subnet.partition("/")[0])
    return first, first | ((1 << (32 - net.prefix_len)) - 1), _ip_int(net.gateway)


def check_address(net: Network, address: str) -> None:
    """A --ip the network can give: in its subnet, not its network, broadcast or gateway
    address. Raises UsageError (Docker's words)."""
    first, broadcast, gw = _host_range(net)
    n = _ip_int(address)
    if not first < n < broadcast:
        raise UsageError(f"Invalid address {address}: It does not belong to any of this "
                         "network's subnets")
    if n == gw:
        raise Conflict("Address already in use")


def _allocate_locked(ns: NetworkStore, net: Network, container_id: str,
                     want: str | None = None) -> str:
    """Caller holds the store lock. The address is recorded (durably, with this command as
    its owner) in the store and in the bridge's host-wide book before it is returned; when
    none is free, what killed commands left is reconciled first (_reconcile_locked). want:
    that address (--ip), or Conflict if someone else holds it."""
    from pyminidocker import proc
    from pyminidocker.network import ipam

    # Integer arithmetic on the record's subnet and gateway, which were validated (with
    # ipaddress) when the network was created: ipaddress is not imported on a start.
    alloc, owners = ns.book(net.name)
    for held, cid in alloc.items():
        if cid == container_id:
            return held  # idempotent: a retried create keeps its address
    first, broadcast, gw = _host_range(net)
    if want:
        check_address(net, want)
        first, broadcast = _ip_int(want) - 1, _ip_int(want) + 1  # that one or none
    root = ns.store.root
    with ipam.Book(net.bridge) as book:
        for attempt in range(2):
            used = {_ip_int(a) for a in (*alloc, *book.others(root, container_id))}
            # hosts only: not the network address, not the broadcast address, not the gateway
            for n in range(first + 1, broadcast):
                if n != gw and n not in used:
                    addr = _ip_str(n)
                    alloc[addr] = container_id
                    owners[addr] = book_owner = proc.token()
                    ns.put_allocations(net.name, alloc, owners)
                    book.entries[addr] = [root, container_id, book_owner]
                    book.save()
                    return addr
            if attempt == 0:
                _reconcile_locked(ns, net, book)
                alloc, owners = ns.book(net.name)
    if want:
        raise Conflict("Address already in use")
    raise PmdError(f"no available IPv4 addresses on network {net.name}")


def allocate(store: Store, network: str | Network, container_id: str,
             want: str | None = None) -> tuple[str, int, str]:
    """Give container_id the lowest free address of the network (its own, if it has one
    already; want: that one). Returns (address, prefix length, gateway). Raises NotFound
    (network), PmdError "no available IPv4 addresses on network X", Conflict and
    UsageError (want), StoreError."""
    ns = NetworkStore(store)
    name = network.name if isinstance(network, Network) else network
    with store.lock():
        net = ns.get(name)  # read under the lock: the record may have changed
        addr = _allocate_locked(ns, net, container_id, want)
    return addr, net.prefix_len, net.gateway


def release(store: Store, network: str | Network, container_id: str) -> list[str]:
    """Free every address of container_id on the network; no error if it has none (rm after a
    crash). Returns the addresses freed. Raises StoreError."""
    from pyminidocker.network import ipam

    ns = NetworkStore(store)
    name = network.name if isinstance(network, Network) else network
    with store.lock():
        alloc, owners = ns.book(name)
        freed = [a for a, cid in alloc.items() if cid == container_id]
        if freed:
            for a in freed:
                del alloc[a]
            ns.put_allocations(name, alloc, owners)
        bridge = network.bridge if isinstance(network, Network) else None
        if bridge is None:
            with suppress(PmdError):
                bridge = ns.get(name).bridge
        if bridge:
            with ipam.Book(bridge) as book:
                mine = [a for a, (r, c, _) in book.entries.items()
                        if r == store.root and c == container_id]
                for a in mine:
                    del book.entries[a]
                if mine:
                    book.save()
    return freed


def _reconcile_locked(ns: NetworkStore, net: Network, book: Any = None,
                      live: Iterable[str] | None = None) -> list[str]:
    """Free the network's stale addresses (network/ipam.py says which; with live, those of a
    container not in live) and remove their published ports' rules. Caller holds the store
    lock, and the bridge's book if given. Returns the addresses freed."""
    from pyminidocker.network import ipam

    if book is None:
        with ipam.Book(net.bridge) as book:
            return _reconcile_locked(ns, net, book, live)
    keep = set(live) if live is not None else None
    alloc, owners = ns.book(net.name)
    root = ns.store.root
    stale = [a for a, cid in alloc.items()
             if (cid not in keep if keep is not None
                 else not ipam.holder_alive(root, cid, owners.get(a, "")))]
    if stale:
        ns.put_allocations(net.name, {a: c for a, c in alloc.items() if a not in stale}, owners)
    gone = {a for a, (r, c, _) in book.entries.items() if r == root and a in stale}
    for a in gone:
        del book.entries[a]
    if book.drop_stale() or gone:
        book.save()
    for a in stale:  # their port rules: nobody else knows the address any more
        with suppress(PmdError):
            unpublish_all(net, a)
    return stale


def release_stale(store: Store, live: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """The reconciliation after a crash (kill -9 of `run`, a host crash): free every stale
    address of every network (network/ipam.py; with live, every address of a container not
    in live) and the rules of its published ports. Returns (network, address, container id)
    of each one freed. Raises StoreError."""
    ns = NetworkStore(store)
    freed = []
    with store.lock():
        for net in ns.all():
            alloc = ns.allocations(net.name)
            freed += [(net.name, a, alloc[a]) for a in _reconcile_locked(ns, net, live=live)]
    return freed


@dataclass(frozen=True)
class Endpoint:
    """What the per-container (C) side needs to plug a container into a network."""

    network: str
    bridge: str
    address: str
    prefix_len: int
    gateway: str


def get_network(store: Store, name: str, cfg: Config | None = None) -> Network:
    """The record of network `name` (or id); "bridge" is the default network, recorded on
    first use from cfg. Raises NotFound, UsageError, PmdError, StoreError."""
    if name == DEFAULT_NETWORK:
        return default_network(store, cfg)
    return _resolve(NetworkStore(store), name)


def connect(store: Store, network: str, container_id: str,
            cfg: Config | None = None, rules: Capture | None = None,
            address: str | None = None) -> Endpoint:
    """Everything the host needs before a container joins `network` ("bridge": the default
    network, recorded on first use from cfg): the bridge and rules (ensure_bridge) and an
    address. The address is released again if the host cannot be set up. "host" and "none"
    are not networks of this module: the caller handles them (no endpoint). rules: a
    rules_snapshot() taken before the container's address was allocated, if any. address:
    the one wanted (--ip).
    Raises NotFound (network), PmdError (no address left; netlink, iptables), Conflict (the
    address wanted is taken), StoreError."""
    net = get_network(store, network, cfg)
    addr, plen, gw = allocate(store, net, container_id, address)
    try:
        ensure_bridge(net, rules)
    except BaseException:
        release(store, net, container_id)
        raise
    return Endpoint(net.name, net.bridge, addr, plen, gw)


def address_of(store: Store, network: str, container_id: str) -> str:
    """The address the network's record holds for container_id, "" if none (or no such
    network, or a corrupt one)."""
    with suppress(PmdError):
        for addr, cid in NetworkStore(store).allocations(network).items():
            if cid == container_id:
                return addr
    return ""


def check_wanted(store: Store, network: str, address: str) -> None:
    """At create, what starting with --ip address would refuse: an address the network
    cannot give, or one a live container holds. Raises NotFound, UsageError, Conflict."""
    from pyminidocker.network import ipam

    net = get_network(store, network)
    check_address(net, address)
    alloc, owners = NetworkStore(store).book(net.name)
    if address in alloc and ipam.holder_alive(store.root, alloc[address],
                                              owners.get(address, "")):
        raise Conflict("Address already in use")


def disconnect(store: Store, network: str, container_id: str) -> None:
    """Release the container's address on the network; a network that no longer exists is
    fine (rm after network rm --force, or a crash). The bridge stays (removed by network rm,
    prune or reset_host). Raises StoreError."""
    with suppress(NotFound):
        release(store, _resolve(NetworkStore(store), network), container_id)


# --------------------------------------------------------------------------------------------
# iptables


def _which(name: str) -> str | None:
    """shutil.which for a plain command name (shutil costs milliseconds to import)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


class Capture:
    """The output of a command started now and read later (result()), so that a container's
    start can do its other work meanwhile. os.posix_spawn and a pipe: the subprocess module
    costs milliseconds to import, and this runs on a container's start."""

    def __init__(self, argv: list[str]):
        self.pid, self.fd = 0, -1
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, w, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2)])
                self.fd, r = r, -1
            finally:
                os.close(null)
        except OSError:
            pass  # result() is None
        finally:
            os.close(w)
            if r >= 0:
                os.close(r)

    def result(self) -> str | None:
        """Its output, or None if it could not run or failed. Once: then it is closed."""
        if self.fd < 0:
            return None
        chunks = []
        with open(self.fd, "rb") as f:
            self.fd = -1
            while chunk := f.read(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode() if self._reap() == 0 else None

    def close(self) -> None:
        """Drop it unread (idempotent): no descriptor or zombie is left."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._reap()

    def _reap(self) -> int:
        if not self.pid:
            return -1
        pid, self.pid = self.pid, 0
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def rules_snapshot() -> Capture | None:
    """Start reading the host's iptables rules for a later ensure_bridge(), or None where
    the rules are nftables' (network_nft)."""
    path = _which("iptables")
    return Capture([path + "-save"]) if path else None


def _iptables_bin() -> str:
    path = _which("iptables")
    if path is None:
        raise PmdError("iptables not found: cannot set up NAT for container networks",
                       hint="install iptables or nftables")
    return path


def _backend() -> str:
    """"iptables" where its binary is (iptables-nft included), else "nft" (network_nft).
    Raises PmdError when there is neither."""
    if _which("iptables"):
        return "iptables"
    if _which("nft"):
        return "nft"
    raise PmdError("neither iptables nor nft found: cannot set up NAT for container networks",
                   hint="install iptables or nftables")


def _ipt(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run iptables -w -t TABLE ARGS. Raises PmdError on failure if check."""
    import shlex
    import subprocess

    argv = [_iptables_bin(), "-w", "-t", table, *args]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, check=False,
                             stdin=subprocess.DEVNULL)
    except OSError as e:
        raise PmdError(f"cannot run iptables: {e}") from None
    if check and res.returncode != 0:
        raise PmdError(f"{shlex.join(argv[1:])}: "
                       f"{res.stderr.strip() or f'exit status {res.returncode}'}")
    return res


def _chains(table: str) -> set[str]:
    out = _ipt(table, "-S").stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith(("-N ", "-P "))}


def _has_rule(table: str, chain: str, rule: tuple[str, ...] | list[str]) -> bool:
    return _ipt(table, "-C", chain, *rule, check=False).returncode == 0


def _add_rule(table: str, chain: str, rule: tuple[str, ...] | list[str],
              first: bool = False) -> None:
    """Add rule unless an identical one is there (iptables -C)."""
    if not _has_rule(table, chain, rule):
        _ipt(table, *(("-I", chain, "1") if first else ("-A", chain)), *rule)


def _del_rule(table: str, chain: str, rule: tuple[str, ...] | list[str]) -> None:
    """Delete every copy of rule; none is fine."""
    while _has_rule(table, chain, rule):
        _ipt(table, "-D", chain, *rule)


def _ensure_chains() -> None:
    for table, chain, jumps in CHAINS:
        if chain not in _chains(table):
            # "Chain already exists" if another engine instance without our lock raced us
            res = _ipt(table, "-N", chain, check=False)
            if res.returncode != 0 and chain not in _chains(table):
                raise PmdError(f"iptables -t {table} -N {chain}: {res.stderr.strip()}")
        for builtin, match in jumps:
            _add_rule(table, builtin, (*match, "-j", chain), first=True)


def _rules_of(table: str, chain: str) -> list[list[str]]:
    """The rules of chain as argument lists (after "-A CHAIN"); [] if there is no chain."""
    import shlex

    res = _ipt(table, "-S", chain, check=False)
    if res.returncode != 0:
        return []
    return [shlex.split(line)[2:] for line in res.stdout.splitlines()
            if line.startswith(f"-A {chain} ")]


def _drop_empty_chains() -> None:
    """Remove our chains and their jumps once no network has a rule left in any of them."""
    if any(_rules_of(table, chain) for table, chain, _ in CHAINS):
        return
    _remove_all_chains()


def _remove_all_chains() -> None:
    for table, chain, jumps in CHAINS:
        for builtin, match in jumps:
            _del_rule(table, builtin, (*match, "-j", chain))
        if chain in _chains(table):
            _ipt(table, "-F", chain)
            _ipt(table, "-X", chain)


def _tag(net: Network, what: str) -> tuple[str, ...]:
    # one comment per rule: "pmd:<bridge>:" finds a network's rules, the rest tells which
    return ("-m", "comment", "--comment", f"pmd:{net.bridge}:{what}")


def _network_rules(net: Network) -> list[tuple[str, str, tuple[str, ...]]]:
    """(table, chain, rule) of a network, without its published ports."""
    br = net.bridge
    rules = []
    if not net.internal:
        rules += [("nat", "PMD-POSTROUTING", ("-s", net.subnet, "!", "-o", br,
                                              *_tag(net, "masquerade"), "-j", "MASQUERADE"))]
    # 127.0.0.1:PORT DNATed into the bridge keeps its loopback source; give it the gateway's
    rules += [
        ("nat", "PMD-POSTROUTING", ("-s", "127.0.0.0/8", "-o", br, *_tag(net, "loopback"),
                                    "-j", "MASQUERADE")),
        ("filter", "PMD-FORWARD", ("-i", br, "-o", br, *_tag(net, "members"), "-j", "ACCEPT")),
    ]
    if not net.internal:
        rules += [
            ("filter", "PMD-FORWARD", ("-i", br, "!", "-o", br, *_tag(net, "out"),
                                       "-j", "ACCEPT")),
            ("filter", "PMD-FORWARD", ("-o", br, "-m", "conntrack", "--ctstate",
                                       "RELATED,ESTABLISHED", *_tag(net, "replies"),
                                       "-j", "ACCEPT")),
        ]
    # route_localnet guard: nothing from the bridge may open a connection to the host's
    # loopback (replies to 127.0.0.1 clients are ESTABLISHED; published ports are DNAT)
    rules += [("filter", "PMD-INPUT", ("-i", br, "-d", "127.0.0.0/8", "-m", "conntrack",
                                       "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                                       *_tag(net, "loopback-guard"), "-j", "DROP"))]
    return rules


def _port_rules(net: Network, container_ip: str,
                p: PortMapping) -> list[tuple[str, str, tuple[str, ...]]]:
    dst = ("-d", p.host_ip) if p.host_ip else ()
    t = _tag(net, f"port:{container_ip}")  # unpublish_all() finds a container's rules by it
    return [
        ("nat", "PMD-DNAT", ("-p", p.proto, *dst, "--dport", str(p.host_port), *t,
                             "-j", "DNAT", "--to-destination",
                             f"{container_ip}:{p.container_port}")),
        # the accept for the DNATed packet, for hosts whose FORWARD policy is DROP
        ("filter", "PMD-FORWARD", ("-d", f"{container_ip}/32", "!", "-i", net.bridge,
                                   "-o", net.bridge, "-p", p.proto, "--dport",
                                   str(p.container_port), *t, "-j", "ACCEPT")),
        # hairpin: the container reaching itself through its published port
        ("nat", "PMD-POSTROUTING", ("-s", f"{container_ip}/32", "-d", f"{container_ip}/32",
                                    "-p", p.proto, "--dport", str(p.container_port), *t,
                                    "-j", "MASQUERADE")),
    ]


# --------------------------------------------------------------------------------------------
# Host state


def host_lock() -> FileLock:
    """`with host_lock():` serialises changes of the host's bridges and rules among all
    engine processes."""
    os.makedirs(os.path.dirname(HOST_LOCK), mode=0o700, exist_ok=True)
    return FileLock(HOST_LOCK)


def _sysctl(path: str, value: str) -> None:
    p = os.path.join("/proc/sys", path)
    try:
        with open(p, "r+") as f:
            if f.read().strip() != value:
                f.seek(0)
                f.write(value + "\n")
    except OSError as e:
        raise PmdError(f"cannot set {path.replace('/', '.')}={value}: "
                       f"{e.strerror or e}") from None


def _netlink_error(e: Exception, what: str) -> PmdError:
    return PmdError(f"{what}: {getattr(e, 'args', [None, str(e)])[-1]}")


def _link_kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _bridge_ready(net: Network) -> bool:
    """Whether the bridge already is a bridge, up, with the gateway as its address: checked
    with two ioctls and sysfs, so that a container's start does not pay for importing pyroute2
    (~100 ms) when there is nothing to do."""
    import fcntl
    import struct

    try:
        import _socket as socket  # the socket module imports enum and selectors: milliseconds
    except ImportError:  # pragma: no cover - not CPython
        import socket  # type: ignore[no-redef]

    br = net.bridge
    if not os.path.isdir(f"/sys/class/net/{br}/bridge"):
        return False
    siocgifflags, siocgifaddr, siocgifnetmask, iff_up = 0x8913, 0x8915, 0x891B, 0x1
    ifreq = struct.pack("16s16x", br.encode())
    try:
        sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            flags = struct.unpack_from("H", fcntl.ioctl(sk, siocgifflags, ifreq), 16)[0]
            addr = socket.inet_ntoa(fcntl.ioctl(sk, siocgifaddr, ifreq)[20:24])
            mask = fcntl.ioctl(sk, siocgifnetmask, ifreq)[20:24]
        finally:
            sk.close()
    except OSError:
        return False  # no IPv4 address yet, or gone meanwhile
    prefix = bin(int.from_bytes(mask, "big")).count("1")
    return bool(flags & iff_up) and (addr, prefix) == (net.gateway, net.prefix_len)


def _ensure_link(net: Network) -> None:
    if _bridge_ready(net):
        return
    import socket

    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    br = net.bridge
    try:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=br)
            if not idx:
                made = True
                try:
                    ipr.link("add", ifname=br, kind="bridge")
                except NetlinkError as e:
                    if e.code != errno.EEXIST:  # made by someone else meanwhile: reuse it
                        raise
                    made = False
                idx = ipr.link_lookup(ifname=br)
                if made:  # only what we created is tagged, so reset_host() leaves the rest
                    # A fixed address (Docker's 02:42:<gateway>): a bridge without one takes
                    # its lowest port's, and changes it when that port goes, so the members'
                    # ARP entries for the gateway point nowhere for a while (DNS, NAT stop).
                    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in net.gateway.split("."))
                    ipr.link("set", index=idx[0], ifalias=BRIDGE_ALIAS, address=mac)
            i = idx[0]
            kind = _link_kind(ipr.get_links(i)[0])
            if kind != "bridge":
                raise Conflict(f"cannot use {br} for network {net.name}: the interface exists "
                               f"and is a {kind or 'device'}, not a bridge")
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                    for a in ipr.get_addr(index=i, family=socket.AF_INET)}
            if (net.gateway, net.prefix_len) not in have:
                try:
                    ipr.addr("add", index=i, address=net.gateway, prefixlen=net.prefix_len)
                except NetlinkError as e:
                    if e.code != errno.EEXIST:
                        raise
            ipr.link("set", index=i, state="up")
    except NetlinkError as e:
        raise _netlink_error(e, f"cannot set up bridge {br}") from None


def _delete_link(name: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if idx and _link_kind(ipr.get_links(idx[0])[0]) == "bridge":
                ipr.link("del", index=idx[0])
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise _netlink_error(e, f"cannot delete bridge {name}") from None


def ensure_bridge(net: Network, rules_now: Capture | None = None) -> None:
    """Make the host ready for the network: its bridge (created, or reused) with the gateway
    address and up; IPv4 forwarding; route_localnet on the bridge; the engine's chains, jumps
    and the network's rules, each added once (iptables, else the nftables fallback).
    Idempotent; a rule or jump deleted behind our back is put back. rules_now: the host's
    rules read meanwhile (rules_snapshot()) to check them against; else they are read here.
    Raises Conflict (the name is a non-bridge interface), PmdError (netlink, sysctl, iptables,
    nft; neither of them installed).
    """
    with host_lock():
        _ensure_link(net)
        _sysctl("net/ipv4/ip_forward", "1")
        _sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
        if _backend() == "nft":
            from pyminidocker.network import nft

            nft.ensure(nft.network_rules(net.bridge, net.subnet, net.internal))
            return
        rules = _network_rules(net)
        if _all_present(rules, rules_now or rules_snapshot()):
            return
        _ensure_chains()
        for table, chain, rule in rules:
            _add_rule(table, chain, rule)


def _all_present(rules: list[tuple[str, str, tuple[str, ...]]],
                 saved: Capture | None) -> bool:
    """Whether one iptables-save shows our chains, their jumps and these rules (by their
    comments): the common case of a second container on a network costs one process, not
    one iptables -C per rule (each ~3 ms)."""
    text = saved.result() if saved is not None else None
    if text is None:
        return False
    lines = set(text.splitlines())
    for _, chain, jumps in CHAINS:
        if f":{chain} - [0:0]" not in lines and not any(
                line.startswith(f":{chain} ") for line in lines):
            return False
        for builtin, match in jumps:
            if " ".join(("-A", builtin, *match, "-j", chain)) not in lines:
                return False
    return all(f'"{rule[rule.index("--comment") + 1]}"' in text for _, _, rule in rules)


def _remove_tagged_rules(tag: str, exact: bool = False) -> None:
    """Delete the rules of our chains whose comment starts with tag (is tag, if exact)."""
    for table, chain, _ in CHAINS:
        for rule in _rules_of(table, chain):
            if "--comment" not in rule:
                continue
            comment = rule[rule.index("--comment") + 1]
            if comment == tag or (not exact and comment.startswith(tag)):
                _del_rule(table, chain, rule)


def remove_network_host_state(net: Network) -> None:
    """Delete the network's rules (published ports included) and its bridge; our chains too
    when no network has rules left. Idempotent. Raises PmdError."""
    with host_lock():
        # both backends where present: state made under one is found after a switch
        if _which("iptables"):
            _remove_tagged_rules(f"pmd:{net.bridge}:")
            _drop_empty_chains()
        if _which("nft"):
            from pyminidocker.network import nft

            nft.delete(f"pmd:{net.bridge}:")
        _delete_link(net.bridge)


_OUR_BRIDGE_NAME = r"pmd0|pmd-[0-9a-f]{11}"


def _remove_every_pmd_chain() -> None:
    """Every chain named PMD-* in nat and filter and every jump to one, whether or not this
    version of the engine made it (a chain an older version used is ours too)."""
    import shlex

    for table in ("nat", "filter"):
        lines = _ipt(table, "-S").stdout.splitlines()
        ours = [line.split()[1] for line in lines if line.startswith("-N PMD-")]
        for line in lines:
            words = shlex.split(line)
            if words[:1] == ["-A"] and not words[1].startswith("PMD-") and \
                    "-j" in words and words[words.index("-j") + 1].startswith("PMD-"):
                _del_rule(table, words[1], words[2:])
        for chain in ours:
            _ipt(table, "-F", chain)
        for chain in ours:  # after every flush: a PMD chain may jump to another
            _ipt(table, "-X", chain)


def reset_host(store: Store | None = None) -> None:
    """Remove everything the engine added to the host: every PMD-* chain and every jump to
    one; every bridge tagged as ours, named as ours ("pmd0", "pmd-<11 hex>"), or named by one
    of store's networks. Leaves ip_forward as it is (other software may rely on it).
    Raises PmdError."""
    import re

    from pyroute2 import IPRoute

    if store is not None:  # the store's DNS server listens on the bridges that go
        from pyminidocker.network import dns

        dns.reset(store)
    with host_lock():
        if _which("iptables"):
            _remove_every_pmd_chain()
        if _which("nft"):
            from pyminidocker.network import nft

            nft.reset()
        names = {n.bridge for n in NetworkStore(store).all()} if store is not None else set()
        with IPRoute() as ipr:
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if _link_kind(link) == "bridge" and (
                        link.get_attr("IFLA_IFALIAS") == BRIDGE_ALIAS
                        or re.fullmatch(_OUR_BRIDGE_NAME, name)):
                    names.add(name)
        for name in sorted(names):
            _delete_link(name)


# --------------------------------------------------------------------------------------------
# Published ports


def _dnat_rules() -> list[tuple[str, str, int]]:
    """(proto, host ip or "", host port) of every DNAT rule in PMD-DNAT."""
    out = []
    def opt(rule: list[str], name: str) -> str | None:
        return rule[rule.index(name) + 1] if name in rule[:-1] else None

    for rule in _rules_of("nat", "PMD-DNAT"):
        proto, port, dst = opt(rule, "-p"), opt(rule, "--dport"), opt(rule, "-d")
        if proto and port and port.isdigit():
            out.append((proto, (dst or "").removesuffix("/32"), int(port)))
    return out


def _bind_probe(p: PortMapping) -> int:
    """Bind the host port as a server would; returns the port (picked if 0).

    TCP sets SO_REUSEADDR as every server does (and Docker's proxy): a port whose last
    connection is in TIME_WAIT is free, a listener on an overlapping address still refuses
    us. UDP does not (two sockets that both set it may share a port: that would hide a
    server). Raises Conflict (in use; exit 125 as Docker's run), UsageError (an address the
    host does not have)."""
    import socket

    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if p.proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p.host_ip or "0.0.0.0", p.host_port))
        except OSError as e:
            where = f"{p.host_ip or '0.0.0.0'}:{p.host_port}"
            if e.errno == errno.EADDRINUSE:
                raise Conflict(f"Bind for {where} failed: port is already in use on the host "
                               f"({p.proto})", exit_code=125) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"cannot publish on {where}: {p.host_ip} is not an address "
                                 "of this host") from None
            raise PmdError(f"cannot publish on {where}: {e.strerror}") from None
        return int(s.getsockname()[1])


def _allocated(p: PortMapping, rules: list[tuple[str, str, int]]) -> bool:
    return any(proto == p.proto and port == p.host_port
               and (not ip or not p.host_ip or ip == p.host_ip) for proto, ip, port in rules)


def _check_allocated(p: PortMapping, rules: list[tuple[str, str, int]]) -> None:
    if _allocated(p, rules):
        raise Conflict(f"Bind for {p.host_ip or '0.0.0.0'}:{p.host_port} failed: port is "
                       "already allocated")


def publish(net: Network, container_ip: str,
            ports: Iterable[PortMapping | tuple[str, int, int, str]]) -> list[PortMapping]:
    """Publish container ports on the host: DNAT in PMD-DNAT (nft: chain `published`), the
    matching FORWARD accept and the hairpin MASQUERADE.
    Host port 0 is given a free port (the kernel's ephemeral range). Either every port is
    published or none (rules added for earlier ports are removed on failure).
    Returns the mappings as published. Raises Conflict (host port in use by a host socket or
    already published), UsageError (a host address not on this host), PmdError (iptables,
    nft).
    The caller has called ensure_bridge(net)."""
    wanted = [p if isinstance(p, PortMapping) else PortMapping(*p) for p in ports]
    wanted = [PortMapping("" if p.host_ip == "0.0.0.0" else p.host_ip, p.host_port,
                          p.container_port, p.proto) for p in wanted]
    done: list[PortMapping] = []
    with host_lock():
        backend = _backend()
        if backend == "iptables":
            _ensure_chains()
        try:
            for p in wanted:
                existing = _published(backend)
                if p.host_port:
                    _check_allocated(p, existing)
                    _bind_probe(p)
                else:
                    for _ in range(20):  # a picked port could be one we DNAT already
                        p = PortMapping(p.host_ip, _bind_probe(p), p.container_port, p.proto)
                        if not _allocated(p, existing):
                            break
                    else:
                        raise Conflict(f"no free host port found for {p.container_port}/"
                                       f"{p.proto}")
                _add_port(backend, net, container_ip, p)
                done.append(p)
        except BaseException:
            for p in done:
                _del_port(backend, net, container_ip, p)
            raise
    return done


def _published(backend: str) -> list[tuple[str, str, int]]:
    if backend == "nft":
        from pyminidocker.network import nft

        return nft.published()
    return _dnat_rules()


def _add_port(backend: str, net: Network, container_ip: str, p: PortMapping) -> None:
    if backend == "nft":
        from pyminidocker.network import nft

        nft.ensure(nft.port_rules(net.bridge, container_ip, p.proto, p.host_ip, p.host_port,
                                  p.container_port))
        return
    for table, chain, rule in _port_rules(net, container_ip, p):
        _add_rule(table, chain, rule)


def _del_port(backend: str, net: Network, container_ip: str, p: PortMapping) -> None:
    if backend == "nft":
        from pyminidocker.network import nft

        nft.delete(f"{nft.port_tag(net.bridge, container_ip)}{p.proto} {p.host_ip or '-'} "
                   f"{p.host_port} {p.container_port} ")
        return
    for table, chain, rule in _port_rules(net, container_ip, p):
        _del_rule(table, chain, rule)


def unpublish(net: Network, container_ip: str,
              ports: Iterable[PortMapping | tuple[str, int, int, str]]) -> None:
    """Remove the rules publish() added for these ports (as it returned them). Idempotent.
    Raises PmdError (iptables, nft)."""
    with host_lock():
        backend = _backend()
        for p in ports:
            p = p if isinstance(p, PortMapping) else PortMapping(*p)
            if p.host_ip == "0.0.0.0":
                p = PortMapping("", p.host_port, p.container_port, p.proto)
            _del_port(backend, net, container_ip, p)


def unpublish_all(net: Network, container_ip: str) -> None:
    """Remove every published port of the container at container_ip on the network, without
    knowing which (stop after a crash, reconciliation). Idempotent. Raises PmdError."""
    with host_lock():
        if _which("iptables"):
            _remove_tagged_rules(f"pmd:{net.bridge}:port:{container_ip}", exact=True)
        if _which("nft"):
            from pyminidocker.network import nft

            nft.delete(nft.port_tag(net.bridge, container_ip))
