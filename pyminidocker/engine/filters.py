"""Docker's `--filter` / `filters=` semantics, one implementation for every list of both front
ends (the CLI's ps, images, network ls, volume ls, prune and events; the API's list
endpoints): the values of one key are alternatives (any of them), different keys must all
hold, and `label` filters must all hold (Docker's MatchKVList).

Each list names the keys it takes; an unknown key or a bad value is Docker's "invalid filter
'x'" (InvalidFilter: exit 1, HTTP 400), a CLI value without "=" the flag error Docker's CLI
gives (exit 125). A before/since reference is looked up first, as dockerd does: an unknown
one is an error even when nothing is listed.
"""
from __future__ import annotations

import re
import time

from pyminidocker.errors import InvalidFilter, NotFound, PmdError, UsageError
from pyminidocker.store.volumes import matches_labels

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from pyminidocker.engine import Engine

PS_KEYS = {"status", "name", "id", "label", "ancestor", "exited", "network", "volume",
           "before", "since", "health", "publish", "expose", "is-task"}
IMAGES_KEYS = {"dangling", "reference", "label", "before", "since"}
NETWORK_KEYS = {"name", "id", "driver", "label", "type", "scope"}
VOLUME_KEYS = {"dangling", "name", "label", "driver"}
PRUNE_KEYS = {"until", "label", "label!"}
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def parse(values: Iterable[str], allowed: set[str]) -> dict[str, list[str]]:
    """["status=exited", "label=a"] -> {"status": ["exited"], "label": ["a"]}.
    Raises UsageError (no "="), InvalidFilter (a key the command does not take)."""
    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise UsageError(f'invalid argument "{v}" for "-f, --filter" flag: bad format of '
                             "filter (expected name=value)")
        key, _, value = v.partition("=")
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return check(out, allowed)


def check(filters: dict[str, list[str]], allowed: set[str]) -> dict[str, list[str]]:
    """filters, if the list takes each of its keys (the API's `filters` parameter, parsed).
    Raises InvalidFilter."""
    for key in filters:
        if key not in allowed:
            raise InvalidFilter(f"invalid filter '{key}'")
    return filters


def _invalid(key: str, value: str) -> InvalidFilter:
    return InvalidFilter(f"invalid filter '{key}={value}'")


def _search(key: str, pattern: str, text: str) -> bool:
    """Docker's name filters: a regular expression found in the name."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        raise _invalid(key, pattern) from None


def _bool(key: str, value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise _invalid(key, value)


def _port_set(key: str, value: str) -> set[str]:
    """"80", "80/udp", "8000-8080/tcp" -> {"80/tcp", ...}."""
    ports, _, proto = value.partition("/")
    lo, _, hi = ports.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise _invalid(key, value) from None
    return {f"{p}/{proto or 'tcp'}" for p in range(first, last + 1)}


def go_duration(text: str) -> float | None:
    """Go's time.ParseDuration ("24h", "1h30m", "1.5s", "300ms") in seconds, or None."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        return None
    return sum(float(n) * units[u] for n, u in parts)


def timestamp(text: str, now: float | None = None) -> float:
    """Docker's `until`/`since` time: a Go duration before now, Unix seconds, or an RFC 3339
    date or time (local time without a zone). Raises UsageError."""
    from datetime import datetime

    now = time.time() if now is None else now
    d = go_duration(text)
    if d is not None:
        return now - d
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise UsageError(f'failed to parse value as time or duration: "{text}"') from None


def combine(items: list[Any], filters: dict[str, list[str]],
            tests: dict[str, Callable[[Any, str], bool]]) -> list[Any]:
    """The items every filter key accepts: any of a key's values; all of the label values."""
    out = []
    for item in items:
        ok = True
        for key, values in filters.items():
            test = tests[key]
            if key in ("label", "label!"):
                ok = test(item, values)  # type: ignore[arg-type]
            else:
                ok = any(test(item, v) for v in values)
            if not ok:
                break
        if ok:
            out.append(item)
    return out


def _find(recs: list[Any], ref: str) -> Any:
    for r in recs:
        if ref in (r.id, r.name) or (len(ref) >= 1 and r.id.startswith(ref)):
            return r
    raise NotFound(f"No such container: {ref}")


def _created(rec: Any) -> float:
    from pyminidocker.humanize import parse_time

    return parse_time(rec.created) or 0.0


