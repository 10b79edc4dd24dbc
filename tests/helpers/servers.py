"""The compute API as the tests drive it: boot a server, wait until it has left BUILD, look at
what the boot left in `_base` and in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.helpers.polling import wait_for


def _auth(compute: Any) -> dict[str, str]:
    """X-Auth-Token when the compute endpoint carries a token (auth on), else nothing."""
    token = getattr(compute, "token", None)
    return {"X-Auth-Token": token} if token else {}


def boot(compute: Any, image_id: str, name: str = "vm", flavor: str = "1") -> dict:
    resp = requests.post(compute.url + "/v2.1/servers",
                         json={"server": {"name": name, "imageRef": image_id,
                                          "flavorRef": flavor}},
                         headers=_auth(compute), timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["server"]


def server(compute: Any, server_id: str) -> dict:
    resp = requests.get(f"{compute.url}/v2.1/servers/{server_id}", headers=_auth(compute),
                        timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["server"]


def wait_built(compute: Any, server_id: str, timeout: float = 60) -> dict:
    """The server once it left BUILD (fails the test if it never does)."""
    found: dict = {}

    def done() -> bool:
        found.update(server(compute, server_id))
        return found["status"] != "BUILD"

    wait_for(done, timeout, f"server {server_id} to leave BUILD", interval=0.05)
    return found


def boot_and_wait(compute: Any, image_id: str, name: str = "vm", flavor: str = "1",
                  timeout: float = 60) -> dict:
    """Boot `image_id` and return the server once it has left BUILD."""
    return wait_built(compute, boot(compute, image_id, name, flavor)["id"], timeout)


def base_dir(compute: Any) -> Path:
    return Path(compute.instances_path) / "_base"


def transfers_logged(compute: Any) -> int:
    return compute.log_text().count("Successfully transferred using")


def nova(compute: Any, method: str, path: str, version: str | None = "2.79",
         **kwargs: Any) -> requests.Response:
    """One request to the compute API at microversion `version` (None: no header, 2.1)."""
    headers = dict(kwargs.pop("headers", {}))
    if version is not None:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return requests.request(method, f"{compute.url}/v2.1{path}", headers=headers, timeout=30,
                            **kwargs)


def boot_body(image_id: str, name: str = "vm", flavor: str = "1", **fields: Any) -> dict:
    """A POST /servers body at 2.37+ (networks is required there)."""
    return {"server": {"name": name, "imageRef": image_id, "flavorRef": flavor,
                       "networks": "none", **fields}}


def action(compute: Any, server_id: str, body: Any) -> requests.Response:
    """POST /servers/{id}/action with `body` as JSON."""
    return requests.post(f"{compute.url}/v2.1/servers/{server_id}/action", json=body,
                         timeout=10)


def wait_status(compute: Any, server_id: str, status: str, timeout: float = 30) -> dict:
    """The server once its status is `status` and no task runs on it."""
    found: dict = {}

    def done() -> bool:
        found.clear()
        found.update(server(compute, server_id))
        return found["status"] == status and found["OS-EXT-STS:task_state"] is None

    wait_for(done, timeout, f"server {server_id} to be {status}", interval=0.05)
    return found


def console_output(compute: Any, server_id: str, length: Any = None) -> str:
    body = {"os-getConsoleOutput": {} if length is None else {"length": length}}
    resp = action(compute, server_id, body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"])


def wait_console(compute: Any, server_id: str, text: str, timeout: float = 30) -> str:
    """The console output once it contains `text`."""
    return str(wait_for(lambda: (lambda out: out if text in out else "")(
        console_output(compute, server_id)), timeout, f"{text!r} on {server_id}'s console",
        interval=0.1))
