"""Admin flavor management (os-flavor-manage, os-flavor-access) and the admin-only
OS-EXT-SRV-ATTR server fields, through openstacksdk's cloud layer and plain HTTP. Without an
auth layer every caller is the admin, as with Nova's noauth2."""

from __future__ import annotations

import socket

import openstack
import pytest
import requests

from tests.helpers.polling import wait_for

MV = {"OpenStack-API-Version": "compute 2.79"}


def sdk(compute, api) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute.url},
        compute_endpoint_override=compute.url + "/v2.1", image_endpoint_override=api.url)


def test_an_admin_creates_shares_boots_with_and_deletes_a_private_flavor(booting, shared_api):
    compute, image_id = booting
    conn = sdk(compute, shared_api)
    flavor = conn.create_flavor("c1.tiny", ram=256, vcpus=1, disk=1, flavorid="auto",
                                is_public=False)
    assert (flavor.ram, flavor.vcpus, flavor.disk, flavor.is_public) == (256, 1, 1, False)
    public = requests.get(f"{compute.url}/v2.1/flavors").json()["flavors"]
    assert flavor.id not in {f["id"] for f in public}  # Nova's default: public ones only
    assert {f.id for f in conn.list_flavors()} >= {flavor.id, "1", "5"}  # the SDK asks for all

    conn.add_flavor_access(flavor.id, "project-a")
    assert [a["tenant_id"] for a in conn.list_flavor_access(flavor.id)] == ["project-a"]
    again = requests.post(f"{compute.url}/v2.1/flavors/{flavor.id}/action",
                          json={"addTenantAccess": {"tenant": "project-a"}})
    assert again.status_code == 409 and "already exists" in again.text

    server = conn.compute.create_server(name="on-custom", image_id=image_id,
                                        flavor_id=flavor.id, networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", interval=0.1, wait=60)
    assert (server.flavor.original_name, server.flavor.ram) == ("c1.tiny", 256)

    conn.remove_flavor_access(flavor.id, "project-a")
    assert conn.list_flavor_access(flavor.id) == []
    assert conn.delete_flavor(flavor.id) is True
    gone = requests.get(f"{compute.url}/v2.1/flavors/{flavor.id}")
    assert gone.status_code == 404
    assert conn.delete_server(server.id, wait=True, timeout=30) is True


@pytest.mark.parametrize("fields,status,text", [
    ({"swap": 512}, 400, "swap disks"),
    ({"OS-FLV-EXT-DATA:ephemeral": 1}, 400, "ephemeral disks"),
    ({"rxtx_factor": 2.0}, 400, "rxtx_factor"),
    ({"ram": 0}, 400, "ram"),
    ({"name": " padded"}, 400, "leading or trailing spaces"),
    ({"id": "2"}, 409, "Flavor with ID 2 already exists."),
    ({"name": "m1.small"}, 409, "Flavor with name m1.small already exists."),
    ({"description": "x"}, 400, "'description' was unexpected"),  # before 2.55
    ({"disk_bus": "scsi"}, 400, "'disk_bus' was unexpected"),
])
def test_a_flavor_chute_cannot_honour_is_refused_naming_the_field(booting, fields, status,
                                                                    text):
    compute, _ = booting
    body = {"name": "refused", "ram": 64, "vcpus": 1, "disk": 1, **fields}
    answer = requests.post(f"{compute.url}/v2.1/flavors", json={"flavor": body},
                           headers={"OpenStack-API-Version": "compute 2.54"})
    assert answer.status_code == status and text in answer.text, answer.text


def test_built_in_flavors_stay_and_a_description_arrives_at_2_55(booting):
    compute, _ = booting
    refused = requests.delete(f"{compute.url}/v2.1/flavors/2")
    assert refused.status_code == 403 and "built-in" in refused.text
    public = requests.get(f"{compute.url}/v2.1/flavors/1/os-flavor-access")
    assert public.status_code == 404 and "public flavors" in public.text
    made = requests.post(f"{compute.url}/v2.1/flavors", headers=MV, json={"flavor": {
        "name": "described", "id": "d-1", "ram": 64, "vcpus": 1, "disk": 0,
        "description": "for the docs"}}).json()["flavor"]
    assert (made["description"], made["os-flavor-access:is_public"]) == ("for the docs", True)
    assert requests.delete(f"{compute.url}/v2.1/flavors/d-1").status_code == 202
    assert requests.delete(f"{compute.url}/v2.1/flavors/d-1").status_code == 404


def test_the_admin_sees_where_a_server_runs(booting):
    compute, image_id = booting
    made = requests.post(f"{compute.url}/v2.1/servers", headers=MV, json={"server": {
        "name": "Where_Am I", "imageRef": image_id, "flavorRef": "1", "networks": "none",
        "user_data": "aGk="}}).json()["server"]
    url = f"{compute.url}/v2.1/servers/{made['id']}"
    wait_for(lambda: requests.get(url).json()["server"]["status"] != "BUILD", timeout=60,
             what="the server to leave BUILD")
    old = requests.get(url).json()["server"]  # 2.1: the three fields Nova had from the start
    assert old["OS-EXT-SRV-ATTR:host"] == socket.gethostname()
    assert old["OS-EXT-SRV-ATTR:hypervisor_hostname"] == socket.gethostname()
    assert old["OS-EXT-SRV-ATTR:instance_name"] == made["id"]
    assert "OS-EXT-SRV-ATTR:hostname" not in old
    new = requests.get(url, headers=MV).json()["server"]
    assert new["OS-EXT-SRV-ATTR:hostname"] == "where-am-i"
    assert new["OS-EXT-SRV-ATTR:user_data"] == "aGk="
    assert (new["OS-EXT-SRV-ATTR:kernel_id"], new["OS-EXT-SRV-ATTR:ramdisk_id"]) == ("", "")
    requests.delete(url)
