"""The compute API's scheduling and operators' views, built in one place for
chute-compute-api (compute/cluster/main.py calls `make_scheduler` and `add_routes`).

- `make_scheduler`: the FilterScheduler with `[filter_scheduler]`'s options, recording each
  decision (placements.py) with the aggregates' zones and the image's filesystems applied. It
  runs before the workers start, so every table of this area is created once here.
- `add_routes`: os-services, os-hypervisors, os-aggregates (and 2.81 pre-caching) on the
  compute API, under Nova's admin-only policy rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chute import httpapi
from chute.auth.options import AuthSettings
from chute.auth.policy import COMPUTE_RULES, for_service
from chute.compute import api_aggregates, api_hypervisors, api_services, precache, services
from chute.compute.aggregates import Aggregates
from chute.compute.fetch.candidates import candidates
from chute.compute.host_state import Scheduler
from chute.compute.image_service import ImageService
from chute.compute.placements import PlacementLog, RecordingScheduler
from chute.compute.precache import Precache
from chute.compute.scheduler import FilterScheduler, SchedulerOptions
from chute.compute.services import Services
from chute.config import Config
from chute.errors import BadComputeRequest, ChuteError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from chute.compute.cluster.service import ClusterService

LOG = logging.getLogger(__name__)


FILESYSTEMS_TTL = 10.0  # seconds an image's filesystems are reused by the next boots


def image_filesystems(images: ImageService) -> Callable[[str], frozenset[str]]:
    """The ids of the shared filesystems holding a location of an image (its locations'
    metadata `id`), for the image weigher; none when the image service cannot say. A boot
    storm of one image asks the image service once per FILESYSTEMS_TTL, not once per boot
    (a location added meanwhile, by copy-image, only weighs from the next ask)."""
    known: dict[str, tuple[float, frozenset[str]]] = {}
    guard = threading.Lock()

    def ask(image_id: str) -> frozenset[str]:
        try:
            found = candidates(images.get(image_id), images)
        except ChuteError as exc:
            LOG.info("Filesystems of image %s unknown: %s", image_id, exc.message)
            return frozenset()
        return frozenset(fs for fs in (loc.metadata.get("id") for loc in found)
                         if isinstance(fs, str) and fs)

    def ids(image_id: str) -> frozenset[str]:
        now = time.monotonic()
        with guard:
            hit = known.get(image_id)
        if hit is not None and now - hit[0] < FILESYSTEMS_TTL:
            return hit[1]
        found = ask(image_id)
        with guard:
            for stale in [k for k, (when, _) in known.items() if now - when >= FILESYSTEMS_TTL]:
                del known[stale]
            known[image_id] = (now, found)
        return found

    return ids


def make_scheduler(conf: Config, engine: Engine, images: ImageService) -> Scheduler:
    precache.create_tables(engine)
    services.create_tables(engine)
    return RecordingScheduler(FilterScheduler(SchedulerOptions.from_config(conf)),
                              PlacementLog(engine), Aggregates(engine),
                              image_filesystems(images))


def add_routes(app: httpapi.App, cluster: ClusterService, auth: AuthSettings) -> Precache:
    """The operators' views; returns the pre-caching, whose agents' side the internal
    endpoints serve (compute/cluster/internal_api.py)."""
    policy = for_service(COMPUTE_RULES, auth.strategy, auth.policy_file)
    registry = cluster.registry
    aggregates = Aggregates(registry.engine)
    precaching = Precache(registry.engine, registry, aggregates, cluster.agents, cluster.client)
    hosts = Services(registry, aggregates.zones,
                     forget=(aggregates.forget_host, precaching.forget_host))
    api_services.add_routes(app, hosts, policy)
    api_hypervisors.add_routes(app, hosts, precaching, policy)
    api_aggregates.add_routes(app, aggregates, precaching, policy,
                              lambda host: registry.host(host) is not None)
    return precaching


def explain_command(url: str, words: list[str]) -> str:
    """`chute-compute-api explain SERVER`: the recorded placement of SERVER, or a ChuteError
    naming the problem (the caller prints it as one line)."""
    from chute.compute.cluster.registry import Registry
    from chute.compute.db import make_engine

    if len(words) != 2 or words[0] != "explain":
        raise BadComputeRequest(f"unknown command {' '.join(words)!r} (use: explain SERVER)")
    engine = make_engine(url)
    try:
        placement = Registry(engine, 0).placement(words[1])
        return PlacementLog(engine).explain(words[1], placement.host if placement else None)
    finally:
        engine.dispose()
