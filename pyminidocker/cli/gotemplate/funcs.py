"""The functions a template calls: Go's builtins (and, or, not, len, index, slice, eq, lt,
html, js, urlquery, call...) and Docker's (json, split, join, title, pad, truncate...)."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.sprintf import go_sprint, go_sprintf
from pyminidocker.cli.gotemplate.values import NO_VALUE, _go_type, _truth, go_json, go_str
from pyminidocker.engine import StringMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    # name: (function, number of fixed arguments or -1 for variadic, minimum for variadic)
    _Func = tuple[Callable[..., Any], int, int]

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
