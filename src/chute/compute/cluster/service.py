"""The compute API's server service for many hosts: Nova's API layer (compute/api.py) over
this instead of a local ComputeManager.

    POST /servers     create (checks, quota, row in BUILD: ComputeManager's, inherited)
                      -> a placement row; a worker of this process takes its lease,
                      asks the Scheduler, claims the host in the database, dispatches the
                      build to the agent (the instance uuid is the idempotency key)
    agent reports     state changes (PUT /internal/v1/instances/{id}/state) and its full
                      state with each heartbeat (PUT /internal/v1/hosts/{host}): applied
                      only from the host the server is placed on, newest first wins
    build failed      (the agent's report, a failed dispatch, or its host stopped reporting
                      for service_down_time): released from that host, the try's fault kept
                      in the instance actions, rescheduled to another host up to
                      [scheduler] max_attempts, else ERROR naming the hosts tried
    reconcile         each heartbeat's answer resends the builds the agent lacks and names
                      the guests it must destroy (deleted, or placed elsewhere meanwhile)

No truth lives in this process: a sweeper in every worker of every node picks up what a dead
process or host left (expired leases, builds on dead hosts); the conditional UPDATEs of the
registry decide which one acts.
"""

from __future__ import annotations

import builtins
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chute.auth.context import RequestContext
from chute.compute import flavors
from chute.compute.actions import ServerActions
from chute.compute.cluster.dispatch import AgentClient
from chute.compute.cluster.registry import HostReport, Placement, Registry, host_status
from chute.compute.db import InstanceDB
from chute.compute.host_state import HostState, RequestSpec, Scheduler, Selection
from chute.compute.image_service import ImageService
from chute.compute.instance import BUILDING, ERROR, Instance, utcnow
from chute.compute.instance_actions import InstanceActions
from chute.compute.keypairs import Keypairs
from chute.compute.manager import NO_VALID_HOST, ComputeManager, _Workers
from chute.compute.quotas import Quotas
from chute.compute.settings import ManagerSettings
from chute.errors import (
    BadComputeRequest,
    ComputeConflict,
    FlavorNotFound,
    InstanceInvalidState,
    RemoteError,
    RemoteUnavailable,
    ServerNotFound,
)

LOG = logging.getLogger(__name__)
DISPATCH_THREADS = 8
ACTION_NAMES = {"os-stop": "stop", "os-start": "start", "reboot": "reboot"}


@dataclass(frozen=True)
class ClusterSettings:
    manager: ManagerSettings  # zones, quotas, config drives: what the API checks at boot
    service_down_time: int  # [DEFAULT] service_down_time (Nova's)
    max_attempts: int  # [scheduler] max_attempts (Nova's)

    @property
    def sweep_interval(self) -> float:
        return max(1.0, min(10.0, self.service_down_time / 3))


