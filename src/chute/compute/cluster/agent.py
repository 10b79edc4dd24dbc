"""chute-compute as an agent of a compute API (`[compute_api] url` set).

The agent keeps its own instance store (host-local SQLite) and no credentials of the compute
database. It reports to the compute API over HTTP:

- at start and every `report_interval`: PUT /internal/v1/hosts/{host} with its resources, the
  filesystem ids it mounts, the images in its `_base` and every instance it holds; the answer
  lists the builds it must run (resent if it lacks them, e.g. after a restart: builds are
  never resumed on its own) and the guests it must destroy (deleted, or moved elsewhere
  while it was away), so no guest runs twice;
- each state change of an instance, from a thread of its own: PUT
  /internal/v1/hosts/{host}/states with every instance whose state changed since the last
  such request, each once, in its newest state (a build goes BUILD/spawning, then ACTIVE in
  a few milliseconds with the fake driver: the API is told ACTIVE, in the same request as
  its neighbours', and never writes the steps in between). An answer that one is not placed
  here any more destroys its local copy. A report that fails is not retried: the next
  heartbeat carries the same state.
- each pre-cache's outcome: PUT /internal/v1/hosts/{host}/precache/{image_id}, cached or
  failed with the reason. The heartbeat does not carry these, so one that could not be sent
  is sent again after each heartbeat until the compute API has it. The heartbeat's answer
  resends the pre-caches still pending on this host (`precache`), as it resends builds: one
  this process has not run (it was restarted, or the compute API's ask was lost) is run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chute.compute.cluster import wire
from chute.compute.cluster.dispatch import ComputeApiClient
from chute.compute.instance import Instance
from chute.compute.manager import ComputeManager
from chute.compute.settings import AgentIdentity
from chute.errors import ChuteError

LOG = logging.getLogger(__name__)


def as_of() -> str:
    """When a state was read, to the microsecond: the compute API applies an instance's
    reports in this order (`updated` has whole seconds, as Nova's)."""
    return datetime.now(UTC).isoformat()


def cached_image_ids(base_dir: str) -> frozenset[str]:
    """Image ids whose base in `_base` was verified (each has a `.info` naming its image)."""
    found = set()
    for info in Path(base_dir).glob("*.info"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found.add(str(json.loads(info.read_text())["image_id"]))
    return frozenset(found)


# How long the state-reports thread lets states gather before it sends them: a build's steps
# (attempt counted, spawning, copied, ACTIVE) are saved within milliseconds of each other with
# the fake driver or a cached image, so one request carries its newest and its neighbours'.
REPORT_DELAY = 0.05

# (image id, the compute API's request id, "cached" | "failed", why it failed)
PrecacheReport = Callable[[str, str, str, str | None], None]


class Precacher:
    """Pre-caching on this host (Nova 2.81): fetch an image into `_base` on a build worker,
    then report the outcome; each request of the compute API runs once per process, however
    often it is asked (its POST, then the heartbeats' resends until `_base` lists it)."""

    def __init__(self, manager: ComputeManager, report: PrecacheReport) -> None:
        self.manager = manager
        self.report = report
        self._accepted: set[str] = set()  # request ids run or queued by this process
        self._guard = threading.Lock()

    def accept(self, image_id: str, request_id: str | None) -> bool:
        """Queue the fetch; False if this request was already accepted."""
        if request_id is not None:
            with self._guard:
                if request_id in self._accepted:
                    return False
                self._accepted.add(request_id)
        self.manager.submit(lambda: self._fetch(image_id, request_id))
        return True

    def _fetch(self, image_id: str, request_id: str | None) -> None:
        """Fetch into `_base`, then tell the compute API how it went: a failure only in
        this host's log would leave the operator's view saying `requested` for ever."""
        try:
            fetched = self.manager.cache.fetch(self.manager.client.get(image_id))
        except Exception as exc:  # the worker's end: whatever failed is reported
            if not isinstance(exc, (ChuteError, OSError)):
                LOG.exception("Image %s could not be pre-cached", image_id)
            cause = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            LOG.error("Image %s could not be pre-cached: %s", image_id, cause)
            if request_id is not None:
                self.report(image_id, request_id, "failed",
                            f"image {image_id} could not be fetched: {cause}")
            return
        LOG.info("Image %s pre-cached by %s", image_id, fetched.method)
        if request_id is not None:
            self.report(image_id, request_id, "cached", None)


class Reporter:
    def __init__(self, identity: AgentIdentity, manager: ComputeManager,
                 client: ComputeApiClient) -> None:
        self.identity = identity
        self.manager = manager
        self.client = client
        self.precacher = Precacher(manager, self.precached)
        self._stop = threading.Event()
        self._forgetting: set[str] = set()  # destroys queued, not done yet
        self._unsent: list[tuple[str, str, str, str | None]] = []  # pre-cache outcomes
        self._due: dict[str, tuple[dict[str, Any], str]] = {}  # id -> its newest (doc, as_of)
        self._wake = threading.Event()
        self._guard = threading.Lock()

    def start(self) -> None:
        self.manager.observers.append(self.report)
        threading.Thread(target=self._loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self._report_loop, name="state-reports", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def report(self, inst: Instance) -> None:
        """One state change, queued for the compute API (the heartbeat repeats it). The
        build thread does not wait for the API: it goes on, and a state it saves before
        this one was sent replaces it in the queue."""
        doc, stamp = wire.dump(inst), as_of()  # the state as saved, and when
        with self._guard:
            self._due.pop(inst.id, None)  # re-inserted last: the queue stays in save order
            self._due[inst.id] = (doc, stamp)
        self._wake.set()

    def _report_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(REPORT_DELAY):
                return
            self._wake.clear()
            try:
                self.send_reports()
            except Exception:  # the agent must keep reporting whatever happened
                LOG.exception("State reports failed")

    def send_reports(self) -> None:
        """Every queued state in one request: the states saved while the previous request
        was on its way go together in the next."""
        with self._guard:
            due, self._due = self._due, {}
        if not due:
            return
        try:
            placed = self.client.states(self.identity.host, list(due.values()))
        except ChuteError as exc:
            LOG.warning("State reports of %d instance(s) to the compute API failed (%s); the "
                        "next heartbeat carries them", len(due), exc.message)
            return
        for instance_id in due:
            if placed.get(instance_id) is False:
                LOG.info("Instance %s is not placed on this host any more: destroying it",
                         instance_id)
                self._queue_forget(instance_id)

    def precached(self, image_id: str, request_id: str, status: str,
                  detail: str | None) -> None:
        """A pre-cache's outcome, told to the compute API now, else after a heartbeat."""
        if not self._send_outcome((image_id, request_id, status, detail)):
            with self._guard:
                self._unsent.append((image_id, request_id, status, detail))

    def _send_outcome(self, outcome: tuple[str, str, str, str | None]) -> bool:
        try:
            self.client.precached(self.identity.host, *outcome)
        except ChuteError as exc:
            LOG.warning("Image %s: pre-cache outcome report to the compute API failed (%s); "
                        "sent again after the next heartbeat", outcome[0], exc.message)
            return False
        return True

    def _send_unsent(self) -> None:
        with self._guard:
            unsent, self._unsent = self._unsent, []
        left = [outcome for outcome in unsent if not self._send_outcome(outcome)]
        with self._guard:
            self._unsent[:0] = left

    def _loop(self) -> None:
        while True:
            try:
                self.heartbeat()
                self._send_unsent()
            except ChuteError as exc:
                LOG.warning("Heartbeat to the compute API failed: %s", exc.message)
            except Exception:  # the agent must keep reporting whatever happened
                LOG.exception("Heartbeat failed")
            if self._stop.wait(self.identity.report_interval):
                return

    def heartbeat(self) -> None:
        answer = self.client.heartbeat(self.identity.host, self.state())
        for instance_id in answer.get("destroy", []):
            self._queue_forget(str(instance_id))
        for doc in answer.get("builds", []):
            inst = wire.load(doc)
            if self.manager.accept_build(inst):
                LOG.info("Instance %s: build (re)started at the compute API's request",
                         inst.id)
        for asked in answer.get("precache", []):
            image_id, request_id = asked.get("image_id"), asked.get("request_id")
            if isinstance(image_id, str) and isinstance(request_id, str) and \
                    self.precacher.accept(image_id, request_id):
                LOG.info("Image %s: pre-cache (re)started at the compute API's request",
                         image_id)

    def state(self) -> dict[str, Any]:
        stamp = as_of()  # before the instances are read: a report of a later save is newer
        identity = self.identity
        resources = self.manager.driver.host_resources()
        disk = shutil.disk_usage(self.manager.instances_path)
        settings = self.manager.settings
        return {
            "agent_url": identity.agent_url, "availability_zone": identity.availability_zone,
            "vcpus": resources.vcpus, "memory_mb": resources.memory_mb,
            "disk_gb": disk.total >> 30,
            "cpu_allocation_ratio": settings.cpu_allocation_ratio,
            "ram_allocation_ratio": settings.ram_allocation_ratio,
            "disk_allocation_ratio": 1.0,
            "filesystem_ids": sorted(identity.filesystem_ids),
            "cached_images": sorted(cached_image_ids(identity.base_dir)),
            "instances": [wire.dump(inst) for inst in self.manager.db.list()],
            "as_of": stamp,
        }

    def _queue_forget(self, instance_id: str) -> None:
        """Destroy on a worker, once: the heartbeat thread must not wait for the instance's
        lock (a spawn may hold it longer than service_down_time)."""
        with self._guard:
            if instance_id in self._forgetting:
                return
            self._forgetting.add(instance_id)
        self.manager.submit(lambda: self._forget(instance_id))

    def _forget(self, instance_id: str) -> None:
        try:
            self.manager.forget(instance_id)
        except ChuteError as exc:
            LOG.error("Instance %s could not be destroyed: %s", instance_id, exc.message)
        finally:
            with self._guard:
                self._forgetting.discard(instance_id)
