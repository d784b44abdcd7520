"""The README's two commands, verbatim, on a fresh Debian: a missing install step fails here.

A debootstrap'd Debian 12 and Debian 13 (minbase, cached between runs under
/var/cache/pyminidocker-ci) is copied to a real filesystem (so the stores inside are not on
overlay), the repository's tracked files are copied in, and inside a chroot in private mount
and pid namespaces the README's prerequisite line and then its two commands run as a new user
would type them. The inner test suite does not run this test again (PMD_IN_FRESH_ROOT). Slow
(minutes each): set PMD_SKIP_FRESH_INSTALL=1 to skip it in a quick local run; CI runs it.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/pyminidocker-ci")
SUITES = ["bookworm", "trixie"]  # Debian 12, Debian 13

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(bool(os.environ.get("PMD_IN_FRESH_ROOT")),
                       reason="already inside the fresh root"),
    pytest.mark.skipif(os.environ.get("PMD_SKIP_FRESH_INSTALL") == "1",
                       reason="PMD_SKIP_FRESH_INSTALL=1"),
]


def readme_commands() -> tuple[str, list[str]]:
    """The prerequisite install (the `apt-get install` the README names) and the two
    commands of its "Two commands" block, comments stripped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    prereq = re.search(r"`(apt-get install [^`]+)`", section)
    assert prereq, "the README names its prerequisites as an apt-get install line"
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) == 2, commands
    return prereq.group(1), commands


def debian_root(suite: str) -> Path:
    """Debian's minbase root, made once per machine (debootstrap from the host's mirror)."""
    root = CACHE / suite
    if not (root / "etc" / "debian_version").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / f"{suite}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        res = subprocess.run(["debootstrap", "--variant=minbase", suite, str(tmp), mirror()],
                             capture_output=True, text=True, timeout=900, check=False)
        assert res.returncode == 0, f"debootstrap {suite}: {res.stdout[-2000:]}{res.stderr}"
        tmp.rename(root)
    return root


def apt_sources(suite: str) -> str:
    """The root's own suite from the host's mirror, with its updates and security suites (the
    host's sources name the host's suite)."""
    main = mirror()
    security = main.rsplit("/debian", 1)[0] + "/debian-security"
    keyring = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    return (f"Types: deb\nURIs: {main}\nSuites: {suite} {suite}-updates\nComponents: main\n"
            f"{keyring}\n\nTypes: deb\nURIs: {security}\nSuites: {suite}-security\n"
            f"Components: main\n{keyring}\n")


def mirror() -> str:
    for path in Path("/etc/apt").glob("sources.list.d/*.sources"):
        m = re.search(r"^URIs:\s*(\S+/debian)\s*$", path.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


@pytest.mark.parametrize("suite", SUITES)
def test_the_readme_commands_work_on_a_fresh_debian(suite):
    prereq, (setup_and_demo, tests) = readme_commands()
    work = Path(os.environ.get("PMD_FRESH_WORKDIR", "/var/tmp")) / f"pmd-fresh-{os.getpid()}"
    try:
        subprocess.run(["cp", "-a", str(debian_root(suite)), str(work)], check=True)
        # the repository as a clone has it: tracked files only
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                               capture_output=True).stdout
        (work / "src").mkdir()
        subprocess.run(["tar", "--null", "-T", "-", "-c", "-f", "-"], cwd=REPO, input=files,
                       check=True, stdout=open(work / "src.tar", "wb"))
        subprocess.run(["tar", "-x", "-f", str(work / "src.tar"), "-C", str(work / "src")],
                       check=True)
        # this machine's way out: its resolver, its mirror, apt's settings, and the CAs of
        # its egress proxy (a real fresh machine needs none of these)
        shutil.copy("/etc/resolv.conf", work / "etc" / "resolv.conf")
        (work / "etc/apt/sources.list").unlink(missing_ok=True)  # the same mirror twice
        (work / "etc/apt/sources.list.d/debian.sources").write_text(apt_sources(suite))
        for src in ["/etc/apt/apt.conf.d", "/usr/local/share/ca-certificates"]:
            if os.path.isdir(src):
                shutil.copytree(src, work / src.lstrip("/"), dirs_exist_ok=True)
        inner = " && ".join([
            "export DEBIAN_FRONTEND=noninteractive PMD_IN_FRESH_ROOT=1 HOME=/root",
            "apt-get update -q", prereq + " -q",
            "cd /src", setup_and_demo, tests])
        script = "\n".join([
            "set -e",
            f"R={shlex.quote(str(work))}",
            # a mount point, as a real root is: the engine makes its root rprivate
            'mount --bind "$R" "$R"',
            'mount --rbind /dev "$R/dev"',
            'mount -t proc proc "$R/proc"',
            'mount --rbind /sys "$R/sys"',
            'mount -t tmpfs -o mode=755 tmpfs "$R/run"',
            # pivot_root, not a bare chroot: with the host's root detached, the kernel sees
            # only this root's /proc and /dev, as on a machine of its own (a chroot keeps the
            # host's mounts in the namespace, and new proc and devpts mounts behave otherwise)
            'cd "$R" && mkdir -p .oldroot && pivot_root . .oldroot',
            'umount -l /.oldroot && rmdir /.oldroot',
            f'exec /usr/sbin/chroot / /bin/sh -c {shlex.quote(inner)}',
        ])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        res = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--propagation",
                              "private", "sh", "-c", script], env=env, capture_output=True,
                             text=True, timeout=2400, stdin=subprocess.DEVNULL, check=False)
        if os.environ.get("PMD_FRESH_LOG"):  # the whole inner run, for a failure's cause
            Path(f"{os.environ['PMD_FRESH_LOG']}.{suite}").write_text(
                f"{res.stdout}\n--- stderr\n{res.stderr}")
        tail = f"{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-3000:]}"
        assert res.returncode == 0, tail
        assert "demo complete" in res.stdout, tail
        assert re.search(r"\d+ passed", res.stdout) and " failed" not in res.stdout, tail
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
