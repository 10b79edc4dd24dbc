"""An agent's state reports on the compute API's internal endpoints: several servers' states
in one request, each answered with whether it is still placed on that host; a report older
than the one applied changes nothing; the one-server form still works."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from chute.compute.cluster import wire
from chute.compute.instance import Instance
from tests.helpers.cluster import Cluster, server_host
from tests.helpers.servers import boot, server, wait_built

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC).isoformat()


def _stopped(server_id: str, image_id: str) -> dict[str, Any]:
    """The server as a (lying, or very late) agent would report it: stopped."""
    inst = Instance(id=server_id, name="reported", image_id=image_id, flavor_id="1",
                    vm_state="stopped", task_state=None, power_state=4)
    return wire.dump(inst)


@pytest.fixture(scope="module")
def active(cluster: Cluster, image_id: str) -> tuple[str, str]:
    """(a server ACTIVE on some host, that host)."""
    server_id = boot(cluster.api, image_id, "reported")["id"]
    assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    host = server_host(cluster.api, server_id)
    assert host is not None
    return server_id, host


def test_one_request_answers_for_each_server_whether_it_is_placed_there(
        cluster: Cluster, image_id: str, active: tuple[str, str]) -> None:
    server_id, host = active
    unknown = "00000000-0000-4000-8000-000000000000"
    resp = requests.put(f"{cluster.api.url}/internal/v1/hosts/{host}/states", json={"states": [
        {"instance": _stopped(server_id, image_id), "as_of": LONG_AGO},
        {"instance": _stopped(unknown, image_id), "as_of": LONG_AGO}]}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"placed": {server_id: True, unknown: False}}
    assert server(cluster.api, server_id)["status"] == "ACTIVE"  # older than what it has
    elsewhere = "not-" + host
    resp = requests.put(f"{cluster.api.url}/internal/v1/hosts/{elsewhere}/states", json={
        "states": [{"instance": _stopped(server_id, image_id),
                    "as_of": datetime.now(UTC).isoformat()}]}, timeout=10)
    assert resp.json() == {"placed": {server_id: False}}
    assert server(cluster.api, server_id)["status"] == "ACTIVE"  # not that host's to say


def test_the_one_server_form_still_answers(cluster: Cluster, image_id: str,
                                          active: tuple[str, str]) -> None:
    server_id, host = active
    resp = requests.put(f"{cluster.api.url}/internal/v1/instances/{server_id}/state",
                        json={"host": host, "instance": _stopped(server_id, image_id),
                              "as_of": LONG_AGO}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"placed": True}
    assert server(cluster.api, server_id)["status"] == "ACTIVE"


@pytest.mark.parametrize("body, named", [
    ({}, "'states'"),
    ({"states": {"a": 1}}, "'states'"),
    ({"states": ["a"]}, "states"),
    ({"states": [{"instance": {"id": "x"}}]}, "instance document"),
    ({"states": [{"instance": None, "as_of": LONG_AGO}]}, "instance document"),
    ({"states": [{"instance": _stopped("x", "y")}]}, "'as_of'"),
    ({"states": [{"instance": _stopped("x", "y"), "as_of": "yesterday"}]}, "'as_of'"),
])
def test_a_malformed_report_is_a_400_naming_the_problem(cluster: Cluster, body: Any,
                                                        named: str) -> None:
    resp = requests.put(f"{cluster.api.url}/internal/v1/hosts/host1/states", json=body,
                        timeout=10)
    assert resp.status_code == 400, resp.text
    assert named in resp.text
