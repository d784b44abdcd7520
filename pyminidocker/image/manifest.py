"""Manifest media types (OCI image spec, Docker distribution) and the parsing of a fetched
manifest or index: which kind it is, which compression a layer has, what a valid one holds."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from pyminidocker.errors import (
    InvalidReference,
    UnsupportedMedia,
)
from pyminidocker.record import dataclass
from pyminidocker.reference import validate_digest

# --- media types ---------------------------------------------------------------------------------

MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"

MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

SCHEMA1_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED})
INDEX_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX})
IMAGE_MANIFEST_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_MANIFEST})
MANIFEST_MEDIA_TYPES = INDEX_MEDIA_TYPES | IMAGE_MANIFEST_MEDIA_TYPES

# What we ask for, best first. Schema1 is left out on purpose: a registry that still has only
# schema1 answers with it anyway, and we refuse it with a clear message.
ACCEPT_ALL: tuple[str, ...] = (
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_MANIFEST,
)

_LAYER_COMPRESSION = {
    MEDIA_TYPE_OCI_LAYER: "none",
    MEDIA_TYPE_OCI_LAYER_NONDIST: "none",
    MEDIA_TYPE_DOCKER_LAYER_UNCOMPRESSED: "none",
    MEDIA_TYPE_OCI_LAYER_GZIP: "gzip",
    MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP: "gzip",
    MEDIA_TYPE_DOCKER_LAYER: "gzip",
    MEDIA_TYPE_DOCKER_FOREIGN_LAYER: "gzip",
    MEDIA_TYPE_OCI_LAYER_ZSTD: "zstd",
    MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD: "zstd",
}

# Content types that say nothing about the manifest kind; then we look at the body instead.
_GENERIC_CONTENT_TYPES = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"}
)


def layer_compression(media_type: str) -> str:
    """The compression of a layer blob: "none", "gzip" or "zstd".

    Raises UnsupportedMedia for a media type that is not a known layer type.
    """
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise UnsupportedMedia(f"unsupported layer media type {media_type!r}") from None


def is_index(media_type: str) -> bool:
    """True for a Docker manifest list or an OCI image index."""
    return media_type in INDEX_MEDIA_TYPES


def is_image_manifest(media_type: str) -> bool:
    """True for a Docker v2 schema 2 or OCI image manifest."""
    return media_type in IMAGE_MANIFEST_MEDIA_TYPES


def is_schema1(media_type: str) -> bool:
    return media_type in SCHEMA1_MEDIA_TYPES


@dataclass(frozen=True)
class Manifest:
    """A manifest as fetched: exact bytes, media type, and the sha256 digest of those bytes."""

    body: bytes
    media_type: str
    digest: str

def _digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def infer_media_type(body: bytes, content_type: str | None) -> str:
    """The manifest media type: the Content-Type if specific, else guessed from the body.

    Some registries and static file servers answer application/json or nothing; the body's own
    mediaType field or its shape then tells what it is.
    """
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct not in _GENERIC_CONTENT_TYPES:
        return ct
    try:
        doc = json.loads(body)
    except ValueError:
        return ct
    if not isinstance(doc, dict):
        return ct
    if isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
        return str(doc["mediaType"])
    if doc.get("schemaVersion") == 1:
        signed = "signatures" in doc
        return MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED if signed else MEDIA_TYPE_DOCKER_SCHEMA1
    if isinstance(doc.get("manifests"), list):
        return MEDIA_TYPE_OCI_INDEX
    if isinstance(doc.get("config"), dict) or isinstance(doc.get("layers"), list):
        return MEDIA_TYPE_OCI_MANIFEST
    return ct


def _check_descriptor(desc: Any, where: str) -> None:
    if not isinstance(desc, dict):
        raise UnsupportedMedia(f"invalid manifest {where}: descriptor is not an object")
    try:
        validate_digest(str(desc.get("digest", "")))
    except InvalidReference:
        raise UnsupportedMedia(
            f"invalid manifest {where}: bad digest {desc.get('digest')!r}"
        ) from None
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UnsupportedMedia(f"invalid manifest {where}: bad size {size!r}")


def parse_manifest(m: Manifest) -> dict[str, Any]:
    """Decode and validate a manifest or index; returns the JSON document.

    Checks schemaVersion 2, that a mediaType field (if any) agrees with the served media type,
    and the shape of descriptors (digest, size). Raises UnsupportedMedia for schema1, unknown
    media types or malformed documents.
    """
    where = m.digest
    try:
        doc = json.loads(m.body)
    except ValueError:
        raise UnsupportedMedia(f"invalid manifest {where}: not JSON") from None
    if not isinstance(doc, dict):
        raise UnsupportedMedia(f"invalid manifest {where}: not a JSON object")
    media_type = m.media_type
    if media_type in _GENERIC_CONTENT_TYPES:
        media_type = infer_media_type(m.body, None)
    if is_schema1(media_type) or doc.get("schemaVersion") == 1:
        raise _schema1_error(where)
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise UnsupportedMedia(f"unsupported manifest media type {media_type!r} ({where})")
    if doc.get("schemaVersion") != 2:
        raise UnsupportedMedia(
            f"invalid manifest {where}: schemaVersion {doc.get('schemaVersion')!r}, expected 2"
        )
    declared = doc.get("mediaType")
    if declared is not None and declared != media_type:
        # A body claiming another kind than it was served as: content confusion, refuse it.
        raise UnsupportedMedia(
            f"invalid manifest {where}: mediaType {declared!r} does not match {media_type!r}"
        )
    if is_index(media_type):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise UnsupportedMedia(f"invalid manifest {where}: index without manifests")
        for d in entries:
            _check_descriptor(d, where)
    else:
        _check_descriptor(doc.get("config"), where)
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise UnsupportedMedia(f"invalid manifest {where}: no layers list")
        for d in layers:
            _check_descriptor(d, where)
    return doc


def _schema1_error(where: str) -> UnsupportedMedia:
    return UnsupportedMedia(
        f"schema1 manifests are not supported ({where}); "
        "push the image with a newer client to convert it to schema 2 or OCI"
    )
