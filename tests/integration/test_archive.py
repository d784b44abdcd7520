"""save/load, export/import, commit: images in and out of tar files, as a user of Docker checks
them (the image runs, skopeo reads the archive, a hostile archive changes nothing).

One store per module with busybox as `bb`; other stores are fresh per test.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration.conftest import module_ctr
from tests.integration.servers import wait_until

ctr = module_ctr("archive")


def _layers(root: Path) -> set[str]:
    d = root / "layers"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def _store_state(run) -> tuple[str, set[str], list[str]]:
    staging = run.root / "staging"
    return (run("images", "-q", "--no-trunc").stdout, _layers(run.root),
            sorted(os.listdir(staging)) if staging.exists() else [])


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def saved(ctr, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "bb.tar"
    ctr("save", "-o", str(out), "bb")
    return out


def test_save_writes_docker_and_oci_forms(saved):
    files = _members(saved)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["bb:latest"]
    config = json.loads(files[manifest[0]["Config"]])
    assert config["config"]["Cmd"] == ["sh", "-c", "echo default"]
    assert len(manifest[0]["Layers"]) == len(config["rootfs"]["diff_ids"]) == 1
    layer = files[manifest[0]["Layers"][0]]
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == config["rootfs"]["diff_ids"][0]
    index = json.loads(files["index.json"])
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == \
        "docker.io/library/bb:latest"
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(files["repositories"])["bb"]["latest"]


def test_save_refuses_a_terminal_and_a_missing_image(ctr, tmp_path):
    res = ctr("save", "nosuchimage", "-o", str(tmp_path / "x.tar"), check=False)
    assert res.returncode == 1 and "No such image: nosuchimage" in res.stderr
    assert not (tmp_path / "x.tar").exists()


def test_save_rmi_load_run(saved, pmd):
    res = pmd("load", "-i", str(saved))
    assert res.stdout == "Loaded image: bb:latest\n"
    image_id = pmd("images", "-q", "--no-trunc", "bb").stdout.strip()
    pmd("rmi", "bb")
    assert pmd("images", "-q").stdout == ""
    with open(saved, "rb") as f:  # from stdin too
        res = subprocess.run(pmd.argv("load", "-q"), stdin=f, capture_output=True, text=True,
                             check=False,
                             env=pmd.env())
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Loaded image: bb:latest\n"
    assert pmd("images", "-q", "--no-trunc", "bb").stdout.strip() == image_id
    out = pmd("run", "--rm", "--network", "none", "bb", "sh", "-c", "echo ran $FROM_IMAGE")
    assert out.stdout == "ran yes\n"
    # a second save of what was loaded is the same archive's image (same id, same layers)
    again = pmd.root.parent / "again.tar"
    pmd("save", "-o", str(again), "bb")
    a, b = _members(saved), _members(again)
    assert json.loads(a["manifest.json"]) == json.loads(b["manifest.json"])


def test_skopeo_reads_our_save(saved):
    res = subprocess.run(["skopeo", "inspect", f"docker-archive:{saved}"], capture_output=True,
                         text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["RepoTags"] == [] or "bb" in json.dumps(info)
    assert len(info["Layers"]) == 1
    res = subprocess.run(["skopeo", "inspect", f"oci-archive:{saved}:latest"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stderr


def test_we_load_skopeos_docker_archive(pmd, publish, tmp_path):
    pushed = publish(I.busybox_image(), "archive-skopeo", "v2")
    out = tmp_path / "sk.tar"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{pushed.host}/{pushed.repo}:{pushed.tag}",
                    f"docker-archive:{out}:skopeo/bb:v2"], check=True, timeout=120)
    assert pmd("load", "-i", str(out)).stdout == "Loaded image: skopeo/bb:v2\n"
    res = pmd("run", "--rm", "--network", "none", "skopeo/bb:v2", "echo", "hello")
    assert res.stdout == "hello\n"
    # and skopeo's OCI archive (index.json, no manifest.json)
    oci = tmp_path / "sk-oci.tar"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{pushed.host}/{pushed.repo}:{pushed.tag}",
                    f"oci-archive:{oci}:docker.io/skopeo/oci:v3"], check=True, timeout=120)
    assert pmd("load", "-i", str(oci)).stdout == "Loaded image: skopeo/oci:v3\n"


# ---- hostile archives ----------------------------------------------------------------------

def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


def _archive(layer: bytes, diff_id: str | None = None, layer_name: str | None = None,
             extra=(), below: tuple[bytes, ...] = ()) -> bytes:
    """A docker-archive of one image: the layers `below` (good ones) then `layer`, which
    claims diff_id and is stored as layer_name (not at all if layer_name is given)."""
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in below]
    diff_ids.append(diff_id or "sha256:" + hashlib.sha256(layer).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cfg = hashlib.sha256(config).hexdigest()
    names = ["blobs/sha256/" + hashlib.sha256(b).hexdigest() for b in below]
    names.append(layer_name or "blobs/sha256/" + hashlib.sha256(layer).hexdigest())
    manifest = json.dumps([{"Config": f"blobs/sha256/{cfg}", "RepoTags": ["evil:1"],
                            "Layers": names}]).encode()
    entries = [_file(f"blobs/sha256/{cfg}", config), *extra]
    entries += [_file(n, b) for n, b in zip(names, below)]
    if layer_name is None:
        entries.append(_file(names[-1], layer))
    entries.append(_file("manifest.json", manifest))
    return _tar(entries)


def _layer_tar(entries) -> bytes:
    return _tar(entries)


GOOD_LAYER = _layer_tar([_file("hello", b"hi\n")])


def _hostile_cases(saved: Path) -> dict[str, bytes]:
    evil_layer = _layer_tar([_file("../escape", b"x")])
    data = saved.read_bytes()
    return {
        "dotdot-member": _tar([_file("../manifest.json", b"[]")]),
        "absolute-member": _tar([_file("/etc/evil", b"x")]),
        "symlink-escape": _archive(GOOD_LAYER, layer_name="blobs/sha256/x", extra=[
            _link("blobs/sha256/x", "../../../../etc/passwd")]),
        "dotdot-in-layer": _archive(evil_layer),
        "wrong-diff-id": _archive(GOOD_LAYER, diff_id="sha256:" + "0" * 64),
        # the first layer is registered before the second fails: it goes again
        "second-layer-bad": _archive(_layer_tar([_file("second", b"2")]),
                                     diff_id="sha256:" + "2" * 64,
                                     below=(_layer_tar([_file("first", b"1")]),)),
        "wrong-blob-name": _archive(GOOD_LAYER, layer_name="blobs/sha256/" + "1" * 64, extra=[
            _file("blobs/sha256/" + "1" * 64, GOOD_LAYER)]),
        "too-deep": _archive(GOOD_LAYER, below=tuple(
            _layer_tar([_file(f"f{i}", b"x")]) for i in range(125))),
        "truncated": data[:len(data) // 2],
        "not-a-tar": b"hello world\n" * 100,
        "device-member": _tar([(_device("manifest.json"), None)]),
    }


@pytest.mark.parametrize("case", ["dotdot-member", "absolute-member", "symlink-escape",
                                  "dotdot-in-layer", "wrong-diff-id", "second-layer-bad",
                                  "wrong-blob-name", "too-deep",
                                  "truncated", "not-a-tar", "device-member"])
def test_a_hostile_archive_is_refused_and_changes_nothing(ctr, saved, tmp_path, case):
    path = tmp_path / f"{case}.tar"
    path.write_bytes(_hostile_cases(saved)[case])
    before = _store_state(ctr)
    res = ctr("load", "-i", str(path), check=False)
    assert res.returncode == 1, res
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert _store_state(ctr) == before
    assert not Path("/escape").exists() and not (tmp_path.parent / "escape").exists()


def test_a_good_handmade_archive_loads(ctr, tmp_path):
    path = tmp_path / "good.tar"
    path.write_bytes(_archive(GOOD_LAYER))
    assert ctr("load", "-i", str(path)).stdout == "Loaded image: evil:1\n"
    ctr("rmi", "evil:1")


# ---- export / import -----------------------------------------------------------------------

def test_export_then_import_round_trip(ctr, tmp_path):
    cid = ctr("create", "--network", "none", "bb", "true").stdout.strip()
    try:
        out = tmp_path / "fs.tar"
        ctr("export", "-o", str(out), cid)
    finally:
        ctr("rm", cid)
    with tarfile.open(out) as t:
        names = set(t.getnames())
    assert "bin/busybox" in names and "bin/sh" in names
    res = ctr("import", "-m", "from a tar", "-c", 'CMD ["sh", "-c", "echo imported $X"]',
              "-c", "ENV X=yes", "-c", "WORKDIR /bin", str(out), "imported:1")
    image_id = res.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    try:
        assert ctr("run", "--rm", "--network", "none", "imported:1").stdout == "imported yes\n"
        assert ctr("run", "--rm", "--network", "none", "imported:1", "pwd").stdout == "/bin\n"
        info = json.loads(ctr("inspect", "imported:1").stdout)[0]
        assert info["Id"] == image_id and info["Comment"] == "from a tar"
        assert len(info["RootFS"]["Layers"]) == 1
        # from stdin, and the same tar gives the same layer
        with open(out, "rb") as f:
            res = subprocess.run(ctr.argv("import", "-", "imported:2"), stdin=f, text=True,
                                 capture_output=True, env=ctr.env(), check=False)
        assert res.returncode == 0, res.stderr
        info2 = json.loads(ctr("inspect", "imported:2").stdout)[0]
        assert info2["RootFS"]["Layers"] == info["RootFS"]["Layers"]
    finally:
        ctr("rmi", "imported:1", "imported:2", check=False)


def _running(ctr, script: str, path: str) -> str:
    """A detached container running script, once `path` is among its changes."""
    cid = ctr("run", "-d", "--network", "none", "bb", "sh", "-c", script).stdout.strip()
    wait_until(lambda: path in ctr("diff", cid).stdout, timeout=20)
    return cid


def test_export_of_a_running_container_and_bad_input(ctr, tmp_path):
    cid = _running(ctr, "echo changed > /marker; rm /bin/vi; sleep 30", "/marker")
    try:
        out = tmp_path / "run.tar"
        ctr("export", "-o", str(out), cid)
        files = _members(out)
        assert files["marker"] == b"changed\n"
        with tarfile.open(out) as t:
            assert "bin/vi" not in t.getnames()
            assert not [n for n in t.getnames() if ".wh." in n]
    finally:
        ctr("rm", "-f", cid)
    res = ctr("export", "nosuch", "-o", str(tmp_path / "x.tar"), check=False)
    assert res.returncode == 1 and "No such container" in res.stderr
    res = ctr("import", str(tmp_path / "missing.tar"), check=False)
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    res = ctr("import", "-c", "FROB x", str(out), check=False)
    assert res.returncode == 1 and "FROB is not a valid change command" in res.stderr
    bad = tmp_path / "bad.tar"
    bad.write_bytes(_layer_tar([_file("../../escape", b"x")]))
    before = _store_state(ctr)
    res = ctr("import", str(bad), "bad:1", check=False)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert _store_state(ctr) == before


# ---- commit --------------------------------------------------------------------------------

def test_commit_keeps_changes_and_deletions(ctr):
    cid = ctr("create", "--network", "none", "-e", "COMMITTED=1", "bb", "sh", "-c",
              "echo new > /added; rm /bin/vi; rm -rf /etc; mkdir /etc; "
              "echo only > /etc/only").stdout.strip()
    ctr("start", "-a", cid)
    try:
        res = ctr("commit", "-m", "my change", "-a", "me <me@example.com>",
                  "-c", 'CMD ["cat", "/added"]', cid, "committed:1")
        image_id = res.stdout.strip()
        assert image_id.startswith("sha256:")
    finally:
        ctr("rm", cid)
    try:
        assert ctr("run", "--rm", "--network", "none", "committed:1").stdout == "new\n"
        res = ctr("run", "--rm", "--network", "none", "committed:1", "sh", "-c",
                  "ls /bin/vi; echo $COMMITTED; ls /etc")
        assert "/bin/vi" in res.stderr  # ls: /bin/vi: No such file or directory
        words = res.stdout.split()
        assert words[0] == "1"
        # /etc, removed and made again, is opaque: the image's passwd is gone (the rest are
        # the engine's mount points)
        assert set(words[1:]) == {"only", "hostname", "hosts", "resolv.conf"}
        info = json.loads(ctr("inspect", "committed:1").stdout)[0]
        assert info["Comment"] == "my change" and info["Author"] == "me <me@example.com>"
        assert len(info["RootFS"]["Layers"]) == 2
        base = json.loads(ctr("inspect", "bb").stdout)[0]
        assert info["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]
        hist = json.loads(ctr("history", "--format", "{{json .}}", "--no-trunc",
                              "committed:1").stdout.splitlines()[0])
        assert hist["Comment"] == "my change"
    finally:
        ctr("rmi", "committed:1", check=False)


def test_commit_of_a_running_container_pauses_it(ctr):
    cid = _running(ctr, "echo live > /live; sleep 30", "/live")
    try:
        ctr("commit", cid, "committed:2")
        state = json.loads(ctr("inspect", cid).stdout)[0]["State"]
        assert state["Status"] == "running" and not state["Paused"]
        res = ctr("run", "--rm", "--network", "none", "committed:2", "cat", "/live")
        assert res.stdout == "live\n"
    finally:
        ctr("rm", "-f", cid)
        ctr("rmi", "committed:2", check=False)
    res = ctr("commit", "nosuch", check=False)
    assert res.returncode == 1 and "No such container" in res.stderr


# ---- push ----------------------------------------------------------------------------------

def test_push_then_skopeo_inspects_and_a_fresh_store_pulls_and_runs(ctr, registry, pmd):
    target = f"{registry.host}/archive-push:v1"
    ctr("tag", "bb", target)
    res = ctr("push", target)
    lines = res.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/archive-push]"
    assert any(line.endswith(": Pushed") for line in lines)
    tag, _, digest, _, size = lines[-1].split()
    assert tag == "v1:" and digest.startswith("sha256:") and int(size) > 0
    info = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["Digest"] == digest and len(data["Layers"]) == 1
    assert "FROM_IMAGE=yes" in data["Env"]
    repo_digests = json.loads(ctr("inspect", target).stdout)[0]["RepoDigests"]
    assert f"{registry.host}/archive-push@{digest}" in repo_digests
    # the same again: every blob is there already, and the manifest is the same
    again = ctr("push", target).stdout.splitlines()
    assert any(line.endswith(": Layer already exists") for line in again)
    assert again[-1].split()[2] == digest
    # another repository of the same registry: the blobs are mounted from the first one
    other = f"{registry.host}/archive-push2:v1"
    ctr("tag", target, other)
    lines = ctr("push", other).stdout.splitlines()
    assert any(line.endswith(": Mounted from archive-push") for line in lines), lines
    assert lines[-1].split()[2] == digest
    ctr("rmi", other)
    pmd("pull", "-q", target)
    out = pmd("run", "--rm", "--network", "none", target, "sh", "-c", "echo $FROM_IMAGE")
    assert out.stdout == "yes\n"
    res = ctr("push", f"{registry.host}/archive-push:nosuchtag", check=False)
    assert res.returncode == 1
    assert "An image does not exist locally with the tag" in res.stderr
    ctr("rmi", target)


# ---- the layer tars themselves -------------------------------------------------------------

def test_a_layer_tar_says_whiteouts_opaque_dirs_links_and_xattrs_and_comes_back_the_same(
        tmp_path):
    from pyminidocker.image.archive import Ingest
    from pyminidocker.image.tarwrite import tar_layer
    from pyminidocker.store import Store

    upper = tmp_path / "upper"
    (upper / "opq").mkdir(parents=True)
    (upper / "file").write_bytes(b"content\n")
    os.setxattr(upper / "file", "user.pmd-test", b"kept")
    os.link(upper / "file", upper / "hard")
    os.symlink("/bin/busybox", upper / "sym")
    os.mknod(upper / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # overlayfs's whiteout
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq" / "inner").write_bytes(b"x")
    os.mkfifo(upper / "fifo")
    out = tmp_path / "layer.tar"
    digest = tar_layer(str(upper), str(out))
    assert digest == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    with tarfile.open(out) as t:
        members = {m.name.rstrip("/"): m for m in t.getmembers()}
    assert sorted(members) == [".wh.gone", "fifo", "file", "hard", "opq", "opq/.wh..wh..opq",
                               "opq/inner", "sym"]
    assert members["hard"].islnk() and members["hard"].linkname == "file"
    assert members["sym"].issym() and members["sym"].linkname == "/bin/busybox"
    assert members["fifo"].isfifo()
    assert members["file"].pax_headers.get("SCHILY.xattr.user.pmd-test") == "kept"
    assert not any("overlay" in k for m in members.values() for k in m.pax_headers)

    store = Store(tmp_path / "store")
    store.ensure()
    diff_id, chain = Ingest(store).layer(str(out), None)
    assert diff_id == chain == digest
    diff = Path(store.layers.diff_path(chain))
    st = os.lstat(diff / "gone")
    assert st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0
    assert os.getxattr(diff / "opq", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(diff / "file", "user.pmd-test") == b"kept"
    assert os.stat(diff / "hard").st_ino == os.stat(diff / "file").st_ino
    # the same layer tars to the same bytes again: what save writes of a loaded image keeps
    # its diff-ids, so its id
    assert tar_layer(str(diff), str(tmp_path / "again.tar")) == digest


def test_save_to_stdout_of_a_repository_and_by_id_and_a_gzipped_load(ctr, pmd, tmp_path):
    import gzip

    ctr("tag", "bb", "multi:a")
    ctr("tag", "bb", "multi:b")
    try:
        out = tmp_path / "multi.tar"
        with open(out, "wb") as f:
            res = subprocess.run(ctr.argv("save", "multi"), stdout=f, stderr=subprocess.PIPE,
                                 env=ctr.env(), check=False)
        assert res.returncode == 0, res.stderr
        manifest = json.loads(_members(out)["manifest.json"])
        assert [sorted(m["RepoTags"]) for m in manifest] == [["multi:a", "multi:b"]]
        image_id = ctr("images", "-q", "--no-trunc", "bb").stdout.strip()
        by_id = tmp_path / "id.tar"
        ctr("save", "-o", str(by_id), image_id[7:19])  # a short id
        assert json.loads(_members(by_id)["manifest.json"])[0]["RepoTags"] is None
        assert "repositories" not in _members(by_id)
    finally:
        ctr("rmi", "multi:a", "multi:b")
    gz = tmp_path / "multi.tar.gz"
    gz.write_bytes(gzip.compress(out.read_bytes()))
    assert pmd("load", "-i", str(gz)).stdout == "Loaded image: multi:a\nLoaded image: multi:b\n"
    # a pulled image's layers are tarred anew (see archive.py): its id is the archive's
    config = json.loads(_members(by_id)["manifest.json"])[0]["Config"]
    saved_id = "sha256:" + config.rsplit("/", 1)[1]
    assert pmd("load", "-i", str(by_id)).stdout == f"Loaded image ID: {saved_id}\n"


def test_push_to_a_registry_with_basic_auth_needs_login(ctr, registry_basic):
    host = registry_basic.host
    target = f"{host}/archive-auth:v1"
    ctr("tag", "bb", target)
    try:
        res = ctr("push", target, check=False)
        assert res.returncode == 1 and res.stderr.count("\n") == 1
        assert "unauthorized" in res.stderr or "authentication required" in res.stderr
        ctr("login", "-u", registry_basic.user, "-p", registry_basic.password, host)
        out = ctr("push", target).stdout
        assert "v1: digest: sha256:" in out
        info = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds",
                               f"{registry_basic.user}:{registry_basic.password}",
                               f"docker://{target}"], capture_output=True, text=True,
                              check=False, timeout=60)
        assert info.returncode == 0, info.stderr
    finally:
        ctr("logout", host, check=False)
        ctr("rmi", target, check=False)
