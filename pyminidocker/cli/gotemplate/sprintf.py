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
    """One operand under one verb, as fmt prints it (a list: each element, in brackets)."""
    if v is NO_VALUE:
        v = None
    if isinstance(v, (list, tuple)) and verb not in "vTq":
        return "[" + " ".join(_fmt_one(verb, x, flags, width, prec) for x in v) + "]"
    conv = _VERBS.get(verb)
    if conv is None:
        return f"%!{verb}({_go_type(v)}={go_str(v)})"
    done = conv(verb, v, flags, prec)
    if done is None:
        return _bad_verb(verb, v)
    s, numeric = done
    if width is not None and len(s) < width:
        if "-" in flags:
            s = s.ljust(width)
        elif "0" in flags and numeric:
            sign = s[0] if s[:1] in "+- " else ""
            s = sign + s[len(sign):].rjust(width - len(sign), "0")
        else:
            s = s.rjust(width)
    return s


# Each verb's conversion: (the text, whether it is a number: "0" pads it), or None when the
# operand's type does not take the verb.


def _verb_v(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if "#" in flags and isinstance(v, str):
        return _quote(v), False
    if isinstance(v, float):
        return _go_float(v), True
    if isinstance(v, int) and not isinstance(v, bool):
        return ("+" if "+" in flags and v >= 0 else "") + str(v), True
    return go_str(v), False


def _verb_t(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if verb == "T":
        return _go_type(v), False
    return ("true" if v else "false", False) if isinstance(v, bool) else None


def _verb_s(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if not isinstance(v, str):
        if v is None or isinstance(v, (bool, int, float)):
            return None
        v = go_str(v)
    return (v[:prec] if prec is not None else v), False


def _verb_q(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if isinstance(v, str):
        return _quote(v[:prec] if prec is not None else v), False
    if isinstance(v, int) and not isinstance(v, bool):
        return "'" + _quote(chr(v))[1:-1].replace("\\\"", '"').replace("'", "\\'") + "'", False
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_one("q", x, flags, None, prec) for x in v) + "]", False
    return None


def _verb_int(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if isinstance(v, str) and verb in "xX":
        s = v.encode().hex()
        return (s.upper() if verb == "X" else s), False
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    if verb == "c":
        return chr(v), False
    if verb == "U":
        return f"U+{v:04X}", False
    s = format(abs(v), verb)
    if "#" in flags and verb in "xXob" and v != 0:
        s = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] + s
    if prec is not None:
        s = s.zfill(prec)
    return ("-" if v < 0 else "+" if "+" in flags else " " if " " in flags else "") + s, True


def _verb_float(verb: str, v: Any, flags: str, prec: int | None) -> tuple[str, bool] | None:
    if isinstance(v, bool) or not isinstance(v, float):
        return None
    if verb in "gG" and prec is None:
        s = _go_float(v)
        s = s.upper() if verb == "G" else s
    else:
        s = format(v, f".{6 if prec is None else prec}{verb}")
        if verb in "fF" and math.isinf(v):
            s = "+Inf" if v > 0 else "-Inf"
    return ("+" + s if "+" in flags and not s.startswith("-") else s), True


_VERBS = {"v": _verb_v, "T": _verb_t, "t": _verb_t, "s": _verb_s, "q": _verb_q,
          **dict.fromkeys("dboxXcU", _verb_int), **dict.fromkeys("eEfFgG", _verb_float)}


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
