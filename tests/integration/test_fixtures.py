"""The fixtures themselves, checked without the engine: if these fail, the bug is ours."""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest

from tests.integration import images as I
from tests.integration.conftest import HOST_ARCH


def get(url: str, headers: dict | None = None):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10)


def test_registry_serves_pushed_oci_image_byte_for_byte(registry, multi):
    digest, mt, body = I.registry_manifest(multi.ref)
    assert (digest, mt, body) == (multi.digest, I.OCI_MANIFEST, multi.image.manifest)
    layer = multi.image.layers[1]
    with get(f"{registry.url}/v2/{multi.repo}/blobs/{layer.digest}") as r:
        assert r.read() == layer.blob
    assert I.blob_path(registry.storage, layer.digest).read_bytes() == layer.blob


def test_index_keeps_both_platforms_and_the_attestation(oci_index):
    _, mt, body = I.registry_manifest(oci_index.ref)
    plats = [(m["platform"]["os"], m["platform"]["architecture"])
             for m in json.loads(body)["manifests"]]
    assert mt == I.OCI_INDEX
    assert plats == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")]
    assert oci_index.platform("amd64").config_digest != oci_index.platform("arm64").config_digest
    assert oci_index.image.arch == HOST_ARCH


def test_docker_list_instances_keep_our_configs(docker_list):
    _, _, body = I.registry_manifest(docker_list.ref)
    for m in json.loads(body)["manifests"]:
        _, mt, man = I.registry_manifest(f"{docker_list.name}@{m['digest']}")
        assert mt == I.DOCKER_MANIFEST
        want = docker_list.platform(m["platform"]["architecture"])
        assert json.loads(man)["config"]["digest"] == want.config_digest
        assert [x["digest"] for x in json.loads(man)["layers"]] == [
            lay.digest for lay in want.layers]


def test_compressed_layers_keep_their_media_types(compressed):
    for how, p in compressed.items():
        man = json.loads(I.registry_manifest(p.ref)[2])
        assert man["layers"][0]["mediaType"] == I.OCI_LAYER[how]
        assert man["layers"][0]["digest"] == p.image.layers[0].digest


def test_chain_ids_follow_the_image_spec():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib
    assert I.chain_ids([a]) == [a]
    assert I.chain_ids([a, b])[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_basic_registry_requires_credentials(registry_basic, publish, base_layer):
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"{registry_basic.url}/v2/")
    assert e.value.code == 401
    p = publish(I.build_image([base_layer]), "private/basic", registry=registry_basic)
    assert I.registry_manifest(p.ref, creds=registry_basic.creds)[0] == p.digest


def test_token_registry_accepts_signed_tokens_and_refuses_anonymous(registry_token, publish,
                                                                     base_layer):
    p = publish(I.build_image([base_layer]), "private/token", registry=registry_token)
    assert I.registry_manifest(p.ref, creds=registry_token.creds)[0] == p.digest
    ts = registry_token.token_server
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"{ts.realm}?service={ts.service}&scope=repository:private/token:pull")
    assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as e:
        I.registry_manifest(p.ref, creds=f"{registry_token.user}:wrong")
    assert e.value.code == 401


def _blob_url(proxy, p):
    return f"http://{proxy.host}/v2/{p.repo}/blobs/{p.image.layers[0].digest}"


def test_proxy_cut_once_then_resume_with_range(registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "cut-once", cut_after=10000)
    layer = single.image.layers[0]
    with get(_blob_url(proxy, single)) as r, pytest.raises(http.client.IncompleteRead) as e:
        r.read()
    got = e.value.partial
    assert len(got) == 10000
    with get(_blob_url(proxy, single), {"Range": f"bytes={len(got)}-"}) as r:
        assert r.status == 206
        assert got + r.read() == layer.blob
    assert [h.faulted for h in proxy.blob_gets()] == [True, False]
    assert proxy.blob_gets()[1].range == "bytes=10000-"


def test_proxy_cut_always(registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "cut-always", cut_after=5000)
    for _ in range(2):
        with get(_blob_url(proxy, single)) as r, pytest.raises(http.client.IncompleteRead) as e:
            r.read()
        assert len(e.value.partial) == 5000
    # resuming past the cut gets nothing more
    with get(_blob_url(proxy, single), {"Range": "bytes=5000-"}) as r, pytest.raises(
            http.client.IncompleteRead) as e:
        r.read()
    assert e.value.partial == b""


