"""The only importer of the compiled C shim (pyminidocker._pmd).

Each wrapper checks its arguments, allocates with ffi.new, calls, and turns a -1 return into
an OSError built from struct pmd_error, so Python's own subclasses (FileNotFoundError,
PermissionError, ...) apply and the message names the operation and the path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

try:
    from pyminidocker._pmd import ffi, lib
except ImportError as e:  # pragma: no cover - only when the C module was not built
    raise ImportError(
        "pyminidocker's C module is not built: run `make` (or `pip install .`)"
    ) from e

COMPRESS_NONE = lib.PMD_COMPRESS_NONE
COMPRESS_GZIP = lib.PMD_COMPRESS_GZIP
COMPRESS_ZSTD = lib.PMD_COMPRESS_ZSTD


def _raise(err) -> None:
    """Raise the OSError subclass matching err.err, with operation and path in the message."""
    op = ffi.string(err.op).decode(errors="replace")
    path = ffi.string(err.path).decode(errors="replace")
    code = err.err or 5  # EIO if C forgot to set it
    msg = f"{op}: {os.strerror(code)}"
    raise OSError(code, msg, path or None)


@dataclass(frozen=True)
class ExtractResult:
    compressed_digest: str
    diff_id: str
    compressed_size: int
    uncompressed_size: int
    entries: int


def layer_extract(fd: int, dest: str | os.PathLike[str], compression: int) -> ExtractResult:
    """Extract the layer tar read from fd into the empty directory dest (see pmd.h).

    Raises OSError (EPERM/EXDEV for hostile entries, EINVAL for a corrupt stream, ENOSPC, ...).
    Releases the GIL while extracting, so several layers extract in parallel threads.
    """
    res = ffi.new("struct pmd_extract_result *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_layer_extract(fd, os.fsencode(dest), compression, res, err) != 0:
        _raise(err)
    return ExtractResult(
        ffi.string(res.compressed_digest).decode(),
        ffi.string(res.diff_id).decode(),
        res.compressed_size,
        res.uncompressed_size,
        res.entries,
    )
