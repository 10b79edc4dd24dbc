"""The one hashing helper: parallel digests must equal hashlib's, whatever the chunking."""

import hashlib
import os
import threading

import blake3
import pytest

from chute.transfer import blockdigest, copy, hashing
from chute.transfer.hashing import MultiHasher, check_algorithm, file_digest
from tests.helpers.blocksref import blake3_blocks

MiB = 1 << 20


def test_parallel_digests_equal_hashlib_for_mixed_chunk_sizes():
    data = os.urandom(3 << 20) + b"tail"
    hasher = MultiHasher(["md5", "sha512", "blake3"])
    sizes = [1, 100, 70_000, 1 << 20, 5, 2 << 20]
    offset = 0
    for size in sizes:
        hasher.update(data[offset:offset + size])
        offset += size
    hasher.update(data[offset:])
    digests = hasher.hexdigests()
    assert digests == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
    }
    assert hasher.nbytes == len(data)


def test_empty_stream_has_the_empty_digests():
    assert MultiHasher(["sha256"]).hexdigests() == {"sha256": hashlib.sha256(b"").hexdigest()}


def test_file_digest_reads_the_whole_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(os.urandom(9 << 20))
    assert file_digest(str(path), "sha512") == hashlib.sha512(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["nope", "shake_256"])
def test_unusable_algorithms_are_refused_with_the_name(name):
    with pytest.raises(ValueError, match=name):
        check_algorithm(name)


@pytest.mark.parametrize("size", [0, 1, 4 << 20, (4 << 20) + 1, (9 << 20) + 12345])
def test_blake3_blocks_matches_its_definition(size):
    data = os.urandom(size)
    assert hashing.new_hash("blake3-blocks").hexdigest() == blake3_blocks(b"")
    digest = hashing.new_hash("blake3-blocks")
    digest.update(data)
    assert digest.hexdigest() == blake3_blocks(data)
    assert len(digest.hexdigest()) == 64


def test_blake3_blocks_does_not_depend_on_chunking_or_on_how_zeros_arrive():
    block = 4 << 20
    data = (os.urandom(block + 100) + bytes(3 * block - 100 + 7) + os.urandom(block)
            + bytes(2 * block) + b"\x01" + bytes(block))
    want = blake3_blocks(data)
    for sizes in ([1, 100, 70_000, 1 << 20, 5], [block - 1, 2, 3 * block], [8 * block]):
        digest, offset = hashing.new_hash("blake3-blocks"), 0
        for size in sizes:
            digest.update(data[offset:offset + size])
            offset += size
        digest.update(data[offset:])
        assert digest.hexdigest() == want, sizes
    # The same content with its zero runs fed as holes, directly and through a MultiHasher.
    pieces = [(False, 0, block + 100), (True, block + 100, 3 * block - 100 + 7),
              (False, 4 * block + 7, block), (True, 5 * block + 7, 2 * block),
              (False, 7 * block + 7, 1), (True, 7 * block + 8, block)]
    direct, multi = hashing.new_hash("blake3-blocks"), MultiHasher(["blake3-blocks", "sha256"])
    for is_hole, offset, length in pieces:
        for target in (direct, multi):
            if is_hole:
                hashing.update_zeros(target, length)
            else:
                target.update(data[offset:offset + length])
    assert direct.hexdigest() == want
    assert multi.hexdigests() == {"blake3-blocks": want,
                                  "sha256": hashlib.sha256(data).hexdigest()}


def test_blake3_blocks_notices_one_changed_byte_in_a_zero_block():
    block = 4 << 20
    zeros = bytes(2 * block)
    for position in (0, block - 1, block, block + 12345, 2 * block - 1):
        changed = bytearray(zeros)
        changed[position] = 1
        digest = hashing.new_hash("blake3-blocks")
        digest.update(changed)
        assert digest.hexdigest() == blake3_blocks(bytes(changed)) != blake3_blocks(zeros)


