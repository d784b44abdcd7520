"""The servers integration tests talk to, all on 127.0.0.1 with ports chosen by binding 0.

- `start_registry`: Debian's docker-registry (distribution 2.8) with filesystem storage in a
  temp dir, delete enabled, and no auth, htpasswd Basic auth, or token auth.
- `TokenServer`: the token service for `auth: token`: checks Basic credentials, parses the
  requested scopes and returns an RS256 JWT whose header carries `kid` (libtrust's key id of the
  signing key, which distribution 2.8 looks up among the keys of its rootcertbundle).
- `FaultyProxy`: an HTTP proxy forwarding to a registry that injects what a real registry
  cannot produce: cut blob bodies, 503s, 429 with Retry-After, a stalled blob.

Each object has a `close()`; fixtures call it in their teardown.
"""
from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"

# pids of the long-lived servers started by session fixtures: the leak check ignores them
SERVER_PIDS: set[int] = set()


def free_port() -> int:
    """A port that was free a moment ago (bind 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_when_listening(host: str, port: int, data: bytes, timeout: float = 10.0) -> None:
    """Connect to host:port and send data, retrying while the connection is refused (a
    detached container's server starts listening a moment after `run -d` returns)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(data)
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_until(cond, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll cond() until it returns a truthy value; return it or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        val = cond()
        if val:
            return val
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Registry


@dataclass
class Registry:
    """A running docker-registry. host is "127.0.0.1:PORT"; storage the filesystem root."""

    host: str
    storage: Path
    pid: int
    log: Path
    auth: str = "none"  # "none", "basic" or "token"
    user: str = ""
    password: str = ""
    token_server: TokenServer | None = None
    lifeline: int = -1  # write end of the pipe the registry's watchdog reads (see start_registry)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> str | None:
        return f"{self.user}:{self.password}" if self.user else None

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def close(self) -> None:
        if self.lifeline >= 0:  # the watchdog sees EOF and sends SIGTERM itself
            os.close(self.lifeline)
            self.lifeline = -1
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self.alive(), 10, what=f"registry {self.pid} to exit")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                wait_until(lambda: not self.alive(), 10, what=f"registry {self.pid} to exit")
                break
            except TimeoutError:
                continue
        SERVER_PIDS.discard(self.pid)
        if self.token_server:
            self.token_server.close()


def pid_alive(pid: int) -> bool:
    """True if pid runs (a zombie, or a pid gone from /proc, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] not in "ZX"


def start_registry(workdir: Path, auth: dict | None = None, kind: str = "none",
                   user: str = "", password: str = "") -> Registry:
    """Start docker-registry with its config, storage and log under workdir; wait for /v2/.

    auth is the config's `auth:` section (None: no auth). The config is written as JSON, which
    is valid YAML. Raises RuntimeError with the registry's log if it does not come up.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    cfg: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if auth:
        cfg["auth"] = auth
    cfgfile = workdir / "config.yml"
    cfgfile.write_text(json.dumps(cfg, indent=2))
    log = workdir / "registry.log"
    pidfile = workdir / "registry.pid"
    # Started through a shell that exits at once, so the registry is not a child of pytest:
    # other tests' checks for "no child process left" must not see this session-long server.
    # A background subshell (also orphaned) watches a pipe whose write end only pytest holds:
    # when pytest closes it, in close() or by dying, the subshell stops the registry.
    # (fd 4 is taken from stdin before `&`, which would give the subshell /dev/null as stdin)
    script = ('exec 4<&0; ( "$0" serve "$1" 4<&- </dev/null >"$2" 2>&1 & echo $! >"$3"; '
              'read _ <&4; kill $! ) </dev/null >/dev/null 2>&1 &')
    lifeline_r, lifeline_w = os.pipe()
    try:
        subprocess.run(
            ["sh", "-c", script, REGISTRY_BIN, str(cfgfile), str(log), str(pidfile)],
            stdin=lifeline_r, check=True)
    finally:
        os.close(lifeline_r)
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                         what="the registry's pid"))
    SERVER_PIDS.add(pid)
    reg = Registry(f"127.0.0.1:{port}", storage, pid, log, kind, user, password,
                   lifeline=lifeline_w)

    def up() -> bool:
        if not reg.alive():
            raise RuntimeError(f"docker-registry exited:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"{reg.url}/v2/", timeout=1).close()
            return True
        except urllib.error.HTTPError as e:
            return e.code == 401  # up, and asking for credentials
        except OSError:
            return False

    try:
        wait_until(up, 15, what="docker-registry /v2/")
    except BaseException:
        reg.close()
        raise
    return reg


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """Write a bcrypt htpasswd file (htpasswd -Bbn), the only hash distribution accepts."""
    out = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True,
                         check=True).stdout
    path.write_text(out.strip() + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Token server


def libtrust_kid(public_key) -> str:
    """libtrust's key id: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo),
    in 12 colon-separated groups of 4. distribution 2.8 indexes the rootcertbundle's keys by it
    and looks up the JWT header's `kid` there."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class TokenServer:
    """A Docker token service on 127.0.0.1 (GET /token?service=...&scope=...).

    Accepts only `users` (Basic auth); refuses anonymous requests with 401. Grants every
    requested action on `repository` scopes to a valid user. `requests` records
    (user or None, scopes) of each request, for tests that check what a client asked.
    """

    issuer = "pmd-test-issuer"
    service = "pmd-test-registry"

    def __init__(self, workdir: Path, users: dict[str, str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[tuple[str | None, list[str]]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pmd test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.certfile = workdir / "token-signer.pem"
        self.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_kid(self.key.public_key())
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def auth_config(self) -> dict:
        """The registry config's `auth:` section for this token server."""
        return {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.certfile)}}

    def _user(self, h: http.server.BaseHTTPRequestHandler) -> str | None:
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == pw and user else None

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        scopes = q.get("scope", [])
        user = self._user(h)
        self.requests.append((user, scopes))
        if user is None:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                           "message": "authentication required"}]}).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("WWW-Authenticate", f'Basic realm="{self.realm}"')
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) < 3:
                    continue
                typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
                if typ == "repository":
                    access.append({"type": typ, "name": name, "actions": actions.split(",")})
        token = self.sign(user, access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                           "issued_at": datetime.datetime.now(datetime.UTC)
                           .strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def sign(self, subject: str, access: list[dict]) -> str:
        """An RS256 JWT with the claims distribution 2.8 checks: iss, aud, exp, nbf, access."""
        import jwt

        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "iat": now,
                  "nbf": now - 10, "exp": now + 300, "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------------
# Fault-injecting proxy

class QuietServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that does not print tracebacks for clients that hang up (a
    killed pull, a cut connection): those are the point of the tests."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Hit:
    """One request the proxy saw: method, path, Range header, status sent, time."""

    method: str
    path: str
    range: str | None
    status: int
    at: float
    faulted: bool = False


@dataclass
class FaultyProxy:
    """Forwards HTTP requests to `upstream` ("127.0.0.1:PORT"), injecting faults by `mode`:

    - "cut-once": the first blob GET (of a body longer than cut_after) sends headers and `cut_after` body bytes, then closes the
      connection; later requests pass (a client that resumes with Range succeeds).
    - "cut-always": every blob GET is cut at `cut_after` bytes from the blob's start, also
      when resumed with Range (so a client can never complete it and must fail cleanly).
    - "503x2": the first two requests get 503 Service Unavailable, then all pass.
    - "429": the first request gets 429 with `Retry-After: 1`, then all pass.
    - "stall": every blob GET sends `cut_after` bytes then waits until `release` is set (or
      close()); `stalled` is set when a blob body is stalled. For kill -9 tests.
    - "barrier": the first `parties` manifest requests wait for each other (up to 30 s), so
      that as many concurrent pulls proceed from the same point at the same time.
    - "tamper-manifest": manifest bodies get one extra byte (a newline: still valid JSON, but
      no longer the bytes the digest names).
    - "pass": no faults.

    `hits` lists what was seen, in order. host is "127.0.0.1:PORT".
    """

    upstream: str
    mode: str = "pass"
    cut_after: int = 64 * 1024
    parties: int = 2
    hits: list[Hit] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._faults_done = 0
        self.barrier = threading.Barrier(self.parties, timeout=30)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy._forward(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def blob_gets(self) -> list[Hit]:
        return [h for h in self.hits if h.method == "GET" and "/blobs/" in h.path]

    def _take_fault(self, limit: int) -> bool:
        with self._lock:
            if self._faults_done < limit:
                self._faults_done += 1
                return True
            return False

    def _record(self, h, status: int, faulted: bool = False) -> None:
        with self._lock:
            self.hits.append(Hit(h.command, h.path, h.headers.get("Range"), status,
                                 time.monotonic(), faulted))

    def _reply(self, h, status: int, extra: dict[str, str]) -> None:
        body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected"}]}).encode()
        h.send_response(status)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        if self.mode == "503x2" and self._take_fault(2):
            self._record(h, 503, True)
            return self._reply(h, 503, {})
        if self.mode == "429" and self._take_fault(1):
            self._record(h, 429, True)
            return self._reply(h, 429, {"Retry-After": "1"})
        if (self.mode == "barrier" and "/manifests/" in h.path
                and self._take_fault(self.parties)):
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_HEADERS}
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            # only bodies longer than cut_after can be cut (small blobs, like configs, pass)
            is_blob = (h.command == "GET" and "/blobs/sha256:" in h.path
                       and resp.status in (200, 206)
                       and int(resp.getheader("Content-Length") or 0) > self.cut_after)
            cut = is_blob and (self.mode == "cut-always" or self.mode == "stall"
                               or (self.mode == "cut-once" and self._take_fault(1)))
            if (self.mode == "tamper-manifest" and h.command == "GET"
                    and "/manifests/" in h.path and resp.status == 200):
                body = resp.read() + b"\n"
                self._record(h, resp.status, True)
                h.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_HEADERS and k.lower() != "content-length":
                        h.send_header(k, v)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
            self._record(h, resp.status, cut)
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS:
                    h.send_header(k, v)
            h.end_headers()
            if h.command == "HEAD":
                return
            # cut-always counts from the blob's start, so resuming with Range cannot get past
            # cut_after: the client makes no progress and must give up
            sent = _range_start(h.headers.get("Range")) if self.mode == "cut-always" else 0
            while True:
                want = 32 * 1024
                if cut:
                    want = min(want, self.cut_after - sent)
                    if want <= 0:
                        break
                chunk = resp.read(want)
                if not chunk:
                    break
                h.wfile.write(chunk)
                sent += len(chunk)
            if cut:
                h.wfile.flush()
                if self.mode == "stall":
                    self.stalled.set()
                    self.release.wait(120)
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        finally:
            conn.close()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _range_start(header: str | None) -> int:
    """N of a "bytes=N-[M]" Range header (0 if absent or unparsable)."""
    if header and header.startswith("bytes="):
        first = header[6:].split("-", 1)[0]
        if first.isdigit():
            return int(first)
    return 0


# --------------------------------------------------------------------------------------------
# Processes and mounts (for the leak checks)


def children_of(pid: int) -> list[int]:
    """All live descendants of pid (zombies included), read from /proc."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the comm field may contain spaces and parens: split after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents[int(d)] = ppid
    out: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def mounts_under(*paths: Path) -> list[str]:
    """Mount points in /proc/self/mountinfo at or under any of paths."""
    out = []
    prefixes = [str(Path(p).resolve()) for p in paths]
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == p or mp.startswith(p + "/") for p in prefixes):
                out.append(mp)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process we started and its descendants, then reap it."""
    for pid in [proc.pid, *children_of(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
