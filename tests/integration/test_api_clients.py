"""The Docker Engine API over the engine, driven by real clients: the docker CLI 28.x and
Debian's 20.10, docker-py. One server per module over a store of its own (busybox as `bb`,
pulled from the test registry; a bridge and subnet of its own), stopped at the end with
nothing left behind."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration.apiserver import CLIS, DEFAULT_CLI, DOCKER_28, HAVE_28, ApiServer
from tests.integration.conftest import cgroups_left, free_subnet, remove_leftovers

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pyminidocker.engine") is None,
                                reason="the endpoints call the engine API (issue 9)")


SEEN: set[str] = set()  # ids of the containers this module's store has had


@pytest.fixture(autouse=True)
def _seen(request):
    """After each test: every container the store made, those removed meanwhile too (a
    container made and removed within a test can leave a cgroup), from its event log."""
    yield
    if "api" in request.fixturenames:
        root = request.getfixturevalue("api").pmd.root
        for log in (root / "events.jsonl.1", root / "events.jsonl"):
            events = [json.loads(line) for line in log.read_text().splitlines()] \
                if log.exists() else []
            SEEN.update(e["Actor"]["ID"] for e in events
                        if e["Type"] == "container" and e["Action"] == "create")


def our_cgroups_left() -> list[str]:
    """The container cgroups left of this module's containers (those of other test runs on
    this host are theirs to check)."""
    return [c for c in cgroups_left() if Path(c).name in SEEN]


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, publish, pmd_factory):
    # store_with_bb's store and bridge, without its finalizer: that one counts every
    # container cgroup on the host, other test runs' too
    pushed = publish(I.busybox_image(), "apiclients", "v1")
    run = pmd_factory(tmp_path_factory.mktemp("apiclients-store"))
    run.bridge = f"pmdt{uuid.uuid4().hex[:8]}"
    (run.root / "config.json").write_text(
        f'{{"default-subnet": "{free_subnet()}", "default-bridge": "{run.bridge}"}}')
    run("pull", "-q", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    run("tag", f"{pushed.host}/{pushed.repo}:{pushed.tag}", "bb")
    server = ApiServer(run, tmp_path_factory.mktemp("api"), shared=True).start()
    server.registry_ref = f"{publish(I.busybox_image(), 'apipull', 'v2').host}/apipull:v2"
    try:
        yield server
    finally:
        code, err = server.stop()
        left = remove_leftovers(run)
        # the engine's chains are shared with other stores (other test runs on this host may
        # be using them: then iptables says busy and they stay); this store's bridge goes
        reset = run("system", "reset", "-f", check=False)
        busy = reset.returncode != 0 and "Device or resource busy" in reset.stderr
        if busy and Path(f"/sys/class/net/{run.bridge}").exists():
            subprocess.run(["ip", "link", "delete", run.bridge], check=True)
    assert code == 0, err
    assert reset.returncode == 0 or busy, reset.stderr
    assert not server.sock.exists()
    assert left == [], "containers left behind by the tests"
    assert not Path(f"/sys/class/net/{run.bridge}").exists(), "the bridge is left"
    assert our_cgroups_left() == [], "cgroups left behind"


@pytest.mark.parametrize("cli", CLIS)
def test_pull_images_rmi(api, cli):
    ref = api.registry_ref
    out = api.docker("pull", ref, cli=cli).stdout
    assert "Digest: sha256:" in out
    assert f"for {ref}" in out
    listed = api.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", cli=cli)
    assert any(line.startswith(f"{ref} ") for line in listed.stdout.splitlines())
    inspected = api.docker("image", "inspect", "-f", "{{.Os}}", ref, cli=cli).stdout
    assert inspected == "linux\n"
    removed = api.docker("rmi", ref, cli=cli).stdout
    assert f"Untagged: {ref}" in removed
    res = api.docker("image", "inspect", ref, cli=cli, check=False)
    assert res.returncode == 1 and "No such image" in res.stderr


def test_list_filters_are_the_clis(api):
    """ps, images, volume ls and container prune filter through the API as the CLI does
    (one implementation, engine.filters): exited, since, a limit showing stopped ones, bad
    filters as 400s with Docker's words, references looked up first."""
    ids = {}
    try:
        for name, code in (("fexit3", 3), ("fexit0", 0)):
            api.docker("run", "--name", name, "--label", f"fgroup={name}", "bb", "sh", "-c",
                       f"exit {code}", check=False)
            ids[name] = api.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
        names = lambda *f: api.docker("ps", *f, "--format", "{{.Names}}").stdout.split()  # noqa
        assert names("-a", "--filter", "exited=3") == ["fexit3"]
        assert names("--filter", "exited=0") == ["fexit0"]        # exited: stopped ones too
        assert names("-a", "--filter", "since=fexit3", "--filter", "name=^/fexit") == ["fexit0"]
        assert names("-a", "--filter", "before=fexit0", "--filter", "name=fexit") == ["fexit3"]
        assert "fexit0" in names("-n", "1")
        for args, words in ((("ps", "--filter", "since=zz"), "No such container: zz"),
                            (("ps", "--filter", "name=["), "invalid filter 'name=['"),
                            (("ps", "--filter", "colour=red"), "invalid filter 'colour'"),
                            (("images", "--filter", "before=nope:1"), "No such image"),
                            (("volume", "ls", "--filter", "dangling=maybe"),
                             "invalid filter 'dangling=maybe'")):
            res = api.docker(*args, check=False)
            assert res.returncode == 1 and words in res.stderr, (args, res.stderr)
        assert api.docker("images", "--filter", "since=bb", "--format", "{{.Repository}}"
                          ).stdout == ""
        out = api.docker("container", "prune", "-f", "--filter", "label=fgroup=fexit3").stdout
        assert ids["fexit3"] in out and ids["fexit0"] not in out
        assert names("-a", "--filter", "name=fexit") == ["fexit0"]
    finally:
        api.docker("rm", "-f", *ids, check=False)


