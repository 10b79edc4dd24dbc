"""`chute up --hosts N`: a cluster on one machine in one command, gone on Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHUTE = str(Path(sys.executable).parent / "chute")


def test_without_root_hosts_is_refused_in_one_line(tmp_path):
    tmp_path.chmod(0o777)
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           CHUTE, "up", "--hosts", "3", "--data-dir", str(tmp_path / "var")],
                          capture_output=True, text=True, check=False, cwd="/")
    assert done.returncode == 1
    assert done.stderr == ("chute up: --hosts: hosts in network and mount namespaces need root "
                           "(running as uid 65534); run it as root, or run `chute up` without "
                           "--hosts\n")
    assert not (tmp_path / "var").exists()  # nothing was made
