"""container.spec: the policy functions that need no root."""
from __future__ import annotations

import pytest

from pyminidocker.container import spec
from pyminidocker.errors import UsageError


def test_a_mount_destination_is_checked_after_the_roots_symlinks(tmp_path):
    (tmp_path / "evil").symlink_to("/proc/sys")
    (tmp_path / "fine").symlink_to("/srv")
    assert spec.resolved_destination(str(tmp_path), "/fine/x") == "/fine/x"
    with pytest.raises(UsageError, match="inside /proc"):
        spec.resolved_destination(str(tmp_path), "/evil/kernel")


def test_tmpfs_options():
    assert spec.tmpfs_options("") == (spec.MS_NOEXEC | spec.MS_NOSUID | spec.MS_NODEV, "mode=1777")
    flags, data = spec.tmpfs_options("exec,size=64m,mode=755,ro")
    assert flags == spec.MS_NOSUID | spec.MS_NODEV | spec.MS_RDONLY and data == "size=64m,mode=755"
    for bad in ("bogus", "size=", "size=1x", "mode=8", "uid=-1", "nr_inodes=k"):
        with pytest.raises(UsageError, match="invalid tmpfs option"):
            spec.tmpfs_options(bad)


def test_workdir():
    assert spec.workdir(None) == "/" and spec.workdir("/a/../..") == "/"
    assert spec.workdir("//x/./y/") == "/x/y"
    with pytest.raises(UsageError, match="absolute path"):
        spec.workdir("rel")
