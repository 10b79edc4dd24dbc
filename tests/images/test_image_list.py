"""`GET /v2/images`: filters, sorting, paging links exactly as Glance builds them."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.helpers.images import JSON, create, upload
from tests.helpers.services import ApiServer, api_defaults, api_on_database, free_port, write_conf


@pytest.fixture(scope="module")
def listed(start_api_module):
    api = start_api_module
    tag = uuid.uuid4().hex[:8]
    made = []
    for index, name in enumerate(["delta", "alpha", "charlie", "bravo", "echo"]):
        extra = {"os_distro": "fedora"} if index % 2 == 0 else {}
        made.append(create(api, name=name, tags=[tag, f"n{index}"],
                           disk_format="qcow2" if index == 4 else "raw", **extra))
    upload(api, made[1]["id"], b"x" * 100)
    upload(api, made[3]["id"], b"x" * 300)
    create(api, name="hidden", os_hidden=True, tags=[tag])
    return api, tag, made


@pytest.fixture(scope="module")
def start_api_module(tmp_path_factory, database_url):
    import json

    root = tmp_path_factory.mktemp("list-api")
    port = free_port()
    (root / "store").mkdir()
    (root / "metadata.json").write_text(json.dumps({"id": "x", "mountpoint": str(root)}))
    write_conf(root / "chute-api.conf", api_on_database(database_url(), api_defaults(root, port)))
    server = ApiServer(f"http://127.0.0.1:{port}", port, root / "store" / "images", root,
                       root / "chute-api.conf", root / "chute-api.log").start()
    yield server
    server.kill()


def get(api, query):
    resp = requests.get(f"{api.url}/v2/images?{query}", headers=JSON)
    return resp


def names(resp):
    assert resp.status_code == 200, resp.text
    return [image["name"] for image in resp.json()["images"]]


def test_default_order_is_newest_first_and_hidden_excluded(listed):
    api, tag, _ = listed
    assert names(get(api, f"tag={tag}")) == ["echo", "bravo", "charlie", "alpha", "delta"]
    assert names(get(api, f"tag={tag}&os_hidden=True")) == ["hidden"]
    assert names(get(api, f"tag={tag}&os_hidden=FALSE"))[0] == "echo"


def test_paging_follows_next_until_a_short_page(listed):
    api, tag, _ = listed
    query = f"tag={tag}&limit=2&sort_key=name&sort_dir=asc"
    first = get(api, query).json()
    assert first["first"] == f"/v2/images?{query}"
    assert first["schema"] == "/v2/schemas/images"
    seen = [i["name"] for i in first["images"]]
    link = first["next"]
    assert link.startswith("/v2/images?") and "marker=" in link
    while link:
        page = requests.get(api.url + link, headers=JSON).json()
        seen += [i["name"] for i in page["images"]]
        link = page.get("next")
    assert seen == ["alpha", "bravo", "charlie", "delta", "echo"]


def test_full_last_page_is_followed_by_an_empty_page(listed):
    api, tag, _ = listed
    page = get(api, f"tag={tag}&limit=5").json()
    assert len(page["images"]) == 5 and "next" in page
    last = requests.get(api.url + page["next"], headers=JSON).json()
    assert last["images"] == [] and "next" not in last


def test_filters(listed):
    api, tag, made = listed
    assert names(get(api, f"tag={tag}&name=alpha")) == ["alpha"]
    assert sorted(names(get(api, f"tag={tag}&name=in:alpha,echo"))) == ["alpha", "echo"]
    assert names(get(api, f"tag={tag}&disk_format=qcow2")) == ["echo"]
    assert sorted(names(get(api, f"tag={tag}&status=active"))) == ["alpha", "bravo"]
    assert names(get(api, f"tag={tag}&size_min=200")) == ["bravo"]
    assert names(get(api, f"tag={tag}&size_max=200")) == ["alpha"]
    assert sorted(names(get(api, f"tag={tag}&os_distro=fedora"))) == ["charlie", "delta", "echo"]
    assert names(get(api, f"tag={tag}&tag=n1")) == ["alpha"]
    assert names(get(api, f"tag={tag}&id={made[2]['id']}")) == ["charlie"]
    assert len(names(get(api, f"tag={tag}&visibility=shared"))) == 5
    assert names(get(api, f"tag={tag}&visibility=public")) == []


def test_a_filter_given_twice_must_hold_both_times(listed):
    # The first is bound into a statement built once, the second goes in as it comes: each
    # request binds its own values (no leftovers from the one before).
    api, tag, _ = listed
    both = f"tag={tag}&name=in:alpha,echo&name=in:echo,delta"
    assert names(get(api, both)) == ["echo"]
    assert names(get(api, f"tag={tag}&name=in:alpha,bravo&name=in:charlie")) == []
    assert sorted(names(get(api, f"tag={tag}&name=in:bravo,delta"))) == ["bravo", "delta"]
    assert names(get(api, f"tag={tag}&name=alpha&disk_format=raw")) == ["alpha"]


def test_sorting(listed):
    api, tag, _ = listed
    assert names(get(api, f"tag={tag}&sort=name:asc")) == ["alpha", "bravo", "charlie", "delta",
                                                           "echo"]
    assert names(get(api, f"tag={tag}&sort_key=size&sort_dir=desc"))[:2] == ["bravo", "alpha"]
    assert names(get(api, f"tag={tag}&sort_key=disk_format&sort_key=name&sort_dir=asc")) == [
        "echo", "alpha", "bravo", "charlie", "delta"]


@pytest.mark.parametrize("query,text", [
    ("limit=x", "limit param must be an integer"),
    ("limit=-1", "limit param must be positive"),
    ("sort_key=owner2", "Invalid sort key: owner2"),
    ("sort_dir=up", "Invalid sort direction"),
    ("sort=name&sort_key=id", "sort"),
    ("sort_key=name&sort_key=id&sort_dir=asc&sort_dir=desc&sort_dir=asc", "sort dirs"),
    ("marker=" + "1" * 8 + "-1111-1111-1111-" + "1" * 12, "not found"),
    ("os_hidden=maybe", "os_hidden"),
    ("protected=True", "protected"),
    ("size_min=big", "non-numeric"),
    ("changes-since=2020-01-01", "changes-since"),
    ("visibility=everyone", "visibility"),
    ("created_at=gt:yesterday", "time"),
])
def test_bad_queries_are_400(listed, query, text):
    api, _, _ = listed
    resp = get(api, query)
    assert resp.status_code == 400
    assert text in resp.json()["message"]
