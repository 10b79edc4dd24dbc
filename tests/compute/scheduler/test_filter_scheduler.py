from __future__ import annotations

import random
from collections import Counter

from chute.compute.scheduler import FilterScheduler, SchedulerOptions
from chute.compute.scheduler.filter_scheduler import pick_from_subset
from chute.compute.scheduler.weighers import Multipliers
from tests.helpers.host_states import IMAGE, host, spec

FS = "fs-rack1"


def _order(selection):
    return [choice.host.host for choice in selection.choices]


def test_spreads_over_idle_hosts_by_free_ram():
    hosts = [host("a", memory_mb_used=4096), host("b"), host("c", memory_mb_used=2048)]
    assert _order(FilterScheduler().select(spec(), hosts)) == ["b", "c", "a"]


def test_equal_hosts_rank_by_name_so_every_api_node_agrees():
    assert _order(FilterScheduler().select(spec(), [host("c"), host("a"), host("b")])) == [
        "a", "b", "c"]


def test_prefers_the_cached_image_then_a_filesystem_holding_it_then_any_host():
    hosts = [host("http-only"), host("mounts", filesystem_ids=frozenset({FS})),
             host("cached", cached_images=frozenset({IMAGE}))]
    selection = FilterScheduler().select(spec(image_filesystem_ids=frozenset({FS})), hosts)
    assert _order(selection) == ["cached", "mounts", "http-only"]
    reasons = {choice.host.host: choice.reasons for choice in selection.choices}
    assert any("in its _base" in reason for reason in reasons["cached"])
    assert any(f"mounts filesystem {FS}" in reason for reason in reasons["mounts"])
    assert any("over HTTP" in reason for reason in reasons["http-only"])


def test_a_cached_host_much_fuller_than_the_others_no_longer_wins_so_storms_spread():
    # 12288 MB allocatable each: the cached host is 33% fuller, more than the 0.2 bonus.
    cached = host("cached", cached_images=frozenset({IMAGE}), memory_mb_used=4096)
    assert _order(FilterScheduler().select(spec(), [cached, host("empty")])) == [
        "empty", "cached"]


def test_a_negative_ram_multiplier_stacks_as_in_nova():
    scheduler = FilterScheduler(SchedulerOptions(multipliers=Multipliers(ram=-1.0)))
    hosts = [host("a"), host("b", memory_mb_used=4096)]
    assert _order(scheduler.select(spec(), hosts)) == ["b", "a"]


def test_every_refused_host_says_which_filter_and_why():
    hosts = [host("down", alive=False), host("zone", availability_zone="rack2"),
             host("full", memory_mb_used=12000), host("tried"), host("ok")]
    selection = FilterScheduler().select(
        spec(availability_zone="nova", ignore_hosts=frozenset({"tried"})), hosts)
    assert _order(selection) == ["ok"]
    refused = {r.host: r.filter_name for r in selection.rejections}
    assert refused == {"down": "ComputeFilter", "zone": "AvailabilityZoneFilter",
                       "full": "Placement", "tried": "RetryFilter"}


def test_filters_left_out_of_enabled_filters_do_not_run():
    scheduler = FilterScheduler(SchedulerOptions(enabled_filters=("AvailabilityZoneFilter",)))
    assert _order(scheduler.select(spec(), [host("disabled", enabled=False)])) == ["disabled"]


def test_no_host_left_is_an_empty_selection_with_every_rejection():
    selection = FilterScheduler().select(spec(vcpus=64), [host("a"), host("b")])
    assert selection.choices == ()
    assert [r.host for r in selection.rejections] == ["a", "b"]


def test_host_subset_size_draws_the_first_host_among_the_best_n_only():
    # weighed order a > b > c > d (d the fullest): with a subset of 3, d is never first
    hosts = [host("a"), host("b", memory_mb_used=1024), host("c", memory_mb_used=2048),
             host("d", memory_mb_used=4096)]
    scheduler = FilterScheduler(SchedulerOptions(host_subset_size=3), random.Random(7))
    firsts = Counter()
    for _ in range(300):
        order = _order(scheduler.select(spec(), hosts))
        firsts[order[0]] += 1
        # the alternates keep the weighed order, so a failed claim falls back on the best
        assert order[1:] == [h for h in ["a", "b", "c", "d"] if h != order[0]]
    assert set(firsts) == {"a", "b", "c"}
    assert min(firsts.values()) > 60  # about a third each


def test_a_subset_of_one_or_larger_than_the_hosts_is_nova_s_plain_choice_or_any_host():
    choices = FilterScheduler().select(spec(), [host("a"), host("b", memory_mb_used=2048)])
    assert pick_from_subset(choices.choices, 1, random.Random(1)) == choices.choices
    drawn = {pick_from_subset(choices.choices, 10, random.Random(seed))[0].host.host
             for seed in range(20)}
    assert drawn == {"a", "b"}
    assert pick_from_subset((), 3, random.Random(1)) == ()
