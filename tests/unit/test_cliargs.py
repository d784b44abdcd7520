"""The command line's parser (pyminidocker.cli.args) through the CLI's own tables: Docker's
rules (cobra/pflag), its help, its errors (one line, exit 125), and the start path's imports."""
from __future__ import annotations

import io
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pyminidocker import __version__
from pyminidocker.cli import containers, verbs
from pyminidocker.cli.args import REMAINDER, Help, Parser
from pyminidocker.cli.main import Env, build_parser, main


def parse(*argv: str):
    """The namespace a start gets (its parser declares the flags of argv's command alone)."""
    return build_parser(argv).parse_args(argv)


def run(*argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the CLI, for argv that stop at parsing (help, errors)."""
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), Env(stdout=out, stderr=err))
    return rc, out.getvalue(), err.getvalue()


def error(*argv: str) -> str:
    """The error of argv in one line ("MESSAGE. See '... --help'."), having checked Docker's
    shape: the message, "See '... --help'." on its own line, no "Error: "; exit 125, or 1 with
    the usage after it for a wrong number of arguments (as Docker's)."""
    rc, out, err = run(*argv)
    message, _, rest = err.partition("\nSee '")
    see, _, usage = rest.partition("\n")
    counting = " requires " in message or " accepts " in message
    assert (rc, out) == ((1 if counting else 125), ""), err
    assert not err.startswith("Error: ") and see.endswith(" --help'.")
    assert usage.startswith("\nUsage:  ") if counting else usage == "", err
    return f"{message.removesuffix('.') if counting else message}. See '{see}"


# ---- flags -----------------------------------------------------------------------------------

def test_long_flags_take_the_next_argument_or_an_equals_value():
    a = parse("run", "--name", "web", "--workdir=/srv", "--network=none", "bb")
    assert (a.name, a.workdir, a.network, a.image) == ("web", "/srv", "none", "bb")
    assert parse("run", "--env=A=1=2", "bb").env == ["A=1=2"]  # split at the first "=" only
    assert parse("run", "--name=", "bb").name == ""


def test_short_flags_take_the_next_argument_the_rest_of_the_word_or_an_equals_value():
    a = parse("run", "-w", "/srv", "-uroot", "-e=X=1", "-eY=2", "bb")
    assert (a.workdir, a.user, a.env) == ("/srv", "root", ["X=1", "Y=2"])


def test_short_booleans_combine_and_a_value_flag_may_end_the_group():
    a = parse("run", "-it", "bb")
    assert (a.interactive, a.tty, a.detach) == (True, True, False)
    a = parse("run", "-dit", "bb")
    assert (a.detach, a.interactive, a.tty) == (True, True, True)
    a = parse("run", "-iteX=1", "bb")
    assert (a.interactive, a.tty, a.env) == (True, True, ["X=1"])
    a = parse("run", "-itp", "80:80", "bb")
    assert (a.tty, a.publish) == (True, ["80:80"])


def test_a_value_is_the_next_argument_whatever_it_looks_like():
    assert parse("run", "--name", "-x", "bb").name == "-x"
    assert parse("run", "-e", "--rm", "bb").env == ["--rm"]
    assert parse("logs", "--tail", "-1", "c").tail == "-1"


def test_booleans_take_true_or_false_values():
    assert parse("run", "--rm=false", "bb").rm is False
    assert parse("run", "--rm=true", "-d=1", "bb").rm is True
    assert parse("run", "-t=false", "bb").tty is False
    assert error("run", "--rm=maybe", "bb") == \
        "invalid value \"maybe\" for --rm: expected true or false. See 'pyminidocker run --help'."


def test_defaults_dests_and_types():
    a = parse("run", "bb")
    assert (a.rm, a.name, a.network, a.pids_limit, a.cmd) == (False, None, "bridge", None, [])
    assert (a.env, a.volume, a.publish, a.cap_add, a.security_opt) == ([], [], [], [], [])
    # dest as argparse derives it: the first long name, dashes to underscores
    a = parse("run", "--pids-limit", "64", "--net", "host", "-P", "--read-only", "bb")
    assert (a.pids_limit, a.network, a.publish_all, a.read_only) == (64, "host", True, True)
    assert parse("stop", "c").time is None and parse("stop", "-t", "3", "c").time == 3
    assert parse("kill", "c").signal == "KILL"
    assert parse("run", "bb").func is containers.cmd_run
    assert parse("rm", "c").func is verbs.cmd_rm


def test_append_flags_collect_every_value_in_a_fresh_list_per_parse():
    p = build_parser(["run"])
    a = p.parse_args(["run", "-e", "A=1", "--env", "B=2", "-v", "/a:/a", "bb"])
    assert (a.env, a.volume) == (["A=1", "B=2"], ["/a:/a"])
    assert p.parse_args(["run", "bb"]).env == []  # the first parse did not fill the default


def test_bad_values_are_clear_errors():
    assert error("run", "--pids-limit", "lots", "bb") == \
        "invalid value \"lots\" for --pids-limit: not an integer. See 'pyminidocker run --help'."
    assert error("stop", "-t", "soon", "c") == \
        "invalid value \"soon\" for -t: not an integer. See 'pyminidocker stop --help'."
    assert error("inspect", "--type", "volume", "x") == \
        "invalid choice \"volume\" for --type (choose from container, image, network). " \
        "See 'pyminidocker inspect --help'."
    assert parse("inspect", "--type=image", "x").type == "image"


def test_unknown_flags_and_missing_values():
    assert error("images", "--bogus") == "unknown flag: --bogus. See 'pyminidocker images --help'."
    assert error("run", "-ix", "bb") == \
        "unknown shorthand flag: 'x' in -ix. See 'pyminidocker run --help'."
    assert error("run", "--name") == \
        "flag needs an argument: --name. See 'pyminidocker run --help'."
    assert error("run", "-itw") == \
        "flag needs an argument: 'w' in -itw. See 'pyminidocker run --help'."


def test_long_flags_are_not_abbreviated():
    assert error("run", "--na", "web", "bb") == \
        "unknown flag: --na. See 'pyminidocker run --help'."
    assert error("rm", "--forc", "c") == "unknown flag: --forc. See 'pyminidocker rm --help'."


# ---- where flags end -------------------------------------------------------------------------

def test_run_create_and_exec_read_no_flags_after_the_image_or_container():
    a = parse("run", "--rm", "bb", "ls", "-l", "--rm", "--name", "x")
    assert (a.rm, a.name, a.image, a.cmd) == (True, None, "bb", ["ls", "-l", "--rm", "--name", "x"])
    a = parse("create", "bb", "-h")
    assert (a.hostname, a.cmd) == (None, ["-h"])
    assert parse("run", "bb", "--help").cmd == ["--help"]
    a = parse("exec", "-i", "c", "sh", "-c", "echo $0 -x")
    assert (a.interactive, a.container, a.cmd) == (True, "c", ["sh", "-c", "echo $0 -x"])
    assert parse("exec", "c").cmd == []


def test_double_dash_ends_flags():
    a = parse("rm", "--", "-f", "c")
    assert (a.force, a.containers) == (False, ["-f", "c"])
    a = parse("run", "--rm", "--", "bb", "-x")
    assert (a.rm, a.image, a.cmd) == (True, "bb", ["-x"])
    # after the image every word is the command's, "--" too (as pflag)
    assert parse("run", "bb", "--", "ls").cmd == ["--", "ls"]
    assert parse("rm", "-").containers == ["-"]  # a lone dash is a word


def test_other_commands_take_flags_after_positionals():
    a = parse("rm", "c1", "-f", "c2")
    assert (a.force, a.containers) == (True, ["c1", "c2"])
    a = parse("images", "bb", "-q")
    assert (a.quiet, a.filter_ref) == (True, "bb")
    a = parse("network", "create", "web", "--internal", "--subnet=10.9.0.0/24")
    assert (a.name, a.internal, a.subnet) == ("web", True, "10.9.0.0/24")


def test_global_options_come_before_the_command():
    a = parse("--root", "/tmp/s", "--debug", "ps", "-a")
    assert (a.root, a.debug, a.trace, a.command, a.all) == ("/tmp/s", True, False, "ps", True)
    assert parse("--root=/tmp/s", "ps").root == "/tmp/s"
    assert error("ps", "--root", "/tmp/s") == "unknown flag: --root. See 'pyminidocker ps --help'."
    rc, out, _ = run("-v")
    assert (rc, out) == (0, f"pyminidocker version {__version__}\n")


# ---- positionals -----------------------------------------------------------------------------

def test_positional_counts_in_dockers_words():
    assert error("rm") == \
        "\"pyminidocker rm\" requires at least 1 argument. See 'pyminidocker rm --help'."
    assert error("run", "--rm") == \
        "\"pyminidocker run\" requires at least 1 argument. See 'pyminidocker run --help'."
    assert error("tag", "a") == \
        "\"pyminidocker tag\" requires exactly 2 arguments. See 'pyminidocker tag --help'."
    assert error("images", "a", "b") == \
        "\"pyminidocker images\" accepts at most 1 argument. See 'pyminidocker images --help'."
    assert error("port", "c", "80", "81") == "\"pyminidocker port\" requires at least 1 and at " \
        "most 2 arguments. See 'pyminidocker port --help'."
    assert error("version", "x") == \
        "\"pyminidocker version\" accepts no arguments. See 'pyminidocker version --help'."


def test_optional_one_or_more_and_choice_positionals():
    assert parse("images").filter_ref is None
    assert parse("port", "c").port is None and parse("port", "c", "80").port == "80"
    assert parse("inspect", "a", "b").images == ["a", "b"]
    assert parse("container", "prune", "-f").action == "prune"
    assert error("container", "nuke") == "invalid choice \"nuke\" for {prune} (choose from " \
        "prune). See 'pyminidocker container --help'."


# ---- commands --------------------------------------------------------------------------------

def test_nested_commands_and_aliases():
    a = parse("network", "ls", "-q")
    assert (a.command, a.network_command, a.quiet) == ("network", "ls", True)
    assert parse("network", "list").network_command == "list"  # as typed: cmd_network checks
    assert parse("network", "remove", "a", "b").networks == ["a", "b"]
    assert parse("network").network_command is None
    assert error("network", "nope").startswith("invalid choice \"nope\" for COMMAND (choose "
                                               "from create, ls, inspect, rm, connect, ")


def test_unknown_and_missing_commands():
    err = error("nosuch")
    assert err.startswith("invalid choice \"nosuch\" for COMMAND (choose from pull, images, ")
    assert err.endswith(", system, version, info). See 'pyminidocker --help'.")
    rc, out, _ = run()
    assert rc == 0 and out.startswith("Usage:  pyminidocker [OPTIONS] COMMAND\n")
    assert "\n  run         Create and run a new container from an image\n" in out


# ---- help ------------------------------------------------------------------------------------

def test_help_of_a_command():
    rc, out, err = run("rm", "c", "--help")
    assert (rc, err) == (0, "")
    assert out.startswith("Usage:  pyminidocker rm [OPTIONS] CONTAINER [CONTAINER...]\n\n"
                          "Remove one or more containers\n\nOptions:\n")
    assert "\n  -f, --force " in out and "\n  -h, --help " in out
    assert run("rm", "-h") == (0, out, "")
    # run and create: -h is --hostname, as in Docker; --help still helps
    rc, out, _ = run("run", "--help")
    assert rc == 0 and out.startswith("Usage:  pyminidocker run [OPTIONS] IMAGE [COMMAND...]\n")
    assert "\n  -h, --hostname string" in out and "\n      --help " in out
    assert "\n      --network, --net network" in out and '(default "bridge")' in out
    assert "\n      --pids-limit int" in out and "\n  -e, --env list" in out
    assert error("create", "-h") == \
        "flag needs an argument: 'h' in -h. See 'pyminidocker create --help'."
    assert parse("create", "-h", "box", "bb").hostname == "box"


def test_help_of_a_nested_command_shows_its_aliases():
    rc, out, _ = run("network", "rm", "--help")
    assert rc == 0
    assert out.startswith("Usage:  pyminidocker network rm [OPTIONS] NETWORK [NETWORK...]\n")
    assert "Aliases:\n  pyminidocker network rm, pyminidocker network remove\n" in out
    rc, out, _ = run("network", "--help")
    assert "\n  create       Create a network\n" in out
    assert out.endswith("Run 'pyminidocker network COMMAND --help' for more information on a "
                        "command.\n")


# ---- the parser alone ------------------------------------------------------------------------

def test_parser_declarations_it_does_not_support_are_refused():
    p = Parser("x")
    with pytest.raises(ValueError):
        p.add_argument("--n", action="count")
    with pytest.raises(ValueError):
        p.add_argument("--n", type=float)
    with pytest.raises(ValueError):
        p.add_argument("files", nargs="**")
    with pytest.raises(ValueError):
        p.add_argument("--files", nargs="+")


def test_a_star_positional_takes_none_or_many():
    p = Parser("x")
    p.add_argument("-a", action="store_true")
    p.add_argument("names", nargs="*")
    assert p.parse_args([]).names == []
    assert p.parse_args(["a", "-a", "b"]).names == ["a", "b"]


def test_a_remainder_alone_takes_everything_from_the_first_word():
    p = Parser("x")
    p.add_argument("-v", action="store_true")
    p.add_argument("rest", nargs=REMAINDER)
    assert vars(p.parse_args(["-v", "a", "-v"])) == {"v": True, "rest": ["a", "-v"]}
    with pytest.raises(Help):
        p.parse_args(["-h"])


def test_a_table_of_flags_is_declared_when_one_is_read_or_for_help():
    p = Parser("x")
    p.add_argument("--a", help="A")
    p.add_table((("-l --label", "append", "L"), ("--pull", "store", "P", "missing"),
                 ("--dns-option --dns-opt", "append", "D"), ("--sig", "store_true", "S", True),
                 ("--init", "store_true", "I")), given="more")
    p.add_argument("--z", help="Z")  # after the table: --help keeps the order of declaration
    assert vars(p.parse_args(["--a", "1"])) == {"a": "1", "z": None, "label": [],
                                                "pull": "missing", "dns_option": [],
                                                "sig": True, "init": False, "more": False}
    assert p._table is not None  # none was read: none declared
    a = p.parse_args(["-l", "k=v", "--dns-opt", "ndots:1"])
    assert (a.label, a.dns_option, a.more) == (["k=v"], ["ndots:1"], True)
    assert p.parse_args(["--pull", "missing"]).more is False  # the default, given: as none
    assert p.parse_args(["--init"]).more is True
    assert [o.names[-1] for o in p._options] == ["--a", "--label", "--pull", "--dns-opt",
                                                 "--sig", "--init", "--z"]
    q = Parser("y")
    q.add_table((("--pull", "store", "P", "missing"),), given="more")
    assert "--pull string   P (default \"missing\")" in q.format_help()


def test_run_flags_declared_from_the_table_are_the_ones_add_argument_makes():
    from pyminidocker.cli.main import _create_flags

    p = Parser("run")
    _create_flags(p)
    table = dict(p._given[1])
    p.declare_table()
    assert {o.dest: o.default for o in p._options[-len(containers.RUN_FLAGS):]} == table


def test_run_without_its_further_flags_takes_their_checked_defaults(tmp_path):
    """run_extra (cli/runflags.py) is not loaded when none is given: containers' defaults are
    what it makes of them, key for key in order (the container's record on disk)."""
    from pyminidocker.cli.runflags import run_extra

    a = parse("run", "--rm", "bb", "true")
    assert a.run_flags is False
    assert list(run_extra(a, print).items()) == list(containers._default_extra().items())
    assert parse("run", "-l", "a=b", "bb").run_flags is True
    # a check of run_extra's on the common flags is made all the same, before anything is made
    assert run("--root", str(tmp_path / "s"), "run", "--hostname", "h", "--network", "host",
               "bb") == (125, "", "Error: Conflicting options: hostname and the network mode\n")
    assert not (tmp_path / "s").exists()


def test_the_command_word_is_found_past_global_flags_and_their_values():
    p = build_parser()
    assert p.command_word(["--root", "run", "ps"]) == "ps"
    assert p.command_word(["--debug", "-v", "run", "bb"]) == "run"
    assert p.command_word(["--root"]) is None and p.command_word(["--bogus", "ps"]) is None


# ---- the start path's imports ----------------------------------------------------------------

def test_the_cli_imports_no_heavy_modules():
    """argparse alone cost ~10 ms of every start (re, enum, gettext, locale, ...)."""
    root = Path(__file__).resolve().parents[2]
    # as the launcher: python -S, the package's directory and the installed ones on the path
    code = ("import sys; sys.path[1:1] = sys.argv[1:]; import pyminidocker.cli.main as c; "
            "c.build_parser(['run', '--rm', 'bb', 'true']).parse_args(['run', '--rm', 'bb']); "
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-S", "-c", code, str(root),
                          sysconfig.get_path("purelib"), sysconfig.get_path("platlib")],
                         capture_output=True, text=True, check=True)
    loaded = set(res.stdout.split())
    assert "pyminidocker.cli.args" in loaded
    heavy = {"argparse", "re", "enum", "json", "typing", "collections.abc", "dataclasses",
             "pathlib", "gettext", "locale", "pyminidocker.cli.network", "pyminidocker.cli.images",
             "pyminidocker.cli.system", "pyminidocker.cli.verbs",  # verbs: its table is main's
             "pyminidocker.cli.runflags"}  # the further run flags' checks: none is given
    assert loaded & heavy == set()
