"""openstacksdk's compute proxy against chute-compute: flavors, boot, wait, show, delete."""

import openstack
import pytest

from tests.helpers.disks import make_qcow2
from tests.helpers.images import upload_image


def sdk(compute) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute.url},
        compute_endpoint_override=compute.url + "/v2.1")


def test_openstacksdk_boots_and_deletes_a_server(shared_api, start_compute, tmp_path):
    compute = start_compute(shared_api)
    image = upload_image(shared_api, make_qcow2(tmp_path / "img.qcow2", "16M", data_mb=1),
                         disk_format="qcow2")
    conn = sdk(compute)
    small = conn.compute.find_flavor("m1.small", ignore_missing=False)
    assert (small.id, small.vcpus, small.ram, small.disk) == ("2", 1, 2048, 20)

    server = conn.compute.create_server(name="vm1", image_id=image["id"], flavor_id="1",
                                        networks="none")  # required from 2.37, as in Nova
    server = conn.compute.wait_for_server(server, status="ACTIVE", interval=0.1, wait=60)
    assert server.vm_state == "active" and server.power_state == 1
    assert server.image.id == image["id"]
    assert (server.flavor.name, server.flavor.ram) == ("m1.tiny", 512)  # embedded from 2.47
    assert [s.name for s in conn.compute.servers()] == ["vm1"]

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.1, wait=30)
    with pytest.raises(openstack.exceptions.NotFoundException, match="could not be found"):
        conn.compute.get_server(server.id)
    assert not (compute.instances_path / server.id).exists()
