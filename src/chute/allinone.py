"""`chute up`: chute-api and chute-compute on one machine, configured to copy directly.

The generated configuration makes the store's metadata id and the compute host's filesystem id
the same uuid (kept in DATA_DIR so a second `chute up` keeps serving the same images), with the
compute mountpoint equal to the store's, so a first boot copies through the filesystem. Both
services listen on loopback only.

Image documents carry no store paths (`show_multiple_locations` and `show_image_direct_url` off,
as in Glance): anyone who reaches the API reads them, and the service-only locations endpoint
would protect nothing. Both services run with `auth_strategy = tokens` and one tokens file
(chute.auth.provision writes it, with a clouds.yaml and an openrc for the clients); the compute
host reads the locations through that endpoint (`GET /v2/images/{id}/locations`) as the
service identity of that file, whose token is its `[glance] service_token`. `show_locations=True`
(`chute up --show-locations`) turns both options on, for an operator who wants `image-show`
to show the `file://` location.

Both config files are written once, on the first start, and kept as they are afterwards, so an
operator's edits survive a restart; the only change a later start makes is `--show-locations`,
which turns the two options on in the kept chute-api.conf. Ports and addresses come from the
kept files. One `chute up` owns a data dir at a time (a flock on DATA_DIR/chute-up.lock), and
both ports are checked before anything starts.
"""

from __future__ import annotations

import configparser
import errno
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import requests

from chute import allinone_keystone, config
from chute.allinone_keystone import KeystoneError
from chute.auth.provision import write_identity, write_keystone_identity

HOST = "127.0.0.1"
SECRET = 0o600  # the service token and the configs that hold it
DATA = 0o640
START_TIMEOUT = 30.0


@dataclass
class Layout:
    """Where everything of one all-in-one lives under DATA_DIR."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def images(self) -> Path:
        return self.store / "images"

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def conf(self, service: str) -> Path:
        return self.root / f"{service}.conf"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


def _write(path: Path, text: str, mode: int) -> None:
    """Write `path` with at most `mode` (the umask may take more away), also when it exists:
    a file an earlier version wrote 0644 is tightened, never loosened."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, os.fstat(fd).st_mode & mode & 0o777)
        handle.write(text)


def _persistent(path: Path, make: str, mode: int = 0o640) -> str:
    """A value generated once and kept: the filesystem id must not change between runs,
    because each image's location metadata recorded it at upload time."""
    if path.exists():
        os.chmod(path, path.stat().st_mode & mode & 0o777)
        return path.read_text(encoding="utf-8").strip()
    _write(path, make + "\n", mode)
    return make


def _write_once(path: Path, text: str, mode: int) -> bool:
    """Write `path` unless it exists (then only tighten its mode): True if it was written."""
    if path.exists():
        os.chmod(path, path.stat().st_mode & mode & 0o777)
        return False
    _write(path, text, mode)
    return True