def test_stop_signal_and_timeout_through_the_api(api):
    """docker run --stop-signal/--stop-timeout reach the container (the API dropped them), and
    malformed create bodies are 400s in Go's words, not internal errors."""
    cid = api.docker("run", "-d", "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "bb",
                     "sh", "-c", "trap 'echo got-usr1; exit 7' USR1; "
                     "while :; do sleep 0.1; done").stdout.strip()
    try:
        assert api.docker("inspect", "-f", "{{.Config.StopSignal}} {{.Config.StopTimeout}}",
                          cid).stdout == "SIGUSR1 5\n"
        api.docker("stop", cid)
        assert api.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout == "7\n"
        assert "got-usr1" in api.docker("logs", cid).stdout
    finally:
        api.docker("rm", "-f", cid, check=False)
    bad = api.docker("run", "--rm", "--stop-signal", "SIGBOGUS", "bb", "true", check=False)
    assert bad.returncode == 125 and "Invalid signal: SIGBOGUS" in bad.stderr
    for body in ({"Image": "bb", "HostConfig": {"RestartPolicy": "always"}},
                 {"Image": "bb", "HostConfig": {"PortBindings": {"80/tcp": "8080"}}},
                 {"Image": "bb", "HostConfig": {"Memory": 10**30}}):
        status, doc = api.request("POST", "/containers/create", body)
        assert status == 400 and "cannot unmarshal" in doc["message"], (body, doc)


@pytest.mark.parametrize("cli", CLIS)
def test_run_attached_and_rm(api, cli):
    res = api.docker("run", "--rm", "--name", "attached", "bb", "sh", "-c",
                     "echo out; echo err >&2; exit 3", cli=cli, check=False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert api.docker("ps", "-aq", "--filter", "name=attached", cli=cli).stdout == ""


@pytest.mark.parametrize("cli", CLIS)
def test_detached_lifecycle(api, cli):
    name = f"life-{cli.split('/')[2]}"
    cid = api.docker("run", "-d", "--name", name, "bb", "sh", "-c",
                     "echo started; trap 'echo bye; exit 7' TERM; sleep 60 & wait", cli=cli
                     ).stdout.strip()
    assert len(cid) == 64
    ps = api.docker("ps", "--format", "{{.Names}} {{.Status}}", cli=cli).stdout
    assert f"{name} Up" in ps
    assert api.docker("inspect", "-f", "{{.State.Running}} {{.Name}}", name,
                      cli=cli).stdout == f"true /{name}\n"
    deadline = time.monotonic() + 10
    while "started" not in api.docker("logs", name, cli=cli).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    api.docker("stop", "-t", "5", name, cli=cli)
    assert api.docker("wait", name, cli=cli).stdout == "7\n"
    assert api.docker("logs", name, cli=cli).stdout == "started\nbye\n"
    res = api.docker("rm", name, cli=cli)
    assert res.stdout == f"{name}\n"
    res = api.docker("inspect", name, cli=cli, check=False)
    assert res.returncode == 1


def test_logs_follow_and_streams(api):
    cid = api.docker("run", "-d", "bb", "sh", "-c",
                     "echo one; sleep 1; echo two >&2; sleep 1; echo three").stdout.strip()
    try:
        res = api.docker("logs", "-f", cid, timeout=30)
        assert res.stdout == "one\nthree\n"
        assert res.stderr == "two\n"
        assert api.docker("logs", "--tail", "1", cid).stdout == "three\n"
    finally:
        api.docker("rm", "-f", cid)


def test_kill_wait_and_conflicts(api):
    cid = api.docker("run", "-d", "bb", "sleep", "60").stdout.strip()
    res = api.docker("rm", cid, check=False)
    assert res.returncode == 1
    assert "You cannot remove a running container" in res.stderr
    api.docker("kill", cid)
    # as dockerd's, a SIGKILL's answer comes once the container is gone
    assert api.docker("inspect", "-f", "{{.State.Status}}", cid).stdout == "exited\n"
    assert api.docker("wait", cid).stdout == "137\n"
    res = api.docker("kill", cid, check=False)
    assert res.returncode == 1 and "is not running" in res.stderr
    api.docker("rm", cid)
    res = api.docker("start", "no-such-container", check=False)
    assert res.returncode == 1 and "No such container: no-such-container" in res.stderr


@pytest.mark.parametrize("cli", CLIS)
def test_info_and_system_df(api, cli):
    out = api.docker("info", "--format", "{{.ServerVersion}} {{.Driver}} {{.OSType}} "
                     "{{.Images}}", cli=cli).stdout.split()
    assert out[1:3] == ["overlay2", "linux"] and int(out[3]) >= 1
    df = api.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}", cli=cli).stdout
    lines = dict(line.split(" ", 1) for line in df.splitlines())
    assert int(lines["Images"]) >= 1
    assert "Containers" in lines


