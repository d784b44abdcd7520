"""pyminidocker.benchmark's arithmetic: percentiles and the trace report it reads."""
from __future__ import annotations

import io

import pytest

from pyminidocker import benchmark as B
from pyminidocker.trace import Tracer


def test_percentile_interpolates_between_closest_ranks():
    assert B.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert B.percentile([1.0, 2.0], 95) == pytest.approx(1.95)  # not simply the largest
    assert B.percentile([5.0], 95) == 5.0
    with pytest.raises(ValueError):
        B.percentile([], 50)


def test_parse_trace_reads_what_the_tracer_writes():
    out = io.StringIO()
    t = Tracer(True, out)
    t.add("store read", t.t0 + 1_000_000, t.t0 + 3_000_000)
    t.add("teardown", t.t0 + 4_000_000, t.t0 + 4_500_000)
    t.add("spawn (clone to execve)", t.t0 + 3_000_000, t.t0 + 4_000_000)
    t.add("teardown", t.t0 + 5_000_000, t.t0 + 5_250_000)
    t.note("  child: mounts", 0.4)  # as the runtime names them
    t.report(cpu_ms=12.0)
    total, top, child = B.parse_trace(out.getvalue())
    assert top == {"store read": 2.0, "spawn (clone to execve)": 1.0, "teardown": 0.75}
    assert child == {"mounts": 0.4}
    assert total > 0  # "total since cli main"


def test_the_table_gives_median_p95_min_and_ratio():
    ours = B.Result("ours", [0.020, 0.022, 0.030])
    other = B.Result("other", [0.010, 0.011, 0.012])
    failed = B.Result("broken", error="exit code 1: no")
    out = io.StringIO()
    B.table([ours, other, failed], ours, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["engine", "median", "p95", "min", "ratio"]
    assert lines[1].split() == ["ours", "22.0", "ms", "29.2", "ms", "20.0", "ms", "1.00x"]
    assert lines[2].split()[-1] == "0.50x"
    assert lines[3].split(None, 1) == ["broken", "failed: exit code 1: no"]
