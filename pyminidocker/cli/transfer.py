"""`save`, `load`, `export`, `import`, `commit`: images in and out of tar files (the engine's
image/archive.py does the work); `push`: an image out to its registry."""
from __future__ import annotations

import os

from pyminidocker.errors import PmdError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Engine

_TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def _output(env: Env, path: str | None) -> AbstractContextManager[Callable[[bytes], object]]:
    """Where a tar goes: the file -o names (written aside, renamed in place when whole, as
    Docker does) or stdout, never a terminal."""
    from contextlib import contextmanager

    @contextmanager
    def sink() -> Iterator[Callable[[bytes], object]]:
        if path is None:
            if env.tty:
                raise PmdError(_TERMINAL)
            out = getattr(env.stdout, "buffer", None)
            if out is None:
                raise UsageError("stdout takes no binary data: use -o")
            env.stdout.flush()
            yield out.write
            out.flush()
            return
        tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                           f".{os.path.basename(path)}.{os.urandom(4).hex()}.tmp")
        try:
            with open(tmp, "xb") as f:
                yield f.write
            os.rename(tmp, path)
        except OSError as e:
            raise PmdError(f"failed to save to {path}: {e.strerror}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    return sink()


def cmd_save(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    if args.output is None and env.tty:
        raise PmdError(_TERMINAL)
    with _output(env, args.output) as sink:
        eng.save(args.images, sink)
    return 0


def cmd_load(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import familiar

    eng: Engine = args.engine
    if args.input is not None:
        try:
            fd = os.open(args.input, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PmdError(f"open {args.input}: {e.strerror}") from None
    else:
        if env.stdin.isatty():
            raise PmdError("requested load from stdin, but stdin is empty")
        fd = env.stdin.fileno()
    try:
        loaded = eng.load(fd)
    finally:
        if args.input is not None:
            os.close(fd)
    for image_id, names in loaded:
        if not names:
            env.out(f"Loaded image ID: sha256:{image_id}")
        for name in names:
            env.out(f"Loaded image: {familiar(name)}")
    return 0


def cmd_export(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    rec = eng.container(args.container)
    if args.output is None and env.tty:
        raise PmdError(_TERMINAL)
    with _output(env, args.output) as sink:
        eng.export(rec, sink)
    return 0


def cmd_import(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    src = args.source
    if "://" in src:
        raise UsageError(f"importing from a URL is not supported ({src}): download it first")
    if src == "-":
        fd, mine = env.stdin.fileno(), False
    else:
        try:
            fd, mine = os.open(src, os.O_RDONLY | os.O_CLOEXEC), True
        except OSError as e:
            raise PmdError(f"open {src}: {e.strerror}") from None
    try:
        image_id = eng.import_image(fd, args.reference, args.message or "", args.change)
    finally:
        if mine:
            os.close(fd)
    env.out(f"sha256:{image_id}")
    return 0


def cmd_commit(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    rec = eng.container(args.container)
    image_id = eng.commit(rec, args.reference, args.message or "", args.author or "",
                          args.change, pause=args.pause)
    env.out(f"sha256:{image_id}")
    return 0


def cmd_push(args: Namespace, env: Env) -> int:
    from pyminidocker.cli.output import PullRenderer
    from pyminidocker.engine import parse_reference

    eng: Engine = args.engine
    ref = parse_reference(args.name)
    if args.all_tags and ref.tag and args.name.rsplit("/", 1)[-1].count(":"):
        raise UsageError("tag can't be used with --all-tags/-a")
    if not args.all_tags and not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
    render = None if args.quiet else PullRenderer(env)
    if render is not None:
        env.out(f"The push refers to repository [{ref.name}]")
    for r, res in eng.push(str(ref) if not args.all_tags else ref.name, render):
        if args.quiet:
            env.out(str(r))
        else:
            env.out(f"{res.tag}: digest: {res.digest} size: {res.size}")
    return 0
