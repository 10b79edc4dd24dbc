"""Smoke test of the benchmark: every scenario once, on a 4 MiB image, so `make bench` cannot rot.

Runs `python -m bench` exactly as `make bench` does (same code path: real chute-api and
chute-compute subprocesses, real boots, nginx, wrk or the Python load fallback), with the Glance
peer disabled (`--no-peer`: no network, no 1-minute install) and nothing installed with apt-get.
It checks that every scenario measured every chute case and computed its ratios; it does not
judge the numbers (4 MiB on a busy machine says nothing about speed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import scenarios

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench")
    results = tmp / "latest.json"
    argv = [sys.executable, "-m", "bench", "--size", "4M", "--runs", "1", "--no-peer",
            "--no-install", "--api-seconds", "1", "--api-images", "20",
            "--results", str(results), "--work", str(tmp / "work")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=220,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert results.exists(), f"no results written:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    doc = json.loads(results.read_text())
    doc["_process"] = done
    return doc


def test_exits_cleanly_and_prints_the_table(smoke: dict[str, Any]) -> None:
    done = smoke["_process"]
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "| scenario | measured |" in done.stdout
    assert "| scenario | ratio (same run) |" in done.stdout
    assert list(smoke["scenarios"]) == scenarios.ORDER


@pytest.mark.parametrize("name", scenarios.ORDER)
def test_scenario_measured_every_chute_case(smoke: dict[str, Any], name: str) -> None:
    entry = smoke["scenarios"][name]
    assert entry["error"] is None, entry["error"]
    if name == "clone" and entry["skipped"]:
        pytest.skip(entry["skipped"])  # no loop mount here; the reason is in the table too
    assert entry["skipped"] is None
    assert entry["cases"], "no cases"
    for case in entry["cases"]:
        assert case["error"] is None, f"{case['key']}: {case['error']}"
        if case["side"] == "peer":
            assert case["skipped"] == "peer unavailable: disabled (--no-peer)"
            assert case["stats"] is None
        elif case["key"].startswith("nginx_get") and shutil.which("nginx") is None:
            assert case["skipped"].startswith("nginx unavailable")
        elif case["key"].endswith("_cold") and os.geteuid() != 0:
            assert case["skipped"].startswith("cold cache unavailable")
        else:
            assert case["skipped"] is None
            assert len(case["stats"]["values"]) == 1
            assert case["stats"]["median"] > 0
    peer_keys = {c["key"] for c in entry["cases"] if c["side"] == "peer"}
    reasons = {c["key"]: c["skipped"] for c in entry["cases"]}
    for target in entry["targets"]:
        if {target["a"], target["b"]} & peer_keys:
            # Skipped, with the reason of a case it pairs (the peer's, or nginx's when both are
            # missing, as for the nginx / Glance ceiling).
            assert target["ratio"] is None
            assert target["skipped"] in {reasons[target["a"]], reasons.get(target["b"])}
            assert "unavailable" in target["skipped"]
        elif not target["skipped"]:
            assert target["ratio"]["median"] > 0
            assert target["met"] in (None, True, False)


def test_boot_storm_made_one_transfer(smoke: dict[str, Any]) -> None:
    storm = next(t for t in smoke["scenarios"]["boot_storm"]["targets"]
                 if t["metric"] == "transfers")
    assert storm["ratio"]["median"] == 1.0


def test_fetch_scenarios_used_the_path_they_name(smoke: dict[str, Any]) -> None:
    notes = " ".join(smoke["scenarios"]["direct_fetch"]["notes"])
    assert "copy primitive used: n/a" not in notes
