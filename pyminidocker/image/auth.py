"""Registry credentials and challenges: the Docker config file's auths (read, written with
its other keys kept, removed) and the WWW-Authenticate header a registry answers with."""
from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyminidocker.errors import (
    StoreError,
    UsageError,
)
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
