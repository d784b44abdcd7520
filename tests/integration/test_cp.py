"""`cp` as root on real containers, running and stopped: both directions, Docker's path
semantics and errors, -a, -L, tars on stdin/stdout, and the hostile cases (symlinks inside the
container that point out of it, tars with `..`, absolute names, links and devices) that must
stay inside the container.

One store per module with busybox as `bb`; the module ends with no container, cgroup or mount
left.
"""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import module_ctr

ctr = module_ctr("cp")

SETUP = ("mkdir -p /data/sub && echo hello > /data/f && echo deep > /data/sub/g && "
         "ln -s f /data/link && chown 1000:1001 /data/f && chmod 640 /data/f")


def mounts_of(ctr) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(ctr.root) in line]


@pytest.fixture(params=["running", "stopped"])
def box(request, ctr):
    """A container with /data set up (SETUP), running or stopped."""
    if request.param == "running":
        cid = ctr("run", "-d", "bb", "sh", "-c", SETUP + " && exec sleep 300").stdout.strip()
        for _ in range(100):
            if ctr("exec", cid, "test", "-L", "/data/link", check=False).returncode == 0:
                break
    else:
        cid = ctr("run", "-d", "bb", "sh", "-c", SETUP).stdout.strip()
        ctr("wait", cid)
    yield cid
    ctr("rm", "-f", cid)
    assert mounts_of(ctr) == [], "a container's root is left mounted"


