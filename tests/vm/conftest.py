"""The VM tests (minutes under TCG) run by default as root where qemu is installed (`make deps`
installs it, so CI runs them); PMD_VM_TESTS=0 skips them, PMD_VM_TESTS=1 runs them even where
qemu is missing (to see that fail). The fresh-install test's inner suite never runs them: the
host's suite does, once."""
import os
import shutil

import pytest


def _skip_reason() -> str | None:
    wanted = os.environ.get("PMD_VM_TESTS", "")
    if wanted == "0":
        return "VM test: PMD_VM_TESTS=0"
    if os.geteuid() != 0:
        return "VM test: needs root"
    if os.environ.get("PMD_IN_FRESH_ROOT"):
        return "VM test: not inside the fresh-install test's root"
    if wanted != "1" and not shutil.which("qemu-system-x86_64"):
        return "VM test: no qemu-system-x86_64 (apt-get install qemu-system-x86, or make deps)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(skip)