@pytest.mark.parametrize("mode,status,count", [("503x2", 503, 2), ("429", 429, 1)])
def test_proxy_error_modes(registry, single, faulty_proxy, mode, status, count):
    proxy = faulty_proxy(registry, mode)
    for _ in range(count):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(f"http://{proxy.host}/v2/")
        assert e.value.code == status
    if mode == "429":
        assert e.value.headers["Retry-After"] == "1"
    with get(f"http://{proxy.host}/v2/{single.repo}/manifests/{single.tag}",
             {"Accept": I.MANIFEST_ACCEPT}) as r:
        assert r.read() == single.image.manifest


def materialize(entries: list[I.Entry], dest) -> None:
    """Write by hand what an overlay-ready extraction of entries must look like."""
    import os
    import stat

    for rel, e in I.expected_tree(entries).items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if e.kind == "whiteout":
            os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            continue
        if e.kind == "symlink":
            os.symlink(e.target, p)
            continue
        if e.kind == "hardlink":
            os.link(dest / e.target, p)
            continue
        if e.kind == "dir":
            p.mkdir(exist_ok=True)
            if e.target == "opaque":
                os.setxattr(p, "trusted.overlay.opaque", b"y")
        else:
            p.write_bytes(e.data)
        os.chown(p, e.uid, e.gid)
        os.chmod(p, e.mode)


def test_check_diff_accepts_the_right_tree_and_reports_each_difference(tmp_path):
    import os

    entries = I.multi_entries()[0]
    materialize(entries, tmp_path)
    assert I.check_diff(tmp_path, entries) == []
    os.chmod(tmp_path / "usr/bin/suid", 0o755)
    os.chown(tmp_path / "home/user/file", 0, 0)
    os.removexattr(tmp_path / "etc/conf.d", "trusted.overlay.opaque")
    os.unlink(tmp_path / "usr/share/data/link")
    (tmp_path / "usr/share/data/link").write_bytes(b"shared inode\n")
    os.unlink(tmp_path / "etc/motd")
    (tmp_path / "etc/.wh.motd").touch()
    problems = "\n".join(I.check_diff(tmp_path, entries))
    for what in ("usr/bin/suid: mode", "home/user/file: owner", "etc/conf.d: no trusted",
                 "usr/share/data/link: not a hardlink", "etc/motd: missing",
                 "etc/.wh.motd: whiteout file"):
        assert what in problems, problems


def test_leak_helpers_see_processes_mounts_and_debris(tmp_path):
    import json as _json
    import os
    import subprocess

    from tests.integration import servers as S
    from tests.integration import storecheck as sc

    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert proc.pid in S.children_of(os.getpid())
    finally:
        S.kill_tree(proc)
    assert proc.pid not in S.children_of(os.getpid())

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        assert S.mounts_under(tmp_path) == [str(mnt)]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert S.mounts_under(tmp_path) == []

    root = tmp_path / "store"
    (root / "staging").mkdir(parents=True)
    assert sc.leftovers(root) == []  # an empty staging dir is fine
    (root / "staging" / "abc.123").mkdir()
    (root / "layers" / "bb").mkdir(parents=True)
    (root / "images" / "aa").mkdir(parents=True)
    (root / "images" / "aa" / ".images.json.1234.tmp").touch()
    assert sorted(sc.leftovers(root)) == ["images/aa/.images.json.1234.tmp", "staging"]
    (root / "images" / "aa" / "images.json").write_text(_json.dumps({"layer": "sha256:cc"}))
    bad = sc.inconsistencies(root)
    assert any("layers/bb" in b for b in bad) and any("layer sha256:cc" in b for b in bad)


def test_proxy_tamper_manifest(registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "tamper-manifest")
    with get(f"http://{proxy.host}/v2/{single.repo}/manifests/{single.digest}",
             {"Accept": I.MANIFEST_ACCEPT}) as r:
        body = r.read()
    assert body == single.image.manifest + b"\n"
    assert json.loads(body) == json.loads(single.image.manifest)
