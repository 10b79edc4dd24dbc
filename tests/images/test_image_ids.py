"""Issue 18, item 4: image ids have one form (lower-case 8-4-4-4-12), decided at the edge."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.helpers.images import JSON, create


def _post(api, image_id):
    return requests.post(f"{api.url}/v2/images", headers=JSON, timeout=10,
                         json={"id": image_id, "disk_format": "raw", "container_format": "bare"})


@pytest.mark.parametrize("shape", [
    "{id}\n", "{id}\r\n", " {id}", "{id} ", "{{{id}}}", "urn:uuid:{id}", "{hex}",
    "{id}0", "{id}\x00", "{short}\u0663",
])
def test_an_id_in_any_other_form_is_refused_with_400_and_nothing_is_stored(shared_api, shape):
    good = str(uuid.uuid4())
    bad = shape.format(id=good, hex=good.replace("-", ""), short=good[:-1])
    resp = _post(shared_api, bad)
    assert resp.status_code == 400, resp.text
    listed = requests.get(f"{shared_api.url}/v2/images?id={good}", headers=JSON).json()
    assert listed["images"] == []
    assert _post(shared_api, good).status_code == 201  # the id itself was never taken


def test_an_upper_case_id_is_stored_lower_case_and_found_in_any_case(shared_api):
    upper = str(uuid.uuid4()).upper()
    resp = _post(shared_api, upper)
    assert resp.status_code == 201, resp.text
    assert resp.json()["id"] == upper.lower()
    assert resp.headers["Location"].endswith(upper.lower())
    for form in (upper, upper.lower()):
        assert requests.get(f"{shared_api.url}/v2/images/{form}",
                            headers=JSON).json()["id"] == upper.lower()
    listed = requests.get(f"{shared_api.url}/v2/images?id={upper}", headers=JSON).json()
    assert [image["id"] for image in listed["images"]] == [upper.lower()]
    marked = requests.get(f"{shared_api.url}/v2/images?marker={upper}", headers=JSON)
    assert marked.status_code == 200, marked.text


def test_a_deleted_id_cannot_be_reused_by_changing_its_case(shared_api):
    image = create(shared_api, name="once")
    assert requests.delete(f"{shared_api.url}/v2/images/{image['id'].upper()}").status_code \
        == 204
    assert requests.get(f"{shared_api.url}/v2/images/{image['id']}").status_code == 404
    resp = _post(shared_api, image["id"].upper())
    assert resp.status_code == 409, resp.text


@pytest.mark.parametrize("path", ["{id}%0A", "%7B{id}%7D", "not-an-id", "{id}%20"])
def test_a_path_id_in_another_form_names_no_image(shared_api, path):
    image = create(shared_api, name="pathed")
    url = f"{shared_api.url}/v2/images/{path.format(id=image['id'])}"
    for method in ("GET", "DELETE", "PATCH"):
        resp = requests.request(method, url, headers=JSON)
        assert resp.status_code == 404, (method, resp.text)
    assert requests.put(f"{url}/tags/t", headers=JSON).status_code == 404
    assert requests.get(f"{shared_api.url}/v2/images/{image['id']}").status_code == 200


def test_a_marker_that_is_no_id_is_refused(shared_api):
    resp = requests.get(f"{shared_api.url}/v2/images?marker=x%0A", headers=JSON)
    assert resp.status_code == 400
    assert "marker [x\n] not found" in resp.json()["message"]
