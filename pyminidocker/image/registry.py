"""The registry client: the OCI distribution spec over one requests.Session.

One RegistryClient talks to one registry. It owns the endpoint choice (HTTPS, or plain HTTP for
local and configured insecure registries), authentication (Bearer tokens and Basic, with
credentials from the Docker config file), retries with backoff, manual redirects (so that
credentials never leave the registry host), and resumable blob downloads.

Every failure surfaces as a PmdError subclass with a one-line message naming the registry; no
requests or urllib3 exception escapes. Library code never prints: progress goes to callbacks.
"""
from __future__ import annotations

import base64
import email.utils
import functools
import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3

from pyminidocker import __version__
from pyminidocker.config import Config
from pyminidocker.errors import (
    AuthError,
    InvalidReference,
    ManifestUnknown,
    NotFound,
    RegistryError,
    UnsupportedMedia,
    VerificationError,
)
from pyminidocker.image.auth import (  # noqa: F401 (its names are the client's API too)
    _HUB_KEYS,
    _auth_key_for,
    _normalise_auth_key,
    _read_docker_config,
    _write_docker_config,
    load_credentials,
    parse_www_authenticate,
    remove_credentials,
    store_credentials,
)
from pyminidocker.image.manifest import (  # noqa: F401
    _GENERIC_CONTENT_TYPES,
    _LAYER_COMPRESSION,
    ACCEPT_ALL,
    IMAGE_MANIFEST_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_DOCKER_FOREIGN_LAYER,
    MEDIA_TYPE_DOCKER_LAYER,
    MEDIA_TYPE_DOCKER_LAYER_UNCOMPRESSED,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_DOCKER_SCHEMA1,
    MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED,
    MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_LAYER,
    MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_LAYER_NONDIST,
    MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP,
    MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD,
    MEDIA_TYPE_OCI_LAYER_ZSTD,
    MEDIA_TYPE_OCI_MANIFEST,
    SCHEMA1_MEDIA_TYPES,
    Manifest,
    _check_descriptor,
    _digest_of,
    _schema1_error,
    infer_media_type,
    is_image_manifest,
    is_index,
    is_schema1,
    layer_compression,
    parse_manifest,
)
from pyminidocker.record import dataclass
from pyminidocker.reference import DEFAULT_REGISTRY, Reference, validate_digest

# --- tunables (module level so tests can shrink them) --------------------------------------------

MAX_ATTEMPTS = 5  # tries per request, the first one included
# Resumes of one blob in all: a link that breaks again and again, even while making progress,
# is not worth hammering forever (a 50 MB layer cut every 64 KiB would take 800 requests).
MAX_RESUMES = 20
BACKOFF_BASE = 0.2  # seconds before the 2nd try; doubles after each failure
RETRY_AFTER_CAP = 10.0  # never wait longer than this on a server's Retry-After
MAX_REDIRECTS = 5
CHUNK_SIZE = 1 << 20
# Seconds to connect, and to wait for a response's headers or the next bytes of its body:
# Docker gives up on a registry that says nothing for 25 s. $PYMINIDOCKER_REGISTRY_TIMEOUT
# sets another (the tests' frozen registries use 2 s).
TIMEOUT = (15.0, 25.0)


def _timeout() -> tuple[float, float]:
    text = os.environ.get("PYMINIDOCKER_REGISTRY_TIMEOUT")
    if text:
        try:
            t = float(text)
        except ValueError:
            t = 0
        if t > 0:
            return (min(TIMEOUT[0], t), t)
    return TIMEOUT
MANIFEST_SIZE_LIMIT = 4 << 20  # distribution refuses manifests over 4 MiB; so do we
SMALL_BLOB_LIMIT = 64 << 20  # get_blob is for configs; layers go through stream_blob
ERROR_BODY_LIMIT = 64 << 10
TOKEN_DEFAULT_LIFETIME = 60  # seconds, per the token spec when expires_in is missing
MAX_TAG_PAGES = 1000

# Statuses worth another try, and why:
_RETRY_STATUSES = {
    408: "the server timed out waiting for our request",
    429: "rate limited; Retry-After says when to come back",
    500: "transient server failure (storage backends hiccup)",
    502: "a proxy in front of the registry lost its upstream",
    503: "registry overloaded or restarting",
    504: "a proxy timed out waiting for the registry",
}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# What can go wrong while reading a response body; all mean "the connection broke".
_BODY_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

