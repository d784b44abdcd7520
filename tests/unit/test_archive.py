"""container.archive on plain directories (no root needed): resolution inside a root, Docker's
cp plans, tars both ways, and hostile tars refused or contained."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from pyminidocker.container import archive as ar
from pyminidocker.container import cptar
from pyminidocker.errors import NotFound, UsageError

ME = ar.Owner(False, os.getuid(), os.getgid())


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    os.symlink("/etc", r / "abs")
    os.symlink("../../../../../..", r / "up")
    os.symlink("/", r / "slash")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    with ar.Root(str(r)) as root:
        yield root


@pytest.mark.parametrize("path", ["/abs/passwd", "/up/etc/passwd", "/slash/etc/passwd",
                                  "up/up/slash/abs/../etc/passwd", "/../../etc/passwd"])
def test_every_link_resolves_inside_the_root(root, path):
    f = root.resolve(path, follow=True)
    try:
        assert f.inside == "/etc/passwd" and f.st is not None
        assert os.read(os.open(f.name, os.O_RDONLY, dir_fd=f.parent), 100) == b"inside\n"
    finally:
        f.close()


def test_resolution_errors(root):
    with pytest.raises(OSError) as e:
        root.resolve("/loop1/x")
    assert e.value.errno == 40  # ELOOP
    with pytest.raises(NotADirectoryError):
        root.resolve("/etc/passwd/x")
    with pytest.raises(FileNotFoundError):
        root.resolve("/nope/x")
    f = root.resolve("/nope")
    assert f.st is None and f.inside == "/nope"
    f.close()
    assert ar.stat_path(root, "/abs").link_target == "/etc"
    with pytest.raises(NotFound):
        ar.stat_path(root, "/nope")


def test_go_file_mode_bits():
    assert ar.go_file_mode(0o40755) == (1 << 31) | 0o755
    assert ar.go_file_mode(0o120777) == (1 << 27) | 0o777
    assert ar.go_file_mode(0o104755) == (1 << 23) | 0o755


def tree(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("content")
    os.link(src / "d" / "f", src / "hard")
    os.symlink("d/f", src / "sym")
    return src


def test_a_tree_through_a_tar_and_back(tmp_path):
    tree(tmp_path)
    buf = bytearray()
    with ar.Root(str(tmp_path)) as r:
        cptar.write_tar(ar.walk(r, "/src", "top"), buf.extend)
    with tarfile.open(fileobj=io.BytesIO(bytes(buf))) as t:
        names = {m.name: m for m in t.getmembers()}
    assert sorted(names) == ["top", "top/d", "top/d/f", "top/hard", "top/sym"]
    assert names["top/hard"].islnk() and names["top/hard"].linkname == "top/d/f"
    assert names["top/sym"].issym() and names["top/sym"].linkname == "d/f"
    dst = tmp_path / "dst"
    dst.mkdir()
    with ar.Root(str(dst)) as r:
        assert ar.extract(r, "/", cptar.read_tar(io.BytesIO(bytes(buf))), ME) == 5
    assert (dst / "top" / "d" / "f").read_text() == "content"
    assert os.stat(dst / "top" / "hard").st_ino == os.stat(dst / "top" / "d" / "f").st_ino
    assert os.readlink(dst / "top" / "sym") == "d/f"


def copy(tmp_path, src: str, dst: str) -> None:
    with ar.Root(str(tmp_path)) as r:
        ar.copy(r, src, r, dst, ME)


def test_docker_cp_plans(tmp_path):
    tree(tmp_path)
    (tmp_path / "into").mkdir()
    copy(tmp_path, "/src", "/new")                    # a new name
    assert (tmp_path / "new" / "d" / "f").is_file()
    copy(tmp_path, "/src", "/into")                   # into a directory, by its name
    assert (tmp_path / "into" / "src" / "d" / "f").is_file()
    copy(tmp_path, "/src/.", "/into")                 # the contents
    assert (tmp_path / "into" / "d" / "f").is_file()
    (tmp_path / "other").write_text("other")
    copy(tmp_path, "/other", "/into/src/sym")         # onto a link: its target, as Docker
    assert (tmp_path / "into" / "src" / "sym").is_symlink()
    assert (tmp_path / "into" / "src" / "d" / "f").read_text() == "other"
    for src, dst, message in (("/src", "/src/d/f", "cannot copy directory"),
                              ("/src/d/f", "/missing/", "no such directory"),
                              ("/src/d/f/", "/x", "not a directory"),
                              ("/src/d/f", "/new/d/f/", "not a directory")):
        with pytest.raises(UsageError, match=message):
            copy(tmp_path, src, dst)


def hostile(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = 1 if kind == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.parametrize("entries", [
    [("../out", tarfile.REGTYPE, "")],
    [("a/../../out", tarfile.REGTYPE, "")],
    [("h", tarfile.LNKTYPE, "../out")],
    [("dev", tarfile.CHRTYPE, "")],
    [("d", tarfile.DIRTYPE, ""), ("d", tarfile.REGTYPE, "")],
], ids=["dotdot", "nested-dotdot", "hardlink-out", "device", "dir-to-file"])
def test_hostile_entries_are_refused(tmp_path, entries):
    dst = tmp_path / "root" / "in"
    dst.mkdir(parents=True)
    with ar.Root(str(tmp_path / "root")) as r, pytest.raises(ar.Refused):
        ar.extract(r, "/in", cptar.read_tar(io.BytesIO(hostile(*entries))), ME,
                   no_overwrite_dir_nondir=True)
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_links_in_a_tar_are_resolved_in_the_root(tmp_path):
    (tmp_path / "root" / "in").mkdir(parents=True)
    (tmp_path / "root" / "tmp").mkdir()
    tar = hostile(("l", tarfile.SYMTYPE, str(tmp_path)), ("l/x", tarfile.REGTYPE, ""),
                  ("t", tarfile.SYMTYPE, "/tmp"), ("t/y", tarfile.REGTYPE, ""),
                  ("/abs", tarfile.REGTYPE, ""))
    with ar.Root(str(tmp_path / "root")) as r:
        with pytest.raises(ar.ExtractError):  # its parent does not exist in the root
            ar.extract(r, "/in", cptar.read_tar(io.BytesIO(tar)), ME)
        tar = hostile(("t", tarfile.SYMTYPE, "/tmp"), ("t/y", tarfile.REGTYPE, ""),
                      ("/abs", tarfile.REGTYPE, ""))
        ar.extract(r, "/in", cptar.read_tar(io.BytesIO(tar)), ME)
    assert (tmp_path / "root" / "tmp" / "y").is_file()
    assert (tmp_path / "root" / "in" / "abs").is_file()
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_a_broken_tar_is_a_usage_error(tmp_path):
    whole = hostile(("f", tarfile.REGTYPE, ""))
    with ar.Root(str(tmp_path)) as r:
        for data in (b"not a tar at all" * 64, whole[:600]):
            with pytest.raises(UsageError, match="invalid tar archive"):
                ar.extract(r, "/", cptar.read_tar(io.BytesIO(data)), ME)
