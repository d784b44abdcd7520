"""Registry credentials and challenges: the Docker config file's auths (read, written with
its other keys kept, removed), the WWW-Authenticate header a registry answers with, and the
Authorizer that answers it for one registry (Bearer tokens per scope, or Basic)."""
from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from pyminidocker.errors import (
    AuthError,
    StoreError,
    UsageError,
)
from pyminidocker.image.transport import ERROR_BODY_LIMIT, Transport, error_text
from pyminidocker.record import dataclass
from pyminidocker.reference import DEFAULT_REGISTRY


def parse_www_authenticate(header: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a WWW-Authenticate value into [(scheme lowercased, {param: value})].

    Handles several challenges in one header (requests joins repeated headers with ", "),
    quoted values containing commas, equals signs and backslash escapes, and unquoted tokens.
    Never raises: junk yields fewer or emptier challenges.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] not in ' \t,="':
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        if i >= n:
            break
        word = token()
        if not word:
            i += 1  # a stray quote or '='; step over it rather than loop forever
            continue
        save = i
        skip(" \t")
        if i < n and header[i] == "=" and challenges:
            # "name=value": a parameter of the current challenge.
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                buf = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    buf.append(header[i])
                    i += 1
                i += 1  # closing quote
                value = "".join(buf)
            else:
                value = token()
            challenges[-1][1][word.lower()] = value
        else:
            # A new scheme. (A token68 after it, as in "Negotiate abc==", is kept as-is.)
            i = save
            challenges.append((word.lower(), {}))
    return challenges


# --- credentials ---------------------------------------------------------------------------------

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def _normalise_auth_key(key: str) -> str:
    """'https://host:5000/v1/' → 'host:5000'; any Docker Hub spelling → 'docker.io'."""
    k = key.strip().lower()
    for prefix in ("https://", "http://"):
        k = k.removeprefix(prefix)
    k = k.split("/", 1)[0]
    if k in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_REGISTRY
    return k


def _auth_key_for(registry: str) -> str:
    # Docker itself stores Hub credentials under the v1 URL; keep the file compatible.
    return _HUB_KEYS[0] if registry == DEFAULT_REGISTRY else registry


