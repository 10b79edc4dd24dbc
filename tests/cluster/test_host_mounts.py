"""Each host sees the store only where it mounts it: at its own path, or (h3) nowhere; the
machine's own store directory is hidden on every host."""

from __future__ import annotations

import hashlib
import os

from tests.helpers.images import upload_image
from tests.helpers.netns import run_on


def test_each_host_sees_the_store_at_its_own_path_or_not_at_all(cluster):
    data = os.urandom(64 * 1024)
    image = upload_image(cluster.api, data)
    mountpoints = set()
    for agent in cluster.agents.values():
        assert agent.host is not None
        listed = run_on(agent.host, "ls", "-A", str(cluster.api.root))
        assert listed.returncode == 0 and listed.stdout == "", listed  # under an empty tmpfs
        if agent.mountpoint is None:
            continue
        mountpoints.add(agent.mountpoint)
        seen = run_on(agent.host, "sha256sum", str(agent.mountpoint / "images" / image["id"]))
        assert seen.stdout.split()[:1] == [hashlib.sha256(data).hexdigest()], seen
        assert not any(agent.mountpoint.iterdir())  # the machine itself sees an empty dir
    assert len(mountpoints) == 2
