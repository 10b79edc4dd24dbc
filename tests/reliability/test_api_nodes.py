"""Two chute-api nodes behind HAProxy, sharing one PostgreSQL database and one store.

A node SIGKILLed in the middle of an upload: the client's retry succeeds through the other
node, which takes the dead upload over (chute.images.claims); nothing is left in the store and
no image stays `saving`. A live upload is never taken over, neither by a second PUT nor by a
node's start-up sweep, even when both nodes run on one host (one hostname in temporary names).
A web-download import holds the same claim: a data write meanwhile is 409 on either node, and
an import its node's death interrupted is taken over, never left `importing`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.balancer import Balancer
from tests.helpers.digests import digests
from tests.helpers.images import create, show, store_files, upload
from tests.helpers.polling import wait_for
from tests.helpers.postgres import Cluster
from tests.helpers.services import ApiServer, prepare_api
from tests.helpers.web import Files, serving

MiB = 1 << 20
SIZE = 24 * MiB
BEFORE_PAUSE = 4 * MiB  # what a paused upload has sent (and the node written) when it waits


class PausedBody:
    """A chunked upload body that sends BEFORE_PAUSE bytes, then waits for `go` (a client
    still sending, slowly); `data` is the whole body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.go = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for offset in range(0, len(self.data), MiB):
            if offset == BEFORE_PAUSE:
                self.go.wait(120)
            yield self.data[offset:offset + MiB]


class Upload(threading.Thread):
    """One PUT of a PausedBody in a thread; `result` is the status code or the exception."""

    def __init__(self, url: str, image_id: str, body: PausedBody, to: str = "file") -> None:
        super().__init__(daemon=True)
        self.url, self.image_id, self.body, self.to = url, image_id, body, to
        self.result: int | Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = requests.put(
                f"{self.url}/v2/images/{self.image_id}/{self.to}", data=iter(self.body),
                headers={"Content-Type": "application/octet-stream"}, timeout=120).status_code
        except requests.RequestException as exc:
            self.result = exc

    def finish(self) -> int | Exception | None:
        self.body.go.set()
        self.join(120)
        return self.result


@pytest.fixture(scope="module")
def web() -> Iterator[Files]:
    """A loopback web server the nodes' web-download imports may fetch from."""
    with serving(Files()) as files:
        yield files


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, postgres: Cluster, web: Files
          ) -> Iterator[list[ApiServer]]:
    """Two nodes on a fresh database and one store, started at the same moment: the second
    must not trip over the first's migrations (an advisory lock makes them take turns)."""
    url = postgres.fresh_database("nodes")
    filtering = {"allowed_hosts": ["127.0.0.1"], "allowed_ports": [str(web.port)]}
    first = prepare_api(tmp_path_factory.mktemp("node-a"), DEFAULT={"workers": 1},
                        database={"connection": url}, import_filtering_opts=filtering)
    shared = {"filesystem_store_datadir": str(first.datadir),
              "filesystem_store_metadata_file": str(first.root / "metadata.json")}
    second = prepare_api(tmp_path_factory.mktemp("node-b"), DEFAULT={"workers": 1},
                         database={"connection": url}, glance_store=shared,
                         import_filtering_opts=filtering)
    failures: list[BaseException] = []

    def start(node: ApiServer) -> None:
        try:
            node.start(timeout=60)
        except BaseException as exc:  # reported by the fixture, in the test's thread
            failures.append(exc)

    starters = [threading.Thread(target=start, args=(node,)) for node in (first, second)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    try:
        assert failures == [], failures
        yield [first, second]
    finally:
        for node in (first, second):
            node.kill()


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, nodes: list[ApiServer]
             ) -> Iterator[Balancer]:
    lb = Balancer(tmp_path_factory.mktemp("balancer"),
                  [f"127.0.0.1:{node.port}" for node in nodes], "/versions").start()
    yield lb
    lb.stop()


@pytest.fixture
def alive(nodes: list[ApiServer]) -> list[ApiServer]:
    """Both nodes serving (a test before may have killed one)."""
    for node in nodes:
        if node.proc is None or node.proc.poll() is not None:
            node.start(timeout=60)
    return nodes


