"""Why a server went where it did: a Selection as a record (kept with the server at boot, JSON)
and as the text `chute-compute-api explain SERVER` prints."""

from __future__ import annotations

from typing import Any

from chute.compute.host_state import RequestSpec, Selection


def record(spec: RequestSpec, selection: Selection) -> dict[str, Any]:
    """The placement as plain JSON data: what was asked, the ranking and the refusals."""
    return {
        "request": {"image_id": spec.image_id, "vcpus": spec.vcpus,
                    "memory_mb": spec.memory_mb, "disk_gb": spec.disk_gb,
                    "availability_zone": spec.availability_zone,
                    "image_filesystem_ids": sorted(spec.image_filesystem_ids),
                    "ignore_hosts": sorted(spec.ignore_hosts)},
        "choices": [{"host": choice.host.host, "weight": round(choice.weight, 6),
                     "reasons": list(choice.reasons)} for choice in selection.choices],
        "rejections": [{"host": rejection.host, "filter": rejection.filter_name,
                        "reason": rejection.reason} for rejection in selection.rejections],
        "host_subset_size": selection.subset_size,
    }


def render(placement: dict[str, Any], chosen: str | None = None) -> str:
    """The record as text: the host chosen (the first choice unless a retry took another),
    the alternates in order, and the hosts the filters refused."""
    request = placement.get("request", {})
    lines = [f"Request: image {request.get('image_id')}, {request.get('vcpus')} VCPU, "
             f"{request.get('memory_mb')} MB RAM, {request.get('disk_gb')} GB disk, "
             f"availability zone {request.get('availability_zone') or 'any'}"]
    if request.get("ignore_hosts"):
        lines.append(f"Already tried: {', '.join(request['ignore_hosts'])}")
    choices = placement.get("choices", [])
    if not choices:
        lines.append("No host passed the filters: the server could not be placed.")
    chosen = chosen or (choices[0]["host"] if choices else None)
    subset = int(placement.get("host_subset_size", 1))
    if subset > 1 and len(choices) > 1:
        lines.append(f"First host drawn at random among the best {min(subset, len(choices))} "
                     f"([filter_scheduler] host_subset_size = {subset}), the others in "
                     "weighed order")
    for rank, choice in enumerate(choices, 1):
        role = "chosen" if choice["host"] == chosen else "alternate"
        lines.append(f"{rank}. {choice['host']} ({role}, weight {choice['weight']:.3f})")
        lines.extend(f"     {reason}" for reason in choice["reasons"])
    for rejection in placement.get("rejections", []):
        lines.append(f"-  {rejection['host']} refused by {rejection['filter']}: "
                     f"{rejection['reason']}")
    return "\n".join(lines) + "\n"