def _read_docker_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise UsageError(f"invalid JSON in {path}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"invalid {path}: expected a JSON object")
    return data


def load_credentials(path: Path, registry: str) -> tuple[str, str] | None:
    """(username, password) for ``registry`` from a Docker config file, or None.

    Entries may be keyed by host[:port] or by URL; values carry ``auth`` (base64 user:pass)
    or ``username``/``password``. Credential helpers and identity tokens are not supported.
    Raises UsageError if the file is unreadable or malformed.
    """
    auths = _read_docker_config(path).get("auths")
    if not isinstance(auths, dict):
        return None
    want = _normalise_auth_key(registry)
    for key, entry in auths.items():
        if _normalise_auth_key(str(key)) != want or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                raw = base64.b64decode(str(entry["auth"]), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise UsageError(f"invalid auth entry for {registry} in {path}") from None
            user, sep, password = raw.partition(":")
            if not sep or not user:
                raise UsageError(f"invalid auth entry for {registry} in {path}")
            return user, password
        if entry.get("username") and entry.get("password") is not None:
            return str(entry["username"]), str(entry["password"])
    return None


def _write_docker_config(path: Path, data: Mapping[str, Any]) -> None:
    """Replace the file atomically: temp file in the same directory, 0600, fsync, rename."""
    text = json.dumps(data, indent="\t") + "\n"
    tmp: str | None = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # credentials: owner only, even before the rename
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        # fsync the directory so the rename itself survives a crash.
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def store_credentials(path: Path, registry: str, username: str, password: str) -> None:
    """Save credentials for ``registry`` into the Docker config, keeping every other key.

    An existing entry for the same registry (under any spelling) is updated in place.
    Raises UsageError for a malformed existing file, StoreError if it cannot be written.
    """
    data = _read_docker_config(path)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    want = _normalise_auth_key(registry)
    key = next((k for k in auths if _normalise_auth_key(str(k)) == want), _auth_key_for(registry))
    found = auths.get(key)
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    entry = {k: v for k, v in entry.items() if k not in ("username", "password", "identitytoken")}
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[key] = entry
    data["auths"] = auths
    _write_docker_config(path, data)


def remove_credentials(path: Path, registry: str) -> bool:
    """Drop every entry for ``registry``; returns False if there was none.

    Raises UsageError for a malformed file, StoreError if it cannot be written.
    """
    data = _read_docker_config(path)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return False
    want = _normalise_auth_key(registry)
    keys = [k for k in auths if _normalise_auth_key(str(k)) == want]
    if not keys:
        return False
    for k in keys:
        del auths[k]
    _write_docker_config(path, data)
    return True


# --- answering a registry's challenges -----------------------------------------------------------

TOKEN_DEFAULT_LIFETIME = 60  # seconds, per the token spec when expires_in is missing
_now = time.monotonic  # the clock for token lifetimes; tests replace it


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic() deadline


class Authorizer:
    """The Authorization header of each request to one registry: Bearer tokens per scope from
    the token server its challenge names, or Basic, with the credentials of the Docker config.

    Thread-safe enough for parallel blob downloads: the state is guarded by a lock.
    """

    def __init__(self, transport: Transport, docker_config: Path) -> None:
        self.transport = transport
        self.registry = transport.registry
        self.docker_config = docker_config
        self._lock = threading.RLock()
        self._credentials: tuple[str, str] | None = None
        self._credentials_loaded = False
        self._bearer: dict[str, str] | None = None  # realm and service of the last challenge
        self._basic = False
        self._tokens: dict[str, _Token] = {}

    # -- credentials

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the Docker config, read once; None if not logged in."""
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = load_credentials(self.docker_config, self.registry)
                self._credentials_loaded = True
            return self._credentials

    def use_credentials(self, credentials: tuple[str, str] | None) -> None:
        """Use these (None: none) from now on, rather than the Docker config's, and forget
        the tokens and challenge learned with the old ones."""
        with self._lock:
            self._credentials = credentials
            self._credentials_loaded = True
            self.reset()

    def forget_credentials(self) -> None:
        """Read the Docker config's again at the next request, with nothing learned kept."""
        with self._lock:
            self._credentials_loaded = False
            self._credentials = None
            self.reset()

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._bearer = None
            self._basic = False

    # -- challenges

    def learn_bearer(self, header: str) -> None:
        """Remember the Bearer challenge of header, if it has one (the unauthenticated ping)."""
        parsed = dict(parse_www_authenticate(header))
        with self._lock:
            if "bearer" in parsed and parsed["bearer"].get("realm"):
                self._bearer = {
                    "realm": parsed["bearer"]["realm"],
                    "service": parsed["bearer"].get("service", ""),
                }

    def _basic_header(self) -> str | None:
        creds = self.credentials
        if creds is None:
            return None
        return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()

    def authorization(self, scope: str | None) -> str | None:
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

    def answer_challenge(self, header: str, scope: str | None) -> bool:
        """Record a 401's challenge (the token it refused is dropped); returns False if we have
        no way to answer it."""
        with self._lock:
            self._tokens.pop(scope or "", None)  # it was refused; do not reuse it
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

    def refusal(self, where: str, detail: str | None) -> AuthError:
        """The error for a 401 the registry gave after our answer (or to none)."""
        if self._basic and self.credentials is not None:
            # Basic auth was sent and refused: the password is wrong.
            return AuthError(f"{where}: unauthorized: incorrect username or password")
        return AuthError(
            f"{where}: {detail or 'unauthorized: authentication required'}",
            hint=None if self.credentials else f"run 'pyminidocker login {self.registry}'",
        )

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
        t = self.transport
        resp = t.request("GET", url, use_auth=False, extra_auth=self._basic_header(),
                         what=f"token server of {self.registry}")
        try:
            if resp.status_code in (401, 403):
                body = t.read_small(resp, ERROR_BODY_LIMIT, self.registry)
                if creds is not None:
                    raise AuthError(
                        f"{self.registry}: unauthorized: incorrect username or password"
                    )
                raise AuthError(
                    f"{self.registry}: unauthorized: "
                    f"{error_text(body) or 'authentication required'}",
                    hint=f"run 'pyminidocker login {self.registry}'",
                )
            if resp.status_code != 200:
                raise t.status_error(resp, f"token server of {self.registry}")
            body = t.read_small(resp, ERROR_BODY_LIMIT, self.registry)
        finally:
            resp.close()
        return _token_of(body, self.registry)


def _token_of(body: bytes, registry: str) -> _Token:
    """The token in a token server's answer. Raises AuthError if there is none."""
    try:
        doc = json.loads(body)
        value = doc.get("token") or doc.get("access_token")
        lifetime = float(doc.get("expires_in") or TOKEN_DEFAULT_LIFETIME)
    except (ValueError, AttributeError, TypeError):
        value, lifetime = None, 0.0
    if not isinstance(value, str) or not value:
        raise AuthError(f"{registry}: token server returned no token")
    # Renew a little early so a token does not expire between check and use.
    return _Token(value, _now() + lifetime - min(30.0, lifetime / 10))
