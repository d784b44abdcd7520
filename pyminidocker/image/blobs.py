"""Blobs to and from a registry: downloads streamed with their exact bytes, resumed with Range
where a connection broke and checked for length (get_blob also for digest), and uploads in one
PUT, or none where the registry can mount the blob from another repository.

The functions take the Transport of one registry; RegistryClient is their public face.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from pyminidocker.errors import InvalidReference, NotFound, RegistryError, VerificationError
from pyminidocker.image import transport as http
from pyminidocker.image.manifest import _digest_of
from pyminidocker.image.transport import ERROR_BODY_LIMIT, Transport, describe, error_text, origin
from pyminidocker.record import dataclass
from pyminidocker.reference import validate_digest

# Resumes of one blob in all: a link that breaks again and again, even while making progress,
# is not worth hammering forever (a 50 MB layer cut every 64 KiB would take 800 requests).
MAX_RESUMES = 20
CHUNK_SIZE = 1 << 20
SMALL_BLOB_LIMIT = 64 << 20  # get_blob is for configs; layers go through stream_blob


class BlobUnknown(RegistryError, NotFound):
    """The registry has no blob with this digest in this repository."""


@dataclass
class _StreamState:
    """Bytes delivered so far across resumes and sources of one blob download."""

    size: int | None
    sink: Callable[[bytes], None]
    progress: Callable[[int], None] | None
    written: int = 0

    def deliver(self, chunk: bytes, where: str) -> None:
        if self.size is not None and self.written + len(chunk) > self.size:
            raise VerificationError(
                f"{where}: server sent more than the expected {self.size} bytes"
            )
        self.sink(chunk)
        self.written += len(chunk)
        if self.progress is not None:
            self.progress(self.written)


# --- download ------------------------------------------------------------------------------------


def get_blob(t: Transport, repository: str, scope: str, name: str,
             descriptor: Mapping[str, Any]) -> bytes:
    """A small blob (an image config) in memory, its digest and size verified; name is the
    repository's as shown to the user. Raises what stream_blob raises."""
    size = descriptor.get("size")
    if isinstance(size, int) and size > SMALL_BLOB_LIMIT:
        raise RegistryError(
            f"blob {descriptor.get('digest')} is {size} bytes; too large for get_blob"
        )
    buf = bytearray()

    def sink(chunk: bytes) -> None:
        if len(buf) + len(chunk) > SMALL_BLOB_LIMIT:
            raise VerificationError(f"blob {descriptor.get('digest')} is too large")
        buf.extend(chunk)

    stream_blob(t, repository, scope, name, descriptor, sink)
    digest = str(descriptor["digest"])
    algorithm = digest.split(":", 1)[0]
    actual = _digest_of(bytes(buf), algorithm)
    if actual != digest:
        raise VerificationError(
            f"digest mismatch for blob {digest} from {name}: got {actual}"
        )
    return bytes(buf)


def stream_blob(t: Transport, repository: str, scope: str, name: str,
                descriptor: Mapping[str, Any], sink: Callable[[bytes], None],
                progress: Callable[[int], None] | None = None, offset: int = 0) -> int:
    """A blob's exact bytes to sink; the count (see RegistryClient.stream_blob)."""
    digest = str(descriptor.get("digest", ""))
    try:
        validate_digest(digest)
    except InvalidReference:
        raise VerificationError(f"invalid blob digest {digest!r}") from None
    size = descriptor.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise VerificationError(f"invalid size {size!r} for blob {digest}")
    where = f"blob {digest} of {name}"
    state = _StreamState(size=size, sink=sink, progress=progress, written=offset)

    urls = [u for u in descriptor.get("urls") or [] if isinstance(u, str)]
    for url in urls:
        if urlsplit(url).scheme not in ("http", "https"):
            continue  # file:, ftp: and friends are not ours to fetch
        try:
            _stream_from(t, url, None, where, state)
            return state.written
        except (RegistryError, VerificationError) as e:
            if isinstance(e, VerificationError):
                raise
            # Try the next URL, then the registry; resume from what we already have.
            continue
    _stream_from(t, f"/v2/{repository}/blobs/{digest}", scope, where, state)
    return state.written


