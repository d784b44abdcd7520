"""Volumes: create, list, inspect, remove, prune. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

from pyminidocker.engine import EngineCore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.store.volumes import Volume


class Volumes(EngineCore):
    def create_volume(self, name: str | None = None, labels: dict[str, str] | None = None,
                      options: dict[str, str] | None = None, driver: str = "local") -> Volume:
        """A new volume (anonymous when name is None), or the one of that name. Raises
        UsageError (name, driver, options), StoreError."""
        from pyminidocker.store.volumes import create_volume

        vol = create_volume(self.store, name, labels, options, driver)
        self._event("volume", "create", vol.name, driver=vol.driver)
        return vol

    def volumes(self) -> list[Volume]:
        return self.store.volumes.all()

    def volume(self, name: str) -> Volume:
        """Raises NotFound."""
        return self.store.volumes.get(name)

    def volume_users(self) -> dict[str, list[str]]:
        """volume name -> the ids of the containers that mount it."""
        return self.store.volumes.users()

    def inspect_volume(self, vol: Volume) -> dict[str, Any]:
        """Docker's `volume inspect` object."""
        from pyminidocker.store.volumes import inspect_volume

        return inspect_volume(self.store, vol)

    def remove_volumes(self, names: list[str], force: bool = False) -> dict[str, Exception]:
        """Remove each; name -> error (NotFound, Conflict when in use) for those that failed."""
        from pyminidocker.store.volumes import remove_volumes

        failed = remove_volumes(self.store, names, force)
        for name in names:
            if name not in failed:
                self._event("volume", "destroy", name, driver="local")
        return failed

    def prune_volumes(self, labels: list[str] | None = None) -> tuple[list[str], int]:
        """Remove every volume no container uses (with these label filters): (names, bytes)."""
        from pyminidocker.store.volumes import prune_volumes

        names, size = prune_volumes(self.store, labels)
        for name in names:
            self._event("volume", "destroy", name, driver="local")
        return names, size

