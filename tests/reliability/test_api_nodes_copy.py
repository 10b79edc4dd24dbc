"""copy-image on two chute-api nodes sharing one PostgreSQL database and two stores.

A copy holds its image's upload claim (chute.images.claims) for as long as its thread copies:
a node starting up meanwhile leaves the copy's temporary file alone, and a copy whose node was
SIGKILLed is taken over by the next copy-image, which succeeds with nothing left behind, or by
a node's start-up sweep, which ends its task and releases the image for the next copy.

The copying node runs with 4 KiB chunks, so that a copy of a few MiB lasts long enough for the
test to freeze it (SIGSTOP) or kill it in the middle, once its temporary file exists.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.images import JSON, create, show, upload
from tests.helpers.polling import wait_for
from tests.helpers.postgres import Cluster
from tests.helpers.services import ApiServer, prepare_api
from tests.helpers.stores import store_sections

MiB = 1 << 20
STORES = ("rack1", "rack2")
COPY = {"method": {"name": "copy-image"}, "stores": ["rack2"]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two stores' filesystems, shared by both nodes."""
    return tmp_path_factory.mktemp("stores")


def _node(root: Path, stores: Path, url: str, chunk_size: int) -> ApiServer:
    sections = store_sections(stores, STORES)
    sections["DEFAULT"]["workers"] = 1
    sections["glance_store"]["filesystem_store_chunk_size"] = chunk_size
    return prepare_api(root, database={"connection": url}, **sections)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, postgres: Cluster, stores: Path
          ) -> Iterator[tuple[ApiServer, ApiServer]]:
    """(the copier, whose copies are slow; the other node)."""
    url = postgres.fresh_database("copies")
    copier = _node(tmp_path_factory.mktemp("copier"), stores, url, 4096)
    other = _node(tmp_path_factory.mktemp("other"), stores, url, MiB)
    try:
        yield copier.start(timeout=60), other.start(timeout=60)
    finally:
        for node in (copier, other):
            node.kill()


@pytest.fixture
def alive(nodes: tuple[ApiServer, ApiServer]) -> tuple[ApiServer, ApiServer]:
    """Both nodes serving (a test before may have killed one)."""
    for node in nodes:
        if node.proc is None or node.proc.poll() is not None:
            node.start(timeout=60)
    return nodes


def _image(node: ApiServer, tag: str) -> tuple[str, bytes]:
    """An active image of a few MiB in rack1 -> (its id, its bytes)."""
    data = os.urandom(6 * MiB) + tag.encode()
    image_id = create(node, name=tag)["id"]
    resp = upload(node, image_id, data, headers={"X-Image-Meta-Store": "rack1"})
    assert resp.status_code == 204, resp.text
    return image_id, data


def _copy(node: ApiServer, image_id: str) -> requests.Response:
    return requests.post(f"{node.url}/v2/images/{image_id}/import", json=COPY, headers=JSON,
                         timeout=30)


def _partials(stores: Path, image_id: str) -> list[str]:
    """The temporary files of `image_id` in either store."""
    return sorted(name for store in STORES for name in os.listdir(stores / store / "images")
                  if name.startswith(f".{image_id}."))


def _left_behind(stores: Path) -> list[str]:
    """The temporary files of any image in either store."""
    return sorted(f"{store}/{name}" for store in STORES
                  for name in os.listdir(stores / store / "images")
                  if name.endswith(".partial"))


def _copied(node: ApiServer, image_id: str) -> dict:
    """The image once its copy task has ended (its lock os_glance_import_task gone)."""
    return wait_for(lambda: "os_glance_import_task" not in (doc := show(node, image_id))
                    and doc, 120, f"the copy of {image_id} to end")


def _tasks(node: ApiServer, image_id: str) -> list[tuple[str, str]]:
    resp = requests.get(f"{node.url}/v2/images/{image_id}/tasks", timeout=10)
    assert resp.status_code == 200, resp.text
    return sorted((task["status"], task.get("message") or "") for task in resp.json()["tasks"])


def _pids(node: ApiServer) -> list[int]:
    """Every process of the node: gunicorn's master, its worker, HAProxy."""
    assert node.proc is not None
    found, todo = [], [node.proc.pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                todo.extend(int(child) for child in children.read().split())
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        os.kill(pid, sig)


def test_a_node_starting_up_mid_copy_leaves_the_live_copy_alone(
        alive: tuple[ApiServer, ApiServer], stores: Path) -> None:
    copier, other = alive
    image_id, data = _image(other, "paused")
    assert _copy(copier, image_id).status_code == 202
    partial = wait_for(lambda: _partials(stores, image_id), 60, "the copy's temporary file", 0.002)
    frozen = _pids(copier)
    _signal(frozen, signal.SIGSTOP)  # a copy under way, however slow: its node lives
    try:
        assert _partials(stores, image_id) == partial
        other.stop()
        other.start(timeout=60)  # its start-up sweep: the copy's claim is not free
        assert _partials(stores, image_id) == partial
    finally:
        _signal(frozen, signal.SIGCONT)

    copied = _copied(other, image_id)
    assert copied["stores"] == "rack1,rack2"
    assert copied["os_glance_failed_import"] == ""
    assert _tasks(other, image_id) == [("success", "")]
    assert (stores / "rack2" / "images" / image_id).read_bytes() == data
    assert _left_behind(stores) == []


def test_kill_9_of_the_copying_node_then_a_retried_copy_succeeds_through_the_other(
        alive: tuple[ApiServer, ApiServer], stores: Path) -> None:
    copier, other = alive
    image_id, data = _image(other, "killed")
    assert _copy(copier, image_id).status_code == 202
    wait_for(lambda: _partials(stores, image_id), 60, "the copy's temporary file", 0.002)
    copier.kill()
    locked = show(other, image_id)
    assert locked["os_glance_importing_to_stores"] == "rack2"  # the dead node's copy's lock
    assert _partials(stores, image_id) != []

    retried = wait_for(lambda: (resp := _copy(other, image_id)).status_code != 409 and resp,
                       30, "the dead copy's claim to be free", 0.2)

    assert retried.status_code == 202, retried.text
    assert f"image {image_id}: its copy to stores rack2 was interrupted" in other.log_text()
    copied = _copied(other, image_id)
    assert copied["status"] == "active" and copied["stores"] == "rack1,rack2"
    assert copied["os_glance_failed_import"] == ""
    assert [status for status, _ in _tasks(other, image_id)] == ["failure", "success"]
    assert "interrupted" in _tasks(other, image_id)[0][1]
    assert (stores / "rack2" / "images" / image_id).read_bytes() == data
    assert _left_behind(stores) == []


def test_a_node_starting_after_a_copying_node_died_ends_the_dead_copy(
        alive: tuple[ApiServer, ApiServer], stores: Path) -> None:
    copier, other = alive
    image_id, data = _image(other, "swept")
    assert _copy(copier, image_id).status_code == 202
    wait_for(lambda: _partials(stores, image_id), 60, "the copy's temporary file", 0.002)
    copier.kill()

    other.stop()
    other.start(timeout=60)  # its start-up sweep: the claim is free, the copier is dead

    swept = show(other, image_id)
    assert "os_glance_import_task" not in swept
    assert (swept["stores"], swept["os_glance_failed_import"]) == ("rack1", "rack2")
    assert [status for status, _ in _tasks(other, image_id)] == ["failure"]
    assert _partials(stores, image_id) == []
    assert _copy(other, image_id).status_code == 202
    assert _copied(other, image_id)["stores"] == "rack1,rack2"
    assert (stores / "rack2" / "images" / image_id).read_bytes() == data
    assert _left_behind(stores) == []
