"""Network records: networks/<name>.json, and each network's IPAM record ipam/<name>.json.

    <root>/networks/<name>.json        name, id, driver, bridge, subnet, gateway, created,
                                       internal, labels
    <root>/networks/ipam/<name>.json   {"allocations": {"<address>": "<container id>"}}

The IPAM record lives in its own directory so that no network name ("x.ipam") can collide
with it. Every change is made under the store lock (callers hold it: network/networks.py,
network/ipam.py) and written atomically, so a reader sees a whole record or none.
"""
from __future__ import annotations

import os

from pyminidocker.errors import CorruptRecord, NotFound, StoreError, store_error, suppress
from pyminidocker.record import asdict, dataclass, field, write_json
from pyminidocker.store.files import read_json

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.store import Store


@dataclass
class Network:
    name: str
    id: str                         # 64 hex
    bridge: str                     # host interface name (<= 15 characters, IFNAMSIZ)
    subnet: str                     # "10.77.0.0/16"
    gateway: str                    # "10.77.0.1", the bridge's own address
    created: str                    # RFC 3339, UTC
    driver: str = "bridge"
    internal: bool = False          # no MASQUERADE: members reach each other, not the world
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.rsplit("/", 1)[1])

    def mac_of(self, address: str) -> str:
        """The MAC of this network's interface that holds address (mac_address)."""
        return mac_address(address)


def mac_address(address: str) -> str:
    """Docker's MAC for an interface holding the IPv4 address: 02:42 and its four bytes. A
    container given a freed address then answers at the MAC its neighbours cached for it; with
    a random one the host kept sending to the gone container's until its cache entry failed
    (5 s and more: a published port of the new container timed out)."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))


class NetworkStore:
    """Reads and writes network and IPAM records. Writers hold the store lock."""

    def __init__(self, store: Store):
        self.store = store
        self.corrupt: dict[str, str] = {}  # network name -> message, each corrupt record read
        # network name -> the boot its IPAM record was written in, as book() last read it
        self.boot_ids: dict[str, str] = {}
        self.dir = os.path.join(store.root, "networks")
        self.ipam_dir = os.path.join(self.dir, "ipam")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.json")

    def ipam_path(self, name: str) -> str:
        return os.path.join(self.ipam_dir, f"{name}.json")

    def names(self) -> list[str]:
        try:
            return sorted(n[:-5] for n in os.listdir(self.dir)
                          if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return []

    def all(self) -> list[Network]:
        """The readable records; the corrupt ones are in self.corrupt (name -> message)."""
        out = []
        for n in self.names():
            with suppress(NotFound, CorruptRecord):  # removed since names() listed it
                out.append(self.get(n))
        return out

    def get(self, name: str) -> Network:
        """Raises NotFound, or CorruptRecord (noted in self.corrupt)."""
        try:
            data = read_json(self.path(name))
        except FileNotFoundError:
            raise NotFound(f"network {name} not found") from None
        except StoreError as e:
            problem = str(e)
        else:
            try:
                net = Network(**data)
                if not (isinstance(net.bridge, str) and isinstance(net.gateway, str)
                        and net.prefix_len >= 0 and net.name == name):
                    raise ValueError("a field has a bad value")
                return net
            except (TypeError, ValueError, IndexError, AttributeError) as e:
                problem = f"corrupt network record {self.path(name)}: {e}"
        self.corrupt[name] = f"network {name} has a corrupt record ({problem}); " \
                             "network rm -f removes it"
        raise CorruptRecord(self.corrupt[name], name)

    def salvage_bridge(self, name: str) -> str | None:
        """The bridge name a corrupt record still shows, if any (to remove what is left of the
        network on the host)."""
        import re

        try:
            with open(self.path(name), "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        m = re.search(r'"bridge"\s*:\s*"([A-Za-z0-9_.-]{1,15})"', text)
        return m.group(1) if m else None

    def put(self, net: Network) -> None:
        """Write the record. Caller holds the store lock. Raises StoreError."""
        try:
            os.makedirs(self.ipam_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise store_error(e, "cannot create the networks directory") from None
        write_json(self.path(net.name), asdict(net))

    def delete(self, name: str) -> None:
        """Remove the record and its IPAM record. Caller holds the store lock."""
        for p in (self.ipam_path(name), self.path(name)):
            with suppress(FileNotFoundError):
                os.unlink(p)

    def allocations(self, name: str) -> dict[str, str]:
        """address -> container id. A corrupt record (noted in self.corrupt) is rebuilt from
        the running containers' states: the next change writes it whole again."""
        return self.book(name)[0]

    def book(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """(address -> container id, address -> owner): the owner is "<pid>:<start time>"
        of the command that allocated the address (see network/ipam.py). As allocations()."""
        try:
            data: Any = read_json(self.ipam_path(name))
        except FileNotFoundError:
            return {}, {}
        except StoreError:
            data = None
        if isinstance(data, dict):
            self.boot_ids[name] = str(data.get("boot_id", ""))
        alloc = data.get("allocations") if isinstance(data, dict) else None
        if not isinstance(alloc, dict):
            self.corrupt[f"{name} IPAM"] = f"the IPAM record of network {name} is corrupt: " \
                                           "rebuilt from the running containers"
            return self.rebuilt_allocations(name), {}
        owners = data.get("owners")
        return ({str(k): str(v) for k, v in alloc.items()},
                {str(k): str(v) for k, v in owners.items()} if isinstance(owners, dict) else {})

    def rebuilt_allocations(self, name: str) -> dict[str, str]:
        """address -> container id, as the records of the running containers show them."""
        out = {}
        for rec in self.store.containers.list():
            if rec.state.status != "running":
                continue
            if rec.host.network == name and rec.state.ip:
                out[rec.state.ip] = rec.id
            extra = rec.state.extra_networks.get(name)
            if isinstance(extra, dict) and extra.get("ip"):
                out[str(extra["ip"])] = rec.id
        return out

    def put_allocations(self, name: str, alloc: dict[str, str],
                        owners: dict[str, str] | None = None, reconciled: bool = False) -> None:
        """Write the record, durably (an address is recorded before it is used). Caller holds
        the store lock. Its boot_id is the boot whose processes its holdings name: this one
        once reconciled against them (or when it holds nothing), else the one it had (a
        release after a power cut must not make the others look current). Raises
        StoreError."""
        try:
            os.makedirs(self.ipam_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise store_error(e, "cannot create the networks directory") from None
        from pyminidocker import proc

        boot = proc.boot_id() if reconciled or not alloc else \
            self.boot_ids.get(name) or proc.boot_id()
        doc: dict[str, Any] = {"allocations": alloc, "boot_id": boot}
        if owners:
            doc["owners"] = {a: o for a, o in owners.items() if a in alloc}
        write_json(self.ipam_path(name), doc)
        self.boot_ids[name] = boot  # what a later write of this object keeps
