"""Command-line parsing with Docker's rules, cheap enough for every container start.

argparse costs ~10 ms of imports (re, enum, gettext, locale) and 2-4 ms to build and run the
`run` parser on each start. This is the subset the CLI declares, with argparse's declaration
API (add_argument, add_subparsers, add_parser, set_defaults), so the option tables read the same;
the rules it applies are those of Docker's CLI (cobra/pflag), the reference for this project:

- `--flag value`, `--flag=value`, `-f value`, `-fvalue`, `-f=value`; short booleans combine
  (`-it`), and a flag that takes a value may end the group (`-ie X=1`);
- a flag's value is the next argument, whatever it looks like (`--name -x`);
- booleans also take a value (`--rm=false`); long flags are never abbreviated;
- flags may follow positionals (`rm c1 -f`), except in a parser with subcommands or with a
  REMAINDER positional: there the first positional ends the flags, and what follows is the
  subcommand's or the REMAINDER's untouched (`run IMAGE ls -l`); `--` ends flags everywhere;
- `--help`, and `-h` where the command does not declare it, raise Help; errors raise
  UsageError, one line in Docker's words.
"""
from __future__ import annotations

from pyminidocker.errors import UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

REMAINDER = "..."  # nargs: every argument after the positionals before it, verbatim

_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
          "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


# what a flag declared with default=None holds until given, by its action
_NO_VALUE: dict[str, Any] = {"store": None, "store_true": False, "append": []}


class Help(Exception):
    """--help was given: the caller prints parser.format_help() and exits 0."""

    def __init__(self, parser: Parser):
        super().__init__(parser.prog)
        self.parser = parser


