"""An image's init layer: the mount points its containers need that the image lacks, made once
from the image's root as mounted (here: plain directories standing for it)."""
from __future__ import annotations

import os
import stat

from pyminidocker.container import initlayer
from pyminidocker.store import Store


def _init(tmp_path, build) -> set[str]:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    build(rootfs)
    init = tmp_path / "init"
    initlayer.make(Store(tmp_path / "store"), str(rootfs), str(init))
    assert os.listdir(tmp_path / "store" / "staging") == []
    return {str(p.relative_to(init)) for p in init.rglob("*")}


def test_a_bare_image_gets_every_mount_point(tmp_path):
    assert _init(tmp_path, lambda r: (r / "bin").mkdir()) == {
        "proc", "sys", "dev", "etc", "etc/hostname", "etc/hosts", "etc/resolv.conf"}


def test_only_what_the_image_lacks_and_etc_looks_like_the_images(tmp_path):
    def build(r):
        (r / "proc").mkdir()
        (r / "dev").symlink_to("/somewhere")  # there, whatever it is: the child deals with it
        (r / "etc").mkdir(mode=0o750)
        os.chmod(r / "etc", 0o750)
        os.chown(r / "etc", 1000, 1001)
        (r / "etc" / "hosts").write_text("")

    made = _init(tmp_path, build)
    assert made == {"sys", "etc", "etc/hostname", "etc/resolv.conf"}
    st = os.stat(tmp_path / "init" / "etc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1000, 1001)
    assert (tmp_path / "init" / "etc" / "hostname").stat().st_size == 0


def test_an_etc_that_is_not_a_directory_is_left_to_the_child(tmp_path):
    def build(r):
        (r / "elsewhere").mkdir()
        (r / "etc").symlink_to("elsewhere")

    assert _init(tmp_path, build) == {"proc", "sys", "dev"}


def test_made_once(tmp_path):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    init = tmp_path / "init"
    store = Store(tmp_path / "store")
    initlayer.make(store, str(rootfs), str(init))
    (rootfs / "proc").mkdir()
    initlayer.make(store, str(rootfs), str(init))  # another start got there first: kept as it is
    assert (init / "proc").is_dir()
