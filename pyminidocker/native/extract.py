"""Layer extraction (csrc/extract.c): a layer tar read from an fd, unpacked into a directory
with its digests computed on the way. Pulls, loads and imports call it; a container start
never does, so it is a module of its own, and its C module, pyminidocker._pmd_extract, is
imported on the first layer_extract only (it loads libarchive and libcrypto, and with them
thirteen more libraries; see csrc/build_ffi.py).
"""
from __future__ import annotations

import os

from pyminidocker.native import _raise, ffi, lib
from pyminidocker.record import dataclass

__all__ = ["COMPRESS_GZIP", "COMPRESS_NONE", "COMPRESS_ZSTD", "ExtractResult", "layer_extract"]

COMPRESS_NONE = lib.PMD_COMPRESS_NONE
COMPRESS_GZIP = lib.PMD_COMPRESS_GZIP
COMPRESS_ZSTD = lib.PMD_COMPRESS_ZSTD


@dataclass(frozen=True)
class ExtractResult:
    """compressed_digest, diff_id, compressed_size, uncompressed_size, entries (see pmd.h)."""

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
    from pyminidocker._pmd_extract import lib as extract_lib

    res = ffi.new("struct pmd_extract_result *")
    err = ffi.new("struct pmd_error *")
    if extract_lib.pmd_layer_extract(fd, os.fsencode(dest), compression, res, err) != 0:
        _raise(err)
    return ExtractResult(
        ffi.string(res.compressed_digest).decode(),
        ffi.string(res.diff_id).decode(),
        res.compressed_size,
        res.uncompressed_size,
        res.entries,
    )
