"""openstackclient's operator commands against chute-compute-api (auth_type none, endpoint
overrides, as the README's clouds.yaml): compute service list/set, hypervisor list/show,
aggregate create/add host/show/cache image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cluster import Cluster
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import nova
from tests.helpers.services import ApiServer

OPENSTACK = str(Path(sys.executable).parent / "openstack")


@pytest.fixture(scope="module")
def cloud(cluster: Cluster, shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Path:
    root = tmp_path_factory.mktemp("osc-operators")
    (root / "clouds.yaml").write_text(
        "clouds:\n  chute:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {cluster.api.url}\n"
        f"    compute_endpoint_override: {cluster.api.url}/v2.1\n"
        f"    image_endpoint_override: {shared_api.url}\n")
    return root


def osc(root: Path, *args: str) -> Any:
    env = {"HOME": str(root), "OS_CLIENT_CONFIG_FILE": str(root / "clouds.yaml"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([OPENSTACK, "--os-cloud", "chute", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if "json" in args else proc.stdout


def test_compute_service_list_and_set_disable_with_a_reason(cloud: Path,
                                                            cluster: Cluster) -> None:
    listed = osc(cloud, "compute", "service", "list", "-f", "json")
    assert sorted(s["Host"] for s in listed) == ["host1", "host2", "host3"]
    assert {s["Binary"] for s in listed} == {"nova-compute"}
    osc(cloud, "--os-compute-api-version", "2.53", "compute", "service", "set", "--disable",
        "--disable-reason", "osc test", "host2", "nova-compute")
    try:
        shown = nova(cluster.api, "GET", "/os-services?host=host2", None).json()
        assert (shown["services"][0]["status"], shown["services"][0]["disabled_reason"]) == (
            "disabled", "osc test")
    finally:
        osc(cloud, "--os-compute-api-version", "2.53", "compute", "service", "set",
            "--enable", "host2", "nova-compute")
    assert nova(cluster.api, "GET", "/os-services?host=host2", None).json()["services"][0][
        "status"] == "enabled"


def test_hypervisor_list_and_show(cloud: Path) -> None:
    listed = osc(cloud, "hypervisor", "list", "-f", "json")
    assert sorted(h["Hypervisor Hostname"] for h in listed) == ["host1", "host2", "host3"]
    shown = osc(cloud, "hypervisor", "show", "host1", "-f", "json")
    assert shown["hypervisor_hostname"] == "host1" and shown["state"] == "up"


def test_aggregate_create_add_host_and_cache_image(cloud: Path, cluster: Cluster,
                                                   shared_api: ApiServer) -> None:
    image_id = upload_image(shared_api, os.urandom(1 << 19), name="osc-cache")["id"]
    osc(cloud, "aggregate", "create", "--zone", "osc-zone", "osc-agg", "-f", "json")
    shown = osc(cloud, "aggregate", "add", "host", "osc-agg", "host1", "-f", "json")
    assert shown["hosts"] == ["host1"] and shown["availability_zone"] == "osc-zone"
    osc(cloud, "--os-compute-api-version", "2.81", "aggregate", "cache", "image", "osc-agg",
        image_id)

    hypervisors = nova(cluster.api, "GET", "/os-hypervisors", None).json()["hypervisors"]
    (host1,) = [h["id"] for h in hypervisors if h["hypervisor_hostname"] == "host1"]

    def cached() -> bool:  # openstackclient's hypervisor show leaves chute's field out
        host = nova(cluster.api, "GET", f"/os-hypervisors/{host1}", None)
        return any(p["image_id"] == image_id and p["status"] == "cached"
                   for p in host.json()["hypervisor"]["chute:image_precache"])

    wait_for(cached, 60, "host1 to have pre-cached the image")
    agg = f"/os-aggregates/{shown['id']}"
    nova(cluster.api, "POST", f"{agg}/action", None, json={"remove_host": {"host": "host1"}})
    assert nova(cluster.api, "DELETE", agg, None).status_code == 200
