"""The CLI's reference, from its argument tables: bash completion and the man page, in
Docker's words (cli.wording).

The tables are the parsers cli.main.build_parser() declares; this module only reads them.

    python3 -m pyminidocker.cli.reference completion > DIR/pyminidocker    (make install-docs)
    python3 -m pyminidocker.cli.reference man > DIR/man1/pyminidocker.1

Not on the start path: imported for `make install` and tests only.
"""
from __future__ import annotations

import sys

from pyminidocker.cli.args import REMAINDER, Parser
from pyminidocker.cli.main import build_parser
from pyminidocker.cli.wording import commands, docker_wording


def full_parser() -> Parser:
    """Every command with every option declared, in Docker's words."""
    return docker_wording(build_parser())


# ---- bash completion ----------------------------------------------------------------------------

_BASH = r"""# bash completion for pyminidocker: generated from its argument tables by
# `python3 -m pyminidocker.cli.reference completion` (make install); do not edit.

declare -gA _pyminidocker_commands=(
@COMMANDS@
)
declare -gA _pyminidocker_flags=(
@FLAGS@
)
declare -gA _pyminidocker_valued=(
@VALUED@
)
declare -gA _pyminidocker_choices=(
@CHOICES@
)
declare -gA _pyminidocker_rest=(
@REST@
)
declare -gA _pyminidocker_args=(
@ARGS@
)

# The names of the store's images or containers (kind: IMAGE or CONTAINER), from the
# command's own JSON lines, in the store that --root names on the line.
_pyminidocker_names() {
    local root=() line i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == --root ]] && root=(--root "${COMP_WORDS[i+1]}")
    done
    if [[ $1 == IMAGE ]]; then
        while read -r line; do
            local name=$(_pyminidocker_field "$line" Repository)
            local tag=$(_pyminidocker_field "$line" Tag)
            [[ $name != "<none>" ]] && echo "$name" && [[ $tag != "<none>" ]] && echo "$name:$tag"
        done < <(pyminidocker "${root[@]}" images --format json 2>/dev/null)
    else
        while read -r line; do
            _pyminidocker_field "$line" Names
            _pyminidocker_field "$line" ID
        done < <(pyminidocker "${root[@]}" ps -a --format json 2>/dev/null)
    fi
}

# The string value of a key in one JSON line ("Key":"v" or "Key": "v").
_pyminidocker_field() {
    local v=${1#*\"$2\":}
    v=${v# }; v=${v#\"}
    echo "${v%%\"*}"
}

_pyminidocker() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local path=pyminidocker word i positionals=0 skip=0
    # The words before the cursor: the command path (subcommands), the flags of each level
    # (a flag that takes a value swallows the next word), and the positionals.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((skip)); then skip=0; continue; fi
        case $word in
            --) positionals=$((positionals + 1)) ;;
            -*=*) ;;
            -*) [[ " ${_pyminidocker_valued[$path]} " == *" $word "* ]] && skip=1 ;;
            *)
                if ((positionals == 0)) &&
                        [[ " ${_pyminidocker_commands[$path]} " == *" $word "* ]]; then
                    path="$path $word"
                else
                    positionals=$((positionals + 1))
                fi ;;
        esac
    done
    # After the image of run/create/exec, the words are the container's command: files.
    local rest=${_pyminidocker_rest[$path]}
    if [[ -n $rest ]] && ((positionals >= rest)); then
        compopt -o default 2>/dev/null; COMPREPLY=(); return
    fi
    if ((skip)); then  # the cursor is on a flag's value
        local choices=${_pyminidocker_choices["$path $prev"]}
        if [[ -n $choices ]]; then
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        else
            compopt -o default 2>/dev/null; COMPREPLY=()
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_pyminidocker_flags[$path]}" -- "$cur"))
    elif ((positionals == 0)) && [[ -n ${_pyminidocker_commands[$path]} ]]; then
        COMPREPLY=($(compgen -W "${_pyminidocker_commands[$path]}" -- "$cur"))
    else
        # the positional under the cursor: the last one declared repeats (IMAGE...)
        local args=(${_pyminidocker_args[$path]}) kind
        ((${#args[@]})) && kind=${args[positionals < ${#args[@]} ? positionals : -1]}
        if [[ $kind == IMAGE || $kind == CONTAINER ]]; then
            COMPREPLY=($(compgen -W "$(_pyminidocker_names "$kind")" -- "$cur"))
        else
            compopt -o default 2>/dev/null; COMPREPLY=()
        fi
    fi
}
complete -F _pyminidocker pyminidocker
"""


def _bash_entry(path: str, words: list[str]) -> str:
    """One array element, keyed by the command path with the program's name first (bash
    refuses an empty key)."""
    return f'    ["{f"pyminidocker {path}".strip()}"]="{" ".join(words)}"'


def _kind(metavar: str) -> str:
    """IMAGE or CONTAINER for a positional that names one ("SOURCE_IMAGE[:TAG]" is an image),
    else "-"."""
    for kind in ("IMAGE", "CONTAINER"):
        if kind in metavar.split("[")[0]:
            return kind
    return "-"


