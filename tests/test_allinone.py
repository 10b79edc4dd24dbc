"""`chute up`: both services from generated configs; a first boot copies through the store."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from chute.allinone import write_configs
from chute.client.compute import ComputeClient
from chute.client.images import ImageClient

RUN = ("import sys; from chute.allinone import main; "
       "sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(data_dir, api_port, compute_port):
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(data_dir), str(api_port),
                             str(compute_port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops both" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("chute up did not start: " + "".join(lines) + proc.stderr.read())


def test_chute_up_first_boot_copies_directly(tmp_path):
    data = tmp_path / "var"
    api_port, compute_port = _port(), _port()
    proc, banner = _start(data, api_port, compute_port)
    try:
        assert f"chute-api listening on http://127.0.0.1:{api_port}" in banner
        assert f"chute-compute listening on http://127.0.0.1:{compute_port}" in banner
        assert str(data / "log" / "chute-compute.log") in banner
        image_path = tmp_path / "img.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image_path), "16M"],
                       check=True)
        images = ImageClient(f"http://127.0.0.1:{api_port}")
        image = images.create(name="cirros", disk_format="qcow2", container_format="bare")
        with open(image_path, "rb") as source:
            images.upload(image["id"], source, image_path.stat().st_size)
        compute = ComputeClient(f"http://127.0.0.1:{compute_port}")
        server = compute.boot("vm", image["id"], "1")
        deadline = time.monotonic() + 30
        while server.get("status", "BUILD") == "BUILD" and time.monotonic() < deadline:
            time.sleep(0.05)
            server = compute.get(server["id"])
        assert server["status"] == "ACTIVE", server.get("fault")
        assert server["chute:image_transfer"]["method"] == "file"
        log = (data / "log" / "chute-compute.log").read_text()
        assert "Successfully transferred using file" in log
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped chute-api and chute-compute" in out
    for port in (api_port, compute_port):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        except requests.ConnectionError:
            continue
        raise AssertionError(f"port {port} still answers after chute up stopped")


def test_configs_match_and_keep_their_filesystem_id(tmp_path):
    from chute import config
    from chute.compute.options import SCHEMA as COMPUTE
    from chute.images.options import SCHEMA as IMAGES

    first = write_configs(tmp_path / "var", 19292, 18774)
    api = config.load(first.conf("chute-api"), IMAGES)
    compute = config.load(first.conf("chute-compute"), COMPUTE)
    metadata = json.loads(Path(api.get("glance_store", "filesystem_store_metadata_file"))
                          .read_text())
    shared = compute.templated("image_file_url")["shared"]
    assert compute.get("image_file_url", "filesystems") == ["shared"]
    assert metadata == {"id": shared["id"], "mountpoint": shared["mountpoint"]}
    assert Path(api.get("glance_store", "filesystem_store_datadir")).parent == \
        Path(metadata["mountpoint"])
    assert compute.get("glance", "allowed_direct_url_schemes") == ["file"]
    assert compute.get("glance", "service_token") == api.get("DEFAULT", "service_token") != ""
    assert compute.get("glance", "api_servers") == ["http://127.0.0.1:19292"]

    again = write_configs(tmp_path / "var", 19292, 18774)
    compute_again = config.load(again.conf("chute-compute"), COMPUTE)
    assert compute_again.templated("image_file_url")["shared"]["id"] == shared["id"]
