"""Start latency and pull time, ours against the other engines on this machine, in one run.

`pyminidocker bench start` and `bench pull` (cli/bench.py) and `make bench` (bench/*.py) call
this module. Each engine runs the same thing the same number of times, round-robin, so the
load of a busy machine spreads over all of them; an anchor engine that is not installed is
skipped with a line saying so, one that fails is reported with its error, never silently.

Not on any start path: it imports what it likes (subprocess, json, statistics; matplotlib
only to draw the PNG).
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from pyminidocker.errors import PmdError, UsageError

WARMUP = 2  # runs of each engine not counted: page cache, dentries, the first cgroup of a kind
TRACE_RUNS = 10  # traced runs of ours for the phase breakdown (tracing costs a little itself)


class BenchError(PmdError):
    """The benchmark cannot run (no such image, not root): one line, exit code 125."""

    exit_code = 125


def pmd_command() -> list[str]:
    """Our CLI as this process was started: the launcher `make install` writes (python -S, no
    site .pth imports: what users run), or this interpreter with `-m pyminidocker`."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "pyminidocker" and os.access(argv0, os.X_OK):
        return [os.path.abspath(argv0)]
    return [sys.executable, "-m", "pyminidocker"]


# ---- statistics and tables --------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    default), so p95 of 20 runs is not simply the largest."""
    s = sorted(values)
    if not s:
        raise ValueError("no values")
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Result:
    """The timings of one engine (seconds), or why it has none."""

    name: str
    times: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def table(results: Sequence[Result], base: Result, out: TextIO) -> None:
    """median, p95, min and the ratio of each median to base's (ours)."""
    width = max(len(r.name) for r in results) + 2
    out.write(f"{'engine':<{width}}{'median':>10}{'p95':>10}{'min':>10}{'ratio':>8}\n")
    for r in results:
        if not r.times:
            out.write(f"{r.name:<{width}}failed: {r.error}\n")
            continue
        ratio = r.median / base.median if base.times else float("nan")
        out.write(f"{r.name:<{width}}{ms(r.median):>10}{ms(percentile(r.times, 95)):>10}"
                  f"{ms(min(r.times)):>10}{ratio:>7.2f}x\n")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# ---- running engines ----------------------------------------------------------------------------

@dataclass
class Engine:
    """One command line to time; @N in it is replaced by the run's number (unique names)."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None

    def run(self, i: int) -> tuple[float, str | None]:
        """Seconds it took, and its error (last stderr line) if it failed."""
        argv = [a.replace("@N", str(i)) for a in self.argv]
        t = time.perf_counter()
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=self.env, check=False)
        took = time.perf_counter() - t
        if res.returncode != 0:
            lines = res.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
            return took, f"exit code {res.returncode}: {lines[-1]}"
        return took, None


def interleave(engines: Sequence[Engine], runs: int, warmup: int = WARMUP,
               between: Callable[[Engine], None] | None = None) -> list[Result]:
    """runs timed runs of each engine, one of each in turn, after warmup untimed rounds; an
    engine that fails once is dropped with its error. between(engine) runs after each run,
    untimed (a pull benchmark empties the store there)."""
    results = [Result(e.name) for e in engines]
    for i in range(warmup + runs):
        for e, r in zip(engines, results):
            if r.error:
                continue
            took, err = e.run(i)
            if between is not None:
                between(e)
            if err:
                r.error, r.times = err, []
            elif i >= warmup:
                r.times.append(took)
    return results


def found(tool: str, out: TextIO) -> bool:
    """Whether tool is on PATH; if not, the line that says it is skipped."""
    if shutil.which(tool):
        return True
    out.write(f"skipped: {tool} is not installed\n")
    return False


def podman_env() -> dict[str, str]:
    """Ours without a DOCKER_CONFIG whose config.json does not exist: podman 4 refuses to
    start with one (stat ... no such file), where Docker's CLI and ours see no credentials."""
    env = dict(os.environ)
    conf = env.get("DOCKER_CONFIG")
    if conf and not os.path.exists(os.path.join(conf, "config.json")):
        del env["DOCKER_CONFIG"]
    return env


def docker_reachable(out: TextIO) -> bool:
    if not found("docker", out):
        return False
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=10,
                            check=False).returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if not ok:
        out.write("skipped: docker: no daemon answers (`docker info` fails)\n")
    return ok