def _stream_from(t: Transport, path_or_url: str, scope: str | None, where: str,
                 state: _StreamState) -> None:
    is_api = path_or_url.startswith("/")
    failures = 0
    resumes = 0
    while True:
        # identity: a server compressing on the fly would change the bytes we must hash.
        headers = {"Accept-Encoding": "identity"}
        if state.written:
            headers["Range"] = f"bytes={state.written}-"
        resp = t.request(
            "GET", path_or_url, scope=scope, headers=headers, use_auth=is_api, what=where
        )
        before = state.written
        try:
            skip = _check_blob_response(t, resp, where, state)
            if skip is None:
                return  # 416 at the exact end: nothing left to send
            broken = _deliver_body(resp, skip, where, state)
        finally:
            resp.close()
        if broken is None and (state.size is None or state.written == state.size):
            return
        # A broken connection or a short body: resume after a pause.
        if state.written > before:
            failures = 0  # progress was made; the budget is for consecutive failures
        failures += 1
        resumes += 1
        if failures >= http.MAX_ATTEMPTS or resumes > MAX_RESUMES:
            if broken is not None:
                raise RegistryError(
                    f"{where}: connection broke after {state.written} bytes: "
                    f"{describe(broken)}"
                )
            raise VerificationError(
                f"{where}: short read: got {state.written} of {state.size} bytes"
            )
        t.sleep(http.backoff(failures))


def _deliver_body(resp: requests.Response, skip: int, where: str,
                  state: _StreamState) -> BaseException | None:
    """Hand the body to the sink, its first skip bytes left out; what broke the connection
    midway, or None if the body ended."""
    # read1: what has arrived, up to a chunk; not a wait for a whole chunk, so the
    # progress line moves, and an interrupted pull keeps, what did arrive
    it = iter(functools.partial(resp.raw.read1, CHUNK_SIZE, decode_content=False), b"")
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return None
        except http.BODY_ERRORS as e:
            return e
        if skip:
            # The server ignored our Range: drop what the sink already has.
            dropped = min(skip, len(chunk))
            chunk, skip = chunk[dropped:], skip - dropped
            if not chunk:
                continue
        state.deliver(chunk, where)


def _check_blob_response(t: Transport, resp: requests.Response, where: str,
                         state: _StreamState) -> int | None:
    """Validate a blob response; returns how many leading bytes to skip, or None if done."""
    status = resp.status_code
    if status == 200:
        return state.written
    if status == 206:
        start = _content_range_start(resp.headers.get("Content-Range"))
        if start != state.written:
            raise RegistryError(
                f"{where}: asked for bytes from {state.written}, server sent from {start}"
            )
        return 0
    if status == 416 and state.written and state.written == state.size:
        return None
    if status == 404:
        body = t.read_small(resp, ERROR_BODY_LIMIT, where)
        raise BlobUnknown(f"{where} not found: {error_text(body) or 'blob unknown'}")
    raise t.status_error(resp, where)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200" → 100
    if not value:
        return None
    try:
        unit, _, rng = value.strip().partition(" ")
        if unit.lower() != "bytes":
            return None
        return int(rng.split("-", 1)[0])
    except ValueError:
        return None


# --- upload (distribution spec: monolithic uploads) ----------------------------------------------


def blob_exists(t: Transport, repository: str, scope: str, name: str, digest: str) -> bool:
    """HEAD the blob: True if the repository has it already."""
    resp = t.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope, what=name)
    try:
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise t.status_error(resp, name)
    finally:
        resp.close()


def upload_blob(t: Transport, repository: str, scope: str, name: str, digest: str, size: int,
                body: Callable[[], Any], mount_from: str | None = None) -> bool:
    """Upload a blob in one PUT (see RegistryClient.upload_blob); True if it was mounted."""
    path = f"/v2/{repository}/blobs/uploads/"
    if mount_from:
        # without a pull right on mount_from the registry answers 202: a plain upload
        path += "?" + urlencode({"mount": digest, "from": mount_from})
    resp = t.request("POST", path, scope=scope, headers={"Content-Length": "0"}, what=name)
    try:
        if mount_from and resp.status_code == 201:
            return True
        if resp.status_code != 202 or not resp.headers.get("Location"):
            raise t.status_error(resp, name)
        location = urljoin(t.url(f"/v2/{repository}/blobs/uploads/"), resp.headers["Location"])
    finally:
        resp.close()
    split = urlsplit(location)
    if origin(location) != origin(t.url("/")):
        raise RegistryError(f"{name}: upload location {location!r} is on another host")
    query = (split.query + "&" if split.query else "") + urlencode({"digest": digest})
    resp = t.request("PUT", f"{split.path}?{query}", scope=scope, what=name,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(size)}, body=body)
    try:
        if resp.status_code != 201:
            raise t.status_error(resp, f"{name}: blob {digest}")
    finally:
        resp.close()
    return False
