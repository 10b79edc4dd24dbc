"""The boot lifecycle, run in background threads so the API never waits on a build.

    accept (API thread)         BUILD  building/scheduling   image checked synchronously
    build thread: get image     BUILD  building/spawning     must still be active
                  ImageCache.fetch                           one transfer per image per host
                  claim, disks.create, config drive   (while a clone is verified)
                  claim, driver.spawn                 only once the image's bytes passed
                  done          ACTIVE active/None, power 1
                  any failure   ERROR  error/None + fault saying what failed

After the build, the server actions (compute/actions.py) and the power-state sync
(compute/powersync.py) move it between active and stopped on the same workers and locks.

A per-instance lock orders the end of a build against DELETE: the build re-reads the instance
under the lock before it makes the disk, so deleting a server in BUILD never leaves a disk
behind, and deleting never waits for a long image transfer.
"""

from __future__ import annotations

import base64
import builtins
import functools
import logging
import queue
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from chute.auth.context import NOAUTH, RequestContext
from chute.client.image import Image
from chute.compute import configdrive, disks, flavors
from chute.compute.actions import ServerActions
from chute.compute.db import InstanceDB
from chute.compute.image_service import ImageService
from chute.compute.imagecache import Fetched, Prepare, Staged
from chute.compute.instance import (
    ACTIVE,
    BUILDING,
    ERROR,
    SCHEDULING,
    SPAWNING,
    Fault,
    Instance,
    utcnow,
)
from chute.compute.instance_actions import InstanceActions
from chute.compute.keypairs import Keypairs
from chute.compute.network import Network
from chute.compute.powersync import PowerSync
from chute.compute.quotas import Quotas
from chute.compute.server_fields import BootRequest
from chute.compute.settings import ManagerSettings
from chute.compute.virt import Driver
from chute.errors import (
    BadComputeRequest,
    ChuteError,
    ComputeNotFound,
    FlavorNotFound,
    IntegrityError,
    RemoteError,
    RemoteUnavailable,
    ServerNotFound,
)

LOG = logging.getLogger(__name__)

BUILD_THREADS = 16  # enough that a boot storm's waiters all queue on the image lock at once
MAX_BUILD_ATTEMPTS = 3  # builds resumed after restarts; a build that kills the agent must end
INTERRUPTED = "build interrupted by a restart"
CHECKSUM_FAULT = "image data does not match its checksum"
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


class Cache(Protocol):
    """The host's image cache, as the manager uses it (compute/imagecache.py)."""

    def fetch(self, image: Image, prepare: Prepare | None = None) -> Fetched: ...

    def cleanup(self, in_use_image_ids: set[str]) -> builtins.list[str]: ...


class _Deleted(Exception):
    """The instance was deleted while it was building: stop quietly."""


class _Workers:
    """A fixed pool of daemon threads: unlike ThreadPoolExecutor, a stopping agent does not
    wait at exit for an image transfer to finish (the build resumes at the next start)."""

    def __init__(self, count: int) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        for n in range(count):
            threading.Thread(target=self._run, name=f"build-{n}", daemon=True).start()

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception:  # a worker must survive any job
                LOG.exception("build job failed")


