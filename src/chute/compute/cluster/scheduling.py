"""The one place the compute API's scheduler is made (h-sched's FilterScheduler, in
chute.compute.scheduler, replaces the stand-in here)."""

from __future__ import annotations

from collections.abc import Sequence

from chute.compute.host_state import Choice, HostState, Rejection, RequestSpec, Scheduler, Selection


class SpreadScheduler:
    """Nova's essential filters (enabled, alive, not tried, zone, room by allocation ratios)
    and a spread weigher (fewest servers first)."""

    def select(self, spec: RequestSpec, hosts: Sequence[HostState]) -> Selection:
        choices, rejections = [], []
        for host in hosts:
            reason = _rejection(spec, host)
            if reason is None:
                choices.append(Choice(host, -float(host.running_instances),
                                      (f"{host.running_instances} servers",)))
            else:
                rejections.append(Rejection(host.host, reason[0], reason[1]))
        choices.sort(key=lambda c: (-c.weight, c.host.host))
        return Selection(tuple(choices), tuple(rejections))


def _rejection(spec: RequestSpec, host: HostState) -> tuple[str, str] | None:
    if host.host in spec.ignore_hosts:
        return "RetryFilter", "already tried for this server"
    if not host.enabled or host.forced_down or not host.alive:
        return "ComputeFilter", "disabled or down"
    if spec.availability_zone and host.availability_zone != spec.availability_zone:
        return "AvailabilityZoneFilter", f"in zone {host.availability_zone}"
    if host.vcpus_used + spec.vcpus > host.vcpus * host.cpu_allocation_ratio:
        return "VCPUFilter", "not enough vCPUs"
    if host.memory_mb_used + spec.memory_mb > host.memory_mb * host.ram_allocation_ratio:
        return "RamFilter", "not enough RAM"
    if host.disk_gb_used + spec.disk_gb > host.disk_gb * host.disk_allocation_ratio:
        return "DiskFilter", "not enough disk"
    return None


def make_scheduler() -> Scheduler:
    return SpreadScheduler()
