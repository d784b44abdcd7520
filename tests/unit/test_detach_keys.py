"""Docker's detach keys (container/attach.py): parsing, and the stdin writer that holds back
what might begin them."""
from __future__ import annotations

import os

import pytest

from pyminidocker.container.attach import StdinWriter, parse_detach_keys
from pyminidocker.errors import UsageError


def test_parse_detach_keys():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,CTRL-@, ctrl-\\") == b"a\x00\x1c"
    for bad in ("ctrl-pp", "", "ctrl-1", "ab"):
        with pytest.raises(UsageError, match=r"Invalid detach keys \(.*\) provided"):
            parse_detach_keys(bad)


def test_the_writer_passes_what_is_not_the_keys_and_stops_at_them():
    r, w = os.pipe()
    writer = StdinWriter(w, b"\x10\x11")
    try:
        assert writer.write(b"ab\x10") is False  # held: it may begin the keys
        assert writer.write(b"c\x10") is False   # not them: ^P and c go on
        assert writer.write(b"\x11tail") is True  # the keys: nothing of them, nor after
        assert os.read(r, 100) == b"ab\x10c"
    finally:
        writer.close()
        os.close(r)
    assert writer.fd == -1
