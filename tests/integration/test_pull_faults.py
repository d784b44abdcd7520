"""Pull under faults: each gets a clear one-line error (or recovers), and the store stays
consistent. Faults a real registry cannot produce come from servers.FaultyProxy."""
from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest

from tests.integration import images as I
from tests.integration import servers as S
from tests.integration import storecheck as sc


def assert_clean_failure(res, root, pmd, pattern: str) -> str:
    """Non-zero exit, one stderr line matching pattern, a consistent store; then a plain
    command succeeds (so the leak check also looks for staging debris). Returns the line."""
    assert res.returncode != 0, res.stdout
    line = sc.one_line_error(res.stderr)
    assert re.search(pattern, line, re.IGNORECASE), line
    assert sc.inconsistencies(root) == []
    pmd("images")
    return line


def unique_image(extra_layers: int = 0) -> I.Image:
    """An image whose blobs no other test shares (the registry stores blobs by digest only)."""
    tag = uuid.uuid4().hex.encode()
    layers = [I.make_layer(I.base_entries(tag))]
    for i in range(extra_layers):
        layers.append(I.make_layer([I.Entry("etc", "dir", 0o755),
                                    I.Entry(f"etc/extra{i}", data=tag * 100)]))
    return I.build_image(layers)


def assert_not_registered(root, img: I.Image):
    assert not sc.image_dir(root, img.id_hex).exists()
    assert not {I.hexof(c) for c in img.chain_ids} & sc.layer_ids(root)


def test_unknown_repository(pmd, root, registry):
    res = pmd("pull", f"{registry.host}/no/such-repo:v1", check=False)
    assert_clean_failure(res, root, pmd, r"not found|manifest unknown|does not exist")
    assert sc.image_ids(root) == set()


def test_unknown_tag(pmd, root, single):
    res = pmd("pull", f"{single.name}:no-such-tag", check=False)
    assert_clean_failure(res, root, pmd, r"not found|manifest unknown")
    assert sc.image_ids(root) == set()


def test_registry_down(pmd, root):
    host = f"127.0.0.1:{S.free_port()}"  # nothing listens there
    t0 = time.monotonic()
    res = pmd("pull", f"{host}/busybox:latest", check=False)
    assert_clean_failure(res, root, pmd, r"cannot reach|connection refused")
    assert host in res.stderr
    assert time.monotonic() - t0 < 60


def test_corrupted_gzip_blob_fails_and_registers_nothing(pmd, root, registry, publish,
                                                         unique_repo):
    """Bytes flipped inside the gzip stream: the stream may break before the digest is known,
    so the message must name the blob but need not say "digest"."""
    img = unique_image(extra_layers=1)
    pushed = publish(img, unique_repo(), "v1")
    bad = img.layers[1]
    I.corrupt_blob(registry.storage, bad.digest)
    res = pmd("pull", pushed.ref, check=False)
    line = assert_clean_failure(res, root, pmd, r".")
    assert I.hexof(bad.digest)[:12] in line
    assert_not_registered(root, img)


def test_digest_mismatch_fails_and_registers_nothing(pmd, root, registry, publish, unique_repo):
    """Bytes flipped inside a file of an uncompressed layer: the tar still extracts, only the
    digest check can catch it."""
    tag = uuid.uuid4().hex.encode()
    bad = I.make_layer(I.base_entries(tag), "none")
    img = I.build_image([bad])
    pushed = publish(img, unique_repo(), "v1")
    I.corrupt_blob(registry.storage, bad.digest, offset=200_000)  # inside bin/busybox
    res = pmd("pull", pushed.ref, check=False)
    line = assert_clean_failure(res, root, pmd, r"digest|mismatch|verif")
    assert I.hexof(bad.digest)[:12] in line
    assert_not_registered(root, img)


def test_truncated_download_resumes(pmd, root, registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "cut-once", cut_after=64 * 1024)
    ref = f"{proxy.host}/{single.repo}:{single.tag}"
    pmd("pull", ref)
    gets = proxy.blob_gets()
    assert any(h.faulted for h in gets), "the proxy never cut a blob"
    assert any(h.range for h in gets), "the interrupted blob was not resumed with Range"
    layer = single.image.layers[0]
    assert I.check_diff(sc.diff_dir(root, layer.diff_id), layer.entries) == []


def test_always_truncated_download_fails_cleanly(pmd, root, registry, single, faulty_proxy):
    # every response stops 8 KiB into the blob, resumed or not: no retry can complete it
    proxy = faulty_proxy(registry, "cut-always", cut_after=8 * 1024)
    res = pmd("pull", f"{proxy.host}/{single.repo}:{single.tag}", check=False)
    assert_clean_failure(res, root, pmd, r".")
    assert_not_registered(root, single.image)


