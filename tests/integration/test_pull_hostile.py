"""Hostile layers served by a real registry: the pull fails with one clear line, registers
nothing, and the host is untouched (a canary directory outside the store keeps its content)."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from tests.integration import images as I
from tests.integration import storecheck as sc


def _raw_layer(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> I.Layer:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    tar = buf.getvalue()
    blob = I.compress(tar, "gzip")
    return I.Layer([], "gzip", tar, blob, I.sha256(blob), I.sha256(tar), I.OCI_LAYER["gzip"])


def _file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    return ti, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, target
    return ti, None


@pytest.fixture
def canary(tmp_path):
    d = tmp_path / "canary"
    d.mkdir()
    (d / "file").write_text("intact\n")
    return d


def _cases(canary) -> dict[str, list]:
    up = "../" * 12 + str(canary).lstrip("/")
    return {
        "dotdot": [_file(f"{up}/escaped")],
        "symlink-then-write": [_link("evil", str(canary), tarfile.SYMTYPE),
                               _file("evil/escaped")],
        "hardlink-outside": [_link("hard", str(canary / "file"), tarfile.LNKTYPE)],
        "hardlink-dotdot": [_link("hard", f"{up}/file", tarfile.LNKTYPE)],
        "whiteout-dotdot": [_file("dir/.wh..."), _file(f"{up}/.wh.file")],
    }


@pytest.mark.parametrize("case", ["dotdot", "symlink-then-write", "hardlink-outside",
                                  "hardlink-dotdot", "whiteout-dotdot"])
def test_hostile_layer_is_refused(pmd, root, publish, unique_repo, base_layer, canary, case):
    before = {p: p.stat().st_mtime_ns for p in canary.iterdir()}
    layer = _raw_layer(_cases(canary)[case])
    pushed = publish(I.build_image([base_layer, layer]), unique_repo(), "v1")
    res = pmd("pull", f"{pushed.host}/{pushed.repo}:{pushed.tag}", check=False)
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr
    assert layer.digest in err[0], "the message names the layer"
    assert {p: p.stat().st_mtime_ns for p in canary.iterdir()} == before
    assert (canary / "file").read_text() == "intact\n"
    assert not sc.image_dir(root, pushed.image.id_hex).exists()
    assert sc.layer_ids(root) == set(), "a failed pull registers no layer"
    assert sc.leftovers(root) == []
    staging = root / "staging"
    assert not staging.exists() or os.listdir(staging) == []
