"""The scenarios, in the order `make bench` runs them. Each module has NAME, TITLE, run(ctx)."""

from __future__ import annotations

import importlib
from types import ModuleType

ORDER = ["upload", "download", "direct_fetch", "clone", "sparse", "boot_storm", "boot_console",
         "api_load", "list_cost", "slow_clients", "memory"]


def load(name: str) -> ModuleType:
    if name not in ORDER:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(ORDER)}")
    return importlib.import_module(f"bench.scenarios.{name}")
