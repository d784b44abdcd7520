"""`pyminidocker pull` against a real registry: output, store layout, layer contents,
platforms, formats, compressions, layer sharing, concurrency, digests and moved tags."""
from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from tests.integration import images as I
from tests.integration import storecheck as sc
from tests.integration.conftest import HOST_ARCH, OTHER_ARCH


def lines(out: str) -> list[str]:
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def assert_registered(root, pushed, image: I.Image | None = None, digest: str | None = None,
                      oci_media_types: bool = True):
    """The image is in the store as the contract says: record, big data, every layer."""
    img = image or pushed.image
    rec = sc.image_record(root, img.id_hex)
    assert rec["id"].removeprefix("sha256:") == img.id_hex
    assert rec["layer"] == img.top_layer
    assert pushed.ref in rec["names"]
    assert f"{pushed.name}@{digest or pushed.digest}" in rec["names"]
    cfg_key = img.config_digest
    assert cfg_key in rec["big-data-names"] and "manifest" in rec["big-data-names"]
    cfg_file = sc.image_dir(root, img.id_hex) / ("=" + base64.b64encode(cfg_key.encode()).decode())
    assert cfg_file.read_bytes() == img.config
    assert rec["big-data-sizes"][cfg_key] == len(img.config)
    assert rec["big-data-digests"][cfg_key] == img.config_digest
    manifest = (sc.image_dir(root, img.id_hex) / "manifest").read_bytes()
    assert rec["big-data-digests"]["manifest"] == I.sha256(manifest)
    assert rec["big-data-sizes"]["manifest"] == len(manifest)
    assert rec["created"] and rec["loaded"]
    parent = None
    for layer, chain in zip(img.layers, img.chain_ids):
        d = sc.layer_dir(root, chain)
        assert {"diff", "work", "merged", "layer.json"} <= set(os.listdir(d)), d
        lrec = sc.layer_record(root, chain)
        assert sc.field(lrec, "parent") in ((parent,) if parent else (None, ""))
        assert sc.field(lrec, "diff-id") == layer.diff_id
        assert sc.field(lrec, "compressed-digest") == layer.digest
        assert sc.field(lrec, "compressed-size") == layer.size
        assert sc.field(lrec, "uncompressed-size") == len(layer.tar)
        if oci_media_types:
            assert sc.field(lrec, "media-type") == layer.media_type
        parent = chain


def test_pull_prints_docker_lines_and_registers_the_image(pmd, root, single):
    out = pmd("pull", single.ref).stdout
    ls = lines(out)
    layer = single.image.layers[0]
    assert f"{layer.short}: Pull complete" in ls
    assert f"Digest: {single.digest}" in ls
    assert f"Status: Downloaded newer image for {single.ref}" in ls
    assert ls[-1] == single.ref
    assert_registered(root, single)
    rec = sc.image_record(root, single.image.id_hex)
    manifest = (sc.image_dir(root, single.image.id_hex) / "manifest").read_bytes()
    assert manifest == single.image.manifest
    assert rec["digest"] == single.digest


def test_pull_quiet_prints_only_the_reference_as_docker(pmd, single):
    # docker pull -q prints the reference it pulled (issue 10, point 5)
    assert pmd("pull", "-q", single.ref).stdout == f"{single.ref}\n"


def test_pull_extracts_the_base_rootfs(pmd, root, single):
    pmd("pull", "-q", single.ref)
    diff = sc.diff_dir(root, single.image.top_layer)
    assert (diff / "bin/busybox").read_bytes() == I.BUSYBOX.read_bytes()
    assert os.readlink(diff / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.stat(diff / "tmp").st_mode) == 0o1777
    assert I.check_diff(diff, single.image.layers[0].entries) == []


class TestMultiLayer:
    """The layers of `multi` as a user would inspect them in each layer's diff/."""

    @pytest.fixture
    def diffs(self, pmd, root, multi):
        pmd("pull", "-q", multi.ref)
        return [sc.diff_dir(root, c) for c in multi.image.chain_ids]

    def test_every_layer_matches_its_tar(self, diffs, multi):
        for diff, layer in zip(diffs, multi.image.layers):
            assert I.check_diff(diff, layer.entries) == [], diff

    def test_whiteout_is_a_0_0_char_device(self, diffs):
        st = os.lstat(diffs[1] / "etc/motd")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert not (diffs[1] / "etc/.wh.motd").exists()

    def test_opaque_dir_has_the_xattr_and_only_new_files(self, diffs):
        d = diffs[1] / "etc/conf.d"
        assert os.getxattr(d, "trusted.overlay.opaque") == b"y"
        assert sorted(os.listdir(d)) == ["new.conf"]

    def test_hardlink_shares_the_inode(self, diffs):
        a, b = (os.lstat(diffs[1] / f"usr/share/data/{n}") for n in ("orig", "link"))
        assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2

    def test_symlink_keeps_its_target(self, diffs):
        assert os.readlink(diffs[1] / "usr/bin/tool") == "/bin/busybox"

    def test_setuid_bit_is_kept(self, diffs):
        st = os.lstat(diffs[1] / "usr/bin/suid")
        assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_uid == 0

    def test_uid_1000_owns_its_files(self, diffs):
        for rel, mode in (("home/user", 0o750), ("home/user/file", 0o640)):
            st = os.lstat(diffs[1] / rel)
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, mode)

    def test_layers_chain_by_chain_id(self, diffs, root, multi):
        assert_registered(root, multi)
        assert sc.layer_ids(root) == {I.hexof(c) for c in multi.image.chain_ids}


