"""Servers' addresses with the fake driver (no guest needed): what `addresses` shows, what
the config drive's network_data.json tells the guest, and the allocation from fixed_range
(one address per server, refused when the range is used up, released on delete)."""

import json

import pytest

from tests.compute.test_config_drive import drive_files
from tests.helpers.images import upload_image
from tests.helpers.servers import boot_body, nova, wait_built
from tests.helpers.services import prepare_compute


def boot(compute, image, name, **fields):
    """The servers one POST made, once built (with max_count, named NAME-1 ... NAME-N)."""
    resp = nova(compute, "POST", "/servers", json=boot_body(image, name, **fields))
    assert resp.status_code == 202, resp.text
    if "max_count" not in fields:
        return [wait_built(compute, resp.json()["server"]["id"])]
    listed = nova(compute, "GET", "/servers", params={"name": f"^{name}-"}).json()["servers"]
    assert len(listed) == fields["max_count"]
    return [wait_built(compute, s["id"]) for s in listed]


def only_address(server):
    (network, ports), = server["addresses"].items()
    (port,) = ports
    return network, port


def network_data(compute, server):
    _label, files = drive_files(compute.instances_path / server["id"] / "disk.config")
    return json.loads(files["network_data.json"])


def test_user_mode_gives_the_address_slirp_gives_and_tells_the_guest(booting):
    compute, image = booting
    (server,) = boot(compute, image, "net-user", networks="auto")
    network, port = only_address(server)
    assert network == "private"
    assert port["addr"] == "10.0.2.15" and port["version"] == 4
    assert port["OS-EXT-IPS:type"] == "fixed"
    mac = port["OS-EXT-IPS-MAC:mac_addr"]
    assert mac.startswith("fa:16:3e:") and len(mac) == 17
    # A network brings a config drive: the guest's only way to its address.
    assert server["config_drive"] == "True"
    data = network_data(compute, server)
    assert data["links"][0]["ethernet_mac_address"] == mac
    (net,) = data["networks"]
    assert (net["type"], net["ip_address"], net["netmask"]) == ("ipv4", "10.0.2.15",
                                                                "255.255.255.0")
    assert net["link"] == data["links"][0]["id"]
    assert net["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                              "gateway": "10.0.2.2"}]
    assert data["services"] == [{"type": "dns", "address": "10.0.2.3"}]


def test_ips_lists_the_addresses_by_network(booting):
    compute, image = booting
    (server,) = boot(compute, image, "net-ips", networks="auto")
    ips = nova(compute, "GET", f"/servers/{server['id']}/ips")
    assert ips.json() == {"addresses": {"private": [{"version": 4, "addr": "10.0.2.15"}]}}
    one = nova(compute, "GET", f"/servers/{server['id']}/ips/private")
    assert one.json() == {"private": [{"version": 4, "addr": "10.0.2.15"}]}
    other = nova(compute, "GET", f"/servers/{server['id']}/ips/public")
    assert other.status_code == 404
    assert "Instance is not a member of specified network" in other.text


def test_networks_none_has_no_address_and_before_2_37_absent_means_auto(booting):
    compute, image = booting
    (bare,) = boot(compute, image, "net-none", networks="none")
    assert bare["addresses"] == {} and bare["config_drive"] == ""
    resp = nova(compute, "POST", "/servers", version="2.36",
                json={"server": {"name": "net-old", "imageRef": image, "flavorRef": "1"}})
    assert resp.status_code == 202, resp.text
    old = wait_built(compute, resp.json()["server"]["id"])
    assert only_address(old)[1]["addr"] == "10.0.2.15"
    # Each server has its own MAC, even on slirp's one address.
    macs = {only_address(s)[1]["OS-EXT-IPS-MAC:mac_addr"]
            for s in nova(compute, "GET", "/servers/detail").json()["servers"] if s["addresses"]}
    assert len(macs) == len([s for s in nova(compute, "GET", "/servers/detail")
                             .json()["servers"] if s["addresses"]]) >= 2


@pytest.fixture(scope="module")
def bridged(shared_api, tmp_path_factory):
    """A fake-driver agent in bridge mode on 192.0.2.0/29 (TEST-NET-1; nothing is sent):
    gateway .1 and DNS .6 leave four addresses, .2 to .5, for guests."""
    root = tmp_path_factory.mktemp("bridged")
    compute = prepare_compute(root, shared_api, DEFAULT={
        "network_mode": "bridge", "network_label": "flat", "flat_network_bridge": "chutebr-t",
        "fixed_range": "192.0.2.0/29", "flat_network_dns": "192.0.2.6"}).start()
    image = upload_image(shared_api, b"\0" * 4096)
    yield compute, image["id"]
    compute.kill()


def test_bridge_mode_allocates_each_address_once_and_releases_it_on_delete(bridged):
    compute, image = bridged
    servers = boot(compute, image, "flat", max_count=5, networks="auto")
    active = [s for s in servers if s["status"] == "ACTIVE"]
    failed = [s for s in servers if s["status"] == "ERROR"]
    assert len(active) == 4 and len(failed) == 1
    addrs = sorted(only_address(s)[1]["addr"] for s in active)
    assert addrs == ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]
    assert {only_address(s)[0] for s in active} == {"flat"}
    assert "No fixed IP addresses available for network: flat" in failed[0]["fault"]["message"]
    assert failed[0]["addresses"] == {}

    data = network_data(compute, active[0])
    (net,) = data["networks"]
    assert net["ip_address"] == only_address(active[0])[1]["addr"]
    assert net["netmask"] == "255.255.255.248"
    assert net["routes"][0]["gateway"] == "192.0.2.1"
    assert data["services"] == [{"type": "dns", "address": "192.0.2.6"}]
    assert data["links"][0]["type"] == "bridge"

    freed = only_address(active[1])[1]["addr"]
    for gone in (active[1], failed[0]):
        assert nova(compute, "DELETE", f"/servers/{gone['id']}").status_code == 204
    resp = nova(compute, "POST", "/servers", json=boot_body(image, name="again", networks="auto"))
    again = wait_built(compute, resp.json()["server"]["id"])
    assert again["status"] == "ACTIVE", again.get("fault")
    assert only_address(again)[1]["addr"] == freed
