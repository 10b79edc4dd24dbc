"""`/v2.1/flavors`: the list and one flavor (Nova's shapes, views.py), and the admin's
os-flavor-manage (create, delete) and os-flavor-access (which projects see a private flavor),
over compute/flavors.py.

A create honours what chute can give a server or refuses it with a 400 naming it: chute makes
a root disk only, so `swap` and `OS-FLV-EXT-DATA:ephemeral` must be 0, and `rxtx_factor`
(a network bandwidth weight chute has no network to apply) must be 1.0.
"""

from __future__ import annotations

from typing import Any

import falcon

from chute import httpapi
from chute.compute import flavors, microversion, views
from chute.compute.flavors import Flavor
from chute.compute.request_auth import is_admin, project_id, require_admin
from chute.errors import BadComputeRequest, FlavorNotFound

INT_MAX = 2**31 - 1  # Nova's db.MAX_INT for ram, vcpus, disk
CREATE_FIELDS = {"name", "id", "ram", "vcpus", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral",
                 "rxtx_factor", "os-flavor-access:is_public"}
DESCRIPTION_MAX = 65535


def _base_url(req: falcon.Request) -> str:
    return req.prefix.rstrip("/")


def _invalid(field: str, why: str) -> BadComputeRequest:
    return BadComputeRequest(f"Invalid input for field/attribute {field}. {why}")


def _integer(body: dict[str, Any], field: str, minimum: int, default: int | None = None) -> int:
    value = body.get(field, default)
    if value is None:
        raise BadComputeRequest(f"Invalid input for field/attribute flavor. "
                                f"'{field}' is a required property")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, f"Value: {value}. {value!r} is not of type 'integer'")
    if not minimum <= value <= INT_MAX:
        raise _invalid(field, f"Value: {value}. {value} is outside {minimum}..{INT_MAX}")
    return value