def _turn_on(path: Path, options: Sequence[str]) -> bool:
    """Set each of `options` to true in the [DEFAULT] section of the kept INI file at `path`,
    editing only those lines (comments and the operator's other edits stay): True if changed."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    section, seen, changed = "DEFAULT", set(), False
    for number, line in enumerate(lines):
        header = re.match(r"\s*\[([^]]+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        found = re.match(r"\s*([A-Za-z_]+)\s*[=:]\s*(.*?)\s*$", line)
        if section == "DEFAULT" and found and found.group(1) in options:
            seen.add(found.group(1))
            if found.group(2).lower() != "true":
                lines[number] = f"{found.group(1)} = true\n"
                changed = True
    missing = [f"{name} = true\n" for name in options if name not in seen]
    if missing:
        at = next((i + 1 for i, line in enumerate(lines)
                   if re.match(r"\s*\[DEFAULT\]", line)), None)
        if at is None:
            lines[:0] = ["[DEFAULT]\n", *missing, "\n"]
        else:
            lines[at:at] = missing
        changed = True
    if changed:
        _write(path, "".join(lines), SECRET)
    return changed


SHOW_OPTIONS = ("show_multiple_locations", "show_image_direct_url")


LIBVIRT_SETUP = Path(__file__).resolve().parents[2] / "tools" / "libvirt-setup"
LIBVIRT_URI = "qemu:///system"


def libvirt_problem() -> str | None:
    """None if guests can run here through libvirt (libvirtd installed and started by
    tools/libvirt-setup when chute runs from its repository as root), else why not."""
    if LIBVIRT_SETUP.is_file() and os.geteuid() == 0:
        done = subprocess.run([str(LIBVIRT_SETUP)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["failed"]
            return f"tools/libvirt-setup: {lines[-1]}"
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed (pip install 'chute[libvirt]')"
    try:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        libvirt.open(LIBVIRT_URI).close()
    except libvirt.libvirtError as exc:
        return f"libvirtd does not answer at {LIBVIRT_URI}: {exc.get_error_message()}"
    return None


def _driver_options(compute_driver: str) -> str:
    """chute-compute.conf's driver lines: libvirt where it works (kvm, or qemu where KVM
    cannot run guests), else the fake driver with one line saying why."""
    libvirt = ("compute_driver = libvirt\n\n[libvirt]\nvirt_type = kvm\n"
               "allow_virt_type_fallback = true\n")
    if compute_driver == "libvirt":
        return libvirt  # chute-compute names connection_uri at start if libvirtd is not there
    if compute_driver == "auto":
        problem = libvirt_problem()
        if problem is None:
            return libvirt
        print(f"chute up: guests cannot run here ({problem}); using compute_driver = fake "
              "(disks are made, no guest starts)", flush=True)
    return "compute_driver = fake\n"


def write_configs(data_dir: str | os.PathLike[str], api_port: int | None = None,
                  compute_port: int | None = None, show_locations: bool = False,
                  compute_driver: str = "auto",
                  keystone: allinone_keystone.KeystoneSite | None = None) -> Layout:
    """Write both configs on the first start; later starts keep them as they are (an
    operator's edits survive), except that `show_locations` turns the two options on in the
    kept chute-api.conf. The ports only matter on the first start. With `keystone`, both
    services authenticate with that Keystone (auth_strategy = keystone) and the compute host
    calls the image service as its `chute` user; else tokens mode."""
    lay = Layout(Path(data_dir).resolve())
    api_port = 9292 if api_port is None else api_port
    compute_port = 8774 if compute_port is None else compute_port
    # Private by default (issue 18 item 7): what is written here is data (0640 files, 0750
    # directories) or a secret (0600: the token and both configs, which hold it); never looser
    # than the operator's umask. The services make what they create private themselves.
    for directory in (lay.root, lay.store, lay.images, lay.instances, lay.logs):
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    fs_id = _persistent(lay.root / "filesystem-id", str(uuid.uuid4()))
    token = _persistent(lay.root / "service-token", secrets.token_hex(16), SECRET)
    show = "true" if show_locations else "false"
    if keystone is None:
        identity = write_identity(lay.root, f"http://{HOST}:{api_port}",
                                  f"http://{HOST}:{compute_port}", token)
        auth = f"auth_strategy = tokens\ntokens_file = {identity.tokens_file}"
        service_token = f"service_token = {token}"
    else:
        auth, service_token = "auth_strategy = keystone", ""
    metadata = lay.root / "store-metadata.json"
    _write_once(metadata, json.dumps({"id": fs_id, "mountpoint": str(lay.store)}) + "\n", DATA)
    written = _write_once(lay.conf("chute-api"), f"""\
[DEFAULT]
bind_host = {HOST}
bind_port = {api_port}
show_multiple_locations = {show}
show_image_direct_url = {show}
{auth}
log_file = {lay.log("chute-api")}

[glance_store]
filesystem_store_datadir = {lay.images}
filesystem_store_metadata_file = {metadata}
{_authtoken(keystone)}""", SECRET)
    if show_locations and not written:
        _turn_on(lay.conf("chute-api"), SHOW_OPTIONS)
    driver = "" if lay.conf("chute-compute").exists() else _driver_options(compute_driver)
    _write_once(lay.conf("chute-compute"), f"""\
[DEFAULT]
bind_host = {HOST}
bind_port = {compute_port}
instances_path = {lay.instances}
{auth}
log_file = {lay.log("chute-compute")}
{driver}
[glance]
api_servers = http://{HOST}:{api_port}
allowed_direct_url_schemes = file
{service_token}

[image_file_url]
filesystems = shared

[image_file_url:shared]
id = {fs_id}
mountpoint = {lay.store}
{_authtoken(keystone)}""", SECRET)
    return lay


def _authtoken(keystone: allinone_keystone.KeystoneSite | None) -> str:
    """keystonemiddleware's section: tokens are validated as the `chute` service user."""
    if keystone is None:
        return ""
    return f"""
[keystone_authtoken]
auth_type = password
auth_url = {keystone.site.url}
www_authenticate_uri = {keystone.site.url}
username = {allinone_keystone.SERVICE_USER}
password = {keystone.service_password}
project_name = {allinone_keystone.SERVICE_PROJECT}
user_domain_id = default
project_domain_id = default
"""


def _bind_address(conf: Path) -> tuple[str, int]:
    """The (bind_host, bind_port) a kept config file asks its service to listen on."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf, encoding="utf-8")
    defaults = parser.defaults()
    return defaults.get("bind_host", HOST), int(defaults.get("bind_port", "0"))


def _port_busy(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound now, or None (wsgi_server.bind_error)."""
    from chute.wsgi_server import bind_error
    error = bind_error(host, port)
    if error is None:
        return None
    if error.errno == errno.EADDRINUSE:
        return "is already in use"
    return f"cannot be bound ({error.strerror or error})"


def _lock(root: Path) -> IO[str] | None:
    """Hold DATA_DIR/chute-up.lock for the life of this process, or None if another process
    holds it. The lock goes with the process, also when it is killed."""
    root.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd = os.open(root / "chute-up.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, SECRET)
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _command(service: str) -> list[str]:
    script = Path(sys.executable).parent / service
    if script.exists():
        return [str(script)]
    module = {"chute-api": "chute.images.main", "chute-compute": "chute.compute.main"}[service]
    return [sys.executable, "-c", f"import sys, {module} as m; sys.exit(m.main())"]


def _wait_ready(proc: subprocess.Popen[bytes], url: str, service: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{service} exited with status {proc.returncode} at start")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{service} did not answer on {url} within {START_TIMEOUT:.0f} s")


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fail(message: str) -> int:
    print(f"chute up: {message}", file=sys.stderr, flush=True)
    return 1


def main(data_dir: str | os.PathLike[str] = "./var", api_port: int | None = None,
         compute_port: int | None = None, show_locations: bool = False,
         compute_driver: str = "auto", keystone: bool = False,
         keystone_port: int | None = None) -> int:
    """Run both services until Ctrl-C/SIGTERM or until one of them exits."""
    config.private_umask()  # also for the services' start-up, before they set it themselves
    root = Path(data_dir).resolve()
    lock = _lock(root)
    if lock is None:
        try:
            holder = f" (pid {int((root / 'chute-up.lock').read_text().strip())})"
        except (OSError, ValueError):
            holder = ""
        return _fail(f"{root} is already used by another chute up{holder}; stop it first "
                     f"or use another --data-dir")
    try:
        return _run(root, api_port, compute_port, show_locations, compute_driver,
                    _keystone_site(root, keystone_port) if keystone else None)
    except _Refused as exc:
        return _fail(str(exc))
    finally:
        lock.close()


class _Refused(Exception):
    """chute up cannot start as asked; the message says why and what to do."""


def _keystone_site(root: Path, asked_port: int | None) -> allinone_keystone.KeystoneSite:
    """The Keystone of DATA_DIR/keystone: its port and passwords, made on the first start
    with --keystone and kept (0600) afterwards."""
    home = root / "keystone"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = int(_persistent(home / "port", str(asked_port or allinone_keystone.DEFAULT_PORT)))
    if asked_port is not None and asked_port != port:
        raise _Refused(f"--keystone-port {asked_port} differs from {port} in {home / 'port'}, "
                       "kept from the first start; change it there")
    made = [_persistent(home / f"{user}-password", secrets.token_hex(16), SECRET)
            for user in ("admin", allinone_keystone.SERVICE_USER, allinone_keystone.DEMO)]
    return allinone_keystone.KeystoneSite(allinone_keystone.Site(home, port), *made)


def _check_mode(lay: Layout, keystone: allinone_keystone.KeystoneSite | None) -> None:
    """A data dir stays in the mode of its first start: its configs and identity files were
    written for it (and kept)."""
    if lay.conf("chute-compute-api").exists():
        raise _Refused(f"{lay.root} was first started with --hosts (it has "
                       f"{lay.conf('chute-compute-api')}); start it with --hosts again, or use "
                       "another --data-dir")
    if not lay.conf("chute-api").exists():
        return
    text = lay.conf("chute-api").read_text(encoding="utf-8")
    kept = "keystone" if re.search(r"(?m)^auth_strategy\s*=\s*keystone\s*$", text) else "tokens"
    asked = "keystone" if keystone is not None else "tokens"
    if kept != asked:
        flag = "with --keystone" if kept == "keystone" else "without --keystone"
        raise _Refused(f"{lay.root} was first started {flag} (auth_strategy = {kept} in "
                       f"{lay.conf('chute-api')}); start it {flag} again, or use another "
                       "--data-dir")


def _start_keystone(lay: Layout, keystone: allinone_keystone.KeystoneSite,
                    urls: dict[str, str]) -> subprocess.Popen[bytes]:
    """Keystone running, with chute's users and endpoints in it (made on the first start),
    and the clients' files written."""
    site = keystone.site
    if not allinone_keystone.installed(allinone_keystone.venv()):
        print(f"installing Keystone {allinone_keystone.VERSION} into "
              f"{allinone_keystone.venv()} (first use, about a minute)", flush=True)
    home = allinone_keystone.install()
    done = site.root / "set-up"
    if not done.exists():
        allinone_keystone.set_up(home, site, keystone.admin_password)
        _write(done, "keystone-manage db_sync, fernet_setup, credential_setup, bootstrap\n",
               DATA)
    proc = allinone_keystone.serve(home, site)
    token = allinone_keystone.wait_ready(proc, site, keystone.admin_password)
    provisioned = site.root / "provisioned"
    if not provisioned.exists():
        admin = allinone_keystone.Admin(site.url, token)
        allinone_keystone.provision(admin, urls["chute-api"], urls["chute-compute"], keystone)
        _write(provisioned, "users chute and demo, image and compute endpoints\n", DATA)
    write_keystone_identity(lay.root, site.url, {
        "admin": ("admin", keystone.admin_password, "admin"),
        allinone_keystone.DEMO: (allinone_keystone.DEMO, keystone.demo_password,
                                 allinone_keystone.DEMO)})
    print(f"keystone listening on {site.url}  (log {site.log}); . {lay.root / 'openrc'} "
          f"(admin) or {lay.root / 'demo-openrc'} (demo)", flush=True)
    return proc


def _run(root: Path, api_port: int | None, compute_port: int | None,
         show_locations: bool, compute_driver: str,
         keystone: allinone_keystone.KeystoneSite | None = None) -> int:
    kept = Layout(root).conf("chute-api").exists() or Layout(root).conf("chute-compute").exists()
    _check_mode(Layout(root), keystone)
    lay = write_configs(root, api_port, compute_port, show_locations, compute_driver,
                        keystone)
    if kept and re.search(r"(?m)^compute_driver\s*=\s*libvirt\s*$",
                          lay.conf("chute-compute").read_text(encoding="utf-8")):
        libvirt_problem()  # starts libvirtd after a reboot; chute-compute says if it failed
    if kept:
        turned = (" (--show-locations turned show_multiple_locations and show_image_direct_url "
                  "on in chute-api.conf)") if show_locations else ""
        print(f"keeping {lay.conf('chute-api')} and {lay.conf('chute-compute')} as they are; "
              f"edit them to change ports or options{turned}", flush=True)
    urls: dict[str, str] = {}
    for service, asked, flag in (("chute-api", api_port, "--api-port"),
                                 ("chute-compute", compute_port, "--compute-port")):
        host, port = _bind_address(lay.conf(service))
        if asked is not None and asked != port:
            return _fail(f"{flag} {asked} differs from bind_port = {port} in "
                         f"{lay.conf(service)}, which is kept from the first start; "
                         f"change it there")
        busy = _port_busy(host, port)
        if busy is not None:
            return _fail(f"port {port} on {host} ({service}, bind_port in "
                         f"{lay.conf(service)}) {busy}; nothing was started")
        urls[service] = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    if keystone is not None:
        busy = _port_busy(HOST, keystone.site.port)
        if busy is not None:
            return _fail(f"port {keystone.site.port} on {HOST} (keystone, "
                         f"{keystone.site.root / 'port'}) {busy}; nothing was started")
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[subprocess.Popen[bytes]] = []
    failure: str | None = None
    try:
        if keystone is not None:
            procs.append(_start_keystone(lay, keystone, urls))
        for service, url in urls.items():
            cmd = [*_command(service), "--config-file", str(lay.conf(service))]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
            _wait_ready(procs[-1], url + "/", service)
            print(f"{service} listening on {url}  (config {lay.conf(service)}, "
                  f"log {lay.log(service)})", flush=True)
        print(f"data in {lay.root}; Ctrl-C stops both", flush=True)
        while not stopping:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                command = dead[0].args[0]  # type: ignore[index]  # always a list here
                failure = f"{Path(str(command)).name} exited with status {dead[0].returncode}"
                break
            time.sleep(0.2)
    except (RuntimeError, KeystoneError) as exc:
        failure = str(exc)
    finally:
        _stop(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        print(f"chute up: {failure}; see the logs in {lay.logs}", file=sys.stderr, flush=True)
        return 1
    print("stopped chute-api and chute-compute", flush=True)
    return 0