def test_503_twice_then_success(pmd, root, registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "503x2")
    pmd("pull", "-q", f"{proxy.host}/{single.repo}:{single.tag}")
    assert [h.status for h in proxy.hits[:2]] == [503, 503]
    assert sc.image_ids(root) == {single.image.id_hex}


def test_429_honours_retry_after(pmd, root, registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "429")
    pmd("pull", "-q", f"{proxy.host}/{single.repo}:{single.tag}")
    first, second = proxy.hits[0], proxy.hits[1]
    assert first.status == 429
    assert second.at - first.at >= 0.9, "retried before Retry-After elapsed"
    assert sc.image_ids(root) == {single.image.id_hex}


@pytest.fixture
def small_root(tmp_path):
    """A 2 MiB tmpfs used as the store; unmounted at teardown."""
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(d)],
                   check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_full_disk(pmd, small_root, big):
    res = pmd("pull", big.ref, root=small_root, check=False)
    assert res.returncode != 0
    line = sc.one_line_error(res.stderr)
    assert re.search(r"no space left", line, re.IGNORECASE), line
    assert sc.inconsistencies(small_root) == []
    assert_not_registered(small_root, big.image)
    pmd("images", root=small_root)
    assert sc.leftovers(small_root) == []


def test_kill_9_during_pull_then_recover(pmd, root, registry, publish, unique_repo,
                                         faulty_proxy):
    img = unique_image(extra_layers=1)
    pushed = publish(img, unique_repo(), "v1")
    proxy = faulty_proxy(registry, "stall", cut_after=64 * 1024)
    ref = f"{proxy.host}/{pushed.repo}:{pushed.tag}"
    proc = pmd.popen("pull", ref)
    try:
        S.wait_until(lambda: proxy.stalled.is_set() or proc.poll() is not None, 60,
                     what="a layer download to start")
        assert proc.poll() is None, f"pull ended before it was killed: {proc.communicate()}"
    finally:
        S.kill_tree(proc)
        proc.communicate()
    proxy.mode = "pass"
    proxy.release.set()
    pmd("images")
    assert sc.leftovers(root) == []
    assert sc.inconsistencies(root) == []
    assert not sc.image_dir(root, img.id_hex).exists()
    # what the killed pull downloaded is kept, by digest, a prefix of the blob
    blobs = {I.hexof(layer.digest): layer.blob for layer in img.layers}
    kept = {f.name: f.read_bytes() for f in (root / "partial").iterdir()}
    assert any(kept.values()) and all(blobs[n].startswith(d) for n, d in kept.items())
    seen = len(proxy.hits)
    pmd("pull", ref)
    assert sc.image_ids(root) == {img.id_hex}
    # and the next pull asked only for the rest
    ranges = {h.path.rsplit(":", 1)[1]: h.range for h in proxy.hits[seen:] if h.method == "GET"
              and "/blobs/sha256:" in h.path}
    assert all(ranges[name] == f"bytes={len(data)}-" for name, data in kept.items() if data), \
        (ranges, {n: len(d) for n, d in kept.items()})
    assert list((root / "partial").iterdir()) == []
    for layer, chain in zip(img.layers, img.chain_ids):
        assert I.check_diff(sc.diff_dir(root, chain), layer.entries) == []


def test_pull_by_digest_rejects_a_manifest_that_does_not_match(pmd, root, registry, single,
                                                               faulty_proxy):
    proxy = faulty_proxy(registry, "tamper-manifest")
    res = pmd("pull", f"{proxy.host}/{single.repo}@{single.digest}", check=False)
    assert_clean_failure(res, root, pmd, r"digest|mismatch|verif")
    assert any(h.faulted for h in proxy.hits), "the proxy never served a manifest"
    assert sc.image_ids(root) == set()


def test_platform_not_in_the_index(pmd, root, oci_index):
    res = pmd("pull", "--platform", "linux/s390x", oci_index.ref, check=False)
    line = assert_clean_failure(res, root, pmd, r"platform|no match")
    assert "s390x" in line
    assert sc.image_ids(root) == set()


def test_unknown_layer_media_type(pmd, root, publish, unique_repo):
    layer = I.make_layer(I.base_entries(uuid.uuid4().hex.encode()))
    layer.media_type = "application/vnd.example.layer.v1.tar+lzma"
    pushed = publish(I.build_image([layer]), unique_repo(), "v1")
    res = pmd("pull", pushed.ref, check=False)
    line = assert_clean_failure(res, root, pmd, r"media type|unsupported|unknown")
    assert "application/vnd.example.layer.v1.tar+lzma" in line
    assert sc.image_ids(root) == set() and sc.layer_ids(root) == set()