def test_update_zeros_equals_hashing_zeros_for_plain_digests():
    digest = hashing.new_hash("sha256")
    digest.update(b"x")
    hashing.update_zeros(digest, (5 << 20) + 3)
    assert digest.hexdigest() == hashlib.sha256(b"x" + bytes((5 << 20) + 3)).hexdigest()


def test_blake3_blocks_is_a_usable_algorithm_name():
    check_algorithm("blake3-blocks")


@pytest.mark.parametrize("pieces,size", [
    ([(0, 3 * MiB + 17), (10 * MiB, 2 * MiB), (40 * MiB, 5)], 48 * MiB),
    ([(4 * MiB - 1, 2), (13 * MiB, 100)], 13 * MiB + 100),  # data ends the file
    ([], 9 * MiB + 1),  # all hole, a short last block
    ([], 0),
])
def test_blocks_digest_fd_reads_only_blocks_that_may_hold_data(tmp_path, pieces, size):
    path = tmp_path / "sparse"
    with open(path, "wb") as handle:
        for offset, length in pieces:
            handle.seek(offset)
            handle.write(os.urandom(length))
        handle.truncate(size)
    content = path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        segments = list(copy.segments(fd, size))
        for workers in (1, 2, 3):
            assert blockdigest.blocks_digest_fd(fd, segments, size, workers) == blake3_blocks(
                content)
        with pytest.raises(OSError, match="file ended at"):
            blockdigest.blocks_digest_fd(fd, segments, size + 1)
    finally:
        os.close(fd)


def test_deep_hasher_lets_a_ring_of_buffers_be_reused_once_each_chunk_is_hashed():
    """A caller with a ring of buffers refills one only after its handle says it is hashed:
    the digests must be those of the data as it was, never of a refilled buffer."""
    chunks = [os.urandom(1 << 20) for _ in range(12)]
    ring = [bytearray(1 << 20) for _ in range(3)]
    handles = [None] * len(ring)
    with MultiHasher(["md5", "sha512", "blake3"], depth=len(ring)) as hasher:
        for number, chunk in enumerate(chunks):
            slot = number % len(ring)
            if handles[slot] is not None:
                handles[slot].wait()
            ring[slot][:] = chunk
            handles[slot] = hasher.update(memoryview(ring[slot]))
        digests = hasher.hexdigests()
    data = b"".join(chunks)
    assert digests["md5"] == hashlib.md5(data).hexdigest()
    assert digests["sha512"] == hashlib.sha512(data).hexdigest()
    assert digests["blake3"] == blake3.blake3(data).hexdigest()


def test_a_digest_failure_is_raised_to_the_caller():
    hasher = MultiHasher(["sha256"])
    handle = hasher.update(["not", "a", "buffer"] * 30_000)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        handle.wait()
    hasher.close()


def test_closed_hashers_leave_no_threads():
    import threading

    before = threading.active_count()
    for _ in range(20):
        with MultiHasher(["md5", "sha512"], depth=4) as hasher:
            hasher.update(os.urandom(1 << 20))
            hasher.hexdigests()
    assert threading.active_count() == before


def test_blocks_digest_fd_is_exact_for_written_zeros_and_a_zero_tail(tmp_path):
    """Zeros written as data (allocated, not a hole) take the constant zero-block digest only
    when the whole 4 MiB block is zero; a zero short last block is hashed."""
    block = blockdigest.BLOCK_SIZE
    content = bytes(block) + os.urandom(block - 1) + b"\0" + bytes(block + 100)
    path = tmp_path / "zeros"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        everything_data = [(True, 0, len(content))]
        assert blockdigest.blocks_digest_fd(fd, everything_data, len(content)) == \
            blake3_blocks(content)
    finally:
        os.close(fd)


def test_blocks_digest_fd_stops_when_asked(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(os.urandom(3 * blockdigest.BLOCK_SIZE))
    stop = threading.Event()
    stop.set()
    threads = threading.active_count()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(blockdigest.Cancelled):
            blockdigest.blocks_digest_fd(fd, [(True, 0, path.stat().st_size)],
                                         path.stat().st_size, stop=stop)
    finally:
        os.close(fd)
    assert threading.active_count() == threads
