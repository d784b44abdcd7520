"""Addresses on a network: allocation (the lowest free host address, or the one --ip wants),
release, and the reconciliation that frees what killed commands left; the host-wide address
book of each bridge and the staleness test behind it.

Each store records its own allocations (store/networks.py, durable: an address is written
before it is used). Two stores (two --root) may still share a bridge and its subnet (the
default "pmd0"), so every allocation is also entered, under a flock, in the bridge's book:

    /run/pyminidocker/ipam/<bridge>.json   {"<address>": [<store root>, <container id>, <owner>]}

/run is a tmpfs: the book lives exactly as long as the addresses it describes (no container
of the last boot still runs). <owner> is "<pid>:<start time>" of the command that allocated
the address: while it lives, the container may still be on its way to "running".

An address is stale, and freed by the reconciliation, once its container is gone, or is not
running and the command that allocated it is dead too (`run` killed with -9 between the
allocation and its state write); a container that says running but whose process and monitor
are gone (killed, or a host crash) has no use for it either.
"""
from __future__ import annotations

import os

from pyminidocker import proc
from pyminidocker.errors import Conflict, PmdError, UsageError, suppress
from pyminidocker.record import write_json
from pyminidocker.store.files import FileLock, read_json
from pyminidocker.store.networks import Network, NetworkStore

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from pyminidocker.store import Store

BOOK_DIR = "/run/pyminidocker/ipam"


def holder_alive(root: str, container_id: str, owner: str = "") -> bool:
    """Whether container_id of the store at root may still use its address (see above)."""
    d = os.path.join(root, "containers", container_id)
    if not os.path.isdir(d):
        return False
    if owner and proc.token_alive(owner):
        return True
    try:
        st: Any = read_json(os.path.join(d, "state.json"))
    except OSError:
        return False  # never started, or its state was lost: nothing of it runs
    if not isinstance(st, dict) or st.get("status") != "running":
        return False
    return proc.alive(int(st.get("pid") or 0), str(st.get("pid_start") or "")) or \
        proc.alive(int(st.get("monitor_pid") or 0), str(st.get("monitor_start") or ""))


class Book:
    """`with Book(bridge) as book:` the bridge's host-wide book, locked (book.entries:
    address -> [root, container id, owner]); book.save() writes it back."""

    def __init__(self, bridge: str):
        self.path = os.path.join(BOOK_DIR, f"{bridge}.json")
        self.lock = FileLock(os.path.join(BOOK_DIR, f"{bridge}.lock"))
        self.entries: dict[str, list[str]] = {}

    def __enter__(self) -> Book:
        os.makedirs(BOOK_DIR, mode=0o700, exist_ok=True)
        self.lock.acquire()
        try:
            data = read_json(self.path)
        except (FileNotFoundError, OSError):
            data = {}  # none yet, or torn: every store's own records still hold their part
        if isinstance(data, dict):
            self.entries = {str(a): [str(x) for x in e] for a, e in data.items()
                            if isinstance(e, list) and len(e) == 3}
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def others(self, root: str, container_id: str) -> set[str]:
        """The addresses held by anyone but container_id of root."""
        return {a for a, (r, c, _) in self.entries.items() if r != root or c != container_id}

    def drop_stale(self) -> list[str]:
        stale = [a for a, (r, c, o) in self.entries.items() if not holder_alive(r, c, o)]
        for a in stale:
            del self.entries[a]
        return stale

    def save(self) -> None:
        # the book is on a tmpfs: an fsync would buy nothing
        write_json(self.path, self.entries, durable=False)


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
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
        raise UsageError(f"invalid IPv4 address: {address}")
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
    none is free, or the record predates the host's boot, what killed commands left is
    reconciled first (reconcile_locked). want: that address (--ip), or Conflict if someone
    else holds it."""
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
    with Book(net.bridge) as book:
        if alloc and ns.boot_ids.get(net.name) != proc.boot_id():
            # written before the host's last boot (a crash, a power cut): nothing it holds
            # runs any more unless a container was restarted since, so it is reconciled now,
            # once, rather than when the network runs out
            reconcile_locked(ns, net, book)
            alloc, owners = ns.book(net.name)
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
                reconcile_locked(ns, net, book)
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
            with Book(bridge) as book:
                mine = [a for a, (r, c, _) in book.entries.items()
                        if r == store.root and c == container_id]
                for a in mine:
                    del book.entries[a]
                if mine:
                    book.save()
    return freed


def reconcile_locked(ns: NetworkStore, net: Network, book: Any = None,
                      live: Iterable[str] | None = None) -> list[str]:
    """Free the network's stale addresses (holder_alive says which; with live, those of a
    container not in live) and remove their published ports' rules. Caller holds the store
    lock, and the bridge's book if given. Returns the addresses freed."""
    if book is None:
        with Book(net.bridge) as book:
            return reconcile_locked(ns, net, book, live)
    keep = set(live) if live is not None else None
    alloc, owners = ns.book(net.name)
    root = ns.store.root
    stale = [a for a, cid in alloc.items()
             if (cid not in keep if keep is not None
                 else not holder_alive(root, cid, owners.get(a, "")))]
    if stale or ns.boot_ids.get(net.name) != proc.boot_id():  # now reconciled in this boot
        ns.put_allocations(net.name, {a: c for a, c in alloc.items() if a not in stale}, owners,
                           reconciled=True)
    gone = {a for a, (r, c, _) in book.entries.items() if r == root and a in stale}
    for a in gone:
        del book.entries[a]
    if book.drop_stale() or gone:
        book.save()
    if stale:
        from pyminidocker.network import ports

        for a in stale:  # their port rules: nobody else knows the address any more
            with suppress(PmdError):
                ports.unpublish_all(net, a)
    return stale


def release_stale(store: Store, live: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """The reconciliation after a crash (kill -9 of `run`, a host crash): free every stale
    address of every network (holder_alive; with live, every address of a container not
    in live) and the rules of its published ports. Returns (network, address, container id)
    of each one freed. Raises StoreError."""
    ns = NetworkStore(store)
    freed = []
    with store.lock():
        for net in ns.all():
            alloc = ns.allocations(net.name)
            freed += [(net.name, a, alloc[a]) for a in reconcile_locked(ns, net, live=live)]
    return freed
