"""Host aggregates in a real SQLite database: Nova's rules (unique names, one availability
zone per host, no deleting an aggregate with hosts) and the zones they give hosts."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from chute.compute.aggregates import Aggregates
from chute.errors import BadComputeRequest, ComputeConflict, ComputeNotFound
from tests.helpers.host_states import host


@pytest.fixture
def aggregates(tmp_path):
    return Aggregates(create_engine(f"sqlite:///{tmp_path / 'compute-api.sqlite'}"))


def test_an_aggregate_with_a_zone_gives_it_to_its_hosts(aggregates):
    rack = aggregates.create("rack1", "zone-a")
    aggregates.add_host(rack.id, "h1", known=True)
    zoned = aggregates.zoned([host("h1"), host("h2")])
    assert [(h.host, h.availability_zone) for h in zoned] == [("h1", "zone-a"), ("h2", "nova")]
    assert aggregates.get(str(rack.id)).hosts == ("h1",)


def test_names_are_unique_and_unknown_hosts_refused(aggregates):
    aggregates.create("rack1")
    with pytest.raises(ComputeConflict):
        aggregates.create("rack1")
    with pytest.raises(ComputeNotFound, match="Compute host ghost could not be found"):
        aggregates.add_host(aggregates.list()[0].id, "ghost", known=False)
    with pytest.raises(BadComputeRequest):
        aggregates.create("   ")


def test_a_host_is_in_one_zone_whatever_its_aggregates(aggregates):
    a = aggregates.create("a", "zone-a")
    b = aggregates.create("b")
    aggregates.add_host(a.id, "h1", known=True)
    aggregates.add_host(b.id, "h1", known=True)
    with pytest.raises(BadComputeRequest, match="already in availability zone 'zone-a'"):
        aggregates.set_metadata(b.id, {"availability_zone": "zone-b"})
    c = aggregates.create("c", "zone-c")
    with pytest.raises(ComputeConflict, match="already in availability zone 'zone-a'"):
        aggregates.add_host(c.id, "h1", known=True)


def test_set_metadata_sets_and_removes_keys(aggregates):
    a = aggregates.create("a")
    aggregates.set_metadata(a.id, {"ssd": "true", "availability_zone": "z"})
    found = aggregates.set_metadata(a.id, {"ssd": None})
    assert dict(found.metadata) == {"availability_zone": "z"}
    assert found.availability_zone == "z"


def test_an_aggregate_with_hosts_is_not_deleted(aggregates):
    a = aggregates.create("a")
    aggregates.add_host(a.id, "h1", known=True)
    with pytest.raises(BadComputeRequest, match="still has hosts"):
        aggregates.delete(a.id)
    aggregates.remove_host(a.id, "h1")
    aggregates.delete(a.id)
    with pytest.raises(ComputeNotFound):
        aggregates.get(a.id)
    with pytest.raises(ComputeNotFound):
        aggregates.remove_host(aggregates.create("b").id, "h1")
