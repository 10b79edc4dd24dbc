"""python-novaclient's operator calls against chute-compute-api at 2.81 (keystoneauth's noauth
plugin with the endpoint, as novaclient is used without Keystone): services, hypervisors,
aggregates and cache_images."""

from __future__ import annotations

import os

import pytest
from keystoneauth1 import noauth, session
from novaclient import client as novaclient

from tests.helpers.cluster import Cluster
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer


@pytest.fixture(scope="module")
def nova(cluster: Cluster):
    sess = session.Session(auth=noauth.NoAuth(endpoint=f"{cluster.api.url}/v2.1"))
    return novaclient.Client("2.81", session=sess)


def test_services_disable_with_a_reason_force_down_and_enable(nova) -> None:
    host2 = next(s for s in nova.services.list(binary="nova-compute") if s.host == "host2")
    try:
        disabled = nova.services.disable_log_reason(host2.id, "novaclient test")
        assert (disabled.status, disabled.disabled_reason) == ("disabled", "novaclient test")
        assert nova.services.force_down(host2.id, True).forced_down is True
    finally:
        nova.services.force_down(host2.id, False)
        nova.services.enable(host2.id)
    shown = next(s for s in nova.services.list() if s.host == "host2")
    assert (shown.status, shown.state, shown.forced_down) == ("enabled", "up", False)


def test_hypervisors_list_and_get(nova) -> None:
    listed = nova.hypervisors.list()
    assert sorted(h.hypervisor_hostname for h in listed) == ["host1", "host2", "host3"]
    one = nova.hypervisors.get(listed[0].id)
    assert one.memory_mb >= one.memory_mb_used >= 0 and one.state == "up"


def test_aggregate_with_a_host_caches_an_image(nova, cluster: Cluster,
                                               shared_api: ApiServer) -> None:
    image_id = upload_image(shared_api, os.urandom(1 << 19), name="nc-cache")["id"]
    agg = nova.aggregates.create("nc-agg", None)
    try:
        agg = nova.aggregates.add_host(agg, "host2")
        assert agg.hosts == ["host2"]
        nova.aggregates.set_metadata(agg, {"availability_zone": "nc-zone"})
        assert nova.aggregates.get(agg.id).availability_zone == "nc-zone"
        nova.aggregates.cache_images(agg, [image_id])
        host2 = next(h for h in nova.hypervisors.list() if h.hypervisor_hostname == "host2")
        wait_for(lambda: any(
            p["image_id"] == image_id and p["status"] == "cached"
            for p in getattr(nova.hypervisors.get(host2.id), "chute:image_precache")),
            60, "host2 to have pre-cached the image")
    finally:
        nova.aggregates.remove_host(agg, "host2")
        nova.aggregates.delete(agg)
    assert all(a.name != "nc-agg" for a in nova.aggregates.list())
