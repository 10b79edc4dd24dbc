"""The import rules of docs/architecture.md ("Packages and what each may import"), checked.

A layer that imports one above it (compute reaching into the image service's code instead of
its HTTP API, the fetch calling back into the manager) breaks the one-way walk the document
promises; this reads every module's imports, including those under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "chute"

# Top-level part of chute -> the other parts it may import (the table in the document).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "transfer": set(),
    "openapi": set(),
    "config": {"errors"},
    "log": {"errors", "config"},
    "formats": {"errors"},
    "httpapi": {"errors"},
    "front_end": {"errors"},
    "wsgi_server": {"errors", "config", "log", "front_end"},
    "stores": {"errors", "config", "transfer"},
    "auth": {"errors", "config"},
    "images": {"errors", "config", "log", "formats", "transfer", "stores", "httpapi", "auth",
               "wsgi_server", "front_end", "openapi"},
    "client": {"errors", "transfer"},
    "compute": {"errors", "config", "log", "formats", "transfer", "client", "httpapi", "auth",
                "wsgi_server", "front_end", "openapi"},
    "allinone_keystone": set(),
    "allinone": {"errors", "config", "log", "client", "wsgi_server", "auth",
                 "allinone_keystone"},
    "cli": {"errors", "client", "allinone"},
}

# Modules below a layer never import the ones above them.
NEVER: dict[str, set[str]] = {
    # An agent holds no credentials of the compute database: it never loads its code.
    "chute.compute.cluster.agent": {"chute.compute.cluster.registry",
                                    "chute.compute.cluster.service"},
    "chute.compute.cluster.agent_api": {"chute.compute.cluster.registry",
                                        "chute.compute.cluster.service"},
    "chute.compute.fetch": {"chute.compute.manager", "chute.compute.imagecache",
                            "chute.compute.api", "chute.compute.views", "chute.compute.main"},
    "chute.compute.imagecache": {"chute.compute.manager", "chute.compute.api",
                                 "chute.compute.main"},
    "chute.images.service": {"chute.images.api", "chute.images.api_data", "chute.images.app",
                             "chute.images.views", "chute.images.main"},
    "chute.images.db": {"chute.images.service", "chute.images.data", "chute.images.api",
                        "chute.images.app"},
    "chute.stores": {"chute.images"},
    "chute.compute.scheduler": {"chute.compute.manager", "chute.compute.api",
                                "chute.compute.db", "chute.compute.main",
                                "chute.compute.cluster", "chute.client", "chute.httpapi"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)  # and what may be a module: from chute import config
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("chute.")}


def _part(module: str) -> str:
    return module.split(".")[1]


def _all_modules() -> dict[str, set[str]]:
    return {_module(path): _imports(path) for path in SRC.rglob("*.py")}


def test_every_part_of_chute_has_a_rule():
    parts = {_part(module) for module in _all_modules() if module != "chute"}
    assert parts <= set(ALLOWED), f"parts without an import rule: {parts - set(ALLOWED)}"


def test_each_part_imports_only_what_the_architecture_allows():
    wrong = sorted(f"{module} imports {name}"
                   for module, names in _all_modules().items() if module != "chute"
                   for name in names
                   if _part(name) != _part(module) and _part(name) not in ALLOWED[_part(module)])
    assert not wrong, "\n".join(wrong)


def test_no_module_calls_back_up_a_layer():
    wrong = sorted(f"{module} imports {name}"
                   for module, names in _all_modules().items()
                   for lower, above in NEVER.items()
                   if module == lower or module.startswith(lower + ".")
                   for name in names
                   if any(name == up or name.startswith(up + ".") for up in above))
    assert not wrong, "\n".join(wrong)
