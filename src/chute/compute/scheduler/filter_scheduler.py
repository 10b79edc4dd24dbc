"""The scheduler: filters, then weighers, over the registry's HostStates. Pure, so any compute
API node gives the same answer for the same data, and every answer carries its reasons."""

from __future__ import annotations

from collections.abc import Sequence

from chute.compute.host_state import Choice, HostState, Rejection, RequestSpec, Selection
from chute.compute.scheduler import filters, weighers
from chute.compute.scheduler.options import SchedulerOptions


class FilterScheduler:
    """Nova's FilterScheduler, with image-aware weighers (weighers.py)."""

    def __init__(self, options: SchedulerOptions | None = None) -> None:
        self.options = options or SchedulerOptions()
        self.filters = filters.chosen(self.options.enabled_filters)

    def select(self, spec: RequestSpec, hosts: Sequence[HostState]) -> Selection:
        choices: list[Choice] = []
        rejections: list[Rejection] = []
        for host in hosts:
            rejection = self._reject(spec, host)
            if rejection is not None:
                rejections.append(rejection)
                continue
            weighed = weighers.weigh(spec, host, self.options.multipliers)
            choices.append(Choice(host, weighed.weight, weighed.reasons))
        # Highest weight first; ties by host name so every API node orders alike.
        choices.sort(key=lambda choice: (-choice.weight, choice.host.host))
        return Selection(tuple(choices), tuple(rejections))

    def _reject(self, spec: RequestSpec, host: HostState) -> Rejection | None:
        for name, host_filter in self.filters:
            reason = host_filter(spec, host)
            if reason is not None:
                return Rejection(host.host, name, reason)
        return None
