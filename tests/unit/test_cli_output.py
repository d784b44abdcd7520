"""What the CLI prints, in-process (Env injects the streams): Docker's formats."""
from __future__ import annotations

import io

import pytest

from pyminidocker.cli.main import Env, main
from pyminidocker.cli.output import PullRenderer, human_duration, human_size
from pyminidocker.image.pull import Progress


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_pull_progress_plain_lines_when_not_a_tty():
    out = io.StringIO()
    r = PullRenderer(Env(stdout=out))
    for ev in (Progress("aaa", "Pulling fs layer"), Progress("aaa", "Downloading", 10, 100),
               Progress("aaa", "Downloading", 50, 100), Progress("aaa", "Pull complete")):
        r(ev)
    # one line per change of status, no progress bars, no escape sequences
    assert out.getvalue() == ("aaa: Pulling fs layer\naaa: Downloading\naaa: Pull complete\n")


def test_pull_progress_updates_lines_in_place_on_a_tty():
    out = _TTY()
    r = PullRenderer(Env(stdout=out))
    r(Progress("aaa", "Waiting"))
    r(Progress("bbb", "Waiting"))
    r(Progress("aaa", "Downloading", 500_000, 1_000_000))
    text = out.getvalue()
    assert text.startswith("aaa: Waiting\nbbb: Waiting\n")
    # aaa's line is rewritten: cursor up 2 lines, clear it, a bar with sizes, back down
    assert "\x1b[2A\r\x1b[2Kaaa: Downloading [" in text
    assert "500kB/1MB" in text and text.endswith("\x1b[2B\r")


def test_docker_size_and_duration_formats():
    assert human_size(4_261_376) == "4.26MB"
    assert human_size(0) == "0B"
    assert human_size(1500) == "1.5kB"
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(59) == "59 seconds"
    assert human_duration(3600) == "About an hour"
    assert human_duration(3 * 86400) == "3 days"
    assert human_duration(3 * 365 * 86400) == "3 years"


def test_errors_are_one_line_with_docker_exit_codes(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["--root", str(tmp_path), "rmi", "nope"], Env(stdout=out, stderr=err)) == 1
    assert err.getvalue() == "Error: No such image: nope\n"
    err = io.StringIO()
    assert main(["--root", str(tmp_path), "pull", "library/Busybox"], Env(stdout=out, stderr=err)) == 1
    assert err.getvalue().count("\n") == 1 and "invalid reference format" in err.getvalue()
    err = io.StringIO()
    assert main(["--root", str(tmp_path), "images", "--bogus"], Env(stdout=out, stderr=err)) == 125
    # a flag error in Docker's two lines: what is wrong, where help is
    assert err.getvalue() == "unknown flag: --bogus\nSee 'pyminidocker images --help'.\n"
    # a missing argument: exit 1 (Docker's), the message, where help is, the usage
    err = io.StringIO()
    assert main(["--root", str(tmp_path), "run"], Env(stdout=out, stderr=err)) == 1
    assert err.getvalue().startswith("\"pyminidocker run\" requires at least 1 argument.\n"
                                     "See 'pyminidocker run --help'.\n\nUsage:  pyminidocker run ")


def test_every_command_has_help_and_a_start_declares_only_its_own_flags():
    """A start declares the flags of the command it runs alone (the others' cost time), and
    a command that starts a container is the only one declared; every command prints its own
    help, and the others are listed among all."""
    from pyminidocker.cli.args import Help
    from pyminidocker.cli.main import build_parser

    full = build_parser().format_help()
    listing = full.split("Commands:\n")[1].split("\n\n")[0]
    names = [line.split()[0] for line in listing.splitlines()]
    assert names[:3] == ["pull", "images", "inspect"] and len(names) == 44  # + info
    network = ["network " + c for c in ("create", "ls", "inspect", "rm", "connect", "prune")]
    for name in names + network + ["bench start", "bench pull"]:
        out = io.StringIO()
        assert main([*name.split(), "--help"], Env(stdout=out)) == 0
        text = out.getvalue()
        assert text.startswith(f"Usage:  pyminidocker {name}")
        options = text.split("Options:\n")[1].split("\n\n")[0].splitlines()
        undocumented = [o for o in options if "   " not in o.strip()]
        assert undocumented == [], f"{name}: flags without help"

    # any other command is declared with its flags among every command, listed as in full
    only_rm = build_parser(["--root", "/x", "rm", "-f", "c"])
    assert only_rm.format_help() == full
    with pytest.raises(Help) as ps_help:
        only_rm.parse_args(["ps", "--help"])
    assert "--filter" not in ps_help.value.parser.format_help()
    # a command that starts a container is declared alone: the other tables are not loaded
    only_run = build_parser(["--root", "/x", "run", "--rm", "bb"])
    run_listing = only_run.format_help().split("Commands:\n")[1].split("\n\n")[0]
    assert [line.split()[0] for line in run_listing.splitlines()] == [
        "create", "run", "exec", "start"]
    with pytest.raises(Help) as run_help:
        only_run.parse_args(["run", "--help"])
    assert "--pids-limit int" in run_help.value.parser.format_help()


def test_help_of_one_command_and_unknown_commands(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["--root", str(tmp_path), "nosuch"], Env(stdout=out, stderr=err)) == 125
    assert "invalid choice" in err.getvalue() and "pull" in err.getvalue()
