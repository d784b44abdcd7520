"""`events`: the engine's event log, as Docker prints it, with --since, --until, --filter and
--format; without --until it follows what comes next until interrupted."""
from __future__ import annotations

import time

from pyminidocker.engine import filters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Engine

POLL = 0.1          # seconds between two looks at the log
NOTICE_EXITS = 0.5  # seconds between two looks for containers that have ended (their `die`)


class _Actor:
    _go_type = "events.Actor"

    def __init__(self, actor: Mapping[str, Any]):
        self.ID = str(actor.get("ID", ""))
        self.Attributes = dict(actor.get("Attributes") or {})


class Message:
    """An event as Docker's templates see it (events.Message: Go's field names); `json`
    prints the message as the API sends it."""

    _go_type = "events.Message"

    def __init__(self, ev: Mapping[str, Any]):
        self._ev = ev
        self.Status = str(ev.get("status", ""))
        self.ID = str(ev.get("id", ""))
        self.From = str(ev.get("from", ""))
        self.Type = str(ev.get("Type", ""))
        self.Action = str(ev.get("Action", ""))
        self.Actor = _Actor(ev.get("Actor") or {})
        self.Scope = str(ev.get("scope", ""))
        self.Time = int(ev.get("time") or 0)
        self.TimeNano = int(ev.get("timeNano") or 0)

    def go_json(self) -> Mapping[str, Any]:
        return self._ev


def line(ev: Mapping[str, Any]) -> str:
    """Docker's default line: local time with nanoseconds, type, action, actor id, then the
    attributes sorted by key."""
    ns = int(ev.get("timeNano") or 0)
    stamp = ""
    if ns:
        local = time.localtime(ns // 1_000_000_000)
        off = local.tm_gmtoff or 0
        zone = "Z" if off == 0 else \
            f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
        stamp = f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{ns % 1_000_000_000:09d}{zone} "
    actor = ev.get("Actor") or {}
    out = f"{stamp}{ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out


def cmd_events(args: Namespace, env: Env) -> int:
    from pyminidocker.cli.gotemplate import TemplateError, format_items
    from pyminidocker.cli.listing import FormatError

    eng: Engine = args.engine
    now = time.time()
    since = filters.timestamp(args.since, now) if args.since else None
    until = filters.timestamp(args.until, now) if args.until else None
    from pyminidocker.engine import EVENT_FILTERS

    wanted = filters.parse(args.filter, EVENT_FILTERS)
    fmt = args.format
    try:
        if fmt:
            format_items(fmt, [])  # a template that does not parse fails before any wait
    except TemplateError as e:
        raise FormatError(f"template parsing error: {e}") from None
    if since is None and until is not None:
        since = 0.0  # Docker: --until alone shows what is logged up to then
    reader = eng.events(since, wanted)
    last_notice = 0.0
    try:
        while True:
            done = until is not None and time.time() >= until
            if time.monotonic() - last_notice >= NOTICE_EXITS:
                eng.notice_exits()
                last_notice = time.monotonic()
            for ev in reader.read():
                if until is not None and int(ev.get("timeNano") or 0) > until * 1e9:
                    continue
                try:
                    text = format_items(fmt, [Message(ev)]) if fmt else line(ev) + "\n"
                except TemplateError as e:
                    raise FormatError(f"template parsing error: {e}") from None
                env.stdout.write(text)
                env.stdout.flush()
            if done:
                return 0
            time.sleep(POLL if until is None else max(0.0, min(POLL, until - time.time())))
    finally:
        reader.close()
