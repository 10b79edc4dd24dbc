"""python-novaclient's operator calls against chute-compute-api at 2.81 (keystoneauth's noauth
plugin with the endpoint, as novaclient is used without Keystone): services, hypervisors,
aggregates and cache_images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from keystoneauth1 import noauth, session
from novaclient import client as novaclient

from tests.helpers.cluster import Cluster, prepare_agent
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import nova as nova_call
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


def number_of(cluster: Cluster, host: str) -> int:
    """The service's integer id, as clients before 2.53 see it."""
    listed = nova_call(cluster.api, "GET", f"/os-services?host={host}", None).json()
    return int(listed["services"][0]["id"])


def test_a_down_host_s_service_is_deleted_and_registers_anew_when_it_returns(
        nova, cluster: Cluster, shared_api: ApiServer, tmp_path: Path) -> None:
    agent = prepare_agent(tmp_path / "host4", "host4", cluster.api, shared_api).start()
    try:
        cluster.wait_registered("host4")
        agg = nova.aggregates.create("doomed", None)
        nova.aggregates.add_host(agg, "host4")
        agent.kill()
        wait_for(lambda: next(s for s in nova.services.list() if s.host == "host4").state
                 == "down", 30, "host4's service to be down")
        host4 = next(s for s in nova.services.list() if s.host == "host4")
        number = number_of(cluster, "host4")

        nova.services.delete(host4.id)

        assert "host4" not in {s.host for s in nova.services.list()}
        assert "host4" not in {h.hypervisor_hostname for h in nova.hypervisors.list()}
        assert nova.aggregates.get(agg.id).hosts == []  # it left its aggregates, as in Nova
        nova.aggregates.delete(agg)
        agent.start()  # it heartbeats again: a new service, enabled, with a new number
        cluster.wait_registered("host4")
        again = next(s for s in nova.services.list() if s.host == "host4")
        assert (again.status, again.state) == ("enabled", "up")
        assert number_of(cluster, "host4") > number  # never reused, as Nova's ids
    finally:
        agent.kill()
        leftover = [s for s in nova.services.list() if s.host == "host4"]
        for service in leftover:  # the other tests of the package see three hosts
            nova.services.delete(service.id)
