"""Docker users' bash scripts run unchanged with the engine installed as `docker` (issue 10).

Each script under tests/scripts/ runs with `set -euo pipefail` against a store of its own
holding the busybox image `bb`; the test asserts the script's whole output, which is what
Docker prints for the same script. The module checks that nothing is left behind.
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import module_ctr

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
ctr = module_ctr("scripts-bb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def docker(ctr, tmp_path_factory):
    """Runs a script with `docker` on PATH: the engine on this module's store."""
    bindir = tmp_path_factory.mktemp("docker-bin")
    wrapper = bindir / "docker"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pyminidocker --root "{ctr.root}" '
                       '"$@"\n')
    wrapper.chmod(0o755)
    image = next(args[2] for _root, args, _rc in ctr.calls if args[:2] == ("pull", "-q"))

    def run(script: str, **env: str) -> subprocess.CompletedProcess:
        e = ctr.env({"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                     "IMAGE": image, **env})
        return subprocess.run(["bash", str(SCRIPTS / script)], capture_output=True, text=True,
                              env=e, cwd=tmp_path_factory.mktemp("cwd"), timeout=240,
                              stdin=subprocess.DEVNULL, check=False)
    run.image = image  # type: ignore[attr-defined]
    return run


def test_the_deploy_script(docker):
    port = free_port()
    res = docker("deploy.sh", PORT=str(port))
    assert res.returncode == 0, res.stderr
    subnet = res.stdout.split("ip: ")[1].split("\n")[0]
    assert res.stdout == (
        f"pulled: {docker.image}\n"
        "served: hello from web\n"
        f"ip: {subnet}\n"
        f"port: 127.0.0.1:{port}\n"
        "logs: listening on 8080\n"
        "status: exited 137\n"  # httpd as pid 1 ignores SIGTERM: killed, as with Docker
        "web\n"
        "1\n")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.x", subnet), subnet


def test_format_and_filter_one_liners(docker):
    port = free_port()
    res = docker("formats.sh", PORT=str(port))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [
        "fmt-b exited 3",
        "fmt-a Up",
        "fmt-b: Exited (3)",
        'fmt-a "sleep 60"',
        "fmt-b \"sh -c 'exit 3'\"",
        # Docker's tabwriter: a column is its widest cell + 3, at least 10
        "NAMES     " + "PORTS".ljust(len(f"127.0.0.1:{port}->7000/tcp") + 3) + "STATE",
        f"fmt-a     127.0.0.1:{port}->7000/tcp   running",
        "13",
        "fmt-b",
        "0",
        "fmt-a bridge",
        "bb no default",
        f'{{"7000/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}',
        "7000/tcp -> 127.0.0.1",
        "3 false",
        "FROM_IMAGE=yes 0",
        'linux {"7000/tcp":{}}',
        "bb:latest",
        "REPOSITORY   TAG",
        "bb           latest",
        "bridge",
        "host",
        "none",
        "bridge local",
        "1.43",
        "overlay2 linux",
        "info: ok",
        "bad template: rc 1",
        'template parsing error: template: :1: unexpected "}" in operand',
        "no health: rc 1",
        'template parsing error: template: :1:8: executing "" at <.State.Health.Status>: '
        'map has no entry for key "Health"',
        "missing image: rc 1",
        "unpublished: rc 1",
        "Error: No public port '9999/tcp' published for fmt-a",
        "fmt-a",
        "fmt-b",
    ]
