from __future__ import annotations

import json
import random

from chute.compute.scheduler import FilterScheduler, SchedulerOptions
from chute.compute.scheduler.explain import record, render
from tests.helpers.host_states import IMAGE, host, spec


def test_the_record_is_json_and_the_text_says_why_each_host_won_or_lost():
    boot = spec()
    hosts = [host("cached", cached_images=frozenset({IMAGE})), host("plain"),
             host("off", enabled=False, disabled_reason="maintenance")]
    placement = json.loads(json.dumps(record(boot, FilterScheduler().select(boot, hosts))))
    text = render(placement)
    assert text.splitlines()[0] == (f"Request: image {IMAGE}, 1 VCPU, 2048 MB RAM, 20 GB disk, "
                                    "availability zone any")
    assert "1. cached (chosen, weight 1.200)" in text
    assert "2. plain (alternate, weight 1.000)" in text
    assert "is in its _base, nothing to copy" in text
    assert ("-  off refused by ComputeFilter: its compute service is disabled: maintenance"
            in text)


def test_a_retry_names_the_host_it_took_and_the_hosts_already_tried():
    boot = spec(ignore_hosts=frozenset({"a"}))
    placement = record(boot, FilterScheduler().select(boot, [host("a"), host("b"), host("c")]))
    text = render(placement, chosen="c")
    assert "Already tried: a" in text
    assert "2. c (chosen" in text and "1. b (alternate" in text


def test_nowhere_to_go_says_so():
    boot = spec(vcpus=64)
    text = render(record(boot, FilterScheduler().select(boot, [host("a")])))
    assert "No host passed the filters" in text


def test_a_random_pick_among_the_best_says_so_with_the_option_and_its_value():
    boot = spec()
    scheduler = FilterScheduler(SchedulerOptions(host_subset_size=2), random.Random(3))
    placement = json.loads(json.dumps(record(boot, scheduler.select(
        boot, [host("a"), host("b", memory_mb_used=1024), host("c", memory_mb_used=4096)]))))
    assert placement["host_subset_size"] == 2
    text = render(placement)
    assert ("First host drawn at random among the best 2 ([filter_scheduler] "
            "host_subset_size = 2), the others in weighed order") in text
    assert placement["choices"][0]["host"] in {"a", "b"}
    assert "(chosen" in text.splitlines()[2]