@pytest.mark.parametrize("fixture", ["oci_index", "docker_list"])
@pytest.mark.parametrize("platform", [None, f"linux/{OTHER_ARCH}"])
def test_pull_from_a_list_picks_the_platform(request, pmd, root, fixture, platform):
    pushed = request.getfixturevalue(fixture)
    want = pushed.platform(platform.split("/")[1] if platform else HOST_ARCH)
    args = ["pull", *(["--platform", platform] if platform else []), pushed.ref]
    ls = lines(pmd(*args).stdout)
    assert f"Digest: {pushed.digest}" in ls  # Docker prints the list's digest
    assert sc.image_ids(root) == {want.id_hex}
    diff = sc.diff_dir(root, want.top_layer)
    assert (diff / "etc/arch").read_text() == f"{want.arch}\n"
    inspect = json.loads(pmd("inspect", pushed.ref).stdout)[0]
    assert inspect["Architecture"] == want.arch
    assert inspect["RepoDigests"] == [f"{pushed.name}@{pushed.digest}"]


def test_pull_docker_schema2_manifest(pmd, root, v2s2):
    ls = lines(pmd("pull", v2s2.ref).stdout)
    assert f"Digest: {v2s2.digest}" in ls
    assert_registered(root, v2s2, oci_media_types=False)
    lrec = sc.layer_record(root, v2s2.image.top_layer)
    assert sc.field(lrec, "media-type") == "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_pull_layer_compression(pmd, root, compressed, how):
    pushed = compressed[how]
    pmd("pull", pushed.ref)
    assert_registered(root, pushed)
    layer = pushed.image.layers[0]
    assert I.check_diff(sc.diff_dir(root, layer.diff_id), layer.entries) == []


def test_repull_is_up_to_date_and_downloads_nothing(pmd, registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "pass")
    ref = f"{proxy.host}/{single.repo}:{single.tag}"
    pmd("pull", ref)
    assert len(proxy.blob_gets()) == 2  # config and the one layer
    before = len(proxy.hits)
    ls = lines(pmd("pull", ref).stdout)
    assert f"Status: Image is up to date for {ref}" in ls
    assert not any("Pull complete" in ln or "Downloading" in ln for ln in ls)
    assert [h for h in proxy.hits[before:] if "/blobs/" in h.path] == []


def test_shared_base_layer_already_exists(pmd, root, single, sharing):
    pmd("pull", single.ref)
    ls = lines(pmd("pull", sharing.ref).stdout)
    base, top = sharing.image.layers
    assert f"{base.short}: Already exists" in ls
    assert f"{top.short}: Pull complete" in ls
    assert sc.layer_ids(root) == {I.hexof(c) for c in sharing.image.chain_ids}
    assert_registered(root, single)
    assert_registered(root, sharing)


def test_concurrent_pulls_share_one_layer_dir(pmd, root, registry, multi, sharing,
                                             faulty_proxy):
    # the proxy holds both manifest requests until both have arrived: the pulls overlap
    proxy = faulty_proxy(registry, "barrier", parties=2)
    procs = [pmd.popen("pull", f"{proxy.host}/{p.repo}:{p.tag}") for p in (multi, sharing)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    for _out, err, rc in results:
        assert rc == 0, err
    assert not proxy.barrier.broken, "the two pulls did not run at the same time"
    want = {I.hexof(c) for p in (multi, sharing) for c in p.image.chain_ids}
    assert sc.layer_ids(root) == want
    assert sc.image_ids(root) == {multi.image.id_hex, sharing.image.id_hex}
    pmd("images")  # a plain command after both: the leak check then looks for staging debris


def test_pull_by_digest(pmd, root, single):
    ref = single.by_digest
    ls = lines(pmd("pull", ref).stdout)
    assert f"Digest: {single.digest}" in ls
    rec = sc.image_record(root, single.image.id_hex)
    assert ref in rec["names"]


def test_pull_by_wrong_digest_fails(pmd, root, single):
    ref = f"{single.name}@sha256:{'0' * 64}"
    res = pmd("pull", ref, check=False)
    assert res.returncode != 0
    sc.one_line_error(res.stderr)
    assert sc.image_ids(root) == set()


def test_moved_tag_repoints_the_local_tag(pmd, root, publish, unique_repo, base_layer):
    repo = unique_repo()
    old = publish(I.build_image([base_layer], labels={"v": "old"}), repo, "t")
    pmd("pull", old.ref)
    new = publish(I.build_image([base_layer], labels={"v": "new"}), repo, "t")
    assert new.ref == old.ref and new.image.id_hex != old.image.id_hex
    ls = lines(pmd("pull", new.ref).stdout)
    assert f"Status: Downloaded newer image for {new.ref}" in ls
    assert new.ref in sc.image_record(root, new.image.id_hex)["names"]
    assert new.ref not in sc.image_record(root, old.image.id_hex)["names"]
    rows = {r["IMAGE ID"]: r for r in sc.table(pmd("images").stdout)}
    assert rows[new.image.id_hex[:12]]["TAG"] == "t"
    assert rows[old.image.id_hex[:12]]["TAG"] == "<none>"
    old_info = json.loads(pmd("inspect", old.image.id_hex).stdout)[0]
    assert old_info["RepoTags"] == []


def test_pull_all_tags(pmd, root, publish, unique_repo, base_layer):
    repo = unique_repo()
    a = publish(I.build_image([base_layer], labels={"t": "a"}), repo, "a")
    b = publish(I.build_image([base_layer], labels={"t": "b"}), repo, "b")
    pmd("pull", "-a", a.name)
    assert sc.image_ids(root) == {a.image.id_hex, b.image.id_hex}
    assert a.ref in sc.image_record(root, a.image.id_hex)["names"]
    assert b.ref in sc.image_record(root, b.image.id_hex)["names"]