def containers(recs: list[Any], filters: dict[str, list[str]],
               exposed: Callable[[Any], set[str]] | None = None,
               health: Callable[[Any], dict[str, Any] | None] | None = None) -> list[Any]:
    """ps's filters over container records. exposed gives a record's exposed ports
    ("80/tcp"), from its image; health its State.Health (None without a healthcheck). Raises
    InvalidFilter for a bad value, NotFound for before/since."""
    for v in filters.get("status", []):
        if v not in STATUSES:
            raise _invalid("status", v)
    for v in filters.get("health", []):
        if v not in ("starting", "healthy", "unhealthy", "none"):
            raise _invalid("health", v)
    for v in filters.get("exited", []):
        if not v.lstrip("-").isdigit():
            raise _invalid("exited", v)
    for v in filters.get("name", []):
        _search("name", v, "")  # a bad pattern is an error in an empty list too
    # resolved first, as Docker's: an unknown container is an error in an empty list too
    since = {v: _created(_find(recs, v)) for k in ("before", "since") for v in filters.get(k, [])}

    def published(rec: Any) -> set[str]:
        from pyminidocker.engine import parse_publish

        return {f"{m.container_port}/{m.proto}" for spec in rec.host.get("ports", [])
                for m in parse_publish(spec)}

    def networks(rec: Any) -> set[str]:
        return {rec.host.get("network") or "bridge", *rec.state.extra_networks}

    def volume(rec: Any, v: str) -> bool:
        from pyminidocker.engine import mounts_of

        return any(v in (m.get("Name"), m.get("Source"), m["Destination"])
                   for m in mounts_of(rec.host))

    def ancestor(rec: Any, v: str) -> bool:
        from pyminidocker.engine import parse_reference

        if rec.image.startswith(v.removeprefix("sha256:")):
            return True
        try:
            want, have = parse_reference(v), parse_reference(rec.image_name)
        except ValueError:  # InvalidReference: not a name, so none of ours
            return False
        return want.name == have.name and (want.tag or "latest") == (have.tag or "latest")

    tests: dict[str, Callable[[Any, Any], bool]] = {
        "status": lambda r, v: r.state.status == v,
        "name": lambda r, v: _search("name", v, "/" + r.name),
        "id": lambda r, v: r.id.startswith(v),
        "label": lambda r, vs: matches_labels(r.labels, vs),
        "ancestor": ancestor,
        "exited": lambda r, v: r.state.status == "exited" and r.state.exit_code == int(v),
        "network": lambda r, v: v in networks(r),
        "volume": volume,
        "before": lambda r, v: _created(r) < since[v],
        "since": lambda r, v: _created(r) > since[v],
        "health": lambda r, v: ((health(r) if health else None) or {"Status": "none"}
                                ).get("Status") == v,
        "publish": lambda r, v: bool(_port_set("publish", v) & published(r)),
        "expose": lambda r, v: bool(_port_set("expose", v) & (
            published(r) | (exposed(r) if exposed else set()))),
        "is-task": lambda r, v: not _bool("is-task", v),
    }
    return combine(recs, filters, tests)


def lists_stopped(all: bool, filters: dict[str, list[str]], limit: int) -> bool:
    """Whether ps lists stopped containers: with all (-a), a status or exited filter, or a
    limit (-n, -l), as dockerd."""
    return all or "status" in filters or "exited" in filters or limit > 0


def containers_of(eng: Engine, recs: list[Any], filters: dict[str, list[str]]) -> list[Any]:
    """containers() with the engine's facts: the ports each container's image exposes, and
    its health."""
    def exposed(rec: Any) -> set[str]:
        try:
            cfg = eng.image_config(eng.image(rec.image))
        except PmdError:
            return set()
        return {p if "/" in p else p + "/tcp"
                for p in (cfg.get("config") or {}).get("ExposedPorts") or {}}

    return containers(recs, filters, exposed, eng.health)


def images_of(eng: Engine, rows: list[dict[str, Any]], filters: dict[str, list[str]]
              ) -> list[dict[str, Any]]:
    """images() with before/since looked up among the engine's images."""
    from pyminidocker.humanize import parse_time

    return images(rows, filters, lambda ref: parse_time(eng.image(ref).created) or 0.0)


