"""Capture Glance 33's answers to the image rows of tests/auth/test_roles.py's table into
tests/auth/glance33_roles.json, the reference that test compares its table with.

    python tests/auth/capture_glance33.py [GLANCE_VENV]

GLANCE_VENV holds Glance 33 and uWSGI (the benchmark installs one at bench/work/glance-venv,
bench/peer.py). Glance runs with its own `context` middleware trusting the identity headers
keystonemiddleware would set after validating a token (X-Identity-Status, X-Roles with the
implied roles, X-Project-Id), so its secure-RBAC default policy and its database rules answer
as behind a real Keystone. A bad token cannot be sent that way (keystonemiddleware would
answer 401 before Glance), so that column is not captured.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
RAW = {"disk_format": "raw", "container_format": "bare"}
PATCH = "application/openstack-images-v2.1-json-patch"
ORDER = ("anonymous", "reader", "member", "admin", "other", "service", "pending", "accepted")
WHO = {"reader": ("proj-a", "reader"), "member": ("proj-a", "member,reader"),
       "admin": ("proj-admin", "admin,member,reader"), "other": ("proj-b", "member,reader"),
       "service": ("service", "service"), "pending": ("proj-m", "member,reader"),
       "accepted": ("proj-n", "member,reader")}


def headers(name: str, **extra: str) -> dict[str, str]:
    if name == "anonymous":
        return extra
    project, roles = WHO[name]
    return {"X-Identity-Status": "Confirmed", "X-Roles": roles, "X-Project-Id": project,
            "X-Tenant-Id": project, "X-User-Id": f"user-{name}", **extra}


def configure(venv: Path, root: Path, port: int) -> Path:
    etc, images, locks = root / "etc", root / "store" / "images", root / "locks"
    for path in (etc, images, locks):
        path.mkdir(parents=True)
    paste = next(venv.rglob("glance-api-paste.ini")).read_text()
    keystone = "keystone = cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken " \
               "context rootapp"
    paste = paste.replace(keystone, keystone + "\ntrusted = " + keystone.split(" = ")[1]
                          .replace("authtoken ", ""))
    paste += ("\n[composite:glance-api-trusted]\npaste.composite_factory = "
              "glance.api:root_app_factory\n/: api\n/healthcheck: healthcheck\n")
    (etc / "glance-api-paste.ini").write_text(paste)
    (etc / "glance-api.conf").write_text(f"""[DEFAULT]
log_file = {root / 'glance-api.log'}
[database]
connection = sqlite:///{root / 'glance.sqlite'}
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {images}/
[paste_deploy]
flavor = trusted
config_file = {etc / 'glance-api-paste.ini'}
[oslo_concurrency]
lock_path = {locks}
""")
    ini = etc / "uwsgi.ini"
    ini.write_text(f"""[uwsgi]
http-socket = 127.0.0.1:{port}
module = glance.wsgi.api:application
home = {venv}
master = true
processes = 1
enable-threads = true
lazy-apps = true
die-on-term = true
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
buffer-size = 65535
env = OS_GLANCE_CONFIG_DIR={etc}
""")
    subprocess.run([str(venv / "bin" / "glance-manage"), "--config-file",
                    str(etc / "glance-api.conf"), "db_sync"], check=True, capture_output=True)
    return ini


def table(url: str) -> dict[str, dict[str, int]]:
    def image(visibility: str) -> str:
        made = requests.post(f"{url}/v2/images", json={"name": f"a-{visibility}", **RAW,
                                                        "visibility": visibility},
                             headers=headers("member"), timeout=10).json()
        stored = requests.put(f"{url}/v2/images/{made['id']}/file", data=b"\x5a" * 65536,
                              headers=headers("member", **{
                                  "Content-Type": "application/octet-stream"}), timeout=10)
        assert stored.status_code == 204, stored.text
        return str(made["id"])

    private, shared = image("private"), image("shared")
    for member in ("proj-m", "proj-n"):
        added = requests.post(f"{url}/v2/images/{shared}/members", json={"member": member},
                              headers=headers("member"), timeout=10)
        assert added.status_code == 200, added.text
    requests.put(f"{url}/v2/images/{shared}/members/proj-n", json={"status": "accepted"},
                 headers=headers("accepted"), timeout=10).raise_for_status()

    def get(path: str) -> Callable[[str], requests.Response]:
        return lambda who: requests.get(url + path.format(private=private, shared=shared),
                                        headers=headers(who), timeout=10)

    def patch(image_id: str) -> Callable[[str], requests.Response]:
        return lambda who: requests.patch(
            f"{url}/v2/images/{image_id}", json=[{"op": "replace", "path": "/name",
                                                  "value": "x"}],
            headers=headers(who, **{"Content-Type": PATCH}), timeout=10)

    def create(**fields: str) -> Callable[[str], requests.Response]:
        return lambda who: requests.post(f"{url}/v2/images", json={"name": "n", **RAW, **fields},
                                         headers=headers(who), timeout=10)

    ops: dict[str, Callable[[str], requests.Response]] = {
        "list images": get("/v2/images"),
        "show private image": get("/v2/images/{private}"),
        "show shared image": get("/v2/images/{shared}"),
        "download private image": get("/v2/images/{private}/file"),
        "download shared image": get("/v2/images/{shared}/file"),
        "locations of private image": get("/v2/images/{private}/locations"),
        "update private image": patch(private),
        "update shared image": patch(shared),
        "create an image": create(),
        "create for another owner": create(owner="proj-x"),
        "create a public image": create(visibility="public"),
        "list members": get("/v2/images/{shared}/members"),
        "show member proj-m": get("/v2/images/{shared}/members/proj-m"),
        "add a member": lambda who: requests.post(
            f"{url}/v2/images/{shared}/members", json={"member": f"proj-x-{who}"},
            headers=headers(who), timeout=10),
        "answer for proj-m": lambda who: requests.put(
            f"{url}/v2/images/{shared}/members/proj-m", json={"status": "pending"},
            headers=headers(who), timeout=10),
    }
    return {op: {who: call(who).status_code for who in ORDER} for op, call in ops.items()}


def main() -> None:
    venv = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "bench" / "work" \
        / "glance-venv"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(tempfile.mkdtemp())
    ini = configure(venv, root, port)
    with open(root / "uwsgi.log", "w") as log:
        proc = subprocess.Popen([str(venv / "bin" / "uwsgi"), "--ini", str(ini)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                requests.get(f"{url}/versions", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.5)
        answers = table(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (HERE / "glance33_roles.json").write_text(json.dumps(answers, indent=1) + "\n")
    print(f"wrote {HERE / 'glance33_roles.json'}")


if __name__ == "__main__":
    main()
