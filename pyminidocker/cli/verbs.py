"""`stop`, `kill`, `rm`, `wait`, `logs`, `rename`, `ps`, `port`, `container prune`, `restart`,
`pause`, `unpause`, `top`, `diff`, `stats`, `update`: the CLI face of the engine's verbs over
existing containers, in Docker's words and columns.

Their arguments are declared in cli/main.py's command table; this module is imported only when
one of these commands runs.
"""
from __future__ import annotations

from pyminidocker.errors import PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import ContainerRecord, Engine


def cmd_simple(args: Namespace, env: Any) -> int:
    """restart, pause, unpause: each container in turn, its name echoed, errors one line."""
    action: Callable[[Engine, Any], None] = {
        "restart": lambda e, rec: e.restart(rec, args.time),
        "pause": lambda e, rec: e.pause(rec),
        "unpause": lambda e, rec: e.unpause(rec),
    }[args.command]
    return _each(args, env, action)


def cmd_top(args: Namespace, env: Any) -> int:
    from pyminidocker.cli.output import table

    eng: Engine = args.engine
    titles, rows = eng.top(eng.container(args.container), list(args.ps_args))
    if titles:
        table([titles, *rows], env)
    return 0


def cmd_diff(args: Namespace, env: Any) -> int:
    eng: Engine = args.engine
    for kind, path in eng.changes(eng.container(args.container)):
        env.out(f"{kind} {path}")
    return 0


def _stats_rows(eng: Engine, recs: list[Any], before: dict[str, dict[str, Any]]
                ) -> list[dict[str, str]]:
    from pyminidocker.engine import cpu_percent
    from pyminidocker.humanize import binary_size
    from pyminidocker.humanize import human_size as _decimal  # go-units HumanSize

    rows = []
    for rec in recs:
        try:
            s = eng.stats(rec)
        except PmdError:
            continue  # stopped meanwhile
        prev = before.get(rec.id)
        cpu = cpu_percent(prev, s) if prev else 0.0
        before[rec.id] = s
        mem_pct = s["mem_usage"] / s["mem_limit"] * 100 if s["mem_limit"] else 0.0
        rows.append({"Container": rec.short_id, "ID": rec.short_id, "Name": rec.name,
                     "CPUPerc": f"{cpu:.2f}%",
                     "MemUsage": f"{binary_size(s['mem_usage'])} / {binary_size(s['mem_limit'])}",
                     "MemPerc": f"{mem_pct:.2f}%",
                     "NetIO": f"{_decimal(s['net_rx'])} / {_decimal(s['net_tx'])}",
                     "BlockIO": f"{_decimal(s['blk_read'])} / {_decimal(s['blk_write'])}",
                     "PIDs": str(s["pids"])})
    return rows


def cmd_stats(args: Namespace, env: Any) -> int:
    """Docker's stats table: --no-stream prints one (CPU % over a second), else it is
    redrawn every second until interrupted."""
    import time

    from pyminidocker.cli import columns
    from pyminidocker.cli.listing import render

    eng: Engine = args.engine
    if args.containers:
        recs = [eng.container(c) for c in args.containers]
        for rec in recs:
            if rec.state.status != "running" and args.no_stream:
                raise PmdError(f"Container {rec.id} is not running")
    else:
        recs = eng.containers(all=args.all)
    before: dict[str, dict[str, Any]] = {}
    _stats_rows(eng, recs, before)
    try:
        while True:
            time.sleep(1.0)
            rows = _stats_rows(eng, recs, before)
            if not args.no_stream:
                env.stdout.write("\x1b[2J\x1b[H")
            render(env, args.format, rows, columns.STATS_HEADER, columns.STATS_TABLE)
            env.stdout.flush()
            if args.no_stream:
                return 0
    except KeyboardInterrupt:
        return 0


_UPDATE_INTS = ("cpu_shares", "cpu_period", "cpu_quota", "pids_limit", "blkio_weight")


