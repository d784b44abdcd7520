"""Go's text/template as the Docker CLI uses it for --format, and Docker's `table` output.

No Python package on PyPI implements text/template faithfully (the few that exist wrap a Go
shared library or stop at `{{.Field}}`), so this module does, for what Docker's users write:
fields, map keys, method calls with arguments, variables, pipelines, parenthesised pipelines,
if/else if/else, range (with `$i, $v :=`, else, break, continue), with/else with, define,
template, block, comments, trim markers, Go's builtin functions (and, or, not, len, index, slice,
print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery, call) and Docker's own (json,
split, join, title, lower, upper, pad, truncate).

Data is plain Python: a dict is a Go map (or a struct decoded from JSON), a list a slice, None
is nil; any other object is a struct whose attributes are its fields and whose methods are
called with the template's arguments (Docker's formatter contexts: `{{.Label "k"}}`).
`StringMap` marks a map[string]string, whose missing entries `index` reads as "" rather than
`<no value>` (Docker's Labels). Errors are TemplateError with Go's message shape
("template: :1: function "foo" not defined", "template: :1:2: executing "" at <.Foo>: ...").

Imported lazily by the commands that take --format: never on the `run` path.
"""
from __future__ import annotations

import math

from pyminidocker.dockerjson import StringMap

# Only a command given --format pays for this module; it keeps that cost low too (json and
# unicodedata load when used, typing never).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    # name: (function, number of fixed arguments or -1 for variadic, minimum for variadic)
    _Func = tuple[Callable[..., Any], int, int]

__all__ = ["NO_VALUE", "StringMap", "Template", "TemplateError", "format_items", "tabwrite"]


class TemplateError(Exception):
    """A template that does not parse or fails while executing; str() is Go's message."""


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields; prints as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()


# ---- lexer ----------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "nil", "true", "false"}


class _Tok:
    __slots__ = ("kind", "line", "pos", "space", "val")

    def __init__(self, kind: str, val: str, pos: int, line: int, space: bool = False):
        self.kind = kind    # text, left, right, comment, field, dot, var, ident, kw, string,
        self.val = val      # rawstring, char, number, pipe, lparen, rparen, declare, assign,
        self.pos = pos      # comma, eof
        self.line = line
        self.space = space  # whitespace came before it (operands are separated by spaces)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _lex(text: str, name: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    trim_next = False

    def err(msg: str, at: int) -> TemplateError:
        return TemplateError(f"template: {name}:{text.count(chr(10), 0, at) + 1}: {msg}")

    while i < n:
        j = text.find("{{", i)
        end = n if j < 0 else j
        chunk = text[i:end]
        # "{{- " trims the text before; the space is part of the marker ("{{-3}}" is a number)
        left_trim = 0 <= j < n - 3 and text[j + 2] == "-" and text[j + 3] in _SPACE
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if left_trim:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            toks.append(_Tok("text", chunk, i, text.count("\n", 0, i) + 1))
        trim_next = False
        if j < 0:
            break
        start = j
        i = j + 2
        if left_trim:
            i += 2
        # a comment is the whole action: {{/* ... */}}, trim markers allowed around it
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise err("unclosed comment", start)
            i = close + 2
            if text.startswith(" -}}", i) or text.startswith("\t-}}", i) \
                    or text.startswith("\n-}}", i):
                trim_next = True
                i += 4
            elif text.startswith("}}", i):
                i += 2
            else:
                raise err("comment ends before closing delimiter", start)
            continue
        toks.append(_Tok("left", "{{", start, text.count("\n", 0, start) + 1))
        space = False
        while True:
            if i >= n:
                raise err("unclosed action", start)
            c = text[i]
            line = text.count("\n", 0, i) + 1
            if c in _SPACE:
                k = i
                while k < n and text[k] in _SPACE:
                    k += 1
                if text.startswith("-}}", k):
                    trim_next = True
                    toks.append(_Tok("right", "}}", k, line))
                    i = k + 3
                    break
                i = k
                space = True
                continue
            if text.startswith("}}", i):
                toks.append(_Tok("right", "}}", i, line))
                i += 2
                break
            tok_start = i
            if c == '"':
                k = i + 1
                while k < n and text[k] != '"':
                    if text[k] == "\\":
                        k += 1
                    if k < n and text[k] == "\n":
                        raise err("unterminated quoted string", i)
                    k += 1
                if k >= n:
                    raise err("unterminated quoted string", i)
                toks.append(_Tok("string", text[i:k + 1], tok_start, line, space))
                i = k + 1
            elif c == "`":
                k = text.find("`", i + 1)
                if k < 0:
                    raise err("unterminated raw quoted string", i)
                toks.append(_Tok("rawstring", text[i + 1:k], tok_start, line, space))
                i = k + 1
            elif c == "'":
                k = i + 1
                while k < n and text[k] != "'":
                    if text[k] == "\\":
                        k += 1
                    k += 1
                if k >= n:
                    raise err("unterminated character constant", i)
                toks.append(_Tok("char", text[i:k + 1], tok_start, line, space))
                i = k + 1
            elif c == "$":
                k = i + 1
                while k < n and _is_alnum(text[k]):
                    k += 1
                toks.append(_Tok("var", text[i:k], tok_start, line, space))
                i = k
            elif c == "." and i + 1 < n and text[i + 1].isdigit() and not (
                    toks and not space and toks[-1].kind in ("field", "var", "rparen", "ident")):
                k = _scan_number(text, i)
                toks.append(_Tok("number", text[i:k], tok_start, line, space))
                i = k
            elif c == ".":
                k = i + 1
                while k < n and _is_alnum(text[k]):
                    k += 1
                kind = "field" if k > i + 1 else "dot"
                toks.append(_Tok(kind, text[i:k], tok_start, line, space))
                i = k
            elif c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or (
                    text[i + 1] == "." and i + 2 < n and text[i + 2].isdigit()))):
                k = _scan_number(text, i)
                if k < n and _is_alnum(text[k]):
                    raise err(f'bad number syntax: "{text[i:k + 1]}"', i)
                toks.append(_Tok("number", text[i:k], tok_start, line, space))
                i = k
            elif c == "_" or c.isalpha():
                k = i
                while k < n and _is_alnum(text[k]):
                    k += 1
                word = text[i:k]
                toks.append(_Tok("kw" if word in _KEYWORDS else "ident", word, tok_start, line,
                                 space))
                i = k
            elif c == "|":
                toks.append(_Tok("pipe", c, tok_start, line, space))
                i += 1
            elif c == "(":
                toks.append(_Tok("lparen", c, tok_start, line, space))
                i += 1
            elif c == ")":
                toks.append(_Tok("rparen", c, tok_start, line, space))
                i += 1
            elif c == ",":
                toks.append(_Tok("comma", c, tok_start, line, space))
                i += 1
            elif text.startswith(":=", i):
                toks.append(_Tok("declare", ":=", tok_start, line, space))
                i += 2
            elif c == "=":
                toks.append(_Tok("assign", "=", tok_start, line, space))
                i += 1
            elif c == "}":
                raise err('unexpected "}" in operand', i)
            else:
                raise err(f"bad character U+{ord(c):04X} '{c}'", i)
            space = False
    toks.append(_Tok("eof", "", n, text.count("\n") + 1))
    return toks


