"""The host side of a network: its Linux bridge, and the host-wide lock under which every change
of host state (bridges, firewall rules, published ports) is made.

The cold path (bridge administration) lives here; the per-container veth work is done in C.
Nothing here sends a packet. Networks are records in the store (store/networks.py, managed by
network/networks.py). The default network's bridge is "pmd0"; user networks get
"pmd-<11 hex of the id>" (Docker's "br-<12 hex>" has a 3-letter prefix; ours has 4, and an
interface name has at most 15 characters, IFNAMSIZ - 1).

Host state is made of, and only of:
  - one Linux bridge per network, created with pyroute2, tagged with the alias "pyminidocker"
    (IFLA_IFALIAS) so that reset_host() finds exactly the bridges the engine created;
  - net.ipv4.ip_forward = 1 (never set back: other software on the host may rely on it, as
    Docker does), and net.ipv4.conf.<bridge>.route_localnet = 1 (see "Loopback" below);
  - the firewall rules of network/firewall.py and network/ports.py.

All changes of host state are made under a host-wide lock (/run/pyminidocker/network.lock):
iptables and the bridges are shared by every store on the host, so the store lock is not enough.
Every step is idempotent (an existing bridge or address is reused).

Loopback (127.0.0.1:HOSTPORT): route_localnet, not a userland proxy. The engine is daemonless:
a proxy would be one more process per published port for the monitor to keep alive, and it
hides the client's address from the container. With route_localnet=1 on the bridge, a packet
from 127.0.0.1 DNATed in OUTPUT may leave through the bridge; a MASQUERADE for
-s 127.0.0.0/8 -o BRIDGE gives it the gateway's address, so the container's reply comes back.
route_localnet also lets a packet that *arrives* on the bridge be addressed to 127.0.0.0/8,
which would expose the host's loopback services to containers (the kube-proxy CVE-2020-8558);
PMD-INPUT drops such packets unless they belong to a connection the host opened (RELATED,
ESTABLISHED) or were DNATed. Only the bridge gets route_localnet, never "all".
"""
from __future__ import annotations

import errno
import os

from pyminidocker.errors import Conflict, PmdError
from pyminidocker.store.files import FileLock
from pyminidocker.store.networks import NetworkStore, mac_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.network.firewall import Capture
    from pyminidocker.store import Store
    from pyminidocker.store.networks import Network

BRIDGE_ALIAS = "pyminidocker"
HOST_LOCK = "/run/pyminidocker/network.lock"


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
                    ipr.link("set", index=idx[0], ifalias=BRIDGE_ALIAS,
                             address=mac_address(net.gateway))
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
    address and up; IPv4 forwarding; route_localnet on the bridge; its firewall rules
    (firewall.ensure_network). Idempotent. rules_now: the host's rules read meanwhile
    (firewall.rules_snapshot()); else they are read here.
    Raises Conflict (the name is a non-bridge interface), PmdError (netlink, sysctl, iptables,
    nft; neither of them installed).
    """
    from pyminidocker.network import firewall

    with host_lock():
        _ensure_link(net)
        _sysctl("net/ipv4/ip_forward", "1")
        _sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
        firewall.ensure_network(net, rules_now)


def remove_network_host_state(net: Network) -> None:
    """Delete the network's rules (published ports included) and its bridge; our chains too
    when no network has rules left. Idempotent. Raises PmdError."""
    from pyminidocker.network import firewall

    with host_lock():
        firewall.remove_network(net.bridge)
        _delete_link(net.bridge)


_OUR_BRIDGE_NAME = r"pmd0|pmd-[0-9a-f]{11}"


def reset_host(store: Store | None = None) -> None:
    """Remove everything the engine added to the host: every PMD-* chain and every jump to
    one; every bridge tagged as ours, named as ours ("pmd0", "pmd-<11 hex>"), or named by one
    of store's networks. Leaves ip_forward as it is (other software may rely on it).
    Raises PmdError."""
    import re

    from pyroute2 import IPRoute

    from pyminidocker.network import firewall

    if store is not None:  # the store's DNS server listens on the bridges that go
        from pyminidocker.network import dns

        dns.reset(store)
    with host_lock():
        firewall.reset()
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
