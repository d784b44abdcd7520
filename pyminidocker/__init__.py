"""pyminidocker: a daemonless container engine with a C shim."""
import marshal as _marshal
import os as _os
import sys as _sys

__version__ = "0.1.0"

# importlib's own modules, always loaded: the point of the code cache is to import less
_bootstrap = _sys.modules["_frozen_importlib"]
_external = _sys.modules["_frozen_importlib_external"]

# The cache file's head: MAGIC_NUMBER, 4 zero bytes, the index's length (8 bytes, little-endian)
_HEAD = 16


def _cache_path(package_dir: str) -> str:
    """The code cache of the package in package_dir, for this interpreter (codecache.py)."""
    return _os.path.join(package_dir, "__pycache__",
                         f"codecache.{_sys.implementation.cache_tag}.bin")


class _CodeCache:
    """The finder (first on sys.meta_path) and loader of the package's modules that its code
    cache holds (pyminidocker/codecache.py says why, and the file's layout), as zipimport's
    importer is both. Any doubt, and the usual machinery serves the module."""

    def __init__(self, package_dir: str, fd: int, index: dict, base: int):
        self.package_dir, self.fd, self.index, self.base = package_dir, fd, index, base

    @classmethod
    def open(cls, package_dir: str) -> "_CodeCache | None":
        if _sys.flags.optimize:
            return None  # the cache is compiled without -O: its asserts would run
        try:
            fd = _os.open(_cache_path(package_dir), _os.O_RDONLY | _os.O_CLOEXEC)
        except OSError:
            return None
        try:
            head = _os.pread(fd, _HEAD, 0)
            if len(head) != _HEAD or head[:4] != _external.MAGIC_NUMBER:
                raise ValueError("another interpreter's")
            length = int.from_bytes(head[8:], "little")
            index = _marshal.loads(_os.pread(fd, length, _HEAD))
            if not isinstance(index, dict):
                raise ValueError("no index")
        except (OSError, ValueError, EOFError, TypeError):
            _os.close(fd)
            return None
        return cls(package_dir, fd, index, _HEAD + length)

    def _origin(self, name: str) -> str:
        return _os.path.join(self.package_dir, self.index[name][1])

    # ---- finder --------------------------------------------------------------------------

    def find_spec(self, name, path=None, target=None):
        entry = self.index.get(name)
        if entry is None:
            return None
        origin = self._origin(name)
        try:
            st = _os.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != entry[2] or st.st_size != entry[3]:
            return None  # edited since the cache was made: its .py serves it
        spec = _bootstrap.ModuleSpec(name, self, origin=origin, is_package=entry[0])
        if entry[0]:
            spec.submodule_search_locations = [_os.path.dirname(origin)]
        spec.has_location = True
        return spec

    def invalidate_caches(self) -> None:
        pass

    # ---- loader: what importlib, runpy (python -m) and linecache ask of one ----------------

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, name):
        entry, origin = self.index[name], self._origin(name)
        try:
            blob = _os.pread(self.fd, entry[5], self.base + entry[4])
            code = _marshal.loads(blob) if len(blob) == entry[5] else None
        except (OSError, ValueError, EOFError, TypeError):
            code = None
        if code is None:  # a damaged file: the module's own .py (or .pyc) instead
            return _external.SourceFileLoader(name, origin).get_code(name)
        _sys.modules["_imp"]._fix_co_filename(code, origin)  # where the package is now
        return code

    def is_package(self, name):
        return self.index[name][0]

    def get_source(self, name):
        with open(self._origin(name), "rb") as f:
            return _external.decode_source(f.read())


_cache = _CodeCache.open(_os.path.dirname(__file__))
if _cache is not None:
    _sys.meta_path.insert(0, _cache)
