"""Images API behaviour against the Glance v2 reference: documents, errors, lists, PATCH."""

from __future__ import annotations

import http.client
import json
import uuid

import jsonschema
import pytest
import requests

from tests.helpers.images import JSON, create, show, upload

PATCH21 = {"Content-Type": "application/openstack-images-v2.1-json-patch", **JSON}
PATCH20 = {"Content-Type": "application/openstack-images-v2.0-json-patch", **JSON}


def patch(api, image_id, ops, headers=PATCH21):
    return requests.patch(f"{api.url}/v2/images/{image_id}", data=json.dumps(ops),
                          headers=headers)


@pytest.mark.backend_independent
def test_versions_root_is_300_and_versions_200_with_public_hrefs(shared_api):
    root = requests.get(shared_api.url + "/")
    versions = requests.get(shared_api.url + "/versions")
    assert root.status_code == 300 and versions.status_code == 200
    assert root.json() == versions.json()
    entries = versions.json()["versions"]
    assert entries[0] == {"id": "v2.9", "status": "CURRENT",
                          "links": [{"rel": "self", "href": shared_api.url + "/v2/"}]}
    assert {e["id"] for e in entries} == {"v2.0", "v2.1", "v2.2", "v2.3", "v2.4", "v2.5",
                                          "v2.6", "v2.7", "v2.9"}


@pytest.mark.backend_independent
def test_public_endpoint_is_used_for_version_hrefs(start_api):
    api = start_api(DEFAULT={"public_endpoint": "https://images.example.com:443"})
    href = requests.get(api.url + "/versions").json()["versions"][0]["links"][0]["href"]
    assert href == "https://images.example.com:443/v2/"


def test_every_document_validates_against_the_served_schema(shared_api):
    schema = requests.get(shared_api.url + "/v2/schemas/image").json()
    assert schema["additionalProperties"] == {"type": "string"}
    assert "qcow2" in schema["properties"]["disk_format"]["enum"]
    assert None in schema["properties"]["disk_format"]["enum"]
    assert schema["properties"]["os_glance_blake3_blocks"]["readOnly"] is True
    image = create(shared_api, name="schema-check", hw_disk_bus="scsi", tags=["t"])
    upload(shared_api, image["id"], b"data")
    listed = requests.get(shared_api.url + "/v2/images?limit=1000").json()
    images_schema = requests.get(shared_api.url + "/v2/schemas/images").json()
    jsonschema.Draft4Validator(images_schema).validate(listed)
    for doc in [image, show(shared_api, image["id"]), *listed["images"]]:
        jsonschema.Draft4Validator(schema).validate(doc)


def test_create_defaults_and_location_header(shared_api):
    resp = requests.post(shared_api.url + "/v2/images", json={"name": "d"}, headers=JSON)
    assert resp.status_code == 201
    doc = resp.json()
    assert resp.headers["Location"].endswith(f"/v2/images/{doc['id']}")
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    expected = {"status": "queued", "visibility": "shared", "protected": False,
                "os_hidden": False, "min_disk": 0, "min_ram": 0, "size": None,
                "virtual_size": None, "checksum": None, "owner": None, "tags": [],
                "locations": [], "disk_format": None, "container_format": None}
    assert {k: doc[k] for k in expected} == expected
    assert "direct_url" not in doc
    assert doc["self"] == f"/v2/images/{doc['id']}"
    assert doc["created_at"].endswith("Z") and len(doc["created_at"]) == 20


@pytest.mark.parametrize("body,status,text", [
    ({"self": "x"}, 403, "Attribute 'self' is read-only."),
    ({"checksum": "x"}, 403, "Attribute 'checksum' is read-only."),
    ({"os_glance_blake3_blocks": "ab"}, 403, "Attribute 'os_glance_blake3_blocks' is read-only."),
    ({"os_glance_x": "y"}, 403, "Attribute 'os_glance_x' is reserved."),
    ({"locations": []}, 403, "Attribute 'locations' is reserved."),
    ({"disk_format": "floppy"}, 400, "floppy"),
    ({"min_ram": "1"}, 400, "min_ram"),
    ({"min_disk": -1}, 400, "negative"),
    ({"custom": 5}, 400, "custom"),
    ({"id": "not-a-uuid"}, 400, "id"),
])
def test_create_errors(shared_api, body, status, text):
    resp = requests.post(shared_api.url + "/v2/images", json=body, headers=JSON)
    assert resp.status_code == status, resp.text
    assert text in resp.json()["message"]


def test_client_id_is_honoured_and_reserved_after_delete(shared_api):
    image_id = str(uuid.uuid4())
    assert create(shared_api, id=image_id)["id"] == image_id
    dup = requests.post(shared_api.url + "/v2/images", json={"id": image_id}, headers=JSON)
    assert dup.status_code == 409
    assert requests.delete(f"{shared_api.url}/v2/images/{image_id}").status_code == 204
    assert requests.get(f"{shared_api.url}/v2/images/{image_id}").status_code == 404
    again = requests.post(shared_api.url + "/v2/images", json={"id": image_id}, headers=JSON)
    assert again.status_code == 409
    assert f"Image ID {image_id} already exists!" in again.json()["message"]