# ---- the image as a plain directory, for the anchors ---------------------------------------------

def image_lowerdirs(root: str | None, ref: str) -> list[str]:
    """The layer directories of the stored image ref, top first. Raises BenchError."""
    from pyminidocker.engine import Engine

    engine = Engine(root)
    try:
        image = engine.image(ref)
    except PmdError as e:
        raise BenchError(f"{e} (pull it first: the benchmark times starts, not pulls)") from None
    if not image.layer:
        raise BenchError(f"image {ref} has no layers")
    layers = engine.store.layers
    return [layers.diff_path(layer.id) for layer in layers.chain(image.layer)]


def copy_rootfs(lowerdirs: list[str], dest: str) -> None:
    """The image's root as a plain directory tree at dest (what crun, runc and podman's
    --rootfs are given): the layers merged by a read-only overlay, copied out."""
    from pyminidocker import shim

    mnt = tempfile.mkdtemp(prefix="pmd-bench-mnt-")
    empty = mnt + ".empty"  # overlayfs mounts read-only (no upper) from two lowers or more
    os.mkdir(empty)
    try:
        shim.overlay_mount([*lowerdirs, empty], mnt, readonly=True)
        try:
            subprocess.run(["cp", "-a", f"{mnt}/.", dest], check=True)
        finally:
            shim.umount(mnt, shim.MNT_DETACH)
    finally:
        os.rmdir(empty)
        os.rmdir(mnt)


def oci_bundle(bundle: str, rootfs: str, runtime: str, argv: list[str]) -> None:
    """A bundle for crun/runc: rootfs copied, the runtime's default spec (its namespaces
    include a network namespace: as --network none), argv without a terminal, and the file
    limit every engine here gets."""
    os.makedirs(bundle)
    subprocess.run(["cp", "-a", rootfs, os.path.join(bundle, "rootfs")], check=True)
    subprocess.run([runtime, "spec"], cwd=bundle, check=True, capture_output=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["args"] = argv
    spec["process"]["terminal"] = False
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                                  {"type": "RLIMIT_NPROC", "hard": 1024, "soft": 1024}]
    with open(path, "w") as f:
        json.dump(spec, f)


@contextmanager
def crun_cgroup_workaround() -> Iterator[None]:
    """crun 1.8 refuses a hybrid cgroup layout (v1 plus an empty v2 mount at unified) that
    has no hugetlb v1 hierarchy; mount one for the run, and only if it was missing."""
    hugetlb = "/sys/fs/cgroup/hugetlb"
    mounted = False
    if os.path.isdir("/sys/fs/cgroup/unified") and not os.path.ismount(hugetlb) \
            and os.path.isdir("/sys/fs/cgroup/memory"):
        made = not os.path.exists(hugetlb)
        try:
            os.makedirs(hugetlb, exist_ok=True)
            mounted = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup",
                                      hugetlb], capture_output=True, check=False).returncode == 0
        except OSError:
            pass
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", hugetlb], check=False)
            if made:
                try:
                    os.rmdir(hugetlb)
                except OSError:
                    pass


def remove_work(work: str) -> None:
    """Remove a directory of the benchmark, after the mounts an anchor left in it (podman's
    storage keeps its overlay directory bind-mounted after it exits)."""
    from pyminidocker import shim

    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(work + "/")), reverse=True):
        try:
            shim.umount(point, shim.MNT_DETACH)
        except OSError:
            pass  # gone with its parent already
    subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)


# ---- the trace ----------------------------------------------------------------------------------

def parse_trace(stderr: str) -> tuple[float, dict[str, float], dict[str, float]]:
    """From PYMINIDOCKER_TRACE's report: (total ms since cli main, the top-level phases and the
    child's phases, ms by name; a phase met twice, like teardown, is summed)."""
    total = 0.0
    top: dict[str, float] = {}
    child: dict[str, float] = {}
    for line in stderr.splitlines():
        head, at, _ = line.partition("@")
        parts = head.strip().rsplit(None, 1)
        if not line.startswith("  ") or len(parts) != 2:
            continue
        name, value = parts[0], float(parts[1])
        if name == "total since cli main":
            total = value
        elif name.startswith("child: "):
            name = name.removeprefix("child: ")
            child[name] = child.get(name, 0.0) + value
        elif at:
            top[name] = top.get(name, 0.0) + value
    return total, top, child


