"""A container's network plugging: its address, the veth pair into its namespace, published
ports, the names in the members' /etc/hosts (and its --link's) and in the network's DNS server
(network/dns.py); `network connect`/`disconnect`.

Functions of the Runtime (rt), imported only when a container has a network to plug: the
start path of `run --network none` never loads this module or the network package.
"""
from __future__ import annotations

import os

from pyminidocker.container.specconv import base_hosts, resolv_conf
from pyminidocker.errors import Conflict, NotFound, PmdError, UsageError, suppress
from pyminidocker.native.netlink import net_attach, net_detach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.container.runtime import Runtime
    from pyminidocker.store import Store
    from pyminidocker.store.containers import ContainerRecord


def host_gateway(store: Store, network: str) -> str:
    """The address --add-host host-gateway names: the gateway of the container's bridge
    network (the default bridge's for host and none), the host as the container sees it."""
    from pyminidocker.network import networks

    if network in ("none", "host", "bridge"):
        return networks.default_network(store).gateway
    return networks.get_network(store, network).gateway


def linked(rt: Runtime, link: dict[str, str], name: str, network: str) -> ContainerRecord:
    """The running container a --link of the container name on network names. Raises
    NotFound, UsageError (Docker's words for one that does not run or is elsewhere)."""
    try:
        other = rt.get(link.get("id") or link["name"])
    except NotFound:
        raise NotFound(f"could not get container for {link['name']}") from None
    if other.state.status != "running":
        raise UsageError(f"Cannot link to a non running container: /{other.name} AS "
                         f"/{name}/{link['alias']}")
    if other.host.network != network:
        raise UsageError(f"Cannot link to /{other.name}, as it does not belong to the "
                         "default network" if network == "bridge" else
                         f"Cannot link to /{other.name}: it is not on network {network}")
    return other


def hosts_line(rec: ContainerRecord, address: str, network: str) -> str:
    """A container's line in /etc/hosts on network: its address and host name, and where names
    resolve (user networks: Docker's DNS there, these lines here) its name and its aliases on
    that network, each once. The default bridge knows no names: a name Docker made up is not
    in the file."""
    by_name = network != "bridge"
    names = [rec.hostname, *([rec.name] if by_name else [])]
    names += rec.host.aliases(network) if by_name else []  # --network-alias, connect --alias
    return f"{address}\t{' '.join(dict.fromkeys(names))}\n"


def plug(rt: Runtime, rec: ContainerRecord, d: str, proc: Any, rules: Any = None) -> None:
    """Connect a held container to its network (an address, the bridge and its rules, a
    veth pair into its namespace, published ports, its name in /etc/hosts); the caller
    releases it. On failure the child is ended and what was set up is undone."""
    from pyminidocker.config import Config
    from pyminidocker.network import networks as network
    from pyminidocker.record import atomic_write

    net = rec.host.network
    try:
        with rt.trace.phase("network"):
            ep = network.connect(rt.store, net, rec.id, Config.load(rt.store.root),
                                 rules, rec.host.get("ip"))
            rec.state.ip = ep.address  # from here on, a failure releases the address
            net_attach(proc.pid, ep.bridge, _host_ifname(rec.id), ep.address,
                       ep.prefix_len, ep.gateway, mac=rec.host.get("mac_address") or ep.mac)
            if rec.host.get("link_local_ips"):
                _add_link_local(proc.pid, rec.host["link_local_ips"])
            if rec.host.ports:
                _publish(rt, rec, ep.network, ep.address)
            # from the base file, not the last run's (its lines would be there twice)
            hosts = base_hosts(rec) + hosts_line(rec, ep.address, ep.network)
            hosts += _link_lines(rt, rec)
            if ep.network != "bridge":  # names resolve on user networks (Docker's rule)
                hosts += _introduce(rt, rec, ep.network, ep.address)
                # it asks the network's DNS server, at its gateway, as Podman's do
                server = _announce(rt, rec, ep.network, ep.address)
                atomic_write(os.path.join(d, "resolv.conf"), resolv_conf(False, {
                    **rec.host, "dns": [server]} if server else rec.host), durable=False)
            atomic_write(os.path.join(d, "hosts"), hosts.encode(), durable=False)
            for extra in rec.host.networks:  # joined by `network connect`
                _attach_extra(rt, rec, extra, proc.pid)
            if rec.state.extra_networks:
                _follow_resolver(rt, rec)
    except BaseException:
        proc.abort()
        unplug(rt, rec)
        raise


