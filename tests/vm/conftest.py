"""The VM tests take minutes (qemu under TCG): they run only with PMD_VM_TESTS=1, as root."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PMD_VM_TESTS") == "1" and os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="VM test: set PMD_VM_TESTS=1 (as root) to run it")
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(skip)