def _scan_number(text: str, i: int) -> int:
    k = i + 1 if text[i] in "+-" else i
    exponent = "pP" if text[k:k + 2].lower() == "0x" else "eE"
    while k < len(text):
        c = text[k]
        if c.isalnum() or c in "._" or (c in "+-" and text[k - 1] in exponent):
            k += 1
        else:
            break
    return k


# ---- parse tree -----------------------------------------------------------------------------

class _Node:
    pos = 0

    def go(self) -> str:
        """The node as Go's String() prints it, for `at <...>` in error messages."""
        return ""


class _Text(_Node):
    def __init__(self, text: str):
        self.text = text


class _Field(_Node):
    def __init__(self, idents: list[str], pos: int):
        self.idents, self.pos = idents, pos

    def go(self) -> str:
        return "".join("." + i for i in self.idents)


class _Var(_Node):
    def __init__(self, name: str, idents: list[str], pos: int):
        self.name, self.idents, self.pos = name, idents, pos

    def go(self) -> str:
        return self.name + "".join("." + i for i in self.idents)


class _Chain(_Node):
    def __init__(self, node: _Node, idents: list[str], pos: int):
        self.node, self.idents, self.pos = node, idents, pos

    def go(self) -> str:
        inner = self.node.go()
        if isinstance(self.node, _Pipe):
            inner = f"({inner})"
        return inner + "".join("." + i for i in self.idents)


class _Dot(_Node):
    def __init__(self, pos: int):
        self.pos = pos

    def go(self) -> str:
        return "."


class _Const(_Node):
    def __init__(self, value: Any, src: str, pos: int):
        self.value, self.src, self.pos = value, src, pos

    def go(self) -> str:
        return self.src


class _Ident(_Node):
    def __init__(self, name: str, pos: int):
        self.name, self.pos = name, pos

    def go(self) -> str:
        return self.name


class _Command(_Node):
    def __init__(self, args: list[_Node], pos: int):
        self.args, self.pos = args, pos

    def go(self) -> str:
        return " ".join(f"({a.go()})" if isinstance(a, _Pipe) else a.go() for a in self.args)


class _Pipe(_Node):
    def __init__(self, decl: list[str], assign: bool, cmds: list[_Command], pos: int):
        self.decl, self.assign, self.cmds, self.pos = decl, assign, cmds, pos

    def go(self) -> str:
        s = " | ".join(c.go() for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.assign else " := ") + s
        return s


class _Action(_Node):
    def __init__(self, pipe: _Pipe, pos: int):
        self.pipe, self.pos = pipe, pos

    def go(self) -> str:
        return "{{" + self.pipe.go() + "}}"


class _Branch(_Node):
    def __init__(self, kind: str, pipe: _Pipe, body: list[_Node], other: list[_Node] | None,
                 pos: int):
        self.kind, self.pipe, self.body, self.other, self.pos = kind, pipe, body, other, pos


class _Loop(_Node):
    def __init__(self, kind: str, pos: int):
        self.kind, self.pos = kind, pos   # break or continue


class _Call(_Node):
    def __init__(self, name: str, pipe: _Pipe | None, pos: int):
        self.name, self.pipe, self.pos = name, pipe, pos

    def go(self) -> str:
        arg = " " + self.pipe.go() if self.pipe else ""
        return '{{template "' + self.name + '"' + arg + "}}"