def _publish(rt: Runtime, rec: ContainerRecord, net: str, address: str) -> None:
    """The container's -p ports, published on the host; recorded in rec.state (not saved)."""
    from pyminidocker.network import networks, ports

    wanted = [m for spec in rec.host.ports for m in ports.parse_publish(spec)]
    done = ports.publish(networks.get_network(rt.store, net), address, wanted)
    rec.state.ports = [str(m) for m in done]


def _add_link_local(pid: int, addresses: list[str]) -> None:
    """--link-local-ip: more addresses on the container's eth0 (/16 for IPv4, as
    169.254.0.0/16; /64 for IPv6), added by iproute2 in its network namespace. Raises
    PmdError with ip's message."""
    import subprocess

    from pyminidocker.container.namespaces import in_namespaces

    def work() -> None:
        for a in addresses:
            res = subprocess.run(["ip", "addr", "add", f"{a}/{64 if ':' in a else 16}", "dev",
                                  "eth0"], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise PmdError(f"link-local address {a}: {res.stderr.strip()}")

    in_namespaces(pid, ("network",), work)


def _link_lines(rt: Runtime, rec: ContainerRecord) -> str:
    """--link: each linked container's address with the alias, its host name and its name,
    as Docker's legacy links write them. Raises UsageError for one that no longer runs."""
    out = ""
    for link in rec.host.get("links", []):
        other = linked(rt, link, rec.name, rec.host.network)
        names = dict.fromkeys([link["alias"], other.hostname, other.name])
        out += f"{other.state.ip}\t{' '.join(names)}\n"
    return out


def _introduce(rt: Runtime, rec: ContainerRecord, network: str, address: str) -> str:
    """On a user network every member's /etc/hosts names every other member: add this
    container to theirs and return the lines for its own. Files are edited in place, as
    each is bind-mounted into its container (a rename would not be seen there)."""
    from pyminidocker.store.networks import NetworkStore

    own = ""
    with rt.store.lock():
        for addr, cid in NetworkStore(rt.store).allocations(network).items():
            if cid == rec.id:
                continue
            try:
                other = rt.containers.get(cid)
            except NotFound:
                continue
            own += hosts_line(other, addr, network)
            _edit_hosts(os.path.join(rt.containers.path(cid), "hosts"),
                        add=hosts_line(rec, address, network))
    return own


def unplug(rt: Runtime, rec: ContainerRecord) -> None:
    """Undo _plug for a container whose processes are gone: published ports, the address.
    Its veth pairs are not deleted here: they went with its network namespace, which the
    kernel dismantles (asynchronously) once the last process has exited; deleting the
    host end ourselves would wait 10-15 ms for the same work. Idempotent. Not to be
    called with the store lock held: the address book takes it."""
    for name in list(rec.state.extra_networks):
        _detach_extra(rt, rec, name, gone=True)
    net = rec.host.network
    if net in ("none", "host"):
        return
    from pyminidocker.network import networks as network
    from pyminidocker.network import ports

    # Driven by what the address book holds, not only by the state: a `run` killed
    # between the allocation and its state write left an address only the book knows.
    ip = rec.state.ip or network.address_of(rt.store, net, rec.id)
    if not ip:
        return
    if rec.host.ports:  # rules exist only for a container that asked for ports
        with suppress(PmdError):
            ports.unpublish_all(network.get_network(rt.store, net), ip)
    if net != "bridge":
        _forget(rt, net, ip)
    network.disconnect(rt.store, net, rec.id)
    rec.state.ip = ""
    rec.state.ports = []
    with suppress(PmdError, OSError):
        if os.path.isdir(rt.containers.path(rec.id)):
            rt.containers.save_state(rec)


def connect(rt: Runtime, rec: ContainerRecord, net: str, aliases: list[str] | None = None,
            ip: str | None = None) -> str:
    """`network connect`: the container joins the user network `net` too, as Docker's: at
    once if it runs, and at each of its starts from now on (host.networks). There it
    has one more interface (eth1, eth2, ...; no second default route) with an address,
    its name and aliases (there only) in the members' /etc/hosts and the network's DNS
    server; ip: the address it gets there, at once and at every start (--ip). Returns the
    address, "" if it is not running.
    Raises Conflict (already connected; a container on the host's network or none; ip held by
    a live container), UsageError (aliases or ip on the default bridge, an ip outside the
    network), NotFound (network), PmdError, OSError."""
    from pyminidocker.network import networks as network

    rec = rt.refresh(rec)
    if net in ("none", "host"):
        raise UsageError(f"container cannot be connected to network {net}")
    net = network.get_network(rt.store, net).name  # by id too; missing: refused now
    joined = rec.host.networks
    if net == rec.host.network or net in joined:
        raise Conflict(f"container {rec.name} is already attached to network {net}")
    if rec.host.network in ("none", "host"):
        raise Conflict(f"container {rec.name} is on the {rec.host.network} network: it "
                       "cannot be connected to another one")
    if aliases and net == "bridge":
        raise UsageError("network-scoped alias is supported only for containers in user "
                         "defined networks")
    if ip and net == "bridge":  # Docker's words: the default bridge has no user subnet
        raise UsageError("user specified IP address is supported only when connecting to "
                         "networks with user configured subnets")
    if ip:
        network.check_wanted(rt.store, net, ip)
        rec.host.network_ips = {**rec.host.network_ips, net: ip}
    if aliases:
        rec.host.network_aliases = {**rec.host.network_aliases, net: list(aliases)}
    address = ""
    if rec.state.status == "running":
        address = _attach_extra(rt, rec, net, rec.state.pid)
        _follow_resolver(rt, rec)
        rt.containers.save_state(rec)
    rec.host.networks = [*joined, net]
    rt.containers.save_config(rec)
    return address


def _attach_extra(rt: Runtime, rec: ContainerRecord, net: str, pid: int) -> str:
    """Plug the container whose init is pid into the user network `net`: an address, the
    first free ethN (and pmd<id>xN on the host), the names in /etc/hosts and the network's
    DNS server. Recorded in rec.state (not saved). Returns the address."""
    from pyminidocker.network import networks as network

    ep = network.connect(rt.store, net, rec.id, address=rec.host.network_ips.get(net))
    used = {info["ifname"] for info in rec.state.extra_networks.values()}
    n = next(i for i in range(1, len(used) + 2) if f"eth{i}" not in used)
    ifname, host_if = f"eth{n}", f"pmd{rec.id[:10]}x{n}"
    try:
        net_attach(pid, ep.bridge, host_if, ep.address, ep.prefix_len, None,
                   container_ifname=ifname, mac=ep.mac)
    except BaseException:
        network.disconnect(rt.store, net, rec.id)
        raise
    rec.state.extra_networks[net] = info = {"ip": ep.address, "ifname": ifname,
                                            "host_ifname": host_if}
    hosts = os.path.join(rt.containers.path(rec.id), "hosts")
    _edit_hosts(hosts, add=hosts_line(rec, ep.address, ep.network))
    for line in _introduce(rt, rec, ep.network, ep.address).splitlines(keepends=True):
        _edit_hosts(hosts, add=line)
    if ep.network != "bridge":
        info["dns"] = _announce(rt, rec, ep.network, ep.address)
    return ep.address


def disconnect(rt: Runtime, rec: ContainerRecord, net: str) -> None:
    """`network disconnect`: undo connect, now and for the starts to come (its aliases
    there go too). Raises Conflict if the container was not connected to `net` that way."""
    from pyminidocker.network import networks as network

    rec = rt.refresh(rec)
    with suppress(NotFound):  # by id too; a network removed meanwhile by its name
        net = network.get_network(rt.store, net).name
    joined = rec.host.networks
    if net not in joined and net not in rec.state.extra_networks:
        raise Conflict(f"container {rec.name} is not connected to network {net} "
                       "(only networks joined with `network connect` can be left)")
    if net in rec.state.extra_networks:
        _detach_extra(rt, rec, net)
        with suppress(PmdError, OSError):
            rt.containers.save_state(rec)
        with suppress(OSError):
            _follow_resolver(rt, rec)
    if net in joined or net in rec.host.network_aliases or net in rec.host.network_ips:
        rec.host.networks = [n for n in joined if n != net]
        rec.host.network_aliases = {n: a for n, a in rec.host.network_aliases.items()
                                    if n != net}
        rec.host.network_ips = {n: a for n, a in rec.host.network_ips.items() if n != net}
        rt.containers.save_config(rec)


def _follow_resolver(rt: Runtime, rec: ContainerRecord) -> None:
    """A container of the default bridge asks the DNS server of the first user network it
    joined (Docker's embedded server comes with the first user network), and the host's
    resolvers again once it has left the last one. On its own user network it asks that
    network's server, which answers the names of every network it is on (aardvark-dns
    scopes a query by the asker's networks), so nothing changes. The resolv.conf is
    rewritten in place: it is bind-mounted into the container."""
    if rec.host.network != "bridge":
        return
    server = next((i["dns"] for i in rec.state.extra_networks.values() if i.get("dns")), "")
    _rewrite(os.path.join(rt.containers.path(rec.id), "resolv.conf"),
             resolv_conf(False, {**rec.host, "dns": [server]} if server else rec.host))


def _detach_extra(rt: Runtime, rec: ContainerRecord, net: str, gone: bool = False) -> None:
    """Undo connect; gone: the container's processes are gone, and its veth with them."""
    from pyminidocker.network import networks as network

    info = rec.state.extra_networks.pop(net)
    if not gone:
        with suppress(OSError):
            net_detach(info["host_ifname"])
    _forget(rt, net, info["ip"])
    network.disconnect(rt.store, net, rec.id)


def _forget(rt: Runtime, net: str, address: str) -> None:
    """Drop address from the /etc/hosts of every member of the user network net (the
    reverse of _introduce). Takes the store lock."""
    from pyminidocker.store.networks import NetworkStore

    with suppress(PmdError), rt.store.lock():
        for cid in NetworkStore(rt.store).allocations(net).values():
            _edit_hosts(os.path.join(rt.containers.path(cid), "hosts"), drop=f"{address}\t")
    from pyminidocker.network import dns, networks

    with suppress(NotFound, PmdError, OSError):  # a network removed meanwhile (rm -f)
        dns.leave(rt.store, networks.get_network(rt.store, net).bridge, address)


def rename(rt: Runtime, rec: ContainerRecord) -> None:
    """A running container was renamed: the DNS servers of its user networks answer its new
    name, no more its old one (as Docker's). A server that cannot be told is no error: the
    rename is done."""
    nets = {n: info["ip"] for n, info in rec.state.extra_networks.items()}
    if rec.host.network not in ("none", "host", "bridge") and rec.state.ip:
        nets[rec.host.network] = rec.state.ip
    for net, address in nets.items():
        with suppress(NotFound, PmdError, OSError):
            _announce(rt, rec, net, address)


def _announce(rt: Runtime, rec: ContainerRecord, net: str, address: str) -> str:
    """Give the container's names (name, short id, --network-alias es) to the DNS server
    of the user network net. Returns the server's address, "" if there is none (no
    aardvark-dns: the names are in /etc/hosts only). Raises PmdError, OSError."""
    from pyminidocker.config import Config
    from pyminidocker.network import dns, networks

    network = networks.get_network(rt.store, net)
    names = [rec.name, rec.id[:12], *rec.host.aliases(network.name)]
    served = dns.join(rt.store, network, rec.id, address, names,
                      Config.load(rt.store.root).resolv_conf, rec.host.get("dns", []))
    return network.gateway if served else ""


def _edit_hosts(path: str, add: str = "", drop: str = "") -> None:
    """Append a line to, or drop the lines starting with `drop` from, a container's hosts
    file, in place (it is bind-mounted: the inode must stay). Missing file: nothing to do."""
    try:
        with open(path, "r+") as f:
            lines = [ln for ln in f.readlines() if not (drop and ln.startswith(drop))]
            if add and add not in lines:
                lines.append(add)
            f.seek(0)
            f.write("".join(lines))
            f.truncate()
    except FileNotFoundError:
        pass


def _rewrite(path: str, data: bytes) -> None:
    """Replace a bind-mounted file's content, keeping its inode. Missing file: nothing."""
    with suppress(FileNotFoundError), open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def _host_ifname(container_id: str) -> str:
    """The host end of a container's veth pair: 15 characters, the kernel's limit."""
    return "pmd" + container_id[:12]
