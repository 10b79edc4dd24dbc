"""The one download engine writing to a stream (a pipe: no offsets, no O_DIRECT)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from chute.client.download import Receiver


def test_receiver_writes_a_pipe_in_order_and_hashes_it():
    data = os.urandom(9 * 1024 * 1024 + 7)  # more than two 4 MiB chunks, an odd tail
    read_fd, write_fd = os.pipe()
    got = bytearray()
    reader = threading.Thread(target=lambda: _drain(read_fd, got))
    reader.start()
    source = memoryview(data)
    offset = 0

    def readinto(buffer: memoryview) -> int:
        nonlocal offset
        step = min(len(buffer), len(source) - offset, 1 << 20)
        buffer[:step] = source[offset:offset + step]
        offset += step
        return step

    try:
        with Receiver(write_fd, "pipe", ["sha256"], holes=True, stream=True) as receiver:
            receiver.receive(readinto)  # to the end of the source
            digests = receiver.finish()
            assert not receiver.odirect
    finally:
        os.close(write_fd)
        reader.join()
        os.close(read_fd)
    assert bytes(got) == data
    assert digests["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_stream_refuses_holes():
    read_fd, write_fd = os.pipe()
    try:
        with Receiver(write_fd, "pipe", [], stream=True) as receiver:
            receiver.skip(4096)
            with pytest.raises(ValueError, match="holes"):
                receiver.finish()
    finally:
        os.close(write_fd)
        os.close(read_fd)


def _drain(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 1 << 20):
        into += chunk
