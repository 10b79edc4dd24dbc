"""The scenarios, in the order `make bench` runs them. Each module has NAME, TITLE, run(ctx)."""

from __future__ import annotations

import importlib
from types import ModuleType

ORDER = ["upload", "download", "direct_fetch", "clone", "sparse", "boot_storm", "boot_console",
         "api_load", "list_cost", "slow_clients", "memory"]
# Run only when named (`make bench SCENARIO=api_auth`): api_auth installs and runs a Keystone
# (a minute on first use, then ~15 s of set-up), more than `make bench`'s smoke test can hold.
# hosts_storm needs root (network and mount namespaces) and runs `chute up --hosts 3`.
# scheduling starts a PostgreSQL cluster, four compute API nodes and nine agents.
OPTIONAL = ["api_auth", "hosts_storm", "scheduling"]
KNOWN = ORDER + OPTIONAL


def load(name: str) -> ModuleType:
    if name not in KNOWN:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(KNOWN)}")
    return importlib.import_module(f"bench.scenarios.{name}")
