"""The further `run` flags (cli/runflags.py), as root, each checked from inside the container
(or where Docker's user would look: inspect, the cgroup files, the host), and each bad value
refused with Docker's one line, exit 125, nothing created.

One store per module with busybox as `bb`; the module ends with no container or cgroup left.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import free_subnet, module_ctr

ctr = module_ctr("runflags")


def cg_file(cid: str, ctl: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / ctl / "pyminidocker" / cid / name).read_text().strip()


def containers(run) -> set[str]:
    return set(run("ps", "-a", "-q").stdout.split())


def test_labels_and_label_file(ctr, tmp_path):
    (tmp_path / "labels").write_text("# comment\nfrom.file=1\nboth=file\n\n")
    cid = ctr("create", "-l", "a=b", "--label", "both=flag", "--label", "bare",
              "--label-file", str(tmp_path / "labels"), "bb").stdout.strip()
    labels = json.loads(ctr("inspect", cid).stdout)[0]["Config"]["Labels"]
    assert labels == {"a": "b", "both": "flag", "bare": "", "from.file": "1"}
    ctr("rm", cid)


def test_add_host_dns_and_resolver_options(ctr):
    out = ctr("run", "--rm", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
              "--add-host", "v6:[::1]", "--dns", "127.0.0.53", "--dns", "10.9.9.9",
              "--dns-search", "example.test", "--dns-option", "ndots:2", "bb", "sh", "-c",
              "cat /etc/hosts; echo ---; cat /etc/resolv.conf").stdout
    hosts, resolv = out.split("---\n")
    assert "10.1.2.3\tdb\n" in hosts and "::1\tv6\n" in hosts
    gw = [ln.split()[0] for ln in hosts.splitlines() if ln.endswith("\tgw")]
    # host-gateway is the default bridge's own address
    bridge = json.loads(ctr("network", "inspect", "bridge").stdout)[0]
    assert gw == [bridge["IPAM"]["Config"][0]["Gateway"]]
    lines = resolv.splitlines()
    assert [ln for ln in lines if ln.startswith("nameserver")] == [
        "nameserver 127.0.0.53", "nameserver 10.9.9.9"]
    assert "search example.test" in lines and "options ndots:2" in lines


def test_shm_size_ulimit_group_add_workdir(ctr):
    out = ctr("run", "--rm", "--shm-size", "8m", "--ulimit", "nofile=100:200",
              "--ulimit", "nproc=50", "--group-add", "nogroup", "--group-add", "4242",
              "-w", "/new/dir", "bb", "sh", "-c",
              "df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; ulimit -Hn; ulimit -u; "
              "id -G; pwd").stdout.split("\n")
    assert out[:4] == ["8192", "100", "200", "50"]
    assert set(out[4].split()) == {"0", "65534", "4242"}
    assert out[5] == "/new/dir"


def test_stop_signal_and_stop_timeout(ctr):
    # the process traps USR1 only: stop sends USR1, so it exits with its own code at once
    cid = ctr("run", "-d", "--stop-signal", "SIGUSR1", "--stop-timeout", "30", "bb", "sh",
              "-c", "trap 'exit 7' USR1; while :; do sleep 0.1; done").stdout.strip()
    time.sleep(0.3)
    t = time.monotonic()
    ctr("stop", cid)
    assert time.monotonic() - t < 10
    assert ctr("wait", cid).stdout.strip() == "7"
    ctr("rm", cid)
    # --stop-timeout 1 with a process that ignores TERM: killed after 1 s, not 10
    cid = ctr("run", "-d", "--stop-timeout", "1", "bb", "sh", "-c",
              "trap '' TERM; while :; do sleep 0.1; done").stdout.strip()
    time.sleep(0.3)
    t = time.monotonic()
    ctr("stop", cid)
    assert 0.8 < time.monotonic() - t < 6
    ctr("rm", cid)


def test_cidfile(ctr, tmp_path):
    f = tmp_path / "cid"
    cid = ctr("create", "--cidfile", str(f), "bb").stdout.strip()
    assert f.read_text() == cid
    before = containers(ctr)
    res = ctr("create", "--cidfile", str(f), "bb", check=False)
    assert res.returncode == 1 and "Container ID file found" in res.stderr  # run: 125
    assert containers(ctr) == before
    ctr("rm", cid)


def test_expose_with_publish_all(ctr):
    cid = ctr("run", "-d", "--expose", "7100-7101/tcp", "-P", "bb", "sleep", "30").stdout.strip()
    ports = ctr("port", cid).stdout
    assert "7100/tcp -> " in ports and "7101/tcp -> " in ports and "7000/tcp -> " in ports
    ctr("rm", "-f", cid)


def test_cgroup_knobs(ctr):
    cid = ctr("run", "-d", "-m", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
              "--cpuset-cpus", "0", "--cpuset-mems", "0", "-c", "512", "--cpu-period",
              "50000", "--cpu-quota", "25000", "--oom-kill-disable", "--memory-swappiness",
              "17", "bb",
              "sleep", "30").stdout.strip()
    try:
        assert cg_file(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert cg_file(cid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
        if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
            assert cg_file(cid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert "oom_kill_disable 1" in cg_file(cid, "memory", "memory.oom_control")
        assert cg_file(cid, "memory", "memory.swappiness") == "17"
        assert cg_file(cid, "cpuset", "cpuset.cpus") == "0"
        assert cg_file(cid, "cpu", "cpu.shares") == "512"
        assert cg_file(cid, "cpu", "cpu.cfs_period_us") == "50000"
        assert cg_file(cid, "cpu", "cpu.cfs_quota_us") == "25000"
        # and from inside: the container's own view of its cgroup
        out = ctr("exec", cid, "sh", "-c", "cat /sys/fs/cgroup/cpu*/cpu.cfs_quota_us | head -1; "
                  "cat /sys/fs/cgroup/cpuset/cpuset.cpus").stdout.split()
        assert out == ["25000", "0"]
    finally:
        ctr("rm", "-f", cid)


def whole_disk() -> Path:
    """A whole block device of this host (the kernel throttles disks, not partitions)."""
    for name in sorted(os.listdir("/sys/block")):
        dev = Path("/dev") / name
        if not name.startswith(("loop", "ram")) and dev.exists():
            return dev
    pytest.skip("no whole disk in /dev")


def test_blkio_throttle_flags(ctr):
    disk = whole_disk()
    rdev = disk.stat().st_rdev
    majmin = f"{os.major(rdev)}:{os.minor(rdev)}"
    cid = ctr("run", "-d", "--device-read-bps", f"{disk}:1mb", "--device-write-bps",
              f"{disk}:512k", "--device-read-iops", f"{disk}:300", "--device-write-iops",
              f"{disk}:200", "bb", "sleep", "30").stdout.strip()
    try:
        assert cg_file(cid, "blkio", "blkio.throttle.read_bps_device") == f"{majmin} 1048576"
        assert cg_file(cid, "blkio", "blkio.throttle.write_bps_device") == f"{majmin} 524288"
        assert cg_file(cid, "blkio", "blkio.throttle.read_iops_device") == f"{majmin} 300"
        assert cg_file(cid, "blkio", "blkio.throttle.write_iops_device") == f"{majmin} 200"
        # the container's process is in that cgroup
        pid = json.loads(ctr("inspect", cid).stdout)[0]["State"]["Pid"]
        assert f"blkio:/pyminidocker/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()
        host = json.loads(ctr("inspect", cid).stdout)[0]["HostConfig"]
        assert host["BlkioDeviceReadBps"] == [{"Path": str(disk), "Rate": 1048576}]
        assert host["BlkioDeviceWriteIOps"] == [{"Path": str(disk), "Rate": 200}]
    finally:
        ctr("rm", "-f", cid)
    assert not (Path("/sys/fs/cgroup/blkio/pyminidocker") / cid).exists()


def test_cpu_real_time_period_and_runtime(ctr):
    if not Path("/sys/fs/cgroup/cpu/cpu.rt_period_us").exists():
        pytest.skip("no real-time group scheduling on this kernel (v1)")
    cid = ctr("run", "-d", "--cpu-rt-period", "500000", "--cpu-rt-runtime", "0", "bb", "sleep",
              "30").stdout.strip()
    try:
        assert cg_file(cid, "cpu", "cpu.rt_period_us") == "500000"
        assert cg_file(cid, "cpu", "cpu.rt_runtime_us") == "0"
        host = json.loads(ctr("inspect", cid).stdout)[0]["HostConfig"]
        assert (host["CpuRealtimePeriod"], host["CpuRealtimeRuntime"]) == (500000, 0)
    finally:
        ctr("rm", "-f", cid)
    # as with Docker's default daemon (no real-time time given to the containers' parent), the
    # kernel refuses a runtime, in one line (exit 1: a start's cgroup errors are not yet
    # Docker's 125), and no cgroup is left (the module's end checks)
    res = ctr("run", "--rm", "--cpu-rt-runtime", "10000", "bb", "true", check=False)
    assert res.returncode != 0 and "cpu.rt_runtime_us: Invalid argument" in res.stderr
    assert res.stderr.count("\n") == 1


def test_mac_address_and_network_alias(ctr):
    ctr("network", "create", "--subnet", free_subnet("10.251"), "aliasnet")
    try:
        cid = ctr("run", "-d", "--network", "aliasnet", "--network-alias", "db",
                  "--network-alias", "store", "--mac-address", "02:42:AC:11:00:99", "bb",
                  "sleep", "30").stdout.strip()
        try:
            assert ctr("exec", cid, "cat", "/sys/class/net/eth0/address").stdout == \
                "02:42:ac:11:00:99\n"
            assert ctr("inspect", "-f", "{{.NetworkSettings.Networks.aliasnet.MacAddress}}",
                       cid).stdout == "02:42:ac:11:00:99\n"
            out = ctr("run", "--rm", "--network", "aliasnet", "bb", "sh", "-c",
                      "grep -w db /etc/hosts; ping -c1 -W2 store >/dev/null && echo reached"
                      ).stdout
            assert " db" in out and "store" in out and out.endswith("reached\n")
        finally:
            ctr("rm", "-f", cid)
    finally:
        ctr("network", "rm", "aliasnet")


def test_fixed_ip_on_a_user_network(ctr):
    subnet = free_subnet("10.249")
    base = subnet.rsplit(".", 1)[0]
    ctr("network", "create", "--subnet", subnet, "ipnet")
    try:
        cid = ctr("run", "-d", "--network", "ipnet", "--ip", f"{base}.77", "bb", "sleep",
                  "30").stdout.strip()
        try:
            out = ctr("exec", cid, "ip", "-4", "-o", "addr", "show", "eth0").stdout
            assert f" {base}.77/24 " in out
            info = json.loads(ctr("inspect", cid).stdout)[0]["NetworkSettings"]["Networks"]
            assert info["ipnet"]["IPAddress"] == f"{base}.77"
            assert info["ipnet"]["IPAMConfig"] == {"IPv4Address": f"{base}.77"}
            # reachable there, and the next container without --ip gets another address
            out = ctr("run", "--rm", "--network", "ipnet", "bb", "sh", "-c",
                      f"ping -c1 -W2 {base}.77 >/dev/null && echo reached; "
                      "ip -4 -o addr show eth0").stdout
            assert out.startswith("reached\n") and f" {base}.77/" not in out
            # taken: refused at create, nothing made
            before = containers(ctr)
            res = ctr("run", "--rm", "--network", "ipnet", "--ip", f"{base}.77", "bb", "true",
                      check=False)
            assert res.returncode == 125 and "Address already in use" in res.stderr
            assert res.stderr.count("\n") == 1 and containers(ctr) == before
        finally:
            ctr("rm", "-f", cid)
        # free again once its holder is gone
        out = ctr("run", "--rm", "--network", "ipnet", "--ip", f"{base}.77", "bb", "ip", "-4",
                  "-o", "addr", "show", "eth0").stdout
        assert f" {base}.77/24 " in out
        for bad, message in ((f"{base}.1", "Address already in use"),
                             ("10.0.0.5", "Invalid address 10.0.0.5: It does not belong to any "
                                          "of this network's subnets")):
            res = ctr("run", "--rm", "--network", "ipnet", "--ip", bad, "bb", "true",
                      check=False)
            assert res.returncode == 125 and message in res.stderr, res.stderr
    finally:
        ctr("network", "rm", "ipnet")


def test_link_local_ip(ctr):
    cid = ctr("run", "-d", "--link-local-ip", "169.254.10.20", "--link-local-ip",
              "169.254.10.21", "bb", "sleep", "30").stdout.strip()
    try:
        out = ctr("exec", cid, "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert " 169.254.10.20/16 " in out and " 169.254.10.21/16 " in out
        info = json.loads(ctr("inspect", cid).stdout)[0]["NetworkSettings"]["Networks"]
        assert info["bridge"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.10.20",
                                                                 "169.254.10.21"]}
    finally:
        ctr("rm", "-f", cid)


def test_legacy_links_on_the_default_bridge(ctr):
    db = ctr("run", "-d", "--name", "linkdb", "bb", "sleep", "30").stdout.strip()
    try:
        ip = json.loads(ctr("inspect", db).stdout)[0]["NetworkSettings"]["IPAddress"]
        out = ctr("run", "--rm", "--name", "linkweb", "--link", "linkdb:store", "--link",
                  "linkdb", "bb", "sh", "-c", "grep -w store /etc/hosts; grep -c linkdb "
                  "/etc/hosts; ping -c1 -W2 store >/dev/null && echo reached").stdout
        lines = out.splitlines()
        assert lines[0].split() == [ip, "store", db[:12], "linkdb"]
        assert lines[1:] == ["2", "reached"]
        cid = ctr("create", "--name", "linkweb2", "--link", "linkdb:store", "bb", "true"
                  ).stdout.strip()
        try:
            assert json.loads(ctr("inspect", cid).stdout)[0]["HostConfig"]["Links"] == [
                "/linkdb:/linkweb2/store"]
        finally:
            ctr("rm", cid)
        ctr("stop", "-t", "0", db)
        before = containers(ctr)
        res = ctr("run", "--rm", "--name", "linkweb", "--link", "linkdb:store", "bb", "true",
                  check=False)
        assert res.returncode == 125, res.stderr
        assert "Cannot link to a non running container: /linkdb AS /linkweb/store" \
            in res.stderr
        assert res.stderr.count("\n") == 1 and containers(ctr) == before
    finally:
        ctr("rm", "-f", db)
    res = ctr("run", "--rm", "--link", "nolink:x", "bb", "true", check=False)
    assert res.returncode == 125 and "could not get container for nolink" in res.stderr


def test_flags_docker_accepts_as_no_ops_here(ctr):
    out = ctr("run", "--rm", "--runtime", "runc", "--isolation", "default", "--volume-driver",
              "local", "--disable-content-trust", "bb", "echo", "ok").stdout
    assert out == "ok\n"


def test_kernel_memory_is_accepted_with_docker_s_warning(ctr):
    res = ctr("run", "--rm", "--kernel-memory", "50m", "bb", "true")
    assert "WARNING: Specifying a kernel memory limit is deprecated" in res.stderr


def test_oom_score_adj(ctr):
    out = ctr("run", "--rm", "--oom-score-adj", "345", "bb", "cat",
              "/proc/self/oom_score_adj").stdout
    assert out == "345\n"
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "345"


def test_cgroup_parent(ctr):
    cid = ctr("run", "-d", "--cgroup-parent", "pmdtest-parent", "bb", "sleep", "30").stdout.strip()
    try:
        assert (Path("/sys/fs/cgroup/pids/pmdtest-parent") / cid).is_dir()
    finally:
        ctr("rm", "-f", cid)
    assert not (Path("/sys/fs/cgroup/pids/pmdtest-parent") / cid).exists()
    for ctl in Path("/sys/fs/cgroup").iterdir():
        with_parent = ctl / "pmdtest-parent"
        if with_parent.is_dir():
            with_parent.rmdir()


def test_host_namespaces(ctr):
    mine = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("pid", "ipc", "uts", "cgroup")}
    out = ctr("run", "--rm", "--pid", "host", "--ipc", "host", "--uts", "host",
              "--cgroupns", "host", "--userns", "host", "bb", "sh", "-c",
              "for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done; "
              "hostname").stdout.split()
    assert out[:4] == [mine["pid"], mine["ipc"], mine["uts"], mine["cgroup"]]
    assert out[4] == os.uname().nodename
    out = ctr("run", "--rm", "bb", "sh", "-c", "readlink /proc/self/ns/pid; "
              "readlink /proc/self/ns/uts").stdout.split()
    assert out[0] != mine["pid"] and out[1] != mine["uts"]
    out = ctr("run", "--rm", "--ipc", "none", "bb", "sh", "-c",
              "grep -c ' /dev/shm ' /proc/mounts || true").stdout
    assert out == "0\n"


def test_sysctl_and_domainname_in_the_container_s_own_namespaces(ctr):
    host_fwd = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmax = Path("/proc/sys/kernel/shmmax").read_text()
    host_domain = Path("/proc/sys/kernel/domainname").read_text()
    want_fwd = "0" if host_fwd.strip() == "1" else "1"
    # held for its network (then a sysctl of its eth0 too), and held for the sysctls alone
    for net, iface in (("bridge", "eth0"), ("none", "lo")):
        out = ctr("run", "--rm", "--network", net, "--sysctl", f"net.ipv4.ip_forward={want_fwd}",
                  "--sysctl", "kernel.shmmax=123456789", "--sysctl", "fs.mqueue.msg_max=33",
                  "--sysctl", f"net.ipv4.conf.{iface}.accept_local=1",
                  "--domainname", "example.test", "-h", "box", "bb", "sh", "-c",
                  "sysctl -n net.ipv4.ip_forward; cat /proc/sys/kernel/shmmax "
                  f"/proc/sys/net/ipv4/conf/{iface}/accept_local /proc/sys/fs/mqueue/msg_max "
                  "/proc/sys/kernel/domainname; hostname").stdout.split()
        assert out == [want_fwd, "123456789", "1", "33", "example.test", "box"], net
    # the host's own values are untouched
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_fwd
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shmmax
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domain
    # a detached one (under its monitor) gets them too, and inspect shows them as Docker
    cid = ctr("run", "-d", "--sysctl", "kernel.shmmni=2048", "--domainname", "d.test", "bb",
              "sleep", "30").stdout.strip()
    try:
        assert ctr("exec", cid, "cat", "/proc/sys/kernel/shmmni", "/proc/sys/kernel/domainname"
                   ).stdout.split() == ["2048", "d.test"]
        info = json.loads(ctr("inspect", cid).stdout)[0]
        assert info["HostConfig"]["Sysctls"] == {"kernel.shmmni": "2048"}
        assert info["Config"]["Domainname"] == "d.test"
    finally:
        ctr("rm", "-f", cid)


def test_a_sysctl_the_kernel_refuses_fails_the_start_and_leaves_nothing(ctr):
    before = containers(ctr)
    res = ctr("run", "--rm", "--sysctl", "net.ipv4.no_such_knob=1", "bb", "true", check=False)
    assert res.returncode == 125 and "net.ipv4.no_such_knob" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and containers(ctr) == before


def test_pid_and_ipc_of_another_container(ctr):
    x = ctr("run", "-d", "--name", "nsowner", "--ipc", "shareable", "bb", "sh", "-c",
            "exec sleep 30").stdout.strip()
    try:
        pid = json.loads(ctr("inspect", x).stdout)[0]["State"]["Pid"]
        # a SysV shared memory segment made in X's ipc namespace (util-linux's ipcmk)
        shmid = subprocess.run(["nsenter", "-t", str(pid), "--ipc", "ipcmk", "-M", "4096"],
                               capture_output=True, text=True, check=True).stdout.split()[-1]
        y = ctr("run", "-d", "--pid", "container:nsowner", "--ipc", f"container:{x[:12]}", "bb",
                "sh", "-c", "exec sleep 31").stdout.strip()
        try:
            out = ctr("exec", y, "sh", "-c", "cat /proc/1/comm; ps -o args; "
                      "cat /proc/sysvipc/shm").stdout
            assert out.startswith("sleep\n") and "sleep 30" in out and "sleep 31" in out
            assert any(ln.split()[1:2] == [shmid] for ln in out.splitlines()[1:]), out
            # X sees Y's process: one pid namespace
            assert "sleep 31" in ctr("exec", x, "ps", "-o", "args").stdout
            host = json.loads(ctr("inspect", y).stdout)[0]["HostConfig"]
            assert host["PidMode"] == f"container:{x}" and host["IpcMode"] == f"container:{x}"
        finally:
            ctr("rm", "-f", y)
        # Y's own ipc namespace would not have it
        out = ctr("run", "--rm", "bb", "cat", "/proc/sysvipc/shm").stdout
        assert shmid not in [ln.split()[1] for ln in out.splitlines()[1:]]
        ctr("stop", "-t", "0", x)
        res = ctr("run", "--rm", "--pid", "container:nsowner", "bb", "true", check=False)
        assert res.returncode == 125
        assert "cannot join PID of a non running container" in res.stderr, res.stderr
    finally:
        ctr("rm", "-f", x)
    before = containers(ctr)
    res = ctr("run", "--rm", "--ipc", "container:nosuchone", "bb", "true", check=False)
    assert res.returncode == 125 and "No such container: nosuchone" in res.stderr
    assert res.stderr.count("\n") == 1 and containers(ctr) == before


def test_device_and_cgroup_rule(ctr):
    # /dev/loop-control (c 10:237) is not among Docker's default devices
    probe = "exec 3</dev/lc && echo opened"
    out = ctr("run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", "bb", "sh", "-c",
              f"{probe}; grep '^c 10:237' /sys/fs/cgroup/devices/devices.list; "
              "(exec 4>/dev/lc) 2>/dev/null || echo no-write").stdout
    assert out.splitlines()[:2] == ["opened", "c 10:237 r"]
    assert "no-write" in out
    out = ctr("run", "--rm", "--device", "/dev/loop-control", "bb", "sh", "-c",
              "ls -l /dev/loop-control | cut -c1").stdout
    assert out == "c\n"
    # without a rule the cgroup refuses the node even where it exists (bound by -v)
    res = ctr("run", "--rm", "-v", "/dev/loop-control:/dev/lc", "bb", "sh", "-c", probe,
              check=False)
    assert res.returncode != 0 and "Operation not permitted" in res.stderr
    out = ctr("run", "--rm", "-v", "/dev/loop-control:/dev/lc", "--device-cgroup-rule",
              "c 10:237 rwm", "bb", "sh", "-c", probe).stdout
    assert out == "opened\n"


def test_init_reaps_zombies(ctr):
    # an orphan is reparented to PID 1 and exits there: tini reaps it, a `sleep` as PID 1
    # does not (the zombie stays)
    def zombies(*flags: str) -> str:
        cid = ctr("run", "-d", *flags, "bb", "sh", "-c",
                  "sh -c 'sleep 0.1 &'; exec sleep 30").stdout.strip()
        try:
            time.sleep(1)
            return ctr("exec", cid, "sh", "-c",
                       "ps -o stat,comm | grep -c '^Z' || true").stdout.strip()
        finally:
            ctr("rm", "-f", cid)

    assert zombies("--init") == "0"
    assert zombies() == "1"
    out = ctr("run", "--rm", "--init", "bb", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert out.stdout.startswith("/sbin/docker-init -- sh -c")


def test_attach_streams(ctr):
    res = ctr("run", "--rm", "-a", "stderr", "bb", "sh", "-c", "echo out; echo err >&2")
    assert res.stdout == "" and res.stderr == "err\n"
    res = ctr("run", "--rm", "-a", "stdout", "bb", "sh", "-c", "echo out; echo err >&2")
    assert res.stdout == "out\n" and res.stderr == ""


def test_sig_proxy_false_keeps_signals_away(ctr):
    p = ctr.popen("run", "--name", "noproxy", "--sig-proxy=false", "bb", "sh", "-c",
                  "trap 'echo got; exit 3' USR1; while :; do sleep 0.1; done")
    time.sleep(1.5)
    p.send_signal(signal.SIGUSR1)
    p.wait(10)
    logs = ctr("logs", "noproxy").stdout
    assert "got" not in logs
    ctr("rm", "-f", "noproxy")
    p = ctr.popen("run", "--name", "proxy", "bb", "sh", "-c",
                  "trap 'echo got; exit 3' USR1; while :; do sleep 0.1; done")
    time.sleep(1.5)
    p.send_signal(signal.SIGUSR1)
    assert p.wait(10) == 3
    ctr("rm", "-f", "proxy")


def test_pull_never_and_platform(ctr):
    res = ctr("run", "--rm", "--pull", "never", "nosuchimage", "true", check=False)
    assert res.returncode == 125 and "No such image" in res.stderr
    assert "Unable to find image" not in res.stderr
    res = ctr("run", "--rm", "--pull", "never", "--platform", "linux/arm64", "bb", "true",
              check=False)
    assert res.returncode == 125 and "does not match the specified platform" in res.stderr
    assert ctr("run", "--rm", "--platform", "linux/amd64", "bb", "true").returncode == 0


def test_env_from_the_host(ctr):
    out = ctr("run", "--rm", "-e", "FROM_HOST", "-e", "UNSET_HERE", "bb", "sh", "-c",
              "echo $FROM_HOST; env | grep -c UNSET_HERE || true",
              env={"FROM_HOST": "yes", "UNSET_HERE": None}).stdout
    assert out == "yes\n0\n"


@pytest.mark.parametrize("flags, message", [
    (["--add-host", "nocolon"], 'bad format for add-host: "nocolon"'),
    (["--add-host", "h:notanip"], 'invalid IP address in add-host: "notanip"'),
    (["--dns", "x.y"], "x.y is not an ip address"),
    (["--shm-size", "lots"], "invalid size: 'lots'"),
    (["--ulimit", "nofile"], "invalid ulimit argument: nofile"),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["--ulimit", "nofile=2:1"], "ulimit soft limit must be less than or equal to hard limit"),
    (["--stop-signal", "SIGNOPE"], "Invalid signal: SIGNOPE"),
    (["--stop-timeout", "soon"], 'invalid argument "soon" for "--stop-timeout" flag'),
    (["--expose", "http"], "invalid range format for --expose: http"),
    (["--pull", "sometimes"], "invalid pull option: 'sometimes'"),
    (["--memory-swap", "64m"], "You should always set the Memory limit when using Memoryswap"),
    (["-m", "64m", "--memory-reservation", "128m"], "Minimum memory limit can not be less than "
                                                    "memory reservation limit"),
    (["--cpuset-cpus", "0-99"], "Requested CPUs are not available - requested 0-99"),
    (["--cpuset-cpus", "a"], "Invalid value a for cpuset cpus"),
    (["--cpus", "1", "--cpu-quota", "50000"], "Conflicting options: Nano CPUs and CPU Quota"),
    (["--cpu-period", "10"], "CPU cfs period can not be less than 1ms"),
    (["-c", "1"], "invalid cpu shares 1"),
    (["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
    (["--oom-score-adj", "2000"], "Invalid value 2000, range for oom score adj is"),
    (["--pid", "bogus"], "--pid: invalid PID mode"),
    (["--ipc", "bogus"], "--ipc: invalid IPC mode"),
    (["--uts", "bogus"], "--uts: invalid UTS mode"),
    (["--userns", "bogus"], "--userns: invalid USER mode"),
    (["--cgroupns", "bogus"], "--cgroupns: invalid CGROUP mode"),
    (["--device", "/dev/nope"], 'error gathering device information while adding custom '
                                'device "/dev/nope": no such file or directory'),
    (["--device-cgroup-rule", "x 1:3 rwm"], "invalid device rule"),
    (["-a", "stdfoo"], "valid streams are STDIN, STDOUT and STDERR"),
    (["-d", "-a", "stdout"], "Conflicting options: -a and -d"),
    (["--detach-keys", "ctrl-"], "Invalid detach keys (ctrl-) provided"),
    (["--network", "host", "-h", "name"], "Conflicting options: hostname and the network mode"),
    (["--label-file", "/no/such/file"], "open /no/such/file: no such file or directory"),
    (["--platform", "linux/amd64/v9/x"], "platform"),
    (["--memory-swappiness", "101"], "valid memory swappiness range is 0-100"),
    (["--mac-address", "02:42:zz:00:00:01"], "02:42:zz:00:00:01 is not a valid mac address"),
    (["--network-alias", "db"], "network-scoped alias is supported only for containers in "
                                "user defined networks"),
    (["--network", "none", "--mac-address", "02:42:ac:11:00:99"], "conflicting options: "
                                                                  "mac-address"),
    (["--runtime", "kata"], "unknown or invalid runtime name: kata"),
    (["--isolation", "hyperv"], "Windows isolation is only supported on Windows"),
    (["--volume-driver", "nfs"], 'plugin "nfs" not found'),
    (["--storage-opt", "size=1G"], "--storage-opt is supported only for overlay over xfs"),
    (["--gpus", "all"], 'could not select device driver "" with capabilities: [[gpu]]'),
    (["--sysctl", "kernel.panic=1"], "invalid argument \"kernel.panic=1\" for \"--sysctl\" "
                                     "flag: sysctl 'kernel.panic=1' is not whitelisted"),
    (["--sysctl", "net.ipv4.ip_forward"], "sysctl 'net.ipv4.ip_forward' is not whitelisted"),
    (["--sysctl", "net.ipv4/../../kernel/printk_ratelimit=7"], "is not whitelisted"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    (["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
     'sysctl "kernel.shmmax" not allowed in host ipc namespace'),
    (["--ip", "10.1.2.3"], "user specified IP address is supported on user defined "
                           "networks only"),
    (["--ip", "10.1.2"], "invalid IPv4 address: 10.1.2"),
    (["--network", "host", "--link", "x:y"], "conflicting options: host type networking "
                                             "can't be used with links"),
    (["--device-read-bps", "/dev/null"], 'invalid argument "/dev/null" for '
                                         '"--device-read-bps" flag: bad format: /dev/null'),
    (["--device-write-bps", "sda:1m"], "bad format for device path: sda"),
    (["--device-read-iops", "/dev/null:1k"], "invalid rate for device: /dev/null:1k. The "
                                             "correct format is <device-path>:<number>. Number "
                                             "must be a positive integer"),
    (["--device-write-iops", "/dev/nope:10"], "stat /dev/nope: no such file or directory"),
    (["--device-read-bps", "/dev/null:1m"], "/dev/null is not a block device"),
    (["--link-local-ip", "nope"], "Invalid link-local IP address: [nope]"),
    (["--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"], "cpu-rt-runtime cannot be higher "
                                                              "than cpu-rt-period"),
    (["--blkio-weight-device", "/dev/null:5"], "invalid weight for device: /dev/null:5"),
    (["--ip6", "fd00::5"], "user specified IP address is supported on user defined networks "
                           "only"),
    (["--uts", "host", "--domainname", "x.test"], "Conflicting options: domainname and the UTS "
                                                  "mode"),
])
def test_bad_values_are_one_line_rc_125_and_create_nothing(ctr, flags, message):
    before = containers(ctr)
    res = ctr("run", "--rm", *flags, "bb", "true", check=False)
    assert res.returncode == 125, res.stderr
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert containers(ctr) == before


@pytest.mark.parametrize("verb", ["run", "create"])
def test_a_bad_flag_is_its_error_before_a_missing_image_is_pulled(ctr, verb):
    """Docker's CLI parses -p, -e, -v and --mount before it asks for the image: a bad one is
    the error, with no pull (these pulled first, and a pull's failure hid them), and `create`
    no longer records a container whose -e fails every start."""
    missing = "127.0.0.1:1/no/such-image:1"   # nothing listens: a pull would fail there
    before = containers(ctr)
    for flags, message in ((["-p", "abc"], "invalid containerPort: abc"),
                           (["-e", "=x"], "invalid environment variable: =x"),
                           (["-v", ":/x"], "invalid volume specification: ':/x'"),
                           (["--mount", "type=bogus,dst=/x"], "invalid value for 'type'")):
        for image in (missing, "bb"):
            res = ctr(verb, *flags, image, "true", check=False)
            assert res.returncode == 125 and message in res.stderr, res.stderr
            assert res.stdout == "" and res.stderr.count("\n") == 1, res.stderr
    assert containers(ctr) == before


def test_blkio_weight_without_the_kernel_s_support_is_discarded_with_a_warning(ctr):
    if Path("/sys/fs/cgroup/blkio/blkio.weight").exists() or \
            Path("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists():
        pytest.skip("this kernel has blkio weights")
    res = ctr("run", "--rm", "--blkio-weight", "300", "bb", "true")
    assert "WARNING: Your kernel does not support Block I/O weight or the cgroup is not " \
           "mounted. Weight discarded." in res.stderr


def test_blkio_weight_device_without_the_kernel_s_support_is_discarded_with_a_warning(ctr):
    if any(Path(f"/sys/fs/cgroup/blkio/blkio.{f}").exists()
           for f in ("weight_device", "bfq.weight_device")):
        pytest.skip("this kernel has blkio weights")
    res = ctr("run", "--rm", "--blkio-weight-device", "/dev/null:300", "bb", "true")
    assert "WARNING: Your kernel does not support BlkioWeightDevice. Weight-device " \
           "discarded." in res.stderr


def test_no_leftover_processes(ctr):
    assert subprocess.run(["pgrep", "-f", "trap .echo got"], capture_output=True,
                          check=False).stdout == b""


def test_log_driver_none_and_json_file_rotation(ctr):
    cid = ctr("run", "-d", "--log-driver", "none", "bb", "echo", "hidden").stdout.strip()
    ctr("wait", cid)
    res = ctr("logs", cid, check=False)
    assert res.returncode == 1 and "configured logging driver does not support reading" \
        in res.stderr
    log = ctr.root / "containers" / cid / f"{cid}-json.log"
    assert not log.exists() or log.read_bytes() == b""
    ctr("rm", cid)
    # max-size 1k, max-file 3: the log and two older files, none past 1000 bytes
    cid = ctr("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "bb", "sh",
              "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"
              ).stdout.strip()
    ctr("wait", cid)
    log = ctr.root / "containers" / cid / f"{cid}-json.log"
    time.sleep(0.2)
    files = sorted(p.name for p in log.parent.glob(f"{cid}-json.log*"))
    assert files == [log.name, log.name + ".1", log.name + ".2"]
    assert all((log.parent / f).stat().st_size <= 1000 for f in files)
    lines = ctr("logs", cid).stdout.split()
    assert lines[-1] == "line-299" and 10 < len(lines) < 300
    assert lines == [f"line-{i}" for i in range(300 - len(lines), 300)]  # in order, no gap
    ctr("rm", cid)


@pytest.mark.parametrize("flags, message", [
    (["--log-driver", "syslog"], 'error looking up logging plugin syslog: plugin "syslog" not '
                                 "found"),
    (["--log-opt", "max-file=2"], "max-file can only be used with max-size"),
    (["--log-opt", "bogus=1"], "unknown log opt 'bogus' for json-file log driver"),
    (["--log-driver", "none", "--log-opt", "max-size=1m"], "unknown log opt 'max-size' for "
                                                           "none log driver"),
    (["--log-opt", "max-size=lots"], "invalid size: 'lots'"),
])
def test_bad_log_options(ctr, flags, message):
    res = ctr("run", "--rm", *flags, "bb", "true", check=False)
    assert res.returncode == 125 and message in res.stderr and res.stderr.count("\n") == 1


def test_inspect_shows_the_flags_as_docker(ctr):
    """What run was given is what inspect's HostConfig says, under Docker's keys (scripts read
    them with inspect -f)."""
    cid = ctr("create", "--dns", "192.0.2.53", "--dns-search", "example.test",
              "--dns-option", "ndots:2", "--add-host", "db:192.0.2.7", "--group-add", "123",
              "--ulimit", "nofile=512:1024", "--shm-size", "32m", "--cpu-shares", "512",
              "--cpuset-cpus", "0", "--memory", "64m", "--memory-reservation", "32m",
              "--oom-score-adj", "100", "--ipc", "shareable", "--pid", "host",
              "--device", "/dev/null:/dev/mynull:r", "--restart", "on-failure:3",
              "--log-driver", "none", "bb", "true").stdout.strip()
    try:
        host = json.loads(ctr("inspect", cid).stdout)[0]["HostConfig"]
        assert host["Dns"] == ["192.0.2.53"] and host["DnsSearch"] == ["example.test"]
        assert host["DnsOptions"] == ["ndots:2"] and host["ExtraHosts"] == ["db:192.0.2.7"]
        assert host["GroupAdd"] == ["123"]
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 512, "Hard": 1024}]
        assert host["ShmSize"] == 32 * 1024 * 1024 and host["CpuShares"] == 512
        assert host["CpusetCpus"] == "0" and host["MemoryReservation"] == 32 * 1024 * 1024
        assert host["OomScoreAdj"] == 100 and host["IpcMode"] == "shareable"
        assert host["PidMode"] == "host"
        assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                    "CgroupPermissions": "r"}]
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert host["LogConfig"]["Type"] == "none"
        out = ctr("inspect", "-f", "{{.HostConfig.Dns}} {{.HostConfig.ShmSize}}", cid).stdout
        assert out == "[192.0.2.53] 33554432\n"
    finally:
        ctr("rm", "-f", cid)