class ComputeManager:
    def __init__(self, settings: ManagerSettings, db: InstanceDB, client: ImageService,
                 cache: Cache, driver: Driver, network: Network) -> None:
        self.settings = settings
        self.network = network
        self.db = db
        self.client = client
        self.cache = cache
        self.driver = driver
        self.instances_path = settings.instances_path
        self.keypairs = Keypairs(db.engine)
        self.flavors = flavors.open_catalog(db.engine)
        self.actions = InstanceActions(db.engine)
        self.quotas = Quotas(db.engine, dict(settings.quota), db.flavor_counts)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._workers: _Workers | None = None
        self._stop = threading.Event()
        self._claims = threading.Lock()
        self.server_actions = ServerActions(self)
        self.powersync = PowerSync(self)
        # Called with each instance state saved (an agent reports it to the compute API).
        self.observers: builtins.list[Callable[[Instance], None]] = []
        self._in_flight: set[str] = set()  # builds queued or running in this process

    # -- start-up ---------------------------------------------------------------------------

    def start(self) -> None:
        """Own the instances left by a previous process, then accept work."""
        # Stale `_base/*.part` files were removed when the ImageCache was built (only those
        # whose lock no live fetch holds): a resumed build refetches, never reuses a part.
        self._workers = _Workers(BUILD_THREADS)
        self.driver.init_host(self.powersync.changed)
        self.powersync.adopt()
        if not self.settings.resume_builds:
            LOG.info("Builds interrupted by a restart wait for the compute API to resend them")
        for inst in self.db.building() if self.settings.resume_builds else []:
            if inst.build_attempts >= MAX_BUILD_ATTEMPTS:
                LOG.warning("Instance %s: %s %d times, giving up", inst.id, INTERRUPTED,
                            inst.build_attempts)
                self._fail(inst.id, INTERRUPTED)
                continue
            LOG.info("Instance %s: resuming a build interrupted by a restart", inst.id)
            inst.task_state = SCHEDULING
            self._save(inst)
            self._submit_build(inst.id)
        interval = self.settings.cleanup_interval
        if interval > 0:
            threading.Thread(target=self._cleanup_loop, args=(interval,),
                             name="image-cache-cleanup", daemon=True).start()
        interval = self.settings.sync_power_state_interval
        if interval > 0:
            threading.Thread(target=self.powersync.loop, args=(interval, self._stop),
                             name="power-state-sync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    # -- requests (called by API threads) -----------------------------------------------------

    def get(self, instance_id: str, project_id: str | None = None) -> Instance:
        """The instance; one of another project than `project_id` (when given) is not found,
        as in Nova: its existence is not the caller's business."""
        inst = self.db.get(instance_id)
        if inst is None or (project_id is not None and inst.project_id != project_id):
            raise ServerNotFound(f"Instance {instance_id} could not be found.")
        return inst

    def list(self, project_id: str | None = None) -> builtins.list[Instance]:
        return self.db.list(project_id)

    def create(self, request: BootRequest, ctx: RequestContext = NOAUTH
               ) -> builtins.list[Instance]:
        """Validate as Nova does at the API (flavor, image, keypair and zone checked now),
        then build later: `max_count` servers, named `NAME-N` when there are several (Nova's
        multi_instance_display_name_template). The name and refs are the request's JSON
        values, of any type until checked here. The image is checked as the caller sees it
        (their token, forwarded): nobody boots an image they could not read; the build then
        fetches with the host's own identity."""
        user_id = ctx.user_id or ""
        checked_name = check_name(request.name)
        image_id = _check_ref("imageRef", request.image_ref)
        flavor_id = _check_ref("flavorRef", request.flavor_ref)
        try:
            flavor = flavors.get(flavor_id)
        except FlavorNotFound as exc:
            raise BadComputeRequest(exc.message) from None
        zone = self._zone(request.availability_zone)
        key_data = self._key_data(user_id, request.key_name)
        _require_fits(flavor, self._image(image_id, for_request=True,
                                               token=ctx.auth_token))
        created = []
        with self.quotas.claim(ctx.project_id, flavor, request.min_count,
                               request.max_count) as count:
            for n in range(1, count + 1):
                name = checked_name if count == 1 else f"{checked_name}-{n}"
                created.append(self._accept(request, ctx, (image_id, flavor, key_data, zone),
                                            name))
        for inst in created:
            self._submit_build(inst.id)
        return created

    def accept_build(self, inst: Instance) -> bool:
        """An agent's side of a dispatched build (the instance as the compute API recorded
        it), idempotent by its id: a build already here is not started twice. True if this
        call started it. A build in progress answers at once, without waiting for the
        instance's lock, which its spawn may hold for a long time (the heartbeat asks)."""
        with self._locks_guard:
            if inst.id in self._in_flight:
                return False
        with self._lock(inst.id):
            current = self.db.get(inst.id)
            if current is None:
                inst.vm_state, inst.task_state, inst.build_attempts = BUILDING, SCHEDULING, 0
                inst.host = inst.host_status = None
                self.db.create(inst)
            elif current.vm_state != BUILDING:
                return False
        return self._submit_build(inst.id)

    def forget(self, instance_id: str) -> bool:
        """Destroy a guest and its files that the compute API no longer places on this host
        (deleted, or rescheduled elsewhere while this host was away). False if unknown."""
        inst = self.db.get(instance_id)
        if inst is None:
            return False
        with self._lock(instance_id):
            self.driver.destroy(inst)
            self.db.delete(instance_id)
            shutil.rmtree(Path(self.instances_path) / instance_id, ignore_errors=True)
        LOG.info("Instance %s removed from this host (not placed here by the compute API)",
                 instance_id)
        return True

    def _submit_build(self, instance_id: str) -> bool:
        """Queue the build unless one of this instance is already queued or running."""
        assert self._workers is not None, "start() was not called"
        with self._locks_guard:
            if instance_id in self._in_flight:
                return False
            self._in_flight.add(instance_id)
        self._workers.submit(functools.partial(self._build, instance_id))
        return True

    def _accept(self, request: BootRequest, ctx: RequestContext,
                checked: tuple[str, flavors.Flavor, str | None, str], name: str) -> Instance:
        """Record one server of a boot request, in BUILD (`checked`: its image id, flavor,
        key and zone as create() checked them)."""
        image_id, flavor, key_data, zone = checked
        inst = Instance(
            id=str(uuid.uuid4()), name=name, image_id=image_id,
            flavor_id=flavor.id, key_name=request.key_name,
            key_data=key_data, user_data=request.user_data, metadata=request.metadata,
            tags=request.tags, availability_zone=zone, description=request.description,
            admin_pass=request.admin_pass, project_id=ctx.project_id,
            user_id=ctx.user_id, networks=request.networks,
            config_drive=self._wants_config_drive(request))
        self._record(inst, flavor, ctx)
        LOG.info("Instance %s accepted: image %s, flavor %s", inst.id, inst.image_id,
                 flavor.name)
        return inst

    def _record(self, inst: Instance, flavor: flavors.Flavor, ctx: RequestContext) -> None:
        """Write a new server and its `create` action."""
        self.db.create(inst)
        self.actions.start(inst.id, "create", user_id=ctx.user_id or "",
                           project_id=ctx.project_id or "")

    def _zone(self, requested: str | None) -> str:
        """This host's zone; `ZONE:HOST[:NODE]` (Nova's forced host) is refused: no
        scheduler, one host."""
        zone = self.settings.availability_zone
        if requested is None:
            return zone
        name, _, host = requested.partition(":")
        if host:
            raise BadComputeRequest(f"chute-compute is one host and has no scheduler: a "
                                    f"host in availability_zone {requested!r} is not "
                                    "supported.")
        if name != zone:
            raise BadComputeRequest(f"The requested availability zone is not available: "
                                    f"{requested!r} (this host is in {zone!r}).")
        return zone

    def _key_data(self, user_id: str, key_name: str | None) -> str | None:
        if key_name is None:
            return None
        try:
            return self.keypairs.get(user_id, key_name).public_key
        except ComputeNotFound:
            raise BadComputeRequest("Invalid key_name provided.") from None

    def _wants_config_drive(self, request: BootRequest) -> bool:
        """The guest's only way to its user data, key, password and address: chute has no
        metadata service and no DHCP server, so any of them (a network too) brings a drive,
        as does Nova's force_config_drive."""
        return (request.config_drive or self.settings.force_config_drive
                or request.user_data is not None or request.key_name is not None
                or request.admin_pass is not None or request.networks != "none")

    def edit(self, instance_id: str, change: Callable[[Instance], None]) -> Instance:
        """Apply `change` to what the user may edit (name, metadata, tags, description) and
        store it; ordered against the end of a build by the instance's lock."""
        with self._lock(instance_id):
            inst = self.get(instance_id)
            change(inst)
            inst.updated = utcnow()
            if not self.db.save_user_fields(inst):
                raise ServerNotFound(f"Instance {instance_id} could not be found.")
        return inst

    def delete(self, instance_id: str, project_id: str | None = None) -> None:
        inst = self.get(instance_id, project_id)
        self.actions.start(instance_id, "delete", project_id=inst.project_id or "")
        with self._lock(instance_id):
            # The guest first: a hypervisor that cannot be reached fails the DELETE and keeps
            # the server, rather than forget a guest that still runs.
            self.driver.destroy(inst)
            self.db.delete(instance_id)
            shutil.rmtree(Path(self.instances_path) / instance_id, ignore_errors=True)
        with self._locks_guard:
            self._locks.pop(instance_id, None)
        self.actions.finish(instance_id, "delete")
        LOG.info("Instance %s deleted", instance_id)

    # -- the build ----------------------------------------------------------------------------

    def _build(self, instance_id: str) -> None:
        try:
            self._build_once(instance_id)
        finally:
            with self._locks_guard:
                self._in_flight.discard(instance_id)

    def _build_once(self, instance_id: str) -> None:
        try:
            self._run_build(instance_id)
        except _Deleted:
            LOG.info("Instance %s was deleted during its build", instance_id)
        except Exception as exc:  # every failure must end in ERROR
            message = _fault_message(exc)
            if isinstance(exc, ChuteError):
                LOG.error("Instance %s failed to build: %s", instance_id, message)
            else:
                LOG.exception("Instance %s failed to build", instance_id)
            self._fail(instance_id, message)

    def _run_build(self, instance_id: str) -> None:
        inst = self._current(instance_id)
        inst.build_attempts += 1
        self._save(inst)
        image = self._image(inst.image_id, for_request=False)
        inst.task_state = SPAWNING
        self._save(inst)
        flavor = flavors.get(inst.flavor_id)
        disk: builtins.list[Path] = []
        try:
            fetched = self.cache.fetch(image, lambda staged: disk.append(
                self._prepare(instance_id, flavor, staged)))
        except BaseException:
            if disk:  # made from bytes that did not pass: no trace of them is kept
                with self._lock(instance_id):
                    shutil.rmtree(disk[-1].parent, ignore_errors=True)
            raise
        inst.transfer = fetched.transfer
        self._save(inst)
        with self._lock(instance_id):
            inst = self._current(instance_id)
            self._claim(inst, flavor)
            self.driver.spawn(inst, str(disk[-1]))
            now = utcnow()
            inst.vm_state, inst.task_state = ACTIVE, None
            inst.power_state = self.driver.power_state(instance_id)
            inst.launched_at = now
            self._save(inst)
        self.actions.finish(instance_id, "create")
        LOG.info("Instance %s ACTIVE (image %s by %s, %d bytes in %.3f s)", instance_id,
                 inst.image_id, fetched.method, fetched.nbytes, fetched.seconds)

    def _prepare(self, instance_id: str, flavor: flavors.Flavor, staged: Staged) -> Path:
        """All a spawn needs but the image's verdict: port, disk, config drive. Called by the
        image cache while a clone is verified, so the boot's own work costs no wall time
        beside the verification (else once the base is in place); the guest is spawned only
        after the cache returned, its bytes verified. Under the instance's lock, as DELETE."""
        with self._lock(instance_id):
            inst = self._current(instance_id)
            self._claim(inst, flavor)  # refused before anything is made; again at the spawn
            if inst.networks != "none" and inst.port is None:
                inst.port = self.network.allocate(instance_id)
            path = disks.create(self.instances_path, instance_id, staged.path, staged.format,
                                flavor, self.settings.images_type, content=staged.content)
            if inst.config_drive:
                configdrive.write(path.parent, self._drive_content(inst))
        return path

    def _image(self, image_id: str, *, for_request: bool, token: str | None = None) -> Image:
        """The image document, which must exist and be active (400 at request time)."""
        error = BadComputeRequest if for_request else ChuteError
        try:
            image = self.client.get(image_id, token)
        except RemoteUnavailable as exc:
            raise RemoteUnavailable(f"The image service is unavailable: {exc.message}") from None
        except RemoteError as exc:
            if exc.status == 404:
                raise error(f"Image {image_id} could not be found.") from None
            raise error(f"The image service refused image {image_id}: {exc.message}") from None
        if image.status != "active":
            raise error(f"Image {image_id} is not active (status {image.status}).")
        return image

    def _fail(self, instance_id: str, message: str) -> None:
        with self._lock(instance_id):
            inst = self.db.get(instance_id)
            if inst is None:
                return
            inst.vm_state, inst.task_state = ERROR, None
            inst.fault = Fault(500, message, utcnow())
            self._save(inst, missing_ok=True)
            if inst.port is not None:
                # As Nova's failed build deallocates its networks: an ERROR server keeps
                # no address from the range.
                self.db.release_port(instance_id)
        self.actions.finish(instance_id, "create", error=message)

    def _claim(self, inst: Instance, flavor: flavors.Flavor) -> None:
        """Nova's scheduler filters on one host: the flavor, with every other instance's,
        must fit the host's CPUs and memory times the allocation ratios."""
        host = self.driver.host_resources()
        with self._claims:
            vcpus, ram = flavor.vcpus, flavor.ram
            for other in self.db.list():
                if other.id != inst.id and other.vm_state != ERROR and other.launched_at:
                    used = flavors.get(other.flavor_id)
                    vcpus, ram = vcpus + used.vcpus, ram + used.ram
            cpu_limit = host.vcpus * self.settings.cpu_allocation_ratio
            ram_limit = host.memory_mb * self.settings.ram_allocation_ratio
            if vcpus > cpu_limit or ram > ram_limit:
                LOG.warning("Instance %s: flavor %s does not fit (%d vCPUs of %g, %d MiB of "
                            "%g)", inst.id, flavor.name, vcpus, cpu_limit, ram, ram_limit)
                raise ChuteError(NO_VALID_HOST)

    # -- what the actions and the power-state sync share ----------------------------------------

    def lock(self, instance_id: str) -> threading.Lock:
        return self._lock(instance_id)

    def save(self, inst: Instance, missing_ok: bool = False) -> None:
        self._save(inst, missing_ok)

    def submit(self, job: Callable[[], None]) -> None:
        assert self._workers is not None, "start() was not called"
        self._workers.submit(job)

    # -- helpers ------------------------------------------------------------------------------

    def _current(self, instance_id: str) -> Instance:
        inst = self.db.get(instance_id)
        if inst is None:
            raise _Deleted()
        return inst

    def _save(self, inst: Instance, missing_ok: bool = False) -> None:
        inst.updated = utcnow()
        if not self.db.save(inst):
            if not missing_ok:
                raise _Deleted()
            return
        for observer in self.observers:
            observer(inst)

    def _lock(self, instance_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(instance_id, threading.Lock())

    def _drive_content(self, inst: Instance) -> configdrive.DriveContent:
        keys = {inst.key_name: inst.key_data} if inst.key_name and inst.key_data else {}
        user_data = base64.b64decode(inst.user_data) if inst.user_data is not None else None
        network_data = self.network.network_data(inst.port) if inst.port else None
        return configdrive.DriveContent(
            uuid=inst.id, name=inst.name, availability_zone=inst.availability_zone or "",
            metadata=inst.metadata, public_keys=keys, user_data=user_data,
            admin_pass=inst.admin_pass, network_data=network_data)

    def _cleanup_loop(self, interval: int) -> None:
        while not self._stop.wait(interval):
            try:
                removed = self.cache.cleanup(self.db.image_ids())
                if removed:
                    LOG.info("Image cache cleanup removed %d base(s)", len(removed))
            except Exception:  # the next pass may succeed
                LOG.exception("Image cache cleanup failed")


def _fault_message(exc: Exception) -> str:
    if isinstance(exc, IntegrityError):
        detail = exc.message
        return detail if CHECKSUM_FAULT in detail else f"{CHECKSUM_FAULT}: {detail}".rstrip(": ")
    if isinstance(exc, ChuteError):
        return exc.message
    return f"Unexpected error while building: {type(exc).__name__}: {exc}"


def _require_fits(flavor: flavors.Flavor, image: Image) -> None:
    """Refuse at the API what the build could only fail on, before any byte is fetched, with
    Nova's messages (nova/compute/api.py `_validate_flavor_image_nostatus`; exception texts
    of FlavorMemoryTooSmall, FlavorDiskSmallerThanImage, FlavorDiskSmallerThanMinDisk).
    Nova's API compares the image's `size` and its libvirt driver later the virtual size;
    here the virtual size is known from the document, so it is the one compared (the stored
    size where the image service recorded none). A root disk of 0 GiB means "the image's
    size" in Nova: no disk check then."""
    if image.min_ram > flavor.ram:
        raise BadComputeRequest("Flavor's memory is too small for requested image.")
    if flavor.disk <= 0:
        return
    dest = flavor.root_bytes
    size = image.virtual_size if image.virtual_size is not None else image.size
    if size is not None and size > dest:
        raise BadComputeRequest(
            "Flavor's disk is too small for requested image. Flavor disk is "
            f"{dest} bytes, image is {size} bytes.")
    min_disk = image.min_disk << 30
    if min_disk > dest:
        raise BadComputeRequest(
            "Flavor's disk is smaller than the minimum size specified in image metadata. "
            f"Flavor disk is {dest} bytes, minimum size is {min_disk} bytes.")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadComputeRequest("Invalid input for field/attribute name: a non-empty string "
                                "is required.")
    if len(name) > 255:
        raise BadComputeRequest("Invalid input for field/attribute name: longer than 255 "
                                "characters.")
    # Nova's valid_name_regex (nova/api/validation/parameter_types.py): printable characters
    # only (no Unicode category C*: controls, format characters such as the bidirectional
    # overrides, lone surrogates, unassigned; no Z* but the space separators Zs), and no
    # whitespace first or last.
    for char in name:
        category = unicodedata.category(char)
        if category.startswith("C") or (category.startswith("Z") and category != "Zs"):
            raise BadComputeRequest(
                f"Invalid input for field/attribute name: character U+{ord(char):04X} is not "
                "printable; a name has printable characters only.")
    if name[0].isspace() or name[-1].isspace():
        raise BadComputeRequest("Invalid input for field/attribute name: it cannot start or "
                                "end with whitespace.")
    return name


def _check_ref(field: str, ref: object) -> str:
    if isinstance(ref, int) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise BadComputeRequest(f"Invalid input for field/attribute {field}: a non-empty "
                                "string is required.")
    return ref.strip().rstrip("/").rsplit("/", 1)[-1]
