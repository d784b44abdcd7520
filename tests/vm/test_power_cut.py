"""Issue 16 item 1: a power cut must not brick the store.

Per round, in a fresh copy of the VM's disk: boot 1 runs tests/vm/guest_powercut.py `loop` (pulls,
rmi, run -d, run --rm, create, rm -f, forever); once the loop runs the host kills qemu with
SIGKILL at a random moment, which loses what the guest had not flushed (vm.py: cache=writeback);
`e2fsck -fy` repairs the file system as a reboot would; boot 2 runs `check` (ps -a, images,
run --rm, rm -f of everything, system check), which must all succeed.

Opt-in (PMD_VM_TESTS=1). PMD_VM_ROUNDS rounds (default 4), about 2.5 minutes each under TCG (4 rounds: 9m47s).
"""
import os
import random
import re
import time

from tests.vm import vm

ROUNDS = int(os.environ.get("PMD_VM_ROUNDS", "4"))
GUEST = ".venv/bin/python tests/vm/guest_powercut.py"


def one_round(template, n: int, rng: random.Random) -> dict:
    img = vm.WORK / f"powercut-{os.getpid()}-{n}.img"
    vm.sh("cp", "--sparse=always", str(template), str(img))
    result: dict = {"round": n}
    try:
        boot = vm.Boot(img)
        started = boot.wait_for("PMD-LOOP-START", 900)
        out1 = boot.output()
        assert started, f"round {n}: the loop never started:\n{out1[-3000:]}"
        delay = rng.uniform(1, 40)
        time.sleep(delay)
        boot.kill()
        out1 = boot.output()
        boot.log.unlink(missing_ok=True)
        iters = re.findall(r"PMD-ITER (\d+)", out1)
        result["cut_after_s"] = round(delay, 1)
        result["iterations"] = int(iters[-1]) if iters else 0
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
        result["output"] = out2
        return result
    finally:
        vm.discard(img)


def test_power_cut_leaves_a_usable_store():
    seed = int(os.environ.get("PMD_VM_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    template = vm.prepare(f"powercut-{os.getpid()}", f"{GUEST} loop")
    results = []
    try:
        for n in range(1, ROUNDS + 1):
            r = one_round(template, n, rng)
            results.append(r)
            print(f"round {n}: cut after {r['cut_after_s']} s ({r['iterations']} iterations), "
                  f"e2fsck rc={r['e2fsck_rc']}, check rc={r['check_rc']}, {r['checks']}, "
                  f"broken files: {r['broken']}", flush=True)
    finally:
        vm.discard(template)
    bad = [r for r in results if r["check_rc"] != 0]
    detail = "\n".join(f"--- round {r['round']}\n{r['output'][-4000:]}" for r in bad)
    assert not bad, f"seed {seed}: {len(bad)}/{len(results)} rounds left a broken store\n{detail}"