def test_networks_by_name(api):
    api.docker("network", "create", "apinet")
    try:
        listed = api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert {"apinet", "bridge", "host", "none"} <= set(listed)  # Docker's predefined three
        assert api.docker("network", "ls", "-q", "--filter", "type=builtin").stdout.count(
            "\n") == 3
        api.docker("run", "-d", "--name", "server1", "--network", "apinet", "bb",
                   "sleep", "60")
        res = api.docker("run", "--rm", "--network", "apinet", "bb", "ping", "-c", "1",
                         "-W", "5", "server1", check=False, timeout=60)
        assert res.returncode == 0, res.stderr
        # create's EndpointsConfig.<net>.IPAMConfig.IPv4Address (the CLI's run --ip)
        sub = api.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}",
                         "apinet").stdout.strip().rsplit(".", 1)[0]
        assert f" {sub}.66/" in api.docker("run", "--rm", "--network", "apinet", "--ip",
                                          f"{sub}.66", "bb", "ip", "-4", "-o", "addr", "show",
                                          "eth0").stdout
        if HAVE_28:  # Docker 20.10's CLI sends no endpoint for the default network (drops --ip)
            res = api.docker("run", "--rm", "--ip", "10.9.9.9", "bb", "true", check=False,
                             cli=DOCKER_28)
            assert res.returncode != 0 and "user defined networks only" in res.stderr, res
        api.docker("network", "create", "apinet2")
        subnet = api.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}",
                            "apinet2").stdout.strip()
        wanted = subnet.rsplit(".", 1)[0] + ".77"  # EndpointConfig.IPAMConfig.IPv4Address
        api.docker("network", "connect", "--ip", wanted, "apinet2", "server1")
        assert f" {wanted}/" in api.docker("exec", "server1", "ip", "-4", "-o", "addr", "show",
                                          "eth1").stdout
        nets = api.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}"
                          "{{$k}} {{end}}", "server1").stdout.split()
        assert sorted(nets) == ["apinet", "apinet2"]
        api.docker("network", "disconnect", "apinet2", "server1")
        res = api.docker("network", "rm", "apinet", check=False)
        assert res.returncode == 1 and "active endpoints" in res.stderr
    finally:
        api.docker("rm", "-f", "server1", check=False)
        api.docker("network", "rm", "apinet", "apinet2", check=False)
    assert "apinet" not in api.docker("network", "ls", "--format", "{{.Name}}").stdout


@pytest.mark.parametrize("cli", CLIS)
def test_network_connect_with_aliases(api, cli):
    """POST /networks/{id}/connect with EndpointConfig.Aliases (the CLI's --alias): the
    aliases are the container's on that network only; the other network's members and DNS
    server do not know them; disconnect takes them away."""
    tag = cli.split("/")[2]
    one, two, ctr = f"alnet1-{tag}", f"alnet2-{tag}", f"aliased-{tag}"
    api.docker("network", "create", one, cli=cli)
    api.docker("network", "create", two, cli=cli)
    try:
        api.docker("run", "-d", "--name", ctr, "--network", one, "--network-alias", "first",
                   "bb", "sleep", "60", cli=cli)
        api.docker("network", "connect", "--alias", "second", two, ctr, cli=cli)
        aliases = api.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}"
                             "{{$k}}={{join $v.Aliases \",\"}} {{end}}", ctr, cli=cli).stdout
        short = api.docker("inspect", "-f", "{{.Id}}", ctr, cli=cli).stdout[:12]
        assert sorted(aliases.split()) == sorted([f"{one}=first,{short}",
                                                  f"{two}=second,{short}"])

        def lookup(network: str, name: str) -> subprocess.CompletedProcess:
            # the trailing dot: no search domain, nothing forwarded off the host
            return api.docker("run", "--rm", "--network", network, "bb", "nslookup",
                              f"{name}.", cli=cli, check=False, timeout=60)

        assert lookup(two, "second").returncode == 0
        assert lookup(two, "first").returncode != 0
        assert lookup(one, "first").returncode == 0
        assert lookup(one, "second").returncode != 0
        api.docker("network", "disconnect", two, ctr, cli=cli)
        assert lookup(two, "second").returncode != 0
        res = api.docker("network", "connect", "--alias", "x", "bridge", ctr, cli=cli,
                         check=False)
        assert res.returncode != 0 and "network-scoped alias" in res.stderr
    finally:
        api.docker("rm", "-f", ctr, cli=cli, check=False)
        api.docker("network", "rm", one, two, cli=cli, check=False)


def test_docker_py_connects_with_aliases(api):
    script = r'''
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
one, two = c.networks.create("pyal1"), c.networks.create("pyal2")
try:
    ctr = c.containers.run("bb", ["sleep", "60"], detach=True, network="pyal1", name="pyal")
    two.connect(ctr, aliases=["pyalias"])
    ctr.reload()
    print(ctr.attrs["NetworkSettings"]["Networks"]["pyal2"]["Aliases"][0])
    print(c.containers.run("bb", ["nslookup", "pyalias."], network="pyal2", remove=True)
          .decode().count("Address"))
    two.disconnect(ctr)
    ctr.reload()
    print(sorted(ctr.attrs["NetworkSettings"]["Networks"]))
finally:
    for x in c.containers.list(all=True, filters={"name": "pyal"}):
        x.remove(force=True)
    one.remove()
    two.remove()
'''
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}"], check=False,
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    pyalias, addresses, networks = res.stdout.splitlines()
    assert (pyalias, networks) == ("pyalias", "['pyal1']")
    assert int(addresses) >= 2  # the server's, and pyal's on pyal2


