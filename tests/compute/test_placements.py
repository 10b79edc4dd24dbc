"""Recorded placements in a real SQLite database: every try of a server kept, the zones of
aggregates and the image's filesystems applied before the FilterScheduler ranks the hosts."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from chute.compute.aggregates import Aggregates
from chute.compute.placements import PlacementLog, RecordingScheduler
from chute.compute.scheduler import FilterScheduler
from chute.errors import ComputeNotFound
from tests.helpers.host_states import host, spec


@pytest.fixture
def engine(tmp_path):
    return create_engine(f"sqlite:///{tmp_path / 'compute-api.sqlite'}")


def test_each_try_is_explained_with_the_host_it_went_to(engine):
    log = PlacementLog(engine)
    scheduler = RecordingScheduler(FilterScheduler(), log, Aggregates(engine),
                                   lambda image_id: frozenset({"fs-1"}))
    hosts = [host("a", filesystem_ids=frozenset({"fs-1"})), host("b")]
    first = scheduler.select(spec(), hosts)
    assert first.choices[0].host.host == "a"  # mounts the image's filesystem
    scheduler.select(spec(ignore_hosts=frozenset({"a"})), hosts)
    text = log.explain("server-1", "b")
    assert text.startswith("Server server-1: on host b\n")
    try1, try2 = text.split("\nTry 2")
    assert "1. a (chosen" in try1 and "mounts filesystem fs-1" in try1
    assert "1. b (chosen" in try2
    assert "a refused by RetryFilter" in try2


def test_an_aggregates_zone_is_the_one_the_filter_sees(engine):
    aggregates = Aggregates(engine)
    rack = aggregates.create("rack", "zone-r")
    aggregates.add_host(rack.id, "b", known=True)
    scheduler = RecordingScheduler(FilterScheduler(), PlacementLog(engine), aggregates)
    selection = scheduler.select(spec(availability_zone="zone-r"), [host("a"), host("b")])
    assert [c.host.host for c in selection.choices] == ["b"]


def test_a_server_never_scheduled_has_nothing_to_explain(engine):
    with pytest.raises(ComputeNotFound, match="No placement of server nope was recorded"):
        PlacementLog(engine).explain("nope", None)
