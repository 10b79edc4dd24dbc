"""The scheduler: filters, then weighers, over the registry's HostStates. Pure, so any compute
API node gives the same answer for the same data, and every answer carries its reasons."""

from __future__ import annotations

import random
from collections.abc import Sequence

from chute.compute.host_state import Choice, HostState, Rejection, RequestSpec, Selection
from chute.compute.scheduler import filters, weighers
from chute.compute.scheduler.options import SchedulerOptions


class FilterScheduler:
    """Nova's FilterScheduler, with image-aware weighers (weighers.py)."""

    def __init__(self, options: SchedulerOptions | None = None,
                 rng: random.Random | None = None) -> None:
        self.options = options or SchedulerOptions()
        self.filters = filters.chosen(self.options.enabled_filters)
        self.rng = rng or random.Random()  # noqa: S311 (spreading load, not a secret)

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
        size = self.options.host_subset_size
        return Selection(pick_from_subset(tuple(choices), size, self.rng), tuple(rejections),
                         size)

    def _reject(self, spec: RequestSpec, host: HostState) -> Rejection | None:
        for name, host_filter in self.filters:
            reason = host_filter(spec, host)
            if reason is not None:
                return Rejection(host.host, name, reason)
        return None


def pick_from_subset(choices: tuple[Choice, ...], size: int, rng: random.Random
                     ) -> tuple[Choice, ...]:
    """Nova's `host_subset_size`: the first host drawn at random among the best `size`, the
    others after it in weighed order (the alternates a failed claim falls back on).

    Why: every API worker scheduling at the same moment reads the same registry, so with
    the best host always first, concurrent boots all claim it (12 concurrent boots on 3
    hosts were placed 8/4/0); a random pick among the best few spreads them."""
    if size <= 1 or len(choices) <= 1:
        return choices
    first = rng.randrange(min(size, len(choices)))
    return (choices[first], *choices[:first], *choices[first + 1:])
