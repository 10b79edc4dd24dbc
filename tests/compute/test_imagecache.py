"""ImageCache against a real chute-api: one transfer per image per host, re-checked bases,
qcow2 kept or converted, cleanup by age."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chute.client.image import Image
from chute.compute.imagecache import ImageCache, base_name
from chute.compute.main import image_cache
from chute.errors import TransferError
from tests.helpers.fetch import lines, warnings

MiB = 1 << 20


def cache_for(env, conf=None) -> ImageCache:
    conf = conf or env.conf()
    return image_cache(conf)


def qcow2_bytes(tmp: Path, backing: Path | None = None) -> bytes:
    path = tmp / f"img-{time.monotonic_ns()}.qcow2"
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        cmd += ["-b", str(backing), "-F", "raw"]
    subprocess.run(cmd + [str(path), "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 1M", str(path)],
                   check=True, capture_output=True)
    return path.read_bytes()


def test_second_fetch_is_a_cache_hit(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    cache = cache_for(fetch_env)
    first = cache.fetch(Image.parse(image))
    assert first.path == os.path.join(cache.dir, base_name(image["id"]))
    again = cache.fetch(Image.parse(image))
    assert (again.method, again.path, again.nbytes) == ("cache", first.path, len(data))
    assert lines(fetch_log, f"Image {image['id']} found in cache")
    assert len(lines(fetch_log, "Successfully transferred using")) == 1
    info = json.loads(Path(first.path + ".info").read_text())
    assert info["digest"] == image["os_glance_blake3_blocks"] and info["format"] == "raw"


def test_a_damaged_base_is_fetched_again(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    cache = cache_for(fetch_env)
    base = Path(cache.fetch(Image.parse(image)).path)
    os.truncate(base, 1000)
    got = cache.fetch(Image.parse(image))
    assert got.method == "file" and base.read_bytes() == data
    assert any("is not usable" in w for w in warnings(fetch_log))
    Path(str(base) + ".info").unlink()  # no record of what was verified: not trusted
    assert cache.fetch(Image.parse(image)).method == "file"


def test_cached_base_is_rechecked_for_format_safety(fetch_env, fetch_log, tmp_path):
    image = fetch_env.upload(qcow2_bytes(tmp_path), disk_format="qcow2")
    cache = cache_for(fetch_env)
    base = Path(cache.fetch(Image.parse(image)).path)
    backing = tmp_path / "host-secret.raw"
    backing.write_bytes(b"\0" * MiB)
    evil = qcow2_bytes(tmp_path, backing=backing)
    base.write_bytes(evil)  # same record, different content: e.g. tightened rules, tampering
    info_path = Path(str(base) + ".info")
    info = json.loads(info_path.read_text())
    info["stored_size"] = len(evil)
    info_path.write_text(json.dumps(info))
    got = cache.fetch(Image.parse(image))
    assert got.method == "file"
    assert any("is not usable" in w and "backing" in w.lower() for w in warnings(fetch_log))


def test_qcow2_is_kept_as_qcow2(fetch_env, tmp_path):
    data = qcow2_bytes(tmp_path)
    image = fetch_env.upload(data, disk_format="qcow2")
    fetched = cache_for(fetch_env).fetch(Image.parse(image))
    base = fetched.path
    assert fetched.format == "qcow2" and Path(base).read_bytes() == data
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", base],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info


def test_force_raw_images_converts_and_still_hits(fetch_env, fetch_log, tmp_path):
    image = fetch_env.upload(qcow2_bytes(tmp_path), disk_format="qcow2")
    conf = fetch_env.conf(DEFAULT={"force_raw_images": "true"})
    cache = cache_for(fetch_env, conf)
    fetched = cache.fetch(Image.parse(image))
    assert fetched.format == "raw"
    base = Path(fetched.path)
    content = base.read_bytes()
    assert len(content) == 8 * MiB and content[MiB:2 * MiB] == b"\x5a" * MiB
    assert content[:MiB] == bytes(MiB)
    info = json.loads(Path(str(base) + ".info").read_text())
    assert (info["format"], info["stored_size"], info["size"]) == ("raw", 8 * MiB, image["size"])
    hit = cache.fetch(Image.parse(image))
    assert (hit.method, hit.format) == ("cache", "raw")
    assert not [p for p in base.parent.iterdir() if p.suffix in (".part", ".converted")]


def test_stale_part_files_are_removed_and_never_used(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    conf = fetch_env.conf()
    base_dir = Path(conf.get("DEFAULT", "instances_path")) / "_base"
    base_dir.mkdir(parents=True)
    part = base_dir / (base_name(image["id"]) + ".part")
    part.write_bytes(data)  # even complete, a .part is never trusted
    cache = cache_for(fetch_env, conf)
    assert not part.exists()
    part.write_bytes(data)
    assert cache.fetch(Image.parse(image)).method == "file"
    assert not part.exists()


def test_an_inactive_image_is_refused(fetch_env):
    cache = cache_for(fetch_env)
    with pytest.raises(TransferError, match="is queued, not active"):
        cache.fetch(Image.parse({"id": "abc", "status": "queued", "size": None}))


CHILD = """
import json, logging, sys
from chute import config
from chute.client.image import Image
from chute.compute.image_service import FailoverImageService
from chute.compute.main import image_cache
from chute.compute.options import SCHEMA
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
conf = config.load(sys.argv[1], SCHEMA)
image = json.loads(sys.argv[2])
got = image_cache(conf, FailoverImageService([sys.argv[3]])).fetch(Image.parse(image))
print(got.method)
"""


def test_eight_threads_and_two_processes_cause_one_transfer(fetch_env, fetch_log):
    data = os.urandom(4 * MiB)
    image = fetch_env.upload(data)
    conf = fetch_env.conf()
    cache = cache_for(fetch_env, conf)
    base = cache.base_path(image["id"])
    # Hold the image's lock ourselves so that every fetcher really has to wait.
    holder = os.open(base + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    logs = [fetch_env.tmp / f"child{number}.log" for number in range(2)]
    procs = []
    for log in logs:
        with open(log, "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", CHILD, str(conf.path),
                                           json.dumps(image), fetch_env.api.url],
                                          stdout=subprocess.PIPE, stderr=err, text=True))
    methods: list[str] = []
    parsed = Image.parse(image)
    threads = [threading.Thread(target=lambda: methods.append(cache.fetch(parsed).method))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    def children_waiting() -> int:
        return sum(log.read_text().count("another fetch is in progress") for log in logs)

    deadline = time.monotonic() + 30
    while len(lines(fetch_log, "another fetch is in progress")) < 8 or children_waiting() < 2:
        assert time.monotonic() < deadline, "fetchers did not reach the lock"
        assert all(proc.poll() is None for proc in procs), "a child exited early"
        time.sleep(0.02)
    os.close(holder)
    for thread in threads:
        thread.join(30)
    methods += [proc.communicate(timeout=60)[0].strip() for proc in procs]
    child_logs = "".join(log.read_text() for log in logs)
    assert all(proc.returncode == 0 for proc in procs), child_logs
    transfers = (len(lines(fetch_log, "Successfully transferred using"))
                 + child_logs.count("Successfully transferred using"))
    assert transfers == 1, (methods, child_logs)
    assert sorted(methods) == ["cache"] * 9 + ["file"]
    assert child_logs.count(f"Waiting for image {image['id']}") == 2
    assert Path(base).read_bytes() == data


def test_cleanup_removes_only_old_unused_bases(fetch_env, fetch_log):
    images = [fetch_env.upload(os.urandom(4096)) for _ in range(3)]
    conf = fetch_env.conf(image_cache={"remove_unused_original_minimum_age_seconds": 3600})
    cache = cache_for(fetch_env, conf)
    old, young, used = (Path(cache.fetch(Image.parse(image)).path) for image in images)
    an_hour_ago = time.time() - 3700
    for path in (old, used):
        os.utime(path, (an_hour_ago, an_hour_ago))
    removed = cache.cleanup({images[2]["id"]})
    assert removed == [str(old)]
    assert not old.exists() and not Path(str(old) + ".info").exists()
    assert young.exists() and used.exists()
    assert lines(fetch_log, f"Base file too young to remove: {young}")
    off = fetch_env.conf("off.conf", image_cache={"remove_unused_base_images": "false"})
    os.utime(young, (an_hour_ago, an_hour_ago))
    assert cache_for(fetch_env, off).cleanup(set()) == []
    assert young.exists()


@pytest.mark.parametrize("field", ["digest", "algorithm"])
def test_a_base_whose_recorded_digest_differs_is_not_a_hit(fetch_env, fetch_log, field):
    """Issue 18 item 11: the sidecar's algorithm and value must be the image's. A base
    verified against other bytes' digest (an older upload under the same id, a sidecar from
    another host's rule) is fetched again, whatever its size says."""
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    cache = cache_for(fetch_env)
    first = cache.fetch(Image.parse(image))
    info_path = Path(first.path + ".info")
    info = json.loads(info_path.read_text())
    if field == "digest":
        info["digest"] = "0" * len(info["digest"])
    else:
        assert info["algorithm"] != "sha512"
        info["algorithm"] = "sha512"
    info_path.write_text(json.dumps(info))
    again = cache.fetch(Image.parse(image))
    assert again.method != "cache" and Path(again.path).read_bytes() == data
    assert lines(fetch_log, "recorded digest differs from the image's")
    assert len(lines(fetch_log, "Successfully transferred using")) == 2
    assert json.loads(info_path.read_text())["digest"] == image["os_glance_blake3_blocks"]
