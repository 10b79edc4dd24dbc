"""The image service's rules and state machine. Knows nothing of HTTP; raises chute.errors.

Messages follow Glance's so clients and operators see familiar text.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Any, Callable, Protocol, TypeVar

from chute.auth.context import RequestContext
from chute.auth.policy import Authorizer
from chute.errors import Conflict, Forbidden, Invalid, NotFound, PolicyDenied, TooLarge
from chute.images import ids, listing
from chute.images.db import Database, ImageRecord, LocationRecord, utcnow
from chute.images.members_db import MembersDB, listed_for
from chute.images.options import ServiceSettings
from chute.images.patch import MEDIA_V20, PatchOp
from chute.images.schema import BLOCKS_KEY, Validator
from chute.images.status import (
    DEACTIVATE,
    DEACTIVATED,
    FORMATS_EDITABLE,
    INITIAL,
    REACTIVATE,
    Transition,
)
from chute.stores import Store, for_url

LOG = logging.getLogger(__name__)


class _Sized(Protocol):
    @property
    def size(self) -> int: ...


_Found = TypeVar("_Found", bound=_Sized)

CREATE_KEYS = {"id", "name", "visibility", "protected", "os_hidden", "min_disk", "min_ram",
               "disk_format", "container_format", "owner", "tags"}
LINK_KEYS = ("direct_url", "self", "file", "schema", "stores")
READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
             "direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value",
             BLOCKS_KEY, "stores")
RESERVED = ("location", "locations", "deleted", "deleted_at")
UUID_LEN = 36
# How often a metadata write that lost a compare-and-swap to a concurrent one is re-applied to
# the new state before the client gets 409. Each round has a winner, so this many concurrent
# writers of one image all succeed; Glance answers 409 at once.
CAS_ATTEMPTS = 16
INT_MAX = 2**31 - 1  # min_disk/min_ram are INTEGER columns


# Setting a visibility is its own rule (Glance's): publicizing is for admins only.
VISIBILITY_RULES = {"public": "publicize_image", "community": "communitize_image"}


def _reserved(name: str) -> bool:
    """Glance's reserved names; our own `os_glance_` attribute is read-only instead."""
    return name in RESERVED or (name.startswith("os_glance") and name not in READ_ONLY)


def _value(text: str | None) -> str:
    """A target value for oslo.policy: never None, which its checks render as the string
    'None' and would match an unscoped caller's project (also None)."""
    return "" if text is None else text


