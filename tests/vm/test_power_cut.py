"""Issue 16 item 1: a power cut must not brick the store (the rounds: tests/vm/powercut.py,
shared with bench/powercut.py, which runs many of them by hand).

Runs where the VM tests run (conftest.py): PMD_VM_ROUNDS rounds, 2 by default (CI's budget: a
round is about 3 minutes under TCG on 2 busy cores); PMD_VM_SEED replays a run's cuts.
"""
import os
import time

from tests.vm import powercut

ROUNDS = int(os.environ.get("PMD_VM_ROUNDS", "2"))


def test_power_cut_leaves_a_usable_store():
    seed = int(os.environ.get("PMD_VM_SEED", str(int(time.time()))))
    results = powercut.rounds(ROUNDS, seed, lambda r: print(powercut.line(r), flush=True))
    bad = [r for r in results if r["check_rc"] != 0 or r["layers_failing"]]
    detail = "\n".join(f"--- round {r['round']}\n{r['output'][-4000:]}" for r in bad)
    assert not bad, f"seed {seed}: {len(bad)}/{len(results)} rounds left a broken store\n{detail}"