def _text(value: object, field: str, maximum: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= maximum:
        raise _invalid(field, f"Value: {value}. a string of 1 to {maximum} characters is "
                              "required")
    return value


def _flavor_id(value: object) -> str:
    if value is None or value == "auto":
        return flavors.new_id()
    text = _text(value, "id", 255)
    if not flavors.ID_PATTERN.match(text):
        raise _invalid("id", f"Value: {text}. It must be letters, digits, '.', '_', '-' or "
                             "spaces inside")
    return text


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if _integer(body, "swap", 0, default=0) != 0:
        raise BadComputeRequest("chute-compute does not support swap disks: 'swap' must be 0.")
    if _integer(body, "OS-FLV-EXT-DATA:ephemeral", 0, default=0) != 0:
        raise BadComputeRequest("chute-compute does not support ephemeral disks: "
                                "'OS-FLV-EXT-DATA:ephemeral' must be 0.")
    rxtx = body.get("rxtx_factor", 1.0)
    if isinstance(rxtx, bool) or not isinstance(rxtx, int | float) or rxtx != 1.0:
        raise BadComputeRequest("chute-compute has no network to weigh: 'rxtx_factor' must "
                                "be 1.0.")


def parse_create(body: object, version: microversion.APIVersion) -> Flavor:
    """Nova's create_flavor schema (nova/api/openstack/compute/schemas/flavor_manage.py)."""
    if not isinstance(body, dict) or not isinstance(body.get("flavor"), dict):
        raise BadComputeRequest("Invalid input for field/attribute flavor. "
                                "'flavor' is a required property")
    fields: dict[str, Any] = body["flavor"]
    allowed = CREATE_FIELDS | ({"description"} if version.at_least("2.55") else set())
    extra = sorted(set(fields) - allowed)
    if extra:
        raise BadComputeRequest(f"Invalid input for field/attribute flavor. Additional "
                                f"properties are not allowed ({extra[0]!r} was unexpected)")
    name = _text(fields.get("name"), "name", 255)
    if name != name.strip():
        raise _invalid("name", f"Value: {name}. leading or trailing spaces are not allowed")
    _refuse_unsupported(fields)
    is_public = fields.get("os-flavor-access:is_public", True)
    if not isinstance(is_public, bool):
        raise _invalid("os-flavor-access:is_public",
                       f"Value: {is_public}. {is_public!r} is not of type 'boolean'")
    description = fields.get("description")
    if description is not None:
        description = _text(description, "description", DESCRIPTION_MAX)
    return Flavor(_flavor_id(fields.get("id")), name, _integer(fields, "vcpus", 1),
                  _integer(fields, "ram", 1), _integer(fields, "disk", 0), is_public,
                  description)


def _shared_with_caller(req: falcon.Request, flavor: Flavor) -> bool:
    project = project_id(req)
    return project is not None and project in flavors.catalog().projects(flavor.id)


def _visible(req: falcon.Request, flavor: Flavor) -> bool:
    return flavor.is_public or is_admin(req) or _shared_with_caller(req, flavor)


def visible_flavor(req: falcon.Request, flavor_id: str) -> Flavor:
    """A private flavor is, to anyone else than an admin or its projects, no flavor."""
    flavor = flavors.get(flavor_id)
    if not _visible(req, flavor):
        raise FlavorNotFound(f"Flavor {flavor_id} could not be found.")
    return flavor


def _public_filter(req: falcon.Request) -> bool | None:
    """Nova's `is_public` query: an admin may ask for private (false) or all (none); the
    default, and everyone else's, is the public flavors plus those shared with the project."""
    asked = (req.get_param("is_public") or "true").lower()
    if not is_admin(req) or asked in ("true", "t", "yes", "y", "1", "on"):
        return True
    if asked in ("none", "all"):
        return None
    if asked in ("false", "f", "no", "n", "0", "off"):
        return False
    raise BadComputeRequest(f"Invalid is_public filter [{asked}]")


class FlavorList:
    def __init__(self, detail: bool) -> None:
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base_url, version = _base_url(req), microversion.of(req)
        wanted = _public_filter(req)
        shown = [f for f in flavors.all_flavors()
                 if (wanted is None or f.is_public == wanted
                     or (wanted is True and _shared_with_caller(req, f)))]
        docs = [views.flavor_detail(base_url, f, version) if self.detail
                else views.flavor_summary(base_url, f) for f in shown]
        httpapi.json_response(resp, {"flavors": docs})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_admin(req, "os_compute_api:os-flavor-manage:create")
        version = microversion.of(req)
        flavor = flavors.catalog().create(parse_create(httpapi.read_json(req), version))
        httpapi.json_response(resp, {"flavor": views.flavor_detail(_base_url(req), flavor,
                                                                   version)})


class FlavorDetailList(FlavorList):
    """GET only: Nova has no POST /flavors/detail."""

    on_post = None  # type: ignore[assignment]


class FlavorItem:
    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        flavor = visible_flavor(req, flavor_id)
        httpapi.json_response(resp, {"flavor": views.flavor_detail(
            _base_url(req), flavor, microversion.of(req))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        require_admin(req, "os_compute_api:os-flavor-manage:delete")
        flavors.catalog().delete(flavor_id)
        resp.status = falcon.HTTP_202


def _access_body(flavor_id: str) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": project}
                              for project in flavors.catalog().projects(flavor_id)]}


class FlavorAccess:
    """`GET /flavors/{id}/os-flavor-access`: who may use a private flavor."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        require_admin(req, "os_compute_api:os-flavor-access")
        httpapi.json_response(resp, _access_body(flavor_id))


class FlavorAction:
    """`POST /flavors/{id}/action` with `addTenantAccess` or `removeTenantAccess`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadComputeRequest("Invalid input: one of addTenantAccess or "
                                    "removeTenantAccess is required.")
        (action, args), = body.items()
        if action not in ("addTenantAccess", "removeTenantAccess"):
            raise BadComputeRequest(f"There is no such action: {action}")
        require_admin(req, f"os_compute_api:os-flavor-access:{_rule(action)}")
        tenant = args.get("tenant") if isinstance(args, dict) else None
        if not isinstance(tenant, str) or not tenant:
            raise _invalid("tenant", f"Value: {tenant}. a project id is required")
        if action == "addTenantAccess":
            flavors.catalog().add_project(flavor_id, tenant)
        else:
            flavors.catalog().remove_project(flavor_id, tenant)
        httpapi.json_response(resp, _access_body(flavor_id))


def _rule(action: str) -> str:
    return "add_tenant_access" if action == "addTenantAccess" else "remove_tenant_access"