class ImageService:
    def __init__(self, settings: ServiceSettings, validator: Validator, db: Database,
                 stores: list[Store], policy: Authorizer) -> None:
        self.settings = settings
        self.validator = validator
        self.db = db
        self.members = MembersDB(db.engine)
        self.stores = stores
        self.policy = policy

    # -- who may see and do what -----------------------------------------------------------

    def _is_member(self, record: ImageRecord, ctx: RequestContext) -> bool:
        """Is the caller's project a member of this shared image (any member status)? Not
        asked (one query saved on each request) of its owner, an admin or a service, whom
        every rule that reads membership already allows."""
        if ctx.is_admin or ctx.service or ctx.project_id is None:
            return False
        return (record.visibility == "shared" and record.owner != ctx.project_id
                and self.members.get(record.id, ctx.project_id) is not None)

    @staticmethod
    def _visible(record: ImageRecord, ctx: RequestContext, member: bool) -> bool:
        """Glance's database-level rule: what is not visible does not exist (404)."""
        if ctx.is_admin or ctx.service or record.visibility in ("public", "community"):
            return True
        return member or (ctx.project_id is not None and record.owner == ctx.project_id)

    def target(self, record: ImageRecord, ctx: RequestContext,
               member: bool | None = None) -> dict[str, str]:
        """The image as oslo.policy's checks see it (Glance's ImageTarget)."""
        if member is None:
            member = self._is_member(record, ctx)
        return {"project_id": _value(record.owner), "owner": _value(record.owner),
                "visibility": record.visibility,
                "member_id": _value(ctx.project_id if member else None)}

    def authorized(self, image_id: str, ctx: RequestContext, rule: str) -> ImageRecord:
        """The image, if the caller sees it (404 otherwise) and `rule` allows (403)."""
        record = self.db.get(image_id) if len(image_id) <= UUID_LEN else None
        member = record is not None and self._is_member(record, ctx)
        if record is None or not self._visible(record, ctx, member):
            raise NotFound(f"No image found with ID {image_id}")
        self.policy.authorize(rule, self.target(record, ctx, member), ctx)
        return record

    # -- reading ---------------------------------------------------------------------------

    def get(self, image_id: str) -> ImageRecord:
        """The image, whoever asks: for the service's own steps after a check was made."""
        record = self.db.get(image_id) if len(image_id) <= UUID_LEN else None
        if record is None:
            raise NotFound(f"No image found with ID {image_id}")
        return record

    def show(self, image_id: str, ctx: RequestContext) -> ImageRecord:
        return self.authorized(image_id, ctx, "get_image")

    def readable(self, image_id: str) -> ImageRecord:
        """The image whose data a client wants (download, extents): not if deactivated."""
        record = self.get(image_id)
        if record.status == DEACTIVATED:
            raise Forbidden("The requested image has been deactivated. Image data download is "
                            "forbidden.")
        return record

    def first_readable(self, image_id: str, read: Callable[[Store, str], _Found | None],
                       refusal: str, discard: Callable[[_Found], None] = lambda _found: None,
                       ) -> tuple[ImageRecord, _Found] | None:
        """What `read` finds at the image's first location holding exactly the image's size
        (a download, its extents); None when no location does (204: queued, or unreadable).

        A file of another size is truncated or replaced: it is never served nor described,
        only logged (ending with `refusal`) and handed to `discard`.
        """
        record = self.readable(image_id)
        for location in record.locations:
            store = for_url(self.stores, location.url)
            found = read(store, location.url) if store is not None else None
            if found is None:
                continue
            if record.size is not None and found.size != record.size:
                LOG.error("image %s: %s holds %d bytes, the image has %d; %s",
                          image_id, location.url, found.size, record.size, refusal)
                discard(found)
                continue
            return record, found
        return None

    def list_images(self, pairs: list[tuple[str, str]], ctx: RequestContext
                    ) -> tuple[list[ImageRecord], dict[str, str]]:
        self.policy.authorize("get_images", {"project_id": _value(ctx.project_id)}, ctx)
        query = listing.parse(pairs, self.settings)
        if not (ctx.is_admin or ctx.service):
            asked = dict(pairs)
            status = asked.get("member_status", "accepted")
            query.viewer = listed_for(_value(ctx.project_id),
                                      None if status == "all" else [status],
                                      community="visibility" in asked)
        if query.marker is not None and self.db.get(query.marker) is None:
            raise Invalid(f"marker [{query.marker}] not found")
        page = self.db.list_images(query) if query.limit else []
        return page, listing.links(pairs, page, query.limit)

    def locations(self, image_id: str, ctx: RequestContext) -> list[dict[str, Any]]:
        expected = self.settings.service_token
        # Constant-time comparison: the token is a shared secret.
        token = ctx.auth_token or ""
        if expected and not hmac.compare_digest(token.encode(), expected.encode()):
            raise Forbidden("Only a service may read image locations: X-Auth-Token does not "
                            "match [DEFAULT] service_token.")
        record = self.authorized(image_id, ctx, "fetch_image_location")
        return [{"url": loc.url, "metadata": loc.metadata} for loc in record.locations]

    # -- create / update -------------------------------------------------------------------

    def create(self, body: object, ctx: RequestContext) -> ImageRecord:
        if not isinstance(body, dict):
            raise Invalid("Image creation requires a JSON object.")
        owner = body.get("owner", ctx.project_id)
        if not self.policy.allows("add_image", {"project_id": _value(ctx.project_id),
                                                "owner": _value(owner)}, ctx):
            if owner != ctx.project_id:
                raise PolicyDenied(f"You are not permitted to create images owned by "
                                   f"'{owner}'.")
            raise PolicyDenied("You are not authorized to complete add_image action.")
        rule = VISIBILITY_RULES.get(str(body.get("visibility")))
        if rule is not None:
            self.policy.authorize(rule, {"project_id": _value(owner), "owner": _value(owner),
                                         "visibility": str(body.get("visibility")),
                                         "member_id": ""}, ctx)
        for key in LINK_KEYS:
            if key in body:
                raise Forbidden(f"Attribute '{key}' is read-only.")
        for key in body:
            if _reserved(key):
                raise Forbidden(f"Attribute '{key}' is reserved.")
            if key in READ_ONLY and key != "id":
                raise Forbidden(f"Attribute '{key}' is read-only.")
            if len(key) > 255:
                raise Invalid(f"Property name '{key[:40]}...' is longer than 255 characters.")
        self.validator.validate(body)
        image_id = str(uuid.uuid4())
        if body.get("id") is not None:
            given = ids.canonical(body["id"])
            if given is None:
                raise Invalid("Provided object does not match schema 'image': id: "
                              f"{body['id']!r} is not a UUID in 8-4-4-4-12 hexadecimal form.")
            image_id = given
        props = {k: v for k, v in body.items() if k not in CREATE_KEYS}
        for name, value in props.items():
            self._check_value(name, value)
        tags = list(dict.fromkeys(body.get("tags", [])))
        self._check_quotas(props, tags)
        self._check_size(props, tags)
        if self.db.exists_any(image_id):
            raise Conflict(f"Image ID {image_id} already exists!")
        now = utcnow()
        columns = {
            "id": image_id, "name": body.get("name"), "status": INITIAL,
            "visibility": body.get("visibility", "shared"),
            "protected": body.get("protected", False), "os_hidden": body.get("os_hidden", False),
            "min_disk": body.get("min_disk", 0), "min_ram": body.get("min_ram", 0),
            "disk_format": body.get("disk_format"),
            "container_format": body.get("container_format"), "owner": owner,
            "created_at": now, "updated_at": now, "deleted": False,
        }
        self._check_numbers(columns)
        self.db.create(columns, props, tags)
        LOG.info("created image %s (%s)", image_id, columns["name"])
        return self.get(image_id)

    def _check_quotas(self, props: dict[str, Any], tags: list[str]) -> None:
        quota = self.settings.property_quota
        if quota >= 0 and len(props) > quota:
            raise TooLarge(f"Maximum number of image properties exceeded: {len(props)} > "
                           f"{quota}")
        quota = self.settings.tag_quota
        if quota >= 0 and len(tags) > quota:
            raise TooLarge(f"Maximum number of tags exceeded: {len(tags)} > {quota}")

    def _check_value(self, name: str, value: object) -> None:
        limit = self.settings.property_value_max
        if isinstance(value, str) and len(value) > limit:
            raise Invalid(f"Property {name[:255]} has a value of {len(value)} characters: the "
                          f"limit is {limit} (image_property_value_max_length).")

    def _check_size(self, props: dict[str, Any], tags: list[str]) -> None:
        """All of an image's custom metadata, as it is rendered in every list including it."""
        def utf8(text: str) -> int:  # surrogatepass: a lone surrogate is measured, not a 500
            return len(text.encode(errors="surrogatepass"))

        size = sum(utf8(k) + utf8(str(v)) for k, v in props.items()) + sum(map(utf8, tags))
        limit = self.settings.metadata_max_bytes
        if size > limit:
            raise TooLarge(f"Image properties and tags would take {size} bytes: the limit is "
                           f"{limit} (image_metadata_max_bytes).")

    @staticmethod
    def _check_numbers(columns: dict[str, Any]) -> None:
        for key in ("min_disk", "min_ram"):
            if columns.get(key) is not None and columns[key] < 0:
                raise Invalid(f"Cannot set {key} to a negative value.")
            if columns.get(key) is not None and columns[key] > INT_MAX:
                # The column is a 32-bit INTEGER: a bigger value made the driver raise (500).
                raise Invalid(f"Cannot set {key} to more than {INT_MAX}.")

    def update(self, image_id: str, ops: list[PatchOp], media_type: str,
               ctx: RequestContext) -> ImageRecord:
        """Apply `ops` to the image as it is now: all of them or none.

        The write is a compare-and-swap on the image's version and status: one that lost to a
        concurrent write (another PATCH, a tag, an upload starting) is re-applied to what that
        write left, so the rules (formats only while queued, quotas) are checked against the
        state that is replaced, and no concurrent change is lost; 409 after CAS_ATTEMPTS.
        """
        record = self.authorized(image_id, ctx, "modify_image")
        self._check_patch_rules(record, ops, ctx)
        for _attempt in range(CAS_ATTEMPTS):
            if self._update_once(record, ops, media_type):
                return self.get(image_id)
            record = self.get(image_id)
        raise Conflict("The image changed while it was being updated; retry.")

    def _check_patch_rules(self, record: ImageRecord, ops: list[PatchOp],
                           ctx: RequestContext) -> None:
        """The rules of particular attributes: a new visibility's own rule; owner for admins."""
        for op in ops:
            if op.op == "remove":
                continue
            if op.path == "visibility" and str(op.value) in VISIBILITY_RULES:
                target = {**self.target(record, ctx), "visibility": str(op.value)}
                self.policy.authorize(VISIBILITY_RULES[str(op.value)], target, ctx)
            if op.path == "owner" and op.value != record.owner and not ctx.is_admin:
                raise PolicyDenied("Only an admin may change the owner of an image.")

    def _update_once(self, record: ImageRecord, ops: list[PatchOp], media_type: str) -> bool:
        image_id = record.id
        columns: dict[str, Any] = {}
        props = dict(record.properties)
        tags: list[str] | None = None
        base = self.validator.base_keys
        for op in ops:
            name = op.path
            if name in READ_ONLY:
                raise Forbidden(f"Attribute '{name}' is read-only.")
            if _reserved(name):
                raise Forbidden(f"Attribute '{name}' is reserved.")
            if op.op == "remove":
                if name in base:
                    raise Forbidden(f"Property {name} may not be removed.")
                if name not in props:
                    raise Conflict(f"Property {name} does not exist.")
                del props[name]
                continue
            self.validator.validate({name: op.value})
            if name in base:
                if name in ("disk_format", "container_format") and (
                        record.status not in FORMATS_EDITABLE):
                    raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")
                if name == "tags":
                    tags = list(dict.fromkeys(op.value))
                else:
                    columns[name] = op.value
            elif op.op == "replace" and name not in props:
                raise Conflict(f"Property {name} does not exist.")
            elif op.op == "add" and media_type == MEDIA_V20 and name in props:
                raise Conflict(f"Property {name} already present.")
            else:
                if len(name) > 255:
                    raise Invalid("Property names are at most 255 characters.")
                self._check_value(name, op.value)
                props[name] = op.value
        self._check_numbers(columns)
        self._check_quotas(props, tags if tags is not None else [])
        self._check_size(props, tags if tags is not None else record.tags)
        if not self.db.save(image_id, columns, props, tags, expect_status=record.status,
                            expect_version=record.version):
            self.get(image_id)  # 404 if it was deleted meanwhile
            return False
        return True

    # -- tags, actions, delete -------------------------------------------------------------

    def add_tag(self, image_id: str, tag: str, ctx: RequestContext) -> None:
        """Idempotent: a tag the image has is success. The quota is checked against the tags
        the write replaces (compare-and-swap on the version), so racing PUTs never exceed it.
        """
        self.authorized(image_id, ctx, "modify_image")
        self.validator.validate({"tags": [tag]})
        for _attempt in range(CAS_ATTEMPTS):
            record = self.get(image_id)
            if tag in record.tags:
                return
            self._check_quotas({}, record.tags + [tag])
            self._check_size(record.properties, record.tags + [tag])
            if self.db.add_tag(image_id, tag, expect_version=record.version):
                return
        raise Conflict("The image changed while its tag was being added; retry.")

    def remove_tag(self, image_id: str, tag: str, ctx: RequestContext) -> None:
        self.authorized(image_id, ctx, "modify_image")
        if not self.db.remove_tag(image_id, tag):
            self.get(image_id)  # 404 for the image first
            raise NotFound(f"Tag {tag} not found.")

    def deactivate(self, image_id: str, ctx: RequestContext) -> None:
        self._flip(self.authorized(image_id, ctx, "deactivate"), DEACTIVATE)

    def reactivate(self, image_id: str, ctx: RequestContext) -> None:
        self._flip(self.authorized(image_id, ctx, "reactivate"), REACTIVATE)

    def _flip(self, record: ImageRecord, change: Transition) -> None:
        """Apply `change`; already in its target status is success, as in Glance."""
        image_id = record.id
        if record.status == change.target:
            return
        if record.status != change.source or not self.db.cas_status(
                image_id, change.source, change.target):
            status = (self.db.get(image_id) or record).status
            raise Forbidden(f"Not allowed to {change.verb} image in status '{status}'")
        LOG.info("image %s: %s -> %s", image_id, change.source, change.target)

    def delete(self, image_id: str, ctx: RequestContext) -> None:
        self.authorized(image_id, ctx, "delete_image")
        for _attempt in range(CAS_ATTEMPTS):
            # Conditional on protected=false in the UPDATE itself (chute.images.db).
            locations = self.db.soft_delete(image_id)
            if locations is not None:
                break
            if self.get(image_id).protected:  # 404 if it is gone
                raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        else:
            raise Conflict(f"Image {image_id} changed while it was being deleted; retry.")
        for location in locations:
            self._delete_data(location)
        for store in self.stores:
            store.unstage(image_id)  # data staged for an import (chute.images.imports)
        LOG.info("deleted image %s", image_id)

    def _delete_data(self, location: LocationRecord) -> None:
        store = for_url(self.stores, location.url)
        if store is None:
            LOG.warning("no store handles %s; its data is left in place", location.url)
            return
        store.delete(location.url)
