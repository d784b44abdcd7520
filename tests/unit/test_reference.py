"""The CLI's reference from its argument tables: --help in Docker's words, bash completion
(run in a real bash) and the man page (rendered by man), and make's install of both."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyminidocker.cli import reference as R
from pyminidocker.cli import wording as W
from pyminidocker.cli.args import _flag_names
from pyminidocker.cli.main import Env, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def help_of(path: str) -> str:
    out = io.StringIO()
    assert main([*path.split(), "--help"], Env(stdout=out)) == 0
    return out.getvalue()


def test_every_command_and_option_docker_has_is_in_dockers_words():
    tree = dict(W.commands(build_parser()))
    for path, words in W.DOCKER_WORDING.items():
        assert path in tree, f"the wording of a command that does not exist: {path!r}"
        declared = {W.long_name(o) for o in tree[path]._options}
        for name, text in words.items():
            assert name == "" or name in declared, f"{path} has no option {name}"
            text = text[1] if isinstance(text, tuple) else text
            if path:  # the root's help is the listing
                assert text in help_of(path), (path, name)
    run = help_of("run")
    assert "Create and run a new container from an image" in run
    # the column is as wide as the longest option (--device-cgroup-rule list), as in Docker's
    assert "      --rm                           Automatically remove the container when it " \
           "exits" in run
    assert "  -m, --memory bytes" in run and "      --cpus decimal" in run
    # no default shown: it is the container's --stop-timeout (Docker 23+ says the same)
    assert "Seconds to wait before killing the container\n" in help_of("stop")
    listing = help_of("")
    assert "  exec        Execute a command in a running container" in listing


def test_every_option_of_every_command_has_help():
    for path, p in W.commands(R.full_parser()):
        for o in p._options:
            assert o.help and o.help[0].isupper(), f"{path} {o.names}: {o.help!r}"


def complete(script: Path, line: str) -> list[str]:
    """What bash offers for the last word of line (the cursor at its end)."""
    words = line.split(" ")
    code = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n_pyminidocker\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True,
                         text=True, check=True)
    assert res.stderr == ""
    return [w for w in res.stdout.splitlines() if w]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "pyminidocker"
    path.write_text(R.bash_completion())
    return path


def test_completion_offers_runs_flags_commands_and_choices(script):
    run = next(p for path, p in W.commands(build_parser()) if path == "run")
    every_flag = {n for o in run._options for n in o.names}
    assert set(complete(script, "pyminidocker run -")) == every_flag | {"--help"}
    assert set(complete(script, "pyminidocker run --r")) == {"--rm", "--read-only",
                                                             "--restart", "--runtime"}
    assert set(complete(script, "pyminidocker --root /x run --pi")) == {"--pid",
                                                                        "--pids-limit"}
    assert "run" in complete(script, "pyminidocker ")
    assert complete(script, "pyminidocker ne") == ["network"]
    assert set(complete(script, "pyminidocker network ")) >= {"create", "ls", "rm", "prune"}
    assert complete(script, "pyminidocker network create --int") == ["--internal"]
    assert set(complete(script, "pyminidocker inspect --type ")) == {"container", "image",
                                                                     "network"}
    assert complete(script, "pyminidocker system ") == ["reset", "check", "service", "df",
                                                        "prune"]
    # a flag's value, and the container's own command after the image, are not our flags
    assert complete(script, "pyminidocker run -e -") == []
    assert complete(script, "pyminidocker run --rm -e A=1 busybox ls -") == []


def test_the_man_page_renders_every_command_and_option(tmp_path):
    if not shutil.which("man"):
        pytest.skip("man is not installed (man-db, in the Makefile's APT_PACKAGES)")
    page = tmp_path / "pyminidocker.1"
    page.write_text(R.man_page())
    res = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                         text=True, env={**os.environ, "MANWIDTH": "200", "MANPAGER": "cat",
                                         "PAGER": "cat"}, check=True)
    assert res.stderr == ""
    text = res.stdout.replace("\u2010", "-").replace("\u2212", "-")
    assert "pyminidocker run [OPTIONS] IMAGE [COMMAND...]" in text
    for path, p in W.commands(R.full_parser()):
        if p is not None and path:
            assert p.summary in text
        for o in p._options:
            assert _flag_names(o).strip() in text, (path, o.names)


def test_make_installs_and_uninstalls_completion_and_man_page(tmp_path):
    dirs = [f"BASH_COMPLETION_DIR={tmp_path}/completions", f"MAN1_DIR={tmp_path}/man1"]
    files = [tmp_path / "completions" / "pyminidocker", tmp_path / "man1" / "pyminidocker.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    subprocess.run(["make", "-s", "install-docs", *dirs], cwd=REPO, env=env, check=True,
                   capture_output=True)
    assert files[0].read_text() == R.bash_completion()
    assert files[1].read_text().startswith(".TH PYMINIDOCKER 1")
    subprocess.run(["make", "-s", "uninstall-docs", *dirs], cwd=REPO, env=env, check=True,
                   capture_output=True)
    assert not any(f.exists() for f in files)