def raw(ctr, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """The CLI with bytes on stdin and stdout (a tar)."""
    return subprocess.run(ctr.argv(*args), input=input, capture_output=True, env=ctr.env(),
                          check=False, timeout=60)


def test_cp_from_a_container_to_a_new_name_and_into_a_directory(ctr, box, tmp_path):
    ctr("cp", f"{box}:/data", str(tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "f").read_text() == "hello\n" and (out / "sub" / "g").read_text() == "deep\n"
    assert os.readlink(out / "link") == "f"
    st = (out / "f").stat()
    assert (st.st_uid, st.st_gid) == (0, 0) and st.st_mode & 0o777 == 0o640
    # into an existing directory: by its name; a file onto a file: overwritten
    ctr("cp", f"{box}:/data", str(out))
    assert (out / "data" / "sub" / "g").read_text() == "deep\n"
    (tmp_path / "file").write_text("old")
    ctr("cp", f"{box}:/data/sub/g", str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "deep\n"
    # "/." copies the contents
    (tmp_path / "c").mkdir()
    ctr("cp", f"{box}:/data/.", str(tmp_path / "c"))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["f", "link", "sub"]


def test_cp_a_keeps_ids_and_L_follows_the_link(ctr, box, tmp_path):
    ctr("cp", "-a", f"{box}:/data/f", str(tmp_path / "a"))
    st = (tmp_path / "a").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    ctr("cp", f"{box}:/data/link", str(tmp_path / "l"))
    assert (tmp_path / "l").is_symlink()
    ctr("cp", "-L", f"{box}:/data/link", str(tmp_path / "L"))
    assert not (tmp_path / "L").is_symlink() and (tmp_path / "L").read_text() == "hello\n"


def test_cp_into_a_container(ctr, box, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("x-content")
    (src / "top").write_text("top-content")
    os.chown(src / "top", 1234, 1234)
    ctr("cp", str(src), f"{box}:/data/")
    ctr("cp", "-a", str(src / "top"), f"{box}:/data/kept")
    ctr("cp", str(src) + "/.", f"{box}:/data/sub")
    ctr("cp", str(src / "top"), f"{box}:/data/renamed")
    # what the container sees: read back through cp (it works stopped too) and in a tar
    tar = raw(ctr, "cp", f"{box}:/data", "-")
    assert tar.returncode == 0, tar.stderr
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert t.extractfile("data/src/d/x").read() == b"x-content"
        assert t.extractfile("data/sub/top").read() == b"top-content"
        assert t.extractfile("data/renamed").read() == b"top-content"
    assert (members["data/src/top"].uid, members["data/kept"].uid) == (0, 1234)
    assert "data/sub/d/x" in members and "data/sub/g" in members


BARE = ("cannot copy directory", "no such directory", "not a directory")


def test_docker_path_errors(ctr, box, tmp_path):
    (tmp_path / "file").write_text("f")
    (tmp_path / "dir").mkdir()
    cases = [
        ((f"{box}:/nope", str(tmp_path / "x")), "No such container:path: "),
        (("nosuchctr:/data", str(tmp_path / "x")), "No such container: nosuchctr"),
        ((f"{box}:/data", str(tmp_path / "file")), "cannot copy directory"),
        ((f"{box}:/data/f", str(tmp_path / "missing") + "/"), "no such directory"),
        ((f"{box}:/data/f/", str(tmp_path / "y")), "not a directory"),
        ((f"{box}:/data/f", str(tmp_path / "file") + "/"), "not a directory"),
        ((str(tmp_path / "nope"), f"{box}:/data"), "no such file or directory"),
        ((str(tmp_path / "dir"), f"{box}:/data/f"), "cannot copy directory"),
        ((str(tmp_path / "file"), f"{box}:/no/such/dir/x"), "No such container:path: "),
        ((f"{box}:/data", f"{box}:/tmp"), "copying between containers is not supported"),
        ((str(tmp_path / "file"), str(tmp_path / "y")),
         "must specify at least one container source"),
    ]
    for args, message in cases:
        res = ctr("cp", *args, check=False)
        assert res.returncode == 1 and message in res.stderr, (args, res.stderr)
        # one line; the archive's own errors bare, as the docker CLI prints them
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.startswith("Error: ") != (message in BARE), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]


def test_cp_tar_on_stdout_and_stdin(ctr, box, tmp_path):
    res = raw(ctr, "cp", f"{box}:/data/sub", "-")
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as t:
        assert sorted(t.getnames()) == ["sub", "sub/g"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("from-stdin/hello.txt")
        info.size, info.uid = 6, 4321
        t.addfile(info, io.BytesIO(b"hello\n"))
    assert raw(ctr, "cp", "-", f"{box}:/data", input=buf.getvalue()).returncode == 0
    res = raw(ctr, "cp", f"{box}:/data/from-stdin/hello.txt", "-")
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as t:
        m = t.getmember("hello.txt")
        # the tar's owner, as `docker cp -` through dockerd (it keeps a put tar's ids)
        assert t.extractfile(m).read() == b"hello\n" and m.uid == 4321
    res = raw(ctr, "cp", "-", f"{box}:/data/f", input=buf.getvalue())
    assert res.returncode == 1 and b"not a directory" in res.stderr
    res = raw(ctr, "cp", "-", f"{box}:/data", input=b"this is not a tar" * 100)
    assert res.returncode != 0 and b"Error: " in res.stderr and b"Traceback" not in res.stderr


def test_symlinks_in_the_container_never_lead_out_of_it(ctr, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("host secret")
    links = (f"ln -s {secret} /abs && ln -s ../../../../../../../{secret} /rel && "
             "ln -s / /root-link && mkdir -p /d && ln -s ../../../../.. /d/up")
    for state in ("running", "stopped"):
        cmd = links + (" && exec sleep 300" if state == "running" else "")
        cid = ctr("run", "-d", "bb", "sh", "-c", cmd).stdout.strip()
        if state == "stopped":
            ctr("wait", cid)
        else:
            for _ in range(100):
                if ctr("exec", cid, "test", "-L", "/d/up", check=False).returncode == 0:
                    break
        for src in ("/abs/key", "/rel/key", f"/root-link{secret}/key", f"/d/up{secret}/key"):
            res = ctr("cp", f"{cid}:{src}", str(tmp_path / "got"), check=False)
            assert res.returncode == 1 and "No such container:path" in res.stderr, src
            assert not (tmp_path / "got").exists()
        # /d/up/etc/passwd is the container's own passwd, not the host's
        ctr("cp", f"{cid}:/d/up/etc/passwd", str(tmp_path / "passwd"))
        assert (tmp_path / "passwd").read_bytes() != Path("/etc/passwd").read_bytes()
        (tmp_path / "passwd").unlink()
        # writes through the links stay in the container: the host's directory is untouched
        (tmp_path / "payload").write_text("payload")
        for dst in ("/abs", "/rel/", "/abs/new", f"/d/up{secret}/new"):
            ctr("cp", str(tmp_path / "payload"), f"{cid}:{dst}", check=False)
        assert sorted(p.name for p in secret.iterdir()) == ["key"]
        assert (secret / "key").read_text() == "host secret"
        ctr("rm", "-f", cid)
    assert mounts_of(ctr) == []


def hostile(*entries: tuple) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, link, data in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_hostile_tar_is_contained(ctr, box, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    refused = {
        "dotdot": hostile(("../../../../../../../" + str(outside) + "/x", tarfile.REGTYPE, "",
                           b"x")),
        "hardlink out": hostile(("h", tarfile.LNKTYPE, "../../../../etc/passwd", b"")),
        "device": hostile(("null2", tarfile.CHRTYPE, "", b"")),
        "write through a link": hostile(("ln", tarfile.SYMTYPE, str(outside), b""),
                                        ("ln/x", tarfile.REGTYPE, "", b"x")),
    }
    for what, tar in refused.items():
        res = raw(ctr, "cp", "-", f"{box}:/data", input=tar)
        assert res.returncode == 1, what
        assert res.stderr.startswith(b"Error: ") and b"Traceback" not in res.stderr, what
    assert list(outside.iterdir()) == []
    # an absolute name lands under the destination, as Docker extracts it
    assert raw(ctr, "cp", "-", f"{box}:/data",
               input=hostile(("/abs.txt", tarfile.REGTYPE, "", b"abs"))).returncode == 0
    res = raw(ctr, "cp", f"{box}:/data/abs.txt", "-")
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as t:
        assert t.extractfile("abs.txt").read() == b"abs"
    # a symlink the tar makes is resolved in the container: the file lands in its /tmp
    tar = hostile(("tmplink", tarfile.SYMTYPE, "/tmp", b""),
                  ("tmplink/inside", tarfile.REGTYPE, "", b"in"))
    assert raw(ctr, "cp", "-", f"{box}:/data", input=tar).returncode == 0
    res = raw(ctr, "cp", f"{box}:/tmp/inside", "-")
    assert res.returncode == 0, res.stderr
    assert not Path("/tmp/inside").exists()


def test_a_read_only_container_refuses_copies_into_it(ctr, tmp_path):
    (tmp_path / "f").write_text("f")
    cid = ctr("run", "-d", "--read-only", "bb", "sleep", "300").stdout.strip()
    res = ctr("cp", str(tmp_path / "f"), f"{cid}:/", check=False)
    assert res.returncode == 1 and "read-only" in res.stderr, res.stderr
    ctr("stop", "-t", "0", cid)
    res = ctr("cp", str(tmp_path / "f"), f"{cid}:/", check=False)
    assert res.returncode == 1 and "read-only" in res.stderr, res.stderr
    ctr("cp", f"{cid}:/etc/passwd", str(tmp_path / "p"))  # reading is fine
    ctr("rm", "-f", cid)


def test_cp_into_a_created_container_then_start_it(ctr, tmp_path):
    """The usual way to hand a container its configuration: create, cp, start."""
    (tmp_path / "app.conf").write_text("setting=1\n")
    cid = ctr("create", "bb", "cat", "/etc/app.conf").stdout.strip()
    ctr("cp", str(tmp_path / "app.conf"), f"{cid}:/etc/")
    assert mounts_of(ctr) == []
    res = ctr("start", "-a", cid)
    assert res.stdout == "setting=1\n"
    ctr("rm", cid)
