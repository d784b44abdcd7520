"""Fixtures every test may use: a fresh store and a runner for the CLI.

- `root`: a fresh, empty store directory under the test's tmp_path.
- `pmd(*args, root=None, check=True, env=None, input=None, timeout=120)`: runs
  `python3 -m pyminidocker --root ROOT ARGS...` with PYTHONPATH at the repository, HOME and
  DOCKER_CONFIG in the test's tmp_path (so the host's credentials are never read or written),
  and returns the subprocess.CompletedProcess (text). With check=True a non-zero exit fails the
  test with the command's stdout and stderr. `env` adds to (or, with a value of None, removes
  from) the environment. `pmd.calls` lists (root, args, returncode) of each call, which the
  integration leak checks use.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# A run started as a background job (`cmd &`, nohup, some CI runners) has SIGINT ignored, and
# every program the tests start would inherit that: a ^C the tests send as a user's terminal
# would (attach, events) would then do nothing. A handled signal is reset at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class PmdRunner:
    """Callable that runs the CLI against one default store (see module docstring)."""

    def __init__(self, root: Path, tmp_path: Path):
        self.root = root
        self.home = tmp_path / "home"
        self.docker_config = self.home / ".docker"
        self.home.mkdir(exist_ok=True)
        self.calls: list[tuple[Path, tuple[str, ...], int]] = []

    def env(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYMINIDOCKER_ROOT", None)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["HOME"] = str(self.home)
        env["DOCKER_CONFIG"] = str(self.docker_config)
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def argv(self, *args: str, root: Path | None = None) -> list[str]:
        return [sys.executable, "-m", "pyminidocker", "--root", str(root or self.root),
                *map(str, args)]

    def __call__(self, *args: str, root: Path | None = None, check: bool = True,
                 env: dict[str, str | None] | None = None, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        argv = self.argv(*args, root=root)
        res = subprocess.run(argv, check=False, capture_output=True, text=True, env=self.env(env),
                             input=input, timeout=timeout, cwd=REPO_ROOT,
                             stdin=None if input is not None else subprocess.DEVNULL)
        self.calls.append((Path(root or self.root), tuple(map(str, args)), res.returncode))
        if check and res.returncode != 0:
            pytest.fail(f"{' '.join(argv[2:])} exited {res.returncode}\n"
                        f"--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}", pytrace=False)
        return res

    def popen(self, *args: str, root: Path | None = None,
              env: dict[str, str | None] | None = None) -> subprocess.Popen:
        """Start the CLI without waiting (own session, pipes for stdout/stderr)."""
        self.calls.append((Path(root or self.root), tuple(map(str, args)), -1))
        return subprocess.Popen(self.argv(*args, root=root), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                env=self.env(env), cwd=REPO_ROOT, start_new_session=True)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh, empty store directory."""
    p = tmp_path / "store"
    p.mkdir()
    return p


@pytest.fixture
def pmd(root: Path, tmp_path: Path) -> PmdRunner:
    return PmdRunner(root, tmp_path)


@pytest.fixture(scope="module")
def pmd_factory(tmp_path_factory):
    """For module-scoped stores: pmd_factory(root) -> a PmdRunner on that root (.root)."""
    return lambda root: PmdRunner(Path(root), tmp_path_factory.mktemp("pmd-home"))
