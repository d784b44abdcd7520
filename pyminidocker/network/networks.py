"""Networks as the engine's user sees them: the records (create, list, inspect, remove, prune;
the default network "bridge", made on first use), the choice of a free subnet, and a
container's endpoint on a network (connect: an address, the bridge and its rules ready).

Records live in the store (store/networks.py); the host's side is network/bridge.py (the
bridge and its rules), network/ipam.py (addresses), network/ports.py (published ports).
"""
from __future__ import annotations

import os
import time

from pyminidocker.errors import Conflict, CorruptRecord, NotFound, PmdError, UsageError, suppress
from pyminidocker.network import ipam
from pyminidocker.network.bridge import ensure_bridge, remove_network_host_state
from pyminidocker.record import dataclass
from pyminidocker.store.files import valid_name
from pyminidocker.store.networks import Network, NetworkStore, mac_address

# A container's start on a bridge runs get_network, allocate, ensure_bridge (when all is in
# place already) and release: those stay clear of modules whose import costs milliseconds
# (ipaddress, subprocess, shutil, socket and re, through enum and functools). The rest of the
# module imports them where it needs them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from ipaddress import IPv4Address, IPv4Network
    from typing import Any

    from pyminidocker.config import Config
    from pyminidocker.network.firewall import Capture
    from pyminidocker.store import Store

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")

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
        ipam.reconcile_locked(ns, net)  # what killed commands left holds nothing
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
            ipam.reconcile_locked(ns, net)
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


@dataclass(frozen=True)
class Endpoint:
    """What the per-container (C) side needs to plug a container into a network."""

    network: str
    bridge: str
    address: str
    prefix_len: int
    gateway: str

    @property
    def mac(self) -> str:
        """The interface's MAC, fixed by its address (store.networks.mac_address)."""
        return mac_address(self.address)


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
    addr, plen, gw = ipam.allocate(store, net, container_id, address)
    try:
        ensure_bridge(net, rules)
    except BaseException:
        ipam.release(store, net, container_id)
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
    net = get_network(store, network)
    ipam.check_address(net, address)
    alloc, owners = NetworkStore(store).book(net.name)
    if address in alloc and ipam.holder_alive(store.root, alloc[address],
                                              owners.get(address, "")):
        raise Conflict("Address already in use")


def disconnect(store: Store, network: str, container_id: str) -> None:
    """Release the container's address on the network; a network that no longer exists is
    fine (rm after network rm --force, or a crash). The bridge stays (removed by network rm,
    prune or reset_host). Raises StoreError."""
    with suppress(NotFound):
        ipam.release(store, _resolve(NetworkStore(store), network), container_id)