class _Parser:
    def __init__(self, text: str, name: str, funcs: dict[str, Any]):
        self.text, self.name, self.funcs = text, name, funcs
        self.toks = _lex(text, name)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.defines: dict[str, list[_Node]] = {}
        self.loop_depth = 0

    def err(self, msg: str, tok: _Tok | None = None) -> TemplateError:
        line = (tok or self.toks[min(self.i, len(self.toks) - 1)]).line
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> list[_Node]:
        body, stop = self.list_until(set())
        if stop is not None:
            raise self.err(f"unexpected {{{{{stop.val}}}}}", stop)
        return body

    def list_until(self, stops: set[str]) -> tuple[list[_Node], _Tok | None]:
        """Nodes up to one of the keywords in stops ({{end}}, {{else}}); returns it."""
        out: list[_Node] = []
        while True:
            t = self.next()
            if t.kind == "eof":
                if stops:
                    raise self.err("unexpected EOF", t)
                return out, None
            if t.kind == "text":
                out.append(_Text(t.val))
                continue
            # t is {{
            k = self.peek()
            if k.kind == "kw" and k.val in ("end", "else"):
                self.next()
                if k.val not in stops:
                    raise self.err(f"unexpected {{{{{k.val}}}}}", k)
                return out, k
            out.append(self.action())

    def action(self) -> _Node:
        t = self.peek()
        if t.kind == "kw":
            if t.val in ("if", "range", "with"):
                self.next()
                return self.branch(t.val, t)
            if t.val in ("break", "continue"):
                self.next()
                if not self.loop_depth:
                    raise self.err(f"{{{{{t.val}}}}} outside {{{{range}}}}", t)
                self.expect_right(t.val)
                return _Loop(t.val, t.pos)
            if t.val in ("template", "block", "define"):
                self.next()
                return self.template(t)
        pipe = self.pipeline("command", t)
        return _Action(pipe, t.pos)

    def expect_right(self, context: str) -> None:
        t = self.next()
        if t.kind != "right":
            raise self.err(f"unexpected {self.describe(t)} in {context}", t)

    def describe(self, t: _Tok) -> str:
        if t.kind == "eof":
            return "EOF"
        if t.kind == "right":
            return "}}"
        if t.kind in ("string", "char", "number", "ident", "kw", "var", "field"):
            return f"<{t.val}>" if t.kind != "string" else t.val
        return f'"{t.val}"'

    def branch(self, kind: str, kw: _Tok) -> _Node:
        mark = len(self.vars)    # variables declared from here on end at {{end}}
        pipe = self.pipeline(kind, kw, allow_range_decl=kind == "range")
        if kind == "range":
            self.loop_depth += 1
        body, stop = self.list_until({"end", "else"})
        if kind == "range":
            self.loop_depth -= 1
        other: list[_Node] | None = None
        assert stop is not None
        if stop.val == "else":
            nxt = self.peek()
            if kind in ("if", "with") and nxt.kind == "kw" and nxt.val == kind:
                # {{else if ...}} / {{else with ...}}: a nested branch that shares our {{end}}
                self.next()
                other = [self.branch(kind, nxt)]
                del self.vars[mark:]
                return _Branch(kind, pipe, body, other, kw.pos)
            self.expect_right("else")
            other, stop = self.list_until({"end"})
        self.expect_right("end")
        del self.vars[mark:]
        return _Branch(kind, pipe, body, other, kw.pos)

    def template(self, kw: _Tok) -> _Node:
        t = self.next()
        if t.kind not in ("string", "rawstring"):
            raise self.err(f"unexpected {self.describe(t)} in {kw.val} clause", t)
        name = _unquote(t) if t.kind == "string" else t.val
        if kw.val == "define":
            self.expect_right("define clause")
            saved = self.vars
            self.vars = ["$"]
            body, _ = self.list_until({"end"})
            self.expect_right("end")
            self.vars = saved
            self.defines[name] = body
            return _Text("")
        pipe: _Pipe | None = None
        if self.peek().kind != "right":
            pipe = self.pipeline(f"{kw.val} clause", kw)
        else:
            self.next()
        if kw.val == "block":
            saved = self.vars
            self.vars = ["$"]
            body, _ = self.list_until({"end"})
            self.expect_right("end")
            self.vars = saved
            self.defines.setdefault(name, body)
        return _Call(name, pipe, kw.pos)

    def pipeline(self, context: str, start: _Tok, allow_range_decl: bool = False,
                 end: str = "right") -> _Pipe:
        decl: list[str] = []
        assign = False
        # $x := ..., $x = ..., and in range $i, $v := ...
        save = self.i
        t = self.peek()
        if t.kind == "var":
            self.next()
            nxt = self.peek()
            if nxt.kind in ("declare", "assign"):
                self.next()
                decl = [t.val]
                assign = nxt.kind == "assign"
            elif nxt.kind == "comma" and allow_range_decl:
                self.next()
                t2 = self.next()
                if t2.kind != "var":
                    raise self.err("range can only initialize variables", t2)
                op = self.next()
                if op.kind not in ("declare", "assign"):
                    raise self.err(f"unexpected {self.describe(op)} in range", op)
                decl = [t.val, t2.val]
                assign = op.kind == "assign"
            elif nxt.kind == "comma":
                raise self.err(f"too many declarations in {context}", nxt)
            else:
                self.i = save
        if assign:
            for v in decl:
                if v not in self.vars:
                    raise self.err(f'undefined variable "{v}"', t)
        cmds: list[_Command] = []
        while True:
            t = self.peek()
            if t.kind == end:
                self.next()
                break
            if t.kind == "eof":
                raise self.err("unclosed action", t)
            if t.kind == "pipe" and not cmds:
                raise self.err("missing command", t)
            cmds.append(self.command(end))
            t = self.peek()
            if t.kind == "pipe":
                self.next()
                if self.peek().kind in (end, "pipe"):
                    raise self.err("missing command", t)
        if not cmds:
            raise self.err(f"missing value for {context}", start)
        for k, c in enumerate(cmds[1:], 2):
            first = c.args[0]
            if isinstance(first, (_Const, _Dot)):
                raise self.err(f"non executable command in pipeline stage {k}", start)
        if not assign:
            self.vars.extend(decl)
        return _Pipe(decl, assign, cmds, start.pos)

    def command(self, end: str) -> _Command:
        args: list[_Node] = []
        start = self.peek()
        while True:
            t = self.peek()
            if t.kind in (end, "pipe"):
                break
            if t.kind == "eof":
                raise self.err("unclosed action", t)
            if args and not t.space and t.kind != "rparen":
                raise self.err(f"unexpected {self.describe(t)} in operand", t)
            if t.kind == "rparen" and end != "rparen":
                raise self.err("unexpected right paren", t)
            args.append(self.operand())
        if not args:
            raise self.err("empty command", start)
        return _Command(args, start.pos)

    def operand(self) -> _Node:
        t = self.next()
        node: _Node
        # Go places a chained field (.A.B, $x.A) at its second token: its messages say so
        if t.kind == "field":
            pos = self.peek().pos if self.chained() else t.pos
            return _Field([t.val[1:], *self.chain()], pos)
        if t.kind == "var":
            if t.val not in self.vars:
                raise self.err(f'undefined variable "{t.val}"', t)
            pos = self.peek().pos if self.chained() else t.pos
            return _Var(t.val, self.chain(), pos)
        if t.kind == "dot":
            node = _Dot(t.pos)
        elif t.kind == "ident":
            if t.val not in self.funcs:
                raise self.err(f'function "{t.val}" not defined', t)
            node = _Ident(t.val, t.pos)
        elif t.kind == "kw" and t.val in ("true", "false"):
            node = _Const(t.val == "true", t.val, t.pos)
        elif t.kind == "kw" and t.val == "nil":
            node = _Const(None, "nil", t.pos)
        elif t.kind == "string":
            node = _Const(_unquote(t, self), t.val, t.pos)
        elif t.kind == "rawstring":
            node = _Const(t.val, "`" + t.val + "`", t.pos)
        elif t.kind == "char":
            s = _unquote(t, self)
            if len(s) != 1:
                raise self.err(f"malformed character constant: {t.val}", t)
            node = _Const(ord(s), t.val, t.pos)
        elif t.kind == "number":
            node = _Const(self.number(t), t.val, t.pos)
        elif t.kind == "lparen":
            node = self.pipeline("parenthesized pipeline", t, end="rparen")
        else:
            raise self.err(f"unexpected {self.describe(t)} in operand", t)
        if self.chained():
            if isinstance(node, (_Const, _Dot)):
                raise self.err(f"unexpected . after term {_quote(node.go())}", t)
            node = _Chain(node, [], self.peek().pos)
            node.idents = self.chain()
        return node

    def chained(self) -> bool:
        return self.peek().kind == "field" and not self.peek().space

    def chain(self) -> list[str]:
        idents = []
        while self.chained():
            idents.append(self.next().val[1:])
        return idents

    def number(self, t: _Tok) -> int | float:
        s = t.val.replace("_", "")
        try:
            if any(c in s.lower() for c in ".ep") and not s.lower().lstrip("+-").startswith(
                    "0x"):
                return float(s)
            if s.lower().lstrip("+-").startswith("0x") and "p" in s.lower():
                return float.fromhex(s)
            low = s.lower()
            sign = -1 if low.startswith("-") else 1
            low = low.lstrip("+-")
            if low.startswith("0x"):
                return sign * int(low[2:], 16)
            if low.startswith("0b"):
                return sign * int(low[2:], 2)
            if low.startswith("0o"):
                return sign * int(low[2:], 8)
            if len(low) > 1 and low.startswith("0"):
                return sign * int(low[1:], 8)
            return sign * int(low)
        except ValueError:
            raise self.err(f'bad number syntax: "{t.val}"', t) from None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def _unquote(t: _Tok, p: _Parser | None = None) -> str:
    """Go's strconv.Unquote for "..." and '...' literals."""
    body = t.val[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2:i + 2 + size]
            try:
                out.append(chr(int(digits, 16)) if len(digits) == size else "")
            except ValueError:
                digits = ""
            if len(digits) != size:
                raise TemplateError(f"template: :{t.line}: invalid syntax")
            i += 2 + size
        elif e.isdigit():
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise TemplateError(f"template: :{t.line}: invalid syntax")
    return "".join(out)


