"""Nova 2.81 image pre-caching on chute-compute-api: every host of an aggregate fetches the
image into its `_base`, the progress shows per host, and the boots that follow copy nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers.cli import run_chute
from tests.helpers.cluster import Cluster, server_host
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, nova, transfers_logged, wait_built
from tests.helpers.services import ApiServer

PRECACHE = "chute:image_precache"
COMPUTE_API = str(Path(sys.executable).parent / "chute-compute-api")


def progress(cluster: Cluster, image_id: str) -> dict[str, str | None]:
    return {host: row["status"] if row else None
            for host, row in progress_rows(cluster, image_id).items()}


def progress_rows(cluster: Cluster, image_id: str) -> dict[str, dict | None]:
    hypervisors = nova(cluster.api, "GET", "/os-hypervisors/detail", "2.53").json()
    return {h["hypervisor_hostname"]: next((p for p in h[PRECACHE]
                                            if p["image_id"] == image_id), None)
            for h in hypervisors["hypervisors"]}


def aggregate_of(cluster: Cluster, name: str, *hosts: str) -> str:
    agg = nova(cluster.api, "POST", "/os-aggregates", "2.81",
               json={"aggregate": {"name": name}}).json()["aggregate"]
    for host in hosts:
        nova(cluster.api, "POST", f"/os-aggregates/{agg['id']}/action", "2.81",
             json={"add_host": {"host": host}})
    return str(agg["id"])


def test_a_precached_aggregate_boots_without_transfers(cluster: Cluster,
                                                       shared_api: ApiServer) -> None:
    image_id = upload_image(shared_api, os.urandom(1 << 20), name="storm")["id"]
    agg = nova(cluster.api, "POST", "/os-aggregates", "2.81",
               json={"aggregate": {"name": "storm"}}).json()["aggregate"]
    for host in cluster.agents:
        nova(cluster.api, "POST", f"/os-aggregates/{agg['id']}/action", "2.81",
             json={"add_host": {"host": host}})
    below = nova(cluster.api, "POST", f"/os-aggregates/{agg['id']}/images", "2.80",
                 json={"cache": [{"id": image_id}]})
    assert below.status_code == 404
    resp = nova(cluster.api, "POST", f"/os-aggregates/{agg['id']}/images", "2.81",
                json={"cache": [{"id": image_id}]})
    assert resp.status_code == 202, resp.text
    wait_for(lambda: set(progress(cluster, image_id).values()) == {"cached"}, 60,
             "every host to report the image cached")
    before = {host: transfers_logged(agent) for host, agent in cluster.agents.items()}
    ids = [boot(cluster.api, image_id, f"storm-{n}")["id"] for n in range(6)]
    servers = [wait_built(cluster.api, server_id) for server_id in ids]
    assert [s["status"] for s in servers] == ["ACTIVE"] * 6
    assert {s["chute:image_transfer"]["method"] for s in servers} == {"cache"}
    assert {host: transfers_logged(agent) for host, agent in cluster.agents.items()} == before
    assert {server_host(cluster.api, s) for s in ids} <= set(cluster.agents)
    explained = subprocess.run(
        [COMPUTE_API, "--config-file", str(cluster.api.conf_path), "explain", ids[-1]],
        capture_output=True, text=True, check=True, timeout=60).stdout
    assert explained.count(f"image {image_id} is in its _base, nothing to copy") == 3


def test_bad_precache_requests_name_the_problem(cluster: Cluster, image_id: str) -> None:
    agg = nova(cluster.api, "POST", "/os-aggregates", "2.81",
               json={"aggregate": {"name": "bad-precache"}}).json()["aggregate"]
    path = f"/os-aggregates/{agg['id']}/images"
    missing = "00000000-0000-4000-8000-000000000000"
    for body, status, fragment in [
            ({"cache": [{"id": missing}]}, 400, f"Image {missing} could not be found"),
            ({"cache": []}, 400, "non-empty list"),
            ({"cache": [{"id": image_id}, {"id": image_id}]}, 400, "listed twice"),
            ({"images": [{"id": image_id}]}, 400, "{\"cache\"")]:
        resp = nova(cluster.api, "POST", path, "2.81", json=body)
        assert resp.status_code == status, resp.text
        assert fragment in resp.json()["badRequest"]["message"]
    resp = nova(cluster.api, "POST", "/os-aggregates/4242/images", "2.81",
                json={"cache": [{"id": image_id}]})
    assert resp.status_code == 404


def test_a_fetch_that_fails_on_the_agent_reads_failed_with_the_image_and_the_cause(
        cluster: Cluster, shared_api: ApiServer) -> None:
    data = os.urandom(1 << 20)
    image_id = upload_image(shared_api, data, name="rotten")["id"]
    stored = shared_api.datadir / image_id
    stored.write_bytes(data[:4096] + bytes(b ^ 0xFF for b in data[4096:8192]) + data[8192:])
    agg = aggregate_of(cluster, "rotten", "host1", "host3")

    resp = nova(cluster.api, "POST", f"/os-aggregates/{agg}/images", "2.81",
                json={"cache": [{"id": image_id}]})

    assert resp.status_code == 202, resp.text
    wait_for(lambda: set(progress(cluster, image_id).values()) == {"failed", None}, 60,
             "both hosts to report the pre-cache failed")
    rows = progress_rows(cluster, image_id)
    assert rows["host2"] is None  # not in the aggregate
    for host in ("host1", "host3"):
        detail = rows[host]["detail"]  # type: ignore[index]
        assert detail.startswith(f"image {image_id} could not be fetched: "), detail
        assert "digest" in detail or "checksum" in detail, detail
    shown = run_chute("host-show", "host1", compute_url=cluster.api.url)
    assert shown.returncode == 0, shown.stderr
    squeezed = "".join(shown.table()["precache"].split())  # the table wraps long values
    assert f"{image_id}:failed(image{image_id}couldnotbefetched:" in squeezed, shown.stdout

    stored.write_bytes(data)  # repaired: asked again, the same hosts now cache it
    nova(cluster.api, "POST", f"/os-aggregates/{agg}/images", "2.81",
         json={"cache": [{"id": image_id}]})
    wait_for(lambda: set(progress(cluster, image_id).values()) == {"cached", None}, 60,
             "both hosts to cache the repaired image")


def test_a_bad_outcome_report_is_refused_naming_the_field(cluster: Cluster,
                                                          image_id: str) -> None:
    path = f"{cluster.api.url}/internal/v1/hosts/host1/precache/{image_id}"
    for body, fragment in [({"request_id": "r", "status": "done"}, "'status' must be"),
                           ({"status": "failed"}, "'request_id'"),
                           ({"request_id": "r", "status": "failed", "detail": 7}, "'detail'")]:
        resp = requests.put(path, json=body, timeout=10)
        assert resp.status_code == 400, resp.text
        assert fragment in resp.json()["badRequest"]["message"]
    stale = requests.put(path, json={"request_id": "none", "status": "failed"}, timeout=10)
    assert stale.json() == {"recorded": False}  # no pending request of that id


def test_a_host_that_could_not_be_asked_fetches_once_it_is_back(
        cluster: Cluster, shared_api: ApiServer) -> None:
    image_id = upload_image(shared_api, os.urandom(1 << 20), name="while-away")["id"]
    agg = aggregate_of(cluster, "away", "host3")
    agent = cluster.agents["host3"]
    agent.kill()
    try:
        resp = nova(cluster.api, "POST", f"/os-aggregates/{agg}/images", "2.81",
                    json={"cache": [{"id": image_id}]})
        assert resp.status_code == 202, resp.text
        row = wait_for(lambda: (progress_rows(cluster, image_id)["host3"] or {}).get("detail")
                       and progress_rows(cluster, image_id)["host3"], 30,
                       "the failed ask to be noted")
        assert row["status"] == "requested"
        assert "the agent could not be asked" in row["detail"], row
        assert "asked again at its next heartbeat" in row["detail"], row
    finally:
        agent.start()  # its first heartbeat's answer asks it again
    wait_for(lambda: progress(cluster, image_id)["host3"] == "cached", 60,
             "host3 to fetch the image once back")
    assert agent.log_text().count(f"Image {image_id} pre-cached by") == 1
