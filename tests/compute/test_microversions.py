"""Compute microversions over real HTTP: negotiation headers, Nova's 400/406, the version
documents, and response shapes that follow the requested version."""

import openstack
import pytest
import requests

from tests.helpers.services import prepare_compute

MAX = "2.81"


@pytest.fixture(scope="module")
def compute(tmp_path_factory):
    """One chute-compute for these read-only checks (no image service needed)."""
    server = prepare_compute(tmp_path_factory.mktemp("compute-mv"))
    yield server.start()
    server.kill()


def flavor(compute, headers):
    return requests.get(compute.url + "/v2.1/flavors/1", headers=headers, timeout=10)


def test_version_documents_advertise_the_real_range(compute):
    (listed,) = requests.get(compute.url + "/", timeout=10).json()["versions"]
    shown = requests.get(compute.url + "/v2.1", timeout=10).json()["version"]
    for doc in (listed, shown):
        assert (doc["min_version"], doc["version"]) == ("2.1", MAX)


def test_no_header_is_the_minimum(compute):
    resp = flavor(compute, {})
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "OpenStack-API-Version" in resp.headers["Vary"]
    assert resp.json()["flavor"]["swap"] == ""
    assert "extra_specs" not in resp.json()["flavor"]


@pytest.mark.parametrize("headers, answered", [
    ({"OpenStack-API-Version": "compute 2.61"}, "2.61"),
    ({"OpenStack-API-Version": "image 2.5, compute 2.55"}, "2.55"),
    ({"X-OpenStack-Nova-API-Version": "2.60"}, "2.60"),
    ({"OpenStack-API-Version": "compute 2.70", "X-OpenStack-Nova-API-Version": "2.3"}, "2.70"),
    ({"OpenStack-API-Version": "compute latest"}, MAX),
    ({"OpenStack-API-Version": "image 2.5"}, "2.1"),
])
def test_the_requested_version_answers(compute, headers, answered):
    resp = flavor(compute, headers)
    assert resp.status_code == 200
    assert resp.headers["OpenStack-API-Version"] == f"compute {answered}"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == answered


def test_flavor_shape_follows_the_version(compute):
    at_61 = flavor(compute, {"OpenStack-API-Version": "compute 2.61"}).json()["flavor"]
    assert at_61["extra_specs"] == {} and at_61["description"] is None
    assert at_61["swap"] == ""
    at_75 = flavor(compute, {"OpenStack-API-Version": "compute 2.75"}).json()["flavor"]
    assert at_75["swap"] == 0


@pytest.mark.parametrize("version", ["2.82", "3.0", "2.0", "1.1"])
def test_beyond_the_range_is_not_acceptable_with_novas_message(compute, version):
    resp = flavor(compute, {"OpenStack-API-Version": f"compute {version}"})
    assert resp.status_code == 406
    assert resp.json() == {"computeFault": {
        "code": 406, "message": f"Version {version} is not supported by the API. "
                                f"Minimum is 2.1 and maximum is {MAX}."}}


@pytest.mark.parametrize("version", ["2", "2.x", "two", "2.1.3", "2.01"])
def test_a_malformed_version_is_bad_request(compute, version):
    resp = flavor(compute, {"X-OpenStack-Nova-API-Version": version})
    assert resp.status_code == 400
    assert resp.json() == {"badRequest": {
        "code": 400, "message": f"API Version String {version} is of invalid format. Must "
                                "be of format MajorNum.MinorNum."}}


def test_openstacksdk_negotiates_up_to_its_flavor_maximum(compute):
    conn = openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute.url},
        compute_endpoint_override=compute.url + "/v2.1")
    data = conn.compute.get_endpoint_data()
    assert (data.min_microversion, data.max_microversion) == ((2, 1), (2, 81))
    small = conn.compute.get_flavor("2")
    assert small.extra_specs == {} and small.name == "m1.small"  # 2.61: embedded, no GET
