"""The classic Nova flavor table, fixed in code.

chute-compute is one agent per host with no scheduler, so flavors are not a managed resource:
the five flavors Nova seeded until Newton (docs/architecture.md#nova-flavors) are what clients and
scripts written for Nova expect to find (`--flavor 2` = m1.small).
"""

from __future__ import annotations

from dataclasses import dataclass

from chute.errors import FlavorNotFound


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # root disk, GiB

    @property
    def root_bytes(self) -> int:
        return self.disk << 30


FLAVORS: dict[str, Flavor] = {
    f.id: f
    for f in (
        Flavor("1", "m1.tiny", 1, 512, 1),
        Flavor("2", "m1.small", 1, 2048, 20),
        Flavor("3", "m1.medium", 2, 4096, 40),
        Flavor("4", "m1.large", 4, 8192, 80),
        Flavor("5", "m1.xlarge", 8, 16384, 160),
    )
}


def get(flavor_ref: str) -> Flavor:
    """Look a flavor up by id; a flavorRef may also be a URL ending in the id, as in Nova."""
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    try:
        return FLAVORS[flavor_id]
    except KeyError:
        raise FlavorNotFound(f"Flavor {flavor_id} could not be found.") from None


def all_flavors() -> list[Flavor]:
    return list(FLAVORS.values())
