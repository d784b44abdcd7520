"""Healthchecks run by the C monitor: --health-*, --no-healthcheck, the image's HEALTHCHECK;
the status in ps and inspect (State.Health with the log of the last runs). As root.

One store per module with busybox as `bb` and `himg` (busybox with a HEALTHCHECK); the module
ends with no container or cgroup left.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.integration import images as I
from tests.integration import servers as S
from tests.integration.conftest import module_ctr

ctr = module_ctr("health")


@pytest.fixture(scope="module")
def run(ctr, publish):
    img = I.build_image([I.make_layer(I.full_busybox_entries())], config_extra={
        "Env": ["PATH=/bin"], "Cmd": ["sh", "-c", "touch /ok; sleep 60"],
        "Healthcheck": {"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 300_000_000,
                        "Timeout": 5_000_000_000, "Retries": 2}})
    pushed = publish(img, "health-img", "v1")
    ctr("pull", "-q", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    ctr("tag", f"{pushed.host}/{pushed.repo}:{pushed.tag}", "himg")
    return ctr


def health(run, cid: str) -> dict:
    return json.loads(run("inspect", cid).stdout)[0]["State"].get("Health")


def until(what, timeout: float = 20.0):
    return S.wait_until(what, timeout=timeout, interval=0.1, what="the container's state")


def test_health_cmd_healthy_then_unhealthy(run):
    since = str(int(time.time()))
    cid = run("run", "-d", "--health-cmd", "cat /flag", "--health-interval", "300ms",
              "--health-retries", "2", "--health-timeout", "5s", "bb", "sh", "-c",
              "echo up > /flag; sleep 60").stdout.strip()
    try:
        assert health(run, cid)["Status"] in ("starting", "healthy")
        h = until(lambda: (x := health(run, cid))["Status"] == "healthy" and x)
        assert h["FailingStreak"] == 0
        last = h["Log"][-1]
        assert last["ExitCode"] == 0 and last["Output"] == "up\n"
        assert last["Start"] <= last["End"]
        assert "(healthy)" in run("ps").stdout
        assert run("ps", "-q", "--filter", "health=healthy").stdout == cid[:12] + "\n"
        assert cid[:12] not in run("ps", "-q", "--filter", "health=none").stdout
        run("exec", cid, "rm", "/flag")
        h = until(lambda: (x := health(run, cid))["Status"] == "unhealthy" and x)
        assert h["FailingStreak"] >= 2
        assert h["Log"][-1]["ExitCode"] == 1
        assert "No such file or directory" in h["Log"][-1]["Output"]
        assert len(h["Log"]) <= 5
        assert "(unhealthy)" in run("ps").stdout
        assert run("ps", "-q", "--filter", "health=unhealthy").stdout == cid[:12] + "\n"
        assert run("ps", "-q", "--filter", "health=healthy").stdout == ""
        # each change of health is an event, once (Docker's; compose 2.x may follow them)
        run("ps")
        events = run("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", f"container={cid}", "--filter", "event=health_status",
                     "--format", "{{.Action}}").stdout
        assert events == "health_status: healthy\nhealth_status: unhealthy\n", events
    finally:
        run("rm", "-f", cid)


def test_the_image_s_healthcheck_and_no_healthcheck(run):
    cid = run("run", "-d", "himg").stdout.strip()
    try:
        until(lambda: health(run, cid)["Status"] == "healthy")
    finally:
        run("rm", "-f", cid)
    cid = run("run", "-d", "--no-healthcheck", "himg").stdout.strip()
    try:
        time.sleep(1)
        assert health(run, cid) is None
        assert "health" not in run("ps").stdout
    finally:
        run("rm", "-f", cid)
    # a flag replaces only its own field of the image's healthcheck
    cid = run("run", "-d", "--health-cmd", "false", "himg").stdout.strip()
    try:
        h = until(lambda: (x := health(run, cid))["Status"] == "unhealthy" and x)
        assert h["Log"][-1]["ExitCode"] == 1
    finally:
        run("rm", "-f", cid)


def test_timeout_and_start_period(run):
    cid = run("run", "-d", "--health-cmd", "sleep 5", "--health-interval", "200ms",
              "--health-timeout", "300ms", "--health-retries", "1", "bb", "sleep",
              "60").stdout.strip()
    try:
        h = until(lambda: (x := health(run, cid))["Status"] == "unhealthy" and x)
        assert h["Log"][-1]["ExitCode"] == -1
        assert h["Log"][-1]["Output"] == "Health check exceeded timeout (300ms)"
    finally:
        run("rm", "-f", cid)
    # failures within the start period do not count
    cid = run("run", "-d", "--health-cmd", "false", "--health-interval", "200ms",
              "--health-retries", "1", "--health-start-period", "3s", "bb", "sleep",
              "60").stdout.strip()
    try:
        time.sleep(1.5)
        h = health(run, cid)
        assert h["Status"] == "starting" and len(h["Log"]) >= 2
        until(lambda: health(run, cid)["Status"] == "unhealthy", 10)
    finally:
        run("rm", "-f", cid)


@pytest.mark.parametrize("flags, message", [
    (["--health-interval", "soon"], 'invalid argument "soon" for "--health-interval" flag'),
    (["--health-retries", "x"], 'invalid argument "x" for "--health-retries" flag'),
    (["--health-timeout", "10us"], "Timeout in Healthcheck cannot be less than 1ms"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with"),
])
def test_bad_health_values(run, flags, message):
    res = run("run", "-d", *flags, "bb", "true", check=False)
    assert res.returncode == 125 and message in res.stderr and res.stderr.count("\n") == 1
