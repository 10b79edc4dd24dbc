"""chute-compute start-up: a bad config stops it with ONE line naming file, section, option."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.disks import make_qcow2
from tests.helpers.images import upload_image

EXE = str(Path(sys.executable).parent / "chute-compute")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("text, where", [
    ("[image_file_url]\nfilesystems = gfs\n",
     "[image_file_url] filesystems: names [image_file_url:gfs], which is missing"),
    ("[image_file_url]\nfilesystems = gfs\n[image_file_url:gfs]\nmountpoint = /mnt\n",
     "[image_file_url:gfs] id: must be set"),
    ("[image_file_url]\nfilesystems = a, b\n[image_file_url:a]\nid = x\nmountpoint = /a\n"
     "[image_file_url:b]\nid = x\nmountpoint = /b\n",
     "[image_file_url:b] id: 'x' is also the id of [image_file_url:a]"),
    ("[image_file_url]\nfilesystems = gfs\n[image_file_url:gfs]\nid = x\nmountpoint = mnt/g\n",
     "[image_file_url:gfs] mountpoint: must be an absolute path"),
    ("[DEFAULT]\nbind_port = eighty\n", "[DEFAULT] bind_port: 'eighty' is not an integer"),
    ("[libvirt]\nimages_type = lvm\n", "[libvirt] images_type: 'lvm' is not one of: qcow2, raw"),
    ("[glance]\nallowed_direct_urls = file\n", "[glance] allowed_direct_urls: unknown option"),
    ("[DEFAULT]\ncompute_driver = xen\n",
     "[DEFAULT] compute_driver: 'xen' is not one of: fake, libvirt"),
    ("[DEFAULT]\ninstances_path = /proc/nope/instances\n",
     "[DEFAULT] instances_path: cannot create /proc/nope/instances"),
    ("[DEFAULT]\ndefault_availability_zone = az:host\n",
     "[DEFAULT] default_availability_zone: must be a non-empty zone name without ':'"),
    ("[DEFAULT]\nnetwork_mode = bridge\nfixed_range = 192.0.2.0/24\n",
     "[DEFAULT] flat_network_bridge: must name an existing Linux bridge"),
    ("[DEFAULT]\nnetwork_mode = bridge\nflat_network_bridge = br0\nfixed_range = 192.0.2.0/24"
     "\ngateway = 198.51.100.1\n", "[DEFAULT] gateway: 198.51.100.1 is not in fixed_range"),
    ("[DEFAULT]\nnetwork_mode = bridge\nflat_network_bridge = br0\nfixed_range = 192.0.2.7\n",
     "[DEFAULT] fixed_range: needs room for a gateway and a guest"),
    ("[DEFAULT]\nnetwork_mode = bridge\nflat_network_bridge = br0\nfixed_range = 10.0.0.0/33\n",
     "[DEFAULT] fixed_range: is not an IPv4 CIDR"),
    ("[DEFAULT]\nnetwork_mode = bridge\nflat_network_bridge = chute-nosuch\ncompute_driver = "
     "libvirt\nfixed_range = 192.0.2.0/24\n",
     "[DEFAULT] flat_network_bridge: 'chute-nosuch' is not a Linux bridge on this host"),
])
def test_bad_config_is_one_line_naming_the_option(tmp_path, text, where):
    conf = tmp_path / "chute-compute.conf"
    conf.write_text(text)
    proc = run("--config-file", str(conf))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"chute-compute: {conf}: ")
    assert where in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_config_file(tmp_path):
    proc = run("--config-file", str(tmp_path / "absent.conf"))
    assert proc.returncode == 1
    assert "absent.conf: cannot be read" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_show_config_prints_templated_sections(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[image_file_url]\nfilesystems = gfs\n"
                    "[image_file_url:gfs]\nid = fs-9\nmountpoint = /opt/gluster\n")
    proc = run("--config-file", str(conf), "--show-config")
    assert proc.returncode == 0, proc.stderr
    assert "[image_file_url:gfs]\n# Filesystem id" in proc.stdout
    assert "id = fs-9" in proc.stdout and "mountpoint = /opt/gluster" in proc.stdout
    assert "images_type = qcow2" in proc.stdout


def test_explain_reports_the_direct_path(shared_api, start_compute, tmp_path):
    compute = start_compute(shared_api)
    image = upload_image(shared_api, make_qcow2(tmp_path / "img.qcow2", "16M", data_mb=1),
                         disk_format="qcow2")
    proc = run("--config-file", str(compute.conf_path), "explain", image["id"])
    assert proc.returncode == 0, proc.stderr
    path = shared_api.root / "store" / "images" / image["id"]
    assert f"Image {image['id']} (active" in proc.stdout
    assert f"A fetch would copy {path} directly." in proc.stdout

    proc = run("--config-file", str(compute.conf_path), "explain", "no-such-image")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("chute-compute: ")


def test_port_in_use_names_bind_port(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        conf = tmp_path / "c.conf"
        conf.write_text(f"[DEFAULT]\nbind_port = {port}\ninstances_path = {tmp_path}/i\n")
        proc = run("--config-file", str(conf))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"chute-compute: {conf}: [DEFAULT] bind_port: cannot listen "
                                   f"on 127.0.0.1:{port}: Address already in use")


def test_a_service_token_readable_by_others_stops_the_agent(tmp_path):
    conf = tmp_path / "chute-compute.conf"
    conf.write_text(f"[DEFAULT]\ninstances_path = {tmp_path}/instances\n"
                    "[glance]\nservice_token = s3cret\n")
    conf.chmod(0o604)
    proc = run("--config-file", str(conf))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"chute-compute: {conf}: [glance] service_token: is a secret, but the file is readable "
        f"by others (mode 0604); chmod 600 {conf}"]
    assert not (tmp_path / "instances").exists()
