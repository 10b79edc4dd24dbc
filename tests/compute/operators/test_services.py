"""os-services on chute-compute-api: Nova's shapes per microversion, enable / disable with a
reason / force down, and a disabled host getting no new servers (with the reason explained)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import Cluster, server_host
from tests.helpers.servers import boot, nova, wait_built

COMPUTE_API = str(Path(sys.executable).parent / "chute-compute-api")


def services(cluster: Cluster, version: str | None) -> dict[str, dict]:
    resp = nova(cluster.api, "GET", "/os-services", version)
    assert resp.status_code == 200, resp.text
    return {s["host"]: s for s in resp.json()["services"]}


@pytest.fixture
def host2_disabled(cluster: Cluster) -> Iterator[str]:
    uuid = services(cluster, "2.53")["host2"]["id"]
    resp = nova(cluster.api, "PUT", f"/os-services/{uuid}", "2.53",
                json={"status": "disabled", "disabled_reason": "disk replacement"})
    assert resp.status_code == 200, resp.text
    yield uuid
    nova(cluster.api, "PUT", f"/os-services/{uuid}", "2.53", json={"status": "enabled"})


def test_every_host_is_an_enabled_nova_compute_service_that_is_up(cluster: Cluster) -> None:
    old = services(cluster, None)
    assert set(old) == {"host1", "host2", "host3"}
    assert all(isinstance(s["id"], int) and "forced_down" not in s for s in old.values())
    new = services(cluster, "2.53")
    for service in new.values():
        assert (service["binary"], service["status"], service["state"], service["zone"],
                service["forced_down"]) == ("nova-compute", "enabled", "up", "nova", False)
        assert len(service["id"]) == 36


def test_a_disabled_host_gets_no_new_servers_and_explain_says_why(
        cluster: Cluster, image_id: str, host2_disabled: str) -> None:
    shown = services(cluster, "2.53")["host2"]
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "disk replacement")
    ids = [boot(cluster.api, image_id, f"avoid-{n}")["id"] for n in range(4)]
    for server_id in ids:
        assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    assert {server_host(cluster.api, s) for s in ids} <= {"host1", "host3"}
    explained = subprocess.run(
        [COMPUTE_API, "--config-file", str(cluster.api.conf_path), "explain", ids[0]],
        capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"Server {ids[0]}: on host {server_host(cluster.api, ids[0])}" in explained
    assert ("host2 refused by ComputeFilter: its compute service is disabled: "
            "disk replacement") in explained
    assert "(chosen, weight" in explained and "free RAM" in explained
    # every agent mounts the store's filesystem (its heartbeat says so; the image's location
    # metadata names it): the image weigher saw a direct copy everywhere
    assert explained.count("mounts filesystem shared-fs-1 holding the image") == 2


def test_the_pre_2_53_actions_name_the_host(cluster: Cluster) -> None:
    body = {"host": "host3", "binary": "nova-compute", "disabled_reason": "rack move"}
    resp = nova(cluster.api, "PUT", "/os-services/disable-log-reason", None, json=body)
    assert resp.json() == {"service": {**body, "status": "disabled"}}
    assert services(cluster, None)["host3"]["disabled_reason"] == "rack move"
    resp = nova(cluster.api, "PUT", "/os-services/enable", None,
                json={"host": "host3", "binary": "nova-compute"})
    assert resp.json()["service"]["status"] == "enabled"
    assert services(cluster, None)["host3"]["status"] == "enabled"
    refused = nova(cluster.api, "PUT", "/os-services/force-down", "2.10",
                   json={"host": "host3", "binary": "nova-compute", "forced_down": True})
    assert refused.status_code == 404


def test_forced_down_marks_the_service_down(cluster: Cluster) -> None:
    uuid = services(cluster, "2.53")["host3"]["id"]
    try:
        resp = nova(cluster.api, "PUT", f"/os-services/{uuid}", "2.53",
                    json={"forced_down": True})
        assert (resp.json()["service"]["forced_down"], resp.json()["service"]["state"]) == (
            True, "down")
    finally:
        nova(cluster.api, "PUT", f"/os-services/{uuid}", "2.53", json={"forced_down": False})
    assert services(cluster, "2.53")["host3"]["state"] == "up"


@pytest.mark.parametrize(("path", "version", "body", "status", "fragment"), [
    ("/os-services/not-a-uuid", "2.53", {"status": "enabled"}, 400, "Invalid uuid"),
    ("/os-services/00000000-0000-0000-0000-000000000000", "2.53", {"status": "enabled"},
     404, "could not be found"),
    ("/os-services/{host1}", "2.53", {"disabled_reason": "x"}, 400, "status or forced_down"),
    ("/os-services/{host1}", "2.53", {"status": "enabled", "disabled_reason": "x"}, 400,
     "disabled_reason"),
    ("/os-services/{host1}", "2.53", {"status": "off"}, 400, "status"),
    ("/os-services/reboot", None, {"host": "host1", "binary": "nova-compute"}, 404,
     "Unknown action"),
    ("/os-services/disable", None, {"host": "ghost", "binary": "nova-compute"}, 404,
     "ghost"),
])
def test_bad_updates_are_refused_naming_the_problem(cluster: Cluster, path: str,
                                                    version: str | None, body: dict,
                                                    status: int, fragment: str) -> None:
    path = path.format(host1=services(cluster, "2.53")["host1"]["id"])
    resp = nova(cluster.api, "PUT", path, version, json=body)
    assert resp.status_code == status, resp.text
    assert fragment in next(iter(resp.json().values()))["message"]


def test_a_host_with_servers_cannot_be_deleted_nor_a_service_named_wrongly(
        cluster: Cluster, image_id: str) -> None:
    server_id = boot(cluster.api, image_id, "pinned")["id"]
    assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    host = server_host(cluster.api, server_id)
    uuid = services(cluster, "2.53")[host]["id"]
    try:
        resp = nova(cluster.api, "DELETE", f"/os-services/{uuid}", "2.53")
        assert resp.status_code == 409, resp.text
        assert resp.json()["conflictingRequest"]["message"] == (
            "Unable to delete compute service that is hosting instances. Migrate or delete "
            "the instances first.")
        assert host in services(cluster, "2.53")
    finally:
        assert nova(cluster.api, "DELETE", f"/servers/{server_id}").status_code == 204
    for path, version, status, fragment in [
            ("/os-services/not-a-uuid", "2.53", 400, "Invalid uuid not-a-uuid"),
            ("/os-services/00000000-0000-0000-0000-000000000000", "2.53", 404,
             "could not be found"),
            ("/os-services/host1", "2.52", 400, "id must be an integer"),
            ("/os-services/4242", "2.52", 404, "Service 4242 could not be found")]:
        resp = nova(cluster.api, "DELETE", path, version)
        assert resp.status_code == status, resp.text
        assert fragment in next(iter(resp.json().values()))["message"]


def test_explain_of_an_unknown_server_is_one_line_and_exit_1(cluster: Cluster) -> None:
    proc = subprocess.run(
        [COMPUTE_API, "--config-file", str(cluster.api.conf_path), "explain", "nope"],
        capture_output=True, text=True, check=False, timeout=60)
    assert (proc.returncode, proc.stderr) == (
        1, "chute-compute-api: No placement of server nope was recorded.\n")
