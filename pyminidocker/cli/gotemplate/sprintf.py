"""Go's fmt.Sprintf, Sprint and Sprintln, as the templates' printf, print and println."""
from __future__ import annotations

import math

from pyminidocker.cli.gotemplate.values import NO_VALUE, _go_float, _go_type, go_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
