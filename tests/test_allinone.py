"""`chute up`: both services from generated configs; a first boot copies through the store."""

import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import openstack
import openstack.config
import openstack.connection
import requests

from chute.allinone import write_configs
from chute.client.images import ImageClient
from tests.helpers.servers import boot_and_wait
from tests.helpers.services import free_port

RUN = ("import sys; from chute.allinone import main; "
       "sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))")
KEPT_RUN = "import sys; from chute.allinone import main; sys.exit(main(sys.argv[1]))"


@dataclass(frozen=True)
class Endpoint:
    """What tests.helpers.servers needs of a compute service: its URL."""

    url: str
    token: str | None = None


def _start(data_dir, api_port=None, compute_port=None, umask=-1):
    """`chute up` in a child; without ports, a later start takes them from the kept files."""
    argv = ([RUN, str(data_dir), str(api_port), str(compute_port)] if api_port is not None
            else [KEPT_RUN, str(data_dir)])
    proc = subprocess.Popen([sys.executable, "-c", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            umask=umask)
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
    api_port, compute_port = free_port(), free_port()
    proc, banner = _start(data, api_port, compute_port)
    try:
        assert f"chute-api listening on http://127.0.0.1:{api_port}" in banner
        assert f"chute-compute listening on http://127.0.0.1:{compute_port}" in banner
        assert str(data / "log" / "chute-compute.log") in banner
        image_path = tmp_path / "img.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image_path), "16M"],
                       check=True)
        admin = _admin_token(data)
        images = ImageClient(f"http://127.0.0.1:{api_port}", admin)
        image = images.create(name="cirros", disk_format="qcow2", container_format="bare")
        with open(image_path, "rb") as source:
            images.upload(image["id"], source, image_path.stat().st_size)
        # Issue 17: auth_strategy = tokens; issue 18 item 8: no store paths in documents,
        # and the service-only endpoint answers only to the compute host's service identity
        # (or an admin).
        assert requests.get(f"http://127.0.0.1:{api_port}/v2/images/{image['id']}",
                            timeout=10).status_code == 401
        shown = requests.get(f"http://127.0.0.1:{api_port}/v2/images/{image['id']}",
                             headers={"X-Auth-Token": admin}, timeout=10).json()
        assert shown["status"] == "active"
        assert "locations" not in shown and "direct_url" not in shown, shown
        assert str(data) not in json.dumps(shown)
        endpoint = f"http://127.0.0.1:{api_port}/v2/images/{image['id']}/locations"
        assert requests.get(endpoint, timeout=10).status_code == 401
        assert requests.get(endpoint, headers={"X-Auth-Token": "wrong"},
                            timeout=10).status_code == 401
        token = (data / "service-token").read_text().strip()
        served = requests.get(endpoint, headers={"X-Auth-Token": token}, timeout=10)
        assert served.status_code == 200
        assert served.json()[0]["url"] == f"file://{data}/store/images/{image['id']}"
        server = boot_and_wait(Endpoint(f"http://127.0.0.1:{compute_port}", admin),
                               image["id"], timeout=30)
        assert server["status"] == "ACTIVE", server.get("fault")
        assert server["chute:image_transfer"]["method"] == "file"
        log = (data / "log" / "chute-compute.log").read_text()
        assert "Successfully transferred using file" in log
        # openstacksdk (so the openstack CLI) through the clouds.yaml chute up wrote.
        cloud = openstack.connection.Connection(config=openstack.config.OpenStackConfig(
            config_files=[str(data / "clouds.yaml")]).get_one(cloud="chute"))
        assert image["id"] in {found.id for found in cloud.image.images()}
        assert server["id"] in {found.id for found in cloud.compute.servers()}
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


def _admin_token(data: Path) -> str:
    """The admin's token that `chute up` wrote into its openrc."""
    for line in (data / "openrc").read_text().splitlines():
        if line.startswith("export OS_AUTH_TOKEN="):
            return line.split("=", 1)[1]
    raise AssertionError("no OS_AUTH_TOKEN in openrc")


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
    # Both services read one tokens file, in which the compute host's token is the service's.
    assert api.get("DEFAULT", "auth_strategy") == compute.get("DEFAULT", "auth_strategy") == \
        "tokens"
    tokens = Path(api.get("DEFAULT", "tokens_file"))
    assert compute.get("DEFAULT", "tokens_file") == str(tokens)
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert f"{compute.get('glance', 'service_token')} chute-compute service service" in \
        tokens.read_text()
    assert compute.get("glance", "api_servers") == ["http://127.0.0.1:19292"]
    assert api.get("DEFAULT", "show_multiple_locations") is False
    assert api.get("DEFAULT", "show_image_direct_url") is False

    again = write_configs(tmp_path / "var", 19292, 18774)
    compute_again = config.load(again.conf("chute-compute"), COMPUTE)
    assert compute_again.templated("image_file_url")["shared"]["id"] == shared["id"]


def test_show_locations_turns_both_options_on(tmp_path):
    from chute import config
    from chute.images.options import SCHEMA as IMAGES

    lay = write_configs(tmp_path / "var", 19292, 18774, show_locations=True)
    api = config.load(lay.conf("chute-api"), IMAGES)
    assert api.get("DEFAULT", "show_multiple_locations") is True
    assert api.get("DEFAULT", "show_image_direct_url") is True


