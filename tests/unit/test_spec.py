"""container.spec: the policy functions that need no root."""
from __future__ import annotations

import pytest

from pyminidocker.container import spec
from pyminidocker.container.mounts import tmpfs_options
from pyminidocker.errors import UsageError


def test_a_mount_destination_is_checked_after_the_roots_symlinks(tmp_path):
    (tmp_path / "evil").symlink_to("/proc/sys")
    (tmp_path / "fine").symlink_to("/srv")
    assert spec.resolved_destination(str(tmp_path), "/fine/x") == "/fine/x"
    with pytest.raises(UsageError, match="inside /proc"):
        spec.resolved_destination(str(tmp_path), "/evil/kernel")


def test_tmpfs_options():
    assert tmpfs_options("") == (spec.MS_NOEXEC | spec.MS_NOSUID | spec.MS_NODEV, "mode=1777")
    flags, data = tmpfs_options("exec,size=64m,mode=755,ro")
    assert flags == spec.MS_NOSUID | spec.MS_NODEV | spec.MS_RDONLY and data == "size=64m,mode=755"
    for bad in ("bogus", "size=", "size=1x", "mode=8", "uid=-1", "nr_inodes=k"):
        with pytest.raises(UsageError, match="invalid tmpfs option"):
            tmpfs_options(bad)


def test_workdir():
    assert spec.workdir(None) == "/" and spec.workdir("/a/../..") == "/"
    assert spec.workdir("//x/./y/") == "/x/y"
    with pytest.raises(UsageError, match="absolute path"):
        spec.workdir("rel")


def test_a_malformed_passwd_line_is_named(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n# c\n"
                                          "evil:x:abc:0::/:/bin/sh\nok:x:7:8::/home/ok:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:ok\nbad:x:zz:\n")
    with pytest.raises(UsageError, match=r"invalid uid 'abc' in /etc/passwd line 3"):
        spec.resolve_user(str(tmp_path), "evil")
    with pytest.raises(UsageError, match=r"invalid gid 'zz' in /etc/group line 3"):
        spec.resolve_user(str(tmp_path), "ok:bad")
    assert spec.resolve_user(str(tmp_path), "ok") == spec.User(7, 8, (50,), "/home/ok")
    assert spec.resolve_user(str(tmp_path), "") == spec.User(0, 0, (), "/root")


def test_a_sysctl_is_namespaced_only_as_a_dotted_name():
    from pyminidocker.container.spec import sysctl_namespace

    assert sysctl_namespace("net.ipv4.ip_forward") == "network"
    assert sysctl_namespace("net.ipv4.conf.eth0.rp_filter") == "network"
    assert sysctl_namespace("kernel.shmmax") == "ipc"
    assert sysctl_namespace("fs.mqueue.msg_max") == "ipc"
    assert sysctl_namespace("kernel.hostname") == "uts"
    assert sysctl_namespace("kernel.core_pattern") is None
    # not dotted names: refused with the flag's words, not at the start (ENOENT)
    for key in ("net.ipv4/../../kernel/core_pattern", "net...kernel", "net.", "net.a..b",
                "net.ipv4.\0x"):
        assert sysctl_namespace(key) is None, key
