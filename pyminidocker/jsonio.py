"""JSON for the store's records, through CPython's C codec (_json) without the json package.

The json package wraps the same C code in Python that imports re at import time, and re
imports enum and functools: about 7 ms of every container start, where these two functions
cost a few microseconds. Output is compact with sorted keys (the store's records are read by
programs; `python -m json.tool` pretty-prints one). Bad input raises ValueError, as json's does.
An interpreter without _json, or whose _json differs, gets the json package instead.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


def _constant(name: str) -> float:
    return float(name.replace("Infinity", "inf"))


def _unserializable(obj: object) -> None:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _Context:
    """What _json.make_scanner reads its options from (json.JSONDecoder's attributes)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)


def _c_codec():
    import _json

    scan = _json.make_scanner(_Context())
    encode = _json.make_encoder(None, _unserializable, _json.encode_basestring_ascii, None,
                                ":", ",", True, False, True)

    def loads(data: str | bytes) -> Any:
        if isinstance(data, (bytes, bytearray)):
            # a BOM is dropped as the utf-8-sig codec would: that codec is a module to import
            text = (data[3:] if data[:3] == b"\xef\xbb\xbf" else data).decode()
        else:
            text = data
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = scan(text, start)
        except StopIteration as e:
            raise ValueError(f"Expecting value: char {e.value}") from None
        except SystemError:
            # _json reports a syntax error with json.decoder's exception class, and only if
            # that module is loaded: load it (bad input only) and scan again for the message.
            import json.decoder  # noqa: F401

            obj, end = scan(text, start)
        if text[end:].strip(_WS):
            raise ValueError(f"Extra data: char {end}")
        return obj

    def dumps(obj: Any) -> str:
        return "".join(encode(obj, 0))

    if loads('{"b": [1, 2.5, null, true, "\\u00e9"], "a": {}}') != \
            {"a": {}, "b": [1, 2.5, None, True, "é"]} or \
            dumps({"b": [1, "é"], "a": None}) != '{"a":null,"b":[1,"\\u00e9"]}':
        raise ImportError("unexpected _json")
    return loads, dumps


try:
    loads, dumps = _c_codec()
except (ImportError, TypeError, AttributeError, ValueError):  # pragma: no cover - not CPython
    import json as _json_package

    def loads(data: str | bytes) -> Any:
        return _json_package.loads(data)

    def dumps(obj: Any) -> str:
        return _json_package.dumps(obj, separators=(",", ":"), sort_keys=True)
