"""chute.transfer.zeros: which chunks may be left as holes."""

from __future__ import annotations

import os

from chute.transfer.zeros import all_zero


def test_zero_chunks_of_any_size_are_holes() -> None:
    for size in (1, 4095, 4 << 20, (4 << 20) + 1):
        assert all_zero(bytes(size))
        assert all_zero(memoryview(bytes(size)))


def test_any_nonzero_byte_means_data() -> None:
    for where in (0, 1, 2048, 4095):
        chunk = bytearray(4096)
        chunk[where] = 1
        assert not all_zero(bytes(chunk))
        assert not all_zero(memoryview(chunk))
    assert not all_zero(os.urandom(4 << 20))


def test_empty_chunk_is_not_a_hole() -> None:
    assert not all_zero(b"")
