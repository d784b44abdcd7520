"""The API server as the tests start it: `system service --time 0 unix://SOCK` of a store of
its own, with the docker clients pointed at it.

    with ApiServer(pmd, tmp_path) as api:   # waits until it answers /_ping
        api.docker("version")               # /usr/local/bin/docker (28.x), DOCKER_HOST set
        api.docker("ps", cli=DOCKER_20)     # Debian's docker.io client (20.10)
    # stopped with SIGTERM: it must exit 0 and remove its socket
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration import servers as S

DOCKER_28 = "/usr/local/bin/docker"
DOCKER_20 = "/usr/bin/docker"
# The current CLI is no Debian package: where it is missing (a fresh machine after `make deps`),
# its cases skip and Debian's 20.10 CLI drives the tests that need just one CLI.
HAVE_28 = os.access(DOCKER_28, os.X_OK)
DEFAULT_CLI = DOCKER_28 if HAVE_28 else DOCKER_20
CLIS = [pytest.param(DOCKER_28, id="docker28",
                     marks=pytest.mark.skipif(not HAVE_28, reason=f"no {DOCKER_28} here")),
        pytest.param(DOCKER_20, id="docker20")]
SYSTEM_PYTHON = "/usr/bin/python3"   # with Debian's python3-docker (5.x on 12, 7.x on 13)


def ping(path: str | Path, timeout: float = 2.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class ApiServer:
    def __init__(self, pmd, tmp_path: Path, *args: str, uri: str | None = None,
                 shared: bool = False):
        """shared: the server outlives single tests (a module's): the per-test leak check
        is told it is not a leftover."""
        self.pmd = pmd
        self.sock = tmp_path / "api.sock"
        self.uri = uri or f"unix://{self.sock}"
        self.args = args
        self.home = tmp_path / "client-home"
        self.home.mkdir(exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.shared = shared

    def start(self) -> ApiServer:
        self.proc = self.pmd.popen("system", "service", "--time", "0", *self.args, self.uri)
        if self.shared:
            S.SERVER_PIDS.add(self.proc.pid)
        deadline = time.monotonic() + 20
        while not ping(self.sock):
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("the server did not answer within 20 s")
            time.sleep(0.05)
        return self

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        S.SERVER_PIDS.discard(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        return self.proc.returncode, err

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, kind, *_) -> None:
        code, err = self.stop()
        if kind is None:
            assert code == 0, f"the server exited {code}: {err}"
            assert not self.sock.exists(), "the server left its socket"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DOCKER_HOST=f"unix://{self.sock}", HOME=str(self.home),
                   DOCKER_CONFIG=str(self.home / ".docker"), **extra)
        env.pop("DOCKER_API_VERSION", None)
        return env

    def request(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        """One request with a JSON body, as no client would send it: (status, JSON answer)."""
        import http.client
        import json

        conn = http.client.HTTPConnection("docker", timeout=30)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.settimeout(30)
        conn.sock.connect(str(self.sock))
        try:
            conn.request(method, path, None if body is None else json.dumps(body),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else {}
        finally:
            conn.close()

    def docker(self, *args: str, cli: str = DEFAULT_CLI, check: bool = True,
               timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run([cli, *args], check=False, capture_output=True, text=True, env=self.env(),
                             timeout=timeout, input=input,
                             stdin=None if input is not None else subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stdout}\n{res.stderr}")
        return res