def test_docker_py(api):
    script = r'''
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
out = c.containers.run("bb", ["sh", "-c", "echo hi from docker-py"], remove=True)
print(out.decode().strip())
ctr = c.containers.run("bb", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"],
                       detach=True)
print(",".join(l.decode().strip() for l in ctr.logs(stream=True, follow=True)))
print(ctr.wait()["StatusCode"])
ctr.reload()
print(ctr.status)
ctr.remove()
print(sorted(t for i in c.images.list() for t in i.tags if t.startswith("bb")))
net = c.networks.create("pynet")
print(c.networks.get("pynet").name)
net.remove()
try:
    c.containers.get("nope")
except docker.errors.NotFound as e:
    print("NotFound", e.explanation)
'''
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}"], check=False,
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "hi from docker-py", "line1,line2,line3", "0", "exited", "['bb:latest']", "pynet",
        "NotFound No such container: nope"]


@pytest.fixture(scope="module")
def sleeper(api):
    cid = api.docker("run", "-d", "--name", "sleeper", "bb", "sleep", "600").stdout.strip()
    yield cid
    api.docker("rm", "-f", cid)


@pytest.mark.parametrize("cli", CLIS)
def test_exec(api, sleeper, cli):
    res = api.docker("exec", "sleeper", "sh", "-c", "echo out; echo err >&2; exit 5",
                     cli=cli, check=False)
    assert (res.returncode, res.stdout, res.stderr) == (5, "out\n", "err\n")
    res = api.docker("exec", "-i", "sleeper", "sh", "-c", "tr a-z A-Z; exit 4", cli=cli,
                     check=False, input="hello\nworld\n")
    assert (res.returncode, res.stdout) == (4, "HELLO\nWORLD\n")
    res = api.docker("exec", "-e", "X=1", "-w", "/tmp", "-u", "1000", "sleeper", "sh", "-c",
                     "echo $X $(pwd) $(id -u)", cli=cli)
    assert res.stdout == "1 /tmp 1000\n"
    res = api.docker("exec", "sleeper", "no-such-command", cli=cli, check=False)
    assert res.returncode in (126, 127)
    res = api.docker("exec", "no-such-ctr", "true", cli=cli, check=False)
    assert res.returncode == 1 and "No such container: no-such-ctr" in res.stderr


def test_exec_tty_through_a_pty(api, sleeper):
    """docker exec -it, from a terminal: the CLI's stdin is a pty (as `script` gives it)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(DEFAULT_CLI, [DEFAULT_CLI, "exec", "-it", "sleeper", "sh", "-c",
                               "stty size; read x; echo got:$x; exit 9"], api.env())
    out = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"\n" in out:  # stty size printed: the command reads now
                os.write(fd, b"ping\r")
                sent = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 9, out
    assert b"got:ping" in out
    assert b"\r\n" in out  # a tty's line discipline, not a pipe's


def test_docker_py_exec_run(api, sleeper):
    script = r'''
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.get("sleeper")
r = ctr.exec_run(["sh", "-c", "echo a; echo b >&2; exit 2"])
print(r.exit_code, sorted(r.output.decode().split()))
r = ctr.exec_run(["sh", "-c", "echo x; echo y >&2"], demux=True)
print(r.exit_code, r.output)
'''
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}"], check=False,
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["2 ['a', 'b']", "0 (b'x\\n', b'y\\n')"]


@pytest.mark.parametrize("cli", CLIS)
def test_run_interactive(api, cli):
    res = api.docker("run", "-i", "--rm", "--name", "interactive", "bb", "sh", "-c",
                     "tr a-z A-Z; echo done >&2; exit 6", cli=cli, check=False,
                     input="hello\nworld\n")
    assert (res.returncode, res.stdout, res.stderr) == (6, "HELLO\nWORLD\n", "done\n")
    assert api.docker("ps", "-aq", "--filter", "name=interactive", cli=cli).stdout == ""


def test_run_it_through_a_pty(api):
    """docker run -it from a terminal: the container's console is a tty of its size."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        # the CLI sizes the container's console as its own terminal
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execvpe(DEFAULT_CLI, [DEFAULT_CLI, "run", "-it", "--rm", "bb", "sh", "-c",
                               "tty; sleep 0.5; stty size; read x; echo got:$x; exit 8"],
                   api.env())
    out = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"/dev/pts/" in out:
                os.write(fd, b"pong\r")
                sent = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 8, out
    assert b"got:pong" in out
    assert b"33 101" in out


