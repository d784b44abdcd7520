"""Image references: parsing and normalisation the way Docker does it.

A reference names an image in a registry: ``[registry[:port]/]path[:tag][@digest]``. Docker
normalises short names: ``busybox`` is ``docker.io/library/busybox:latest``. The first path
component is taken as the registry only when it looks like a host (contains ``.`` or ``:`` or is
``localhost``), so ``user/repo`` stays on Docker Hub.

Pure module: imports only the standard library.
"""
from __future__ import annotations

from pyminidocker.errors import InvalidReference
from pyminidocker.record import dataclass, replace

DEFAULT_REGISTRY = "docker.io"
# Docker Hub is known by several names; references are stored under the canonical one.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"


class _Grammar:
    """The distribution grammar, rewritten as Python regexes; compiled on first use, as `re`
    (which imports enum) costs milliseconds, and the start path only needs familiar()."""

    def __init__(self) -> None:
        import re

        self.fullmatch = re.fullmatch
        # A path component: lowercase alphanumerics separated by '.', '_', '__' or runs of '-'.
        component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
        self.path = re.compile(rf"{component}(?:/{component})*")
        # A host: DNS labels joined by '.', or a bracketed IPv6 literal; then an optional port.
        label = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
        self.domain = re.compile(
            rf"(?:{label}(?:\.{label})*|\[[0-9a-fA-F:.]+(?:%[a-zA-Z0-9]+)?\])(?::[0-9]+)?")
        self.tag = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
        self.digest = re.compile(r"(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)")
        self.hex64 = re.compile(r"[a-f0-9]{64}")


_grammar: _Grammar | None = None


def _g() -> _Grammar:
    global _grammar
    if _grammar is None:
        _grammar = _Grammar()
    return _grammar


# Known digest algorithms and the exact length of their lowercase hex encoding.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}

# Docker refuses names (registry + path) longer than this.
NAME_TOTAL_LENGTH_MAX = 255


def _invalid(detail: str | None = None) -> InvalidReference:
    msg = "invalid reference format"
    return InvalidReference(f"{msg}: {detail}" if detail else msg)


def validate_digest(digest: str) -> str:
    """Check that ``digest`` is ``<algorithm>:<hex>`` with a known algorithm and exact length.

    Returns the digest unchanged. Raises InvalidReference otherwise.
    """
    m = _g().digest.fullmatch(digest)
    if not m:
        raise _invalid(f"invalid checksum digest format ({digest})")
    alg, hexpart = m.group("alg"), m.group("hex")
    want = _DIGEST_HEX_LEN.get(alg)
    if want is None:
        raise _invalid(f"unsupported digest algorithm ({alg})")
    if len(hexpart) != want or not _g().fullmatch(r"[a-f0-9]+", hexpart):
        raise _invalid(f"invalid checksum digest length or encoding ({digest})")
    return digest


@dataclass(frozen=True)
class Reference:
    """A normalised image reference.

    ``registry`` is the canonical host[:port] (``docker.io`` for Docker Hub), ``repository`` the
    path inside it (``library/busybox``), ``tag`` None for a digest-only reference.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Full name without tag or digest: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The short form Docker displays: ``busybox``, ``user/repo``, ``127.0.0.1:5000/repo``."""
        return familiar(self.name)

    @property
    def familiar(self) -> str:
        """Familiar name with tag and/or digest, as ``docker images`` would show it."""
        return self.familiar_name + self._suffix()

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when known, otherwise the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        s = ""
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def __str__(self) -> str:
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """A copy with ``tag`` set (digest kept). Raises InvalidReference for a bad tag."""
        if not _g().tag.fullmatch(tag):
            raise _invalid(f"invalid tag ({tag})")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """A copy with ``digest`` set (tag kept). Raises InvalidReference for a bad digest."""
        return replace(self, digest=validate_digest(digest))


def familiar(ref: str) -> str:
    """The short form of a normalised reference (``str(Reference)``, or its name), as Docker
    displays it: ``docker.io/library/busybox:latest`` is ``busybox:latest``. Plain string work
    (no parsing), so the start path can match what the user typed against stored names."""
    hub = DEFAULT_REGISTRY + "/"
    if not ref.startswith(hub):
        return ref
    ref = ref[len(hub):]
    prefix = OFFICIAL_NAMESPACE + "/"
    rest = ref[len(prefix):]
    # Only a single-component name under library/ is shortened (library/a/b stays).
    if ref.startswith(prefix) and "/" not in rest.partition("@")[0].partition(":")[0]:
        return rest
    return ref


def split_name(name: str) -> tuple[str, str, str]:
    """(familiar repository, tag or "<none>", digest or "") of a stored image name, as
    `images` and `image inspect` show it. Raises InvalidReference."""
    r = parse_reference(name)
    return r.familiar_name, r.tag or "<none>", r.digest or ""


def _split_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into (registry, path) and apply Docker Hub's defaults."""
    first, sep, rest = name.partition("/")
    # The first component names a registry only when it cannot be a Hub user name: it has a
    # dot or a port, is 'localhost', or has uppercase letters (Hub names are lowercase).
    if sep and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    ):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_REGISTRY, name
    if domain in _HUB_ALIASES:
        domain = DEFAULT_REGISTRY
        if "/" not in path:
            path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def parse_reference(s: str) -> Reference:
    """Parse and normalise an image reference like ``docker pull`` does.

    Tag defaults to ``latest`` only when neither tag nor digest is given.
    Raises InvalidReference("invalid reference format: ...") for anything Docker would reject.
    """
    if not s:
        raise _invalid("empty reference")
    if s != s.strip() or any(c.isspace() for c in s):
        raise _invalid(f"whitespace in reference ({s!r})")
    g = _g()
    if g.hex64.fullmatch(s):
        # A bare image ID would otherwise parse as a Hub repository; Docker refuses it.
        raise _invalid(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")

    name, at, digest = s.partition("@")
    if at:
        validate_digest(digest)
    else:
        digest = ""
    # The tag separator is the last ':' after the last '/', so 'host:5000/repo' keeps its port.
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        if not g.tag.fullmatch(tag):
            raise _invalid(f"invalid tag ({tag})")
    if not name:
        raise _invalid("empty repository name")

    domain, path = _split_domain(name)
    if not g.domain.fullmatch(domain):
        raise _invalid(f"invalid registry host ({domain})")
    if not g.path.fullmatch(path):
        if g.path.fullmatch(path.lower()):
            raise _invalid(f"repository name ({path}) must be lowercase")
        raise _invalid(f"invalid repository name ({path})")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")

    if tag is None and not digest:
        tag = DEFAULT_TAG
    return Reference(registry=domain, repository=path, tag=tag, digest=digest or None)
