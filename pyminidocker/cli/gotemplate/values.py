"""Go's values as text/template prints, compares and tests them: nil, <no value>, numbers,
JSON; and the error every part of the template engine raises."""
from __future__ import annotations

import math

from pyminidocker.engine import StringMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

class TemplateError(Exception):
    """A template that does not parse or fails while executing; str() is Go's message."""


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields; prints as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()


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