def bash_completion(parser: Parser | None = None) -> str:
    """The bash completion script for the tree of parser (default: the full CLI): commands
    and subcommands, each command's flags, the values of flags with choices, and the store's
    image and container names where a command takes one; a positional with choices
    (`container prune`, `system reset`) completes as a subcommand."""
    parser = parser or full_parser()
    cmds, flags, valued, choices, rest, args = [], [], [], [], [], []
    for path, p in commands(parser):
        subs = [name for s in (p._commands.parsers() if p._commands else [])
                for name in (s.name, *s.aliases)]
        subs += [c for a in p._positionals[:1] for c in (a.choices or [])]
        if subs:
            cmds.append(_bash_entry(path, subs))
        names = [n for o in p._options for n in o.names] + ["--help"]
        flags.append(_bash_entry(path, names))
        takes = [n for o in p._options if o.action != "store_true" for n in o.names]
        if takes:
            valued.append(_bash_entry(path, takes))
        for o in p._options:
            if o.choices:
                choices += [_bash_entry(f"{path} {n}", list(o.choices)) for n in o.names]
        kinds = [_kind(a.display) for a in p._positionals if a.nargs != REMAINDER]
        if any(k in ("IMAGE", "CONTAINER") for k in kinds):
            args.append(_bash_entry(path, kinds))
        before = [a for a in p._positionals if a.nargs != REMAINDER]
        if len(before) < len(p._positionals):
            rest.append(_bash_entry(path, [str(len(before))]))
    text = _BASH
    for key, entries in (("@COMMANDS@", cmds), ("@FLAGS@", flags), ("@VALUED@", valued),
                         ("@CHOICES@", choices), ("@REST@", rest), ("@ARGS@", args)):
        text = text.replace(key, "\n".join(entries))
    return text


# ---- the man page -------------------------------------------------------------------------------

def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no control character at the
    start of a line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def man_page(parser: Parser | None = None, version: str | None = None) -> str:
    """pyminidocker(1): every command with its usage, summary and options, in roff (man(7))."""
    from pyminidocker import __version__ as pkg_version

    parser = parser or full_parser()
    version = version or pkg_version
    out = [
        f'.TH PYMINIDOCKER 1 "" "pyminidocker {version}" "User Commands"',
        ".SH NAME",
        "pyminidocker \\- a daemonless container engine with Docker's commands",
        ".SH SYNOPSIS",
        ".B pyminidocker",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARG\\fR...]",
        ".SH DESCRIPTION",
        "pyminidocker pulls images from Docker and OCI registries into a store of its own and "
        "runs containers from them, confined as Docker confines them. Every command is a short "
        "process; a detached container is watched by a small monitor, not by a daemon. "
        "Commands, options, output and exit codes follow Docker's.",
        ".SH GLOBAL OPTIONS",
    ]
    tree = list(commands(parser))
    out += _man_options(tree[0][1])
    out.append(".SH COMMANDS")
    for path, p in tree[1:]:
        out.append(f".SS {_roff(path)}")
        out += [".B " + _roff(p._usage()), ".PP", _roff(p.summary or "")]
        if p._options:
            out += _man_options(p)
    out += [
        ".SH EXIT STATUS",
        "As Docker's: 0 success; 1 a failed operation; 125 bad usage or an engine failure; "
        "126 a command that cannot be run; 127 a command not found; 130 interrupted. "
        "\\fBrun\\fR and \\fBstart \\-a\\fR return the container's own code.",
        ".SH ENVIRONMENT",
        ".TP", ".B PYMINIDOCKER_ROOT", "The store directory, when \\fB\\-\\-root\\fR is not "
        "given (default \\fI/var/lib/docker\\-mini\\fR).",
        ".TP", ".B PYMINIDOCKER_TRACE", "Set to 1: print the time of each phase of the "
        "command on stderr (as \\fB\\-\\-trace\\fR).",
        ".TP", ".B DOCKER_CONFIG", "The directory of \\fIconfig.json\\fR, where \\fBlogin\\fR "
        "keeps credentials (default \\fI~/.docker\\fR).",
        ".SH FILES",
        ".TP", ".I /var/lib/docker\\-mini", "The store: images, layers, containers, networks.",
        ".TP", ".I <root>/config.json", "The engine's settings (insecure\\-registries, the "
        "default bridge and subnet).",
        ".SH SEE ALSO",
        ".BR docker (1),",
        ".BR podman (1),",
        ".BR runc (8)",
        "",
    ]
    return "\n".join(out)


def _man_options(p: Parser) -> list[str]:
    from pyminidocker.cli.args import _flag_help, _flag_names

    lines = []
    for o in p._options:
        lines += [".TP", ".B " + _roff(_flag_names(o).strip()), _roff(_flag_help(o))]
    return lines


def main(argv: list[str]) -> int:
    if argv == ["completion"]:
        sys.stdout.write(bash_completion())
    elif argv == ["man"]:
        sys.stdout.write(man_page())
    else:
        sys.stderr.write("usage: python3 -m pyminidocker.cli.reference completion|man\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
