"""Networks: create, list, inspect, remove, prune, connect, disconnect. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

from pyminidocker.engine import EngineCore
from pyminidocker.errors import PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.store.networks import Network


class Networks(EngineCore):
    def create_network(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       internal: bool = False,
                       labels: dict[str, str] | None = None) -> Network:
        """A user-defined bridge network (its bridge is made when a container joins).
        Raises UsageError, Conflict."""
        from pyminidocker.network import networks

        net = networks.create_network(self.store, name, subnet=subnet, gateway=gateway,
                                      internal=internal, labels=labels or {})
        self._event("network", "create", net.id, name=net.name, type=net.driver)
        return net

    def networks(self, warnings: list[str] | None = None) -> list[Network]:
        """The readable networks; a line naming each corrupt one is appended to warnings."""
        from pyminidocker.network import networks

        return networks.list_networks(self.store, warnings)

    def all_networks(self, warnings: list[str] | None = None) -> list[Network]:
        """Every network as Docker lists them: bridge (recorded on first use), the user's, host
        and none; a line naming each corrupt record is appended to warnings."""
        nets = [n for n in self.networks(warnings) if n.name not in ("host", "none")]
        if not any(n.name == "bridge" for n in nets):
            try:
                nets.append(self.default_network())
            except PmdError:
                pass  # no free pool subnet: the others are listed all the same
        return [*nets, _predefined("host"), _predefined("none")]

    def inspect_network(self, name: str) -> dict[str, Any]:
        """Docker's `network inspect` object (of a name, id or id prefix). Raises NotFound."""
        from pyminidocker import dockerjson
        from pyminidocker.network import networks
        from pyminidocker.store.networks import NetworkStore

        for pre in ("host", "none"):
            net = _predefined(pre)
            if name == pre or (name and net.id.startswith(name)):
                return dockerjson.network(net)
        if name == "bridge":  # there from the start, as Docker's, though recorded on first use
            self.default_network()
        raw = networks.inspect_network(self.store, name)
        names = {r.id: r.name for r in self.store.containers.list()}
        members = {cid: {"Name": names.get(cid, ""), "IPv4Address": m["IPv4Address"]}
                   for cid, m in raw["Containers"].items()}
        doc = dockerjson.network(NetworkStore(self.store).get(raw["Name"]), members)
        doc["Options"].update(raw.get("Options") or {})
        return doc

    def default_network(self) -> Network:
        """The "bridge" network's record, made on first use. Raises PmdError (no free pool
        subnet), StoreError."""
        from pyminidocker.network import networks

        return networks.default_network(self.store, self.config)

    def remove_network(self, name: str, force: bool = False) -> Network | None:
        """Raises NotFound, Conflict (in use, or a predefined network), CorruptRecord (a
        corrupt record, without force; with force it is removed: None)."""
        from pyminidocker.network import networks

        net = networks.remove_network(self.store, name, force=force)
        if net is not None:
            self._event("network", "destroy", net.id, name=net.name, type=net.driver)
        return net

    def prune_networks(self) -> list[str]:
        """Remove the user-defined networks no container uses; their names."""
        from pyminidocker.network import networks

        ids = {n.name: n.id for n in networks.list_networks(self.store)}
        removed = networks.prune_networks(self.store)
        for name in removed:
            self._event("network", "destroy", ids.get(name, name), name=name, type="bridge")
        return removed

    def connect(self, container: str, network: str, aliases: list[str] | None = None,
                ip: str | None = None) -> str:
        """Connect a container to a network (with its aliases there, and the address ip if
        given); its address there ("" if it is not running: it joins at its next start)."""
        from pyminidocker.container import plugging

        rt = self.runtime
        rec = rt.get(container)
        address = plugging.connect(rt, rec, network, aliases, ip)
        self._network_event("connect", rec.id, network)
        return address

    def disconnect(self, container: str, network: str) -> None:
        from pyminidocker.container import plugging

        rt = self.runtime
        rec = rt.get(container)
        plugging.disconnect(rt, rec, network)
        self._network_event("disconnect", rec.id, network)

    def _network_event(self, action: str, container: str, network: str) -> None:
        from pyminidocker.store.networks import NetworkStore

        try:
            net = NetworkStore(self.store).get(network)
            actor, name, kind = net.id, net.name, net.driver
        except PmdError:
            actor, name, kind = network, network, "bridge"
        self._event("network", action, actor, container=container, name=name, type=kind)


def _predefined(name: str) -> Network:
    """Docker's host and none networks: no record, a stable id (they have no bridge)."""
    import hashlib

    from pyminidocker.store.networks import Network

    nid = hashlib.sha256(f"pyminidocker-{name}".encode()).hexdigest()
    return Network(name=name, id=nid, bridge="", subnet="", gateway="", created="",
                   driver="null" if name == "none" else name)