def _payload(tag: str) -> bytes:
    return os.urandom(SIZE - 7) + tag.encode()[:7].ljust(7, b".")


def _uploading_node(nodes: list[ApiServer], image_id: str, to: str = "saving") -> ApiServer:
    """The node whose log says it started writing `image_id`."""
    def which() -> ApiServer | None:
        serving = [n for n in nodes if f"image {image_id}: queued -> {to}" in n.log_text()]
        return serving[0] if len(serving) == 1 else None
    return wait_for(which, 60, f"a node to start the upload of {image_id}")


def _partials(node: ApiServer, image_id: str) -> list[str]:
    return [name for name in store_files(node) if name.startswith(f".{image_id}.")]


def _saving(lb: Balancer) -> list[str]:
    resp = requests.get(f"{lb.url}/v2/images?status=saving", timeout=10)
    assert resp.status_code == 200, resp.text
    return [image["id"] for image in resp.json()["images"]]


def _orphans(lb: Balancer, node: ApiServer) -> list[str]:
    """What the shared store holds besides the files of active images: temporary files,
    staged files, or whole-looking files no image owns."""
    resp = requests.get(f"{lb.url}/v2/images?status=active&limit=1000", timeout=10)
    assert resp.status_code == 200, resp.text
    active = {image["id"] for image in resp.json()["images"]}
    staged = node.datadir / ".staging"
    left = [name for name in store_files(node) if name not in active and name != ".staging"]
    return left + (sorted(os.listdir(staged)) if staged.is_dir() else [])


def _retry_upload(lb: Balancer, image_id: str, data: bytes, to: str = "file"
                  ) -> requests.Response:
    """PUT until the answer is not 409 (the dead node's session may take a moment to end,
    its claim with it) nor 502/503 nor a dropped connection (HAProxy not yet sure the node is
    down)."""
    def attempt() -> requests.Response | None:
        try:
            resp = requests.put(f"{lb.url}/v2/images/{image_id}/{to}", data=data,
                                timeout=120, headers={"Content-Type": "application/octet-stream"})
        except requests.ConnectionError:  # sent to the dead node before HAProxy knew
            return None
        return None if resp.status_code in (409, 502, 503) else resp
    return wait_for(attempt, 90, f"a retried upload of {image_id} to be answered", 0.2)


def test_kill_9_of_the_node_serving_an_upload_then_the_retry_succeeds_through_the_other(
        balancer: Balancer, alive: list[ApiServer], tmp_path: Path) -> None:
    data = _payload("kill")
    (tmp_path / "image.raw").write_bytes(data)
    want = digests(tmp_path / "image.raw")
    image_id = create(balancer)["id"]
    first = Upload(balancer.url, image_id, PausedBody(data))
    victim = _uploading_node(alive, image_id)
    wait_for(lambda: _partials(victim, image_id), 30, "the upload's temporary file")
    victim.kill()
    assert first.finish() != 204, "the upload went through although its node was killed"
    assert show(balancer, image_id)["status"] == "saving"  # the dead node's upload, unfinished

    resp = _retry_upload(balancer, image_id, data)

    assert resp.status_code == 204, resp.text
    survivor = next(node for node in alive if node is not victim)
    assert f"image {image_id} was left in 'saving' by a crash" in survivor.log_text()
    image = show(balancer, image_id)
    assert image["status"] == "active"
    assert (image["checksum"], image["os_hash_value"], image["size"]) == \
        (want["checksum"], want["os_hash_value"], SIZE)
    assert (victim.datadir / image_id).read_bytes() == data
    assert _orphans(balancer, victim) == []
    assert _saving(balancer) == []


