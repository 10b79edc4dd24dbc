"""Is this chunk all zeros? Then a writer can leave a hole instead of writing it.

Raw images are mostly holes (a 4 GiB disk holding 512 MiB of data). A stream - an upload
body, an HTTP download - carries the holes as zeros; writing them allocates every block and
makes the next SEEK_DATA-driven copy move them all. Writers that lseek/pwrite past all-zero
chunks and ftruncate to the full size at the end store the same bytes, sparsely.
Measured by bench/ (sparse scenario, 4 GiB virtual with 512 MiB data): 4096 MiB allocated
and a boot 12x slower than the dense 512 MiB image, before.
"""

from __future__ import annotations

_ZEROS = bytes(4 << 20)


def all_zero(chunk: bytes | memoryview) -> bool:
    """True for a non-empty chunk of zeros. Random data is rejected in O(1); a zero chunk
    costs one memcmp (~16 GB/s here)."""
    size = len(chunk)
    if not size or chunk[0] or chunk[-1]:
        return False
    data = chunk if isinstance(chunk, bytes) else bytes(chunk)
    return data == (_ZEROS if size == len(_ZEROS) else bytes(size))