Sleep = Callable[[float], None]
_now = time.monotonic  # the clock for token lifetimes; tests replace it


# --- small helpers -------------------------------------------------------------------------------


def _backoff(attempt: int) -> float:
    """Delay before try number attempt+1 (attempt counts failures so far, from 1)."""
    return BACKOFF_BASE * (2 ** (attempt - 1))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped.

    Returns None when absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(secs, RETRY_AFTER_CAP))


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with default ports filled in, for same-host comparisons."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _describe(exc: BaseException) -> str:
    """A short, one-line reason for a connection failure, like Go's net errors read."""
    # Collect the whole cause chain first: urllib3 wraps the OSError that says what really
    # happened, and some wrappers (NewConnectionError) subclass timeout errors misleadingly.
    chain: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is c for c in chain):
            continue
        chain.append(e)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        todo.extend(x for x in (getattr(e, "reason", None), e.__cause__, e.__context__) if x)
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "no such host"
        if isinstance(e, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"tls: {e.verify_message or 'certificate verify failed'}"
        if isinstance(e, ssl.SSLError):
            return f"tls: {e.reason or e}".lower()
    for e in chain:
        if isinstance(e, (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)):
            return "i/o timeout"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _error_text(body: bytes) -> str | None:
    """'code: message' from a distribution-spec error body, or None if it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errs, list) or not errs or not isinstance(errs[0], dict):
        if isinstance(doc, dict) and isinstance(doc.get("details") or doc.get("message"), str):
            return str(doc.get("details") or doc.get("message"))  # token servers' style
        return None
    parts = []
    for err in errs:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "").lower().replace("_", " ")
        msg = str(err.get("message") or "")
        parts.append(f"{code}: {msg}" if code and msg and code != msg.lower() else code or msg)
    return "; ".join(p for p in parts if p).replace("\n", " ") or None


def _error_codes(body: bytes) -> set[str]:
    try:
        doc = json.loads(body)
        return {str(e.get("code")) for e in doc.get("errors", []) if isinstance(e, dict)}
    except (ValueError, AttributeError, TypeError):
        return set()


class _NoNetrc(requests.auth.AuthBase):
    """A do-nothing auth: its presence stops requests from reading ~/.netrc, which would
    otherwise attach credentials to any host, foreign-layer CDNs included."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r



class BlobUnknown(RegistryError, NotFound):
    """The registry has no blob with this digest in this repository."""


# --- the client ----------------------------------------------------------------------------------


def api_host(registry: str) -> str:
    """The host[:port] that serves the API: Docker Hub's API lives on registry-1.docker.io."""
    return "registry-1.docker.io" if registry == DEFAULT_REGISTRY else registry


def _host_only(registry: str) -> str:
    if registry.startswith("["):
        return registry[1:].split("]", 1)[0]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_insecure_registry(registry: str, insecure_registries: Iterable[str]) -> bool:
    """True for registries that may use plain HTTP: loopback ones (like Docker: localhost,
    127.0.0.0/8, ::1) and those listed in the config, by host:port, host, or CIDR."""
    host = _host_only(registry).lower()
    if host == "localhost":
        return True
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    for entry in insecure_registries:
        e = str(entry).strip().lower()
        for prefix in ("https://", "http://"):
            e = e.removeprefix(prefix)
        e = e.rstrip("/")
        if e in (registry.lower(), host):
            return True
        if ip is not None and "/" in e:
            try:
                if ip in ipaddress.ip_network(e, strict=False):
                    return True
            except ValueError:
                pass
    return False


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic() deadline


class RegistryClient:
    """A client for one registry (``registry`` as in Reference.registry, e.g. ``docker.io``).

    Thread-safe enough for parallel blob downloads: the session is shared, auth state is
    guarded by a lock.
    """

    def __init__(self, config: Config, registry: str, *, sleep: Sleep = time.sleep) -> None:
        self.config = config
        self.registry = registry
        self.host = api_host(registry)
        self.insecure = is_insecure_registry(registry, config.insecure_registries)
        # None until the first answer tells us which scheme works (insecure registries only).
        self._scheme: str | None = None if self.insecure else "https"
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"pyminidocker/{__version__}"
        self.session.auth = _NoNetrc()
        self._lock = threading.RLock()
        self._credentials: tuple[str, str] | None = None
        self._credentials_loaded = False
        self._bearer: dict[str, str] | None = None  # realm and service of the last challenge
        self._basic = False
        self._tokens: dict[str, _Token] = {}
        if self.insecure:
            # The user asked for this registry to be insecure; a warning per request would
            # only reach stderr from library code. Filter just that category.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    # -- lifecycle

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoint

    @property
    def scheme(self) -> str:
        return self._scheme or "https"

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def _where(self, repository: str | None) -> str:
        if repository is None:
            return self.registry
        return Reference(self.registry, repository).familiar_name

    # -- credentials

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the Docker config, read once; None if not logged in."""
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = load_credentials(Path(self.config.docker_config), self.registry)
                self._credentials_loaded = True
            return self._credentials

    def _reset_auth(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._bearer = None
            self._basic = False

    def login(self, username: str, password: str) -> None:
        """Check the credentials against the registry, then save them in the Docker config.

        Raises AuthError for refused credentials, RegistryError if the registry cannot be
        reached, UsageError/StoreError if the config file is malformed or unwritable.
        """
        with self._lock:
            self._credentials = (username, password)
            self._credentials_loaded = True
            self._reset_auth()
        # /v2/ with no scope: a Bearer registry sends us to its token server, which checks
        # the password; a Basic registry checks it directly.
        try:
            resp = self._request("GET", "/v2/", scope=None, what=self.registry)
            try:
                if resp.status_code != 200:
                    raise self._status_error(resp, self.registry)
            finally:
                resp.close()
        except BaseException:
            # Refused: do not keep using the rejected password on this client.
            with self._lock:
                self._credentials_loaded = False
                self._credentials = None
                self._reset_auth()
            raise
        store_credentials(Path(self.config.docker_config), self.registry, username, password)

    def logout(self) -> None:
        """Forget the saved credentials for this registry.

        Raises NotFound("not logged in to <registry>") if there were none; UsageError or
        StoreError for a malformed or unwritable config file.
        """
        if not remove_credentials(Path(self.config.docker_config), self.registry):
            raise NotFound(f"not logged in to {self.registry}")
        with self._lock:
            self._credentials = None
            self._credentials_loaded = True
            self._reset_auth()

    # -- auth

    def _basic_header(self) -> str | None:
        creds = self.credentials
        if creds is None:
            return None
        return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()

    def _authorization(self, scope: str | None) -> str | None:
        """The Authorization header for a registry request needing ``scope``, if any.

        Once a registry has shown a Bearer challenge, tokens for new scopes are fetched up front
        to save a 401 round trip.
        """
        with self._lock:
            if self._bearer is not None:
                key = scope or ""
                tok = self._tokens.get(key)
                if tok is None or tok.expires <= _now():
                    tok = self._fetch_token(scope)
                    self._tokens[key] = tok
                return f"Bearer {tok.value}"
            if self._basic:
                return self._basic_header()
        return None

    def _learn_challenge(self, header: str, scope: str | None) -> bool:
        """Record a 401's challenge; returns False if we have no way to answer it."""
        challenges = dict(parse_www_authenticate(header))
        with self._lock:
            if "bearer" in challenges and challenges["bearer"].get("realm"):
                params = challenges["bearer"]
                self._bearer = {"realm": params["realm"], "service": params.get("service", "")}
                # The registry may name the scope it wants (e.g. with extra actions); prefer it
                # for this request, but key the cache by our scope.
                want = params.get("scope") or scope
                self._tokens[scope or ""] = self._fetch_token(want)
                return True
            if "basic" in challenges and self.credentials is not None:
                self._basic = True
                return True
        return False

    def _fetch_token(self, scope: str | None) -> _Token:
        """Ask the realm of the Bearer challenge for a token (caller holds the lock).

        Raises AuthError when the token server refuses our credentials.
        """
        assert self._bearer is not None
        realm = self._bearer["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise AuthError(f"{self.registry}: unsupported token realm {realm!r}")
        params: dict[str, str] = {}
        if self._bearer.get("service"):
            params["service"] = self._bearer["service"]
        if scope:
            params["scope"] = scope
        creds = self.credentials
        if creds is not None and scope is None:
            params["account"] = creds[0]  # what Docker sends on login
        query = urlencode(params)
        url = (realm + ("&" if "?" in realm else "?") + query) if query else realm
        basic = self._basic_header()
        resp = self._request(
            "GET", url, use_auth=False, extra_auth=basic, what=f"token server of {self.registry}"
        )
        try:
            if resp.status_code in (401, 403):
                body = self._read_small(resp, ERROR_BODY_LIMIT, self.registry)
                if creds is not None:
                    raise AuthError(
                        f"{self.registry}: unauthorized: incorrect username or password"
                    )
                raise AuthError(
                    f"{self.registry}: unauthorized: "
                    f"{_error_text(body) or 'authentication required'}",
                    hint=f"run 'pyminidocker login {self.registry}'",
                )
            if resp.status_code != 200:
                raise self._status_error(resp, f"token server of {self.registry}")
            body = self._read_small(resp, ERROR_BODY_LIMIT, self.registry)
        finally:
            resp.close()
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or TOKEN_DEFAULT_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise AuthError(f"{self.registry}: token server returned no token")
        # Renew a little early so a token does not expire between check and use.
        return _Token(value, _now() + lifetime - min(30.0, lifetime / 10))

    # -- transport

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        auth: str | None,
        auth_origin: tuple[str, str, int],
        body: Callable[[], Any] | None = None,
    ) -> requests.Response:
        """One request with redirects followed by hand (up to MAX_REDIRECTS).

        Authorization goes only to ``auth_origin``: a registry that redirects blob downloads
        to a CDN or object store must not leak our token or password there.
        """
        registry_origin = _origin(self._url("/"))
        for _ in range(MAX_REDIRECTS + 1):
            h = dict(headers)
            if auth is not None and _origin(url) == auth_origin:
                h["Authorization"] = auth
            # Certificate checks are skipped only for the insecure registry itself.
            verify = not (self.insecure and _origin(url) == registry_origin)
            resp = self.session.request(
                method, url, headers=h, stream=True, allow_redirects=False,
                timeout=_timeout(), verify=verify, data=body() if body is not None else None,
            )
            location = resp.headers.get("Location")
            if resp.status_code not in _REDIRECT_STATUSES or not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise RegistryError(f"registry {self.registry} redirected to {url!r}")
            if resp.status_code == 303 and method != "HEAD":
                method = "GET"
        raise RegistryError(f"too many redirects from registry {self.registry}")

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str | None = None,
        headers: Mapping[str, str] | None = None,
        use_auth: bool = True,
        extra_auth: str | None = None,
        what: str,
        body: Callable[[], Any] | None = None,
    ) -> requests.Response:
        """Send a request with retries, HTTPS→HTTP fallback and authentication.

        ``path_or_url`` starting with '/' is a registry API path. With ``use_auth`` the registry's
        credentials are attached (and a 401 answered once); ``extra_auth`` is an Authorization
        header for a foreign origin (the token server). Returns the last response, whatever its
        status; the caller owns it. ``body`` returns the request's body afresh for each try
        (bytes or a file opened at its start). Raises RegistryError if the host cannot be
        reached, AuthError if authentication fails.
        """
        is_api = path_or_url.startswith("/")
        attempt = 0
        answered_challenge = False
        while True:
            url = self._url(path_or_url) if is_api else path_or_url
            if use_auth and is_api:
                auth, auth_origin = self._authorization(scope), _origin(url)
            else:
                auth, auth_origin = extra_auth, _origin(url)
            try:
                resp = self._send(method, url, headers or {}, auth, auth_origin, body)
            except requests.RequestException as e:
                if isinstance(e, requests.exceptions.ReadTimeout):
                    # It took the connection and said nothing: a frozen registry. Neither
                    # another try nor plain HTTP would answer sooner; a bounded wait, once.
                    host = urlsplit(url).netloc
                    name = self.registry if host == self.host else host
                    silent = f"registry {name} did not answer within {_timeout()[1]:g} s"
                    raise RegistryError(silent if what == name else f"{what}: {silent}") \
                        from None
                if is_api and self._scheme is None and self.scheme == "https":
                    # Docker's rule for insecure registries: HTTPS first, plain HTTP if TLS or
                    # the connection fails. Remembered for the life of the client.
                    self._scheme = "http"
                    continue
                retriable = isinstance(e, (requests.ConnectionError, requests.Timeout))
                if isinstance(e, requests.exceptions.SSLError):
                    retriable = False  # a bad certificate does not get better by retrying
                attempt += 1
                if not retriable or attempt >= MAX_ATTEMPTS:
                    raise self._unreachable(url, e) from None
                self.sleep(_backoff(attempt))
                continue
            if is_api and self._scheme is None:
                self._scheme = "https"  # it answered over TLS; stick with it
            if (
                resp.status_code == 401
                and use_auth
                and is_api
                and _origin(resp.url or url) == _origin(self._url("/"))
                and not answered_challenge
            ):
                header = resp.headers.get("WWW-Authenticate", "")
                with self._lock:
                    self._tokens.pop(scope or "", None)  # it was refused; do not reuse it
                try:
                    answered = self._learn_challenge(header, scope)
                except BaseException:
                    resp.close()
                    raise
                if answered:
                    # Retry the original request once with the new token or credentials.
                    resp.close()
                    answered_challenge = True
                    continue
                return resp  # no way to answer it; the caller reports the 401
            if resp.status_code in _RETRY_STATUSES:
                attempt += 1
                if attempt < MAX_ATTEMPTS:
                    delay = parse_retry_after(resp.headers.get("Retry-After"))
                    resp.close()
                    self.sleep(_backoff(attempt) if delay is None else delay)
                    continue
            return resp

    def _unreachable(self, url: str, e: BaseException) -> RegistryError:
        host = urlsplit(url).netloc
        name = self.registry if host == self.host else host
        if isinstance(e, requests.exceptions.SSLError):
            return RegistryError(
                f"cannot reach registry {name}: {_describe(e)}",
                hint="add it to insecure-registries in the engine config if it is trusted",
            )
        return RegistryError(f"cannot reach registry {name}: {_describe(e)}")

    def _read_small(self, resp: requests.Response, limit: int, where: str) -> bytes:
        """Read a (decoded) body of at most ``limit`` bytes. Raises RegistryError."""
        buf = bytearray()
        try:
            for chunk in resp.raw.stream(65536, decode_content=True):
                buf += chunk
                if len(buf) > limit:
                    raise RegistryError(f"{where}: response larger than {limit} bytes")
        except _BODY_ERRORS as e:
            raise RegistryError(
                f"{where}: connection broke while reading the response: {_describe(e)}"
            ) from None
        return bytes(buf)

    def _status_error(self, resp: requests.Response, where: str) -> RegistryError:
        """Turn an unexpected status into the right error, with the registry's own words."""
        try:
            body = self._read_small(resp, ERROR_BODY_LIMIT, where)
        except RegistryError:
            body = b""
        resp.close()
        detail = _error_text(body)
        status = resp.status_code
        if status == 401:
            if self._basic and self.credentials is not None:
                # Basic auth was sent and refused: the password is wrong.
                return AuthError(f"{where}: unauthorized: incorrect username or password")
            return AuthError(
                f"{where}: {detail or 'unauthorized: authentication required'}",
                hint=None if self.credentials else f"run 'pyminidocker login {self.registry}'",
            )
        if status == 403:
            return AuthError(
                f"{where}: {detail or 'denied: requested access to the resource is denied'}"
            )
        if status == 429:
            return RegistryError(f"{where}: {detail or 'toomanyrequests: rate limit exceeded'}")
        # the status first, in Docker's words: a server's error body alone ("internal error")
        # does not tell a 500 from a 502 from a proxy
        unexpected = f"received unexpected HTTP status: {status} {resp.reason or ''}".strip()
        return RegistryError(f"{where}: {unexpected}" + (f": {detail}" if detail else ""))

    # -- API

    def ping(self) -> None:
        """GET /v2/: check the registry speaks the v2 API and learn its auth challenge.

        Raises RegistryError if unreachable or not a v2 registry.
        """
        resp = self._request("GET", "/v2/", use_auth=False, what=self.registry)
        try:
            if resp.status_code == 401:
                # Expected for any registry with auth; remember how to authenticate.
                parsed = dict(parse_www_authenticate(resp.headers.get("WWW-Authenticate", "")))
                with self._lock:
                    if "bearer" in parsed and parsed["bearer"].get("realm"):
                        self._bearer = {
                            "realm": parsed["bearer"]["realm"],
                            "service": parsed["bearer"].get("service", ""),
                        }
                return
            if resp.status_code == 404:
                raise RegistryError(f"{self.registry} does not support the registry v2 API")
            if resp.status_code != 200:
                raise self._status_error(resp, self.registry)
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
        resp = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=self._scope(repository),
            headers={"Accept": ", ".join(accept)},
            what=name,
        )
        try:
            if resp.status_code == 404:
                body = self._read_small(resp, ERROR_BODY_LIMIT, name)
                codes = _error_codes(body)
                detail = "manifest unknown"
                if "NAME_UNKNOWN" in codes:
                    detail += ": repository name not known to registry"
                raise ManifestUnknown(f"manifest for {shown} not found: {detail}")
            if resp.status_code != 200:
                raise self._status_error(resp, name)
            body = self._read_small(resp, MANIFEST_SIZE_LIMIT, f"manifest for {shown}")
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

        self.stream_blob(repository, descriptor, sink)
        digest = str(descriptor["digest"])
        algorithm = digest.split(":", 1)[0]
        actual = _digest_of(bytes(buf), algorithm)
        if actual != digest:
            raise VerificationError(
                f"digest mismatch for blob {digest} from {self._where(repository)}: got {actual}"
            )
        return bytes(buf)

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
        digest = str(descriptor.get("digest", ""))
        try:
            validate_digest(digest)
        except InvalidReference:
            raise VerificationError(f"invalid blob digest {digest!r}") from None
        size = descriptor.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise VerificationError(f"invalid size {size!r} for blob {digest}")
        where = f"blob {digest} of {self._where(repository)}"
        state = _StreamState(size=size, sink=sink, progress=progress, written=offset)

        urls = [u for u in descriptor.get("urls") or [] if isinstance(u, str)]
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https"):
                continue  # file:, ftp: and friends are not ours to fetch
            try:
                self._stream_from(url, None, where, state)
                return state.written
            except (RegistryError, VerificationError) as e:
                if isinstance(e, VerificationError):
                    raise
                # Try the next URL, then the registry; resume from what we already have.
                continue
        self._stream_from(
            f"/v2/{repository}/blobs/{digest}", self._scope(repository), where, state
        )
        return state.written

    def _stream_from(
        self, path_or_url: str, scope: str | None, where: str, state: _StreamState
    ) -> None:
        is_api = path_or_url.startswith("/")
        failures = 0
        resumes = 0
        while True:
            # identity: a server compressing on the fly would change the bytes we must hash.
            headers = {"Accept-Encoding": "identity"}
            if state.written:
                headers["Range"] = f"bytes={state.written}-"
            resp = self._request(
                "GET", path_or_url, scope=scope, headers=headers, use_auth=is_api, what=where
            )
            before = state.written
            broken: BaseException | None = None
            try:
                skip = self._check_blob_response(resp, where, state)
                if skip is None:
                    return  # 416 at the exact end: nothing left to send
                # read1: what has arrived, up to a chunk; not a wait for a whole chunk, so the
                # progress line moves, and an interrupted pull keeps, what did arrive
                it = iter(functools.partial(resp.raw.read1, CHUNK_SIZE, decode_content=False),
                          b"")
                while True:
                    try:
                        chunk = next(it)
                    except StopIteration:
                        break
                    except _BODY_ERRORS as e:
                        broken = e
                        break
                    if skip:
                        # The server ignored our Range: drop what the sink already has.
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                        if not chunk:
                            continue
                    state.deliver(chunk, where)
            finally:
                resp.close()
            if broken is None and (state.size is None or state.written == state.size):
                return
            # A broken connection or a short body: resume after a pause.
            if state.written > before:
                failures = 0  # progress was made; the budget is for consecutive failures
            failures += 1
            resumes += 1
            if failures >= MAX_ATTEMPTS or resumes > MAX_RESUMES:
                if broken is not None:
                    raise RegistryError(
                        f"{where}: connection broke after {state.written} bytes: "
                        f"{_describe(broken)}"
                    )
                raise VerificationError(
                    f"{where}: short read: got {state.written} of {state.size} bytes"
                )
            self.sleep(_backoff(failures))

    def _check_blob_response(
        self, resp: requests.Response, where: str, state: _StreamState
    ) -> int | None:
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
            body = self._read_small(resp, ERROR_BODY_LIMIT, where)
            raise BlobUnknown(f"{where} not found: {_error_text(body) or 'blob unknown'}")
        raise self._status_error(resp, where)

    # -- push (distribution spec: blobs first, monolithic uploads, the manifest last)

    @staticmethod
    def _push_scope(repository: str) -> str:
        return f"repository:{repository}:pull,push"

    def blob_exists(self, repository: str, digest: str) -> bool:
        """HEAD the blob: True if the repository has it already (no upload needed)."""
        where = self._where(repository)
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}",
                             scope=self._push_scope(repository), what=where)
        try:
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            raise self._status_error(resp, where)
        finally:
            resp.close()

    def upload_blob(self, repository: str, digest: str, size: int,
                    body: Callable[[], Any], mount_from: str | None = None) -> bool:
        """Upload a blob in one PUT (POST a session, PUT its Location with ?digest=). body
        returns the content afresh (bytes or a file at its start) for each try. mount_from:
        a repository of this registry that may have the blob: asked to mount it first (no
        upload at all when it does). True if it was mounted. Raises AuthError,
        RegistryError."""
        where = self._where(repository)
        scope = self._push_scope(repository)
        path = f"/v2/{repository}/blobs/uploads/"
        if mount_from:
            # without a pull right on mount_from the registry answers 202: a plain upload
            path += "?" + urlencode({"mount": digest, "from": mount_from})
        resp = self._request("POST", path, scope=scope, headers={"Content-Length": "0"},
                             what=where)
        try:
            if mount_from and resp.status_code == 201:
                return True
            if resp.status_code != 202 or not resp.headers.get("Location"):
                raise self._status_error(resp, where)
            location = urljoin(self._url(f"/v2/{repository}/blobs/uploads/"),
                               resp.headers["Location"])
        finally:
            resp.close()
        split = urlsplit(location)
        if _origin(location) != _origin(self._url("/")):
            raise RegistryError(f"{where}: upload location {location!r} is on another host")
        query = (split.query + "&" if split.query else "") + urlencode({"digest": digest})
        resp = self._request("PUT", f"{split.path}?{query}", scope=scope, what=where,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Length": str(size)}, body=body)
        try:
            if resp.status_code != 201:
                raise self._status_error(resp, f"{where}: blob {digest}")
        finally:
            resp.close()
        return False

    def put_manifest(self, repository: str, reference: str, media_type: str,
                     body: bytes) -> str:
        """PUT a manifest under a tag; returns its digest. Raises AuthError, RegistryError."""
        where = self._where(repository)
        resp = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                             scope=self._push_scope(repository), what=where,
                             headers={"Content-Type": media_type}, body=lambda: body)
        try:
            if resp.status_code not in (200, 201):
                raise self._status_error(resp, f"{where}:{reference}")
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
            resp = self._request("GET", path, scope=self._scope(repository), what=name)
            try:
                if resp.status_code == 404:
                    raise ManifestUnknown(f"repository {name} not found: name unknown")
                if resp.status_code != 200:
                    raise self._status_error(resp, name)
                body = self._read_small(resp, MANIFEST_SIZE_LIMIT, name)
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
            full = urljoin(self._url(path), nxt)
            if _origin(full) != _origin(self._url("/")):
                raise RegistryError(f"{name}: tag list pagination points to another host")
            parts = urlsplit(full)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        raise RegistryError(f"{name}: too many pages of tags")


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


def client_for(config: Config, ref: Reference) -> RegistryClient:
    """A RegistryClient for the registry of ``ref``."""
    return RegistryClient(config, ref.registry)