def test_a_live_upload_is_not_taken_over_by_a_second_put_or_a_restarting_node(
        balancer: Balancer, alive: list[ApiServer]) -> None:
    node_a, node_b = alive
    live_data, dead_data = _payload("live"), _payload("dead")
    live_id, dead_id = create(balancer)["id"], create(balancer)["id"]
    live = Upload(node_b.url, live_id, PausedBody(live_data))
    dead = Upload(node_a.url, dead_id, PausedBody(dead_data))
    for image_id in (live_id, dead_id):
        wait_for(lambda i=image_id: _partials(node_a, i), 30, f"the temporary file of {image_id}")

    second = upload(node_a, live_id, b"x" * MiB, timeout=60)
    assert second.status_code == 409, second.text
    assert "is being uploaded by another request" in second.json()["message"]

    node_a.kill()
    dead.finish()
    node_a.start(timeout=60)  # its start-up sweep: the dead upload is undone, the live one kept

    assert show(node_a, dead_id)["status"] == "queued"
    assert _partials(node_a, dead_id) == []
    assert show(node_a, live_id)["status"] == "saving"
    assert len(_partials(node_a, live_id)) == 1
    assert live.finish() == 204
    assert show(balancer, live_id)["status"] == "active"
    assert (node_a.datadir / live_id).read_bytes() == live_data
    assert upload(balancer, dead_id, dead_data, timeout=120).status_code == 204
    assert _orphans(balancer, node_a) == []
    assert _saving(balancer) == []


def test_kill_9_of_the_node_staging_an_import_then_the_retried_stage_and_import_succeed(
        balancer: Balancer, alive: list[ApiServer]) -> None:
    data = _payload("stage")
    image_id = create(balancer)["id"]
    first = Upload(balancer.url, image_id, PausedBody(data), to="stage")
    victim = _uploading_node(alive, image_id, "uploading")
    wait_for(lambda: _partials(victim, image_id), 30, "the stage's temporary file")
    victim.kill()
    assert first.finish() != 204, "the stage went through although its node was killed"
    assert show(balancer, image_id)["status"] == "uploading"

    assert _retry_upload(balancer, image_id, data, to="stage").status_code == 204
    survivor = next(node for node in alive if node is not victim)
    assert f"image {image_id} was left 'uploading' by a crash mid-stage" in survivor.log_text()
    imported = requests.post(f"{balancer.url}/v2/images/{image_id}/import", timeout=30,
                             json={"method": {"name": "glance-direct"}})
    assert imported.status_code == 202, imported.text
    wait_for(lambda: show(balancer, image_id)["status"] == "active", 60, "the import")
    assert (victim.datadir / image_id).read_bytes() == data
    assert _orphans(balancer, victim) == []
    assert _saving(balancer) == []


def test_a_web_download_holds_the_claim_and_its_killed_node_s_import_is_taken_over(
        balancer: Balancer, alive: list[ApiServer], web: Files) -> None:
    web.stalls.add("/stalls.raw")  # a head and 64 KiB, then nothing: the import stays busy
    image_id = create(balancer)["id"]
    resp = requests.post(f"{balancer.url}/v2/images/{image_id}/import", timeout=30,
                         json={"method": {"name": "web-download",
                                          "uri": web.url("/stalls.raw")}})
    assert resp.status_code == 202, resp.text
    victim = _uploading_node(alive, image_id, "importing")
    survivor = next(node for node in alive if node is not victim)
    wait_for(lambda: _partials(victim, image_id), 30, "the import's temporary file")

    for node in (survivor, victim):  # a second write of the data, on either node
        second = upload(node, image_id, b"x" * MiB, timeout=60)
        assert second.status_code == 409, second.text
        assert "is being uploaded by another request" in second.json()["message"]

    victim.kill()
    assert show(survivor, image_id)["status"] == "importing"  # the dead node's, unfinished
    data = _payload("web")
    assert _retry_upload(balancer, image_id, data).status_code == 204

    assert f"image {image_id} was left 'importing' by a crash" in survivor.log_text()
    image = show(balancer, image_id)
    assert image["status"] == "active"
    assert "interrupted" in image["os_glance_failed_import"]
    tasks = requests.get(f"{balancer.url}/v2/images/{image_id}/tasks", timeout=10).json()
    assert [(t["status"], "interrupted" in t["message"]) for t in tasks["tasks"]] == [
        ("failure", True)]
    assert (survivor.datadir / image_id).read_bytes() == data
    assert _orphans(balancer, survivor) == []
    listed = requests.get(f"{balancer.url}/v2/images?status=importing", timeout=10).json()
    assert listed["images"] == []
