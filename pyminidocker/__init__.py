"""pyminidocker: a daemonless container engine with a C shim."""

__version__ = "0.1.0"


def _serve_code_cache() -> None:
    """Put a finder first on sys.meta_path that serves the package's modules from its code
    cache (pyminidocker/codecache.py says why, and the file's layout). Only what is loaded
    anyway is used here (marshal, os, and importlib's frozen modules): the point is to import
    less. Any doubt, and the usual machinery serves the module."""
    import marshal
    import os
    import sys

    bootstrap = sys.modules["_frozen_importlib"]
    external = sys.modules["_frozen_importlib_external"]
    fix_filename = sys.modules["_imp"]._fix_co_filename
    if sys.flags.optimize:
        return  # compiled without -O: its asserts and docstrings would differ
    package_dir = os.path.dirname(__file__)
    try:
        fd = os.open(os.path.join(package_dir, "__pycache__",
                                  f"codecache.{sys.implementation.cache_tag}.bin"),
                     os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        head = os.pread(fd, 16, 0)
        if len(head) != 16 or head[:4] != external.MAGIC_NUMBER:
            raise ValueError("another interpreter's")
        length = int.from_bytes(head[8:], "little")
        index = marshal.loads(os.pread(fd, length, 16))
        base = 16 + length
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return

    def code_of(name: str, origin: str):
        entry = index[name]
        try:
            blob = os.pread(fd, entry[5], base + entry[4])
            code = marshal.loads(blob) if len(blob) == entry[5] else None
        except (OSError, ValueError, EOFError, TypeError):
            code = None
        if code is None:  # a damaged file: the module's own .py (or .pyc) instead
            return external.SourceFileLoader(name, origin).get_code(name)
        fix_filename(code, origin)  # where the package is now, as a .pyc's
        return code

    class Loader:
        """What importlib, runpy (python -m) and linecache ask of a loader."""

        @staticmethod
        def create_module(spec):
            return None

        @staticmethod
        def exec_module(module):
            exec(code_of(module.__name__, module.__spec__.origin), module.__dict__)

        @staticmethod
        def get_code(name):
            return code_of(name, os.path.join(package_dir, index[name][1]))

        @staticmethod
        def is_package(name):
            return index[name][0]

        @staticmethod
        def get_source(name):
            with open(os.path.join(package_dir, index[name][1]), "rb") as f:
                return external.decode_source(f.read())

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            entry = index.get(name)
            if entry is None:
                return None
            is_package, rel, mtime, size = entry[:4]
            origin = os.path.join(package_dir, rel)
            try:
                st = os.stat(origin)
            except OSError:
                return None
            if st.st_mtime_ns != mtime or st.st_size != size:
                return None  # edited since the cache was made: its .py serves it
            spec = bootstrap.ModuleSpec(name, Loader, origin=origin, is_package=is_package)
            if is_package:
                spec.submodule_search_locations = [os.path.dirname(origin)]
            spec.has_location = True
            return spec

        @staticmethod
        def invalidate_caches() -> None:
            pass

    sys.meta_path.insert(0, Finder)


_serve_code_cache()
