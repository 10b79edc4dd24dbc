"""Hosts in namespaces see the store only where they mount it, and copy accordingly: a host
that mounts the store (each at its own path) copies by file, the one mounting nothing over
HTTP; concurrent boots on a host cost it one transfer."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.images import upload_image
from tests.helpers.netns import run_on
from tests.helpers.servers import boot, wait_built

BOOTS_PER_HOST = 8


def test_each_host_sees_the_store_at_its_own_path_or_not_at_all(standalone):
    data = os.urandom(64 * 1024)
    image = upload_image(standalone.api, data)
    for compute in standalone.hosts:
        assert compute.host is not None
        listed = run_on(compute.host, "ls", "-A", str(standalone.api.root))
        assert listed.returncode == 0 and listed.stdout == "", listed  # hidden by a tmpfs
        if compute.mountpoint is None:
            continue
        seen = run_on(compute.host, "sha256sum",
                      str(compute.mountpoint / "images" / image["id"]))
        assert seen.stdout.split()[:1] == [hashlib.sha256(data).hexdigest()], seen
        assert not any(compute.mountpoint.iterdir())  # the machine itself sees an empty dir


def test_boots_copy_once_per_host_by_file_where_mounted_else_http(standalone):
    image = upload_image(standalone.api, os.urandom(4 * 1024 * 1024))
    before = {c.host.name: len(c.log_text()) for c in standalone.hosts if c.host}
    jobs = [(c, f"vm-{c.host.name}-{i}") for c in standalone.hosts if c.host
            for i in range(BOOTS_PER_HOST)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        booted = list(pool.map(lambda job: (job[0], boot(job[0], image["id"], job[1])), jobs))
    for compute, server in booted:
        built = wait_built(compute, server["id"], timeout=120)
        assert built["status"] == "ACTIVE", built
    for compute in standalone.hosts:
        assert compute.host is not None
        log = compute.log_text()[before[compute.host.name]:]
        assert log.count("Successfully transferred using") == 1, log[-2000:]
        way = "file" if compute.mountpoint is not None else "http"
        assert f"Successfully transferred using {way}" in log, log[-2000:]
