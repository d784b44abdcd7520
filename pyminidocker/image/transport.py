"""HTTP to one registry: the endpoint (HTTPS, or plain HTTP for loopback and configured insecure
registries), retries with backoff and Retry-After, redirects followed by hand so that credentials
never leave the registry host, and a registry's error bodies read into one-line errors.

Authentication is not decided here: a Transport asks its ``auth`` (image.auth.Authorizer) which
Authorization header a request needs, and hands it the challenge of a 401. No requests or urllib3
exception escapes; every failure is a RegistryError (or AuthError) naming the registry.
"""
from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import os
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from pyminidocker import __version__
from pyminidocker.errors import AuthError, RegistryError
from pyminidocker.reference import DEFAULT_REGISTRY

if TYPE_CHECKING:
    from pyminidocker.config import Config

# --- tunables (module level so tests can shrink them) --------------------------------------------

MAX_ATTEMPTS = 5  # tries per request, the first one included
BACKOFF_BASE = 0.2  # seconds before the 2nd try; doubles after each failure
RETRY_AFTER_CAP = 10.0  # never wait longer than this on a server's Retry-After
MAX_REDIRECTS = 5
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
ERROR_BODY_LIMIT = 64 << 10

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
BODY_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

Sleep = Callable[[float], None]


# --- small helpers -------------------------------------------------------------------------------


def backoff(attempt: int) -> float:
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


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with default ports filled in, for same-host comparisons."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def describe(exc: BaseException) -> str:
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


def error_text(body: bytes) -> str | None:
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


def error_codes(body: bytes) -> set[str]:
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


def _retriable(e: requests.RequestException) -> bool:
    if isinstance(e, requests.exceptions.SSLError):
        return False  # a bad certificate does not get better by retrying
    return isinstance(e, (requests.ConnectionError, requests.Timeout))


class Auth(Protocol):
    """What a Transport asks of the registry's authentication (image.auth.Authorizer)."""

    def authorization(self, scope: str | None) -> str | None: ...

    def answer_challenge(self, header: str, scope: str | None) -> bool: ...

    def refusal(self, where: str, detail: str | None) -> AuthError: ...


# --- the transport -------------------------------------------------------------------------------


class Transport:
    """Requests to one registry (``registry`` as in Reference.registry, e.g. ``docker.io``) over
    one requests.Session, which parallel blob downloads share."""

    def __init__(self, config: Config, registry: str, sleep: Sleep) -> None:
        self.registry = registry
        self.host = api_host(registry)
        self.insecure = is_insecure_registry(registry, config.insecure_registries)
        # None until the first answer tells us which scheme works (insecure registries only).
        self._scheme: str | None = None if self.insecure else "https"
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"pyminidocker/{__version__}"
        self.session.auth = _NoNetrc()
        self.auth: Auth | None = None  # set by the client that owns both
        if self.insecure:
            # The user asked for this registry to be insecure; a warning per request would
            # only reach stderr from library code. Filter just that category.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self.session.close()

    @property
    def scheme(self) -> str:
        return self._scheme or "https"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

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
        registry_origin = origin(self.url("/"))
        for _ in range(MAX_REDIRECTS + 1):
            h = dict(headers)
            if auth is not None and origin(url) == auth_origin:
                h["Authorization"] = auth
            # Certificate checks are skipped only for the insecure registry itself.
            verify = not (self.insecure and origin(url) == registry_origin)
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

    def request(
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
        auth_api = use_auth and is_api and self.auth is not None
        attempt = 0
        answered_challenge = False
        while True:
            url = self.url(path_or_url) if is_api else path_or_url
            auth = self.auth.authorization(scope) if auth_api and self.auth else extra_auth
            try:
                resp = self._send(method, url, headers or {}, auth, origin(url), body)
            except requests.RequestException as e:
                self._check_not_silent(e, url, what)
                if is_api and self._scheme is None and self.scheme == "https":
                    # Docker's rule for insecure registries: HTTPS first, plain HTTP if TLS or
                    # the connection fails. Remembered for the life of the client.
                    self._scheme = "http"
                    continue
                attempt += 1
                if not _retriable(e) or attempt >= MAX_ATTEMPTS:
                    raise self._unreachable(url, e) from None
                self.sleep(backoff(attempt))
                continue
            if is_api and self._scheme is None:
                self._scheme = "https"  # it answered over TLS; stick with it
            if (resp.status_code == 401 and auth_api and not answered_challenge
                    and origin(resp.url or url) == origin(self.url("/"))):
                if self._answer(resp, scope):
                    # Retry the original request once with the new token or credentials.
                    answered_challenge = True
                    continue
                return resp  # no way to answer it; the caller reports the 401
            if resp.status_code in _RETRY_STATUSES:
                attempt += 1
                if attempt < MAX_ATTEMPTS:
                    delay = parse_retry_after(resp.headers.get("Retry-After"))
                    resp.close()
                    self.sleep(backoff(attempt) if delay is None else delay)
                    continue
            return resp

    def _check_not_silent(self, e: requests.RequestException, url: str, what: str) -> None:
        """Raise RegistryError for a registry that took the connection and said nothing."""
        if isinstance(e, requests.exceptions.ReadTimeout):
            # A frozen registry: neither another try nor plain HTTP would answer sooner; a
            # bounded wait, once.
            host = urlsplit(url).netloc
            name = self.registry if host == self.host else host
            silent = f"registry {name} did not answer within {_timeout()[1]:g} s"
            raise RegistryError(silent if what == name else f"{what}: {silent}") from None

    def _answer(self, resp: requests.Response, scope: str | None) -> bool:
        """Let the auth learn a 401's challenge; True (the response closed) if it can answer."""
        assert self.auth is not None
        try:
            answered = self.auth.answer_challenge(resp.headers.get("WWW-Authenticate", ""), scope)
        except BaseException:
            resp.close()
            raise
        if answered:
            resp.close()
        return answered

    def _unreachable(self, url: str, e: BaseException) -> RegistryError:
        host = urlsplit(url).netloc
        name = self.registry if host == self.host else host
        if isinstance(e, requests.exceptions.SSLError):
            return RegistryError(
                f"cannot reach registry {name}: {describe(e)}",
                hint="add it to insecure-registries in the engine config if it is trusted",
            )
        return RegistryError(f"cannot reach registry {name}: {describe(e)}")

    def read_small(self, resp: requests.Response, limit: int, where: str) -> bytes:
        """Read a (decoded) body of at most ``limit`` bytes. Raises RegistryError."""
        buf = bytearray()
        try:
            for chunk in resp.raw.stream(65536, decode_content=True):
                buf += chunk
                if len(buf) > limit:
                    raise RegistryError(f"{where}: response larger than {limit} bytes")
        except BODY_ERRORS as e:
            raise RegistryError(
                f"{where}: connection broke while reading the response: {describe(e)}"
            ) from None
        return bytes(buf)

    def status_error(self, resp: requests.Response, where: str) -> RegistryError:
        """Turn an unexpected status into the right error, with the registry's own words."""
        try:
            body = self.read_small(resp, ERROR_BODY_LIMIT, where)
        except RegistryError:
            body = b""
        resp.close()
        detail = error_text(body)
        status = resp.status_code
        if status == 401 and self.auth is not None:
            return self.auth.refusal(where, detail)
        if status == 401:
            return AuthError(f"{where}: {detail or 'unauthorized: authentication required'}",
                             hint=f"run 'pyminidocker login {self.registry}'")
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
