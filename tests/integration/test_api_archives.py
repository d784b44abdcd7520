"""save/load, export, commit and push through the Docker Engine API, driven by the docker CLI
and docker-py: the same archives and images as our own CLI makes."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import pytest

from tests.integration.apiserver import CLIS, ApiServer
from tests.integration.conftest import module_ctr

ctr = module_ctr("apiarchive")


@pytest.fixture(scope="module")
def api(ctr, tmp_path_factory):
    server = ApiServer(ctr, tmp_path_factory.mktemp("api-archive"), shared=True).start()
    try:
        yield server
    finally:
        code, err = server.stop()
    assert code == 0, err


@pytest.mark.parametrize("cli", CLIS)
def test_docker_save_load_and_a_bad_archive(api, ctr, tmp_path, cli):
    out = tmp_path / "bb.tar"
    api.docker("save", "-o", str(out), "bb", cli=cli)
    with tarfile.open(out) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
    assert manifest[0]["RepoTags"] == ["bb:latest"]
    ctr("tag", "bb", "keep:1")  # the image stays while bb goes and comes back
    api.docker("rmi", "bb", cli=cli)
    res = api.docker("load", "-i", str(out), cli=cli)
    assert res.stdout.strip() == "Loaded image: bb:latest"
    assert ctr("images", "-q", "bb").stdout.strip()
    ctr("rmi", "keep:1")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(out.read_bytes()[:4096])
    before = ctr("images", "-q").stdout
    res = api.docker("load", "-i", str(bad), check=False, cli=cli)
    assert res.returncode == 1 and "invalid image archive" in res.stderr
    assert ctr("images", "-q").stdout == before
    res = api.docker("save", "-o", str(tmp_path / "x.tar"), "nosuch", check=False, cli=cli)
    assert res.returncode == 1 and "No such image" in res.stderr


def test_docker_export_and_commit(api, ctr, tmp_path):
    cid = api.docker("run", "-d", "--network", "none", "bb", "sh", "-c",
                     "echo api > /api-file; sleep 30").stdout.strip()
    try:
        for _ in range(100):
            if "/api-file" in ctr("diff", cid).stdout:
                break
        out = tmp_path / "fs.tar"
        api.docker("export", "-o", str(out), cid)
        with tarfile.open(out) as t:
            assert t.extractfile("api-file").read() == b"api\n"
        res = api.docker("commit", "-m", "via api", "-c", 'CMD ["cat", "/api-file"]', cid,
                         "apicommit:1")
        assert res.stdout.strip().startswith("sha256:")
    finally:
        api.docker("rm", "-f", cid)
    try:
        out = api.docker("run", "--rm", "--network", "none", "apicommit:1").stdout
        assert out == "api\n"
        info = json.loads(ctr("inspect", "apicommit:1").stdout)[0]
        assert info["Comment"] == "via api"
        # the exported filesystem back as an image: docker import
        res = api.docker("import", "-m", "imported via api", "-c", "ENV VIA=api",
                         str(tmp_path / "fs.tar"), "apiimport:1")
        assert res.stdout.strip().startswith("sha256:")
        out = api.docker("run", "--rm", "--network", "none", "apiimport:1", "sh", "-c",
                         "cat /api-file; echo $VIA").stdout
        assert out == "api\napi\n"
        res = api.docker("import", "-c", "FROB 1", str(tmp_path / "fs.tar"), check=False)
        assert res.returncode == 1 and "FROB is not a valid change command" in res.stderr
    finally:
        ctr("rmi", "apicommit:1", "apiimport:1", check=False)


def test_docker_push(api, ctr, registry):
    target = f"{registry.host}/apiarchive-push:v1"
    ctr("tag", "bb", target)
    try:
        res = api.docker("push", target)
        assert "v1: digest: sha256:" in res.stdout
        digest = res.stdout.split("digest: ")[1].split()[0]
        info = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                               f"docker://{target}"], capture_output=True, text=True,
                              check=False, timeout=60)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["Digest"] == digest
    finally:
        ctr("rmi", target, check=False)


def test_docker_py(api, ctr, registry):
    target = f"{registry.host}/apiarchive-py"
    script = r'''
import io, sys, tarfile, docker
c = docker.DockerClient(base_url=sys.argv[1])
data = b"".join(c.images.get("bb").save())
print(sorted(tarfile.open(fileobj=io.BytesIO(data)).getnames())[-3:])
print([i.tags for i in c.images.load(data)])
ctr = c.containers.create("bb", ["sh", "-c", "echo py > /py"], network_mode="none")
ctr.start(); ctr.wait()
fs = b"".join(ctr.export())
print("py" in tarfile.open(fileobj=io.BytesIO(fs)).getnames())
img = ctr.commit(repository="pycommit", tag="1", message="from py")
print(img.id.startswith("sha256:"), c.containers.run("pycommit:1", ["cat", "/py"],
      remove=True, network_mode="none").decode().strip())
ctr.remove()
c.images.remove("pycommit:1")
c.images.get("bb").tag(sys.argv[2], "py")
out = c.images.push(sys.argv[2], tag="py", stream=True, decode=True)
print([m["aux"]["Tag"] for m in out if "aux" in m])
'''
    try:
        res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}", target],
                             check=False, capture_output=True, text=True, timeout=120, cwd="/")
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            # saved by id (docker-py's default): no names, so no `repositories`
            "['index.json', 'manifest.json', 'oci-layout']", "[['bb:latest']]", "True",
            "True py", "['py']"]
    finally:
        ctr("rmi", f"{target}:py", check=False)
