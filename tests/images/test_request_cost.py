"""Issue 18, item 2: what one request costs is bounded by its size.

Each limit is refused with 400 (413 for an image's metadata as a whole) and a message naming
the option, before the work it would multiply starts.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from tests.helpers.images import JSON, create

PATCH = {**JSON, "Content-Type": "application/openstack-images-v2.1-json-patch"}


@pytest.fixture(scope="module")
def api(tmp_path_factory, database_url):
    from tests.helpers.services import api_on_database, prepare_api

    server = prepare_api(tmp_path_factory.mktemp("cost-api"), **api_on_database(database_url(), {
        "DEFAULT": {"image_property_quota": -1, "image_tag_quota": -1,  # only the size limit
                    "image_metadata_max_bytes": 4096, "image_property_value_max_length": 1024}}))
    server.start()
    yield server
    server.kill()


def _list(api, query, timeout=10.0):
    return requests.get(f"{api.url}/v2/images?{query}", headers=JSON, timeout=timeout)


def test_repeated_sort_keys_with_a_marker_answer_400_fast_and_workers_stay_responsive(api):
    marker = create(api, name="marker")["id"]
    query = "sort=" + ",".join(["id"] * 160) + f"&marker={marker}"
    assert len(query) < 700
    answers: list[requests.Response] = []
    attacks = [threading.Thread(target=lambda: answers.append(_list(api, query)))
               for _ in range(4)]
    started = time.monotonic()
    for attack in attacks:
        attack.start()
    normal = _list(api, "limit=1", timeout=5)
    for attack in attacks:
        attack.join()
    assert time.monotonic() - started < 5
    assert normal.status_code == 200
    assert [a.status_code for a in answers] == [400] * 4, answers[0].text
    assert "Sort key id is given more than once" in answers[0].json()["message"]


def test_the_classic_sort_syntax_refuses_duplicates_too(api):
    resp = _list(api, "sort_key=name&sort_key=size&sort_key=name&sort_dir=asc")
    assert resp.status_code == 400
    assert "Sort key name is given more than once" in resp.json()["message"]


def test_paging_with_every_sort_key_walks_each_image_once(api):
    tag = uuid.uuid4().hex[:8]
    made = {create(api, name=f"n{i % 3}", tags=[tag])["id"] for i in range(7)}
    sort = "sort=name:asc,status,container_format:asc,disk_format,size:asc,updated_at," \
           "created_at:asc,id"
    seen, marker = [], ""
    for _ in range(10):
        resp = _list(api, f"tag={tag}&{sort}&limit=2{marker}")
        assert resp.status_code == 200, resp.text
        page = [image["id"] for image in resp.json()["images"]]
        seen += page
        if "next" not in resp.json():
            break
        marker = f"&marker={page[-1]}"
    assert sorted(seen) == sorted(made) and len(seen) == len(made)


def test_too_many_filters_are_refused_naming_the_limit(api):
    query = "&".join(f"prop{i}=x" for i in range(33))
    resp = _list(api, query)
    assert resp.status_code == 400
    assert "Too many filters: 33 > 32 (list_filters_max)" in resp.json()["message"]
    tags = "&".join(f"tag=t{i}" for i in range(33))
    assert _list(api, tags).status_code == 400
    assert _list(api, "&".join(f"prop{i}=x" for i in range(32))).status_code == 200


def test_a_long_in_list_is_refused_naming_the_limit(api):
    resp = _list(api, "name=in:" + ",".join(f"n{i}" for i in range(101)))
    assert resp.status_code == 400
    assert "Too many values in the 'name' filter: 101 > 100 (list_in_values_max)" in \
        resp.json()["message"]
    # Commas inside quotes are part of one value: not counted against the limit.
    quoted = "name=in:" + ",".join(f'"a,b{i}"' for i in range(60))
    assert _list(api, quoted).status_code == 200


def test_an_oversized_property_value_is_refused_naming_the_limit(api):
    resp = requests.post(f"{api.url}/v2/images", headers=JSON,
                         json={"name": "big", "note": "x" * 1025})
    assert resp.status_code == 400
    assert "image_property_value_max_length" in resp.json()["message"]
    assert "1024" in resp.json()["message"]
    image = create(api, name="patched")
    resp = requests.patch(f"{api.url}/v2/images/{image['id']}", headers=PATCH,
                          json=[{"op": "add", "path": "/note", "value": "y" * 1025}])
    assert resp.status_code == 400
    assert "image_property_value_max_length" in resp.json()["message"]
    assert "note" not in requests.get(f"{api.url}/v2/images/{image['id']}",
                                      headers=JSON).json()


def test_an_image_whose_metadata_grows_past_the_limit_is_refused_with_413(api):
    image = create(api, name="growing")
    url = f"{api.url}/v2/images/{image['id']}"
    for i in range(3):  # 3 x (4 + 1024) bytes: under 4096, a fourth is over
        resp = requests.patch(url, headers=PATCH,
                              json=[{"op": "add", "path": f"/key{i}", "value": "v" * 1024}])
        assert resp.status_code == 200, resp.text
    resp = requests.patch(url, headers=PATCH,
                          json=[{"op": "add", "path": "/key3", "value": "v" * 1024}])
    assert resp.status_code == 413
    assert "(image_metadata_max_bytes)" in resp.json()["message"]
    assert "4096" in resp.json()["message"]
    for i in range(10):  # tags count too: 10 x 255 bytes would pass 4096
        resp = requests.put(f"{url}/tags/{str(i) * 255}", headers=JSON)
        if resp.status_code != 204:
            break
    assert resp.status_code == 413, resp.text
    assert "(image_metadata_max_bytes)" in resp.json()["message"]
    resp = requests.post(f"{api.url}/v2/images", headers=JSON,
                         json={f"k{i}": "v" * 1000 for i in range(5)})
    assert resp.status_code == 413
    assert "(image_metadata_max_bytes)" in resp.json()["message"]
