"""The fields `--format` reads for `ps`, `images` and `network ls`, named and shaped as Docker's
formatter contexts (docker/cli cli/command/formatter): `{{.ID}}`, `{{.Names}}`, `{{.Ports}}`,
`{{.Label "k"}}`, `{{json .}}`... and each list's column titles and default table.

A context wraps one record and computes a field only when a template reads it (Size walks a
directory). Imported by the listing commands only, never by `run`.
"""
from __future__ import annotations

import time

from pyminidocker.humanize import human_duration, human_size, parse_time, status_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}" \
           "\t{{.Names}}"
PS_HEADER = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
    "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
    "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Label": "LABEL",
}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}" \
                       "\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADER = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}
NETWORKS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
VOLUMES_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUMES_HEADER = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Labels": "LABELS",
                  "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE", "Links": "LINKS", "Size": "SIZE"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADER = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                  "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADER = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADER = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
             "Reclaimable": "RECLAIMABLE"}
NETWORKS_HEADER = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
    "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}


def ellipsis(s: str, width: int) -> str:
    """Docker's formatter.Ellipsis: at most width characters, the last one "…" if cut."""
    if width <= 0:
        return ""
    if len(s) <= width:
        return s
    return s[:1] if width == 1 else s[:width - 1] + "…"


def go_quote(s: str) -> str:
    """strconv.Quote, as Docker quotes COMMAND: printable Unicode ("…") stays as it is."""
    from pyminidocker.cli.gotemplate import go_sprintf

    return go_sprintf("%q", s)


def go_time(epoch: float) -> str:
    """Go's time.Time.String() in local time, as CreatedAt prints: 2026-12-04 05:01:00 +0000 UTC."""
    t = time.localtime(int(epoch))
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + (t.tm_zone or "")


def docker_command(argv: list[str]) -> str:
    """The daemon's Command of a container: path and args, an arg with a space in '...'."""
    if not argv:
        return ""
    return " ".join([argv[0], *(f"'{a}'" if " " in a else a for a in argv[1:])])


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def display_ports(mappings: list[str], exposed: list[str] | None = None) -> str:
    """Docker's DisplayablePorts: "0.0.0.0:8080->80/tcp, 443/tcp", consecutive ports folded
    into ranges ("0.0.0.0:8080-8081->80-81/tcp"). mappings are "80/tcp -> 0.0.0.0:8080"."""
    published: dict[tuple[str, str], list[tuple[int, int]]] = {}
    seen: set[str] = set()
    for m in mappings:
        inside, _, outside = m.partition(" -> ")
        cport, _, proto = inside.partition("/")
        ip, _, hport = outside.rpartition(":")
        published.setdefault((ip or "0.0.0.0", proto or "tcp"), []).append(
            (int(hport), int(cport)))
        seen.add(inside)
    groups: list[tuple[int, str]] = []
    for (ip, proto), pairs in published.items():
        pairs.sort()
        start = prev = pairs[0]
        for pair in [*pairs[1:], None]:
            if pair is not None and pair == (prev[0] + 1, prev[1] + 1):
                prev = pair
                continue
            host = f"{start[0]}" if start == prev else f"{start[0]}-{prev[0]}"
            ctr = f"{start[1]}" if start == prev else f"{start[1]}-{prev[1]}"
            groups.append((start[1], f"{ip}:{host}->{ctr}/{proto}"))
            if pair is not None:
                start = prev = pair
    bare = sorted({p if "/" in p else p + "/tcp" for p in exposed or []} - seen,
                  key=lambda p: int(p.partition("/")[0]))
    singles: list[tuple[int, str]] = []
    for p in bare:
        port, _, proto = p.partition("/")
        n = int(port)
        if singles and singles[-1][1].endswith(f"/{proto}"):
            last_n, last = singles[-1]
            hi = int(last.partition("/")[0].rpartition("-")[2])
            if n == hi + 1:
                first = last.partition("/")[0].partition("-")[0]
                singles[-1] = (last_n, f"{first}-{n}/{proto}")
                continue
        singles.append((n, p))
    return ", ".join(s for _, s in sorted([*groups, *singles], key=lambda g: g[0]))