def _modes(root: Path) -> dict[str, int]:
    """Every file and directory under `root` (root included) -> its permission bits."""
    found = {".": root.stat().st_mode & 0o7777}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = path.lstat().st_mode & 0o7777
    return found


def test_chute_up_keeps_secrets_and_data_private_under_a_permissive_umask(tmp_path):
    data = tmp_path / "var"
    api_port, compute_port = free_port(), free_port()
    proc, _ = _start(data, api_port, compute_port, umask=0o022)
    try:
        admin = _admin_token(data)
        images = ImageClient(f"http://127.0.0.1:{api_port}", admin)
        image = images.create(name="cirros", disk_format="raw", container_format="bare")
        images.upload(image["id"], io.BytesIO(b"\1" * 65536), 65536)
        server = boot_and_wait(Endpoint(f"http://127.0.0.1:{compute_port}", admin),
                               image["id"], timeout=30)
        assert server["status"] == "ACTIVE", server.get("fault")
        modes = _modes(data)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    secrets = {"service-token", "chute-api.conf", "chute-compute.conf", "tokens",
               "clouds.yaml", "openrc"}
    assert {name: oct(modes[name]) for name in secrets} == dict.fromkeys(secrets, "0o600")
    # What each service made: the image file, both databases, _base, the instance disk, logs.
    assert f"store/images/{image['id']}" in modes
    assert any(name.startswith("instances/_base/") for name in modes)
    assert any(name.startswith(f"instances/{server['id']}/") for name in modes)
    assert any(name.endswith(".sqlite") or name.endswith(".db") for name in modes), modes
    for name, mode in modes.items():
        is_dir = (data / name).is_dir()
        assert mode & ~(0o750 if is_dir else 0o640) == 0, f"{name} is {mode:04o}"


def test_chute_up_is_never_looser_than_a_stricter_umask(tmp_path):
    data = tmp_path / "var"
    proc, _ = _start(data, free_port(), free_port(), umask=0o077)
    try:
        modes = _modes(data)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    for name, mode in modes.items():
        assert mode & 0o077 == 0, f"{name} is {mode:04o}"


def test_write_configs_tightens_a_token_an_older_version_left_readable(tmp_path):
    root = tmp_path / "var"
    root.mkdir()
    (root / "service-token").write_text("0123abcd\n")
    (root / "service-token").chmod(0o644)
    lay = write_configs(root, 19292, 18774)
    assert (root / "service-token").stat().st_mode & 0o777 == 0o600
    assert "service_token = 0123abcd" in lay.conf("chute-compute").read_text()
    assert "0123abcd chute-compute service service" in (root / "tokens").read_text()
    for service in ("chute-api", "chute-compute"):
        assert lay.conf(service).stat().st_mode & 0o777 == 0o600


def test_a_later_chute_up_keeps_the_operators_edits(tmp_path):
    """Issue 18 item 10: configs are written once; an operator's edits survive a restart."""
    data = tmp_path / "var"
    proc, _ = _start(data, free_port(), free_port())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    api_conf, compute_conf = data / "chute-api.conf", data / "chute-compute.conf"
    new_api, new_compute = free_port(), free_port()
    api_text = api_conf.read_text()
    api_text = "# the operator's note\n" + "\n".join(
        f"bind_port = {new_api}" if line.startswith("bind_port") else line
        for line in api_text.splitlines()) + "\n"
    api_conf.write_text(api_text)
    compute_text = "\n".join(
        f"bind_port = {new_compute}" if line.startswith("bind_port")
        else f"api_servers = http://127.0.0.1:{new_api}" if line.startswith("api_servers")
        else line for line in compute_conf.read_text().splitlines()) + "\n"
    compute_conf.write_text(compute_text)

    proc, banner = _start(data)
    try:
        assert f"chute-api listening on http://127.0.0.1:{new_api}" in banner
        assert f"chute-compute listening on http://127.0.0.1:{new_compute}" in banner
        assert f"keeping {api_conf}" in banner
        assert api_conf.read_text() == api_text
        assert compute_conf.read_text() == compute_text
        assert requests.get(f"http://127.0.0.1:{new_api}/v2/images", timeout=10,
                            headers={"X-Auth-Token": _admin_token(data)}).ok
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_show_locations_on_a_kept_config_changes_only_those_options(tmp_path):
    from chute import config
    from chute.images.options import SCHEMA as IMAGES

    lay = write_configs(tmp_path / "var", 19292, 18774)
    conf = lay.conf("chute-api")
    edited = "# mine\n" + conf.read_text().replace("bind_port = 19292", "bind_port = 19393")
    conf.write_text(edited)
    write_configs(tmp_path / "var", 19292, 18774, show_locations=True)
    text = conf.read_text()
    assert text == edited.replace("show_multiple_locations = false",
                                  "show_multiple_locations = true").replace(
        "show_image_direct_url = false", "show_image_direct_url = true")
    api = config.load(conf, IMAGES)
    assert api.get("DEFAULT", "show_multiple_locations") is True
    assert api.get("DEFAULT", "show_image_direct_url") is True
    assert api.get("DEFAULT", "bind_port") == 19393
    write_configs(tmp_path / "var", 19292, 18774)  # without the flag: kept as it is
    assert conf.read_text() == text
