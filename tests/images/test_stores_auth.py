"""Who may do what with several stores (`auth_strategy = tokens`): Glance's rules
`stores_info_detail` and `copy_image` (admin) and `delete_image_location` (the image's project
member), against a real chute-api with two stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.helpers.identity import Caller, write_tokens
from tests.helpers.images import JSON, OCTET
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer
from tests.helpers.stores import prepare_stores_api

ADMIN = Caller("admin", "tok-admin-0123456789", "proj-a", "admin")
MEMBER = Caller("member", "tok-member-0123456789", "proj-a", "member")
DATA = b"\x5a" * 65536


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("stores-auth")
    tokens = write_tokens(root / "tokens", {"admin": ADMIN, "member": MEMBER})
    server = prepare_stores_api(root, DEFAULT={"auth_strategy": "tokens",
                                               "tokens_file": str(tokens)}).start()
    yield server
    server.kill()


def member_image(api: ApiServer) -> str:
    made = requests.post(api.url + "/v2/images", headers=MEMBER.headers(**JSON), timeout=10,
                         json={"disk_format": "raw", "container_format": "bare"})
    assert made.status_code == 201, made.text
    image_id = made.json()["id"]
    put = requests.put(f"{api.url}/v2/images/{image_id}/file", data=DATA, timeout=30,
                       headers=MEMBER.headers(**OCTET))
    assert put.status_code == 204, put.text
    return str(image_id)


def copy(api: ApiServer, image_id: str, who: Caller) -> requests.Response:
    return requests.post(f"{api.url}/v2/images/{image_id}/import", timeout=10,
                         headers=who.headers(**JSON),
                         json={"method": {"name": "copy-image"}, "stores": ["rack2"]})


def stores_of(api: ApiServer, image_id: str) -> str:
    doc = requests.get(f"{api.url}/v2/images/{image_id}", headers=MEMBER.headers(**JSON),
                       timeout=10).json()
    return "" if "os_glance_import_task" in doc else doc["stores"]


def test_a_member_sees_the_stores_but_not_their_detail(api):
    assert requests.get(api.url + "/v2/info/stores", headers=MEMBER.headers(),
                        timeout=10).status_code == 200
    detail = requests.get(api.url + "/v2/info/stores/detail", headers=MEMBER.headers(**JSON),
                          timeout=10)
    assert detail.status_code == 403 and "stores_info_detail" in detail.text
    assert requests.get(api.url + "/v2/info/stores/detail", headers=ADMIN.headers(),
                        timeout=10).status_code == 200


def test_copying_is_the_admins_and_removing_a_copy_the_members(api):
    image_id = member_image(api)
    refused = copy(api, image_id, MEMBER)
    assert refused.status_code == 403 and "copy_image" in refused.text
    assert copy(api, image_id, ADMIN).status_code == 202
    wait_for(lambda: stores_of(api, image_id) == "rack1,rack2", 30, "the copy to rack2")
    removed = requests.delete(f"{api.url}/v2/stores/rack1/{image_id}",
                              headers=MEMBER.headers(), timeout=10)
    assert removed.status_code == 204, removed.text
    assert stores_of(api, image_id) == "rack2"
