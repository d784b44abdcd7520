"""`cp`: copy files between a container and the host, or a tar through stdin/stdout."""
from __future__ import annotations

import os
import sys

from pyminidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace


def split(arg: str) -> tuple[str | None, str]:
    """(container, path) of a cp argument, as Docker splits them: a path that starts with "/"
    or "." is the host's (a colon may follow), otherwise CONTAINER:PATH; "-" is stdin/out."""
    if arg.startswith(("/", ".")) or arg == "-":
        return None, arg
    name, colon, path = arg.partition(":")
    if not colon:
        return None, arg
    return name, path


def cmd_cp(args: Namespace, env: Any) -> int:
    eng = args.engine
    src_ctr, src = split(args.src)
    dst_ctr, dst = split(args.dest)
    if src_ctr is not None and dst_ctr is not None:
        raise UsageError("copying between containers is not supported", exit_code=1)
    if src_ctr is None and dst_ctr is None:
        raise UsageError("must specify at least one container source", exit_code=1)
    if src_ctr is not None:
        if not src:
            raise UsageError("source path cannot be empty", exit_code=1)
        rec = eng.container(src_ctr)
        if dst == "-":
            out = getattr(env.stdout, "buffer", None)
            env.stdout.flush()
            fd = out.fileno() if out is not None else sys.stdout.fileno()
            eng.archive_get(rec, src, lambda chunk: _write_all(fd, chunk), follow=args.follow_link)
            return 0
        eng.copy_from(rec, src, dst, archive=args.archive, follow=args.follow_link)
        return 0
    assert dst_ctr is not None
    if not dst:
        raise UsageError("destination path cannot be empty", exit_code=1)
    rec = eng.container(dst_ctr)
    if src == "-":
        stdin = getattr(env.stdin, "buffer", env.stdin)  # readinto, as read_tar wants
        eng.archive_put(rec, dst, stdin, copy_ids=args.archive,
                        no_overwrite_dir_nondir=True)
        return 0
    eng.copy_to(rec, src, dst, archive=args.archive, follow=args.follow_link)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

