"""Platforms (os/architecture/variant): parsing, host detection, and choosing from an index.

Names are normalised the way containerd does, so that the kernel's ``aarch64`` and an index's
``arm64`` compare equal. Variants are ordered per architecture so that a host that can run v7
ARM code also accepts v6 and v5 images, best first.

Pure module: imports only the standard library.
"""
from __future__ import annotations

import platform as _stdlib_platform
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pyminidocker.errors import NotFound, UsageError
from pyminidocker.record import dataclass

# platform.machine() spellings → (GOARCH, variant). None means "the architecture's default".
_ARCH_ALIASES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "386": ("386", None),
    "x86": ("386", None),
}
_OS_ALIASES = {"macos": "darwin"}
_KNOWN_OS = frozenset(
    {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
     "android", "aix", "plan9", "dragonfly", "ios", "js", "wasip1"}
)
_COMPONENT_RE = re.compile(r"[a-z0-9_.-]+")

# For each architecture, the variants a CPU of a given variant can run, best first. A variant
# that normalises to None (the architecture's baseline) is written as None.
_VARIANT_FALLBACKS: dict[str, dict[str | None, list[str | None]]] = {
    "arm": {
        "v8": ["v8", "v7", "v6", "v5"],
        "v7": ["v7", "v6", "v5"],
        "v6": ["v6", "v5"],
        "v5": ["v5"],
    },
    "amd64": {
        "v4": ["v4", "v3", "v2", None],
        "v3": ["v3", "v2", None],
        "v2": ["v2", None],
        None: [None],
    },
    "arm64": {
        "v9": ["v9", None],
        None: [None],
    },
}

ATTESTATION_REF_TYPE = "attestation-manifest"


@dataclass(frozen=True)
class Platform:
    """A normalised platform. ``variant`` is None for the architecture's default."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s

    def to_dict(self) -> dict[str, str]:
        """The OCI ``platform`` object for this platform."""
        d = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        """Build from an OCI ``platform`` object (unknown keys ignored), normalised."""
        return normalize(
            str(d.get("os") or ""), str(d.get("architecture") or ""), d.get("variant") or None
        )


def normalize(os_name: str, arch: str, variant: str | None = None) -> Platform:
    """Normalise spellings: aarch64→arm64, x86_64→amd64, arm64/v8→arm64, amd64/v1→amd64,
    arm (no variant)→arm/v7, ..."""
    os_name = _OS_ALIASES.get(os_name.lower(), os_name.lower())
    arch = arch.lower()
    variant = variant.lower() if variant else None
    if arch in _ARCH_ALIASES:
        arch, implied = _ARCH_ALIASES[arch]
        variant = variant or implied
    if variant is not None and variant[0].isdigit():
        variant = "v" + variant  # "7" → "v7", as containerd accepts both
    # arm64/v8 and amd64/v1 are the baselines: spelled without a variant so they compare equal.
    if (arch, variant) in (("arm64", "v8"), ("arm64", "v8.0"), ("amd64", "v1")):
        variant = None
    elif arch == "arm" and variant is None:
        # A bare "arm" means ARMv7 everywhere in the ecosystem (Docker, containerd, Go).
        variant = "v7"
    return Platform(os_name, arch, variant)


def parse_platform(s: str) -> Platform:
    """Parse ``os[/arch[/variant]]`` (or a bare architecture, meaning linux), normalised.

    ``linux`` alone means the host's architecture. Raises UsageError for malformed input.
    """
    parts = s.strip().lower().split("/")
    if not s.strip() or len(parts) > 3 or any(not _COMPONENT_RE.fullmatch(p) for p in parts):
        raise UsageError(
            f'invalid platform "{s}": expected os/arch[/variant], e.g. linux/arm64/v8'
        )
    if len(parts) == 1:
        (word,) = parts
        if word in _KNOWN_OS or word in _OS_ALIASES:
            host = host_platform()
            return normalize(word, host.architecture, host.variant)
        return normalize("linux", word)
    os_name, arch = parts[0], parts[1]
    if os_name not in _KNOWN_OS and os_name not in _OS_ALIASES:
        raise UsageError(f'invalid platform "{s}": unknown operating system "{os_name}"')
    return normalize(os_name, arch, parts[2] if len(parts) == 3 else None)


def host_platform() -> Platform:
    """The platform of this machine, from platform.system() and platform.machine()."""
    return normalize(_stdlib_platform.system() or "linux", _stdlib_platform.machine() or "amd64")


def acceptable_variants(want: Platform) -> list[str | None]:
    """Variants ``want`` can run, best first (always starts with want.variant)."""
    table = _VARIANT_FALLBACKS.get(want.architecture, {})
    return table.get(want.variant, [want.variant])


def is_attestation(descriptor: Mapping[str, Any]) -> bool:
    """True for BuildKit attestation (SBOM/provenance) entries of an index, which are not images."""
    ann = descriptor.get("annotations") or {}
    if ann.get("vnd.docker.reference.type") == ATTESTATION_REF_TYPE:
        return True
    plat = descriptor.get("platform") or {}
    return plat.get("os") == "unknown" and plat.get("architecture") == "unknown"


def select_manifest(index_manifests: Sequence[dict[str, Any]], want: Platform) -> dict[str, Any]:
    """Pick the descriptor of an index's ``manifests`` that best fits ``want``.

    The OS and architecture must match; among variants the exact one wins, then the fallbacks in
    order (arm v7 takes v6 then v5; amd64 v3 takes v2 then baseline). Ties keep index order.
    Attestation entries and entries without a platform are skipped.
    Raises NotFound("no matching manifest for <platform> in the manifest list entries").
    """
    want = normalize(want.os, want.architecture, want.variant)
    accepted = acceptable_variants(want)
    best: tuple[int, dict[str, Any]] | None = None
    for desc in index_manifests:
        if is_attestation(desc) or not isinstance(desc.get("platform"), dict):
            continue
        have = Platform.from_dict(desc["platform"])
        if (have.os, have.architecture) != (want.os, want.architecture):
            continue
        if have.variant not in accepted:
            continue
        rank = accepted.index(have.variant)
        if best is None or rank < best[0]:
            best = (rank, desc)
    if best is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return best[1]
