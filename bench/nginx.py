"""nginx serving one directory on a free loopback port: the download scenario's "how fast can a
server hand this file to this reader" baseline (sendfile, no hashing, no database).

Run in the foreground (`daemon off`) with a config of our own, so it needs no system set-up
beyond the package, which is installed with apt-get when missing (we run as root).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.procs import Service, free_port


class NginxUnavailable(RuntimeError):
    """nginx could not be installed or started; str() is the reason."""


def ensure_installed(install: bool = True) -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found:
        return found
    if not install:
        raise NginxUnavailable("nginx is not installed (and installing was not allowed)")
    print("bench: installing nginx with apt-get", flush=True)
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(argv, capture_output=True, text=True,
                              env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/bin:/bin"})
        if done.returncode != 0:
            raise NginxUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()[-200:]}")
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise NginxUnavailable("nginx not found after apt-get install")
    return found


def start(root: Path, serve_dir: Path, install: bool = True) -> Service:
    binary = ensure_installed(install)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(f"""\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {root / 'nginx.pid'};
error_log {root / 'error.log'} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {serve_dir};
        location / {{ }}
    }}
}}
""")
    service = Service("nginx", [binary, "-c", str(conf), "-p", str(root)], root / "nginx.out",
                      port)
    try:
        return service.start("/")
    except Exception as exc:  # noqa: BLE001 - reported as the reason in the table
        raise NginxUnavailable(str(exc)) from None
