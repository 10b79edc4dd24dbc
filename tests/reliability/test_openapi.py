"""The OpenAPI documents (issue 5 item 9) against the implementation.

- Each service serves its document at GET /openapi.json.
- Every route (path + method) the Falcon apps register is documented, and every documented one
  is registered (falcon.inspect on the very apps the services build).
- A tour of every documented operation against real servers (success and error cases): each
  response's status is documented and its body validates, with jsonschema, against the
  documented schema for that status and content type.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import falcon.inspect
import requests
from jsonschema import Draft202012Validator

from chute import config
from chute.compute.api import create_app
from chute.images.app import make_app
from chute.images.options import SCHEMA as IMAGES_SCHEMA
from chute.images.options import ApiSettings
from chute.openapi import COMPUTE, IMAGES
from chute.stores import from_settings as stores_from_settings
from tests.helpers import compute_tour

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def documented(document: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item if method in METHODS}


def registered(app: Any) -> set[tuple[str, str]]:
    return {(route.path, method.method) for route in falcon.inspect.inspect_routes(app)
            for method in route.methods if not method.internal}


def images_app(tmp_path: Path) -> Any:
    conf_path = tmp_path / "chute-api.conf"
    conf_path.write_text(f"[glance_store]\nfilesystem_store_datadir = {tmp_path}/images\n")
    conf = config.load(conf_path, IMAGES_SCHEMA)
    settings = ApiSettings.from_config(conf)
    return make_app(settings, stores_from_settings(settings.store, conf.fail))


def test_every_route_is_documented_and_vice_versa(tmp_path):
    assert registered(images_app(tmp_path)) == documented(IMAGES)
    assert registered(create_app(None)) == documented(COMPUTE)  # routes only: no requests


def test_documents_are_served(shared_api, start_compute):
    assert requests.get(shared_api.url + "/openapi.json", timeout=10).json() == IMAGES
    compute = start_compute(shared_api)
    assert requests.get(compute.url + "/openapi.json", timeout=10).json() == COMPUTE


class Checker:
    """Validates responses of one API against its document; remembers what was exercised."""

    def __init__(self, document: dict, base: str) -> None:
        self.document, self.base = document, base
        self.seen: set[tuple[str, str]] = set()
        self.count = 0
        self.session = requests.Session()

    def __call__(self, method: str, template: str, want: int, path: str | None = None,
                 **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        resp = self.session.request(method, self.base + (path or template), **kwargs)
        assert resp.status_code == want, (method, path or template, resp.status_code, resp.text)
        self.validate(method, template, resp)
        return resp

    def validate(self, method: str, template: str, resp: requests.Response) -> None:
        operation = self.document["paths"][template][method.lower()]
        responses = operation["responses"]
        spec = responses.get(str(resp.status_code)) or responses.get("default")
        assert spec is not None, (method, template, resp.status_code)
        if "$ref" in spec:
            spec = self.document["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
        content = spec.get("content")
        if not content:
            assert resp.content == b"", (method, template, resp.status_code)
        else:
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
            assert media in content, (method, template, resp.status_code, media)
            if media == "application/json":
                schema = {**content[media]["schema"], "components": self.document["components"]}
                Draft202012Validator(schema).validate(resp.json())
        self.seen.add((template, method.upper()))
        self.count += 1


def test_responses_validate_against_the_images_document(shared_api, capsys):
    api = Checker(IMAGES, shared_api.url)
    js = {"Accept": "application/json"}
    octet = {"Content-Type": "application/octet-stream", **js}
    patch = {"Content-Type": "application/openstack-images-v2.1-json-patch", **js}
    api("GET", "/", 300)
    api("GET", "/versions", 200)
    api("GET", "/openapi.json", 200)
    api("GET", "/v2/schemas/image", 200)
    api("GET", "/v2/schemas/images", 200)
    api("GET", "/v2/schemas/member", 200)
    api("GET", "/v2/schemas/members", 200)
    api("GET", "/v2/info/usage", 200)
    api("GET", "/v2/info/stores", 404, headers=js)
    api("GET", "/v2/info/stores/detail", 404, headers=js)
    api("GET", "/v2/info/import", 200)
    staged = api("POST", "/v2/images", 201, headers=js, json={
        "disk_format": "raw", "container_format": "bare"}).json()
    two = f"/v2/images/{staged['id']}"
    api("POST", "/v2/images/{image_id}/import", 409, f"{two}/import", headers=js,
        json={"method": {"name": "glance-direct"}})
    api("PUT", "/v2/images/{image_id}/stage", 204, f"{two}/stage", data=b"s" * 4096,
        headers=octet)
    api("GET", "/v2/images/{image_id}", 200, two, headers=js)  # uploading
    api("POST", "/v2/images/{image_id}/import", 202, f"{two}/import",
        json={"method": {"name": "glance-direct"}})
    api("PUT", "/v2/images/{image_id}/stage", 409, f"{two}/stage", data=b"s", headers=octet)
    image = api("POST", "/v2/images", 201, headers=js, json={
        "name": "doc", "disk_format": "raw", "container_format": "bare", "tags": ["a"],
        "hw_disk_bus": "scsi"}).json()
    one = f"/v2/images/{image['id']}"
    api("POST", "/v2/images", 400, headers=js, json={"disk_format": "floppy"})
    api("POST", "/v2/images", 403, headers=js, json={"status": "active"})
    api("POST", "/v2/images", 409, headers=js, json={"id": image["id"]})
    api("POST", "/v2/images", 400, headers=js, json={"min_disk": 2**40})
    api("GET", "/v2/images", 200, headers=js, params={"limit": 1})
    api("GET", "/v2/images", 400, headers=js, params={"limit": "x"})
    api("GET", "/v2/images/{image_id}", 200, one, headers=js)
    api("GET", "/v2/images/{image_id}", 404, "/v2/images/nope", headers=js)
    api("GET", "/v2/images/{image_id}", 404, "/v2/images/nope")  # HTML error body
    api("PATCH", "/v2/images/{image_id}", 200, one, headers=patch,
        json=[{"op": "replace", "path": "/name", "value": "doc2"}])
    api("PATCH", "/v2/images/{image_id}", 415, one, headers=js, json=[])
    api("PATCH", "/v2/images/{image_id}", 403, one, headers=patch,
        json=[{"op": "replace", "path": "/os_glance_blake3_blocks", "value": "0" * 64}])
    api("PUT", "/v2/images/{image_id}/tags/{tag}", 204, f"{one}/tags/b")
    api("DELETE", "/v2/images/{image_id}/tags/{tag}", 204, f"{one}/tags/b")
    api("DELETE", "/v2/images/{image_id}/tags/{tag}", 404, f"{one}/tags/b", headers=js)
    api("GET", "/v2/images/{image_id}/file", 204, f"{one}/file")
    api("GET", "/v2/images/{image_id}/extents", 204, f"{one}/extents")
    api("GET", "/v2/images/{image_id}/extents", 404, "/v2/images/nope/extents", headers=js)
    api("POST", "/v2/images/{image_id}/actions/deactivate", 403, f"{one}/actions/deactivate",
        headers=js)
    data = hashlib.shake_256(b"doc").digest(3000)
    api("PUT", "/v2/images/{image_id}/file", 415, f"{one}/file", data=data, headers=js)
    api("PUT", "/v2/images/{image_id}/file", 204, f"{one}/file", data=data, headers=octet)
    api("PUT", "/v2/images/{image_id}/file", 409, f"{one}/file", data=data, headers=octet)
    done = api("GET", "/v2/images/{image_id}", 200, one, headers=js).json()
    assert done["status"] == "active" and done["os_glance_blake3_blocks"]
    assert api("GET", "/v2/images/{image_id}/file", 200, f"{one}/file").content == data
    part = api("GET", "/v2/images/{image_id}/file", 206, f"{one}/file",
               headers={"Range": "bytes=10-19"})
    assert part.content == data[10:20]
    api("GET", "/v2/images/{image_id}/file", 416, f"{one}/file",
        headers={"Range": "bytes=5000-", **js})
    assert api("GET", "/v2/images/{image_id}/extents", 200, f"{one}/extents").json() == {
        "size": len(data), "extents": [{"offset": 0, "length": len(data)}]}
    api("GET", "/v2/images/{image_id}/locations", 200, f"{one}/locations", headers=js)
    api("GET", "/v2/images/{image_id}/tasks", 200, f"{one}/tasks")
    api("GET", "/v2/images/{image_id}/tasks", 404, "/v2/images/nope/tasks", headers=js)
    members, member = f"{one}/members", f"{one}/members/proj-b"
    api("POST", "/v2/images/{image_id}/members", 200, members, json={"member": "proj-b"})
    api("POST", "/v2/images/{image_id}/members", 409, members, headers=js,
        json={"member": "proj-b"})
    api("GET", "/v2/images/{image_id}/members", 200, members)
    api("GET", "/v2/images/{image_id}/members/{member_id}", 200, member)
    api("PUT", "/v2/images/{image_id}/members/{member_id}", 200, member,
        json={"status": "accepted"})
    api("PUT", "/v2/images/{image_id}/members/{member_id}", 400, member, headers=js,
        json={"status": "maybe"})
    api("DELETE", "/v2/images/{image_id}/members/{member_id}", 204, member)
    api("DELETE", "/v2/images/{image_id}/members/{member_id}", 404, member, headers=js)
    api("POST", "/v2/images/{image_id}/actions/deactivate", 204, f"{one}/actions/deactivate")
    api("GET", "/v2/images/{image_id}/file", 403, f"{one}/file", headers=js)
    api("GET", "/v2/images/{image_id}/extents", 403, f"{one}/extents", headers=js)
    api("POST", "/v2/images/{image_id}/actions/reactivate", 204, f"{one}/actions/reactivate")
    api("DELETE", "/v2/stores/{store_id}/{image_id}", 404, f"/v2/stores/rack1/{image['id']}",
        headers=js)
    api("DELETE", "/v2/images/{image_id}", 204, one)
    api("DELETE", "/v2/images/{image_id}", 404, one, headers=js)
    assert api.seen == documented(IMAGES)
    with capsys.disabled():
        print(f"\n[openapi] images: {api.count} responses validated, "
              f"{len(api.seen)} of {len(documented(IMAGES))} operations exercised")


def test_responses_validate_against_the_compute_document(shared_api, start_compute, capsys):
    compute = start_compute(shared_api)
    api = Checker(COMPUTE, compute.url)
    image = requests.post(shared_api.url + "/v2/images", timeout=10, json={
        "name": "doc", "disk_format": "raw", "container_format": "bare"}).json()
    requests.put(f"{shared_api.url}/v2/images/{image['id']}/file", data=b"\0" * 4096,
                 headers={"Content-Type": "application/octet-stream"}, timeout=10)
    api("GET", "/", 300)
    api("GET", "/v2.1", 200)
    api("GET", "/openapi.json", 200)
    api("GET", "/v2.1/flavors", 200)
    api("GET", "/v2.1/flavors/detail", 200)
    api("GET", "/v2.1/flavors/{flavor_id}", 200, "/v2.1/flavors/1")
    api("GET", "/v2.1/flavors/{flavor_id}", 404, "/v2.1/flavors/99")
    api("POST", "/v2.1/flavors", 200, json={"flavor": {
        "name": "doc.private", "id": "doc-1", "ram": 64, "vcpus": 1, "disk": 1,
        "os-flavor-access:is_public": False}})
    api("POST", "/v2.1/flavors/{flavor_id}/action", 200, "/v2.1/flavors/doc-1/action",
        json={"addTenantAccess": {"tenant": "p1"}})
    api("GET", "/v2.1/flavors/{flavor_id}/os-flavor-access", 200,
        "/v2.1/flavors/doc-1/os-flavor-access")
    api("DELETE", "/v2.1/flavors/{flavor_id}", 202, "/v2.1/flavors/doc-1")
    api("POST", "/v2.1/servers", 400, json={"server": {"name": "x"}})
    api("POST", "/v2.1/servers", 400, json=[1])
    api("POST", "/v2.1/servers", 400, data=b"{", headers={"Content-Type": "application/json"})
    api("POST", "/v2.1/servers", 400, json={"server": {
        "name": "x", "imageRef": "nope", "flavorRef": "1"}})
    hungry = requests.post(shared_api.url + "/v2/images", timeout=10, json={
        "name": "doc-hungry", "disk_format": "raw", "container_format": "bare",
        "min_ram": 4096}).json()
    requests.put(f"{shared_api.url}/v2/images/{hungry['id']}/file", data=b"\0" * 4096,
                 headers={"Content-Type": "application/octet-stream"}, timeout=10)
    api("POST", "/v2.1/servers", 400, json={"server": {
        "name": "x", "imageRef": hungry["id"], "flavorRef": "1"}})
    created = api("POST", "/v2.1/servers", 202, json={"server": {
        "name": "doc", "imageRef": image["id"], "flavorRef": "1"}}).json()["server"]
    one = f"/v2.1/servers/{created['id']}"
    deadline = time.monotonic() + 30
    while api("GET", "/v2.1/servers/{server_id}", 200, one).json()["server"]["status"] == "BUILD":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    act = "/v2.1/servers/{server_id}/action"
    api("POST", act, 200, one + "/action", json={"os-getConsoleOutput": {"length": 5}})
    api("POST", act, 409, one + "/action", json={"os-start": None})
    api("POST", act, 400, one + "/action", json={"os-nothing": None})
    api("POST", act, 202, one + "/action", json={"reboot": {"type": "HARD"}})
    api("GET", "/v2.1/servers", 200)
    api("GET", "/v2.1/servers/detail", 200)
    compute_tour.exercise(api, created["id"])
    api("GET", "/v2.1/servers/{server_id}", 404, "/v2.1/servers/nope")
    api("DELETE", "/v2.1/servers/{server_id}", 204, one)
    api("DELETE", "/v2.1/servers/{server_id}", 404, one)
    assert api.seen == documented(COMPUTE)
    # Routes not documented answer in the documented fault shape too.
    for method, path, status in (("POST", "/v2.1/servers/detail", 405),
                                 ("GET", "/v2.1/nothing", 404)):
        resp = requests.request(method, compute.url + path, timeout=10)
        assert resp.status_code == status, (method, path, resp.status_code)
        Draft202012Validator({**COMPUTE["components"]["schemas"]["Fault"]}).validate(
            resp.json())
    with capsys.disabled():
        print(f"\n[openapi] compute: {api.count} responses validated, "
              f"{len(api.seen)} of {len(documented(COMPUTE))} operations exercised")
