"""The containers' part of the engine API that `run` does not need: listing, logs, exec,
inspect, pause, update, rename, stats. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

import os

from pyminidocker.engine import EngineCore
from pyminidocker.errors import NotFound, PmdError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pyminidocker.container.attach import StdinWriter
    from pyminidocker.store.containers import ContainerRecord


class Containers(EngineCore):
    def resize(self, rec: ContainerRecord, rows: int, cols: int) -> None:
        """The console of the running container takes this size, as a resized terminal's
        (its processes get SIGWINCH); nothing to do for one without a tty (as dockerd). Raises
        Conflict if it is not running."""
        from pyminidocker.container.console import set_size
        from pyminidocker.errors import Conflict

        rec = self.runtime.refresh(rec)
        not_running = Conflict(f"container {rec.id} is not running")  # dockerd's words
        if rec.state.status != "running" or not rec.state.pid:
            raise not_running
        try:
            set_size(rec.state.pid, rows, cols)
        except FileNotFoundError:  # it has just exited
            raise not_running from None
        self.runtime.log(rec, "resize", height=str(rows), width=str(cols))

    def pause(self, rec: ContainerRecord) -> None:
        """Freeze its processes (the freezer cgroup). Raises Conflict."""
        from pyminidocker.container import control

        control.pause(self.runtime, rec)
        self.runtime.log(rec, "pause")

    def unpause(self, rec: ContainerRecord) -> None:
        """Raises Conflict for a container that is not paused."""
        self.runtime.unpause(rec)

    def restart(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """stop (see stop for timeout), then start detached."""
        from pyminidocker.container import control

        control.restart(self.runtime, rec, timeout)
        self.runtime.log(rec, "restart")

    def update(self, rec: ContainerRecord, changes: dict[str, Any]) -> None:
        """New resource limits (memory, memory_swap, memory_reservation, cpus, cpu_shares,
        cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, pids_limit), live for a running
        container. Raises UsageError, PmdError."""
        from pyminidocker.container import control

        control.update(self.runtime, rec, changes)

    def top(self, rec: ContainerRecord, ps_args: list[str] | None = None
            ) -> tuple[list[str], list[list[str]]]:
        """ps (ps_args, default -ef) of the container's processes: (titles, rows)."""
        from pyminidocker.container import control

        return control.top(self.runtime, rec, list(ps_args or []))

    def stats(self, rec: ContainerRecord) -> dict[str, Any]:
        """One reading of its counters (cpu, memory, network, block I/O, pids); CPU % comes
        from two (container.observe.cpu_percent). Raises Conflict if it is not running."""
        from pyminidocker.container import control

        return control.stats(self.runtime, rec)

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        """Docker's State.Health of the container (None without a healthcheck)."""
        return self.runtime.health(rec)

    def start_all_restart(self) -> list[str]:
        """At boot: start the stopped containers whose restart policy asks for it (see
        control.start_all_restart); their ids."""
        from pyminidocker.container import control

        return control.start_all_restart(self.runtime)

    def rename(self, rec: ContainerRecord, new_name: str) -> None:
        """Raises UsageError for a bad name, Conflict for a taken one."""
        from pyminidocker.container import control

        old = rec.name
        control.rename(self.runtime, rec, new_name)
        self.runtime.log(rec, "rename", oldName=f"/{old}")

    def exec(self, rec: ContainerRecord, argv: list[str], env: list[str] | None = None,
             user: str | None = None, workdir: str | None = None, tty: bool = False,
             stdio: tuple[int, int, int] = (-1, -1, -1),
             on_started: Callable[[Any], None] | None = None) -> int:
        """Run argv in the running container; its exit code. Raises Conflict if it is not
        running, StartError (125/126/127) if argv cannot start."""
        if not argv:
            raise UsageError("exec requires at least 1 command argument")
        from pyminidocker.container import control

        return control.exec(self.runtime, rec, argv, list(env or []), user, workdir, tty, stdio,
                            on_started)

    def open_stdin(self, rec: ContainerRecord, detach_keys: str | None = None
                   ) -> StdinWriter | None:
        """A writer (its write() says when the detach keys were typed; the caller closes it)
        to the stdin of a running container started detached with -i (its monitor keeps it
        open, and passes it to a tty's console: container/attach.py); None for any other
        container, whose stdin nobody can join (an attached run's is its caller's).
        detach_keys: Docker's form (default the container's --detach-keys, else
        ctrl-p,ctrl-q). Raises UsageError for bad keys."""
        from pyminidocker.container import attach

        keys = attach.parse_detach_keys(detach_keys or rec.host.get("detach_keys")
                                        or attach.DEFAULT_DETACH_KEYS)
        if not rec.open_stdin or rec.state.status != "running":
            return None
        return attach.open_stdin(os.path.join(self.store.containers.path(rec.id), "stdin"),
                                 keys)

    def containers(self, all: bool = True) -> list[ContainerRecord]:
        """The containers (only the running ones unless all), newest first; the unreadable
        ones are in corrupt_containers()."""
        recs = sorted(self.runtime.list(), key=lambda r: r.created, reverse=True)
        return recs if all else [r for r in recs if r.state.status == "running"]

    def container_views(self) -> list[ContainerRecord]:
        """containers(all=True) for a long-lived front end that lists often (the API server's
        `ps`): a stopped container whose record files are unchanged since the last call is
        the record read then, not read and parsed again. The records are for reading only:
        change one and the next call may return it as changed."""
        from pyminidocker.errors import CorruptRecord

        store = self.store.containers
        store.corrupt = {}
        views: dict[str, tuple[tuple[int, ...], ContainerRecord]] = {}
        for cid in store.ids():
            stamp = _stamp(store.path(cid))
            seen = self._views.get(cid)
            if seen is not None and stamp and seen[0] == stamp:
                views[cid] = seen
                continue
            try:
                rec = self.runtime.refresh(store.get(cid))
            except NotFound:
                continue  # removed meanwhile
            except CorruptRecord as e:
                store.corrupt[cid] = str(e)
                continue
            # a running one is reconciled on every call (its exit is in no record file yet)
            keep = rec.state.status not in ("running", "restarting") and stamp == \
                _stamp(store.path(cid))
            views[cid] = (stamp if keep else (), rec)
        self._views = views
        return sorted((rec for _, rec in views.values()), key=lambda r: r.created,
                      reverse=True)

    def corrupt_containers(self) -> list[str]:
        """One message for each container whose record cannot be read (after containers())."""
        return list(self.store.containers.corrupt.values())

    def prune_containers(self, keep: Callable[[list[ContainerRecord]], list[ContainerRecord]]
                         | None = None) -> list[str]:
        """Remove every container that is not running (of those, the ones `keep` returns:
        Docker's prune filters); their ids."""
        stopped = [r for r in self.runtime.list() if r.state.status != "running"]
        removed = []
        for rec in keep(stopped) if keep is not None else stopped:
            self.runtime.remove(rec)
            removed.append(rec.id)
        return removed

    def log_path(self, rec: ContainerRecord) -> str:
        """The container's json-file log (written by its monitor, or by the relay of an
        attached start)."""
        return os.path.join(self.store.containers.path(rec.id), f"{rec.id}-json.log")

    def logs(self, rec: ContainerRecord, tail: int | None = None,
             follow: bool = False) -> Iterator[dict[str, str]]:
        """The container's log records ({"log", "stream", "time"}), the last `tail` of them;
        with follow, then what it writes until it has exited and everything it wrote was
        read. Nothing for a container that never started."""
        import time

        if (rec.host.get("log") or {}).get("driver") == "none":
            raise PmdError("configured logging driver does not support reading")
        path = self.log_path(rec)
        older = b""  # what --log-opt max-file kept of it (path.N is the oldest), then path
        for n in range(int((rec.host.get("log") or {}).get("max_file") or 1) - 1, 0, -1):
            try:
                with open(f"{path}.{n}", "rb") as old:
                    older += old.read()
            except FileNotFoundError:
                continue
        f = self._open_log(rec, path, follow)  # held open while following
        if f is None:
            return
        with f:
            records, rest = _log_records(older + f.read())
            if tail is not None:
                records = records[max(0, len(records) - tail):] if tail > 0 else []
            yield from records
            if not follow:
                return
            while True:
                # Look at the state before reading, so that what the container wrote before
                # it exited is read after we saw it exit: nothing is missed at the end.
                running = self.runtime.running(rec)
                chunk = f.read()
                if chunk:
                    records, rest = _log_records(rest + chunk)
                    yield from records
                elif not running:
                    return
                else:
                    time.sleep(0.1)

    def _open_log(self, rec: ContainerRecord, path: str, follow: bool) -> Any:
        """The log file, None if there is none; with follow, that of a container started a
        moment ago too, once its monitor has made it (a client's start then logs?follow)."""
        import time

        while True:
            running = follow and self.runtime.running(rec)
            try:
                return open(path, "rb")
            except FileNotFoundError:
                if not running:
                    return None
            time.sleep(0.02)

    def container_mounts(self, rec: ContainerRecord) -> list[dict[str, Any]]:
        """Docker's MountPoint objects of the container, as the API's container list has them."""
        from pyminidocker.container.mounts import inspect_mounts, mounts_of

        return inspect_mounts(mounts_of(rec.host), self.store.volumes.data_path)

    def inspect_container(self, rec: ContainerRecord) -> dict[str, Any]:
        """Docker's `container inspect` object of the container (every key Docker 20.10
        has: State, Config with the image's Env, HostConfig, NetworkSettings, Mounts...)."""
        from pyminidocker import dockerjson
        from pyminidocker.store.networks import NetworkStore

        try:
            cfg = self.image_config(self.store.images.lookup(rec.image)).get("config") or {}
        except PmdError:  # its image was removed (rmi -f): Docker shows the container's own
            cfg = {}
        ns = NetworkStore(self.store)
        nets = {}
        for name in {rec.host.network, *rec.host.networks, *rec.state.extra_networks}:
            try:
                nets[name] = ns.get(name)
            except PmdError:
                continue
        doc = dockerjson.container(rec, self.store.containers.path(rec.id), cfg, nets,
                                   self.store.volumes.data_path)
        health = self.runtime.health(rec)  # as Docker: State.Health only with a healthcheck
        if health is not None:
            doc["State"]["Health"] = health
        return doc


def _stamp(d: str) -> tuple[int, ...]:
    """What changes when a container's record files are rewritten (atomic_write: a new inode,
    a new mtime); () if one is missing."""
    out: list[int] = []
    for name in ("config.json", "state.json"):
        try:
            st = os.stat(os.path.join(d, name))
        except OSError:
            return ()
        out += (st.st_ino, st.st_mtime_ns, st.st_size)
    return tuple(out)


def _log_records(data: bytes) -> tuple[list[dict[str, str]], bytes]:
    """The json-file records in data, and the incomplete last line (a record being written)."""
    import json

    lines = data.split(b"\n")
    records = []
    for line in lines[:-1]:
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # not ours; Docker's reader skips what it cannot decode too
        if isinstance(rec, dict) and isinstance(rec.get("log"), str):
            records.append(rec)
    return records, lines[-1]