class ContainerContext:
    """One row of `ps`: Docker's ContainerContext fields (Docker's capitalised names)."""

    _go_type = "*formatter.ContainerContext"

    def __init__(self, rec: Any, now: float | None = None, trunc: bool = True,
                 size: tuple[int, int] | None = None, health: dict[str, Any] | None = None):
        self._rec, self._trunc, self._size, self._health = rec, trunc, size, health
        self._now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        return self._rec.short_id if self._trunc else self._rec.id

    @property
    def Names(self) -> str:
        return self._rec.name

    @property
    def Image(self) -> str:
        return self._rec.image_name or self._rec.image[:12]

    @property
    def Command(self) -> str:
        cmd = docker_command(self._rec.argv)
        return go_quote(ellipsis(cmd, 20) if self._trunc else cmd)

    @property
    def CreatedAt(self) -> str:
        created = parse_time(self._rec.created)
        return go_time(created) if created is not None else ""

    @property
    def RunningFor(self) -> str:
        created = parse_time(self._rec.created)
        return human_duration(self._now - created) + " ago" if created is not None else ""

    @property
    def Ports(self) -> str:
        st = self._rec.state
        if st.status == "running":
            return display_ports(st.ports)
        return ""

    @property
    def State(self) -> str:
        return self._rec.state.status

    @property
    def Status(self) -> str:
        return status_text(self._rec.state, self._now, self._health)

    @property
    def Size(self) -> str:
        rw, virtual = self._size or (0, 0)
        if not self._size:
            return "0B"
        return f"{human_size(rw)} (virtual {human_size(virtual)})"

    @property
    def Labels(self) -> str:
        return labels_text(self._rec.labels)

    def Label(self, name: str) -> str:
        return str(self._rec.labels.get(name, ""))

    @property
    def Mounts(self) -> str:
        from pyminidocker.engine import mounts_of

        names = []
        for m in mounts_of(self._rec.host):
            if m["Type"] == "tmpfs":
                continue
            src = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(src, 15) if self._trunc else src)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        from pyminidocker.engine import mounts_of

        return str(sum(m["Type"] == "volume" for m in mounts_of(self._rec.host)))

    @property
    def Networks(self) -> str:
        mode = self._rec.host.get("network") or "bridge"
        return ",".join(sorted({mode, *self._rec.state.extra_networks}))

    def go_json(self) -> dict[str, str]:
        """`{{json .}}`: every field, keys sorted (Docker marshals its fields as a map)."""
        names = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                 "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status")
        return {n: getattr(self, n) for n in names}


class ImageContext:
    """One row of `images`: Docker's ImageContext fields."""

    _go_type = "*formatter.ImageContext"

    def __init__(self, image_id: str, repository: str, tag: str, digest: str, created: str,
                 size: int, now: float | None = None, trunc: bool = True):
        self._id, self._created, self._size, self._trunc = image_id, created, size, trunc
        self.Repository, self.Tag, self.Digest = repository, tag, digest
        self._now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        return self._id[:12] if self._trunc else "sha256:" + self._id

    @property
    def CreatedSince(self) -> str:
        created = parse_time(self._created)
        return human_duration(self._now - created) + " ago" if created else "N/A"

    @property
    def CreatedAt(self) -> str:
        created = parse_time(self._created)
        return go_time(created) if created else ""

    @property
    def Size(self) -> str:
        return human_size(self._size)

    VirtualSize = Size
    Containers = SharedSize = UniqueSize = "N/A"

    def go_json(self) -> dict[str, str]:
        names = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
                 "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")
        return {n: getattr(self, n) for n in names}


class NetworkContext:
    """One row of `network ls`: Docker's NetworkContext fields."""

    _go_type = "*formatter.NetworkContext"

    def __init__(self, name: str, net_id: str, driver: str, created: str = "",
                 internal: bool = False, labels: dict[str, str] | None = None,
                 trunc: bool = True):
        self.Name, self.Driver, self.Scope = name, driver, "local"
        self._id, self._created, self._trunc = net_id, created, trunc
        self._internal, self._labels = internal, labels or {}

    @property
    def ID(self) -> str:
        return self._id[:12] if self._trunc else self._id

    @property
    def IPv6(self) -> str:
        return "false"

    @property
    def Internal(self) -> str:
        return "true" if self._internal else "false"

    @property
    def Labels(self) -> str:
        return labels_text(self._labels)

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")

    @property
    def CreatedAt(self) -> str:
        created = parse_time(self._created)
        return go_time(created) if created else ""

    def go_json(self) -> dict[str, str]:
        names = ("CreatedAt", "Driver", "ID", "IPv6", "Internal", "Labels", "Name", "Scope")
        return {n: getattr(self, n) for n in names}


class DiskUsageContext:
    """One row of `system df`: the fields of Docker's disk usage contexts."""

    _go_type = "*formatter.diskUsageContext"

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int):
        from pyminidocker.humanize import human_size

        self.Type, self.TotalCount, self.Active = kind, str(total), str(active)
        self.Size = human_size(size)
        # Docker's: the share of the size only when there is a size
        self.Reclaimable = human_size(reclaimable) + (
            f" ({reclaimable * 100 // size}%)" if size else "")
