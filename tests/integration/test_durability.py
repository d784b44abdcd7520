"""A broken record never blocks the rest of the store: what a power cut or a full disk leaves
(an empty or garbled file) is named, listed around, and removable."""
from __future__ import annotations

import shutil

from tests.integration.conftest import module_ctr

ctr = module_ctr("ctr-durability")


def test_a_corrupt_container_config_blocks_nothing_else(ctr):
    good = ctr("create", "--network", "none", "--name", "good", "bb", "true").stdout.strip()
    bad = ctr("create", "--network", "none", "--name", "bad", "bb", "true").stdout.strip()
    (ctr.root / "containers" / bad / "config.json").write_bytes(b"")  # as a power cut leaves it
    try:
        ps = ctr("ps", "-a", "--format", "json")
        assert ps.returncode == 0
        assert "good" in ps.stdout and "bad" not in ps.stdout
        warnings = ps.stderr.strip().splitlines()
        assert len(warnings) == 1 and bad[:12] in warnings[0] and "corrupt" in warnings[0]
        # another container still runs, and is named and removed
        assert ctr("run", "--rm", "--network", "none", "bb", "echo", "ok").stdout == "ok\n"
        ins = ctr("inspect", bad[:12], check=False)
        assert ins.returncode == 1 and "corrupt record" in ins.stderr
        assert len(ins.stderr.strip().splitlines()) == 1
        assert ctr("rm", bad[:12], check=False).returncode == 1  # without -f: refused
        assert ctr("rm", "-f", bad[:12]).returncode == 0
        assert not (ctr.root / "containers" / bad).exists()
        assert ctr("ps", "-a").stderr == ""
    finally:
        ctr("rm", "-f", good, bad, check=False)


def test_a_lost_state_reads_as_exited_with_its_code_unknown(ctr):
    cid = ctr("create", "--network", "none", "bb", "true").stdout.strip()
    try:
        (ctr.root / "containers" / cid / "state.json").write_bytes(b"{\"status\": ")
        line = ctr("ps", "-a").stdout.splitlines()[1]
        assert cid[:12] in line and "Exited (-1)" in line
        assert ctr("start", "-a", cid).returncode == 0  # and it starts again
        assert "Exited (0)" in ctr("ps", "-a").stdout.splitlines()[1]
    finally:
        ctr("rm", "-f", cid)


def test_an_image_id_that_is_not_here_is_not_pulled(ctr):
    missing = "sha256:" + "ab" * 32
    res = ctr("run", "--rm", "--network", "none", missing, "true", check=False)
    assert res.returncode == 125
    assert res.stderr.strip() == f"Error: No such image: {missing}", res.stderr
    assert "docker.io/library/sha256" not in res.stderr + res.stdout


def test_a_corrupt_image_record_blocks_nothing_else(ctr):
    # a second image record beside bb's, garbled as a power cut or a bad disk leaves one
    images = ctr.root / "images"
    (good,) = [p for p in images.iterdir() if not p.name.startswith(".")]
    fake = images / ("f" * 64)
    fake.mkdir()
    (fake / "images.json").write_bytes(b"\x00garbage")
    try:
        res = ctr("images")
        assert res.returncode == 0 and "bb" in res.stdout
        warnings = res.stderr.strip().splitlines()
        assert len(warnings) == 1 and "ffffffffffff" in warnings[0] and "corrupt" in warnings[0]
        assert ctr("run", "--rm", "--network", "none", "bb", "echo", "ok").stdout == "ok\n"
        assert ctr("rmi", "ffffffffffff", check=False).returncode == 1
        assert ctr("rmi", "-f", "ffffffffffff").stdout == f"Deleted: sha256:{'f' * 64}\n"
        assert not fake.exists() and (good / "images.json").exists()
        assert ctr("images").stderr == ""
    finally:
        if fake.exists():
            shutil.rmtree(fake)
