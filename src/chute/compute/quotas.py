"""Nova's quotas per project: instances, cores and RAM, counted from the servers themselves.

As in Nova since Pike ("counted quotas"), there is no usage table to drift: what a project
uses is what its servers' flavors add up to. The limits are the `[quota]` defaults (Nova's
names and values) unless an admin set a project's own (`PUT os-quota-sets/{project_id}`),
which this module stores in its `quotas` table of the agent's state database.

A boot is checked and its servers recorded under one lock (`Quotas.claim`, the project's
`compute.db.serialized` lock, shared by every worker and node of the database), so two
concurrent boots cannot both see the last free instance. Nova's arithmetic is kept,
min_count/max_count included: a request that does not fit at max_count but fits at some count >=
min_count boots that many; otherwise 403 with Nova's message ("Quota exceeded for instances:
Requested 3, but already used 9 of 10 instances"). A caller with no project (auth_strategy =
noauth) is not limited: there is no project to count against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import Engine

from chute.compute import flavors
from chute.compute.db import create_tables, serialized
from chute.compute.flavors import Flavor
from chute.errors import BadComputeRequest, ComputeQuotaExceeded

UNLIMITED = -1
RESOURCES = ("instances", "cores", "ram")  # the ones a boot counts; settable per project
# Nova's [quota] defaults for what a boot counts; -1 is unlimited.
DEFAULTS: dict[str, int] = {"instances": 10, "cores": 20, "ram": 51200}

_metadata = MetaData()
quotas = Table(
    "quotas", _metadata,
    Column("project_id", String(255), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)


@dataclass(frozen=True)
class Usage:
    """What a project's servers add up to."""

    instances: int = 0
    cores: int = 0
    ram: int = 0

    def of(self, resource: str) -> int:
        return int(getattr(self, resource))


def usage_of(flavor_counts: Mapping[str, int]) -> Usage:
    """What servers add up to, from how many there are of each flavor. The servers of a flavor
    deleted since count as instances only: unlike Nova, which keeps a copy of the flavor in
    each instance, a server here records only its flavor's id."""
    cores = ram = 0
    for flavor_id, count in flavor_counts.items():
        flavor = flavors.find(flavor_id)
        if flavor is not None:
            cores += flavor.vcpus * count
            ram += flavor.ram * count
    return Usage(sum(flavor_counts.values()), cores, ram)


def _fits(limit: int, used: int, wanted: int) -> bool:
    return limit == UNLIMITED or used + wanted <= limit


class Quotas:
    """The limits of each project and the check of a boot against them."""

    def __init__(self, engine: Engine, defaults: Mapping[str, int],
                 flavor_counts: Callable[[str | None], Mapping[str, int]]) -> None:
        self.engine = engine
        self.defaults = {name: defaults.get(name, DEFAULTS[name]) for name in RESOURCES}
        self._flavor_counts = flavor_counts
        create_tables(engine, _metadata)

    def limits(self, project_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(quotas.c.resource, quotas.c.hard_limit)
                                .where(quotas.c.project_id == project_id)).all()
        return {**self.defaults, **{r.resource: r.hard_limit for r in rows
                                    if r.resource in self.defaults}}

    def usage(self, project_id: str | None) -> Usage:
        """What `project_id`'s servers use (every server's, for None)."""
        return usage_of(self._flavor_counts(project_id))

    def update(self, project_id: str, values: Mapping[str, int], force: bool) -> None:
        """Set a project's own limits; lower than what it uses is refused unless `force`
        (Nova's rule)."""
        if not force:
            used = self.usage(project_id)
            for name, limit in values.items():
                if limit != UNLIMITED and limit < used.of(name):
                    raise BadComputeRequest(
                        f"Quota limit {limit} for {name} must be greater than or equal to "
                        f"already used and reserved {used.of(name)}.")
        with self.engine.begin() as conn:
            for name, limit in values.items():
                conn.execute(delete(quotas).where(quotas.c.project_id == project_id,
                                                  quotas.c.resource == name))
                conn.execute(insert(quotas).values(project_id=project_id, resource=name,
                                                   hard_limit=limit))

    def reset(self, project_id: str) -> None:
        """Back to the defaults (Nova's DELETE os-quota-sets/{project_id})."""
        with self.engine.begin() as conn:
            conn.execute(delete(quotas).where(quotas.c.project_id == project_id))

    @contextmanager
    def claim(self, project_id: str | None, flavor: Flavor, min_count: int,
              max_count: int) -> Iterator[int]:
        """How many servers (min..max) the project may boot now; the caller records them
        before leaving the block, while no other boot can count."""
        if project_id is None:
            yield max_count
            return
        with serialized(self.engine, f"quota:{project_id}"):
            yield self._allowed(project_id, flavor, min_count, max_count)

    def _allowed(self, project_id: str, flavor: Flavor, min_count: int, max_count: int) -> int:
        limits, used = self.limits(project_id), self.usage(project_id)
        per_server = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.ram}
        if all(_fits(limits[r], used.of(r), per_server[r] * max_count) for r in RESOURCES):
            return max_count
        allowed = max_count
        for resource in RESOURCES:
            if limits[resource] != UNLIMITED and per_server[resource]:
                headroom = max(limits[resource] - used.of(resource), 0)
                allowed = min(allowed, headroom // per_server[resource])
        if allowed >= min_count:
            return allowed
        raise ComputeQuotaExceeded(_too_many(limits, used, per_server, min_count, max_count))


def _too_many(limits: Mapping[str, int], used: Usage, per_server: Mapping[str, int],
              min_count: int, max_count: int) -> str:
    """Nova's TooManyInstances message, resources over their limit in Nova's order."""
    over = [r for r in RESOURCES
            if not _fits(limits[r], used.of(r), per_server[r] * max_count)]
    over.sort()
    requested = {"instances": str(min_count) if min_count == max_count
                 else f"{min_count}-{max_count}",
                 "cores": str(per_server["cores"] * max_count),
                 "ram": str(per_server["ram"] * max_count)}
    names = ", ".join(over)
    reqs = ", ".join(requested[r] for r in over)
    useds = ", ".join(str(used.of(r)) for r in over)
    alloweds = ", ".join(str(limits[r]) for r in over)
    return (f"Quota exceeded for {names}: Requested {reqs}, but already used {useds} of "
            f"{alloweds} {names}")