class Namespace:
    """The parsed values as attributes, named by each argument's dest."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"

    if TYPE_CHECKING:  # any attribute, as argparse.Namespace's stub says
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


class _Arg:
    """One declared option or positional."""

    __slots__ = ("action", "choices", "default", "dest", "help", "metavar", "names", "nargs",
                 "type")

    def __init__(self, names: tuple[str, ...], dest: str, action: str, default: Any,
                 type: Any, choices: Sequence[str] | None, nargs: str | None,
                 metavar: str | None, help: str | None):
        self.names = names
        self.dest = dest
        self.action = action
        self.default = default
        self.type = type
        self.choices = choices
        self.nargs = nargs
        self.metavar = metavar
        self.help = help

    @property
    def display(self) -> str:
        """How usage lines and errors name a positional."""
        if self.metavar:
            return self.metavar
        return "{" + "|".join(self.choices) + "}" if self.choices else self.dest.upper()


class Parser:
    """A command: its flags, its positionals or subcommands, and its help."""

    def __init__(self, prog: str, description: str | None = None):
        self.prog = prog
        self.description = description
        self.summary: str | None = None  # the line in the parent's list of commands
        self.aliases: list[str] = []
        self._flags: dict[str, _Arg] = {}  # every spelling: "--name", "-n"
        self._options: list[_Arg] = []
        self._positionals: list[_Arg] = []
        self._defaults: dict[str, Any] = {}
        self._commands: _Commands | None = None
        self._stops = False  # the first positional ends the flags (see the module docstring)
        self._table: Sequence[tuple[Any, ...]] | None = None  # add_table's, until declared
        self._table_at = 0
        # add_table's dest that says whether one of its flags was given, and each one's default
        self._given: tuple[str, dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        """The command's own word: "ls" of "pyminidocker network ls"."""
        return self.prog.rpartition(" ")[2]

    # ---- declaring -------------------------------------------------------------------------

    def add_argument(self, *names: str, action: str = "store", default: Any = None,
                     type: Any = None, choices: Sequence[str] | None = None,
                     nargs: str | None = None, metavar: str | None = None,
                     help: str | None = None, dest: str | None = None) -> None:
        positional = not names[0].startswith("-")
        if action not in ("store", "store_true", "append") or type not in (None, int) or \
                nargs not in ((None, "?", "*", "+", REMAINDER) if positional else (None,)):
            raise ValueError(f"unsupported argument {names}: action {action!r}, type {type!r}, "
                             f"nargs {nargs!r}")
        if positional:
            self._positionals.append(_Arg(names, dest or names[0], action, default, type,
                                          choices, nargs, metavar, help))
            self._stops = self._stops or nargs == REMAINDER
            return
        if dest is None:  # as argparse: the first long name, else the first short one
            dest = next((n[2:] for n in names if n.startswith("--")), names[0][1:])
            dest = dest.replace("-", "_")
        if action == "store_true":
            default = bool(default)  # True for a flag that is on unless =false (--sig-proxy)
        elif action == "append" and default is None:
            default = []
        arg = _Arg(names, dest, action, default, type, choices, None, metavar, help)
        self._options.append(arg)
        for name in names:
            self._flags[name] = arg

    def add_table(self, rows: Sequence[tuple[Any, ...]], given: str) -> None:
        """Flags declared only when one is read, or for help: rows of (names, action, help[,
        default]), "names" space-separated. Declaring Docker's seventy rarely used `run` flags
        on every start costs more than parsing; their defaults are filled all the same, and
        the dest given is True when any of them has a value other than its default."""
        self._table = rows
        self._table_at = len(self._options)
        defaults = {}
        for names, action, *rest in rows:
            # add_argument's dest and default, read off the row's strings
            at = names.find("--")
            dest = (names[at + 2:].partition(" ")[0] if at >= 0 else names[1:]).replace("-", "_")
            defaults[dest] = rest[1] if len(rest) > 1 else _NO_VALUE[action]
        self._given = (given, defaults)

    def declare_table(self) -> None:
        """Declares add_table's flags now, where add_table was called among the others (the
        order of --help)."""
        if self._table is not None:
            rows, self._table = self._table, None
            later = self._options[self._table_at:]
            del self._options[self._table_at:]
            for names, action, help, *default in rows:
                self.add_argument(*names.split(), action=action, help=help,
                                  default=default[0] if default else None)
            self._options += later

    def set_defaults(self, **values: Any) -> None:
        self._defaults.update(values)

    def add_subparsers(self, dest: str, metavar: str = "COMMAND") -> _Commands:
        self._commands = _Commands(self, dest, metavar)
        self._stops = True
        return self._commands

    # ---- parsing ---------------------------------------------------------------------------

    def parse_args(self, argv: Sequence[str]) -> Namespace:
        ns = Namespace()
        self._parse(list(argv), ns.__dict__)
        return ns

    def command_word(self, argv: Sequence[str]) -> str | None:
        """The subcommand argv names, read with the flags declared so far (so that a caller
        can declare the flags of that command alone), or None."""
        try:
            words = self._read_flags(list(argv), {})
        except (Help, UsageError):
            return None
        return words[0] if words else None

    def _parse(self, argv: list[str], values: dict[str, Any]) -> None:
        for arg in self._options:
            values[arg.dest] = list(arg.default) if arg.action == "append" else arg.default
        given = self._given
        if given is not None and self._table is not None:  # undeclared: no _Arg has them
            for dest, default in given[1].items():
                values[dest] = list(default) if isinstance(default, list) else default
        values.update(self._defaults)
        words = self._read_flags(argv, values)
        if given is not None:  # still undeclared: none of them was given
            values[given[0]] = self._table is None and any(
                values[dest] != default for dest, default in given[1].items())
        if self._commands is not None:
            self._commands.dispatch(words, values)
        else:
            self._assign(words, values)

    def _read_flags(self, argv: list[str], values: dict[str, Any]) -> list[str]:
        """Stores the flags of argv in values; returns the positional words."""
        words: list[str] = []
        i, n = 0, len(argv)
        while i < n:
            arg = argv[i]
            i += 1
            if arg == "--":
                return words + argv[i:]
            if arg[:1] != "-" or arg == "-":
                if self._stops:
                    return words + argv[i - 1:]
                words.append(arg)
            elif arg[1] == "-":
                i = self._long(arg, argv, i, values)
            else:
                i = self._short(arg, argv, i, values)
        return words

    def _long(self, arg: str, argv: list[str], i: int, values: dict[str, Any]) -> int:
        name, eq, value = arg.partition("=")
        opt = self._flags.get(name)
        if opt is None and self._table is not None:
            self.declare_table()
            opt = self._flags.get(name)
        if opt is None:
            if name == "--help":
                raise Help(self)
            raise self._error(f"unknown flag: {name}")
        if eq:
            self._store(opt, name, value, values)
            return i
        if opt.action == "store_true":
            values[opt.dest] = True
            return i
        if i == len(argv):
            raise self._error(f"flag needs an argument: {name}")
        self._store(opt, name, argv[i], values)
        return i + 1

    def _short(self, arg: str, argv: list[str], i: int, values: dict[str, Any]) -> int:
        for j in range(1, len(arg)):
            name = "-" + arg[j]
            opt = self._flags.get(name)
            if opt is None and self._table is not None:
                self.declare_table()
                opt = self._flags.get(name)
            if opt is None:
                if name == "-h":
                    raise Help(self)
                raise self._error(f"unknown shorthand flag: '{arg[j]}' in {arg}")
            rest = arg[j + 1:]
            if len(rest) > 1 and rest[0] == "=":  # -f=value, as pflag
                self._store(opt, name, rest[1:], values)
                return i
            if opt.action == "store_true":
                values[opt.dest] = True
                continue
            if rest:  # -fvalue
                self._store(opt, name, rest, values)
                return i
            if i == len(argv):
                raise self._error(f"flag needs an argument: '{arg[j]}' in {arg}")
            self._store(opt, name, argv[i], values)
            return i + 1
        return i

    def _store(self, opt: _Arg, name: str, value: str, values: dict[str, Any]) -> None:
        if opt.action == "store_true":
            if value not in _BOOLS:
                raise self._error(f'invalid value "{value}" for {name}: expected true or false')
            values[opt.dest] = _BOOLS[value]
        elif opt.action == "append":
            values.setdefault(opt.dest, []).append(self._value(opt, name, value))
        else:
            values[opt.dest] = self._value(opt, name, value)

    def _value(self, arg: _Arg, name: str, value: str) -> Any:
        """value checked against arg's choices and converted by its type."""
        if arg.choices is not None and value not in arg.choices:
            raise self._error(_invalid_choice(value, name, arg.choices))
        if arg.type is int:
            try:
                return int(value)
            except ValueError:
                raise self._error(f'invalid value "{value}" for {name}: not an integer') \
                    from None
        return value

    def _assign(self, words: list[str], values: dict[str, Any]) -> None:
        """Deals the positional words out to the positionals, or says how many are wanted."""
        nargs = [p.nargs for p in self._positionals]
        least = sum(n is None or n == "+" for n in nargs)
        most = None if {"*", "+", REMAINDER} & set(nargs) else len(nargs)
        if len(words) < least or (most is not None and len(words) > most):
            # Docker (cobra's Args check): exit 1, the message, then the usage and description
            err = self._error(self._count(least, most) + ".")
            err.exit_code = 1
            err.message += f"\n\nUsage:  {self._usage()}" + (
                f"\n\n{self.description}" if self.description else "")
            raise err
        spare = len(words) - least  # for the "?", "*", "+" and REMAINDER positionals
        k = 0
        for p in self._positionals:
            if p.nargs is None:
                take = 1
            elif p.nargs == "?":
                take = min(spare, 1)
                spare -= take
            else:
                take = spare + (p.nargs == "+")
                spare = 0
            got = words[k:k + take]
            k += take
            if p.nargs is None or p.nargs == "?":
                values[p.dest] = self._value(p, p.display, got[0]) if got else p.default
            else:
                values[p.dest] = [self._value(p, p.display, w) for w in got]

    def _count(self, least: int, most: int | None) -> str:
        """Docker's words for a wrong number of positionals (cli/required.go)."""
        def n(k: int) -> str:
            return f"{k} argument" if k == 1 else f"{k} arguments"

        cmd = f'"{self.prog}"'
        if most == 0:
            return f"{cmd} accepts no arguments"
        if most is None:
            return f"{cmd} requires at least {n(least)}"
        if least == most:
            return f"{cmd} requires exactly {n(least)}"
        if least == 0:
            return f"{cmd} accepts at most {n(most)}"
        return f"{cmd} requires at least {least} and at most {n(most)}"

    def _error(self, message: str) -> UsageError:
        """Docker's shape: the message, then where help is, on a line of its own, printed as
        it is (no "Error: ")."""
        err = UsageError(f"{message}\nSee '{self.prog} --help'.")
        err.bare = True  # type: ignore[attr-defined]
        return err

    # ---- help ------------------------------------------------------------------------------

    def format_help(self) -> str:
        self.declare_table()
        out = [f"Usage:  {self._usage()}", ""]
        if self.description:
            out += [self.description, ""]
        if self.aliases:
            parent = self.prog.rpartition(" ")[0]
            names = [self.name, *self.aliases]
            out += ["Aliases:", "  " + ", ".join(f"{parent} {a}" for a in names), ""]
        rows = [(_flag_names(o), _flag_help(o)) for o in self._options]
        if "--help" not in self._flags:
            rows.append(("    --help" if "-h" in self._flags else "-h, --help", "print this help"))
        out += ["Options:", *_columns(rows), ""]
        if self._commands is not None:
            out += ["Commands:", *_columns((p.name, p.summary or "")
                                           for p in self._commands.parsers()), ""]
            out += [f"Run '{self.prog} COMMAND --help' for more information on a command.", ""]
        return "\n".join(out)

    def _usage(self) -> str:
        parts = [self.prog]
        if self._options:
            parts.append("[OPTIONS]")
        if self._commands is not None:
            parts.append(self._commands.metavar)
        for p in self._positionals:
            m = p.display
            parts.append({None: m, "?": f"[{m}]", "+": f"{m} [{m}...]"}.get(p.nargs, f"[{m}...]"))
        return " ".join(parts)


