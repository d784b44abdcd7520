"""The event log: what the engine did, one JSON object a line, for `events` and GET /events.

A daemonless engine has no one process that sees every change, so each command appends what
it did to <root>/events.jsonl, and readers follow the file. An append is one write(2) of one
line to a descriptor opened with O_APPEND (the seek to the end and the write are one step on
a local file system, so lines of concurrent writers do not interleave). Nothing is fsynced:
the log is a record for people, not the store's truth, and a crash may lose its last lines
(Docker's in-memory event buffer loses all of them).

Each line is Docker's event message as the API sends it (Type, Action, Actor{ID, Attributes},
scope, time, timeNano; status/id/from for containers and images, which old clients read).
Bounded: past MAX_BYTES the file becomes events.jsonl.1 (the previous .1 is dropped), so the
log holds between MAX_BYTES and twice that.

Writers use emit() (store.log_event: it is on the start path of `run`, which loads the
store's package but not this module); readers use Reader and matches() from here.
"""
from __future__ import annotations

import os

from pyminidocker import record
from pyminidocker.store import EVENT_LOG as LOG
from pyminidocker.store import log_event as emit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["EVENT_FILTERS", "LOG", "Reader", "emit", "matches"]

EVENT_FILTERS = {"container", "event", "image", "label", "network", "scope", "type", "volume"}


def matches(ev: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Docker's event filters: any of a key's values, every key (labels: all of them)."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    kind, ident = ev.get("Type", ""), str(actor.get("ID", ""))

    def named(want: str) -> bool:  # the id (or a prefix of it) or the name
        bare = ident.removeprefix("sha256:")
        return bool(want) and (want == ident or bare.startswith(want.removeprefix("sha256:"))
                               or want == attrs.get("name"))

    for key, values in filters.items():
        if key == "type":
            ok = kind in values
        elif key == "event":
            ok = ev.get("Action") in values or any(
                str(ev.get("Action", "")).startswith(v + ":") for v in values)
        elif key == "label":
            ok = all(attrs.get(k) == v if eq else k in attrs
                     for k, eq, v in (w.partition("=") for w in values))
        elif key == "container":
            ok = (kind == "container" and any(named(v) for v in values)) or \
                any(attrs.get("container", "").startswith(v) for v in values if v)
        elif key == "image":
            ok = (kind == "image" and any(named(v) for v in values)) or \
                (kind == "container" and _image_match(attrs.get("image", ""), values))
        elif key == "scope":
            ok = ev.get("scope", "local") in values
        elif key in ("network", "volume"):
            ok = kind == key and any(named(v) for v in values)
        else:
            ok = False
        if not ok:
            return False
    return True


def _image_match(image: str, values: Iterable[str]) -> bool:
    """A container's image as it was named: "busybox" matches "busybox:latest" too."""
    plain = image.removesuffix(":latest")
    return any(v in (image, plain) or v.removesuffix(":latest") == plain for v in values)


class Reader:
    """The log from a time on: read() returns the events not returned yet (at once: it never
    waits), oldest first, following the file across rotations."""

    def __init__(self, root: str, since: float | None = None,
                 filters: Mapping[str, list[str]] | None = None):
        """since: seconds since the epoch (None: only what comes after now)."""
        self.path = os.path.join(root, LOG)
        self.filters = dict(filters or {})
        self._since_ns = None if since is None else int(since * 1e9)
        self._f: Any = None
        self._pending = b""
        if since is None:  # start at the end
            self._open(at_end=True)
            self._old: list[str] = []
        else:
            self._old = [self.path + ".1"]
            self._open(at_end=False)

    def _open(self, at_end: bool) -> None:
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            self._f = None
            return
        if at_end:
            self._f.seek(0, os.SEEK_END)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for old in self._old:  # the rotated file's lines, once, before the current file's
            try:
                with open(old, "rb") as f:
                    self._lines(f.read(), out, whole=True)
            except FileNotFoundError:
                pass
        self._old = []
        if self._f is None:
            self._open(at_end=False)
        while self._f is not None:
            self._lines(self._f.read(), out)
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(self._f.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if not rotated:
                break
            self._lines(self._f.read(), out, whole=True)  # its last lines, then the new file
            self._f.close()
            self._pending = b""
            self._open(at_end=False)
        return out

    def _lines(self, data: bytes, out: list[dict[str, Any]], whole: bool = False) -> None:
        data = self._pending + data
        lines = data.split(b"\n")
        self._pending = b"" if whole else lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                ev = record.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if not isinstance(ev, dict):
                continue
            if self._since_ns is not None and int(ev.get("timeNano") or 0) < self._since_ns:
                continue
            if matches(ev, self.filters):
                out.append(ev)
