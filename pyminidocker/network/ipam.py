"""Who may keep an address: the host-wide address book of each bridge, and the staleness test
that frees what a killed command left.

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
from pyminidocker.store.files import FileLock, read_json, write_json

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import Any

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
