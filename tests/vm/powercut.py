"""The power-cut rounds (issue 16), one implementation for tests/vm/test_power_cut.py (CI, a few
rounds) and bench/powercut.py (by hand, many rounds, a summary).

A round, in a copy of a prepared VM disk (vm.py: the base image with this worktree built in):
boot 1 runs tests/vm/guest_powercut.py `loop` (pulls, rmi, run -d, run --rm, create, start,
stop, rm -f, forever); the host kills qemu with SIGKILL at a random moment of a random command
of the loop, which loses what the guest had not flushed (vm.py: cache=writeback); `e2fsck -fy`
repairs the file system as a reboot would; boot 2 runs `check` (ps -a, images, run --rm, rm -f of everything, system check
--full), which must all succeed. A round is "bricked" when one of them fails.
"""
from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

from tests.vm import vm

GUEST = ".venv/bin/python tests/vm/guest_powercut.py"


class GuestLockup(Exception):
    """The VM hung (its kernel's soft lockup) before the cut: a void round, not a verdict."""


def one_round(template: Path, n: int, rng: random.Random) -> dict:
    """Round n on a fresh copy of template: what happened, as a dict (see rounds())."""
    img = vm.WORK / f"powercut-{os.getpid()}-{n}.img"
    vm.sh("cp", "--sparse=always", str(template), str(img))
    result: dict = {"round": n}
    try:
        boot = vm.Boot(img)
        started = boot.wait_for("PMD-LOOP-START", 900)
        out1 = boot.output()
        assert started, f"round {n}: the loop never started:\n{out1[-3000:]}"
        # The cut lands in a random command of the loop's first 24 (about 4 iterations), a
        # random moment into it: counted in commands, not seconds, so that a slow machine
        # (TCG on busy cores) still sees cuts spread over every kind of command.
        t0 = time.monotonic()
        step, into = rng.randint(1, 24), rng.uniform(0, 1.5)
        reached = boot.wait_for("PMD-DO ", 900, count=1 + step, poll=0.05)  # +1: the first pull
        if not reached and boot.locked_up():
            boot.kill()
            raise GuestLockup(f"round {n}: the guest's kernel locked up before the cut "
                              f"(TCG), after:\n{boot.output()[:1500]}")
        assert reached, f"round {n}: the loop stopped:\n{boot.output()[-3000:]}"
        time.sleep(into)
        delay = time.monotonic() - t0
        boot.kill()
        out1 = boot.output()
        boot.log.unlink(missing_ok=True)
        iters = re.findall(r"PMD-ITER (\d+)", out1)
        doing = re.findall(r"PMD-DO (\S+)", out1)
        result["cut_after_s"] = round(delay, 1)
        result["cut_step"] = step
        result["iterations"] = int(iters[-1]) if iters else 0
        result["cut_during"] = doing[-1] if doing else "?"  # the command a cut interrupted
        assert "FAILED before the cut" not in out1, out1[-3000:]
        fsck = vm.sh("e2fsck", "-fy", str(img), check=False, capture_output=True, text=True)
        result["e2fsck_rc"] = fsck.returncode  # 0 clean, 1 fixed; 4+ left errors
        assert fsck.returncode < 4, f"e2fsck: {fsck.returncode}\n{fsck.stdout}{fsck.stderr}"
        with vm.Mounted(img) as mnt:
            vm.set_command(mnt, f"{GUEST} check")
        rc, out2 = vm.Boot(img).wait(900)
        result["check_rc"] = rc
        result["checks"] = re.findall(r"PMD-CHECK (\S+ rc=\d+)", out2)
        result["broken"] = re.findall(r"PMD-BROKEN (.*)", out2)
        result["layers_failing"] = len(re.findall(r"^problem: layer \S+: ", out2, re.M))
        result["output"] = out2
        return result
    finally:
        vm.discard(img)


def rounds(count: int, seed: int, report: Callable[[dict], None] = lambda r: None) -> list[dict]:
    """count rounds on one prepared disk (made here, deleted after); report(result) after each.
    A result: round, cut_after_s (since the loop started), cut_step (the loop's command the
    cut was aimed at), iterations (of the loop before the cut), cut_during (the command the
    loop had started last: pull, rmi, run, create, start, stop or rm), e2fsck_rc, check_rc
    (0: not bricked), checks (each command's rc), broken (store files the cut left
    unparseable), layers_failing (system check --full's layer problems), output (boot 2's)."""
    rng = random.Random(seed)
    template = vm.prepare(f"powercut-{os.getpid()}", f"{GUEST} loop")
    results: list[dict] = []
    voids = 0
    try:
        # a round the guest's kernel hung in is void and done again, up to count times
        while len(results) < count:
            n = len(results) + voids + 1
            try:
                results.append(one_round(template, n, rng))
            except GuestLockup as e:
                voids += 1
                print(f"void {e}", flush=True)
                if voids > count:
                    raise
                continue
            report(results[-1])
    finally:
        vm.discard(template)
    return results


def line(r: dict) -> str:
    """One round, in a line."""
    return (f"round {r['round']}: cut after {r['cut_after_s']} s ({r['iterations']} "
            f"iterations, during command {r['cut_step']}: {r['cut_during']}), "
            f"e2fsck rc={r['e2fsck_rc']}, check rc={r['check_rc']}"
            f"{'' if r['check_rc'] == 0 else ' BRICKED'}, {r['checks']}, layers failing: "
            f"{r['layers_failing']}, broken files: {r['broken']}")