def test_events_with_docker_py_and_the_cli(api):
    """docker-py's events() and `docker events` see a container's life: create, start, die
    (with its exit code), destroy."""
    script = r'''
import sys, threading, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
seen = []
stream = c.events(decode=True, filters={"type": "container", "container": "evented"})
def read():
    for ev in stream:
        seen.append((ev["Action"], ev["Actor"]["Attributes"].get("exitCode")))
        if ev["Action"] == "destroy":
            return
t = threading.Thread(target=read, daemon=True)
t.start()
time.sleep(0.5)
ctr = c.containers.run("bb", ["sh", "-c", "sleep 1; exit 3"], name="evented", detach=True)
ctr.wait()
ctr.remove()
t.join(10)
stream.close()
print(seen)
'''
    until = str(int(time.time()) + 8)
    cli = subprocess.Popen([DEFAULT_CLI, "events", "--filter", "container=evented2",
                            "--format", "{{.Action}}", "--until", until],
                           stdout=subprocess.PIPE, text=True, env=api.env())
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}"], check=False,
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ("[('create', None), ('start', None), ('die', '3'), "
                                  "('destroy', None)]")
    api.docker("run", "--rm", "--name", "evented2", "bb", "sh", "-c", "sleep 1")
    out, _ = cli.communicate(timeout=30)
    assert out.split() == ["create", "start", "die", "destroy"]


@pytest.mark.parametrize("cli", CLIS)
def test_events_replay_the_shared_log_between_since_and_until(api, cli):
    """What our CLI did on the same store is in the log that `docker events --since --until`
    and docker-py's events(since, until) replay, and the stream ends at until."""
    t0 = time.time()
    name = f"replay{uuid.uuid4().hex[:6]}"
    api.pmd("create", "--name", name, "bb", "true")
    api.pmd("rm", name)
    api.docker("volume", "create", name, cli=cli)
    api.docker("volume", "rm", name, cli=cli)
    t1 = time.time() + 0.2
    time.sleep(0.3)
    out = api.docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter",
                     f"container={name}", "--format", "{{.Type}} {{.Action}} "
                     "{{.Actor.Attributes.name}}", cli=cli, timeout=20)
    assert out.stdout.splitlines() == [f"container create {name}", f"container destroy {name}"]
    out = api.docker("events", "--since", "1m", "--until", f"{t1:.3f}", "--filter",
                     f"volume={name}", cli=cli, timeout=20)
    assert [line.split(" ", 1)[1] for line in out.stdout.splitlines()] == [
        f"volume create {name} (driver=local)", f"volume destroy {name} (driver=local)"]
    script = ("import sys, docker; c = docker.DockerClient(base_url=sys.argv[1]); "
              "print([(e['Type'], e['Action'], e['Actor']['ID']) for e in c.events("
              "since=int(sys.argv[2]), until=int(sys.argv[3]) + 1, decode=True, "
              "filters={'type': 'volume', 'volume': sys.argv[4]})])")
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}", str(int(t0)),
                          str(int(t1)), name], capture_output=True, text=True, timeout=30,
                         cwd="/", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str([("volume", "create", name), ("volume", "destroy", name)])
    bad = api.docker("events", "--filter", "nope=1", "--until", "0s", cli=cli, check=False)
    assert bad.returncode != 0 and "invalid filter 'nope'" in bad.stderr


@pytest.mark.parametrize("cli", CLIS)
def test_docker_attach_to_a_detached_interactive_container(api, cli):
    """`docker attach` to a container run with -d -i: what it reads on its stdin comes from
    the client, its output and exit code are attach's; --no-stdin leaves its stdin alone."""
    name = f"attached{uuid.uuid4().hex[:6]}"
    api.docker("run", "-d", "-i", "--name", name, "bb", "sh", "-c",
               "read a; echo got:$a; read b; echo err:$b >&2; exit 6", cli=cli)
    try:
        res = subprocess.run([cli, "attach", name], input="one\ntwo\n", capture_output=True,
                             text=True, env=api.env(), timeout=60, check=False)
        assert (res.returncode, res.stdout, res.stderr) == (6, "got:one\n", "err:two\n")
    finally:
        api.docker("rm", "-f", name, cli=cli, check=False)
    api.docker("run", "-d", "-i", "--name", name, "bb", "sh", "-c",
               "sleep 1; echo out; exit 2", cli=cli)
    try:
        res = subprocess.run([cli, "attach", "--no-stdin", name], input="ignored\n",
                             capture_output=True, text=True, env=api.env(), timeout=60,
                             check=False)
        assert (res.returncode, res.stdout) == (2, "out\n"), res.stderr
    finally:
        api.docker("rm", "-f", name, cli=cli, check=False)


