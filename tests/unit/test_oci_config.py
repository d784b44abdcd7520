"""pyminidocker-runc's reading of config.json (oci/config.py) and of runc's command line, without
root: what a config asks for becomes the SpawnSpec and cgroup files, and what it gets wrong is
one ConfigError naming the field."""
from __future__ import annotations

import copy

import pytest

from pyminidocker import shim
from pyminidocker.oci import config as cfg
from pyminidocker.oci import resources
from pyminidocker.oci.control import parse_signal
from pyminidocker.oci.main import _go_flags, _parser, _quick_args

BASE = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "env": ["A=1"],
                "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                 "permitted": ["CAP_KILL"], "inheritable": [],
                                 "ambient": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 20, "soft": 10}],
                "noNewPrivileges": True},
    "hostname": "h",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755"]},
               {"destination": "/data", "type": "bind", "source": "/tmp",
                "options": ["rbind", "ro", "rslave"]}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                             {"type": "network"}],
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
              "resources": {"memory": {"limit": 1 << 26, "swap": 0},
                            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                            "pids": {"limit": 64},
                            "devices": [{"allow": False, "access": "rwm"},
                                        {"allow": True, "type": "c", "major": 10,
                                         "minor": 200, "access": "rw"}]}},
}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs" / "bin").mkdir(parents=True)
    sh = tmp_path / "rootfs" / "bin" / "sh"
    sh.write_text("")
    sh.chmod(0o755)
    return tmp_path


def parse(bundle, doc):
    return cfg.parse(copy.deepcopy(doc), str(bundle))


def test_a_config_becomes_the_spawn_spec(bundle):
    c = parse(bundle, BASE)
    s = c.spec
    assert s.argv == ["sh"] and "A=1" in s.env and any(e.startswith("PATH=") for e in s.env)
    assert (s.uid, s.gid, s.groups) == (1, 2, [3])
    kill = 1 << 5
    assert (s.cap_bounding, s.cap_effective, s.cap_permitted) == (kill, kill, kill)
    assert s.cap_ambient == 0  # not inheritable: the kernel would refuse to raise it
    assert s.rlimits == {7: (10, 20)} and s.no_new_privs
    assert s.namespaces == (shim.CLONE_NEWPID | shim.CLONE_NEWNS | shim.CLONE_NEWUTS
                            | shim.CLONE_NEWNET)
    assert s.hostname == "h" and s.rootfs == str((bundle / "rootfs").resolve())
    assert s.dev_setup and s.masked_paths == ["/proc/kcore"]
    bind = s.mounts[2]
    assert bind.flags & shim.MS_BIND and bind.flags & shim.MS_REC
    assert bind.flags & shim.MS_RDONLY and bind.flags & shim.MS_SLAVE
    files = [f[:3] for f in resources.cgroup_files(c.resources, "v1")]
    assert ("memory", "memory.limit_in_bytes", str(1 << 26)) in files
    assert "memory.memsw.limit_in_bytes" not in {f[1] for f in files}  # 0: unset
    assert [f[1] for f in files if f[0] == "cpu"] == ["cpu.shares", "cpu.cfs_period_us",
                                                      "cpu.cfs_quota_us"]  # period first
    assert ("pids", "pids.max", "64") in files
    assert c.resources.devices == (("deny", "a"), ("allow", "c 10:200 rw"))


def test_the_mount_namespace_new_joined_or_none(bundle):
    # new: the root's propagation as asked (private is what the shim leaves anyway)
    s = parse(bundle, _with(("linux", "rootfsPropagation"), "rshared")).spec
    assert s.root_propagation == shim.MS_SHARED | shim.MS_REC and not s.mounts_joined
    assert parse(bundle, _with(("linux", "rootfsPropagation"), "private")).spec.root_propagation == 0
    # joined by path: set up in place, as runc does
    joined = [{"type": "mount", "path": "/proc/self/ns/mnt"}, {"type": "uts"}]
    s = parse(bundle, _with(("linux", "namespaces"), joined)).spec
    assert s.mounts_joined and not s.namespaces & shim.CLONE_NEWNS and len(s.mounts) == 3
    # none: chroot, and what would change the caller's namespace is dropped, with a warning
    c = parse(bundle, _with(("linux", "namespaces"), [{"type": "uts"}]))
    assert (c.spec.mounts, c.spec.masked_paths, c.spec.readonly_paths) == ([], [], [])
    assert not c.spec.dev_setup and not c.spec.mounts_joined
    assert c.spec.rootfs == str((bundle / "rootfs").resolve())
    assert c.warnings == ["no mount namespace in linux.namespaces: mounts, linux.maskedPaths, "
                          "linux.readonlyPaths not applied (they would change the caller's "
                          "mount namespace)"]


