"""The `openstack` CLI (python-openstackclient) against chute-compute and chute-api, with the
clouds.yaml the README gives (auth_type none, endpoint overrides): boot with a key, user data,
properties, a zone and `--nic none`, then the commands people run next.

`server list` and the `keypair` commands of openstackclient 10 insist on an identity v3
service (they build an identity client up front, even without --user/--project); under
auth_type none there is none, so those rows wait for the identity issue's Keystone and are
driven here through openstacksdk, which openstackclient itself uses for compute."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import openstack
import pytest

from tests.helpers.images import upload_image
from tests.helpers.servers import nova
from tests.helpers.services import prepare_compute

# `-f json` gives the power state as Nova sends it, a number (the table says "Running").
RUNNING, SHUTDOWN = 1, 4
OPENSTACK = str(Path(sys.executable).parent / "openstack")


@pytest.fixture(scope="module")
def cloud(shared_api, tmp_path_factory):
    root = tmp_path_factory.mktemp("osc")
    compute = prepare_compute(root, shared_api).start()
    image = upload_image(shared_api, b"\0" * (1 << 20), name="osc-image")
    (root / "clouds.yaml").write_text(
        "clouds:\n  chute:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {compute.url}\n"
        f"    compute_endpoint_override: {compute.url}/v2.1\n"
        f"    image_endpoint_override: {shared_api.url}\n")
    yield compute, root, image["id"]
    compute.kill()


def osc(cloud, *args):
    _, root, _ = cloud
    env = {"HOME": str(root), "OS_CLIENT_CONFIG_FILE": str(root / "clouds.yaml"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([OPENSTACK, "--os-cloud", "chute", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def osc_json(cloud, *args):
    return json.loads(osc(cloud, *args, "-f", "json"))


def test_server_create_wait_with_the_boot_options(cloud):
    compute, root, _ = cloud
    key = nova(compute, "POST", "/os-keypairs", json={"keypair": {"name": "osc-key"}})
    assert key.status_code == 201
    (root / "user-data").write_text("#!/bin/sh\necho osc\n")
    server = osc_json(cloud, "server", "create", "--image", "osc-image", "--flavor", "m1.tiny",
                      "--nic", "none", "--key-name", "osc-key", "--user-data",
                      str(root / "user-data"), "--property", "role=web",
                      "--availability-zone", "nova", "--tag", "blue", "--wait", "osc-vm")
    assert server["status"] == "ACTIVE" and server["key_name"] == "osc-key"
    assert server["properties"] == {"role": "web"} and server["tags"] == ["blue"]
    assert server["OS-EXT-AZ:availability_zone"] == "nova"
    assert server["config_drive"] == "True"
    drive = compute.instances_path / server["id"] / "disk.config"
    assert b"echo osc" in drive.read_bytes()

    osc(cloud, "server", "set", "--property", "color=blue", "--name", "osc-vm2", "osc-vm")
    shown = osc_json(cloud, "server", "show", "osc-vm2")
    assert shown["properties"] == {"role": "web", "color": "blue"}
    osc(cloud, "server", "unset", "--property", "role", "osc-vm2")
    assert osc_json(cloud, "server", "show", "osc-vm2")["properties"] == {"color": "blue"}
    events = osc_json(cloud, "server", "event", "list", "osc-vm2")
    assert [e["Action"] for e in events] == ["create"]
    osc(cloud, "server", "delete", "--wait", "osc-vm2")
    assert not (compute.instances_path / server["id"]).exists()


def test_an_unknown_zone_is_refused(cloud):
    _, root, _ = cloud
    env = {"HOME": str(root), "OS_CLIENT_CONFIG_FILE": str(root / "clouds.yaml")}
    proc = subprocess.run([OPENSTACK, "--os-cloud", "chute", "server", "create", "--image",
                           "osc-image", "--flavor", "1", "--nic", "none",
                           "--availability-zone", "mars", "vm"], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 1
    assert "The requested availability zone is not available" in proc.stderr


def test_flavors_zones_limits(cloud):
    small = osc_json(cloud, "flavor", "show", "m1.small")
    assert (small["name"], small["ram"], small["properties"]) == ("m1.small", 2048, {})
    listed = osc_json(cloud, "flavor", "list", "--long")
    assert [f["Name"] for f in listed][:2] == ["m1.tiny", "m1.small"]
    assert all(f["Properties"] == {} for f in listed)
    zones = osc_json(cloud, "availability", "zone", "list", "--compute")
    assert zones == [{"Zone Name": "nova", "Zone Status": "available"}]
    limits = {row["Name"]: row["Value"]
              for row in osc_json(cloud, "limits", "show", "--absolute")}
    assert limits["server_meta"] == 128 and limits["instances"] == -1


def test_sdk_for_what_the_cli_needs_keystone_for(cloud):
    """Server list filters and keypairs through openstacksdk (see the module docstring)."""
    compute, _, image_id = cloud
    conn = openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute.url},
        compute_endpoint_override=compute.url + "/v2.1")
    made = conn.compute.create_keypair(name="sdk-key")
    assert made.private_key and made.name in [k.name for k in conn.compute.keypairs()]
    for name in ("a-1", "a-2", "b-1"):
        conn.compute.create_server(name=name, image_id=image_id,
                                   flavor_id="1", networks="none",
                                   user_data=base64.b64encode(b"x").decode())
    assert sorted(s.name for s in conn.compute.servers(name="^a-")) == ["a-1", "a-2"]
    assert len(list(conn.compute.servers(limit=1, paginated=False))) == 1
    assert len(list(conn.compute.servers(limit=1))) >= 3  # follows servers_links
    conn.compute.delete_keypair("sdk-key")



def wait_shown(cloud, name, status, power_state, timeout=60.0):
    """`openstack server show` polled until it reports the state an action leads to, its
    task done (the next action would get a 409 while it runs)."""
    deadline = time.monotonic() + timeout
    shown = osc_json(cloud, "server", "show", name)
    while (shown["status"], shown["OS-EXT-STS:power_state"],
           shown["OS-EXT-STS:task_state"]) != (status, power_state, None):
        assert time.monotonic() < deadline, f"{name} stayed {shown['status']}"
        time.sleep(0.5)
        shown = osc_json(cloud, "server", "show", name)
    return shown


def test_stop_start_reboot_and_the_console(cloud):
    """The fake driver's power state is real (a file the agent reads back) and its console
    log records each action, so every row waits for what `server show` reports."""
    osc(cloud, "server", "create", "--image", "osc-image", "--flavor", "m1.tiny",
        "--nic", "none", "--wait", "osc-power")
    osc(cloud, "server", "stop", "osc-power")
    wait_shown(cloud, "osc-power", "SHUTOFF", SHUTDOWN)
    osc(cloud, "server", "start", "osc-power")
    wait_shown(cloud, "osc-power", "ACTIVE", RUNNING)
    osc(cloud, "server", "reboot", "--wait", "osc-power")
    osc(cloud, "server", "reboot", "--hard", "--wait", "osc-power")
    wait_shown(cloud, "osc-power", "ACTIVE", RUNNING)

    console = osc(cloud, "console", "log", "show", "osc-power").splitlines()
    assert [" ".join(line.split()[3:]) for line in console if line] == [
        "started", "powered off", "started", "rebooted (soft)", "rebooted (hard)"]
    last = osc(cloud, "console", "log", "show", "--lines", "1", "osc-power")
    assert last.strip().endswith("rebooted (hard)")
    osc(cloud, "server", "delete", "--wait", "osc-power")
