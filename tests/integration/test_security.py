"""Attacks a user inside a container could try, each reproduced as a static probe program
bind-mounted into a busybox container; the container must not gain what Docker would not give.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import module_ctr

# Prints the capability lines of /proc/self/status: what a process that exec'd this file holds.
CAPS_PROBE = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Cap", 3) == 0) fputs(line, stdout);
    return 0;
}
"""


ctr = module_ctr("ctr-security")


@pytest.fixture(scope="module")
def capprobe(tmp_path_factory) -> Path:
    """The probe, with inheritable file capabilities: a non-root user who runs it gains them
    if the process's inheritable set holds them (CVE-2022-24769)."""
    d = tmp_path_factory.mktemp("capprobe")
    (d / "probe.c").write_text(CAPS_PROBE)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c")],
                   check=True)
    os.chmod(d, 0o755)
    subprocess.run(["setcap", "cap_chown,cap_dac_override,cap_setuid+ei", str(d / "probe")],
                   check=True)
    return d


def caps(out: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in out.splitlines())}


def test_file_capabilities_give_a_non_root_user_nothing_in_run(ctr, capprobe):
    out = ctr("run", "--rm", "--network", "none", "-u", "1000:1000", "-v", f"{capprobe}:/probe:ro", "bb",
              "/probe/probe").stdout
    got = caps(out)
    assert got["CapInh"] == 0 and got["CapEff"] == 0 and got["CapPrm"] == 0, out
    assert got["CapAmb"] == 0
    assert got["CapBnd"] != 0  # the bounding set is still Docker's default, not empty


def test_file_capabilities_give_a_non_root_user_nothing_in_exec(ctr, capprobe):
    cid = ctr("run", "-d", "--network", "none", "-v", f"{capprobe}:/probe:ro", "bb", "sleep", "60").stdout.strip()
    try:
        out = ctr("exec", "-u", "1000:1000", cid, "/probe/probe").stdout
        got = caps(out)
        assert got["CapInh"] == 0 and got["CapEff"] == 0 and got["CapPrm"] == 0, out
        root = caps(ctr("exec", cid, "/probe/probe").stdout)
        assert root["CapInh"] == 0 and root["CapEff"] != 0  # root keeps Docker's default set
    finally:
        ctr("rm", "-f", cid)


def sh(ctr, script: str, *opts: str, check: bool = True):
    return ctr("run", "--rm", "--network", "none", *opts, "bb", "sh", "-c", script, check=check)


@pytest.mark.parametrize("opts", [("-v", "/tmp:/proc/sys/kernel"), ("--tmpfs", "/proc/sys"),
                                  ("-v", "/tmp:/proc"), ("--tmpfs", "/proc/../proc/x")])
def test_a_mount_inside_proc_is_refused(ctr, opts):
    res = sh(ctr, "true", *opts, check=False)
    assert res.returncode == 125, res
    assert "cannot be mounted because it is inside /proc" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert ctr("ps", "-a", "-q").stdout == ""  # nothing was created


def test_tmpfs_options_as_docker_takes_them(ctr):
    run = "cp /bin/busybox /t/true && /t/true && echo ran"
    assert sh(ctr, run, "--tmpfs", "/t:exec").stdout == "ran\n"
    assert sh(ctr, run, "--tmpfs", "/t", check=False).returncode != 0  # noexec by default
    out = sh(ctr, "grep ' /t ' /proc/mounts", "--tmpfs", "/t:size=1m,mode=700,uid=5").stdout
    assert "size=1024k" in out and "mode=700" in out and "uid=5" in out and "noexec" in out
    for bad in ("/t:bogus", "/t:size=lots", "/t:mode=9", "/t:uid=x"):
        res = sh(ctr, "true", "--tmpfs", bad, check=False)
        assert res.returncode == 125 and "invalid tmpfs option" in res.stderr, (bad, res)


def test_workdir_is_normalised_as_docker_does(ctr):
    assert sh(ctr, "pwd", "-w", "/a/../..").stdout == "/\n"
    assert sh(ctr, "pwd", "-w", "/x/./y/../z").stdout == "/x/z\n"


def test_dev_core_only_where_the_kernel_has_kcore(ctr):
    out = sh(ctr, "[ -L /dev/core ] && echo link || echo none").stdout
    assert out == ("link\n" if os.path.exists("/proc/kcore") else "none\n")
