"""Image pre-caching (Nova 2.81, `POST /os-aggregates/{id}/images`): every host of an aggregate
fetches the images into its `_base` ahead of a boot storm, so the boots copy nothing.

The request is checked (the aggregate and every image exist) and answered at once, as Nova's
202; a background thread asks each host's agent (`POST /internal/v1/images/{id}/precache`,
which fetches through the agent's image cache) and records, per host and image, when it was
asked. Each ask carries the row's `request_id`; the agent reports its fetch's outcome with it
(`PUT /internal/v1/hosts/{host}/precache/{image_id}`), so an outcome lands on the request it
answers and never on a newer one. The host's heartbeat answer resends what is still pending
there (`pending`), so an agent restarted mid-fetch runs it again instead of leaving it
`requested`. Nova has no view of the progress (its operators read
notifications); here `progress(host)` gives it, and the hosts' views show it
(os-hypervisors show and detail, `chute host-show`): `cached` as soon as the host's heartbeat
lists the image in its `_base`, `failed` with the reason (the host is not registered, or its
fetch failed: the image and the cause), else `requested` (the agent is fetching, or could
not be asked yet: the detail says so, and its next heartbeat's answer asks it).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from chute.client.image import Image
from chute.compute import db
from chute.compute.aggregates import Aggregates
from chute.compute.cluster.registry import Registry
from chute.compute.host_state import HostState
from chute.errors import BadComputeRequest, ChuteError, RemoteError

LOG = logging.getLogger(__name__)

REQUESTED, CACHED, FAILED = "requested", "cached", "failed"

_metadata = MetaData()

image_precache = Table(
    "image_precache", _metadata,
    Column("host", String(255), primary_key=True),
    Column("image_id", String(36), primary_key=True),
    Column("requested_at", DateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    Column("request_id", String(36)),  # sent to the agent, which reports the outcome with it
)


class Agents(Protocol):
    def precache(self, agent_url: str, image_id: str, request_id: str) -> None: ...


class Images(Protocol):
    def get(self, image_id: str, token: str | None = None) -> Image: ...


@dataclass(frozen=True)
class Progress:
    image_id: str
    status: str  # requested | cached | failed
    requested_at: datetime
    detail: str | None = None


def create_tables(engine: Engine) -> None:
    db.create_tables(engine, _metadata)
    with db.schema_transaction(engine) as conn:  # a database made before request_id
        db.add_missing_columns(conn, image_precache)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Precache:
    def __init__(self, engine: Engine, registry: Registry, aggregates: Aggregates,
                 agents: Agents, images: Images) -> None:
        self.engine = engine
        self.registry = registry
        self.aggregates = aggregates
        self.agents = agents
        self.images = images
        create_tables(engine)

    def request(self, aggregate_id: str, cache: object, token: str | None = None
                ) -> threading.Thread:
        """Check the request, then ask the aggregate's hosts in the background (returned)."""
        image_ids = _image_ids(cache)
        aggregate = self.aggregates.get(aggregate_id)
        for image_id in image_ids:
            self._check_image(image_id, token)
        now = _now()
        asked = {(host, image_id): str(uuid.uuid4())
                 for host in aggregate.hosts for image_id in image_ids}
        with self.engine.begin() as conn:
            for host in aggregate.hosts:
                conn.execute(delete(image_precache).where(image_precache.c.host == host,
                                                          image_precache.c.image_id.in_(
                                                              image_ids)))
                conn.execute(insert(image_precache), [
                    {"host": host, "image_id": image_id, "requested_at": now,
                     "outcome": REQUESTED, "request_id": asked[host, image_id]}
                    for image_id in image_ids])
        LOG.info("Pre-caching images %s on aggregate %s: hosts %s", ", ".join(image_ids),
                 aggregate.name, ", ".join(aggregate.hosts) or "none")
        worker = threading.Thread(target=self._dispatch, args=(aggregate.hosts, image_ids, asked),
                                  name=f"precache-{aggregate.id}", daemon=True)
        worker.start()
        return worker

    def progress(self, host: HostState) -> list[Progress]:
        """The host's pre-caching, as of its last heartbeat's `_base`."""
        cached = host.cached_images
        with self.engine.connect() as conn:
            rows = conn.execute(select(image_precache).where(image_precache.c.host == host.host)
                                .order_by(image_precache.c.requested_at,
                                          image_precache.c.image_id)).all()
        return [Progress(row.image_id, CACHED if row.image_id in cached else row.outcome,
                         row.requested_at, None if row.image_id in cached else row.detail)
                for row in rows]

    def pending(self, host: str, cached: frozenset[str]) -> list[dict[str, str]]:
        """The host's pre-caches still to run, for its heartbeat's answer (as builds are
        resent): asked, not failed, and not in the `_base` it just reported. The agent runs
        each request once per process, so a resend only matters to one that was restarted
        or never got the ask."""
        c = image_precache.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.image_id, c.request_id).where(
                c.host == host, c.outcome == REQUESTED, c.request_id.is_not(None))).all()
        return [{"image_id": row.image_id, "request_id": row.request_id}
                for row in rows if row.image_id not in cached]

    def forget_host(self, host: str) -> None:
        """The host's compute service was deleted: its progress rows go with it."""
        with self.engine.begin() as conn:
            conn.execute(delete(image_precache).where(image_precache.c.host == host))

    def _check_image(self, image_id: str, token: str | None) -> None:
        try:
            image = self.images.get(image_id, token)
        except RemoteError as exc:
            if exc.status == 404:
                raise BadComputeRequest(f"Image {image_id} could not be found.") from None
            raise
        if image.status != "active":
            raise BadComputeRequest(f"Image {image_id} is not active (status {image.status}).")

    def outcome(self, host: str, image_id: str, request_id: str, status: str,
                detail: str | None) -> bool:
        """An agent's report of one fetch, applied only to the request it answers while that
        is still pending (False otherwise: a newer request, or none). `failed` is kept with
        its reason. `cached` changes nothing: the host shows `cached` once its heartbeat
        lists the image in its `_base`, which is what the scheduler weighs too, so the view
        never says cached before the scheduler knows it (and says so no more once the image
        cache's cleanup removed it)."""
        if status not in (CACHED, FAILED):
            raise BadComputeRequest(f"Field 'status' must be {CACHED} or {FAILED}, not "
                                    f"{status!r}.")
        c = image_precache.c
        pending = and_(c.host == host, c.image_id == image_id, c.request_id == request_id,
                       c.outcome == REQUESTED)
        with self.engine.begin() as conn:
            if status == CACHED:
                return conn.execute(select(c.host).where(pending)).first() is not None
            LOG.warning("Pre-caching image %s on host %s failed: %s", image_id, host, detail)
            return conn.execute(update(image_precache).where(pending)
                                .values(outcome=FAILED, detail=detail)).rowcount == 1

    def _dispatch(self, hosts: Sequence[str], image_ids: Sequence[str],
                  asked: dict[tuple[str, str], str]) -> None:
        for host in hosts:
            state = self.registry.host(host)
            for image_id in image_ids:
                if state is None:
                    self._failed(host, image_id, "the host is not registered")
                    continue
                try:
                    self.agents.precache(state.agent_url, image_id, asked[host, image_id])
                except ChuteError as exc:
                    # Still pending: the host's next heartbeat answer resends it (a host
                    # down for maintenance fetches the image when it is back).
                    LOG.warning("Pre-caching image %s on host %s: the agent could not be "
                                "asked (%s); asked again at its next heartbeat", image_id,
                                host, exc.message)
                    self._note(host, image_id, f"the agent could not be asked ({exc.message}); "
                                               "asked again at its next heartbeat")

    def _failed(self, host: str, image_id: str, detail: str) -> None:
        self._note(host, image_id, detail, FAILED)

    def _note(self, host: str, image_id: str, detail: str, outcome: str = REQUESTED) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(image_precache).where(image_precache.c.host == host,
                                                      image_precache.c.image_id == image_id,
                                                      image_precache.c.outcome == REQUESTED)
                         .values(outcome=outcome, detail=detail))


def _image_ids(cache: object) -> list[str]:
    """Nova's schema of the request body's `cache`: 1+ objects `{"id": image_id}`, unique."""
    if not isinstance(cache, list) or not cache:
        raise BadComputeRequest("Invalid input for field/attribute cache: a non-empty list of "
                                "{\"id\": IMAGE_ID} objects is required.")
    ids: list[str] = []
    for item in cache:
        if not isinstance(item, dict) or set(item) != {"id"} or not isinstance(item["id"], str):
            raise BadComputeRequest(f"Invalid input for field/attribute cache: {item!r} is not "
                                    "an object {\"id\": IMAGE_ID}.")
        if item["id"] in ids:
            raise BadComputeRequest(f"Invalid input for field/attribute cache: image "
                                    f"{item['id']} is listed twice.")
        ids.append(item["id"])
    return ids