# ---- values as Go prints and compares them ---------------------------------------------------

def _go_type(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, StringMap):
        return "map[string]string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    return getattr(v, "_go_type", type(v).__name__)


def _go_float(f: float) -> str:
    """fmt's %v of a float64: the shortest digits, %e from 1e+06 and below 1e-04 (Go prints
    1000000.0 as 1e+06, the well-known surprise of numbers decoded from JSON)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(f)
    mant, _, exp_s = r.partition("e")
    neg = mant.startswith("-")
    mant = mant.lstrip("-")
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    exp = int(exp_s) if exp_s else 0
    digits = (ip + fp).lstrip("0")
    if not digits:
        return "-0" if neg else "0"
    # decimal exponent of the first significant digit
    if ip.strip("0"):
        point = len(ip.lstrip("0")) + exp
    else:
        point = -(len(fp) - len(fp.lstrip("0"))) + exp
    digits = digits.rstrip("0")
    x = point - 1
    if x < -4 or x >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        s = f"{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif point <= 0:
        s = "0." + "0" * -point + digits
    elif point >= len(digits):
        s = digits + "0" * (point - len(digits))
    else:
        s = digits[:point] + "." + digits[point:]
    return "-" + s if neg else s


def go_str(v: Any) -> str:
    """fmt.Sprint of one value, as text/template prints an action's result."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _truth(v: Any) -> bool:
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True   # a struct is always true


def _to_json(v: Any) -> Any:
    if v is NO_VALUE:
        return None
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)   # Go writes float64 3 as 3
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    hook = getattr(v, "go_json", None)
    if hook is not None:
        return _to_json(hook())
    return _to_json({k: x for k, x in vars(v).items() if not k.startswith("_")})


def go_json(v: Any) -> str:
    """Docker's `json` function: encoding/json without HTML escaping, no trailing newline."""
    import json
    s = json.dumps(_to_json(v), ensure_ascii=False, separators=(",", ":"))
    return s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---- fmt.Sprintf ----------------------------------------------------------------------------

