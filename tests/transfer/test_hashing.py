"""The one hashing helper: parallel digests must equal hashlib's, whatever the chunking."""

import hashlib
import os

import blake3
import pytest

from chute.transfer.hashing import MultiHasher, check_algorithm, file_digest


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