def cmd_update(args: Namespace, env: Any) -> int:
    """`update`: new limits, live; each container's name echoed."""
    from pyminidocker.cli.runflags import KERNEL_MEMORY_WARNING
    from pyminidocker.engine import parse_bytes, parse_cpus

    changes: dict[str, Any] = {}
    if args.memory is not None:
        changes["memory"] = parse_bytes(args.memory)
    for key in ("memory_swap", "memory_reservation"):
        if getattr(args, key) is not None:
            changes[key] = parse_bytes(getattr(args, key), allow_unlimited=True)
    if args.cpus is not None:
        changes["cpus"] = parse_cpus(args.cpus)
    for key in ("cpuset_cpus", "cpuset_mems"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    for key in _UPDATE_INTS:
        value = getattr(args, key)
        if value is not None:
            try:
                changes[key] = int(value)
            except ValueError:
                raise UsageError(f'invalid argument "{value}" for '
                                 f'"--{key.replace("_", "-")}" flag') from None
    if args.kernel_memory is not None:
        env.stderr.write(KERNEL_MEMORY_WARNING + "\n")
    if not changes and args.kernel_memory is None:
        raise UsageError("you must provide one or more flags when using this command")
    return _each(args, env, lambda eng, rec: eng.update(rec, changes))


def _confirm(env: Any, force: bool, warning: str) -> bool:
    if force:
        return True
    env.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    env.stdout.flush()
    return env.stdin.readline().strip().lower() in ("y", "yes")


def _section(env: Any, title: str, lines: list[str]) -> None:
    """A prune's "Deleted Containers:" ... block, followed by a blank line; none if empty."""
    if lines:
        env.out(f"Deleted {title}:")
        for line in lines:
            env.out(line)
        env.out("")


def _deleted_images(env: Any, done: list[tuple[str, str]]) -> None:
    _section(env, "Images", [f"{what.lower()}: {name}" for what, name in done])


def cmd_image(args: Namespace, env: Any) -> int:
    """`image prune [-a] [-f]` and `image history`."""
    from pyminidocker.cli.output import human_size
    from pyminidocker.engine import filters

    eng: Engine = args.engine
    if args.action == "history":
        return cmd_history(args, env)
    keep = filters.image_prune_keep(eng, filters.parse(args.filter, filters.PRUNE_KEYS))
    warning = ("This will remove all images without at least one container associated to "
               "them." if args.all else "This will remove all dangling images.")
    if not _confirm(env, args.force, warning):
        return 0
    done, freed = eng.prune_images(all=args.all, keep=keep)
    _deleted_images(env, done)
    env.out(f"Total reclaimed space: {human_size(freed)}")
    return 0


def cmd_history(args: Namespace, env: Any) -> int:
    import time

    from pyminidocker.cli import columns
    from pyminidocker.cli.listing import render
    from pyminidocker.cli.output import human_duration, human_size, parse_time, trunc

    eng: Engine = args.engine
    if not args.image:
        raise UsageError('"history" requires exactly 1 argument.')
    rec = eng.image(args.image)
    steps = eng.history(rec)
    short = "sha256:" + rec.id if args.no_trunc else rec.id[:12]
    if args.quiet:
        env.out(short)
        return 0
    now = time.time()
    rows = []
    for i, h in enumerate(steps):
        created = parse_time(h.get("created", ""))
        by = h.get("created_by", "")
        rows.append({"ID": short if i == 0 else "<missing>",
                     "CreatedSince": human_duration(now - created) + " ago" if created else "",
                     "CreatedAt": h.get("created", ""),
                     "CreatedBy": by if args.no_trunc else trunc(by, 45),
                     "Size": human_size(h["size"]), "Comment": h.get("comment", "")})
    render(env, args.format, rows, columns.HISTORY_HEADER, columns.HISTORY_TABLE)
    return 0


def cmd_system_df(args: Namespace, env: Any) -> int:
    """`system df [--format]`: images, containers, volumes (and Docker's empty build cache)."""
    from pyminidocker.cli import columns
    from pyminidocker.cli.listing import render

    eng: Engine = args.engine
    du = eng.disk_usage()
    rows = [columns.DiskUsageContext(kind, *du[key]) for kind, key in (
        ("Images", "images"), ("Containers", "containers"), ("Local Volumes", "volumes"))]
    rows.append(columns.DiskUsageContext("Build Cache", 0, 0, 0, 0))
    render(env, args.format, rows, columns.DF_HEADER, columns.DF_TABLE)
    return 0


def cmd_system_prune(args: Namespace, env: Any) -> int:
    """`system prune [-a] [--volumes] [-f]`: stopped containers, unused networks, dangling
    images (-a: every unused image), and with --volumes the unused volumes."""
    from pyminidocker.cli.output import human_size

    eng: Engine = args.engine
    what = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        what.append("all volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if args.all
                else "all dangling images")
    if not _confirm(env, args.force, "This will remove:\n" +
                    "".join(f"  - {w}\n" for w in what).rstrip("\n")):
        return 0
    _section(env, "Containers", eng.prune_containers())
    _section(env, "Networks", eng.prune_networks())
    freed = 0
    if args.volumes:
        vols, freed = eng.prune_volumes()
        _section(env, "Volumes", vols)
    done, image_bytes = eng.prune_images(all=args.all)
    _deleted_images(env, done)
    env.out(f"Total reclaimed space: {human_size(freed + image_bytes)}")
    return 0


def _each(args: Namespace, env: Env, action: Callable[[Engine, ContainerRecord], None],
          echo: bool = True, corrupt_ok: bool = False) -> int:
    eng: Engine = args.engine
    status = 0
    for ref in args.containers:
        try:
            action(eng, eng.container(ref, corrupt_ok=corrupt_ok))
            if echo:
                env.out(ref)
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = 1
    return status


def cmd_stop(args: Namespace, env: Env) -> int:
    return _each(args, env, lambda eng, rec: eng.stop(rec, args.time))


def cmd_kill(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import parse_signal

    try:
        sig = parse_signal(args.signal)
    except UsageError:
        # the daemon refuses it in Docker: an operation failed (1), not a usage error (125)
        raise PmdError(f"Invalid signal: {args.signal}") from None
    return _each(args, env, lambda eng, rec: eng.kill(rec, sig))


def cmd_rm(args: Namespace, env: Env) -> int:
    # rm -f also takes a container whose record is corrupt: what is found of it goes
    return _each(args, env, lambda eng, rec: eng.remove(rec, args.force, args.volumes),
                 corrupt_ok=args.force)


def cmd_wait(args: Namespace, env: Env) -> int:
    def wait(eng: Engine, rec: ContainerRecord) -> None:
        env.out(str(eng.wait(rec)))
        env.stdout.flush()

    return _each(args, env, wait, echo=False)


def cmd_logs(args: Namespace, env: Env) -> int:
    """The container's output from its json-file log (written by the monitor of a detached
    container, by the runtime's relay for an attached one). -f follows it until the container
    has exited and everything it wrote is shown."""
    eng: Engine = args.engine
    rec = eng.container(args.container)
    tail = None
    if args.tail not in (None, "all"):
        try:
            tail = int(args.tail)
        except ValueError:
            raise UsageError(f"invalid value for --tail: {args.tail!r}") from None
    for r in eng.logs(rec, tail, args.follow):
        out = env.stderr if r.get("stream") == "stderr" else env.stdout
        out.write(f"{r.get('time', '')} {r['log']}" if args.timestamps else r["log"])
        if args.follow:
            out.flush()
    return 0


def cmd_rename(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    eng.rename(eng.container(args.container), args.new_name)
    return 0


def cmd_ps(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing

    return listing.ps(args, env, args.engine)


def cmd_port(args: Namespace, env: Env) -> int:
    """Docker's `port`: every mapping, or the host addresses of one container port (rc 1 and
    Docker's message when it is not published)."""
    eng: Engine = args.engine
    rec = eng.container(args.container)
    if args.port is None:
        for mapping in rec.state.ports:
            env.out(mapping)
        return 0
    want = args.port if "/" in args.port else f"{args.port}/tcp"
    found = [m.partition(" -> ")[2] for m in rec.state.ports if m.partition(" -> ")[0] == want]
    if not found:
        raise PmdError(f"No public port '{want}' published for {rec.name}")
    for address in found:
        env.out(address)
    return 0


def cmd_container_prune(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import filters

    eng: Engine = args.engine  # Docker's until= and label= (label!=)
    ids = eng.prune_containers(filters.container_prune_keep(
        filters.parse(args.filter, filters.PRUNE_KEYS)))
    env.out("Deleted Containers:")
    for cid in ids:
        env.out(cid)
    return 0