def images(rows: list[dict[str, Any]], filters: dict[str, list[str]],
           lookup: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """images's filters over rows {"Repository", "Tag", "ID" (full), "Created" (epoch),
    "Labels"}. lookup(ref) gives a row's created time for before/since. Raises
    InvalidFilter, NotFound."""
    import fnmatch

    for v in filters.get("dangling", []):
        _bool("dangling", v)

    def reference(row: dict[str, Any], pattern: str) -> bool:
        repo, tag = row["Repository"], row["Tag"]
        if repo == "<none>":
            return False
        if ":" in pattern.rpartition("/")[2]:   # a tag given: match name:tag
            return fnmatch.fnmatchcase(f"{repo}:{tag}", pattern)
        return fnmatch.fnmatchcase(repo, pattern)

    def created_of(ref: str) -> float:
        if lookup is None:
            raise NotFound(f"No such image: {ref}")
        return float(lookup(ref))

    # resolved first, as Docker's: an unknown image is an error in an empty list too
    since = {v: created_of(v) for k in ("before", "since") for v in filters.get(k, [])}

    tests: dict[str, Callable[[Any, Any], bool]] = {
        "dangling": lambda r, v: (r["Repository"] == "<none>") == _bool("dangling", v),
        "reference": reference,
        "label": lambda r, vs: matches_labels(r.get("Labels") or {}, vs),
        "before": lambda r, v: r["Created"] < since[v],
        "since": lambda r, v: r["Created"] > since[v],
    }
    return combine(rows, filters, tests)


def networks(nets: list[Any], filters: dict[str, list[str]]) -> list[Any]:
    """network ls's filters over records with name, id, driver, labels (and builtin)."""
    for v in filters.get("type", []):
        if v not in ("custom", "builtin"):
            raise _invalid("type", v)
    for v in filters.get("name", []):
        _search("name", v, "")
    builtin = ("bridge", "host", "none")
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "name": lambda n, v: _search("name", v, n.name),
        "id": lambda n, v: n.id.startswith(v),
        "driver": lambda n, v: n.driver == v,
        "label": lambda n, vs: matches_labels(getattr(n, "labels", None) or {}, vs),
        "type": lambda n, v: (n.name in builtin) == (v == "builtin"),
        "scope": lambda n, v: v == "local",
    }
    return combine(nets, filters, tests)


def volumes(vols: list[Any], filters: dict[str, list[str]], in_use: Callable[[Any], bool]
            ) -> list[Any]:
    """volume ls's filters over volume records (name, driver, labels); in_use(vol) says
    whether a container uses it (dangling). A name matches any part of the volume's."""
    for v in filters.get("dangling", []):
        _bool("dangling", v)
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "dangling": lambda x, v: (not in_use(x)) == _bool("dangling", v),
        "name": lambda x, v: v in x.name,
        "driver": lambda x, v: x.driver == v,
        "label": lambda x, vs: matches_labels(x.labels, vs),
    }
    return combine(vols, filters, tests)


def prune(items: list[Any], filters: dict[str, list[str]], created: Callable[[Any], float],
          labels: Callable[[Any], dict[str, str]], now: float | None = None) -> list[Any]:
    """container/image prune's until and label filters ("label!=k" excludes)."""
    limits = [timestamp(v, now) for v in filters.get("until", [])]
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "until": lambda x, v: all(created(x) < t for t in limits),
        "label": lambda x, vs: matches_labels(labels(x), vs),
        "label!": lambda x, vs: not any(matches_labels(labels(x), [w]) for w in vs),
    }
    return combine(items, filters, tests)


def prune_keep(wanted: dict[str, list[str]], facts: Callable[[Any], tuple[float, dict[str, str]]]
               ) -> Callable[[list[Any]], list[Any]] | None:
    """Prune filters (until, label, label!) as the engine's keep function (None without any):
    facts(item) gives its creation time and labels, read once an item. Raises
    InvalidFilter for a key prune does not take."""
    if not wanted:
        return None
    check(wanted, PRUNE_KEYS)

    def keep(items: list[Any]) -> list[Any]:
        known = {id(x): facts(x) for x in items}
        return prune(items, wanted, lambda x: known[id(x)][0], lambda x: known[id(x)][1])
    return keep


def container_prune_keep(wanted: dict[str, list[str]]) -> Callable[[list[Any]], list[Any]] | None:
    """`container prune`'s filters over container records."""
    from pyminidocker.humanize import parse_time

    return prune_keep(wanted, lambda r: (parse_time(r.created) or 0.0, r.labels))


def image_prune_keep(eng: Engine, wanted: dict[str, list[str]]
                     ) -> Callable[[list[Any]], list[Any]] | None:
    """`image prune`'s filters (dangling aside, which prune_images' all says) over image
    records, by their configs' creation time and labels."""
    from pyminidocker.humanize import parse_time

    def facts(rec: Any) -> tuple[float, dict[str, str]]:
        cfg = eng.image_config(rec)
        return (parse_time(cfg.get("created", "")) or 0.0,
                (cfg.get("config") or {}).get("Labels") or {})
    return prune_keep({k: v for k, v in wanted.items() if k != "dangling"}, facts)