STARTUP = "interpreter + imports"
UNTRACED = "parsing and the rest"


def phase_breakdown(engine: Engine, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms of each phase of ours over runs traced runs, in the order they happen, so that
    they add up to its wall time: the interpreter's start and imports (wall time before main,
    the outside measurement less the trace's total), each traced phase, and what main did
    outside any phase. The child's own phases (inside "spawn") come apart."""
    env = {**(engine.env or os.environ), "PYMINIDOCKER_TRACE": "1"}
    per_run: list[dict[str, float]] = []
    children: list[dict[str, float]] = []
    for i in range(runs):
        argv = [a.replace("@N", f"t{i}") for a in engine.argv]
        t = time.perf_counter()
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env, check=False)
        wall = (time.perf_counter() - t) * 1e3
        total, top, child = parse_trace(res.stderr)
        if res.returncode != 0 or not total:
            continue
        phases = {STARTUP: max(wall - total, 0.0), **top,
                  UNTRACED: max(total - sum(top.values()), 0.0)}
        per_run.append(phases)
        children.append(child)
    names = [n for n in dict.fromkeys(n for p in per_run for n in p) if n != UNTRACED]
    names.append(UNTRACED)  # last, whichever run had a phase the others did not
    med = {n: statistics.median(p.get(n, 0.0) for p in per_run) for n in names} \
        if per_run else {}
    cnames = list(dict.fromkeys(n for c in children for n in c))
    cmed = {n: statistics.median(c.get(n, 0.0) for c in children) for n in cnames}
    return med, cmed


def phase_table(phases: dict[str, float], child: dict[str, float], out: TextIO) -> None:
    total = sum(phases.values())
    out.write(f"{'phase':<40}{'median':>10}{'share':>8}\n")
    for name, v in phases.items():
        out.write(f"{name:<40}{v:>7.2f} ms{v / total * 100 if total else 0:>7.0f}%\n")
        if name.startswith("spawn"):
            for cname, cv in child.items():
                out.write(f"{'  child: ' + cname:<40}{cv:>7.2f} ms\n")
    out.write(f"{'sum':<40}{total:>7.2f} ms\n")


# ---- the picture --------------------------------------------------------------------------------

