"""The registry client: the OCI distribution spec, one registry per RegistryClient.

Its seams are modules of their own: transport.py sends (endpoint choice, retries with backoff and
Retry-After, redirects that keep credentials on the registry host), auth.py answers challenges
(Bearer tokens and Basic, with credentials from the Docker config file), blobs.py moves blobs
(resumable, verified downloads; uploads). Here: the API calls, manifests and tags, and login.

Every failure surfaces as a PmdError subclass with a one-line message naming the registry; no
requests or urllib3 exception escapes. Library code never prints: progress goes to callbacks.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

from pyminidocker.config import Config
from pyminidocker.errors import (
    InvalidReference,
    ManifestUnknown,
    NotFound,
    RegistryError,
    UnsupportedMedia,
    VerificationError,
)
from pyminidocker.image import blobs
from pyminidocker.image.auth import Authorizer, remove_credentials, store_credentials
from pyminidocker.image.manifest import (
    ACCEPT_ALL,
    MANIFEST_MEDIA_TYPES,
    Manifest,
    _digest_of,
    _schema1_error,
    infer_media_type,
    is_schema1,
)
from pyminidocker.image.transport import (
    ERROR_BODY_LIMIT,
    Sleep,
    Transport,
    error_codes,
    origin,
)
from pyminidocker.reference import Reference, validate_digest

MANIFEST_SIZE_LIMIT = 4 << 20  # distribution refuses manifests over 4 MiB; so do we
MAX_TAG_PAGES = 1000


class RegistryClient:
    """A client for one registry (``registry`` as in Reference.registry, e.g. ``docker.io``).

    Thread-safe enough for parallel blob downloads: the session is shared, auth state is
    guarded by a lock.
    """

    def __init__(self, config: Config, registry: str, *, sleep: Sleep = time.sleep) -> None:
        self.config = config
        self.registry = registry
        self.sleep = sleep
        self.transport = Transport(config, registry, sleep)
        self.auth = Authorizer(self.transport, Path(config.docker_config))
        self.transport.auth = self.auth
        self.host = self.transport.host
        self.insecure = self.transport.insecure

    # -- lifecycle

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoint

    @property
    def scheme(self) -> str:
        return self.transport.scheme

    def _where(self, repository: str | None) -> str:
        if repository is None:
            return self.registry
        return Reference(self.registry, repository).familiar_name

    # -- credentials

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the Docker config, read once; None if not logged in."""
        return self.auth.credentials

    def login(self, username: str, password: str) -> None:
        """Check the credentials against the registry, then save them in the Docker config.

        Raises AuthError for refused credentials, RegistryError if the registry cannot be
        reached, UsageError/StoreError if the config file is malformed or unwritable.
        """
        self.auth.use_credentials((username, password))
        # /v2/ with no scope: a Bearer registry sends us to its token server, which checks
        # the password; a Basic registry checks it directly.
        try:
            resp = self.transport.request("GET", "/v2/", scope=None, what=self.registry)
            try:
                if resp.status_code != 200:
                    raise self.transport.status_error(resp, self.registry)
            finally:
                resp.close()
        except BaseException:
            # Refused: do not keep using the rejected password on this client.
            self.auth.forget_credentials()
            raise
        store_credentials(Path(self.config.docker_config), self.registry, username, password)

    def logout(self) -> None:
        """Forget the saved credentials for this registry.

        Raises NotFound("not logged in to <registry>") if there were none; UsageError or
        StoreError for a malformed or unwritable config file.
        """
        if not remove_credentials(Path(self.config.docker_config), self.registry):
            raise NotFound(f"not logged in to {self.registry}")
        self.auth.use_credentials(None)

    # -- API

    def ping(self) -> None:
        """GET /v2/: check the registry speaks the v2 API and learn its auth challenge.

        Raises RegistryError if unreachable or not a v2 registry.
        """
        resp = self.transport.request("GET", "/v2/", use_auth=False, what=self.registry)
        try:
            if resp.status_code == 401:
                # Expected for any registry with auth; remember how to authenticate.
                self.auth.learn_bearer(resp.headers.get("WWW-Authenticate", ""))
                return
            if resp.status_code == 404:
                raise RegistryError(f"{self.registry} does not support the registry v2 API")
            if resp.status_code != 200:
                raise self.transport.status_error(resp, self.registry)
        finally:
            resp.close()

    @staticmethod
    def _scope(repository: str) -> str:
        return f"repository:{repository}:pull"

    def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str] = ACCEPT_ALL
    ) -> Manifest:
        """Fetch a manifest or index by tag or digest.

        The digest is the sha256 of the exact bytes received; when ``reference`` is a digest
        it must match. Raises ManifestUnknown (404), UnsupportedMedia (schema1, unknown media
        type), VerificationError (digest mismatch), AuthError, RegistryError.
        """
        by_digest = ":" in reference
        name = self._where(repository)
        shown = f"{name}@{reference}" if by_digest else f"{name}:{reference}"
        if by_digest:
            try:
                validate_digest(reference)
            except InvalidReference as e:
                raise VerificationError(f"{shown}: {e}") from None
        resp = self.transport.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=self._scope(repository),
            headers={"Accept": ", ".join(accept)},
            what=name,
        )
        try:
            if resp.status_code == 404:
                body = self.transport.read_small(resp, ERROR_BODY_LIMIT, name)
                codes = error_codes(body)
                detail = "manifest unknown"
                if "NAME_UNKNOWN" in codes:
                    detail += ": repository name not known to registry"
                raise ManifestUnknown(f"manifest for {shown} not found: {detail}")
            if resp.status_code != 200:
                raise self.transport.status_error(resp, name)
            body = self.transport.read_small(resp, MANIFEST_SIZE_LIMIT, f"manifest for {shown}")
            content_type = resp.headers.get("Content-Type")
        finally:
            resp.close()
        media_type = infer_media_type(body, content_type)
        if is_schema1(media_type):
            raise _schema1_error(shown)
        if media_type not in MANIFEST_MEDIA_TYPES:
            raise UnsupportedMedia(f"unsupported manifest media type {media_type!r} for {shown}")
        digest = _digest_of(body)
        if by_digest:
            algorithm = reference.split(":", 1)[0]
            actual = digest if algorithm == "sha256" else _digest_of(body, algorithm)
            if actual != reference:
                raise VerificationError(
                    f"manifest digest mismatch for {shown}: registry sent {actual}"
                )
        return Manifest(body=body, media_type=media_type, digest=digest)

    def get_blob(self, repository: str, descriptor: Mapping[str, Any]) -> bytes:
        """Fetch a small blob (an image config) into memory and verify its digest and size.

        Raises BlobUnknown, VerificationError, AuthError, RegistryError.
        """
        return blobs.get_blob(self.transport, repository, self._scope(repository),
                              self._where(repository), descriptor)

    def stream_blob(
        self,
        repository: str,
        descriptor: Mapping[str, Any],
        sink: Callable[[bytes], None],
        progress: Callable[[int], None] | None = None,
        offset: int = 0,
    ) -> int:
        """Stream a blob's exact bytes (no content decoding) to ``sink``; returns the count.
        With ``offset``, the consumer has the first ``offset`` bytes already: only the rest is
        asked for (Range) and delivered, and the count includes them.

        ``progress`` is called with the running total after each chunk. A connection broken
        mid-body is resumed with a Range request where the last one stopped (a server that
        ignores Range and answers 200 has the already-delivered prefix skipped). Each failure
        without progress uses up one of MAX_ATTEMPTS tries. Foreign layers with ``urls`` are
        fetched from those first, without registry credentials. The digest is not checked here
        (the consumer hashes what it receives); the length is.
        Exceptions raised by ``sink`` propagate unchanged. Raises BlobUnknown (404),
        VerificationError (more or fewer bytes than descriptor size), AuthError, RegistryError.
        """
        return blobs.stream_blob(self.transport, repository, self._scope(repository),
                                 self._where(repository), descriptor, sink, progress, offset)

    # -- push (distribution spec: blobs first, monolithic uploads, the manifest last)

    @staticmethod
    def _push_scope(repository: str) -> str:
        return f"repository:{repository}:pull,push"

    def blob_exists(self, repository: str, digest: str) -> bool:
        """HEAD the blob: True if the repository has it already (no upload needed)."""
        return blobs.blob_exists(self.transport, repository, self._push_scope(repository),
                                 self._where(repository), digest)

    def upload_blob(self, repository: str, digest: str, size: int,
                    body: Callable[[], Any], mount_from: str | None = None) -> bool:
        """Upload a blob in one PUT (POST a session, PUT its Location with ?digest=). body
        returns the content afresh (bytes or a file at its start) for each try. mount_from:
        a repository of this registry that may have the blob: asked to mount it first (no
        upload at all when it does). True if it was mounted. Raises AuthError,
        RegistryError."""
        return blobs.upload_blob(self.transport, repository, self._push_scope(repository),
                                 self._where(repository), digest, size, body, mount_from)

    def put_manifest(self, repository: str, reference: str, media_type: str,
                     body: bytes) -> str:
        """PUT a manifest under a tag; returns its digest. Raises AuthError, RegistryError."""
        where = self._where(repository)
        resp = self.transport.request("PUT", f"/v2/{repository}/manifests/{reference}",
                             scope=self._push_scope(repository), what=where,
                             headers={"Content-Type": media_type}, body=lambda: body)
        try:
            if resp.status_code not in (200, 201):
                raise self.transport.status_error(resp, f"{where}:{reference}")
        finally:
            resp.close()
        return _digest_of(body)

    def list_tags(self, repository: str) -> list[str]:
        """All tags of a repository, following Link pagination.

        Raises ManifestUnknown if the repository does not exist, AuthError, RegistryError.
        """
        name = self._where(repository)
        path: str = f"/v2/{repository}/tags/list"
        tags: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            resp = self.transport.request("GET", path, scope=self._scope(repository), what=name)
            try:
                if resp.status_code == 404:
                    raise ManifestUnknown(f"repository {name} not found: name unknown")
                if resp.status_code != 200:
                    raise self.transport.status_error(resp, name)
                body = self.transport.read_small(resp, MANIFEST_SIZE_LIMIT, name)
                nxt = resp.links.get("next", {}).get("url")
            finally:
                resp.close()
            try:
                doc = json.loads(body)
                page = doc.get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{name}: invalid tag list from registry") from None
            tags.extend(str(t) for t in page)
            if not nxt:
                return tags
            # The Link target is relative to the registry; only follow it on the registry.
            full = urljoin(self.transport.url(path), nxt)
            if origin(full) != origin(self.transport.url("/")):
                raise RegistryError(f"{name}: tag list pagination points to another host")
            parts = urlsplit(full)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        raise RegistryError(f"{name}: too many pages of tags")

