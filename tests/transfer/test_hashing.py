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
