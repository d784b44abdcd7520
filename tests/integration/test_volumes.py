"""Volumes, as root: named and anonymous volumes (-v), --mount, --volumes-from, the image's
VOLUMEs seeded into new volumes, `volume create|ls|inspect|rm|prune`, rm -v, and bad input.

One store per module with busybox as `bb` and `vimg`, busybox plus a tree at /srv/seed and a
VOLUME /data with content. Checked from inside the containers; the module ends with no
container, volume, mount or cgroup left.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration.conftest import module_ctr

ctr = module_ctr("volumes")


@pytest.fixture(scope="module")
def run(ctr, publish):
    """ctr with the image vimg, and at the module's end: no volume left once pruned."""
    layers = [I.make_layer(I.full_busybox_entries()), I.make_layer([
        I.Entry("srv", "dir", 0o755),
        I.Entry("srv/seed", "dir", 0o750, uid=1000, gid=1000),
        I.Entry("srv/seed/owned", mode=0o640, uid=1000, gid=1000, data=b"seeded\n"),
        I.Entry("srv/seed/sub", "dir", 0o700, uid=1001, gid=1001),
        I.Entry("srv/seed/sub/deep", data=b"deep\n"),
        I.Entry("srv/seed/passwd", "symlink", target="/etc/passwd"),
        I.Entry("data", "dir", 0o755),
        I.Entry("data/from-image", data=b"image data\n"),
    ])]
    img = I.build_image(layers, config_extra={
        "Env": ["PATH=/bin"], "Cmd": ["sh"], "Volumes": {"/data": {}}})
    pushed = publish(img, "volumes-img", "v1")
    ctr("pull", "-q", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    ctr("tag", f"{pushed.host}/{pushed.repo}:{pushed.tag}", "vimg")
    yield ctr
    for cid in ctr("ps", "-a", "-q").stdout.split():
        ctr("rm", "-f", "-v", cid, check=False)
    ctr("volume", "prune", "-f")
    assert ctr("volume", "ls", "-q").stdout == ""
    assert not any((ctr.root / "volumes").iterdir())
    with open("/proc/self/mountinfo") as f:
        assert str(ctr.root) not in f.read(), "mounts left under the store"


def volumes(run) -> set[str]:
    return set(run("volume", "ls", "-q").stdout.split())


def containers(run) -> set[str]:
    return set(run("ps", "-a", "-q").stdout.split())


def test_a_named_volume_outlives_its_containers_and_is_shared(run):
    run("run", "--rm", "-v", "keep:/k", "bb", "sh", "-c", "echo one > /k/f")
    assert "keep" in volumes(run)
    out = run("run", "--rm", "-v", "keep:/mnt/other", "bb", "cat", "/mnt/other/f").stdout
    assert out == "one\n"
    info = json.loads(run("volume", "inspect", "keep").stdout)[0]
    assert info["Name"] == "keep" and info["Driver"] == "local" and info["Scope"] == "local"
    assert Path(info["Mountpoint"]) == run.root / "volumes/keep/_data"
    assert (Path(info["Mountpoint"]) / "f").read_text() == "one\n"
    assert info["CreatedAt"].endswith("Z")
    res = run("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Mountpoint}}", "keep")
    assert res.stdout == f"keep local {info['Mountpoint']}\n"
    run("volume", "rm", "keep")
    assert "keep" not in volumes(run)


def test_ro_volume_is_read_only_inside(run):
    res = run("run", "--rm", "-v", "rov:/r:ro", "bb", "sh", "-c", "touch /r/x", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    out = run("run", "--rm", "-v", "rov:/r", "bb", "sh", "-c", "touch /r/x && echo ok").stdout
    assert out == "ok\n"
    run("volume", "rm", "rov")


def test_a_new_volume_is_seeded_from_the_image_with_owners_and_modes(run):
    out = run("run", "--rm", "-v", "seeded:/srv/seed", "vimg", "sh", "-c",
              "stat -c '%n %u:%g %a' /srv/seed /srv/seed/owned /srv/seed/sub "
              "/srv/seed/sub/deep; readlink /srv/seed/passwd; cat /srv/seed/owned").stdout
    assert out.splitlines() == [
        "/srv/seed 1000:1000 750", "/srv/seed/owned 1000:1000 640", "/srv/seed/sub 1001:1001 700",
        "/srv/seed/sub/deep 0:0 644", "/etc/passwd", "seeded"]
    data = run.root / "volumes/seeded/_data"
    # the image's symlink is copied as a link: it points at the container's /etc, not followed
    assert (data / "passwd").is_symlink() and not (data / "etc").exists()
    # a volume that has content is never seeded again: the user's changes stay
    run("run", "--rm", "-v", "seeded:/srv/seed", "vimg", "sh", "-c",
        "rm /srv/seed/owned; echo mine > /srv/seed/new")
    out = run("run", "--rm", "-v", "seeded:/srv/seed", "vimg", "ls", "/srv/seed").stdout
    assert out.split() == ["new", "passwd", "sub"]
    # nocopy: an empty volume stays empty
    out = run("run", "--rm", "-v", "bare:/srv/seed:nocopy", "vimg", "ls", "-A",
              "/srv/seed").stdout
    assert out == ""
    run("volume", "rm", "seeded", "bare")


def test_anonymous_volumes_and_rm_v(run):
    before = volumes(run)
    cid = run("create", "-v", "/scratch", "-v", "named1:/n", "bb", "true").stdout.strip()
    made = volumes(run) - before
    assert "named1" in made and len(made) == 2
    anon = (made - {"named1"}).pop()
    assert len(anon) == 64
    mounts = json.loads(run("inspect", cid).stdout)[0]["Mounts"]
    assert {(m["Type"], m["Name"], m["Destination"]) for m in mounts} == {
        ("volume", anon, "/scratch"), ("volume", "named1", "/n")}
    # in use (even by a stopped container): refused, with the container named
    res = run("volume", "rm", anon, check=False)
    assert res.returncode == 1
    assert res.stderr == (f"Error response from daemon: remove {anon}: volume is in use - "
                          f"[{cid}]\n")
    run("rm", "-v", cid)
    assert volumes(run) == before | {"named1"}  # the anonymous one went, the named one stays
    # without -v the anonymous volume stays
    cid = run("create", "-v", "/scratch", "bb", "true").stdout.strip()
    anon = (volumes(run) - before - {"named1"}).pop()
    run("rm", cid)
    assert anon in volumes(run)
    run("volume", "rm", anon, "named1")
    assert volumes(run) == before


def test_run_rm_removes_its_anonymous_volumes_attached_and_detached(run):
    before = volumes(run)
    run("run", "--rm", "-v", "/scratch", "bb", "true")
    assert volumes(run) == before
    cid = run("run", "-d", "--rm", "-v", "/scratch", "bb", "true").stdout.strip()
    run("wait", cid, check=False)
    import time

    deadline = time.monotonic() + 10
    while cid[:12] in containers(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cid[:12] not in containers(run)
    assert volumes(run) == before


def test_the_image_volume_becomes_an_anonymous_volume_with_its_content(run):
    before = volumes(run)
    cid = run("run", "-d", "vimg", "sh", "-c", "cat /data/from-image; echo more > /data/x; "
              "grep ' /data ' /proc/mounts | cut -d' ' -f2").stdout.strip()
    run("wait", cid)
    assert run("logs", cid).stdout == "image data\n/data\n"
    (anon,) = volumes(run) - before
    assert (run.root / f"volumes/{anon}/_data/x").read_text() == "more\n"
    # a -v at the same path takes its place
    out = run("run", "--rm", "-v", "over:/data", "vimg", "ls", "/data").stdout
    assert out == "from-image\n"
    run("rm", "-v", cid)
    run("volume", "rm", "over")
    assert volumes(run) == before


def test_mount_flag_volume_bind_tmpfs(run, tmp_path):
    (tmp_path / "hostfile").write_text("from host\n")
    out = run("run", "--rm",
              "--mount", "type=volume,source=mnt1,target=/v,readonly",
              "--mount", f"type=bind,src={tmp_path},dst=/b",
              "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1700",
              "bb", "sh", "-c",
              "touch /v/x 2>/dev/null || echo v-ro; cat /b/hostfile; echo w > /b/back; "
              "stat -c %a /t; df -k /t | tail -1 | awk '{print $2}'").stdout
    assert out.splitlines() == ["v-ro", "from host", "1700", "1024"]
    assert (tmp_path / "back").read_text() == "w\n"
    # readonly=false is read-write; --mount type=volume without a source is anonymous
    before = volumes(run)
    cid = run("create", "--mount", "type=volume,dst=/anon", "--mount",
              "type=volume,src=mnt1,dst=/v,readonly=false", "bb", "touch", "/v/y").stdout.strip()
    run("start", "-a", cid)
    assert (run.root / "volumes/mnt1/_data/y").exists()
    assert len(volumes(run) - before) == 1
    run("rm", "-v", cid)
    assert volumes(run) == before
    run("volume", "rm", "mnt1")


def test_volume_opt_mounts_the_device(run, tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/in").write_text("bound\n")
    run("volume", "create", "-o", "type=none", "-o", f"device={tmp_path}/dev", "-o", "o=bind",
        "bindvol")
    out = run("run", "--rm", "-v", "bindvol:/x", "bb", "cat", "/x/in").stdout
    assert out == "bound\n"
    out = run("run", "--rm", "--mount", "type=volume,dst=/m,volume-opt=type=tmpfs,"
              "volume-opt=device=tmpfs,volume-opt=o=size=2m", "bb", "sh", "-c",
              "grep ' /m ' /proc/mounts | cut -d' ' -f1,3").stdout
    assert out == "tmpfs tmpfs\n"
    info = json.loads(run("volume", "inspect", "bindvol").stdout)[0]
    assert info["Options"] == {"type": "none", "device": f"{tmp_path}/dev", "o": "bind"}
    run("volume", "rm", "bindvol")
    assert (tmp_path / "dev/in").exists()  # the device's content is not the volume's to remove


def test_volumes_from(run):
    src = run("create", "--name", "vfsrc", "-v", "vf:/shared", "-v", "/anon", "bb",
              "sh", "-c", "echo from-src > /shared/f; echo a > /anon/a").stdout.strip()
    run("start", "-a", src)
    out = run("run", "--rm", "--volumes-from", "vfsrc", "bb", "cat", "/shared/f",
              "/anon/a").stdout
    assert out == "from-src\na\n"
    res = run("run", "--rm", "--volumes-from", "vfsrc:ro", "bb", "sh", "-c",
              "touch /shared/g", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    # the source's anonymous volume belongs to it: rm -v of a borrower keeps it
    before = volumes(run)
    cid = run("create", "--volumes-from", "vfsrc", "bb", "true").stdout.strip()
    run("rm", "-v", cid)
    assert volumes(run) == before
    res = run("run", "--rm", "--volumes-from", "nosuch", "bb", "true", check=False)
    assert res.returncode == 125 and "No such container: nosuch" in res.stderr
    run("rm", "-v", src)
    run("volume", "rm", "vf")


def test_volume_cli_create_ls_inspect_rm_prune(run):
    before = volumes(run)
    assert run("volume", "create", "--label", "a=1", "--label", "b", "lab").stdout == "lab\n"
    assert run("volume", "create", "lab").stdout == "lab\n"  # idempotent, as Docker
    anon = run("volume", "create").stdout.strip()
    assert len(anon) == 64
    ls = run("volume", "ls").stdout.splitlines()
    assert ls[0] == "DRIVER    VOLUME NAME"
    assert "local     lab" in ls
    assert run("volume", "ls", "-q", "--filter", "label=a=1").stdout == "lab\n"
    assert run("volume", "ls", "-q", "--filter", "name=la").stdout == "lab\n"
    info = json.loads(run("volume", "inspect", "lab").stdout)[0]
    assert info["Labels"] == {"a": "1", "b": ""}
    res = run("volume", "inspect", "lab", "nosuch", check=False)
    assert res.returncode == 1 and res.stderr == "Error: No such volume: nosuch\n"
    assert len(json.loads(res.stdout)) == 1
    res = run("volume", "rm", "nosuch", check=False)
    assert res.returncode == 1 and res.stderr == "Error: No such volume: nosuch\n"
    assert run("volume", "rm", "-f", "nosuch").returncode == 0
    # prune: the unused ones go (named too, as Docker 20.10), the used one stays
    cid = run("create", "-v", "used:/u", "bb", "true").stdout.strip()
    assert run("volume", "ls", "-q", "--filter", "dangling=false").stdout == "used\n"
    (run.root / "volumes/lab/_data/big").write_bytes(b"x" * 100_000)
    res = run("volume", "prune", "-f", "--filter", "label=a")
    assert res.stdout.startswith("Deleted Volumes:\nlab\n\nTotal reclaimed space: 1")
    out = run("volume", "prune", "-f").stdout
    assert anon in out and "used" not in out
    assert volumes(run) == before | {"used"}
    run("rm", cid)
    run("volume", "prune", "-f")
    assert volumes(run) == before


@pytest.mark.parametrize("flags, message", [
    (["-v", "rel:dir"], "invalid mount path: 'dir' mount path must be absolute"),
    (["-v", "x:/d"], '"x" includes invalid characters for a local volume name'),
    (["-v", "bad/name:/d"], "includes invalid characters for a local volume name"),
    (["-v", "good:/d:rw,ro"], "invalid mode: rw,ro"),
    (["-v", "good:/d:bogus"], "invalid mode: bogus"),
    (["-v", "a:b:c:d"], "invalid volume specification: 'a:b:c:d'"),
    (["-v", "good:/proc/x"], "/proc/x cannot be mounted because it is inside /proc"),
    (["-v", "good:/d", "-v", "other:/d"], "Duplicate mount point: /d"),
    (["-v", "good:/d", "--tmpfs", "/d"], "Duplicate mount point: /d"),
    (["--mount", "type=volume,src=good"], "field Target must not be empty"),
    (["--mount", "type=foo,dst=/d"], "invalid value for 'type': foo"),
    (["--mount", "type=volume,dst=/d,bogus=1"], "unexpected key 'bogus'"),
    (["--mount", "type=bind,src=/no/such/dir,dst=/d"],
     "bind source path does not exist: /no/such/dir"),
    (["--mount", "type=tmpfs,src=x,dst=/d"], "field Source must not be specified"),
    (["--mount", "type=bind,src=/tmp,dst=/d,volume-nocopy"], "cannot mix 'volume-*' options"),
    (["--mount", "type=volume,dst=/d,tmpfs-size=1m"], "cannot mix 'tmpfs-*' options"),
    (["--mount", "type=volume,src=good,dst=/d,volume-opt=bogus=1"], 'invalid option key: '
                                                                   '"bogus"'),
    (["--mount", "type=volume,dst=/d,readonly=maybe"], "invalid value for readonly: maybe"),
    (["--volumes-from", "x:rx"], "invalid mode: rx"),
])
def test_bad_input_is_one_line_rc_125_and_creates_nothing(run, flags, message):
    vols, ctrs = volumes(run), containers(run)
    res = run("run", "--rm", *flags, "bb", "true", check=False)
    assert res.returncode == 125, res.stderr
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert volumes(run) == vols and containers(run) == ctrs


def test_a_failed_create_takes_back_the_volumes_it_made(run):
    run("create", "--name", "taken", "bb", "true")
    vols = volumes(run)
    res = run("create", "--name", "taken", "-v", "fresh:/f", "-v", "/anon", "bb", "true",
              check=False)
    assert res.returncode == 1 and "is already in use" in res.stderr  # create: 1, run: 125
    assert volumes(run) == vols
    run("rm", "taken")


def test_volume_create_bad_input(run):
    for argv, message in (
            (["bad/name"], "includes invalid characters for a local volume name"),
            (["-d", "nfsplugin", "v1"], 'plugin "nfsplugin" not found'),
            (["-o", "foo=bar", "v1"], 'invalid option key: "foo"'),
            (["--name", "a1", "b1"], "conflicting options")):
        res = run("volume", "create", *argv, check=False)
        assert res.returncode != 0 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert "v1" not in volumes(run)
