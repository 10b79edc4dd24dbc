"""Which hosts may take a boot: Nova's filters where they apply, each a pure function that
says why it refuses a host (None: the host passes).

The resource checks are not filters in Nova (since Stein placement does them when it claims),
so they are always applied, the way placement counts: a host has room for a request when
`used + requested <= total * allocation_ratio` and no single server asks for more than the host
has (placement's `max_unit`, the host's total). The filters Nova lets an operator choose
(`[filter_scheduler] enabled_filters`) are ComputeFilter and AvailabilityZoneFilter; the hosts
a build already failed on (`RequestSpec.ignore_hosts`, Nova's retry) are always skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chute.compute.host_state import HostState, RequestSpec

HostFilter = Callable[[RequestSpec, HostState], "str | None"]


def compute_filter(spec: RequestSpec, host: HostState) -> str | None:
    """Nova's ComputeFilter: the host's compute service is enabled and up."""
    if host.forced_down:
        return "its compute service is forced down (os-services)"
    if not host.alive:
        return "no heartbeat within service_down_time: its compute service is down"
    if not host.enabled:
        reason = f": {host.disabled_reason}" if host.disabled_reason else ""
        return f"its compute service is disabled{reason}"
    return None


def availability_zone_filter(spec: RequestSpec, host: HostState) -> str | None:
    """Nova's AvailabilityZoneFilter: a boot asking for a zone goes to a host of that zone."""
    if spec.availability_zone is None or spec.availability_zone == host.availability_zone:
        return None
    return (f"it is in availability zone {host.availability_zone!r}, the server asked for "
            f"{spec.availability_zone!r}")


def _resource(name: str, unit: str, requested: int, used: int, total: int,
              ratio: float) -> str | None:
    capacity = int(total * ratio)
    if requested > total:
        return (f"{name}: the server asks for {requested}{unit}, more than the host's "
                f"{total}{unit} in total (placement's max_unit)")
    if used + requested > capacity:
        return (f"{name}: {used}{unit} used + {requested}{unit} asked > {capacity}{unit} "
                f"allocatable ({total}{unit} x allocation ratio {ratio:g})")
    return None


def vcpu_filter(spec: RequestSpec, host: HostState) -> str | None:
    return _resource("VCPU", "", spec.vcpus, host.vcpus_used, host.vcpus,
                     host.cpu_allocation_ratio)


def memory_filter(spec: RequestSpec, host: HostState) -> str | None:
    return _resource("MEMORY_MB", " MB", spec.memory_mb, host.memory_mb_used, host.memory_mb,
                     host.ram_allocation_ratio)


def disk_filter(spec: RequestSpec, host: HostState) -> str | None:
    return _resource("DISK_GB", " GB", spec.disk_gb, host.disk_gb_used, host.disk_gb,
                     host.disk_allocation_ratio)


def ignore_hosts_filter(spec: RequestSpec, host: HostState) -> str | None:
    if host.host in spec.ignore_hosts:
        return "this build already failed on it (a retry goes to another host)"
    return None


# The filters an operator chooses, by Nova's names.
OPTIONAL: Mapping[str, HostFilter] = {
    "ComputeFilter": compute_filter,
    "AvailabilityZoneFilter": availability_zone_filter,
}
DEFAULT_ENABLED = ("ComputeFilter", "AvailabilityZoneFilter")
# Always applied, after the chosen ones: the retry's exclusions, then placement's counting.
ALWAYS: tuple[tuple[str, HostFilter], ...] = (
    ("RetryFilter", ignore_hosts_filter),
    ("Placement", vcpu_filter),
    ("Placement", memory_filter),
    ("Placement", disk_filter),
)


def chosen(names: tuple[str, ...]) -> tuple[tuple[str, HostFilter], ...]:
    """The filters to run, in order: the enabled ones by name (names checked by the options),
    then the ones that always apply."""
    return (*((name, OPTIONAL[name]) for name in names), *ALWAYS)
