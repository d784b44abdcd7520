"""The unit tests and the cgroup/container integration tests, inside a pure cgroup v2 VM.

Opt-in (PMD_VM_TESTS=1): one boot builds nothing (the base image is cached, see vm.py) but runs
the suites under TCG, which takes about 15 minutes on 2 busy cores (13 min of pytest, 2 to copy, build and boot).
"""
import re

from tests.vm import vm

SUITES = ["tests/unit", "tests/integration/test_containers.py",
          "tests/integration/test_cgroups_v1.py", "tests/integration/test_cgroups_v2_devices.py",
          "tests/integration/test_spawn.py", "tests/integration/test_security.py"]


def test_suites_pass_on_pure_cgroup_v2():
    rc, out = vm.run(".venv/bin/python -m pytest -q -p no:cacheprovider -rfEs "
                     + " ".join(SUITES), timeout=5400, name="cgv2")
    print(out)
    up = re.search(r"PMD-VM-UP .* cgroup=(\S+)", out)
    assert up and up.group(1) == "cgroup2fs", "the VM did not come up on pure cgroup v2"
    summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    assert rc == 0, f"pytest in the VM: rc={rc}: {summary[-1:] or out[-3000:]}"


def test_run_network_host_on_pure_cgroup_v2():
    # was: "mount: Device or resource busy: cgroup2 -> /sys/fs/cgroup" (the host's /sys was
    # bound with its cgroup2 mount, and the container's own cgroup2 mounted over it)
    rc, out = vm.run(".venv/bin/python -m pytest -q -p no:cacheprovider -rfEs --color=no "
                     "tests/integration/test_containers.py -k 'network_default or network_host'",
                     timeout=1800, name="cgv2-host")
    print(out)
    assert re.search(r"PMD-VM-UP .* cgroup=cgroup2fs", out), "not on pure cgroup v2"
    assert rc == 0 and re.search(r"(?<!\d)2 passed", out), out[-3000:]
