"""The small Linux guest on a network, under libvirt: it reads its address from the config
drive's network_data.json (as cloud-init would) and that address is the one `addresses`
shows. In user mode (slirp) the guest's gateway, inside its own qemu, answers it; in bridge
mode the guest's tap joins a bridge the test made, whose only other port is a veth into a
network namespace the test made, and a ping from that namespace is answered by the guest.
Nothing leaves the box: the bridge has no address in the host's namespace, the range is
TEST-NET-1 (192.0.2.0/24, never routed)."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.guests import build
from tests.helpers import libvirt as lv
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot_body, nova, wait_built, wait_console

RANGE, GATEWAY, GUEST = "192.0.2.0/29", "192.0.2.1", "192.0.2.2"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def bridge_and_namespace():
    """(bridge, namespace): a bridge with one veth into a namespace holding the gateway."""
    tag = os.getpid() % 100000
    bridge, namespace, outer, inner = (f"chbr{tag}", f"chute-net-{tag}", f"chvo{tag}",
                                       f"chvi{tag}")
    sh("ip", "link", "add", bridge, "type", "bridge")
    try:
        sh("ip", "netns", "add", namespace)
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", namespace)
        sh("ip", "link", "set", outer, "master", bridge, "up")
        sh("ip", "link", "set", bridge, "up")
        sh("ip", "-n", namespace, "addr", "add", f"{GATEWAY}/29", "dev", inner)
        sh("ip", "-n", namespace, "link", "set", inner, "up")
        yield bridge, namespace
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", outer], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)


def boot_linux(compute, image) -> dict:
    resp = nova(compute, "POST", "/servers", json=boot_body(image, "tux", networks="auto"))
    assert resp.status_code == 202, resp.text
    server = wait_built(compute, resp.json()["server"]["id"], timeout=90)
    assert server["status"] == "ACTIVE", server.get("fault")
    return server


def interface(compute, server_id: str) -> ET.Element:
    xml = lv.domains_of(compute.instances_path)[server_id].XMLDesc(0)
    (nic,) = ET.fromstring(xml).findall("./devices/interface")
    return nic


def test_user_mode_guest_has_slirps_address_as_addresses_say(start_virt_compute, linux_image):
    compute = start_virt_compute()
    server = boot_linux(compute, linux_image)
    (port,) = server["addresses"]["private"]
    mac = port["OS-EXT-IPS-MAC:mac_addr"]
    assert port["addr"] == "10.0.2.15"
    nic = interface(compute, server["id"])
    assert nic.get("type") == "user"
    assert nic.find("mac").get("address") == mac
    assert nic.find("model").get("type") == "virtio"
    out = wait_console(compute, server["id"], build.PROMPT, timeout=90)
    assert f"chute-linux: network eth0 {mac} 10.0.2.15/255.255.255.0 via 10.0.2.2" in out
    assert "chute-linux: gateway 10.0.2.2 answers" in out


def test_bridge_mode_guest_answers_a_ping_at_its_address(start_virt_compute, linux_image,
                                                         bridge_and_namespace):
    bridge, namespace = bridge_and_namespace
    compute = start_virt_compute(DEFAULT={"network_mode": "bridge", "network_label": "flat",
                                          "flat_network_bridge": bridge, "fixed_range": RANGE,
                                          "gateway": GATEWAY})
    server = boot_linux(compute, linux_image)
    (port,) = server["addresses"]["flat"]
    mac = port["OS-EXT-IPS-MAC:mac_addr"]
    assert port["addr"] == GUEST
    nic = interface(compute, server["id"])
    assert nic.get("type") == "bridge" and nic.find("source").get("bridge") == bridge
    assert nic.find("mac").get("address") == mac
    out = wait_console(compute, server["id"], build.PROMPT, timeout=90)
    assert f"chute-linux: network eth0 {mac} {GUEST}/255.255.255.248 via {GATEWAY}" in out
    assert f"chute-linux: gateway {GATEWAY} answers" in out

    def pings() -> bool:
        return subprocess.run(["ip", "netns", "exec", namespace, "ping", "-c", "1", "-W", "2",
                               GUEST], capture_output=True, timeout=10).returncode == 0

    wait_for(pings, 20, f"{GUEST} to answer a ping from {namespace}")
    neighbours = subprocess.run(["ip", "-n", namespace, "neigh", "show", GUEST],
                                capture_output=True, text=True, check=True).stdout
    assert mac in neighbours  # the answer came from the guest's NIC, not another host


def test_a_spawn_that_fails_releases_its_address(start_virt_compute, marker_image,
                                                 bridge_and_namespace):
    """The bridge gone after start: libvirt cannot plug the tap, the build fails saying so,
    and the address goes back to the range (as Nova deallocates a failed build's network)."""
    bridge, _namespace = bridge_and_namespace
    compute = start_virt_compute(DEFAULT={"network_mode": "bridge",
                                          "flat_network_bridge": bridge, "fixed_range": RANGE})
    sh("ip", "link", "del", bridge)
    resp = nova(compute, "POST", "/servers", json=boot_body(marker_image, "unplugged",
                                                            networks="auto"))
    failed = wait_built(compute, resp.json()["server"]["id"])
    assert failed["status"] == "ERROR"
    assert bridge in failed["fault"]["message"], failed["fault"]
    assert failed["addresses"] == {}

    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "link", "set", bridge, "up")
    resp = nova(compute, "POST", "/servers", json=boot_body(marker_image, "plugged",
                                                            networks="auto"))
    plugged = wait_built(compute, resp.json()["server"]["id"])
    assert plugged["status"] == "ACTIVE", plugged.get("fault")
    assert plugged["addresses"]["private"][0]["addr"] == GUEST
