"""`explain`: for this host's config, each candidate and exactly why the direct path would or
would not be taken (against a real chute-api, and once through the chute-compute CLI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from chute.compute.image_service import FailoverImageService
from chute.compute.main import explain


def report(env, conf, image) -> str:
    return explain(conf, FailoverImageService([env.api.url]), image["id"])


def test_direct_path_taken_names_file_and_primitives(fetch_env):
    image = fetch_env.upload(os.urandom(70000))
    text = report(fetch_env, fetch_env.conf(), image)
    local = fetch_env.view / "images" / image["id"]
    assert f"[1] {image['direct_url']}" in text
    assert f"direct path: YES, local file {local} (filesystem shared)" in text
    probed = re.search(r"copy primitives to \S+/_base: clone (ok|refused \(E[A-Z]+\)), "
                       r"copy_file_range (ok|refused \(E[A-Z]+\)), read_write ok\n"
                       r"    would copy with: (clone|copy_file_range|read_write)\n", text)
    assert probed, text
    if probed.group(1) == "ok":
        assert probed.group(3) == "clone"
    else:
        assert probed.group(3) == ("copy_file_range" if probed.group(2) == "ok" else "read_write")
    assert text.rstrip().endswith(f"A fetch would copy {local} directly.")
    base_dir = Path(fetch_env.conf().get("DEFAULT", "instances_path")) / "_base"
    assert not [p for p in base_dir.iterdir() if p.name.startswith(".probe")]


def test_each_refusal_is_explained(fetch_env, tmp_path):
    image = fetch_env.upload(os.urandom(5000))
    cases = {
        "scheme": (fetch_env.conf("a.conf", schemes=""),
                   "NO (scheme_not_allowed): scheme 'file' is not in [glance] "
                   "allowed_direct_url_schemes"),
        "id": (fetch_env.conf("b.conf", fs_id="elsewhere"),
               "NO (unknown_filesystem): filesystem id 'shared-fs-1' is not configured here"),
        "missing": (fetch_env.conf("c.conf", mountpoint=tmp_path),
                    "NO (missing_file): "),
    }
    for name, (conf, expected) in cases.items():
        text = report(fetch_env, conf, image)
        assert expected in text, (name, text)
        assert "A fetch would download over HTTP" in text


def test_truncated_and_fifo_are_explained(fetch_env):
    image = fetch_env.upload(os.urandom(5000))
    mirror = fetch_env.mirror(image)
    victim = mirror / "images" / image["id"]
    os.truncate(victim, 10)
    conf = fetch_env.conf(mountpoint=mirror)
    assert "NO (size_mismatch): " in report(fetch_env, conf, image)
    victim.unlink()
    os.mkfifo(victim)
    assert f"NO (not_regular_file): {victim} is a FIFO" in report(fetch_env, conf, image)


def test_chute_compute_explain_command(fetch_env):
    image = fetch_env.upload(os.urandom(5000))
    conf = fetch_env.conf()
    exe = Path(sys.executable).parent / "chute-compute"
    done = subprocess.run([str(exe), "--config-file", str(conf.path), "explain", image["id"]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "direct path: YES" in done.stdout


def test_unreadable_file_is_explained(fetch_env):
    """As an unprivileged user (root reads everything): the file exists but cannot be read."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run explain as another user")
    image = fetch_env.upload(os.urandom(5000))
    world = Path(tempfile.mkdtemp(prefix="chute-explain-"))  # pytest's tmp is 0700
    try:
        world.chmod(0o755)
        (world / "mnt" / "images").mkdir(parents=True)
        secret = world / "mnt" / "images" / image["id"]
        shutil.copyfile(fetch_env.stored(image), secret)
        secret.chmod(0o600)
        (world / "instances").mkdir(mode=0o777)
        (world / "instances").chmod(0o777)
        conf = fetch_env.conf(mountpoint=world / "mnt",
                              DEFAULT={"instances_path": world / "instances"})
        conf_copy = world / "compute.conf"
        shutil.copyfile(conf.path, conf_copy)
        conf_copy.chmod(0o644)
        exe = Path(sys.executable).parent / "chute-compute"
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               str(exe), "--config-file", str(conf_copy), "explain", image["id"]],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"NO (not_readable): {secret} cannot be opened: Permission denied" in done.stdout
    finally:
        shutil.rmtree(world, ignore_errors=True)