class ClusterService(ComputeManager):
    """ComputeManager's API-side checks and records, with placement and dispatch instead of
    a local build. It has no driver, image cache or network: those are the agents'."""

    def __init__(self, settings: ClusterSettings, db: InstanceDB, client: ImageService,
                 registry: Registry, scheduler: Scheduler, agents: AgentClient) -> None:
        # Not ComputeManager.__init__: it would open a virt driver and an image cache.
        self.cluster = settings
        self.settings = settings.manager
        self.db = db
        self.client = client
        self.registry = registry
        self.scheduler = scheduler
        self.agents = agents
        self.instances_path = ""
        self.keypairs = Keypairs(db.engine)
        self.flavors = flavors.open_catalog(db.engine)
        self.actions = InstanceActions(db.engine)
        self.quotas = Quotas(db.engine, dict(self.settings.quota), db.flavor_counts)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._workers: _Workers | None = None
        self._stop = threading.Event()
        self._claims = threading.Lock()
        self.observers: builtins.list[Callable[[Instance], None]] = []
        self._in_flight: set[str] = set()
        self.server_actions = ClusterActions(self)
        # The zones hosts are in: the agents' own, unless an aggregate sets one (operators.py).
        self.zone_hosts: Callable[[builtins.list[HostState]], builtins.list[HostState]] = list

    def start(self) -> None:
        self._workers = _Workers(DISPATCH_THREADS)
        threading.Thread(target=self._sweep_loop, name="cluster-sweeper", daemon=True).start()

    # -- reads: the instance with its host and that host's status ----------------------------

    def get(self, instance_id: str, project_id: str | None = None) -> Instance:
        found = self.registry.servers(instance_id=instance_id)
        if not found or (project_id is not None and found[0].project_id != project_id):
            raise ServerNotFound(f"Instance {instance_id} could not be found.")
        return found[0]

    def list(self, project_id: str | None = None) -> builtins.list[Instance]:
        return self.registry.servers(project_id=project_id)

    # -- create: the API-side record, then placement -----------------------------------------

    def _zone(self, requested: str | None) -> str:
        """Any zone a host is in; a forced host (`ZONE:HOST`) is not supported yet."""
        if requested is None:
            return ""
        name, _, host = requested.partition(":")
        if host:
            raise BadComputeRequest(f"A host in availability_zone {requested!r} is not "
                                    "supported.")
        zoned = self.zone_hosts(self.registry.host_states())
        if name not in {state.availability_zone for state in zoned}:
            raise BadComputeRequest(f"The requested availability zone is not available: "
                                    f"{requested!r}.")
        return name

    def _record(self, inst: Instance, flavor: flavors.Flavor, ctx: RequestContext) -> None:
        """The server, its `create` action and its placement row, in one transaction: no
        server is ever recorded without the row that gets it placed."""
        with self.db.engine.begin() as conn:
            self.db.create(inst, conn)
            self.actions.start(inst.id, "create", user_id=ctx.user_id or "",
                               project_id=ctx.project_id or "", conn=conn)
            self.registry.add(inst.id, flavor.vcpus, flavor.ram, flavor.disk, conn)

    def _build(self, instance_id: str) -> None:
        try:
            self._place(instance_id)
        finally:
            with self._locks_guard:
                self._in_flight.discard(instance_id)

    def _place(self, instance_id: str) -> None:
        """Schedule and dispatch until a host took the build or the tries are used up."""
        while (placement := self.registry.lease(instance_id)) is not None:
            inst = self.db.get(instance_id)
            if inst is None or inst.vm_state != BUILDING:
                self.registry.remove(instance_id)
                return
            if placement.attempts >= self.cluster.max_attempts:
                self._give_up(instance_id, placement.tried)
                return
            spec = RequestSpec(instance_id, inst.image_id, placement.vcpus,
                               placement.memory_mb, placement.disk_gb,
                               inst.availability_zone or None,
                               ignore_hosts=frozenset(placement.tried))
            selection = self.scheduler.select(spec, self.registry.host_states())
            host = self._claim_first(inst, selection)
            if host is None:
                self._give_up(instance_id, placement.tried, selection)
                return
            if self._dispatch(inst, host):
                return

    def _claim_first(self, inst: Instance, selection: Selection) -> HostState | None:
        """The first host of the selection that takes the server; a server booted without
        an availability zone gets that host's (as Nova records it)."""
        for choice in selection.choices:
            zone = None if inst.availability_zone else choice.host.availability_zone
            if self.registry.claim(inst.id, choice.host.host, zone):
                inst.availability_zone = inst.availability_zone or zone
                return choice.host
        return None

    def _dispatch(self, inst: Instance, host: HostState) -> bool:
        """Send the build to the host's agent; False if it failed (then released, to be
        tried elsewhere)."""
        LOG.info("Instance %s placed on host %s", inst.id, host.host)
        inst.host = host.host
        try:
            self.agents.build(host.agent_url, inst)
            return True
        except (RemoteUnavailable, RemoteError) as exc:
            self.release_failed(inst.id, host.host, f"dispatch failed: {exc.message}")
            return False

    def release_failed(self, instance_id: str, host: str, fault: str) -> bool:
        """A try on `host` failed: take the server off it and keep the fault in its actions.
        False if it was no longer placed there (another process handled it)."""
        if not self.registry.release(instance_id, host):
            return False
        message = f"Build on host {host} failed: {fault}"
        LOG.warning("Instance %s: %s; rescheduling", instance_id, message)
        self.actions.finish(instance_id, "create", error=message)
        self.actions.start(instance_id, "create", request_id=f"req-{uuid.uuid4()}")
        return True

    def reschedule(self, instance_id: str, host: str, fault: str) -> None:
        if self.release_failed(instance_id, host, fault):
            self._submit_build(instance_id)

    def _give_up(self, instance_id: str, tried: tuple[str, ...],
                 selection: Selection | None = None) -> None:
        if tried:
            message = (f"{NO_VALID_HOST} Exceeded maximum number of retries or no other "
                       f"host: hosts tried: {', '.join(tried)}.")
        else:
            reasons = "; ".join(f"{r.host}: {r.reason}" for r in
                                (selection.rejections if selection else ()))
            message = f"{NO_VALID_HOST}{' ' + reasons if reasons else ''}"
        LOG.warning("Instance %s: %s", instance_id, message)
        self._fail(instance_id, message)
        self.registry.remove(instance_id)

    # -- delete -----------------------------------------------------------------------------

    def delete(self, instance_id: str, project_id: str | None = None) -> None:
        """The guest first, on its host; a host that is down or does not answer is told at
        its next heartbeat (the reconcile), so the server goes now as Nova's local delete."""
        inst = self.get(instance_id, project_id)
        self.actions.start(instance_id, "delete", project_id=inst.project_id or "")
        state = self.registry.host(inst.host) if inst.host else None
        if state is not None and state.alive:
            try:
                self.agents.delete(state.agent_url, instance_id)
            except RemoteUnavailable as exc:
                LOG.warning("Instance %s: host %s did not answer the delete (%s); its guest "
                            "goes at its next heartbeat", instance_id, inst.host, exc.message)
        self.registry.delete_server(instance_id, then=functools.partial(
            self.actions.finish, instance_id, "delete", None))
        LOG.info("Instance %s deleted", instance_id)

    # -- what agents report -----------------------------------------------------------------

    def apply_report(self, host: str, reported: Instance, as_of: datetime) -> bool:
        """An agent's state of one instance as of `as_of` (its clock, microseconds); False if
        the instance is not placed on that host (deleted or moved): the agent must then
        destroy its copy."""
        return self.apply_reports(host, [(reported, as_of)])[reported.id]

    def apply_reports(self, host: str, reports: Sequence[tuple[Instance, datetime]]
                      ) -> dict[str, bool]:
        """Several instances' states from one agent, read with one SELECT; for each id,
        whether it is still placed on `host`. An id given twice counts as its newest."""
        newest: dict[str, tuple[Instance, datetime]] = {}
        for reported, as_of in reports:
            if reported.id not in newest or newest[reported.id][1] < as_of:
                newest[reported.id] = (reported, as_of)
        known = self.registry.placed_instances(list(newest))
        return {instance_id: self._apply(host, reported, as_of, known)
                for instance_id, (reported, as_of) in newest.items()}

    def _apply(self, host: str, reported: Instance, as_of: datetime,
               known: dict[str, tuple[Placement, Instance]]) -> bool:
        """One report over what the database holds (`known`: placements and instances by
        id, updated here with what this report wrote). A state the API has already is not
        written again; an older one than the last applied is ignored."""
        placement, current = known.get(reported.id, (None, None))
        if placement is None or current is None or placement.host != host:
            return False
        if reported.vm_state == ERROR and current.vm_state == BUILDING:
            fault = reported.fault.message if reported.fault else "unknown error"
            self.reschedule(reported.id, host, fault)
            return False
        if _same_state(current, reported):
            return True
        updated = replace(current, vm_state=reported.vm_state, task_state=reported.task_state,
                          power_state=reported.power_state, launched_at=reported.launched_at,
                          fault=reported.fault, transfer=reported.transfer, updated=utcnow(),
                          port=current.port or reported.port)
        finished = []  # the instance actions this state ends, closed in the same transaction
        if current.vm_state == BUILDING and updated.vm_state != BUILDING:
            finished.append("create")
        if updated.task_state is None and updated.vm_state != BUILDING:
            finished.extend(ACTION_NAMES.values())
        then = functools.partial(self.actions.finish_each, updated.id, finished) \
            if finished else None
        if not self.registry.apply_state(updated, host, as_of, current.port is None and
                                         reported.port is not None, then):
            return True  # older than the report applied already
        known[reported.id] = (placement, updated)
        if "create" in finished:
            LOG.info("Instance %s %s on host %s", updated.id, updated.status, host)
        return True

    def heartbeat(self, report: HostReport, instances: builtins.list[Instance],
                  as_of: datetime) -> dict[str, Any]:
        """Record the host alive with its state; answer what it must build and destroy."""
        self.registry.heartbeat(report)
        placed = self.registry.placed_instances(host=report.host)
        destroy = [inst.id for inst in instances
                   if not self._apply(report.host, inst, as_of, placed)]
        builds = [placed[instance_id][1] for instance_id in sorted(set(placed) - set(destroy))
                  if placed[instance_id][1].vm_state == BUILDING]
        return {"builds": builds, "destroy": destroy}

    # -- the sweeper --------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.cluster.sweep_interval):
            try:
                self.sweep()
            except Exception:  # the next pass may succeed (a database restart, say)
                LOG.exception("Cluster sweep failed")

    def sweep(self) -> None:
        """Builds on hosts that stopped reporting go elsewhere; servers nobody is placing
        (their process died, or a reschedule found this process busy) get placed, and so do
        servers recorded by a process that died before it added their placement."""
        dead, orphans = self.registry.stale()
        for placement in dead:
            inst = self.db.get(placement.instance_id)
            if inst is not None and inst.vm_state == BUILDING and placement.host:
                self.reschedule(inst.id, placement.host,
                                f"host {placement.host} stopped reporting (no heartbeat for "
                                f"{self.cluster.service_down_time} s)")
        for instance_id, flavor_id in self.registry.unplaced_builds():
            try:
                flavor = flavors.get(flavor_id)
            except FlavorNotFound as exc:
                self._fail(instance_id, exc.message)
                continue
            if self.registry.add(instance_id, flavor.vcpus, flavor.ram, flavor.disk):
                LOG.warning("Instance %s was recorded without a placement (its API process "
                            "stopped): placing it now", instance_id)
                orphans.append(instance_id)
        for instance_id in orphans:
            self._submit_build(instance_id)


