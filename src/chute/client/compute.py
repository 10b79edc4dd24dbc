"""Client for the Nova v2.1 subset chute-compute serves (servers and flavors)."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from chute.client._http import HttpApi
from chute.errors import RemoteError


def _q(part: str) -> str:
    return quote(str(part), safe="")


def _inner(doc: object, key: str) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise RemoteError(200, f"compute API answer has no {key!r} member")
    return doc[key]


def _one(doc: object, key: str) -> dict[str, Any]:
    inner = _inner(doc, key)
    if not isinstance(inner, dict):
        raise RemoteError(200, f"compute API answer's {key!r} is not an object")
    return inner


def _many(doc: object, key: str) -> list[dict[str, Any]]:
    inner = _inner(doc, key)
    if not isinstance(inner, list):
        raise RemoteError(200, f"compute API answer's {key!r} is not a list")
    return inner


class ComputeClient:
    """Servers and flavors; each call returns the inner document (`server`, `flavor`...)."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 60) -> None:
        self.api = HttpApi(endpoint, token, timeout, strip_suffixes=("/v2.1", "/v2"))

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    def close(self) -> None:
        self.api.close()

    def boot(self, name: str, image_ref: str, flavor_ref: str, **fields: Any) -> dict[str, Any]:
        """`fields`: more of Nova's server fields (key_name, user_data as base64, metadata,
        availability_zone, config_drive), sent as given."""
        body = {"server": {"name": name, "imageRef": image_ref, "flavorRef": str(flavor_ref),
                           **fields}}
        return _one(self.api.json("POST", "/v2.1/servers", json=body), "server")

    def keypair_create(self, name: str, public_key: str | None = None) -> dict[str, Any]:
        """Import `public_key`, or have the server generate one (its private_key is in the
        answer only)."""
        asked: dict[str, Any] = {"name": name}
        if public_key is not None:
            asked["public_key"] = public_key
        doc = self.api.json("POST", "/v2.1/os-keypairs", json={"keypair": asked})
        return _one(doc, "keypair")

    def keypairs(self) -> builtins.list[dict[str, Any]]:
        return [_one(item, "keypair") for item in _many(self.api.json("GET", "/v2.1/os-keypairs"),
                                                         "keypairs")]

    def keypair_delete(self, name: str) -> None:
        self.api.request("DELETE", f"/v2.1/os-keypairs/{_q(name)}").close()

    def get(self, server_id: str) -> dict[str, Any]:
        return _one(self.api.json("GET", f"/v2.1/servers/{_q(server_id)}"), "server")

    def list(self, detail: bool = True) -> builtins.list[dict[str, Any]]:
        path = "/v2.1/servers/detail" if detail else "/v2.1/servers"
        return _many(self.api.json("GET", path), "servers")

    def delete(self, server_id: str) -> None:
        self.api.request("DELETE", f"/v2.1/servers/{_q(server_id)}").close()

    def action(self, server_id: str, body: dict[str, Any]) -> None:
        """os-stop, os-start, reboot: accepted (202), done in the background."""
        self.api.request("POST", f"/v2.1/servers/{_q(server_id)}/action", json=body).close()

    def console_output(self, server_id: str, length: int | None = None) -> str:
        body = {"os-getConsoleOutput": {} if length is None else {"length": length}}
        doc = self.api.json("POST", f"/v2.1/servers/{_q(server_id)}/action", json=body)
        output = _inner(doc, "output")
        if not isinstance(output, str):
            raise RemoteError(200, "compute API answer's 'output' is not a string")
        return output

    def flavors(self) -> builtins.list[dict[str, Any]]:
        return _many(self.api.json("GET", "/v2.1/flavors/detail"), "flavors")

    def flavor(self, flavor_id: str) -> dict[str, Any]:
        return _one(self.api.json("GET", f"/v2.1/flavors/{_q(flavor_id)}"), "flavor")

    # -- operators' views (admin): os-services and os-hypervisors at 2.53 ------------------

    def services(self) -> builtins.list[dict[str, Any]]:
        return _many(self.api.json("GET", "/v2.1/os-services", headers=OPERATOR_VERSION),
                     "services")

    def hypervisors(self) -> builtins.list[dict[str, Any]]:
        return _many(self.api.json("GET", "/v2.1/os-hypervisors/detail",
                                   headers=OPERATOR_VERSION), "hypervisors")


# The version the operators' calls ask for: services and hypervisors named by uuid (2.53).
OPERATOR_VERSION = {"OpenStack-API-Version": "compute 2.53"}