def test_a_user_namespace_may_be_joined_by_path(bundle):
    joined = [{"type": "mount"}, {"type": "uts"}, {"type": "user", "path": "/proc/self/ns/user"}]
    c = parse(bundle, _with(("linux", "namespaces"), joined))
    assert c.join_paths == {"user": "/proc/self/ns/user"}
    assert not c.spec.namespaces & shim.CLONE_NEWUSER and c.spec.uid_map is None


def test_a_newer_minor_version_is_read_a_new_major_refused(bundle):
    parse(bundle, {**BASE, "ociVersion": "1.5.0-dev"})
    with pytest.raises(cfg.ConfigError, match="unsupported spec version"):
        parse(bundle, {**BASE, "ociVersion": "2.0.0"})


def _with(path, value):
    doc = copy.deepcopy(BASE)
    *parents, last = path
    d = doc
    for p in parents:
        d = d[p]
    d[last] = value
    return doc


@pytest.mark.parametrize("path, value, message", [
    (("linux", "namespaces"), [{"type": "mount"}, {"type": "bogus"}], "namespace type 'bogus'"),
    (("linux", "namespaces"), [{"type": "mount"}, {"type": "mount"}], "duplicated ns"),
    (("linux", "rootfsPropagation"), "sideways", "rootfsPropagation: unknown value"),
    (("root", "path"), "../../etc", "must stay inside the bundle"),
    (("root", "path"), "missing", "does not exist"),
    (("process", "args"), [], "args must not be empty"),
    (("process", "cwd"), "relative", "not an absolute path"),
    (("process", "rlimits"), [{"type": "RLIMIT_BOGUS"}], "unknown rlimit type"),
    (("process", "capabilities"), {"bounding": ["CAP_TEST"]}, "unknown capability"),
    (("process", "oomScoreAdj"), 5000, "not in [-1000, 1000]"),
    (("linux", "devices"), [{"path": "/etc/x", "type": "c"}], "is not in /dev"),
    (("linux", "devices"), [{"path": "/dev/../etc/x", "type": "c"}], "is not in /dev"),
    (("linux", "devices"), [{"path": "/dev/x", "type": "z"}], "is not c, b, u or p"),
    (("linux", "sysctl"), {"kernel.panic": "1"}, "not in a separate kernel namespace"),
    # not a dotted name (it failed only at the start, with ENOENT)
    (("linux", "sysctl"), {"net.ipv4/../../kernel/core_pattern": "|/x"},
     "not in a separate kernel namespace"),
    (("linux", "resources"), {"hugepageLimits": [{"pageSize": "../../x", "limit": 1}]},
     "is not a page size"),
    (("linux", "resources"), {"network": {"priorities": [{"name": "eth0 1\nlo", "priority": 1}]}},
     "is not an interface name"),
    (("linux", "uidMappings"), [{"containerID": 0, "hostID": 1, "size": 1}],
     "need a user namespace"),
    (("linux", "namespaces"), [{"type": "mount"}, {"type": "uts"}, {"type": "user"}],
     "but no uid mappings found"),
    (("linux", "namespaces"), [{"type": "mount"}, {"type": "time"}], "'time' is not supported"),
    (("linux", "uidMappings"), [{"containerID": 0, "hostID": 1}], "a positive size"),
    (("linux", "resources"), {"unified": {"../memory.max": "1"}}, "is not a cgroup file name"),
    (("linux", "resources"), {"devices": [{"type": "x"}]}, "is not a, b or c"),
    (("mounts",), [{"destination": "rel", "type": "tmpfs"}], "is not absolute"),
    (("mounts",), [{"destination": "/x", "type": "nfs"}], "unsupported mount type"),
    (("mounts",), [{"destination": "/x", "type": "bind", "source": "/nonexistent-src"}],
     "does not exist"),
    (("hooks",), {"prestart": [{"path": "rel"}]}, "is not absolute"),
    (("process", "user"), {"uid": "root"}, "expected int"),
    (("process", "args"), ["nosuch"], 'exec: "nosuch": executable file not found'),
    (("process", "args"), ["/bin/true\0x"], "process.args: contains a NUL byte"),
    (("process", "cwd"), "/\0", "process.cwd: contains a NUL byte"),
    (("root", "path"), "rootfs\0", "root.path: contains a NUL byte"),
])
def test_bad_configs_are_refused_with_the_field_named(bundle, path, value, message):
    with pytest.raises(cfg.ConfigError) as e:
        parse(bundle, _with(path, value))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_mount_destination_through_an_escaping_symlink_is_refused(bundle, tmp_path):
    (bundle / "rootfs" / "evil").symlink_to("../../../../../../../../../etc")
    (bundle / "rootfs" / "bin" / "up").symlink_to("../..")
    (bundle / "rootfs" / "inside").symlink_to("/bin")  # absolute: the container's /bin
    for dest in ("/evil", "/evil/x", "/bin/up/x", "/inside/up"):
        doc = _with(("mounts",), [{"destination": dest, "type": "tmpfs"}])
        with pytest.raises(cfg.ConfigError, match="outside the container's root"):
            parse(bundle, doc)
    parse(bundle, _with(("mounts",), [{"destination": "/inside/x", "type": "tmpfs"}]))


