"""/containers/{id}/archive (HEAD, GET, PUT) driven by real clients: `docker cp` of the docker
CLIs both ways, on running and stopped containers, and docker-py's put_archive/get_archive,
hostile tars included. The server and store are test_api_clients' module fixture."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration import test_api_clients as clients
from tests.integration.apiserver import CLIS, DEFAULT_CLI, SYSTEM_PYTHON

# the module's server and store, and its record of the containers it made (leak check)
api, _seen = clients.api, clients._seen


@pytest.fixture(scope="module", params=["running", "stopped"])
def box(request, api):
    cmd = "mkdir -p /data/sub && echo hello > /data/f && echo deep > /data/sub/g && " \
          "ln -s f /data/link && chown 1000:1000 /data/f"
    if request.param == "running":
        cid = api.docker("run", "-d", "bb", "sh", "-c", cmd + " && exec sleep 600").stdout.strip()
        for _ in range(100):
            if api.docker("exec", cid, "test", "-L", "/data/link", check=False).returncode == 0:
                break
    else:
        cid = api.docker("run", "-d", "bb", "sh", "-c", cmd).stdout.strip()
        api.docker("wait", cid)
    yield cid
    api.docker("rm", "-f", cid)


@pytest.mark.parametrize("cli", CLIS)
def test_docker_cp_both_ways(api, box, cli, tmp_path):
    api.docker("cp", f"{box}:/data", str(tmp_path / "out"), cli=cli)
    assert (tmp_path / "out" / "f").read_text() == "hello\n"
    assert (tmp_path / "out" / "sub" / "g").read_text() == "deep\n"
    assert (tmp_path / "out" / "link").is_symlink()
    api.docker("cp", "-L", f"{box}:/data/link", str(tmp_path / "followed"), cli=cli)
    assert (tmp_path / "followed").read_text() == "hello\n"
    # the CLI extracts without chown whatever -a says (moby's archive.CopyTo: NoLchown); the
    # ids are in the tar the server sent
    res = subprocess.run([cli, "cp", f"{box}:/data/f", "-"], env=api.env(), capture_output=True,
                         check=True, timeout=60)
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as t:
        assert (t.getmember("f").uid, t.getmember("f").mode) == (1000, 0o644)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("from the host")
    name = f"in-{Path(cli).parent.name}"
    api.docker("cp", str(src), f"{box}:/data/{name}", cli=cli)
    api.docker("cp", str(src / "d" / "x"), f"{box}:/data/sub/", cli=cli)
    os.chown(src / "d" / "x", 1234, 4321)
    api.docker("cp", "-a", str(src / "d" / "x"), f"{box}:/data/kept-{name}", cli=cli)
    res = subprocess.run([cli, "cp", f"{box}:/data", "-"], env=api.env(), capture_output=True,
                         check=True, timeout=60)
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as t:
        assert t.extractfile(f"data/{name}/d/x").read() == b"from the host"
        assert t.extractfile("data/sub/x").read() == b"from the host"
        assert t.getmember(f"data/{name}/d/x").uid == 0
        kept = t.getmember(f"data/kept-{name}")  # -a: copyUIDGID=1
        assert (kept.uid, kept.gid) == (1234, 4321)
    res = api.docker("cp", f"{box}:/nope", str(tmp_path / "n"), cli=cli, check=False)
    assert res.returncode == 1 and ("No such container:path" in res.stderr
                                    or "Could not find the file /nope" in res.stderr)
    res = api.docker("cp", str(src), f"{box}:/data/f", cli=cli, check=False)
    # (docker 28 may add the log line of its tar writer cut short, before or after)
    assert res.returncode == 1 and "cannot copy directory\n" in res.stderr


DOCKER_PY = r'''
import io, sys, tarfile, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.get(sys.argv[2])

def tar(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, link, data in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

print(ctr.put_archive("/data", tar(("py/hello.txt", tarfile.REGTYPE, "", b"from docker-py"))))
stream, stat = ctr.get_archive("/data/py/hello.txt")
with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
    print(t.extractfile("hello.txt").read().decode(), stat["name"], stat["size"])
stream, stat = ctr.get_archive("/data/link")
print(stat["name"], stat["linkTarget"], oct(stat["mode"] & 0o777))
for what, body in (("dotdot", tar(("../../../../escape", tarfile.REGTYPE, "", b"x"))),
                   ("through a link", tar(("out", tarfile.SYMTYPE, sys.argv[3], b""),
                                          ("out/x", tarfile.REGTYPE, "", b"x"))),
                   ("not a tar", b"garbage" * 200)):
    try:
        ctr.put_archive("/data", body)
        print(what, "accepted")
    except docker.errors.APIError as e:
        print(what, e.status_code)
for path in ("/nope", "/data/nope/x"):
    try:
        ctr.get_archive(path)
    except docker.errors.NotFound as e:
        print("404", path)
try:
    ctr.put_archive("/data/f", tar(("y", tarfile.REGTYPE, "", b"y")))
except docker.errors.APIError as e:
    print("put to a file", e.status_code)
'''


@pytest.mark.parametrize("python", [sys.executable, SYSTEM_PYTHON], ids=["pypi", "debian"])
def test_docker_py_put_and_get_archive(api, box, python, tmp_path):
    if python == SYSTEM_PYTHON and subprocess.run(
            [python, "-c", "import docker"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no python3-docker here")
    outside = tmp_path / "outside"
    outside.mkdir()
    res = subprocess.run([python, "-c", DOCKER_PY, f"unix://{api.sock}", box, str(outside)],
                         capture_output=True, text=True, timeout=120, cwd="/", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "True", "from docker-py hello.txt 14", "link /data/f 0o777",
        "dotdot 400", "through a link 400", "not a tar 400",
        "404 /nope", "404 /data/nope/x", "put to a file 400"]
    assert list(outside.iterdir()) == []


def test_a_read_only_root_is_403(api, tmp_path):
    cid = api.docker("run", "-d", "--read-only", "bb", "sleep", "600").stdout.strip()
    try:
        script = ("import io, sys, tarfile, docker\n"
                  "c = docker.DockerClient(base_url=sys.argv[1])\n"
                  "buf = io.BytesIO()\n"
                  "with tarfile.open(fileobj=buf, mode='w') as t:\n"
                  "    t.addfile(tarfile.TarInfo('empty'), io.BytesIO())\n"
                  "try:\n    c.containers.get(sys.argv[2]).put_archive('/', buf.getvalue())\n"
                  "except docker.errors.APIError as e:\n    print(e.status_code, e.explanation)")
        res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}", cid],
                             capture_output=True, text=True, timeout=60, check=False)
        assert res.stdout.startswith("403 ") and "read-only" in res.stdout, res.stderr
    finally:
        api.docker("rm", "-f", cid)


def test_a_client_that_goes_away_mid_tar_leaves_nothing(api):
    """A stopped container's root is mounted for a GET: a reader that disconnects after the
    first bytes ends the walk and the mount, and the server goes on."""
    import socket
    import time

    cid = api.docker("run", "-d", "bb", "sh", "-c",
                     "dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null").stdout.strip()
    api.docker("wait", cid)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(api.sock))
        s.sendall(f"GET /v1.41/containers/{cid}/archive?path=/big HTTP/1.1\r\n"
                  "Host: docker\r\n\r\n".encode())
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and b"X-Docker-Container-Path-Stat" in head
        s.close()
        store = str(api.pmd.root)
        for _ in range(100):
            if store not in Path("/proc/self/mountinfo").read_text():
                break
            time.sleep(0.1)
        assert store not in Path("/proc/self/mountinfo").read_text(), "the root stays mounted"
        res = subprocess.run([DEFAULT_CLI, "cp", f"{cid}:/etc/passwd", "-"], env=api.env(),
                             capture_output=True, check=True, timeout=60)
        assert res.stdout[:7] == b"passwd\0"
    finally:
        api.docker("rm", "-f", cid)


def _owned_tar(name: str, uid: int, gid: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid = 3, uid, gid
        t.addfile(info, io.BytesIO(b"ids"))
    return buf.getvalue()


@pytest.mark.parametrize("cli", CLIS)
def test_put_keeps_the_tars_owners_and_cp_a_gives_the_containers_user(api, cli):
    """As dockerd: a tar put into a container keeps its uid/gid (docker-py's put_archive,
    `docker cp -` of a tar); with copyUIDGID (`docker cp -a`) the files are the container's
    user's, named in its /etc/passwd, if it has one, and the tar's if it has none."""
    user = api.docker("run", "-d", "-u", "nobody", "bb", "sleep", "600").stdout.strip()
    root = api.docker("run", "-d", "bb", "sleep", "600").stdout.strip()
    try:
        script = ("import sys, docker\n"
                  "c = docker.DockerClient(base_url=sys.argv[1])\n"
                  "print(c.containers.get(sys.argv[2]).put_archive('/tmp', sys.stdin.buffer"
                  ".read()))")
        res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}", user],
                             input=_owned_tar("py", 1234, 5678), capture_output=True,
                             timeout=60, check=False)
        assert res.stdout == b"True\n", res.stderr
        for ctr, args, name in ((user, [], "plain"), (user, ["-a"], "a"), (root, ["-a"], "a")):
            res = subprocess.run([cli, "cp", *args, "-", f"{ctr}:/tmp"], env=api.env(),
                                 input=_owned_tar(name, 4321, 8765), capture_output=True,
                                 timeout=60, check=False)
            assert res.returncode == 0, res.stderr
        ids = api.docker("exec", user, "stat", "-c", "%n %u:%g", "/tmp/py", "/tmp/plain",
                         "/tmp/a", cli=cli).stdout
        assert ids == "/tmp/py 1234:5678\n/tmp/plain 4321:8765\n/tmp/a 65534:65534\n"
        ids = api.docker("exec", root, "stat", "-c", "%u:%g", "/tmp/a", cli=cli).stdout
        assert ids == "4321:8765\n"
    finally:
        api.docker("rm", "-f", user, root)
