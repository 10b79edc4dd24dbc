"""`chute host-list` and `chute host-show` against a real compute API and three agents."""

from __future__ import annotations

from tests.helpers.cli import assert_one_line_error, run_chute
from tests.helpers.cluster import Cluster
from tests.helpers.servers import nova


def test_host_list_shows_every_host_with_its_state_and_usage(cluster: Cluster) -> None:
    result = run_chute("host-list", "-f", "json", compute_url=cluster.api.url)
    assert result.returncode == 0, result.stderr
    hosts = {h["host"]: h for h in result.json()}
    assert set(hosts) == {"host1", "host2", "host3"}
    assert all((h["state"], h["zone"]) == ("up", "nova") for h in hosts.values())
    table = run_chute("host-list", compute_url=cluster.api.url).stdout
    assert "| Host " in table and "host2" in table and " MB" in table


def test_host_show_says_why_a_host_is_disabled(cluster: Cluster) -> None:
    body = {"host": "host1", "binary": "nova-compute", "disabled_reason": "firmware"}
    nova(cluster.api, "PUT", "/os-services/disable-log-reason", None, json=body)
    try:
        shown = run_chute("host-show", "host1", compute_url=cluster.api.url)
        assert shown.returncode == 0, shown.stderr
        table = shown.table()
        assert (table["status"], table["disabled_reason"]) == ("disabled", "firmware")
        assert table["precache"] == "-" or ": " in table["precache"]
    finally:
        nova(cluster.api, "PUT", "/os-services/enable", None,
             json={"host": "host1", "binary": "nova-compute"})


def test_an_unknown_host_is_one_line_and_exit_1(cluster: Cluster) -> None:
    assert_one_line_error(run_chute("host-show", "ghost", compute_url=cluster.api.url),
                          "no compute host named 'ghost'")


def test_a_compute_api_without_the_operators_views_is_one_line(cluster: Cluster) -> None:
    agent = cluster.agents["host1"]  # an agent serves no os-hypervisors
    assert_one_line_error(run_chute("host-list", compute_url=agent.url), "HTTP 404")
