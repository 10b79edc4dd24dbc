"""What a process imported, read from the lines PYTHONPROFILEIMPORTTIME makes it write to
stderr: one line per module it imported itself (a forked child writes its own)."""

from __future__ import annotations

import re

PROFILE_IMPORTS = {"PYTHONPROFILEIMPORTTIME": "1"}
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", re.MULTILINE)


def imported_modules(stderr: str) -> set[str]:
    """The dotted names of the modules named by the import-time lines in `stderr`."""
    return set(IMPORTED.findall(stderr))


def imported_packages(stderr: str) -> set[str]:
    """Top-level packages named by the import-time lines in `stderr`."""
    return {name.split(".")[0] for name in imported_modules(stderr)}
