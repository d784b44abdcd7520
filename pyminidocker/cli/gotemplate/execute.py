"""Running a parsed template over plain Python data, as text/template's exec.go does."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.funcs import BUILTINS, _FuncError
from pyminidocker.cli.gotemplate.parse import (
    _Action,
    _Branch,
    _Call,
    _Chain,
    _Command,
    _Const,
    _Dot,
    _Field,
    _Ident,
    _Loop,
    _Node,
    _Parser,
    _Pipe,
    _Text,
    _Var,
)
from pyminidocker.cli.gotemplate.values import NO_VALUE, TemplateError, _go_type, _truth, go_str
from pyminidocker.engine import StringMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pyminidocker.cli.gotemplate.funcs import _Func

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
