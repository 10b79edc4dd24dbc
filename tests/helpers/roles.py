"""The roles x operations table of tests/auth and the cloud it runs against: project proj-a's
private and shared images (proj-m a pending member of the shared one, proj-n an accepted
one) and its server, made through the real APIs by proj-a's member. The table is run in
`tokens` mode and in `keystone` mode (tests/auth/test_roles.py, test_keystone.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import requests

from chute.client.images import ImageClient
from tests.helpers.identity import Caller
from tests.helpers.servers import boot_and_wait
from tests.helpers.services import ApiServer, ComputeServer

DATA = b"\x5a" * 65536


@dataclass(frozen=True)
class Cloud:
    api: ApiServer
    compute: ComputeServer
    callers: dict[str, Caller]
    private: str  # proj-a's private image
    shared: str  # proj-a's shared image: proj-m a pending member, proj-n an accepted one
    server: str  # proj-a's server, booted by its member from the private image


@dataclass(frozen=True)
class As:
    """A compute endpoint as one caller reaches it (tests.helpers.servers reads `token`)."""

    url: str
    token: str | None


def _make_image(client: ImageClient, visibility: str) -> str:
    image = client.create(name=f"a-{visibility}", disk_format="raw", container_format="bare",
                          visibility=visibility)
    client.upload(image["id"], io.BytesIO(DATA), len(DATA))
    return str(image["id"])


def _share(api: ApiServer, image_id: str, owner: Caller, member: Caller, status: str) -> None:
    url = f"{api.url}/v2/images/{image_id}/members"
    added = requests.post(url, json={"member": member.project}, headers=owner.headers(),
                          timeout=10)
    assert added.status_code == 200, added.text
    if status != "pending":
        answered = requests.put(f"{url}/{member.project}", json={"status": status},
                                headers=member.headers(), timeout=10)
        assert answered.status_code == 200, answered.text


def make_cloud(api: ApiServer, compute: ComputeServer, who: dict[str, Caller]) -> Cloud:
    """proj-a's images, memberships and server on `api` and `compute`."""
    member = who["member"]
    client = ImageClient(api.url, member.token)
    private, shared = _make_image(client, "private"), _make_image(client, "shared")
    _share(api, shared, member, who["pending"], "pending")
    _share(api, shared, member, who["accepted"], "accepted")
    server = boot_and_wait(As(compute.url, member.token), private, timeout=60)
    assert server["status"] == "ACTIVE", server.get("fault")
    return Cloud(api, compute, who, private, shared, server["id"])


Operation = Callable[[Cloud, Caller], requests.Response]
ORDER = ("anonymous", "bad token", "reader", "member", "admin", "other", "service", "pending",
         "accepted")
RAW = {"disk_format": "raw", "container_format": "bare"}
PATCH = "application/openstack-images-v2.1-json-patch"


def _image(path: str) -> Operation:
    """GET of `path` under the image API; `{private}`/`{shared}` name the fixture images,
    `{pending}` the project of the shared image's pending member."""
    def call(cloud: Cloud, who: Caller) -> requests.Response:
        url = cloud.api.url + path.format(private=cloud.private, shared=cloud.shared,
                                          pending=cloud.callers["pending"].project)
        return requests.get(url, headers=who.headers(), timeout=10)
    return call


def _patch(which: str) -> Operation:
    def call(cloud: Cloud, who: Caller) -> requests.Response:
        image_id = getattr(cloud, which)
        return requests.patch(f"{cloud.api.url}/v2/images/{image_id}",
                              json=[{"op": "replace", "path": "/name", "value": f"a-{which}"}],
                              headers=who.headers(**{"Content-Type": PATCH}), timeout=10)
    return call


def _create(**fields: str) -> Operation:
    def call(cloud: Cloud, who: Caller) -> requests.Response:
        return requests.post(f"{cloud.api.url}/v2/images", json={"name": "new", **RAW,
                                                                 **fields},
                             headers=who.headers(), timeout=10)
    return call


def _add_member(cloud: Cloud, who: Caller) -> requests.Response:
    return requests.post(f"{cloud.api.url}/v2/images/{cloud.shared}/members",
                         json={"member": f"proj-x-{who.name.replace(' ', '-')}"},
                         headers=who.headers(), timeout=10)


def _answer_for_pending(cloud: Cloud, who: Caller) -> requests.Response:
    """proj-m's membership set to what it is (pending): who may answer for proj-m."""
    pending = cloud.callers["pending"].project
    return requests.put(f"{cloud.api.url}/v2/images/{cloud.shared}/members/{pending}",
                        json={"status": "pending"}, headers=who.headers(), timeout=10)


