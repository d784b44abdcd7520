"""Output and exit-code details of issue 10 that Docker users' scripts depend on, each as
Docker has it: exit codes, rmi -f of a running container's image, -it without a terminal,
typed-ahead input kept, pull -q, images REPO of a host:port registry."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.conftest import drain_pty, module_ctr

ctr = module_ctr("compat-bb")
REPO_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def pulled_ref(ctr) -> str:
    return next(args[2] for _root, args, _rc in ctr.calls if args[:2] == ("pull", "-q"))


def test_exit_codes_as_dockers(ctr):
    res = ctr("run", "--rm", "-u", "bogususer", "bb", "true", check=False)
    assert res.returncode == 125
    assert "unable to find user bogususer: no matching entries in passwd file" in res.stderr
    ctr("run", "-d", "--name", "codes", "bb", "sleep", "60")
    try:
        res = ctr("kill", "-s", "BOGUS", "codes", check=False)
        assert (res.returncode, res.stderr) == (1, "Error: Invalid signal: BOGUS\n")
        res = ctr("exec", "codes", "nosuchcmd", check=False)
        assert res.returncode == 126 and "executable file not found" in res.stderr
        assert ctr("exec", "codes", "sh", "-c", "exit 7", check=False).returncode == 7
    finally:
        ctr("rm", "-f", "codes")


def test_rmi_force_by_id_refused_while_a_running_container_uses_the_image(ctr):
    ref = pulled_ref(ctr)
    ctr("tag", ref, "compat-extra")
    image_id = ctr("inspect", "-f", "{{.Id}}", "bb").stdout.strip()[len("sha256:"):]
    ctr("run", "-d", "--name", "user", "compat-extra", "sleep", "60")
    try:
        res = ctr("rmi", "-f", image_id[:12], check=False)
        assert res.returncode == 1
        assert res.stderr == (f"Error: conflict: unable to delete {image_id[:12]} (cannot be "
                              "forced) - image is being used by running container "
                              f"{ctr('ps', '-q', '-f', 'name=user').stdout.strip()}\n")
        # nothing was untagged
        assert "compat-extra:latest" in ctr("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        # a tag alone may go, as Docker lets it
        assert ctr("rmi", "-f", "compat-extra").stdout == "Untagged: compat-extra:latest\n"
    finally:
        ctr("rm", "-f", "user")
    assert ctr("image", "inspect", "bb", check=False).returncode == 0


def test_pull_quiet_and_images_of_a_host_port_registry(ctr):
    ref = pulled_ref(ctr)
    assert ctr("pull", "-q", ref).stdout == f"{ref}\n"
    repo = ref.rpartition(":")[0]
    out = ctr("images", repo, "--format", "{{.Repository}} {{.Tag}}").stdout
    assert out == f"{repo} v1\n"
    assert ctr("images", ref, "-q").stdout.strip() != ""
    assert ctr("images", repo + ":nosuchtag", "-q").stdout == ""


def test_it_needs_a_terminal(ctr):
    for args in (["run", "-it", "--rm", "bb", "true"], ["exec", "-it", "nosuch", "true"]):
        res = ctr(*args, check=False)
        assert (res.returncode, res.stderr) == (1, "Error: the input device is not a TTY\n")
    assert ctr("ps", "-a", "-q").stdout == ""   # nothing was created


def test_run_it_keeps_what_was_typed_before_the_shell_started(ctr):
    master, slave = os.openpty()
    proc = subprocess.Popen(ctr.argv("run", "-it", "--rm", "bb", "sh"), stdin=slave,
                            stdout=slave, stderr=slave, env=ctr.env(), cwd=REPO_ROOT,
                            start_new_session=True)
    os.close(slave)
    # typed at once, before the engine has even put the terminal in raw mode
    os.write(master, b"echo early-$((6*7)); exit 4\n")
    try:
        text = drain_pty(master, proc)
    finally:
        os.close(master)
    assert proc.returncode == 4, text
    assert "early-42" in text


def _time_wait_port() -> int:
    """A loopback port whose last connection is in TIME_WAIT (the server closed first)."""
    import socket

    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        cli = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        conn.close()   # the active close: TIME_WAIT is on the server's side, on `port`
        cli.close()
    return int(port)


def test_a_port_in_time_wait_is_free_a_listener_is_a_conflict(ctr):
    import errno
    import socket

    import pytest

    port = _time_wait_port()
    with socket.socket() as s, pytest.raises(OSError) as e:
        s.bind(("127.0.0.1", port))   # what the probe without SO_REUSEADDR met (60 s long)
    assert e.value.errno == errno.EADDRINUSE
    ctr("run", "-d", "--name", "tw", "-p", f"127.0.0.1:{port}:7000", "bb", "sleep", "30")
    try:
        assert ctr("port", "tw", "7000").stdout == f"127.0.0.1:{port}\n"
    finally:
        ctr("rm", "-f", "tw")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        busy = listener.getsockname()[1]
        res = ctr("run", "--rm", "-p", f"127.0.0.1:{busy}:7000", "bb", "true", check=False)
    assert res.returncode == 125
    assert f"Bind for 127.0.0.1:{busy} failed: port is already in use" in res.stderr


def test_hostname_and_hosts_as_dockers(ctr):
    # --network host: the host's name and the host's hosts file
    out = ctr("run", "--rm", "--network", "host", "bb", "sh", "-c",
              "hostname; cat /etc/hostname").stdout.split()
    assert out == [os.uname().nodename] * 2
    with open("/etc/hosts") as f:
        assert ctr("run", "--rm", "--network", "host", "bb", "cat", "/etc/hosts").stdout == \
            f.read()
    # the default bridge: the host name once, not the name Docker (or we) made up
    line = ctr("run", "--rm", "-h", "myhost", "bb", "tail", "-1", "/etc/hosts").stdout
    assert line.split()[1:] == ["myhost"]


def test_network_create_refuses_a_subnet_another_bridge_routes(ctr):
    import uuid

    from tests.integration.conftest import free_subnet

    subnet = free_subnet("10.251")
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    foreign = f"pmdf{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", foreign, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{gateway}/24", "dev", foreign], check=True)
        subprocess.run(["ip", "link", "set", foreign, "up"], check=True)
        res = ctr("network", "create", "--subnet", subnet, "clash", check=False)
        assert (res.returncode, res.stderr) == (
            1, "Error: Pool overlaps with other one on this address space\n")
        assert "clash" not in ctr("network", "ls", "--format", "{{.Name}}").stdout
    finally:
        subprocess.run(["ip", "link", "del", foreign], check=True)
    # once the other bridge is gone the subnet is free
    ctr("network", "create", "--subnet", subnet, "clash")
    ctr("network", "rm", "clash")


def test_container_prune_filters(ctr):
    ids = {ctr("create", "--name", n, "bb", "true").stdout.strip() for n in ("p1", "p2")}
    try:
        assert ctr("container", "prune", "-f", "--filter", "until=1h").stdout == \
            "Deleted Containers:\n"                      # both are younger than an hour
        assert ctr("container", "prune", "-f", "--filter", "label=nope").stdout == \
            "Deleted Containers:\n"
        out = ctr("container", "prune", "-f", "--filter", "until=0s").stdout.splitlines()
        assert out[0] == "Deleted Containers:" and set(out[1:]) == ids
        res = ctr("container", "prune", "-f", "--filter", "status=exited", check=False)
        assert (res.returncode, res.stderr) == (1, "Error: invalid filter 'status'\n")
    finally:
        ctr("rm", "-f", "p1", "p2", check=False)


def test_list_filters_check_references_and_patterns_first(ctr):
    """As dockerd: a before/since reference that names nothing, or a bad name pattern, is an
    error even when nothing would be listed (these exited 0 with an empty list)."""
    for args, err in ((("ps", "--filter", "since=zz"), "Error: No such container: zz\n"),
                      (("ps", "-a", "--filter", "name=["), "Error: invalid filter 'name=['\n"),
                      (("images", "--filter", "before=nope"), "Error: No such image: nope\n"),
                      (("network", "ls", "--filter", "name=("),
                       "Error: invalid filter 'name=('\n"),
                      (("volume", "ls", "--filter", "dangling=maybe"),
                       "Error: invalid filter 'dangling=maybe'\n"),
                      (("volume", "prune", "-f", "--filter", "name=x"),
                       "Error: invalid filter 'name'\n")):
        res = ctr(*args, check=False)
        assert (res.returncode, res.stdout, res.stderr) == (1, "", err), args


def test_a_user_gets_the_supplementary_groups_of_the_images_etc_group(ctr, publish):
    # Docker: -u NAME takes the user's groups from the image's /etc/group, and --group-add
    # adds to them
    from tests.integration import images as I

    entries = [e for e in I.full_busybox_entries() if e.path not in ("etc/passwd", "etc/group")]
    entries += [I.Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                        b"app:x:1000:1000::/:/bin/sh\n"),
                I.Entry("etc/group", data=b"root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n"
                        b"staff:x:50:other\naudio:x:29:app\n")]
    img = I.build_image([I.make_layer(entries)], config_extra={"Env": ["PATH=/bin"]})
    pushed = publish(img, "compat-groups", "v1")
    ref = f"{pushed.host}/{pushed.repo}:{pushed.tag}"
    ctr("pull", "-q", ref)
    out = ctr("run", "--rm", "-u", "app", ref, "id", "-G").stdout.split()
    assert out[0] == "1000" and sorted(out[1:]) == ["10", "29"]
    out = ctr("run", "--rm", "-u", "app", "--group-add", "50", ref, "id", "-G").stdout.split()
    assert sorted(out[1:]) == ["10", "29", "50"]
    ctr("rmi", ref)
