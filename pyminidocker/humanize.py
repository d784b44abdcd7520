"""Docker's human-readable sizes, durations, times and container status text: front-end
neutral, so the CLI and the API server both format them the same way from here."""
from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from typing import Any


def _scaled(n: float, base: float, units: tuple[str, ...], digits: int) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{digits}g}{units[i]}"


def human_size(n: float) -> str:
    """Docker's size format: decimal units, 3 significant digits (4.26MB)."""
    return _scaled(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"), 3)


def binary_size(n: float) -> str:
    """go-units BytesSize (stats' memory): binary units, 4 significant digits (1.434MiB)."""
    return _scaled(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


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


def status_text(state: Any, now: float, health: dict[str, Any] | None = None) -> str:
    """ps's STATUS: "Up 2 minutes", "Up 1 second (Paused)", "Restarting (1) 2 seconds ago",
    "Exited (0) 3 seconds ago" and "Created"."""
    if state.status == "running" and getattr(state, "restarting", False):
        finished = parse_time(state.finished_at) or now
        return f"Restarting ({state.exit_code}) {human_duration(now - finished)} ago"
    if state.status == "running":
        started = parse_time(state.started_at) or now
        paused = " (Paused)" if getattr(state, "paused", False) else ""
        if health is not None and not paused:  # Docker's "(healthy)", "(health: starting)"
            status = health.get("Status", "starting")
            paused = " (health: starting)" if status == "starting" else f" ({status})"
        return f"Up {human_duration(now - started)}{paused}"
    if state.status == "exited":
        ended = parse_time(state.finished_at)
        if ended is None:
            return f"Exited ({state.exit_code})"
        return f"Exited ({state.exit_code}) {human_duration(now - ended)} ago"
    return state.status.capitalize()
