"""Joining a detached container's stdin (run -d -i): its monitor keeps a fifo open as the
container's fd 0, or passes what comes into it to the container's console with -t
(pmd_monitor_spec.stdin_path), and a client's input goes there up to Docker's detach keys,
which end the client's attach and leave the container running."""
from __future__ import annotations

import os

from pyminidocker.errors import UsageError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(keys: str) -> bytes:
    """The bytes a terminal sends for Docker's detach keys: "ctrl-p,ctrl-q" -> b"\\x10\\x11"
    (ctrl-X is X's code & 0x1f; a single character is itself). Raises UsageError."""
    out = bytearray()
    for key in keys.split(","):
        k = key.strip()
        low = k.lower()
        if len(k) == 1:
            out.append(ord(k))
        elif low.startswith("ctrl-") and len(k) == 6 and (k[5].isalpha() or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) & 0x1F)
        else:
            raise UsageError(f"Invalid detach keys ({keys}) provided")
    return bytes(out)


class StdinWriter:
    """Writes a client's input to a container's stdin fifo. Bytes that might begin the detach
    keys are held back until it is known whether they do (then they are dropped and the
    client detaches) or not (then they are written)."""

    def __init__(self, fd: int, keys: bytes):
        self.fd = fd
        self.keys = keys
        self.held = b""

    def write(self, data: bytes) -> bool:
        """Write data (blocking while the container does not read); True once the detach
        keys were typed (what came before them is written). Raises OSError."""
        out = bytearray()
        detached = False
        for b in data:
            self.held += bytes([b])
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    detached = True
                    break
                continue
            out += self.held
            self.held = b""
        view = memoryview(bytes(out))
        while view:
            view = view[os.write(self.fd, view):]
        return detached

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_stdin(path: str, keys: bytes) -> StdinWriter | None:
    """A writer to the fifo at path, or None when no monitor holds it open (ENXIO: the
    container is gone) or there is none."""
    try:
        # O_NONBLOCK: ENXIO rather than a wait when no monitor holds the fifo open
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    os.set_blocking(fd, True)
    return StdinWriter(fd, keys)