class ClusterActions(ServerActions):
    """Server actions, done by the agent of the server's host (its state machine checks
    them, its answers are relayed); the API records each action it passes on."""

    def __init__(self, service: ClusterService) -> None:
        # Not ServerActions.__init__: there is no driver on this side.
        self.service = service

    def perform(self, instance_id: str, body: object) -> dict[str, Any] | None:
        inst = self.service.get(instance_id)
        if not inst.host:
            raise InstanceInvalidState(f"Instance {instance_id} is not ready: it has no host "
                                       "yet.")
        state = self.service.registry.host(inst.host)
        if state is None or host_status(state) == "DOWN":
            raise ComputeConflict(f"Instance {instance_id}: its host {inst.host} is down.")
        name = next(iter(body)) if isinstance(body, dict) and len(body) == 1 else None
        action = ACTION_NAMES.get(name or "")
        if action is not None:
            self.service.actions.start(instance_id, action, project_id=inst.project_id or "")
        try:
            return self.service.agents.action(state.agent_url, instance_id, body)
        except RemoteUnavailable as exc:
            self._refused(instance_id, action, exc.message)
            raise RemoteUnavailable(f"Host {inst.host} did not answer: {exc.message}") from None
        except RemoteError as exc:
            if action is not None and exc.status in (400, 404, 409):
                self.service.actions.discard(instance_id, action)  # refused: nothing done
            else:
                self._refused(instance_id, action, exc.message)
            raise _relayed(exc, instance_id) from None

    def _refused(self, instance_id: str, action: str | None, message: str) -> None:
        if action is not None:
            self.service.actions.finish(instance_id, action, error=message)


def _same_state(current: Instance, reported: Instance) -> bool:
    """Nothing an agent reports differs from what the API has."""
    return (current.vm_state, current.task_state, current.power_state, current.launched_at,
            current.fault, current.transfer, current.port) == \
        (reported.vm_state, reported.task_state, reported.power_state, reported.launched_at,
         reported.fault, reported.transfer, current.port or reported.port)


def _relayed(exc: RemoteError, instance_id: str) -> Exception:
    if exc.status == 400:
        return BadComputeRequest(exc.message)
    if exc.status == 404:
        return ServerNotFound(f"Instance {instance_id} could not be found.")
    if exc.status == 409:
        return InstanceInvalidState(exc.message)
    return RemoteUnavailable(f"The server's host failed the action: {exc.message}")