def _compute(path: str) -> Operation:
    def call(cloud: Cloud, who: Caller) -> requests.Response:
        url = cloud.compute.url + path.format(server=cloud.server)
        return requests.get(url, headers=who.headers(), timeout=10)
    return call


def _compute_write(method: str, path: str, body: dict[str, object]) -> Operation:
    def call(cloud: Cloud, who: Caller) -> requests.Response:
        url = cloud.compute.url + path.format(server=cloud.server)
        return requests.request(method, url, json=body, headers=who.headers(), timeout=10)
    return call


def _boot_private(cloud: Cloud, who: Caller) -> requests.Response:
    body = {"server": {"name": "x", "imageRef": cloud.private, "flavorRef": "1"}}
    return requests.post(f"{cloud.compute.url}/v2.1/servers", json=body,
                         headers=who.headers(), timeout=10)


# operation -> (how, the status for each caller of ORDER)
TABLE: dict[str, tuple[Operation, tuple[int, ...]]] = {
    #                                             anon bad  rdr  mbr  adm  oth  svc  pnd  acc
    "list images": (_image("/v2/images"), (401, 401, 200, 200, 200, 200, 403, 200, 200)),
    "show private image": (_image("/v2/images/{private}"),
                           (401, 401, 200, 200, 200, 404, 200, 404, 404)),
    "show shared image": (_image("/v2/images/{shared}"),
                          (401, 401, 200, 200, 200, 404, 200, 200, 200)),
    "download private image": (_image("/v2/images/{private}/file"),
                               (401, 401, 403, 200, 200, 404, 200, 404, 404)),
    "download shared image": (_image("/v2/images/{shared}/file"),
                              (401, 401, 403, 200, 200, 404, 200, 200, 200)),
    "extents of private image": (_image("/v2/images/{private}/extents"),
                                 (401, 401, 403, 200, 200, 404, 200, 404, 404)),
    "locations of private image": (_image("/v2/images/{private}/locations"),
                                   (401, 401, 403, 403, 200, 404, 200, 404, 404)),
    "update private image": (_patch("private"), (401, 401, 403, 200, 200, 404, 403, 404, 404)),
    "update shared image": (_patch("shared"), (401, 401, 403, 200, 200, 404, 403, 403, 403)),
    "create an image": (_create(), (401, 401, 403, 201, 201, 201, 403, 201, 201)),
    "create for another owner": (_create(owner="proj-x"),
                                 (401, 401, 403, 403, 201, 403, 403, 403, 403)),
    "create a public image": (_create(visibility="public"),
                              (401, 401, 403, 403, 201, 403, 403, 403, 403)),
    "list members": (_image("/v2/images/{shared}/members"),
                     (401, 401, 200, 200, 200, 404, 403, 200, 200)),
    "show member proj-m": (_image("/v2/images/{shared}/members/{pending}"),
                           (401, 401, 200, 200, 200, 404, 403, 200, 404)),
    "add a member": (_add_member, (401, 401, 403, 200, 200, 404, 403, 403, 403)),
    "answer for proj-m": (_answer_for_pending, (401, 401, 403, 403, 200, 404, 403, 200, 404)),
    "list servers": (_compute("/v2.1/servers"), (401, 401, 200, 200, 200, 200, 403, 200, 200)),
    "list servers of all projects": (_compute("/v2.1/servers/detail?all_tenants=1"),
                                     (401, 401, 403, 403, 200, 403, 403, 403, 403)),
    "show server": (_compute("/v2.1/servers/{server}"),
                    (401, 401, 200, 200, 200, 404, 404, 404, 404)),
    "show server metadata": (_compute("/v2.1/servers/{server}/metadata"),
                             (401, 401, 200, 200, 200, 404, 404, 404, 404)),
    "set server metadata": (_compute_write("POST", "/v2.1/servers/{server}/metadata",
                                           {"metadata": {"color": "blue"}}),
                            (401, 401, 403, 200, 200, 404, 404, 404, 404)),
    "rename server": (_compute_write("PUT", "/v2.1/servers/{server}",
                                     {"server": {"name": "renamed"}}),
                      (401, 401, 403, 200, 200, 404, 404, 404, 404)),
    "read the console": (_compute_write("POST", "/v2.1/servers/{server}/action",
                                        {"os-getConsoleOutput": {}}),
                         (401, 401, 403, 200, 200, 404, 404, 404, 404)),
    "list own keypairs": (_compute("/v2.1/os-keypairs"),
                          (401, 401, 200, 200, 200, 200, 200, 200, 200)),
    "boot from private image": (_boot_private, (401, 401, 403, 202, 202, 400, 403, 400, 400)),
    "list flavors": (_compute("/v2.1/flavors"), (401, 401, 200, 200, 200, 200, 200, 200, 200)),
}

