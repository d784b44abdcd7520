"""The engine's records: their classes, and their JSON.

## Classes: `@dataclass` for the start path, without importing dataclasses

Importing dataclasses pulls in inspect, ast, dis and tokenize, and each decorated class then
compiles its methods with exec: together about 10 ms of every `pyminidocker run`, more than the
whole container start. This module gives the subset the package uses (keyword or positional
construction with defaults and default_factory, eq, repr, frozen with hash, asdict, replace)
with plain closures instead.

Type checkers see the standard library's dataclasses (TYPE_CHECKING below), so they check
constructors and fields as usual; tests/unit/test_record.py holds the two to the same behaviour.

## JSON through CPython's C codec (_json), without the json package

The json package wraps the same C code in Python that imports re at import time, and re
imports enum and functools: about 7 ms of every container start, where these two functions
cost a few microseconds. Output is compact with sorted keys (the store's records are read by
programs; `python -m json.tool` pretty-prints one). Bad input raises ValueError, as json's does.
An interpreter without _json, or whose _json differs, gets the json package instead.

## Writing a record whole

atomic_write and write_json replace a file so that readers see the old or the new content,
never a mix: the store's records and the OCI runtime's state.json are written through them.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import asdict, dataclass, field, replace
    from typing import Any
else:
    _MISSING = object()

    class _Factory:
        __slots__ = ("make",)

        def __init__(self, make):
            self.make = make

    def field(*, default=_MISSING, default_factory=_MISSING):
        return _Factory(default_factory) if default_factory is not _MISSING else default

    def _fields(cls) -> tuple[str, ...]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            # not inspect.get_annotations: inspect is what this module avoids importing
            own = klass.__dict__.get("__annotations__")  # noqa: RUF063
            if own is None and "__annotate__" in klass.__dict__:
                own = klass.__annotations__  # Python >= 3.14 makes them on first access
            for name, ann in (own or {}).items():
                if "ClassVar" not in str(ann) and name not in names:
                    names.append(name)
        return tuple(names)

    def _process(cls, frozen: bool):
        names = _fields(cls)
        defaults = {}
        for name in names:
            value = getattr(cls, name, _MISSING)
            if value is not _MISSING:
                defaults[name] = value
            if isinstance(cls.__dict__.get(name), _Factory):
                delattr(cls, name)  # as the standard one: no class attribute for a factory
        qual = cls.__qualname__
        setter = object.__setattr__

        def __init__(self, *args, **kw):
            if len(args) > len(names):
                raise TypeError(f"{qual}.__init__() takes {len(names)} positional arguments")
            for name, value in zip(names, args):
                if name in kw:
                    raise TypeError(f"{qual}.__init__() got multiple values for '{name}'")
                kw[name] = value
            for name in names:
                if name in kw:
                    value = kw.pop(name)
                else:
                    value = defaults.get(name, _MISSING)
                    if value is _MISSING:
                        raise TypeError(f"{qual}.__init__() missing argument: '{name}'")
                    if isinstance(value, _Factory):
                        value = value.make()
                setter(self, name, value)
            if kw:
                raise TypeError(f"{qual}.__init__() got an unexpected keyword argument "
                                f"'{next(iter(kw))}'")
            post = getattr(self, "__post_init__", None)
            if post is not None:
                post()

        def __repr__(self):
            return f"{qual}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        cls.__init__ = __init__
        cls.__repr__ = __repr__
        cls.__eq__ = __eq__
        cls.__record_fields__ = names
        if frozen:
            def __setattr__(self, name, value):
                raise AttributeError(f"cannot assign to field '{name}'")

            def __delattr__(self, name):
                raise AttributeError(f"cannot delete field '{name}'")

            def __hash__(self):
                return hash(tuple(getattr(self, n) for n in names))

            cls.__setattr__ = __setattr__
            cls.__delattr__ = __delattr__
            cls.__hash__ = __hash__
        else:
            cls.__hash__ = None
        return cls

    def dataclass(cls=None, /, *, frozen=False):
        if cls is None:
            return lambda c: _process(c, frozen)
        return _process(cls, frozen)

    def _plain(value):
        if hasattr(value.__class__, "__record_fields__"):
            return {n: _plain(getattr(value, n)) for n in value.__record_fields__}
        if isinstance(value, (list, tuple)):
            return type(value)(_plain(v) for v in value)
        if isinstance(value, dict):
            return {_plain(k): _plain(v) for k, v in value.items()}
        return value

    def asdict(obj):
        if not hasattr(obj.__class__, "__record_fields__"):
            raise TypeError("asdict() should be called on dataclass instances")
        return _plain(obj)

    def replace(obj, /, **changes):
        kw = {n: getattr(obj, n) for n in obj.__record_fields__}
        kw.update(changes)
        return obj.__class__(**kw)

__all__ = ["asdict", "dataclass", "field", "replace"]


# ---- JSON ------------------------------------------------------------------------------------

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


# ---- writing a record whole --------------------------------------------------------------------

def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write data to path so that readers see the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename, fsync the directory. Raises StoreError.
    durable=False skips both fsyncs: the rename alone is atomic against a crash of the process
    (kill -9, Ctrl-C); only a crash of the machine could then leave an empty file. For files
    rewritten at every start and stop of a container, where an fsync costs more than the
    rest of the start, and for files on a tmpfs.
    """
    import os

    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        if durable:  # the rename itself survives a power cut only once its directory is synced
            fsync_dir(head or ".")
    except OSError as e:
        from pyminidocker.errors import store_error

        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise store_error(e, f"cannot write {name}") from None


def write_json(path: str, obj: Any, durable: bool = True) -> None:
    atomic_write(path, dumps(obj).encode() + b"\n", durable=durable)


def fsync_dir(path: str) -> None:
    import os

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