def test_a_config_without_process_can_be_created(bundle):
    doc = copy.deepcopy(BASE)
    del doc["process"]
    assert not parse(bundle, doc).has_process


def test_runc_signals_and_go_style_flags():
    assert [parse_signal(s) for s in ("KILL", "SIGTERM", "9", "sigusr1", "RTMIN+2")] == \
        [9, 15, 9, 10, 36]
    with pytest.raises(ValueError):
        parse_signal("NOPE")
    assert _go_flags(["-root", "/r", "--log", "l", "create", "-bundle", "b", "id"]) == \
        ["--root", "/r", "--log", "l", "create", "--bundle", "b", "id"]
    # the container's command is left alone
    assert _go_flags(["exec", "-t", "id", "ls", "-root"]) == ["exec", "-t", "id", "ls", "-root"]


CONTAINERD = ["--root", "/run/containerd/runc/k8s.io", "--log", "/run/x/log.json",
              "--log-format", "json"]


@pytest.mark.parametrize("argv", [
    [*CONTAINERD, "start", "c1"], [*CONTAINERD, "state", "c1"], [*CONTAINERD, "delete", "c1"],
    [*CONTAINERD, "delete", "--force", "c1"], ["delete", "-f", "c1"], ["state", "c1"],
    ["--root", "/a", "--root", "/b", "start", "c1"], ["--log-format", "text", "state", "x.y"],
])
def test_containerds_calls_read_without_the_parser_as_the_parser_reads_them(argv):
    quick, full = _quick_args(argv), _parser().parse_args(_go_flags(argv))
    assert quick is not None
    for name in ("root", "log", "log_format", "debug", "systemd_cgroup", "version", "verb",
                 "id"):
        assert getattr(quick, name) == getattr(full, name), name
    assert quick.force == getattr(full, "force", False)


@pytest.mark.parametrize("argv", [
    ["start", "--help"], ["--help"], [], ["-root", "/r", "state", "c1"], ["--root=/r", "state", "c1"],
    ["--debug", "state", "c1"], ["--log-format", "xml", "state", "c1"], ["state", "-x"],
    ["kill", "c1"], ["start", "c1", "c2"], ["delete", "--force"], ["--root", "state", "c1"],
    ["--systemd-cgroup", "delete", "c1"], ["create", "c1"], ["delete", "c1", "--force"],
])
def test_any_other_command_line_goes_to_the_parser(argv):
    assert _quick_args(argv) is None
