"""The store and the host as a whole: events, df, version, info, check, reset. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

import os

from pyminidocker.engine import EngineCore
from pyminidocker.errors import PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.engine import Engine
    from pyminidocker.store.events import Reader as EventReader


class System(EngineCore):
    def disk_usage(self: Engine) -> dict[str, Any]:  # type: ignore[misc]
        """`system df`: images, containers and volumes: how many, how many in use, their
        bytes and what a prune would reclaim."""
        used_images = self.store.images.users()
        images = self.images()
        sizes = self._layer_sizes()
        used_layers = {layer.id for rec in images if rec.id in used_images and rec.layer
                       for layer in self.store.layers.chain(rec.layer)}
        from pyminidocker.store.files import tree_size

        recs = self.containers()
        running = {r.id for r in recs if r.state.status == "running"}
        ctr_sizes = {r.id: tree_size(os.path.join(self.store.containers.path(r.id), "upper"))
                     for r in recs}
        vol_users = self.volume_users()
        vols = self.volumes()
        vol_sizes = {v.name: self.store.volumes.size(v.name) for v in vols}
        return {
            "images": (len(images), sum(1 for r in images if r.id in used_images),
                       sum(sizes.values()),
                       sum(s for lid, s in sizes.items() if lid not in used_layers)),
            "containers": (len(recs), len(running), sum(ctr_sizes.values()),
                           sum(s for cid, s in ctr_sizes.items() if cid not in running)),
            "volumes": (len(vols), sum(1 for v in vols if vol_users.get(v.name)),
                        sum(vol_sizes.values()),
                        sum(s for n, s in vol_sizes.items() if not vol_users.get(n))),
        }

    def events(self, since: float | None = None,
               filters: dict[str, list[str]] | None = None) -> EventReader:
        """A reader of the event log (store/events.py) from `since` (seconds since the epoch;
        None: what comes from now on) with Docker's event filters; its read() returns what
        was logged since its last call and never waits. Raises PmdError (a filter key events
        do not take)."""
        from pyminidocker.store import events

        for key in filters or {}:
            if key not in events.EVENT_FILTERS:
                raise PmdError(f"invalid filter '{key}'")
        return events.Reader(self.store.root, since, filters)

    def notice_exits(self) -> None:
        """Record the exit of each container that has ended (its `die` event). No daemon sees
        an exit as it happens: a follower of the events calls this now and then."""
        self.runtime.list()

    def version(self) -> dict[str, str]:
        """The engine's version data (Docker's /version subset)."""
        import platform

        from pyminidocker import __version__

        return {"Version": __version__, "ApiVersion": "1.43", "Os": "linux",
                "Arch": platform.machine(), "KernelVersion": platform.release(),
                "GoVersion": "", "PythonVersion": platform.python_version()}

    def info(self: Engine) -> dict[str, Any]:  # type: ignore[misc]
        """The engine's state (Docker's /info subset): counts, store root, drivers."""
        recs = self.runtime.list()
        running = sum(r.state.status == "running" for r in recs)
        return {"Containers": len(recs), "ContainersRunning": running,
                "ContainersStopped": len(recs) - running, "Images": len(self.images()),
                "Driver": "overlay2", "DockerRootDir": os.fspath(self.config.root),
                "CgroupVersion": "1", "OperatingSystem": "linux", **self.version()}

    def check(self, repair: bool = False, full: bool = False) -> list[tuple[str, str | None]]:
        """`system check`: each problem found (container/check.py), with what its repair did
        (None: not repaired, because repair was not asked for, or not possible)."""
        from pyminidocker.container import check

        problems = check.check(self.store, full=full)
        if not repair:
            return [(p.what, None) for p in problems]
        return [(p.what, done) for p, done in check.repair(self.store, problems)]

    def reset(self) -> list[str]:
        """Remove every container of this store, then everything the engine added to the host
        for networking (bridges, PMD-* rules) whichever store added it, and the engine's parent
        cgroups once empty (other stores' containers are kept). The removed containers' ids."""
        from pathlib import Path

        from pyminidocker.container.check import cleanup_stale
        from pyminidocker.network import bridge

        rt = self.runtime
        removed = []
        for rec in rt.list():
            rt.remove(rec, force=True)
            removed.append(rec.id)
        bridge.reset_host(self.store)
        live = {p.name for p in Path("/sys/fs/cgroup").glob("*/pyminidocker/*") if p.is_dir()}
        live |= {p.name for p in Path("/sys/fs/cgroup").glob("pyminidocker/*") if p.is_dir()}
        cleanup_stale(live, remove_parent=True)
        return removed

