"""The optional api_auth scenario once, as `make bench SCENARIO=api_auth` runs it (a real
Keystone, three chute sites: noauth, tokens, keystone), so that it cannot rot outside the
smoke test; with --no-peer, as the smoke test, so Glance behind Keystone (the peer, a minute
to install) is left out. It checks that every chute case measured and every ratio was
computed; it does not judge the numbers (1 s runs on a busy machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import keystone

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(400)


def test_api_auth_measures_each_mode(tmp_path: Path) -> None:
    keystone.install()  # first use: not part of the scenario's time
    results = tmp_path / "latest.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if keystone.cache() is not None:
        env["CHUTE_CACHE"] = str(keystone.cache())
    argv = [sys.executable, "-m", "bench", "--scenario", "api_auth", "--runs", "1",
            "--no-peer", "--no-install", "--api-seconds", "1", "--results", str(results),
            "--work", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=380,
                          env=env)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    entry = json.loads(results.read_text())["scenarios"]["api_auth"]
    assert entry["error"] is None, entry["error"]
    chute = {case["key"]: case["stats"]["median"] for case in entry["cases"]
             if case["side"] == "chute"}
    assert set(chute) == {f"{mode}_{what}" for mode in ("noauth", "tokens", "keystone")
                          for what in ("image_show", "server_show")}
    assert all(rate > 0 for rate in chute.values()), chute
    peer = [case for case in entry["cases"] if case["side"] == "peer"]
    assert [case["key"] for case in peer] == ["glance_keystone_image_show"]
    assert "--no-peer" in peer[0]["skipped"], peer
    measured = [t for t in entry["targets"] if not t.get("skipped")]
    assert len(entry["targets"]) == 5, entry["targets"]
    assert len(measured) == 4, entry["targets"]
    assert all(target["ratio"]["median"] > 0 for target in measured)
