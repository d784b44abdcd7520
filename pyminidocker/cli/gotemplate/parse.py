"""text/template's parser: tokens into a tree of nodes (text, actions, pipelines, branches,
loops, template calls), with Go's parse errors."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.lex import _lex, _Tok
from pyminidocker.cli.gotemplate.sprintf import _quote
from pyminidocker.cli.gotemplate.values import TemplateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
