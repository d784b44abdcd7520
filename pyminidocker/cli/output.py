"""The CLI's output helpers: Docker's human sizes, durations and times, tables
padded like Docker's tabwriter, and the pull progress lines."""
from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Progress


# ---- formatting helpers --------------------------------------------------------------------

def human_size(n: float) -> str:
    """Docker's size format: decimal units, 3 significant digits (4.26MB)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's HumanDuration (go-units), e.g. "About an hour", "3 weeks"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def parse_time(stamp: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as images carry it, or None."""
    from datetime import datetime

    if not stamp:
        return None
    s = stamp.strip().replace("Z", "+00:00")
    # Python's fromisoformat takes at most 6 fractional digits; Go writes up to 9.
    if "." in s:
        head, _, rest = s.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{frac[:6]}{tz}"
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


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
