"""`images`, `inspect`, `tag` and `rmi` on pulled images."""
from __future__ import annotations

import json
import re

import pytest

from tests.integration import images as I
from tests.integration import storecheck as sc


@pytest.fixture
def pulled(pmd, single):
    pmd("pull", "-q", single.ref)
    return single


def test_images_table(pmd, pulled):
    out = pmd("images").stdout
    header = out.splitlines()[0]
    assert re.split(r"\s{2,}", header.strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                                                   "SIZE"]
    rows = sc.table(out)
    assert len(rows) == 1
    row = rows[0]
    assert (row["REPOSITORY"], row["TAG"], row["IMAGE ID"]) == (
        pulled.name, pulled.tag, pulled.image.id_hex[:12])
    assert row["CREATED"] and row["SIZE"]


def test_images_quiet(pmd, pulled):
    assert pmd("images", "-q").stdout == pulled.image.id_hex[:12] + "\n"


def test_images_json(pmd, pulled):
    rows = sc.json_lines(pmd("images", "--format", "json").stdout)
    assert len(rows) == 1
    row = rows[0]
    assert {"Repository", "Tag", "ID", "Digest", "CreatedSince", "CreatedAt", "Size"} <= set(row)
    assert (row["Repository"], row["Tag"], row["Digest"]) == (
        pulled.name, pulled.tag, pulled.digest)
    assert row["ID"] in (pulled.image.id_hex[:12], pulled.image.image_id, pulled.image.id_hex)


def test_inspect(pmd, multi):
    pmd("pull", "-q", multi.ref)
    info = json.loads(pmd("inspect", multi.ref).stdout)
    assert isinstance(info, list) and len(info) == 1
    img = info[0]
    assert img["Id"] == multi.image.image_id
    assert img["RepoTags"] == [multi.ref]
    assert img["RepoDigests"] == [f"{multi.name}@{multi.digest}"]
    assert img["RootFS"]["Layers"] == multi.image.diff_ids
    assert (img["Architecture"], img["Os"]) == (multi.image.arch, "linux")
    assert img["Config"]["Cmd"] == ["/bin/sh"]


@pytest.mark.parametrize("how", ["name:tag", "full id", "hex id", "short id"])
def test_image_references_accepted(pmd, pulled, how):
    img = pulled.image
    ref = {"name:tag": pulled.ref, "full id": img.image_id, "hex id": img.id_hex,
           "short id": img.id_hex[:8]}[how]
    assert json.loads(pmd("inspect", ref).stdout)[0]["Id"] == img.image_id


def test_tag_then_images_shows_both(pmd, pulled):
    pmd("tag", pulled.ref, "local/copy:v2")
    rows = sc.table(pmd("images").stdout)
    got = {(r["REPOSITORY"], r["TAG"], r["IMAGE ID"]) for r in rows}
    want_id = pulled.image.id_hex[:12]
    assert {(pulled.name, pulled.tag, want_id), ("local/copy", "v2", want_id)} <= got
    tags = json.loads(pmd("inspect", "local/copy:v2").stdout)[0]["RepoTags"]
    assert pulled.ref in tags and any(t.endswith("local/copy:v2") for t in tags)


def test_rmi_one_of_two_tags_keeps_the_image(pmd, root, pulled):
    pmd("tag", pulled.ref, "local/copy:v2")
    out = pmd("rmi", "local/copy:v2").stdout
    assert out.startswith("Untagged: ") and "local/copy:v2" in out
    assert "Deleted:" not in out
    assert sc.image_ids(root) == {pulled.image.id_hex}
    assert sc.table(pmd("images").stdout)[0]["TAG"] == pulled.tag


def test_rmi_last_tag_deletes_image_and_unshared_layers(pmd, root, single, sharing):
    pmd("pull", "-q", single.ref)
    pmd("pull", "-q", sharing.ref)
    out = pmd("rmi", sharing.ref).stdout
    assert f"Untagged: {sharing.ref}" in out
    assert f"Deleted: {sharing.image.image_id}" in out
    assert not sc.image_dir(root, sharing.image.id_hex).exists()
    assert sc.image_ids(root) == {single.image.id_hex}
    # the base layer is still used by `single`; the top one was only sharing's
    assert sc.layer_ids(root) == {I.hexof(single.image.top_layer)}
    assert I.check_diff(sc.diff_dir(root, single.image.top_layer),
                        single.image.layers[0].entries) == []
    out = pmd("rmi", single.ref).stdout
    assert f"Deleted: {single.image.image_id}" in out
    assert sc.image_ids(root) == set() and sc.layer_ids(root) == set()
    assert pmd("images", "-q").stdout == ""


def test_rmi_by_id_removes_every_tag(pmd, root, pulled):
    pmd("tag", pulled.ref, "local/copy:v2")
    res = pmd("rmi", "-f", pulled.image.id_hex[:12])
    assert f"Deleted: {pulled.image.image_id}" in res.stdout
    assert sc.image_ids(root) == set()


def test_rmi_unknown_image(pmd, pulled):
    res = pmd("rmi", "no/such:image", check=False)
    assert res.returncode == 1
    line = sc.one_line_error(res.stderr)
    assert "no/such" in line
    assert res.stdout == ""
    assert len(sc.table(pmd("images").stdout)) == 1


def test_inspect_unknown_image(pmd, root):
    res = pmd("inspect", "no/such:image", check=False)
    assert res.returncode == 1
    sc.one_line_error(res.stderr)
