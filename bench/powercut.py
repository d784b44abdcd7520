#!/usr/bin/env python3
"""The power-cut test, many rounds by hand (root; about 2.5 minutes a round under TCG):

    sudo python3 bench/powercut.py [--rounds 20] [--seed N]

The rounds are tests/vm/powercut.py's, the same as tests/vm/test_power_cut.py runs (a Debian 12
VM on pure cgroup v2 from tests/vm/vm.py; boot 1 loops over pulls, rmi, run -d, run --rm, create
and rm -f and is killed at a random moment; e2fsck; boot 2 runs ps -a, images, run --rm, rm -f of
everything and system check --full). Prints one line per round and a summary; exit code 1 if a
round bricked the store or left a layer failing verification.

Needs: qemu-system-x86 (in the Makefile's APT_PACKAGES) and what vm.py's base image needs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.vm import powercut


def report(r: dict) -> None:
    """A round's line; for a failed one, what its second boot said (the ps warning names the
    broken record, system check says what is left)."""
    print(powercut.line(r), flush=True)
    if r["check_rc"] != 0 or r["layers_failing"]:
        print(r["output"][-4000:], flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    results = powercut.rounds(a.rounds, a.seed, report)
    bricked = sum(r["check_rc"] != 0 for r in results)
    failing = sum(r["layers_failing"] for r in results)
    print(f"seed {a.seed}: {len(results)} rounds: {bricked} bricked stores, {failing} layers "
          "failing verification")
    # where the cuts landed: a run whose cuts all hit one command proves little
    cuts = sorted(r["cut_after_s"] for r in results)
    during = Counter(r["cut_during"] for r in results)
    print(f"cuts after {cuts[0]}-{cuts[-1]} s (median {statistics.median(cuts)} s) of the "
          f"loop; during: {dict(during.most_common())}")
    return 0 if not bricked and not failing else 1


if __name__ == "__main__":
    sys.exit(main())
