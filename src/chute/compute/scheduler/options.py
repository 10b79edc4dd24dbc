"""`[filter_scheduler]` options: Nova's names where Nova has the option, chute's own for the
image weighers Nova lacks. The compute API's schema includes SECTIONS."""

from __future__ import annotations

from dataclasses import dataclass, field

from chute.compute.scheduler import filters
from chute.compute.scheduler.weighers import Multipliers
from chute.config import Config, Opt, Schema


def _check_filters(names: list[str]) -> None:
    unknown = [name for name in names if name not in filters.OPTIONAL]
    if unknown:
        raise ValueError(f"unknown filter {', '.join(unknown)} (chute has: "
                         f"{', '.join(filters.OPTIONAL)})")


SECTIONS: Schema = {
    "filter_scheduler": [
        Opt("enabled_filters", "list", list(filters.DEFAULT_ENABLED),
            "Filters a host must pass, by Nova's names (ComputeFilter: the compute service is "
            "enabled and up; AvailabilityZoneFilter). VCPU, RAM and disk are always counted "
            "with the hosts' allocation ratios, as Nova's placement does.",
            check=_check_filters),
        Opt("host_subset_size", "int", 1,
            "Pick the host at random among this many best weighed hosts (Nova's option; 1: "
            "always the best). Above 1, boots scheduled at the same moment by several API "
            "workers spread over the hosts instead of all claiming the best one.", min=1),
        Opt("ram_weight_multiplier", "float", 1.0,
            "Weight of a host's free RAM fraction (Nova's option): positive spreads servers, "
            "negative stacks them."),
        Opt("image_cached_weight_multiplier", "float", 0.2,
            "Bonus of a host that has the image in its _base (chute's option): it is "
            "preferred until this fraction of its RAM fuller than another host."),
        Opt("image_filesystem_weight_multiplier", "float", 0.1,
            "Bonus of a host mounting a filesystem that holds the image, so it copies "
            "directly instead of over HTTP (chute's option)."),
    ],
}


@dataclass(frozen=True)
class SchedulerOptions:
    enabled_filters: tuple[str, ...] = filters.DEFAULT_ENABLED
    multipliers: Multipliers = field(default_factory=Multipliers)
    host_subset_size: int = 1

    @classmethod
    def from_config(cls, conf: Config) -> SchedulerOptions:
        section = conf.typed("filter_scheduler")
        values = conf.section("filter_scheduler")
        return cls(section.strings("enabled_filters"),
                   Multipliers(float(values["ram_weight_multiplier"]),
                               float(values["image_cached_weight_multiplier"]),
                               float(values["image_filesystem_weight_multiplier"])),
                   int(values["host_subset_size"]))