def _quote(s: str) -> str:
    """strconv.Quote: Go's escapes, printable Unicode kept."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[c])
        elif c.isprintable() or c == " ":
            out.append(c)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _bad_verb(verb: str, v: Any) -> str:
    if v is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(v)}={go_str(v)})"


def _fmt_one(verb: str, v: Any, flags: str, width: int | None, prec: int | None) -> str:
    if v is NO_VALUE:
        v = None
    if isinstance(v, (list, tuple)) and verb not in "vTq" and not (
            verb in "sxX" and all(isinstance(x, str) for x in v) and False):
        return "[" + " ".join(_fmt_one(verb, x, flags, width, prec) for x in v) + "]"
    s: str
    numeric = False
    if verb == "v":
        if "#" in flags and isinstance(v, str):
            s = _quote(v)
        elif isinstance(v, float):
            s = _go_float(v)
            numeric = True
        elif isinstance(v, int) and not isinstance(v, bool):
            s, numeric = str(v), True
            if "+" in flags and v >= 0:
                s = "+" + s
        elif isinstance(v, dict) and "+" not in flags and "#" not in flags:
            s = go_str(v)
        else:
            s = go_str(v)
    elif verb == "T":
        s = _go_type(v)
    elif verb == "t":
        if not isinstance(v, bool):
            return _bad_verb(verb, v)
        s = "true" if v else "false"
    elif verb == "s":
        if not isinstance(v, str):
            if v is None or isinstance(v, (bool, int, float)):
                return _bad_verb(verb, v)
            s = go_str(v)
        else:
            s = v
        if prec is not None:
            s = s[:prec]
    elif verb == "q":
        if isinstance(v, str):
            s = _quote(v[:prec] if prec is not None else v)
        elif isinstance(v, int) and not isinstance(v, bool):
            s = "'" + _quote(chr(v))[1:-1].replace("\\\"", '"').replace("'", "\\'") + "'"
        elif isinstance(v, (list, tuple)):
            s = "[" + " ".join(_fmt_one("q", x, flags, None, prec) for x in v) + "]"
        else:
            return _bad_verb(verb, v)
    elif verb in "dboxXcU":
        if isinstance(v, str) and verb in "xX":
            s = v.encode().hex()
            s = s.upper() if verb == "X" else s
        elif isinstance(v, bool) or not isinstance(v, int):
            return _bad_verb(verb, v)
        elif verb == "c":
            s = chr(v)
        elif verb == "U":
            s = f"U+{v:04X}"
        else:
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            s = format(abs(v), base)
            if "#" in flags and verb in "xXob" and v != 0:
                s = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] + s
            if prec is not None:
                s = s.zfill(prec)
            s = ("-" if v < 0 else "+" if "+" in flags else " " if " " in flags else "") + s
            numeric = True
    elif verb in "eEfFgG":
        if isinstance(v, bool) or not isinstance(v, float):
            return _bad_verb(verb, v)
        if verb in "gG" and prec is None:
            s = _go_float(v)
            s = s.upper() if verb == "G" else s
        else:
            p = 6 if prec is None else prec
            s = format(v, f".{p}{verb}")
            if verb in "fF" and math.isinf(v):
                s = "+Inf" if v > 0 else "-Inf"
        if "+" in flags and not s.startswith("-"):
            s = "+" + s
        numeric = True
    else:
        return f"%!{verb}({_go_type(v)}={go_str(v)})"
    if width is not None and len(s) < width:
        if "-" in flags:
            s = s.ljust(width)
        elif "0" in flags and numeric:
            sign = s[0] if s[:1] in "+- " else ""
            s = sign + s[len(sign):].rjust(width - len(sign), "0")
        else:
            s = s.rjust(width)
    return s


def _fmt_number(fmt: str, i: int, args: tuple[Any, ...], argi: int) -> tuple[int | None, int, int]:
    """A width or precision at fmt[i]: digits, or `*` taking the next int argument."""
    if fmt.startswith("*", i):
        if argi < len(args) and isinstance(args[argi], int):
            return args[argi], i + 1, argi + 1
        return None, i + 1, argi
    k = i
    while k < len(fmt) and fmt[k].isdigit():
        k += 1
    return (int(fmt[i:k]) if k > i else None), k, argi


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf with Go's verbs and its in-band errors (%!d(string=x), %!v(MISSING))."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width, i, argi = _fmt_number(fmt, i, args, argi)
        prec: int | None = None
        if i < n and fmt[i] == ".":
            prec, i, argi = _fmt_number(fmt, i + 1, args, argi)
            prec = prec or 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, args[argi], flags, width, prec))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{_go_type(a)}={go_str(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def go_sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out: list[str] = []
    for k, a in enumerate(args):
        if k and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(go_str(None if a is NO_VALUE else a))
    return "".join(out)


# ---- functions ------------------------------------------------------------------------------

class _FuncError(Exception):
    """Raised by a template function: becomes `error calling NAME: MSG`."""


def _need_str(v: Any, what: str = "string") -> str:
    if not isinstance(v, str):
        raise TypeError(f"wrong type for value; expected {what}; got {_go_type(v)}")
    return v


def _need_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise TypeError(f"wrong type for value; expected int; got {_go_type(v)}")
    return v


def _index(item: Any, *keys: Any) -> Any:
    v = item
    for k in keys:
        if v is None or v is NO_VALUE:
            raise _FuncError("index of untyped nil")
        if isinstance(v, dict):
            if k in v:
                v = v[k]
            else:
                v = "" if isinstance(v, StringMap) else NO_VALUE
        elif isinstance(v, (list, tuple, str)):
            if isinstance(k, bool) or not isinstance(k, int):
                raise _FuncError(f"cannot index slice/array with type {_go_type(k)}")
            if not 0 <= k < len(v):
                raise _FuncError(f"index out of range: {k}")
            v = ord(v[k]) if isinstance(v, str) else v[k]
        else:
            raise _FuncError(f"can't index item of type {_go_type(v)}")
    return v


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise _FuncError(f"can't slice item of type {_go_type(item)}")
    if len(idx) > 3 or (len(idx) == 3 and isinstance(item, str)):
        raise _FuncError(f"too many slice indexes: {len(idx)}")
    bounds = [_need_int(i) for i in idx[:2]]
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _FuncError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _length(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    raise _FuncError(f"len of type {_go_type(v)}")


_KINDS = {"<nil>": "nil", "bool": "bool", "int": "int", "float64": "float", "string": "string"}


def _basic_kind(v: Any) -> str:
    """The kind Go's comparison functions reason about; "other" for maps, slices, structs."""
    return "nil" if v is NO_VALUE else _KINDS.get(_go_type(v), "other")


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in others:
        kb = _basic_kind(b)
        if ka == "other" or kb == "other":
            if ka == kb and a == b:
                return True
            if "nil" in (ka, kb):
                continue
            raise _FuncError("non-comparable type")
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if ka != kb:
            raise _FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("nil", "other", "bool") or kb in ("nil", "other", "bool"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return bool(a < b)


def _title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word."""
    out: list[str] = []
    prev = " "
    for c in s:
        sep = not (prev.isalnum() or prev == "_") if prev.isascii() else prev.isspace()
        out.append(c.upper() if sep else c)
        prev = c
    return "".join(out)


def _html(*args: Any) -> str:
    s = go_sprint(*args)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"),
                 ("\0", "\ufffd")):
        s = s.replace(a, b)
    return s


def _js(*args: Any) -> str:
    out = []
    for c in go_sprint(*args):
        if c in "\\'\"<>&=":
            out.append({"\\": "\\\\", "'": "\\'", '"': "\\\""}.get(c, f"\\u{ord(c):04X}"))
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    safe = "-_.~"
    out = []
    for b in go_sprint(*args).encode():
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in safe):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _FuncError(f"non-function of type {_go_type(fn)}")
    return fn(*args)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"wrong type for value; expected []string; got {_go_type(items)}")
    return _need_str(sep).join(go_str(x) for x in items)


def _split(s: Any, sep: Any) -> list[str]:
    s, sep = _need_str(s), _need_str(sep)
    return list(s) if sep == "" else s.split(sep)


def _pad(s: Any, prefix: Any, suffix: Any) -> str:
    s = _need_str(s)
    return s and " " * _need_int(prefix) + s + " " * _need_int(suffix)


def _truncate(s: Any, length: Any) -> str:
    s, n = _need_str(s), _need_int(length)
    b = s.encode()
    return s if len(b) < n else b[:n].decode(errors="ignore")


BUILTINS: dict[str, _Func] = {
    "and": (lambda *a: a, -1, 1), "or": (lambda *a: a, -1, 1),   # short-circuit: see _call_fn
    "not": (lambda a: not _truth(a), 1, 0),
    "len": (_length, 1, 0),
    "index": (_index, -1, 1),
    "slice": (_slice, -1, 1),
    "print": (go_sprint, -1, 0),
    "printf": (lambda f, *a: go_sprintf(_need_str(f), *a), -1, 1),
    "println": (lambda *a: " ".join(go_str(None if x is NO_VALUE else x) for x in a) + "\n",
                -1, 0),
    "eq": (_eq, -1, 1),
    "ne": (lambda a, b: not _eq(a, b), 2, 0),
    "lt": (_lt, 2, 0),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 0),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 0),
    "ge": (lambda a, b: not _lt(a, b), 2, 0),
    "html": (_html, -1, 0),
    "js": (_js, -1, 0),
    "urlquery": (_urlquery, -1, 0),
    "call": (_call, -1, 1),
    # Docker's (cli/templates)
    "json": (go_json, 1, 0),
    "split": (_split, 2, 0),
    "join": (_join, 2, 0),
    "title": (lambda s: _title(_need_str(s)), 1, 0),
    "lower": (lambda s: _need_str(s).lower(), 1, 0),
    "upper": (lambda s: _need_str(s).upper(), 1, 0),
    "pad": (_pad, 3, 0),
    "truncate": (_truncate, 2, 0),
}

# Docker's HeaderFunctions: a table's header row keeps the column names intact.
HEADER_FUNCS: dict[str, _Func] = {
    "json": (lambda v: v, 1, 0),
    "split": (lambda v, _s: v, 2, 0),
    "join": (lambda v, _s: v, 2, 0),
    "title": (lambda v: v, 1, 0),
    "lower": (lambda v: v, 1, 0),
    "upper": (lambda v: v, 1, 0),
    "truncate": (lambda v, _n: v, 2, 0),
}


# ---- execution ------------------------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, tmpl: Template, funcs: dict[str, _Func], missingkey: str):
        self.tmpl, self.funcs, self.missingkey = tmpl, funcs, missingkey
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = []
        self.node: _Node | None = None
        self.depth = 0

    def err(self, msg: str) -> TemplateError:
        node = self.node
        name = self.tmpl.name
        if node is None:
            return TemplateError(f"template: {name}: {msg}")
        text = self.tmpl.text[:node.pos]
        line = text.count("\n") + 1
        col = node.pos - (text.rfind("\n") + 1)
        return TemplateError(
            f'template: {name}:{line}:{col}: executing "{name}" at <{node.go()}>: {msg}')

    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                v = self.pipe(dot, node.pipe)
                if not node.pipe.decl:
                    self.print(v, node)
            elif isinstance(node, _Branch):
                self.branch(dot, node)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()
            elif isinstance(node, _Call):
                self.call_template(dot, node)

    def print(self, v: Any, node: _Node) -> None:
        if callable(v) and not isinstance(v, type):
            self.node = node
            raise self.err(f"can't print {node.go()} of type func")
        self.out.append(go_str(v))

    def branch(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            v = self.pipe(dot, node.pipe)
            if _truth(v):
                self.walk(v if node.kind == "with" else dot, node.body)
            elif node.other is not None:
                self.walk(dot, node.other)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: _Branch) -> None:
        pipe = node.pipe
        v = self.pipe(dot, _Pipe([], False, pipe.cmds, pipe.pos))
        items: Iterator[tuple[Any, Any]]
        if v is None or v is NO_VALUE:
            items = iter(())
        elif isinstance(v, dict):
            items = iter([(k, v[k]) for k in sorted(v)])
        elif isinstance(v, (list, tuple)):
            items = iter(list(enumerate(v)))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = iter([(k, k) for k in range(v)])
        else:
            self.node = pipe
            raise self.err(f"range can't iterate over {go_str(v)}")
        ran = False
        mark = len(self.vars)
        for k, x in items:
            ran = True
            if pipe.decl:
                vals = [x] if len(pipe.decl) == 1 else [k, x]
                if len(pipe.decl) == 1 and isinstance(v, int) and not isinstance(v, bool):
                    vals = [k]
                for name, val in zip(pipe.decl, vals):
                    self.set_var(name, val, pipe.assign)
            try:
                self.walk(x, node.body)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark:]
        if not ran and node.other is not None:
            self.walk(dot, node.other)

    def call_template(self, dot: Any, node: _Call) -> None:
        body = self.tmpl.defines.get(node.name)
        if body is None:
            self.node = node
            raise self.err(f'template "{node.name}" not defined')
        v = self.pipe(dot, node.pipe) if node.pipe else None
        self.depth += 1
        if self.depth > 10000:
            raise self.err("exceeded maximum template depth (100000)")
        saved = self.vars
        self.vars = [("$", v)]
        try:
            self.walk(v, body)
        finally:
            self.vars = saved
            self.depth -= 1

    def set_var(self, name: str, val: Any, assign: bool) -> None:
        if assign:
            for k in range(len(self.vars) - 1, -1, -1):
                if self.vars[k][0] == name:
                    self.vars[k] = (name, val)
                    return
        self.vars.append((name, val))

    def get_var(self, name: str) -> Any:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        raise self.err(f"undefined variable: {name}")

    def pipe(self, dot: Any, pipe: _Pipe) -> Any:
        v: Any = _MISSING
        for cmd in pipe.cmds:
            v = self.command(dot, cmd, v)
        for name in pipe.decl:
            self.set_var(name, v, pipe.assign)
        return v

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        args = cmd.args[1:]
        self.node = first
        if isinstance(first, _Field):
            return self.field_chain(dot, dot, first, first.idents, args, final)
        if isinstance(first, _Chain):
            recv = self.arg(dot, first.node)
            self.node = first
            return self.field_chain(dot, recv, first, first.idents, args, final)
        if isinstance(first, _Var):
            v = self.get_var(first.name)
            if first.idents:
                return self.field_chain(dot, v, first, first.idents, args, final)
            self.not_function(first, args, final)
            return v
        if isinstance(first, _Ident):
            return self.call_fn(dot, first, args, final)
        if isinstance(first, _Pipe):
            self.not_function(first, args, final)
            return self.pipe(dot, first)
        self.not_function(first, args, final)
        if isinstance(first, _Dot):
            return dot
        assert isinstance(first, _Const)
        return first.value

    def not_function(self, node: _Node, args: list[_Node], final: Any) -> None:
        if args or final is not _MISSING:
            raise self.err(f"can't give argument to non-function {node.go()}")

    def field_chain(self, dot: Any, recv: Any, node: _Node, idents: list[str],
                    args: list[_Node], final: Any) -> Any:
        for k, name in enumerate(idents):
            last = k == len(idents) - 1
            recv = self.field(dot, recv, name, node, args if last else [],
                              final if last else _MISSING)
        return recv

    def field(self, dot: Any, recv: Any, name: str, node: _Node, args: list[_Node],
              final: Any) -> Any:
        self.node = node
        has_args = bool(args) or final is not _MISSING
        if recv is NO_VALUE:
            if self.missingkey == "error":
                raise self.err(f'nil data; no entry for key "{name}"')
            return NO_VALUE
        if recv is None:
            raise self.err(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, dict):
            if has_args:
                raise self.err(f"{name} is not a method but has arguments")
            if name in recv:
                return recv[name]
            if self.missingkey == "error":
                raise self.err(f'map has no entry for key "{name}"')
            if self.missingkey == "zero" and isinstance(recv, StringMap):
                return ""
            return NO_VALUE
        if isinstance(recv, (str, int, float, bool, list, tuple)):
            raise self.err(f"can't evaluate field {name} in type {_go_type(recv)}")
        if name.startswith("_") or not hasattr(recv, name):
            raise self.err(f"can't evaluate field {name} in type {_go_type(recv)}")
        attr = getattr(recv, name)
        if callable(attr):
            vals = [self.arg(dot, a) for a in args]
            if final is not _MISSING:
                vals.append(final)
            self.node = node
            code = getattr(getattr(attr, "__func__", attr), "__code__", None)
            if code is not None and not code.co_flags & 0x04:   # no *args: check the count
                want = code.co_argcount - (1 if hasattr(attr, "__self__") else 0)
                if len(vals) != want:
                    raise self.err(f"wrong number of args for {name}: want {want} got "
                                   f"{len(vals)}")
            try:
                return attr(*vals)
            except (_FuncError, ValueError, LookupError) as e:
                self.node = node
                raise self.err(f"error calling {name}: {e}") from None
        if has_args:
            raise self.err(f"{name} has arguments but cannot be invoked as function")
        return attr

    def arg(self, dot: Any, node: _Node) -> Any:
        self.node = node
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, dot, node, node.idents, [], _MISSING)
        if isinstance(node, _Var):
            v = self.get_var(node.name)
            return self.field_chain(dot, v, node, node.idents, [], _MISSING) if node.idents \
                else v
        if isinstance(node, _Pipe):
            return self.pipe(dot, node)
        if isinstance(node, _Chain):
            return self.command(dot, _Command([node], node.pos), _MISSING)
        if isinstance(node, _Ident):
            return self.call_fn(dot, node, [], _MISSING)
        raise self.err(f"can't handle {node.go()}")

    def call_fn(self, dot: Any, ident: _Ident, args: list[_Node], final: Any) -> Any:
        name = ident.name
        fn, fixed, minimum = self.funcs[name]
        nargs = len(args) + (final is not _MISSING)
        cmd_node = _Command([ident, *args], ident.pos)
        if (fixed >= 0 and nargs != fixed) or (fixed < 0 and nargs < minimum):
            self.node = ident
            want = fixed if fixed >= 0 else f"at least {minimum}"
            raise self.err(f"wrong number of args for {name}: want {want} got {nargs}")
        if name in ("and", "or"):
            # Go 1.18+: evaluated left to right, stopping at the first that decides
            v: Any = None
            for k in range(nargs):
                v = self.arg(dot, args[k]) if k < len(args) else final
                if _truth(v) != (name == "and"):
                    return v
            return v
        vals = [self.arg(dot, a) for a in args]
        if final is not _MISSING:
            vals.append(final)
        self.node = cmd_node
        try:
            return fn(*vals)
        except (_FuncError, TypeError, ValueError, LookupError) as e:
            raise self.err(f"error calling {name}: {e}") from None


_MISSING: Any = object()


class Template:
    """A parsed Go template.

    Raises TemplateError (Go's message) from the constructor when the text does not parse.
    """

    def __init__(self, text: str, funcs: dict[str, Callable[..., Any]] | None = None,
                 name: str = ""):
        self.text, self.name = text, name
        self.funcs: dict[str, _Func] = dict(BUILTINS)
        for fname, fn in (funcs or {}).items():
            self.funcs[fname] = (fn, -1, 0)
        parser = _Parser(text, name, self.funcs)
        self.tree = parser.parse()
        self.defines = parser.defines

    def execute(self, data: Any, missingkey: str = "default",
                funcs: dict[str, _Func] | None = None, partial: list[str] | None = None) -> str:
        """The template applied to data.

        missingkey is Go's option: "default" (a missing map key prints <no value>), "zero" or
        "error" (Docker's inspect). funcs replaces functions by name (HEADER_FUNCS). When
        partial is given, the output written before an error is appended to it.
        Raises TemplateError.
        """
        ex = _Exec(self, {**self.funcs, **(funcs or {})}, missingkey)
        ex.vars = [("$", data)]
        try:
            ex.walk(data, self.tree)
        except (_Break, _Continue):
            pass
        except RecursionError:
            raise ex.err("exceeded maximum template depth") from None
        finally:
            if partial is not None:
                partial.extend(ex.out)
        return "".join(ex.out)


# ---- Docker's table output ------------------------------------------------------------------

def _width(s: str) -> int:
    """Display width: East Asian wide characters take two cells (go-runewidth)."""
    if s.isascii():
        return len(s)
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in s)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with padchar ' ' and no flags, as Docker's tables use it.

    Cells are tab-terminated; the text after a line's last tab is not part of a column.
    Consecutive lines that have a cell in column k form a block aligned to its widest cell
    plus padding, at least minwidth.
    """
    lines = [ln.split("\t") for ln in text.split("\n")]
    out: list[str] = []

    def write(l0: int, l1: int, widths: list[int]) -> None:
        for ln in lines[l0:l1]:
            parts = []
            for j, cell in enumerate(ln):
                parts.append(cell)
                if j < len(widths) and j < len(ln) - 1:
                    parts.append(" " * (widths[j] - _width(cell)))
                elif j < len(widths):
                    parts.append(" " * (widths[j] - _width(cell)) if cell else "")
            out.append("".join(parts))

    def fmt(l0: int, l1: int, widths: list[int]) -> None:
        col = len(widths)
        this = l0
        while this < l1:
            if col >= len(lines[this]) - 1:
                this += 1
                continue
            write(l0, this, widths)
            l0 = this
            width = minwidth
            while this < l1 and col < len(lines[this]) - 1:
                width = max(width, _width(lines[this][col]) + padding)
                this += 1
            fmt(l0, this, [*widths, width])
            l0 = this
        write(l0, l1, widths)

    fmt(0, len(lines), [])
    return "\n".join(out)


def format_items(fmt: str, items: list[Any], header: dict[str, str] | None = None,
                 default_table: str = "", missingkey: str = "default") -> str:
    """Docker's --format for a listing: `table ...`, `json`, or a template per item.

    Each item is rendered and followed by a newline. `table` adds the header row (the
    template applied to header, a map of field name to column title, with Docker's
    HeaderFunctions) and aligns the columns as Docker's tabwriter does. `\\t` and `\\n`
    written literally in the format become a tab and a newline, as Docker replaces them.
    Raises TemplateError (with Docker's "template parsing error: " prefix left to the caller).
    """
    is_table = fmt.startswith("table")
    body = fmt
    if is_table:
        body = fmt[len("table"):]
    elif fmt == "json":
        body = "{{json .}}"
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    if is_table and not body:
        body = default_table
    tmpl = Template(body)
    rows = [tmpl.execute(item, missingkey=missingkey) + "\n" for item in items]
    if not is_table:
        return "".join(rows)
    head: list[str] = []
    try:
        tmpl.execute(StringMap(header or {}), funcs=HEADER_FUNCS, partial=head)
    except TemplateError:
        pass   # Docker ignores a header that does not render and prints what it got
    return tabwrite("".join(head) + "\n" + "".join(rows))
