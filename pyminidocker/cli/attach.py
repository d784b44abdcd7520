"""`attach`: join a running container's output (from its log, as the monitor writes it) and,
for one started with `run -d -i`, its stdin (the fifo its monitor keeps open; with -t the
monitor passes it to the console, and our terminal is put in raw mode meanwhile), until it
exits (then exit with its code) or the detach keys (ctrl-p,ctrl-q) are typed.
"""
from __future__ import annotations

import os
import signal
import threading

from pyminidocker.engine import parse_detach_keys
from pyminidocker.errors import Conflict, NotFound, PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.container.attach import StdinWriter
    from pyminidocker.engine import ContainerRecord, Engine

# what --sig-proxy forwards: the signals a user sends to stop or poke a process (a window
# size change is no news to a container without a tty)
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)


def cmd_attach(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    rec = eng.container(args.container)
    if args.detach_keys:
        parse_detach_keys(args.detach_keys)  # a bad value is an error whatever the container
    if rec.state.status != "running":
        raise Conflict("You cannot attach to a stopped container, start it first")
    if rec.state.paused:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if rec.tty and rec.open_stdin and not args.no_stdin and not _is_terminal(env):
        # as Docker: a console's input is keys typed, not a stream piped in
        raise PmdError("the input device is not a TTY")
    stdin = None if args.no_stdin else eng.open_stdin(rec, args.detach_keys)
    done = threading.Event()
    detached = threading.Event()
    failed: list[BaseException] = []

    def output() -> None:
        try:
            for r in eng.logs(rec, tail=0, follow=True):
                out = env.stderr if r.get("stream") == "stderr" else env.stdout
                out.write(r["log"])
                out.flush()
        except BaseException as e:  # reported by the main thread
            failed.append(e)
        finally:
            done.set()

    def input_(writer: StdinWriter) -> None:
        try:
            while not done.is_set():
                data = os.read(env.stdin.fileno(), 65536)
                if not data:
                    return  # our EOF: the container's stdin stays open, as Docker's -d -i
                if writer.write(data):
                    detached.set()
                    done.set()
                    return
        except OSError:
            return
        finally:
            writer.close()

    threading.Thread(target=output, daemon=True).start()
    if stdin is not None:
        threading.Thread(target=input_, args=(stdin,), daemon=True).start()
    # as Docker: with a tty, ^C and the like reach the container through its console
    restore = _proxy_signals(eng, rec) if args.sig_proxy and not rec.tty else {}
    raw = _raw_terminal(env) if stdin is not None and rec.tty else None
    try:
        while not done.wait(0.1):
            pass
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)
        if raw is not None:
            raw()
    if detached.is_set():
        env.stderr.write("read escape sequence\n")
        return 0
    if failed:
        raise failed[0]
    try:
        return eng.wait(rec)
    except NotFound:  # run --rm: removed as soon as it exited; its `die` kept the code
        import time

        deadline = time.monotonic() + 5  # the `rm` its monitor became may still be logging
        while not (dies := eng.events(0, {"container": [rec.id], "event": ["die"]}).read()):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        return int(dies[-1]["Actor"]["Attributes"].get("exitCode") or 0)


def _is_terminal(env: Env) -> bool:
    try:
        return os.isatty(env.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # an in-process stream has no descriptor
        return False


def _raw_terminal(env: Env) -> Any:
    """Our stdin in raw mode, if it is a terminal (keys go to the container's console as
    typed, the detach keys among them); returns what restores it, or None."""
    import termios
    import tty

    if not _is_terminal(env):
        return None
    fd = env.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _proxy_signals(eng: Engine, rec: ContainerRecord) -> dict[int, Any]:
    """Pass the signals we get to the container (Docker's --sig-proxy); the handlers they
    replace."""
    from pyminidocker.errors import PmdError

    def forward(sig: int, _frame: object) -> None:
        try:
            eng.kill(rec, sig)
        except PmdError:
            pass  # it has exited meanwhile: its exit ends the attach

    return {sig: signal.signal(sig, forward) for sig in PROXIED}
