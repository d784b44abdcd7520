"""The CLI's output helpers: Docker's human sizes, durations and times, tables
padded like Docker's tabwriter, and the pull progress lines."""
from __future__ import annotations

from pyminidocker.humanize import human_duration, human_size, parse_time  # noqa: F401

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Progress


# ---- formatting helpers --------------------------------------------------------------------

def table(rows: list[list[str]], env: Env) -> None:
    """Columns padded like Docker's tabwriter (3 spaces between columns)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        env.out("".join(c.ljust(w + 3) for c, w in zip(r[:-1], widths)) + r[-1])


# ---- pull progress ---------------------------------------------------------------------------

class PullRenderer:
    """Docker-style per-layer lines: updated in place on a TTY, one line per change otherwise."""

    def __init__(self, env: Env):
        self.env = env
        self.tty = env.tty
        self.order: list[str] = []
        self.lines: dict[str, str] = {}
        self.last: dict[str, str] = {}

    def __call__(self, ev: Progress) -> None:
        text = ev.status
        if ev.status == "Downloading" and ev.total:
            width = 50
            done = min(width, int(width * ev.current / ev.total))
            bar = "=" * done + (">" if done < width else "") + " " * (width - done - 1)
            text = f"Downloading [{bar}]  {human_size(ev.current)}/{human_size(ev.total)}"
        if not self.tty:
            if self.last.get(ev.id) != ev.status:
                self.env.out(f"{ev.id}: {ev.status}")
                self.last[ev.id] = ev.status
            return
        if ev.id not in self.lines:
            self.order.append(ev.id)
            self.lines[ev.id] = text
            self.env.stdout.write(f"{ev.id}: {text}\n")
        else:
            self.lines[ev.id] = text
            up = len(self.order) - self.order.index(ev.id)
            self.env.stdout.write(f"\x1b[{up}A\r\x1b[2K{ev.id}: {text}\x1b[{up}B\r")
        self.env.stdout.flush()


def trunc(s: str, n: int) -> str:
    """s cut to n characters, the last one an ellipsis when cut (Docker's TruncateWithEllipsis)."""
    return s if len(s) <= n else s[: n - 1] + "…"