@pytest.mark.backend_independent
def test_error_bodies_are_negotiated_like_webob(shared_api):
    url = f"{shared_api.url}/v2/images/no-such-image"
    html = requests.get(url)
    assert html.status_code == 404
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text == ("<html><head><title>404 Not Found</title></head><body><h1>404 Not "
                         "Found</h1>No image found with ID no-such-image<br /><br />\n\n\n"
                         "</body></html>")
    as_json = requests.get(url, headers=JSON)
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json() == {"message": "No image found with ID no-such-image<br /><br />\n\n\n",
                              "code": "404 Not Found", "title": "Not Found"}
    plain = requests.get(url, headers={"Accept": "text/plain"})
    assert plain.text == "404 Not Found\n\nNo image found with ID no-such-image\n\n"
    for resp in (html, as_json, plain):
        assert resp.headers["x-openstack-request-id"].startswith("req-")


def request(api, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """A raw request: requests would send an unknown method too, but http.client shows it plain."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request(method, path, headers=JSON)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.backend_independent
def test_unknown_methods_are_501_on_unknown_paths_and_405_on_known_ones(shared_api):
    status, _, body = request(shared_api, "FOO", "/v2/nowhere")
    assert status == 501
    assert json.loads(body)["message"].startswith("The method FOO is not implemented")
    assert request(shared_api, "TRACE", "/v2/images/x/y/z")[0] == 501
    assert request(shared_api, "PATCH", "/v2/nowhere")[0] == 404  # a method Glance knows
    status, headers, body = request(shared_api, "FOO", "/v2/images")
    assert status == 405 and json.loads(body)["message"].startswith("The method FOO is not")
    assert set(headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}
    assert request(shared_api, "PROPFIND", "/v2/images")[0] == 405


@pytest.mark.backend_independent
def test_405_with_allow_and_body_not_expected(shared_api):
    image = create(shared_api)
    resp = requests.head(f"{shared_api.url}/v2/images/{image['id']}/file")
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT"}
    resp = requests.post(f"{shared_api.url}/v2/images/{image['id']}", headers=JSON)
    assert resp.status_code == 405
    resp = requests.get(f"{shared_api.url}/v2/images/{image['id']}", data=b"body", headers=JSON)
    assert resp.status_code == 400
    assert "A body is not expected" in resp.json()["message"]
    resp = requests.post(shared_api.url + "/v2/images", data=b"{bad", headers=JSON)
    assert resp.status_code == 400 and "Malformed JSON" in resp.json()["message"]


def test_patch_rules(shared_api):
    image = create(shared_api, name="p", os_distro="fedora")
    iid = image["id"]
    resp = patch(shared_api, iid, [{"op": "replace", "path": "/name", "value": "q"},
                                   {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
                                   {"op": "remove", "path": "/os_distro"},
                                   {"op": "replace", "path": "/tags", "value": ["a", "b"]}])
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["name"] == "q" and doc["hw_disk_bus"] == "scsi" and "os_distro" not in doc
    assert sorted(doc["tags"]) == ["a", "b"]
    resp = patch(shared_api, iid, [{"replace": "/min_ram", "value": 512}], PATCH20)
    assert resp.status_code == 200 and resp.json()["min_ram"] == 512

    bad_type = requests.patch(f"{shared_api.url}/v2/images/{iid}", data="[]",
                              headers={"Content-Type": "application/json", **JSON})
    assert bad_type.status_code == 415
    assert "application/openstack-images-v2.1-json-patch" in bad_type.headers["Accept-Patch"]
    cases = [
        ([{"op": "replace", "path": "/status", "value": "active"}], 403, "read-only"),
        ([{"op": "add", "path": "/os_glance_blake3_blocks", "value": "00"}], 403, "read-only"),
        ([{"op": "add", "path": "/os_glance_x", "value": "1"}], 403, "reserved"),
        ([{"op": "remove", "path": "/name"}], 403, "may not be removed"),
        ([{"op": "remove", "path": "/nope"}], 409, "does not exist"),
        ([{"op": "replace", "path": "/nope", "value": "x"}], 409, "does not exist"),
        ([{"op": "add", "path": "/tags/-", "value": "x"}], 400, "Invalid JSON pointer"),
        ([{"op": "move", "path": "/name"}], 400, "Operation"),
        ([{"op": "add", "path": "/custom", "value": 1}], 400, "schema"),
        ({"op": "add"}, 400, "array"),
    ]
    for ops, status, text in cases:
        resp = patch(shared_api, iid, ops)
        assert resp.status_code == status, (ops, resp.text)
        assert text in resp.json()["message"], (ops, resp.text)
    # Atomic: a failing op leaves the earlier ones unapplied.
    resp = patch(shared_api, iid, [{"op": "replace", "path": "/name", "value": "zzz"},
                                   {"op": "remove", "path": "/nope"}])
    assert resp.status_code == 409 and show(shared_api, iid)["name"] == "q"
    upload(shared_api, iid, b"bytes")
    resp = patch(shared_api, iid, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert resp.status_code == 403 and "queued" in resp.json()["message"]


def test_delete_protected_and_file_removal(shared_api):
    image = create(shared_api, protected=True)
    upload(shared_api, image["id"], b"protected bytes")
    path = shared_api.datadir / image["id"]
    resp = requests.delete(f"{shared_api.url}/v2/images/{image['id']}", headers=JSON)
    assert resp.status_code == 403 and "is protected" in resp.json()["message"]
    assert path.exists()
    patch(shared_api, image["id"], [{"op": "replace", "path": "/protected", "value": False}])
    assert requests.delete(f"{shared_api.url}/v2/images/{image['id']}").status_code == 204
    assert not path.exists()
    assert requests.delete(f"{shared_api.url}/v2/images/{image['id']}").status_code == 404


def test_tags(shared_api):
    image = create(shared_api)
    url = f"{shared_api.url}/v2/images/{image['id']}/tags"
    assert requests.put(url + "/gold").status_code == 204
    assert requests.put(url + "/gold").status_code == 204
    assert show(shared_api, image["id"])["tags"] == ["gold"]
    assert requests.delete(url + "/gold").status_code == 204
    assert requests.delete(url + "/gold").status_code == 404
    assert requests.put(url + "/" + "x" * 256).status_code == 400
    assert requests.put(f"{shared_api.url}/v2/images/{uuid.uuid4()}/tags/a").status_code == 404


def test_deactivate_reactivate(shared_api):
    image = create(shared_api)
    actions = f"{shared_api.url}/v2/images/{image['id']}/actions"
    resp = requests.post(actions + "/deactivate", headers=JSON)
    assert resp.status_code == 403 and "status 'queued'" in resp.json()["message"]
    upload(shared_api, image["id"], b"data")
    assert requests.post(actions + "/deactivate").status_code == 204
    assert requests.post(actions + "/deactivate").status_code == 204
    assert show(shared_api, image["id"])["status"] == "deactivated"
    resp = requests.get(f"{shared_api.url}/v2/images/{image['id']}/file")
    assert resp.status_code == 403
    assert requests.post(actions + "/reactivate").status_code == 204
    assert requests.get(f"{shared_api.url}/v2/images/{image['id']}/file").content == b"data"


@pytest.mark.backend_independent
def test_locations_endpoint_is_gated_by_service_token(start_api):
    api = start_api(DEFAULT={"service_token": "s3cret", "show_multiple_locations": False,
                             "show_image_direct_url": False})
    image = create(api)
    upload(api, image["id"], b"located")
    doc = show(api, image["id"])
    assert "locations" not in doc and "direct_url" not in doc
    url = f"{api.url}/v2/images/{image['id']}/locations"
    assert requests.get(url).status_code == 403
    assert requests.get(url, headers={"X-Auth-Token": "wrong"}).status_code == 403
    resp = requests.get(url, headers={"X-Auth-Token": "s3cret"})
    assert resp.status_code == 200
    assert resp.json() == [{"url": f"file://{api.datadir / image['id']}",
                            "metadata": {"id": "shared-fs-1",
                                         "mountpoint": str(api.root / "store")}}]


@pytest.mark.backend_independent
def test_one_log_line_per_request_with_its_id(shared_api):
    image = create(shared_api, name="logged")
    resp = requests.get(f"{shared_api.url}/v2/images/{image['id']}")
    request_id = resp.headers["x-openstack-request-id"]
    lines = [line for line in shared_api.log_text().splitlines() if request_id in line]
    assert len(lines) == 1, lines
    assert f"GET /v2/images/{image['id']} status: 200" in lines[0]
    upload(shared_api, image["id"], b"abc")
    put_lines = [line for line in shared_api.log_text().splitlines() if "saving -> active" in line
                 and image["id"] in line]
    assert len(put_lines) == 1 and "[req-" in put_lines[0]  # service lines carry the id too


def test_property_and_tag_quotas_are_413(start_api):
    api = start_api(DEFAULT={"image_property_quota": 2, "image_tag_quota": 1})
    resp = requests.post(api.url + "/v2/images", json={"a": "1", "b": "2", "c": "3"},
                         headers=JSON)
    assert resp.status_code == 413
    image = create(api, a="1", tags=["t"])
    resp = patch(api, image["id"], [{"op": "add", "path": "/b", "value": "2"},
                                    {"op": "add", "path": "/c", "value": "3"}])
    assert resp.status_code == 413
    assert requests.put(f"{api.url}/v2/images/{image['id']}/tags/u").status_code == 413
    assert requests.put(f"{api.url}/v2/images/{image['id']}/tags/t").status_code == 204
