"""An instance as JSON on the internal endpoints (compute API <-> agent), in one place.

Both sides are chute, so the document is the dataclass itself: every field, datetimes in ISO
8601. Parsing is strict (a missing or mistyped field is a BadComputeRequest naming it): the
sender is a trusted service, but a bug on either side should be one clear line, not a 500.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from chute.compute.instance import Fault, Instance, Port, Transfer
from chute.errors import BadComputeRequest

_DATES = ("created", "updated", "launched_at")


def dump(inst: Instance) -> dict[str, Any]:
    doc = dataclasses.asdict(inst)
    for name in _DATES:
        value = getattr(inst, name)
        doc[name] = value.isoformat() if value is not None else None
    if inst.fault is not None:
        doc["fault"]["created"] = inst.fault.created.isoformat()
    if inst.transfer is not None:
        doc["transfer"].pop("source", None)
    doc.pop("host_status", None)
    return doc


def load(doc: object) -> Instance:
    if not isinstance(doc, dict):
        raise BadComputeRequest("an instance document must be a JSON object")
    fields = {f.name for f in dataclasses.fields(Instance)}
    values = {k: v for k, v in doc.items() if k in fields}
    try:
        for name in _DATES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        fault = values.get("fault")
        if fault is not None:
            values["fault"] = Fault(int(fault["code"]), str(fault["message"]),
                                    datetime.fromisoformat(fault["created"]))
        transfer = values.get("transfer")
        if transfer is not None:
            values["transfer"] = Transfer(transfer["method"], transfer["primitive"],
                                          int(transfer["nbytes"]), float(transfer["seconds"]))
        port = values.get("port")
        if port is not None:
            values["port"] = Port(port["network"], port["address"], port["mac"],
                                  port.get("bridge"))
        inst = Instance(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadComputeRequest(f"malformed instance document: {exc}") from None
    if not isinstance(inst.id, str) or not inst.id:
        raise BadComputeRequest("malformed instance document: no id")
    return inst
