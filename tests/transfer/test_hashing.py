"""The one hashing helper: parallel digests must equal hashlib's, whatever the chunking."""

import hashlib
import os

import blake3
import pytest

from chute.transfer import hashing
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


def blocks_reference(data: bytes) -> str:
    """blake3-blocks recomputed from its written definition with plain BLAKE3, nothing of ours."""
    block = 4 * 1024 * 1024
    hashes = b"".join(blake3.blake3(data[i:i + block]).digest()
                      for i in range(0, len(data), block))
    header = (b"chute-blake3-blocks-v1" + block.to_bytes(8, "little")
              + len(data).to_bytes(8, "little"))
    return blake3.blake3(header + hashes).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 4 << 20, (4 << 20) + 1, (9 << 20) + 12345])
def test_blake3_blocks_matches_its_definition(size):
    data = os.urandom(size)
    assert hashing.new_hash("blake3-blocks").hexdigest() == blocks_reference(b"")
    digest = hashing.new_hash("blake3-blocks")
    digest.update(data)
    assert digest.hexdigest() == blocks_reference(data)
    assert len(digest.hexdigest()) == 64


def test_blake3_blocks_does_not_depend_on_chunking_or_on_how_zeros_arrive():
    block = 4 << 20
    data = (os.urandom(block + 100) + bytes(3 * block - 100 + 7) + os.urandom(block)
            + bytes(2 * block) + b"\x01" + bytes(block))
    want = blocks_reference(data)
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
        assert digest.hexdigest() == blocks_reference(bytes(changed)) != blocks_reference(zeros)


def test_update_zeros_equals_hashing_zeros_for_plain_digests():
    digest = hashing.new_hash("sha256")
    digest.update(b"x")
    hashing.update_zeros(digest, (5 << 20) + 3)
    assert digest.hexdigest() == hashlib.sha256(b"x" + bytes((5 << 20) + 3)).hexdigest()


def test_blake3_blocks_is_a_usable_algorithm_name():
    check_algorithm("blake3-blocks")
