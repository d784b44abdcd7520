"""A container's files: cp, the API's archive endpoints, diff, export. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

import os

from pyminidocker.engine import EngineCore
from pyminidocker.errors import NotFound, PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.engine import Engine
    from pyminidocker.store.containers import ContainerRecord


class Files(EngineCore):
    def export(self: Engine, rec: ContainerRecord, sink: Callable[[bytes], object]) -> None:  # type: ignore[misc]
        """The container's filesystem (its image and its changes) as a tar to sink."""
        from pyminidocker.image.archive import export_layers

        lowers = [os.path.join(self.store.containers.path(rec.id), "upper"),
                  *self._image_layers(rec.image)]
        export_layers(self.store, lowers, sink)
        self.runtime.log(rec, "export")

    def changes(self, rec: ContainerRecord) -> list[tuple[str, str]]:
        """("A"|"C"|"D", path) of what the container changed in its image's files."""
        from pyminidocker.container import control

        return control.changes(self.runtime, rec)

    def copy_from(self, rec: ContainerRecord, src: str, dst: str, archive: bool = False,
                  follow: bool = False) -> int:
        """`cp CONTAINER:SRC DST`, Docker's semantics (a directory's "/." copies its contents,
        an existing directory receives the source by name): the files are the caller's, or
        with archive keep the container's ids; follow: a symlink at SRC's end is followed.
        Returns the number of files written. Raises NotFound, UsageError, PmdError, OSError."""
        from pyminidocker.container import archive as ar

        def missing(path: str) -> PmdError:
            if path is src:
                return NotFound(f"No such container:path: {rec.name}:{src}")
            return NotFound(f"lstat {path}: no such file or directory")

        owner = ar.Owner(archive, os.getuid(), os.getgid())
        with ar.container_root(self.runtime, rec) as root, ar.Root("/") as host:
            return ar.copy(root, src, host, os.path.abspath(dst) + ("/" if dst.endswith("/")
                                                                    else ""),
                           owner, follow, missing)

    def copy_to(self, rec: ContainerRecord, src: str, dst: str, archive: bool = False,
                follow: bool = False) -> int:
        """`cp SRC CONTAINER:DST`: the files are root's in the container, or with archive keep
        their ids on the host. Raises as copy_from, and container.archive.ReadOnly."""
        from pyminidocker.container import archive as ar

        def missing(path: str) -> PmdError:
            if path is dst:
                return NotFound(f"No such container:path: {rec.name}:{dst}")
            return NotFound(f"lstat {path}: no such file or directory")

        self._writable(rec)
        owner = ar.Owner(archive, 0, 0)
        srcpath = os.path.abspath(src) + ("/." if src.endswith("/.") else
                                          "/" if src.endswith("/") else "")
        with ar.container_root(self.runtime, rec) as root, ar.Root("/") as host:
            return ar.copy(host, srcpath, root, dst, owner, follow, missing)

    def _writable(self, rec: ContainerRecord) -> None:
        from pyminidocker.container.archive import ReadOnly

        # a running one's root refuses writes itself (EROFS), its writable volumes accept them
        rec = self.runtime.refresh(rec)
        if rec.host.get("read_only") and rec.state.status != "running":
            raise ReadOnly("container rootfs is marked read-only")

    def path_stat(self, rec: ContainerRecord, path: str) -> Any:
        """What is at path in the container (container.archive.Stat, its last component not
        followed). Raises NotFound."""
        from pyminidocker.container import archive as ar

        with ar.container_root(self.runtime, rec) as root:
            return self._stat_in(rec, root, path)

    def _stat_in(self, rec: ContainerRecord, root: Any, path: str) -> Any:
        from pyminidocker.container import archive as ar

        try:
            return ar.stat_path(root, path)
        except (NotFound, FileNotFoundError):
            raise NotFound(f"Could not find the file {path} in container {rec.name}") from None

    def archive_get(self, rec: ContainerRecord, path: str, write: Callable[[bytes], Any],
                    on_stat: Callable[[Any], None] | None = None, follow: bool = False) -> Any:
        """The tar of path in the container (named by its last element, as Docker's GET
        /containers/{id}/archive), in chunks to write; on_stat gets its Stat first. Returns
        the Stat. Raises NotFound."""
        from pyminidocker.container import archive as ar

        with ar.container_root(self.runtime, rec) as root:
            st = self._stat_in(rec, root, path)
            if on_stat is not None:
                on_stat(st)
            ar.write_tar(ar.walk(root, path, st.name, follow), write)
            return st

    def archive_put(self, rec: ContainerRecord, path: str, stream: Any,
                    copy_ids: bool = False, no_overwrite_dir_nondir: bool = False) -> int:
        """Extract the tar read from stream (readinto) into the directory path of the
        container (Docker's PUT /containers/{id}/archive). As dockerd, the files are owned as
        the tar says; with copy_ids (`docker cp -a`), by the container's user if it has one.
        Hostile entries are refused (container.archive). Raises NotFound, UsageError (not a
        directory, not a tar, a user the container does not know), container.archive.Refused,
        ReadOnly."""
        from pyminidocker.container import archive as ar

        self._writable(rec)
        with ar.container_root(self.runtime, rec) as root:
            owner = ar.Owner()
            if copy_ids and rec.user:
                from pyminidocker.container.spec import resolve_user

                user = resolve_user(root.path, rec.user)
                owner = ar.Owner(False, user.uid, user.gid)
            try:
                return ar.extract(root, path, ar.read_tar(stream), owner,
                                  no_overwrite_dir_nondir)
            except (NotFound, FileNotFoundError):
                raise NotFound(f"Could not find the file {path} in container "
                               f"{rec.name}") from None

