"""How hosts that passed the filters rank: a weighted sum, as Nova's weighers, of

- free RAM (Nova's RAMWeigher, `ram_weight_multiplier`; positive spreads, negative stacks),
- the image already in the host's `_base` (chute's `image_cached_weight_multiplier`): the boot
  copies nothing,
- a mount of a filesystem holding a location of the image (chute's
  `image_filesystem_weight_multiplier`): the boot copies directly, not over HTTP.

Each weigher gives a value in [0, 1] that the multiplier scales. Free RAM is the host's free
fraction of its allocatable RAM (Nova normalises the free MB between the hosts' minimum and
maximum instead); a fraction keeps the image bonuses meaningful: with the defaults a host that
has the image cached is preferred until it is 20% of its RAM fuller than a host without it, so
one boot goes where it is fastest and a storm of boots still spreads over every host (each copy
is paid once per host).
"""

from __future__ import annotations

from dataclasses import dataclass

from chute.compute.host_state import HostState, RequestSpec


@dataclass(frozen=True)
class Multipliers:
    ram: float = 1.0
    image_cached: float = 0.2
    image_filesystem: float = 0.1


@dataclass(frozen=True)
class Weighed:
    weight: float
    reasons: tuple[str, ...]


def free_ram_fraction(host: HostState) -> float:
    allocatable = host.memory_mb * host.ram_allocation_ratio
    if allocatable <= 0:
        return 0.0
    return max(0.0, min(1.0, (allocatable - host.memory_mb_used) / allocatable))


def weigh(spec: RequestSpec, host: HostState, multipliers: Multipliers) -> Weighed:
    free = free_ram_fraction(host)
    weight = multipliers.ram * free
    allocatable = int(host.memory_mb * host.ram_allocation_ratio)
    reasons = [f"free RAM {allocatable - host.memory_mb_used} of {allocatable} MB "
               f"({free:.0%}): {multipliers.ram * free:+.3f}"]
    if spec.image_id in host.cached_images:
        weight += multipliers.image_cached
        reasons.append(f"image {spec.image_id} is in its _base, nothing to copy: "
                       f"{multipliers.image_cached:+.3f}")
    shared = sorted(spec.image_filesystem_ids & host.filesystem_ids)
    if shared:
        weight += multipliers.image_filesystem
        reasons.append(f"mounts filesystem {', '.join(shared)} holding the image, a direct "
                       f"copy: {multipliers.image_filesystem:+.3f}")
    elif spec.image_id not in host.cached_images:
        reasons.append("has neither the image cached nor a filesystem holding it: "
                       "it would download over HTTP")
    return Weighed(weight, tuple(reasons))
