"""API with auth on: image-show and server-show requests/s with auth_strategy = tokens and
keystone (a real Keystone 30, token caches warm) against noauth, 32 keep-alive connections,
each chute site with its own chute-api (2 workers) and chute-compute; and Glance 33 behind
the same Keystone (its `keystone` paste flavor, keystonemiddleware's in-process cache warm),
showing an image of the same user.

Issue 17's targets: auth costs at most 20% of requests/s, and chute stays >= 3x Glance with
auth on. Glance here is a second instance of the peer (bench/peer.py: same venv, its own
state and port), so the unauthenticated peer of the other scenarios is left as it is.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import loadgen
from bench.clients import BenchError
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.peer import Peer, PeerUnavailable
from bench.services import ChuteSite, start_api, start_compute
from chute import allinone_keystone as ks

NAME = "api_auth"
TITLE = "API with auth: image-show and server-show, tokens and keystone vs noauth"
MODES = ("noauth", "tokens", "keystone")
DATA = b"\0" * 4096


@dataclass
class Site:
    mode: str
    chute: ChuteSite
    token: str
    image_id: str = ""
    server_id: str = ""


def _call(method: str, url: str, token: str, **kwargs: object) -> requests.Response:
    headers = {"X-Auth-Token": token, "Accept": "application/json"}
    if "data" in kwargs:
        headers["Content-Type"] = "application/octet-stream"
    resp = requests.request(method, url, headers=headers, timeout=30,
                            **kwargs)  # type: ignore[arg-type]
    if resp.status_code >= 300:
        raise BenchError(f"{method} {url} -> {resp.status_code}: {resp.text[:300]}")
    return resp


def _populate(site: Site) -> None:
    """One active image and one server of the caller's project."""
    api, compute = site.chute.api.url, site.chute.computes[site.mode].url
    image = _call("POST", f"{api}/v2/images", site.token, json={
        "name": "bench-auth", "disk_format": "raw", "container_format": "bare"}).json()
    _call("PUT", f"{api}/v2/images/{image['id']}/file", site.token, data=DATA)
    server = _call("POST", f"{compute}/v2.1/servers", site.token, json={"server": {
        "name": "bench-auth", "imageRef": image["id"], "flavorRef": "1"}}).json()
    site.image_id, site.server_id = image["id"], server["server"]["id"]


class Identity:
    """The users every mode shares: `bench` (member of project bench) and the compute
    host's service identity; a tokens file of both, and a Keystone with both."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bench_token, self.service_token = secrets.token_hex(16), secrets.token_hex(16)
        self.tokens_file = root / "tokens-file"
        self.tokens_file.write_text(f"{self.bench_token} bench bench member\n"
                                    f"{self.service_token} chute service service\n")
        self.tokens_file.chmod(0o600)
        self.keystone: ks.Site | None = None
        self.proc = None
        self.keystone_token = ""
        self.service_password = secrets.token_hex(12)

    def start_keystone(self) -> None:
        from bench.procs import free_port

        home = ks.install()
        self.keystone = ks.Site(self.root / "keystone", free_port())
        self.keystone.root.mkdir()
        admin_password = secrets.token_hex(12)
        ks.set_up(home, self.keystone, admin_password)
        self.proc = ks.serve(home, self.keystone)
        admin = ks.Admin(self.keystone.url, ks.wait_ready(self.proc, self.keystone,
                                                          admin_password))
        admin.user("chute", self.service_password, "service", "service")
        password = secrets.token_hex(12)
        project_id = admin.user("bench", password, "bench", "member")
        token = ks.password_token(self.keystone.url, "bench", password, {"id": project_id})
        if token is None:
            raise BenchError("Keystone refused the bench user's password")
        self.keystone_token = token

    def config(self, mode: str) -> tuple[str, str, str]:
        """(chute-api extra, chute-compute extra, chute-compute [glance] lines) of `mode`."""
        if mode == "noauth":
            return "", "", ""
        if mode == "tokens":
            auth = f"auth_strategy = tokens\ntokens_file = {self.tokens_file}\n"
            return auth, auth, f"service_token = {self.service_token}"
        assert self.keystone is not None
        url = self.keystone.url
        auth = f"""auth_strategy = keystone
