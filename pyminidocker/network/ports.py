"""Published ports (`-p`): Docker's syntax parsed, the host port checked free (a bind probe, a
port picked when none is given), and the DNAT, forward and hairpin rules of each port, tagged
"pmd:<bridge>:port:<container address>" so that a container's ports are found without knowing
which (network/firewall.py; nft: the chain `published` of network/nft.py). No userland proxy:
network/bridge.py says why 127.0.0.1:PORT works without one.
"""
from __future__ import annotations

import errno

from pyminidocker.errors import Conflict, PmdError, UsageError
from pyminidocker.network import firewall
from pyminidocker.network.bridge import host_lock
from pyminidocker.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from pyminidocker.store.networks import Network

_PROTOS = ("tcp", "udp")


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


def port_rules(net: Network, container_ip: str,
                p: PortMapping) -> list[tuple[str, str, tuple[str, ...]]]:
    dst = ("-d", p.host_ip) if p.host_ip else ()
    t = firewall.tag(net, f"port:{container_ip}")  # unpublish_all() finds a container's rules by it
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


def _dnat_rules() -> list[tuple[str, str, int]]:
    """(proto, host ip or "", host port) of every DNAT rule in PMD-DNAT."""
    out = []
    def opt(rule: list[str], name: str) -> str | None:
        return rule[rule.index(name) + 1] if name in rule[:-1] else None

    for rule in firewall.rules_of("nat", "PMD-DNAT"):
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
        backend = firewall.backend()
        if backend == "iptables":
            firewall.ensure_chains()
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
    for table, chain, rule in port_rules(net, container_ip, p):
        firewall.add_rule(table, chain, rule)


def _del_port(backend: str, net: Network, container_ip: str, p: PortMapping) -> None:
    if backend == "nft":
        from pyminidocker.network import nft

        nft.delete(f"{nft.port_tag(net.bridge, container_ip)}{p.proto} {p.host_ip or '-'} "
                   f"{p.host_port} {p.container_port} ")
        return
    for table, chain, rule in port_rules(net, container_ip, p):
        firewall.del_rule(table, chain, rule)


def unpublish(net: Network, container_ip: str,
              ports: Iterable[PortMapping | tuple[str, int, int, str]]) -> None:
    """Remove the rules publish() added for these ports (as it returned them). Idempotent.
    Raises PmdError (iptables, nft)."""
    with host_lock():
        backend = firewall.backend()
        for p in ports:
            p = p if isinstance(p, PortMapping) else PortMapping(*p)
            if p.host_ip == "0.0.0.0":
                p = PortMapping("", p.host_port, p.container_port, p.proto)
            _del_port(backend, net, container_ip, p)


def unpublish_all(net: Network, container_ip: str) -> None:
    """Remove every published port of the container at container_ip on the network, without
    knowing which (stop after a crash, reconciliation). Idempotent. Raises PmdError."""
    with host_lock():
        if firewall.which("iptables"):
            firewall.remove_tagged_rules(f"pmd:{net.bridge}:port:{container_ip}", exact=True)
        if firewall.which("nft"):
            from pyminidocker.network import nft

            nft.delete(nft.port_tag(net.bridge, container_ip))
