"""Phase timing for `PYMINIDOCKER_TRACE=1` / `--trace`: where the time of a start goes.

Phases are timed in Python with time.monotonic_ns(); the C shim records the child's own steps
(clone, mounts, pivot_root, confinement, exec) on the same clock into memory shared with the
parent, and they are merged in order. The report goes to stderr when the command ends.
"""
from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import IO


class Tracer:
    def __init__(self, enabled: bool, out: IO[str] | None = None):
        self.enabled = enabled
        self.out = out or sys.stderr
        self.t0 = time.monotonic_ns()
        self.marks: list[tuple[str, int, int]] = []   # (phase, start ns, end ns)

    def phase(self, name: str) -> _Phase:
        """`with tracer.phase(name):` times the block (a class, not contextlib: importing
        contextlib costs milliseconds on the start path)."""
        return _Phase(self, name)

    def add(self, name: str, start_ns: int, end_ns: int) -> None:
        if self.enabled and start_ns and end_ns >= start_ns:
            self.marks.append((name, start_ns, end_ns))

    def note(self, name: str, ms: float) -> None:
        """A duration measured elsewhere (the C child's phases), listed after the last phase."""
        if self.enabled:
            end = time.monotonic_ns()
            self.marks.append((name, end, end + int(ms * 1e6)))

    def report(self, cpu_ms: float | None = None) -> None:
        """The phases; cpu_ms is the process's CPU time when the report is made (the caller's
        time.process_time()): the interpreter's start, the imports and every phase."""
        if not self.enabled:
            return
        w = self.out.write
        w("pyminidocker trace (ms):\n")
        if cpu_ms is not None:
            w(f"  {'cpu time of the whole process':<40} {cpu_ms:8.2f}\n")
        for name, start, end in sorted(self.marks, key=lambda m: (m[1], -m[2])):
            w(f"  {name:<40} {(end - start) / 1e6:8.2f}   @{(start - self.t0) / 1e6:8.2f}\n")
        w(f"  {'total since cli main':<40} {(time.monotonic_ns() - self.t0) / 1e6:8.2f}\n")


class _Phase:
    def __init__(self, tracer: Tracer, name: str):
        self.tracer = tracer
        self.name = name
        self.start = 0

    def __enter__(self) -> None:
        if self.tracer.enabled:
            self.start = time.monotonic_ns()

    def __exit__(self, *_: object) -> None:
        if self.tracer.enabled:
            self.tracer.marks.append((self.name, self.start, time.monotonic_ns()))