[keystone_authtoken]
auth_type = password
auth_url = {url}
www_authenticate_uri = {url}
username = chute
password = {self.service_password}
project_name = service
user_domain_id = default
project_domain_id = default
"""
        return auth, auth, ""

    def token(self, mode: str) -> str:
        return {"noauth": "bench", "tokens": self.bench_token,
                "keystone": self.keystone_token}[mode]

    def stop(self) -> None:
        if self.proc is not None:
            ks.stop(self.proc)


class KeystoneGlance(Peer):
    """The peer's Glance 33 with `[paste_deploy] flavor = keystone`, validating tokens with
    the bench's Keystone as the `chute` service user (keystonemiddleware's defaults)."""

    def __init__(self, work: Path, root: Path, ident: Identity) -> None:
        super().__init__(work)
        self.root = root
        self.ident = ident

    def configure(self, port: int) -> Path:
        ini = super().configure(port)
        conf = self.root / "etc" / "glance-api.conf"
        text = conf.read_text()
        if "[paste_deploy]\nflavor =\n" not in text:
            raise PeerUnavailable("the peer's glance-api.conf has no empty paste flavor")
        authtoken = self.ident.config("keystone")[0]
        conf.write_text(text.replace("[paste_deploy]\nflavor =\n",
                                     "[paste_deploy]\nflavor = keystone\n")
                        + authtoken[authtoken.index("[keystone_authtoken]"):])
        return ini


def _glance_image(glance: KeystoneGlance, token: str) -> str:
    """An active image of the bench user in Glance; its id."""
    assert glance.service is not None
    url = glance.service.url
    image = _call("POST", f"{url}/v2/images", token, json={
        "name": "bench-auth", "disk_format": "raw", "container_format": "bare"}).json()
    _call("PUT", f"{url}/v2/images/{image['id']}/file", token, data=DATA)
    return str(image["id"])


def _start(root: Path, ident: Identity, mode: str) -> Site:
    api_extra, compute_extra, glance = ident.config(mode)
    chute = start_api(root / f"site-{mode}", extra=api_extra)
    chute.computes[mode] = start_compute(chute, mode, True, compute_extra, glance)
    site = Site(mode, chute, ident.token(mode))
    _populate(site)
    return site


def run(ctx: Context) -> ScenarioResult:
    opts = ctx.opts
    result = ScenarioResult(NAME, TITLE, 0, opts.runs)
    wrk = loadgen.wrk_binary(opts.install)
    root = ctx.scratch(NAME)
    ident = Identity(root)
    sites: dict[str, Site] = {}
    tools: set[str] = set()
    glance = KeystoneGlance(ctx.work, root / "glance", ident)
    glance_image = ""
    glance_skip = None if opts.peer else "peer unavailable: disabled (--no-peer)"
    try:
        ident.start_keystone()
        for mode in MODES:
            sites[mode] = _start(root, ident, mode)
        try:
            if glance_skip is None:
                glance.start()
                glance_image = _glance_image(glance, ident.keystone_token)
        except (PeerUnavailable, BenchError) as exc:
            glance_skip = f"peer unavailable: {exc}"

        def hit(url: str, token: str) -> Callable[[], Sample]:
            def sample() -> Sample:
                got = loadgen.load(url, opts.api_connections, opts.api_seconds, wrk, token)
                tools.add(got.tool)
                if got.errors:
                    raise BenchError(f"{got.errors} failed requests to {url}")
                return Sample(got.requests_per_s, {"p99 ms": got.p99_ms})
            return sample

        cases = []
        for mode, site in sites.items():
            show = f"{site.chute.api.url}/v2/images/{site.image_id}"
            server = f"{site.chute.computes[mode].url}/v2.1/servers/{site.server_id}"
            for url in (show, server):  # the token caches warm in every worker
                loadgen.load(url, opts.api_connections, 1.0, wrk, site.token)
            cases += [Case(f"{mode}_image_show", f"chute image-show, {mode}",
                           hit(show, site.token), unit="req/s"),
                      Case(f"{mode}_server_show", f"chute server-show, {mode}",
                           hit(server, site.token), unit="req/s")]
        glance_show = ""
        if glance_skip is None and glance.service is not None:
            glance_show = f"{glance.service.url}/v2/images/{glance_image}"
            loadgen.load(glance_show, opts.api_connections, 1.0, wrk, ident.keystone_token)
        cases.append(Case("glance_keystone_image_show", "Glance 33 image-show, keystone",
                          hit(glance_show, ident.keystone_token), unit="req/s", side="peer",
                          skip=glance_skip))
        targets = [Target(f"{what} req/s {mode} / noauth", f"{mode}_{key}", f"noauth_{key}",
                          ">=", 0.8)
                   for key, what in (("image_show", "image-show"), ("server_show", "server-show"))
                   for mode in ("tokens", "keystone")]
        targets.append(Target("image-show req/s with keystone: chute / Glance 33",
                              "keystone_image_show", "glance_keystone_image_show", ">=", 3.0))
        measure(result, cases, targets)
    finally:
        glance.stop()
        for site in sites.values():
            site.chute.stop()
        ident.stop()
        shutil.rmtree(root, ignore_errors=True)
    result.notes.append(f"{opts.api_connections} connections, {opts.api_seconds:g} s per run, "
                        f"load by {', '.join(sorted(tools)) or 'n/a'}; Keystone 30 under "
                        "uWSGI (1 process, 4 threads); chute keeps confirmed tokens per worker, "
                        "Glance 33 (uWSGI, 2 processes) in keystonemiddleware's in-process "
                        "cache")
    return result
