"""The Nova v2.1 subset: versions, flavors, servers and error bodies, over real HTTP."""

import pytest
import requests

from tests.helpers.services import compute_on_database, prepare_compute


@pytest.fixture(scope="module")
def compute(tmp_path_factory, database_url):
    """One chute-compute for these read-only checks (no image service needed)."""
    server = prepare_compute(tmp_path_factory.mktemp("compute-api"),
                             **compute_on_database(database_url(), {}))
    yield server.start()
    server.stop()

CLASSIC = [("1", "m1.tiny", 1, 512, 1), ("2", "m1.small", 1, 2048, 20),
           ("3", "m1.medium", 2, 4096, 40), ("4", "m1.large", 4, 8192, 80),
           ("5", "m1.xlarge", 8, 16384, 160)]


def test_versions(compute):
    resp = requests.get(compute.url + "/")
    assert resp.status_code == 300
    (version,) = resp.json()["versions"]
    assert version["id"] == "v2.1" and version["status"] == "CURRENT"
    assert version["links"][0]["href"] == compute.url + "/v2.1/"
    resp = requests.get(compute.url + "/v2.1")
    assert resp.status_code == 200
    assert resp.json()["version"]["id"] == "v2.1"
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"


def test_flavors_are_the_classic_table(compute):
    summary = requests.get(compute.url + "/v2.1/flavors").json()["flavors"]
    assert [(f["id"], f["name"]) for f in summary] == [(c[0], c[1]) for c in CLASSIC]
    assert summary[1]["links"][0] == {"rel": "self",
                                      "href": compute.url + "/v2.1/flavors/2"}
    detail = requests.get(compute.url + "/v2.1/flavors/detail").json()["flavors"]
    assert [(f["id"], f["name"], f["vcpus"], f["ram"], f["disk"]) for f in detail] == CLASSIC
    small = requests.get(compute.url + "/v2.1/flavors/2").json()["flavor"]
    assert (small["name"], small["vcpus"], small["ram"], small["disk"]) == ("m1.small", 1,
                                                                            2048, 20)
    assert small["OS-FLV-EXT-DATA:ephemeral"] == 0


def test_unknown_flavor_and_server_are_item_not_found(compute):
    resp = requests.get(compute.url + "/v2.1/flavors/42")
    assert resp.status_code == 404
    assert resp.json() == {"itemNotFound": {"code": 404,
                                            "message": "Flavor 42 could not be found."}}
    for method in ("GET", "DELETE"):
        resp = requests.request(method, compute.url + "/v2.1/servers/nope")
        assert resp.status_code == 404
        assert resp.json() == {"itemNotFound": {"code": 404,
                                                "message": "Instance nope could not be found."}}


def test_unknown_methods_are_not_implemented_or_bad_method(compute):
    resp = requests.request("FOO", compute.url + "/v2.1/nowhere")
    assert resp.status_code == 501
    assert resp.json() == {"notImplemented": {
        "code": 501, "message": "The method FOO is not implemented by this server."}}
    resp = requests.request("FOO", compute.url + "/v2.1/servers")
    assert resp.status_code == 405 and "badMethod" in resp.json()
    assert "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]


def test_create_validation_errors_are_bad_request(compute):
    url = compute.url + "/v2.1/servers"
    cases = [
        (b"{not json", "Malformed JSON in request body."),
        (b'{"name": "x"}', 'The request body must be {"server": {...}}.'),
        (b'{"server": {"imageRef": "i", "flavorRef": "1"}}',
         "Invalid input for field/attribute name: a non-empty string is required."),
        (b'{"server": {"name": "vm", "flavorRef": "1"}}',
         "Invalid input for field/attribute imageRef: a non-empty string is required."),
        (b'{"server": {"name": "vm", "imageRef": "i", "flavorRef": "99"}}',
         "Flavor 99 could not be found."),
    ]
    for body, message in cases:
        resp = requests.post(url, data=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, body
        assert resp.json() == {"badRequest": {"code": 400, "message": message}}
    assert requests.get(url).json() == {"servers": []}


def test_image_service_down_is_service_unavailable(compute):
    resp = requests.post(compute.url + "/v2.1/servers",
                         json={"server": {"name": "vm", "imageRef": "abc", "flavorRef": "1"}})
    assert resp.status_code == 503
    assert list(resp.json()) == ["serviceUnavailable"]
    assert resp.json()["serviceUnavailable"]["code"] == 503
    assert requests.get(compute.url + "/v2.1/servers").json() == {"servers": []}
    assert "The image service is unavailable" in compute.log_text()
