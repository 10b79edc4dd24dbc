"""`chute host-list` and `chute host-show HOST`: the compute hosts as an operator sees them,
from the compute API's os-hypervisors (resources and usage, pre-caching progress) and
os-services (zone, enabled or disabled with the reason, forced down). Admin only."""

from __future__ import annotations

from typing import Any

import click

from chute.cli.context import cli_context, format_option
from chute.cli.output import emit_list, emit_properties
from chute.client.compute import ComputeClient
from chute.errors import ChuteError

PRECACHE_KEY = "chute:image_precache"


def _hosts(client: ComputeClient) -> list[dict[str, Any]]:
    """One document per host: its hypervisor, with its service's zone and flags merged in."""
    services = {s.get("host"): s for s in client.services()}
    hosts = []
    for hypervisor in client.hypervisors():
        service = services.get(hypervisor.get("hypervisor_hostname"), {})
        doc = {"host": hypervisor.get("hypervisor_hostname"), "zone": service.get("zone"),
               "forced_down": service.get("forced_down", False),
               "disabled_reason": service.get("disabled_reason"),
               "updated_at": service.get("updated_at"), **hypervisor}
        hosts.append(doc)
    return sorted(hosts, key=lambda doc: str(doc["host"]))


def _used(used: str, total: str, unit: str = "") -> Any:
    return lambda doc: f"{doc.get(used, 0)}/{doc.get(total, 0)}{unit}"


@click.command("host-list")
@format_option
def host_list() -> None:
    """List the compute hosts: state, status, zone and usage."""
    emit_list(cli_context().fmt, _hosts(cli_context().compute()), [
        ("Host", "host"), ("State", "state"), ("Status", "status"), ("Zone", "zone"),
        ("VCPUs", _used("vcpus_used", "vcpus")),
        ("RAM", _used("memory_mb_used", "memory_mb", " MB")),
        ("Disk", _used("local_gb_used", "local_gb", " GB")),
        ("Servers", "running_vms"),
    ])


def _table_doc(doc: dict[str, Any]) -> dict[str, Any]:
    table = {k: v for k, v in doc.items() if k not in ("service", "cpu_info", PRECACHE_KEY)}
    table["precache"] = "\n".join(
        f"{p.get('image_id')}: {p.get('status')}"
        + (f" ({p['detail']})" if p.get("detail") else "")
        for p in doc.get(PRECACHE_KEY, [])) or "-"
    return table


@click.command("host-show")
@click.argument("host")
@format_option
def host_show(host: str) -> None:
    """Show a compute host: resources, usage, service state and images being pre-cached."""
    found = [doc for doc in _hosts(cli_context().compute()) if doc["host"] == host]
    if not found:
        raise ChuteError(f"no compute host named {host!r} (see 'chute host-list')")
    emit_properties(cli_context().fmt, found[0], _table_doc(found[0]))


COMMANDS = [host_list, host_show]