@pytest.mark.parametrize("cli", CLIS)
def test_volumes_and_labels(api, cli):
    api.docker("volume", "create", "--label", "k=v", "apivol", cli=cli)
    try:
        assert api.docker("volume", "ls", "--format", "{{.Name}}", "--filter", "label=k=v",
                          cli=cli).stdout == "apivol\n"
        assert api.docker("volume", "inspect", "-f", "{{.Labels}}", "apivol",
                          cli=cli).stdout == "map[k:v]\n"
        api.docker("run", "--rm", "--label", "role=writer", "-v", "apivol:/data", "bb", "sh",
                   "-c", "echo kept > /data/f", cli=cli)
        out = api.docker("run", "--rm", "-v", "apivol:/data", "bb", "cat", "/data/f", cli=cli)
        assert out.stdout == "kept\n"
        cid = api.docker("create", "--label", "role=reader", "-v", "apivol:/data", "bb", "true",
                         cli=cli).stdout.strip()
        assert api.docker("ps", "-aq", "--no-trunc", "--filter", "label=role=reader",
                          cli=cli).stdout == cid + "\n"
        # the list's Mounts, which the CLI's MOUNTS column reads (volume names)
        assert api.docker("ps", "-a", "--filter", "label=role=reader", "--format",
                          "{{.Mounts}}", cli=cli).stdout == "apivol\n"
        assert api.docker("inspect", "-f", "{{.Config.Labels.role}}", cid,
                          cli=cli).stdout == "reader\n"
        api.docker("rm", cid, cli=cli)
        res = api.docker("volume", "rm", "no-such-volume", cli=cli, check=False)
        assert res.returncode == 1
    finally:
        api.docker("volume", "rm", "-f", "apivol", cli=cli, check=False)
    assert "apivol" not in api.docker("volume", "ls", "-q", cli=cli).stdout


@pytest.mark.parametrize("cli", CLIS)
def test_top_stats_update_pause_diff(api, cli):
    name = f"verbs-{cli.split('/')[2]}"
    api.docker("run", "-d", "--name", name, "bb", "sh", "-c",
               "echo x > /tmp/made; rm /bin/true; exec sleep 600", cli=cli)
    try:
        top = api.docker("top", name, cli=cli).stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and "sleep 600" in top[1]
        top = api.docker("top", name, "-o", "pid,comm", cli=cli).stdout.split()
        assert top[:2] == ["PID", "COMMAND"] and top[3] == "sleep"
        api.docker("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "50",
                   "--cpus", "0.5", "--restart", "on-failure:3", name, cli=cli)
        got = api.docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} "
                         "{{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}:"
                         "{{.HostConfig.RestartPolicy.MaximumRetryCount}}", name, cli=cli)
        assert got.stdout == f"{64 << 20} 50 500000000 on-failure:3\n"
        row = api.docker("stats", "--no-stream", "--format",
                         "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", name, cli=cli)
        got_name, cpu, mem, pids = row.stdout.strip().split("|")
        assert (got_name, pids) == (name, "1")
        assert cpu.endswith("%") and float(cpu[:-1]) < 50
        used, limit = mem.split(" / ")
        assert limit == "64MiB" and used != "0B"
        api.docker("pause", name, cli=cli)
        assert api.docker("inspect", "-f", "{{.State.Status}}", name,
                          cli=cli).stdout == "paused\n"
        res = api.docker("pause", name, cli=cli, check=False)
        assert res.returncode == 1 and "already paused" in res.stderr
        api.docker("unpause", name, cli=cli)
        assert api.docker("inspect", "-f", "{{.State.Status}}", name,
                          cli=cli).stdout == "running\n"
        diff = api.docker("diff", name, cli=cli).stdout.splitlines()
        assert "A /tmp/made" in diff and "D /bin/true" in diff and "C /bin" in diff
        res = api.docker("update", "--memory", "1z", name, cli=cli, check=False)
        assert res.returncode != 0
    finally:
        api.docker("rm", "-f", name, cli=cli)
    res = api.docker("top", name, cli=cli, check=False)
    assert res.returncode == 1 and "No such container" in res.stderr


def test_stats_and_top_with_docker_py(api, sleeper):
    """docker-py's own reading of the stats (one-shot and streamed) and of top."""
    script = r'''
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.get("sleeper")
s = ctr.stats(stream=False)
cpu = s["cpu_stats"]["cpu_usage"]["total_usage"] - s["precpu_stats"]["cpu_usage"]["total_usage"]
system = s["cpu_stats"]["system_cpu_usage"] - s["precpu_stats"]["system_cpu_usage"]
print(cpu >= 0, system > 0, s["cpu_stats"]["online_cpus"] >= 1)
print(0 < s["memory_stats"]["usage"] <= s["memory_stats"]["limit"], s["pids_stats"]["current"])
print(s["name"], s["networks"]["eth0"]["rx_bytes"] >= 0)
stream = ctr.stats(decode=True)
first, second = next(stream), next(stream)
print(first["precpu_stats"]["cpu_usage"]["total_usage"],
      second["precpu_stats"]["cpu_usage"]["total_usage"] ==
      first["cpu_stats"]["cpu_usage"]["total_usage"])
stream.close()
print(ctr.top()["Processes"][0][-1])
ctr.pause(); ctr.reload(); print(ctr.status); ctr.unpause(); ctr.reload(); print(ctr.status)
print(ctr.diff())
'''
    res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}"], check=False,
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "True True True", "True 1", "/sleeper True", "0 True", "sleep 600", "paused",
        "running", "None"]


COMPOSE_FILE = """\
version: "2.4"
services:
  web:
    image: bb
    command: ["sh", "-c", "echo hello from web > /srv/index.html && exec httpd -f -p 80 -h /srv"]
    ports: ["127.0.0.1:{port}:80"]
    volumes: ["data:/srv"]
    networks:
      appnet:
        aliases: [webalias]
      backnet:
        aliases: [backalias]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"]
      interval: 1s
      timeout: 2s
      retries: 3
  client:
    image: bb
    command: ["sh", "-c", "echo client up; exec sleep 600"]
    networks: [appnet]
    depends_on:
      web:
        condition: service_healthy
    volumes:
      - type: volume
        source: data
        target: /from-web
        read_only: true
  back:
    image: bb
    command: ["sleep", "600"]
    networks: [backnet]
volumes:
  data: {{}}
networks:
  appnet: {{}}
  backnet: {{}}
"""


