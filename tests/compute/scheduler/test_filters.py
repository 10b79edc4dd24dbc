from __future__ import annotations

from chute.compute.scheduler import filters
from tests.helpers.host_states import host, spec


def test_compute_filter_passes_an_enabled_live_host():
    assert filters.compute_filter(spec(), host("a")) is None


def test_compute_filter_refuses_a_disabled_host_naming_the_operators_reason():
    reason = filters.compute_filter(
        spec(), host("a", enabled=False, disabled_reason="disk replacement"))
    assert reason == "its compute service is disabled: disk replacement"


def test_compute_filter_refuses_a_host_without_heartbeat_and_a_forced_down_one():
    assert "no heartbeat within service_down_time" in str(
        filters.compute_filter(spec(), host("a", alive=False)))
    assert "forced down" in str(filters.compute_filter(spec(), host("a", forced_down=True)))


def test_availability_zone_filter_matches_only_the_zone_asked_for():
    rack2 = host("a", availability_zone="rack2")
    assert filters.availability_zone_filter(spec(), rack2) is None
    assert filters.availability_zone_filter(spec(availability_zone="rack2"), rack2) is None
    refused = filters.availability_zone_filter(spec(availability_zone="rack1"), rack2)
    assert refused == "it is in availability zone 'rack2', the server asked for 'rack1'"


def test_memory_counts_used_plus_asked_against_total_times_ratio():
    # 8192 MB x 1.5 = 12288 allocatable: 10240 used leaves exactly 2048.
    assert filters.memory_filter(spec(), host("a", memory_mb_used=10240)) is None
    refused = filters.memory_filter(spec(), host("a", memory_mb_used=10241))
    assert refused == ("MEMORY_MB: 10241 MB used + 2048 MB asked > 12288 MB allocatable "
                       "(8192 MB x allocation ratio 1.5)")


def test_a_server_larger_than_the_host_is_refused_whatever_the_ratio():
    # 12 VCPUs fit 8 x 16 allocatable, but placement's max_unit is the host's 8.
    refused = filters.vcpu_filter(spec(vcpus=12), host("a"))
    assert refused is not None and "max_unit" in refused


def test_vcpus_overcommit_by_the_cpu_ratio_and_disk_does_not():
    assert filters.vcpu_filter(spec(), host("a", vcpus_used=127)) is None
    assert filters.vcpu_filter(spec(), host("a", vcpus_used=128)) is not None
    assert filters.disk_filter(spec(), host("a", disk_gb_used=80)) is None
    assert filters.disk_filter(spec(), host("a", disk_gb_used=81)) is not None


def test_hosts_a_build_already_failed_on_are_skipped():
    assert filters.ignore_hosts_filter(spec(ignore_hosts=frozenset({"a"})), host("a"))
    assert filters.ignore_hosts_filter(spec(ignore_hosts=frozenset({"b"})), host("a")) is None
