"""A bad `[filter_scheduler]` stops chute-compute-api at start, naming the option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMPUTE_API = str(Path(sys.executable).parent / "chute-compute-api")


@pytest.mark.parametrize(("line", "fragment"), [
    ("enabled_filters = ComputeFilter, RamFilter", "unknown filter RamFilter"),
    ("ram_weight_multiplier = lots", "is not a number"),
])
def test_a_bad_scheduler_option_is_one_line_naming_it(tmp_path: Path, line: str,
                                                      fragment: str) -> None:
    conf = tmp_path / "chute-compute-api.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{tmp_path / 'db.sqlite'}\n"
                    f"[filter_scheduler]\n{line}\n")
    proc = subprocess.run([COMPUTE_API, "--config-file", str(conf)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    (message,) = proc.stderr.splitlines()
    assert "[filter_scheduler]" in message and line.split(" =")[0] in message
    assert fragment in message


def test_show_config_documents_the_scheduler_options(tmp_path: Path) -> None:
    conf = tmp_path / "chute-compute-api.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{tmp_path / 'db.sqlite'}\n")
    shown = subprocess.run([COMPUTE_API, "--config-file", str(conf), "--show-config"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    for option in ("enabled_filters", "ram_weight_multiplier",
                   "image_cached_weight_multiplier", "image_filesystem_weight_multiplier"):
        assert option in shown