def test_docker_compose(api, tmp_path):
    """Debian's docker-compose (1.29 on Debian 12, docker-py underneath; 2.x on 13): two
    services on a user network, one reaching the other by name and by alias, a published
    port, a named volume (a bind and a long-syntax mount, HostConfig.Mounts), a healthcheck
    the other waits for and `ps` shows; web on a second network too (network connect with
    its aliases there), where a third service finds it by that network's alias only."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    env = api.env(COMPOSE_PROJECT_NAME="pmdc")

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(["docker-compose", *args], cwd=tmp_path, env=env, check=False,
                             capture_output=True, text=True, timeout=120)
        if check:
            assert res.returncode == 0, f"docker-compose {args}: {res.stdout}{res.stderr}"
        return res

    try:
        compose("up", "-d")
        # compose 1.x (Debian 12's, the issue's) names pmdc_web_1, 2.x (Debian 13's)
        # pmdc-web-1; 1.x reads the health from inspect, 2.x from the list's Status
        ps = compose("ps").stdout
        assert re.search(r"pmdc[-_]web[-_]1 .*\(healthy\)", ps), ps
        assert f"127.0.0.1:{port}->80/tcp" in ps
        assert re.search(r"pmdc[-_]client[-_]1", ps) and "Up" in ps
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert page == b"hello from web\n"
        for name in ("web", "webalias"):
            got = compose("exec", "-T", "client", "wget", "-q", "-O", "-", f"http://{name}/")
            assert got.stdout == "hello from web\n"
        got = compose("exec", "-T", "back", "wget", "-q", "-O", "-", "http://backalias/")
        assert got.stdout == "hello from web\n"
        # the other network's alias is unknown here (a trailing dot: no search domain, so
        # the server answers itself and forwards nothing to the host's resolvers)
        for service, other_networks_alias in (("back", "webalias"), ("client", "backalias")):
            res = compose("exec", "-T", service, "nslookup", f"{other_networks_alias}.",
                          check=False)
            assert res.returncode != 0, res.stdout
        got = compose("exec", "-T", "client", "cat", "/from-web/index.html").stdout
        assert got == "hello from web\n"
        res = compose("exec", "-T", "client", "sh", "-c", "echo x > /from-web/f", check=False)
        assert res.returncode != 0  # read_only
        assert "client up" in compose("logs", "--no-color", "client").stdout
        assert api.docker("volume", "ls", "-q").stdout.split().count("pmdc_data") == 1
    finally:
        compose("down", "-v")
    assert api.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=pmdc"
                      ).stdout == ""
    assert "pmdc_data" not in api.docker("volume", "ls", "-q").stdout
    assert "pmdc_appnet" not in api.docker("network", "ls").stdout
    assert "pmdc_backnet" not in api.docker("network", "ls").stdout


def test_ps_sees_every_change(api):
    """The server's list keeps the records of stopped containers between calls (engine
    container_views): each change must still show at once."""
    def row(ref: str) -> str:
        return api.docker("ps", "-a", "--filter", f"id={ref}", "--format",
                          "{{.Names}} {{.Status}}").stdout.strip()

    cid = api.docker("create", "--name", "views-a", "bb", "sh", "-c", "exit 3").stdout.strip()
    try:
        assert row(cid) == "views-a Created"
        api.docker("rename", "views-a", "views-b")
        assert row(cid) == "views-b Created"
        api.docker("start", cid)
        assert api.docker("wait", cid).stdout == "3\n"
        assert row(cid).startswith("views-b Exited (3) ")
        api.docker("start", cid)  # the same files rewritten again: a new stamp each time
        api.docker("wait", cid)
        assert row(cid).startswith("views-b Exited (3) ")
        api.docker("update", "--restart", "on-failure:1", cid)
        assert api.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}",
                          cid).stdout == "on-failure\n"
    finally:
        api.docker("rm", "-f", cid)
    assert row(cid) == ""
    sid = api.docker("run", "-d", "bb", "sleep", "60").stdout.strip()
    try:
        assert row(sid).split()[1] == "Up"
        api.docker("kill", sid)
        assert row(sid).split()[1:3] == ["Exited", "(137)"]
    finally:
        api.docker("rm", "-f", sid)


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass  # gone meanwhile
    return total / 1024


def test_the_idle_server_is_small_after_its_clients(api):
    """Requests are served by a worker process that leaves once it has had none for a few
    seconds: after a client ran ps, run --rm, run -d and logs, the idle server (all its
    processes) is back under 30 MB, and the next client, and the events of the last worker's
    time, are still served."""
    from pyminidocker.api.server import WORKER_LINGER
    from tests.integration import servers as S

    t0 = time.time()
    api.docker("ps")
    assert api.docker("run", "--rm", "--network", "none", "bb", "echo", "once").stdout == \
        "once\n"
    cid = api.docker("run", "-d", "--network", "none", "bb", "echo", "logged").stdout.strip()
    api.docker("wait", cid)
    assert api.docker("logs", cid).stdout == "logged\n"
    api.docker("rm", cid)
    assert S.children_of(api.proc.pid), "no worker serves the requests"
    deadline = time.monotonic() + WORKER_LINGER + 10
    while S.children_of(api.proc.pid):
        assert time.monotonic() < deadline, "the worker did not leave"
        time.sleep(0.2)
    assert api.proc.poll() is None, "--time 0: the server stays"
    idle = _rss_mb([api.proc.pid, *S.children_of(api.proc.pid)])
    assert idle <= 30, f"{idle:.1f} MB idle"
    out = api.docker("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}",
                     "--filter", f"container={cid}", "--format", "{{.Action}}").stdout
    assert out.split() == ["create", "start", "die", "destroy"]
    assert api.docker("ps", "-a", "-q", "--filter", f"id={cid}").stdout == ""


def test_an_auto_remove_container_started_later_is_still_removed(api):
    """`docker create --rm`, then a start after a pause longer than a worker's linger: the
    worker that knows to remove it stays until it has; then it leaves."""
    from pyminidocker.api.server import WORKER_LINGER
    from tests.integration import servers as S

    cid = api.docker("create", "--rm", "--network", "none", "bb", "true").stdout.strip()
    time.sleep(WORKER_LINGER + 1)
    api.docker("start", cid)
    deadline = time.monotonic() + 20
    while api.docker("ps", "-a", "-q", "--filter", f"id={cid}").stdout:
        assert time.monotonic() < deadline, "the --rm container was not removed"
        time.sleep(0.2)
    deadline = time.monotonic() + WORKER_LINGER + 10
    while S.children_of(api.proc.pid):
        assert time.monotonic() < deadline, "the worker did not leave"
        time.sleep(0.2)


def test_resize_a_detached_containers_console(api):
    """POST /containers/{id}/resize of a container started detached (run -dit): its console
    (the monitor's pty) takes the size, its processes get SIGWINCH (docker-py's resize);
    `docker attach` from a terminal passes that terminal's size. Without a tty: 200 and
    nothing to do; not running: 409, as dockerd."""
    import fcntl
    import pty
    import struct
    import termios

    cid = api.docker("run", "-dit", "--network", "none", "bb", "sh", "-c",
                     "trap 'stty size' WINCH; while :; do sleep 0.1; done").stdout.strip()
    plain = api.docker("run", "-d", "--network", "none", "bb", "sleep", "60").stdout.strip()
    stopped = api.docker("create", "--network", "none", "bb", "true").stdout.strip()
    try:
        script = ("import sys, docker; a = docker.APIClient(base_url=sys.argv[1]); "
                  "a.resize(sys.argv[2], 33, 111); a.resize(sys.argv[3], 33, 111)\n"
                  "try:\n    a.resize(sys.argv[4], 33, 111)\n"
                  "except docker.errors.APIError as e:\n"
                  "    print(e.status_code, e.explanation)")
        res = subprocess.run([sys.executable, "-c", script, f"unix://{api.sock}", cid, plain,
                              stopped], check=False, capture_output=True, text=True,
                             timeout=60, cwd="/")
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"409 container {stopped} is not running\n"
        deadline = time.monotonic() + 10
        while "33 111" not in api.docker("logs", cid).stdout:
            assert time.monotonic() < deadline, api.docker("logs", cid).stdout
            time.sleep(0.1)

        pid, fd = pty.fork()  # docker attach from a terminal of 44x122
        if pid == 0:
            os.execvpe(DEFAULT_CLI, [DEFAULT_CLI, "attach", cid], api.env())
        try:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 122, 0, 0))
            deadline = time.monotonic() + 20
            while "44 122" not in api.docker("logs", cid).stdout:
                assert time.monotonic() < deadline, api.docker("logs", cid).stdout
                if select.select([fd], [], [], 0.1)[0]:
                    os.read(fd, 65536)  # what the attach shows: not read here
            os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q: detached, it runs on
            os.waitpid(pid, 0)
        finally:
            os.close(fd)
        assert api.docker("inspect", "-f", "{{.State.Running}}", cid).stdout == "true\n"
    finally:
        api.docker("rm", "-f", cid, plain, stopped)


def test_a_log_follower_whose_client_left_does_not_hold_the_next_clients(api):
    """`docker logs -f` killed while its container is silent leaves a thread waiting for the
    container's next line: the worker still leaves when idle, and the next client is served
    (a worker that waited for that thread would have stopped accepting and hung them)."""
    from pyminidocker.api.server import WORKER_LINGER
    from tests.integration import servers as S

    cid = api.docker("run", "-d", "--network", "none", "bb", "sh", "-c",
                     "echo a; sleep 1; echo b; exec sleep 600").stdout.strip()
    try:
        follower = subprocess.Popen([DEFAULT_CLI, "logs", "-f", cid], env=api.env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert follower.stdout.readline() == b"a\n"
        follower.kill()  # its server side learns it when "b" comes: then its thread waits
        follower.wait()
        deadline = time.monotonic() + WORKER_LINGER + 10
        while S.children_of(api.proc.pid):
            assert time.monotonic() < deadline, "the worker did not leave"
            time.sleep(0.2)
        assert cid in api.docker("ps", "-q", "--no-trunc", timeout=20).stdout
    finally:
        api.docker("rm", "-f", cid)