def plot(path: str, title: str, groups: dict[str, list[Result]],
         phases: dict[str, float] | None = None) -> None:
    """A PNG: the distribution of each engine's times (one panel per group: an image, or the
    start of a container), and a stacked bar of our phases if given. Raises ImportError
    without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = len(groups) + (1 if phases else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), squeeze=False)
    for ax, (group, results) in zip(axes[0], groups.items()):
        ok = [r for r in results if r.times]
        # drawn by hand, not with boxplot(): its keywords change between matplotlib versions
        for y, r in enumerate(ok):
            values = [t * 1e3 for t in r.times]
            ax.hlines(y, min(values), percentile(values, 95), color="0.6", linewidth=6)
            ax.plot(values, [y + 0.15 * ((i % 5) - 2) / 2 for i in range(len(values))], ".",
                    alpha=0.6, markersize=5)
            ax.plot([statistics.median(values)], [y], "|", color="black", markersize=22,
                    markeredgewidth=2)
        ax.set_yticks(range(len(ok)), [r.name for r in ok])
        ax.invert_yaxis()  # ours, first in the table, on top
        times = [t * 1e3 for r in ok for t in r.times]
        if times and max(times) > 8 * min(times):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("milliseconds (dots: runs; bar: min to p95; tick: median)")
        ax.set_title(group)
        ax.grid(axis="x", alpha=0.3)
    if phases:
        ax = axes[0][-1]
        bottom = 0.0
        for name, v in phases.items():
            ax.bar(["pyminidocker"], [v], bottom=[bottom], label=f"{name} ({v:.1f} ms)")
            bottom += v
        ax.set_ylabel("milliseconds (medians of traced runs)")
        ax.set_title("where our start goes")
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_png(path: str | None, out: TextIO, *args: Any, **kw: Any) -> None:
    if not path:
        return
    try:
        plot(path, *args, **kw)
    except ImportError:
        out.write("no PNG: matplotlib is not installed (`make deps` installs it)\n")
        return
    out.write(f"wrote {path}\n")


# ---- bench start --------------------------------------------------------------------------------

def bench_start(root: str | None, image: str, argv: list[str], runs: int, png: str | None,
                out: TextIO, workdir: str | None = None, network: str = "none") -> list[Result]:
    """Time runs starts of image (argv in it) by ours (run --rm, the store at root) and by each
    anchor present: crun and runc on a ready bundle of the same root (a network namespace
    with lo alone, whatever network says), podman on the same root (--rootfs), docker on it
    imported. Ours runs on network (none, bridge or a network's name), podman and docker on
    none, or on their default bridge for any other. Writes the tables (and the PNG) to out;
    returns the results, ours first."""
    if runs < 1:
        raise UsageError(f"invalid argument \"{runs}\" for \"-n, --runs\" flag: at least 1")
    if os.geteuid() != 0:
        raise BenchError("bench start needs root (containers)")
    pmd = pmd_command() + (["--root", root] if root else [])
    lowers = image_lowerdirs(root, image)
    work = tempfile.mkdtemp(prefix="pmd-bench-start-", dir=workdir)
    docker_image = None
    try:
        rootfs = os.path.join(work, "rootfs")
        os.mkdir(rootfs)
        copy_rootfs(lowers, rootfs)
        ours = Engine(f"pyminidocker run --rm --network {network}",
                      [*pmd, "run", "--rm", "--network", network, image, *argv])
        theirs = "none" if network == "none" else "bridge"
        net = ["--network", theirs]
        engines = [ours]
        for rt in ("crun", "runc"):
            if found(rt, out):
                bundle = os.path.join(work, f"bundle-{rt}")
                oci_bundle(bundle, rootfs, rt, argv)
                engines.append(Engine(f"{rt} run (ready bundle)",
                                      [rt, "run", "-b", bundle, f"pmdbench{os.getpid()}-@N"]))
        ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        if found("podman", out):
            engines.append(Engine(f"podman run --rm --network {theirs}", [
                "podman", "--root", os.path.join(work, "podman"), "--runroot",
                os.path.join(work, "podman-run"), "run", "--rm", *net,
                *ulimits, "--rootfs", f"{rootfs}:O", *argv], env=podman_env()))
        if docker_reachable(out):
            docker_image = f"pyminidocker-bench:{os.getpid()}"
            tar = subprocess.Popen(["tar", "-C", rootfs, "-cf", "-", "."],
                                   stdout=subprocess.PIPE)
            subprocess.run(["docker", "import", "-", docker_image], stdin=tar.stdout,
                           check=True, capture_output=True)
            tar.wait()
            engines.append(Engine(f"docker run --rm --network {theirs}", [
                "docker", "run", "--rm", *net, *ulimits, docker_image, *argv]))
        with crun_cgroup_workaround():
            results = interleave(engines, runs)
            phases, child = phase_breakdown(ours, min(runs, TRACE_RUNS))
        out.write(f"\n{runs} runs each of `{' '.join(argv)}` in {image}, interleaved, after "
                  f"{WARMUP} warm-up rounds; ratio = median / ours\n\n")
        table(results, results[0], out)
        out.write(f"\nour phases (PYMINIDOCKER_TRACE=1, medians of {min(runs, TRACE_RUNS)} "
                  "traced runs):\n\n")
        phase_table(phases, child, out)
        write_png(png, out, f"container start: `{' '.join(argv)}` in {image}",
                  {"start latency": results}, phases)
        return results
    finally:
        if docker_image:
            subprocess.run(["docker", "rmi", "-f", docker_image], capture_output=True,
                           check=False)
        remove_work(work)


# ---- bench pull ---------------------------------------------------------------------------------

def _plain_http(ref: str) -> bool:
    """A registry reached over plain HTTP by ours (loopback): the anchors must be told."""
    host = ref.split("/", 1)[0] if "/" in ref else ""
    return host.startswith(("localhost", "127.")) or host == "[::1]"


def bench_pull(images: Sequence[str], runs: int, png: str | None, out: TextIO,
               workdir: str | None = None) -> dict[str, list[Result]]:
    """Time runs pulls of each image into an empty store by ours, skopeo copy + umoci unpack,
    podman and docker where present, and the floor: bsdtar -xpf of the same layer blobs, read
    from the disk the stores are on (workdir). Writes a table per image (and the PNG)."""
    if runs < 1:
        raise UsageError(f"invalid argument \"{runs}\" for \"-n, --runs\" flag: at least 1")
    if os.geteuid() != 0:
        raise BenchError("bench pull needs root (the layers keep their owners)")
    work = tempfile.mkdtemp(prefix="pmd-bench-pull-", dir=workdir)
    groups: dict[str, list[Result]] = {}
    try:
        have = {t: found(t, out) for t in ("skopeo", "umoci", "podman", "bsdtar")}
        docker = docker_reachable(out)
        for ref in images:
            engines = _pull_engines(ref, work, have, docker)
            results = interleave(engines, runs, warmup=1,
                                 between=functools.partial(_empty, work, ref))
            floor = _bsdtar_floor(work, runs, have["bsdtar"], have["skopeo"], out)
            if floor is not None:
                results.append(floor)
            groups[ref] = results
            out.write(f"\n{ref}: {runs} pulls each into an empty store, interleaved, after a "
                      "warm-up round; ratio = median / ours\n\n")
            table(results, results[0], out)
            shutil.rmtree(os.path.join(work, "blobs"), ignore_errors=True)
        write_png(png, out, "pull into an empty store", groups)
        return groups
    finally:
        remove_work(work)


def _podman(work: str) -> list[str]:
    return ["podman", "--root", os.path.join(work, "podman"), "--runroot",
            os.path.join(work, "podman-run")]


def _pull_engines(ref: str, work: str, have: dict[str, bool], docker: bool) -> list[Engine]:
    """Ours and each anchor present, pulling ref into work's empty stores."""
    insecure = _plain_http(ref)
    engines = [Engine("pyminidocker pull", [*pmd_command(), "--root",
                                            os.path.join(work, "store"), "pull", "-q", ref])]
    if have["skopeo"] and have["umoci"]:
        tls = ["--src-tls-verify=false"] if insecure else []
        engines.append(Engine("skopeo copy + umoci unpack", [
            "sh", "-c", 'skopeo --insecure-policy copy -q "$@" && umoci unpack '
            '--image "$OCI:latest" "$BUNDLE"', "sh", *tls, f"docker://{ref}",
            f"oci:{os.path.join(work, 'oci')}:latest"],
            env={**os.environ, "OCI": os.path.join(work, "oci"),
                 "BUNDLE": os.path.join(work, "bundle")}))
    if have["podman"]:
        tls = ["--tls-verify=false"] if insecure else []
        engines.append(Engine("podman pull", [*_podman(work), "pull", "-q", *tls, ref],
                              env=podman_env()))
    if docker:
        engines.append(Engine("docker pull", ["docker", "pull", "-q", ref]))
    return engines


def _empty(work: str, ref: str, engine: Engine) -> None:
    """After a pull: the stores empty again (untimed). skopeo's copy becomes the blobs of the
    floor (the last one kept)."""
    if engine.name.startswith("docker"):
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)
    elif engine.name.startswith("podman"):
        subprocess.run([*_podman(work), "rmi", "-a", "-f"], capture_output=True, check=False)
    for d in ("store", "bundle", "podman"):
        remove_work(os.path.join(work, d))
    if engine.name.startswith("skopeo"):
        shutil.rmtree(os.path.join(work, "blobs"), ignore_errors=True)
        os.rename(os.path.join(work, "oci"), os.path.join(work, "blobs"))


def _bsdtar_floor(work: str, runs: int, bsdtar: bool, skopeo: bool,
                  out: TextIO) -> Result | None:
    """bsdtar -xpf of each layer blob of the image (from skopeo's OCI layout), one after the
    other into one directory: extraction alone, no network, no verification."""
    blobs = os.path.join(work, "blobs")
    if not bsdtar:
        return None
    if not skopeo or not os.path.isdir(blobs):
        out.write("skipped: the bsdtar floor needs the layer blobs skopeo fetches\n")
        return None
    with open(os.path.join(blobs, "index.json")) as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(blobs, "blobs", *manifest_digest.split(":"))) as f:
        layers = [os.path.join(blobs, "blobs", *layer["digest"].split(":"))
                  for layer in json.load(f)["layers"]]
    dest = os.path.join(work, "floor")
    script = 'mkdir "$D" && for b in "$@"; do bsdtar -xpf "$b" -C "$D" || exit 1; done'
    engine = Engine("bsdtar -xpf (local blobs, floor)", ["sh", "-c", script, "sh", *layers],
                    env={**os.environ, "D": dest})
    result = interleave([engine], runs, warmup=1, between=lambda e: shutil.rmtree(dest))[0]
    return result
