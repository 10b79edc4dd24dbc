"""What the front end does with response bodies, seen from outside on a real chute-api and its
HAProxy (chute.front_end: `option splice-response`)."""

from __future__ import annotations

import hashlib
import os

import requests

from tests.helpers.images import upload_image
from tests.helpers.procs import front_end

MiB = 1 << 20


def pipes(pid: int) -> int:
    """How many pipe ends the process holds: HAProxy keeps the pipes it spliced through."""
    fds = f"/proc/{pid}/fd"
    return sum(os.readlink(f"{fds}/{fd}").startswith("pipe:") for fd in os.listdir(fds))


def test_a_download_crosses_the_front_end_through_a_pipe_and_arrives_whole(start_api):
    server = start_api(DEFAULT={"workers": 1})
    data = os.urandom(16 * MiB)
    image = upload_image(server, data)
    haproxy = front_end(server.proc.pid)
    before = pipes(haproxy)
    # Two downloads at once, neither read yet: each body waits in a pipe of its own (one may be
    # the pipe the upload left in HAProxy's pool, the other is new, and kept there after).
    first, second = (requests.get(f"{server.url}/v2/images/{image['id']}/file", stream=True,
                                  timeout=30) for _ in range(2))
    for resp in (first, second):
        assert resp.status_code == 200
        assert resp.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
        assert hashlib.md5(resp.raw.read()).digest() == hashlib.md5(data).digest()
    assert pipes(haproxy) > before