class _Commands:
    """A parser's subcommands: the first positional word picks one, which parses the rest."""

    def __init__(self, parent: Parser, dest: str, metavar: str):
        self.parent = parent
        self.dest = dest
        self.metavar = metavar
        self.choices: dict[str, Parser] = {}  # by name and by alias

    def add_parser(self, name: str, help: str | None = None, description: str | None = None,
                   aliases: Sequence[str] = ()) -> Parser:
        p = Parser(f"{self.parent.prog} {name}", description or help)
        p.summary = help
        p.aliases = list(aliases)
        for n in (name, *aliases):
            self.choices[n] = p
        return p

    def parsers(self) -> list[Parser]:
        return list(dict.fromkeys(self.choices.values()))

    def dispatch(self, words: list[str], values: dict[str, Any]) -> None:
        if not words:
            values[self.dest] = None
            return
        p = self.choices.get(words[0])
        if p is None:
            names = [q.name for q in self.parsers()]
            raise self.parent._error(_invalid_choice(words[0], self.metavar, names))
        values[self.dest] = words[0]  # as typed: an alias stays an alias
        p._parse(words[1:], values)


def _invalid_choice(value: str, name: str, choices: Iterable[str]) -> str:
    return f'invalid choice "{value}" for {name} (choose from {", ".join(choices)})'


def _flag_names(o: _Arg) -> str:
    """"-e, --env list" as Docker's help shows a flag (a long-only one indented to match)."""
    short = [n for n in o.names if not n.startswith("--")]
    text = ", ".join(short + [n for n in o.names if n.startswith("--")])
    if not short:
        text = "    " + text
    if o.action == "store_true":
        return text
    kind = o.metavar or ("list" if o.action == "append" else "int" if o.type is int
                         else "string")
    return f"{text} {kind}"


def _flag_help(o: _Arg) -> str:
    text = o.help or ""
    if o.choices:
        text += f" (one of {', '.join(o.choices)})"
    if o.action == "store" and o.default is not None:
        shown = f'"{o.default}"' if isinstance(o.default, str) else o.default
        text += f" (default {shown})"
    return text.strip()


def _columns(rows: Iterable[tuple[str, str]]) -> list[str]:
    rows = list(rows)
    width = max((len(left) for left, _ in rows), default=0)
    return [f"  {left.ljust(width)}   {right}".rstrip() for left, right in rows]
