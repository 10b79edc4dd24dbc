"""Many hosts on one machine: one chute-compute-api and chute-compute agents on loopback, each
agent with its own port, instances_path and host name (fake driver), one SQLite database."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tests.helpers.polling import wait_for
from tests.helpers.services import (
    ApiServer,
    ComputeServer,
    ServiceProcess,
    free_port,
    prepare_compute,
    write_conf,
)


@dataclass
class ComputeApiServer(ServiceProcess):
    """A running chute-compute-api; it logs to `log_path`, start-up errors to `stderr_path`."""

    command: ClassVar[str] = "chute-compute-api"
    probe_path: ClassVar[str] = "/v2.1"

    url: str
    port: int
    root: Path
    conf_path: Path
    log_path: Path
    stderr_path: Path
    database: str  # its [database] connection
    proc: Any = None
    _engine: Engine | None = None

    def console_path(self) -> Path:
        return self.stderr_path

    @property
    def engine(self) -> Engine:
        """The compute database, as the test reads and changes it behind the service."""
        if self._engine is None:
            self._engine = create_engine(self.database)
        return self._engine

    def hosts(self) -> dict[str, Any]:
        """The host registry as stored (read straight from the database)."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM hosts")).mappings().all()
        return {row["host"]: dict(row) for row in rows}

    def placement(self, server_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM placements WHERE instance_id = :id"),
                               {"id": server_id}).mappings().first()
        return dict(row) if row is not None else None

    def set_host(self, host: str, **values: Any) -> None:
        """Change a host's row (enabled, forced_down) as an operator's os-services call."""
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        with self.engine.begin() as conn:
            conn.execute(text(f"UPDATE hosts SET {assignments} WHERE host = :host"),  # noqa: S608
                         {**values, "host": host})


def prepare_compute_api(root: Path, image_api: ApiServer | None, database: str = "",
                        **overrides: dict[str, Any]) -> ComputeApiServer:
    """Its compute database is `database` (a URL; "": a SQLite file under `root`)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database = database or f"sqlite:///{root / 'compute.sqlite'}"
    sections: dict[str, dict[str, Any]] = {
        "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": port, "osapi_compute_workers": 2,
                    "service_down_time": 4, "log_file": str(root / "chute-compute-api.log")},
        "database": {"connection": database},
        "glance": {"api_servers": image_api.url if image_api else "http://127.0.0.1:9",
                   "num_retries": 1},
    }
    for section, options in overrides.items():
        sections.setdefault(section, {}).update(options)
    conf_path = root / "chute-compute-api.conf"
    write_conf(conf_path, sections)
    return ComputeApiServer(f"http://127.0.0.1:{port}", port, root, conf_path,
                            root / "chute-compute-api.log", root / "chute-compute-api.stderr",
                            database)


def prepare_agent(root: Path, host: str, compute_api: ComputeApiServer, image_api: ApiServer,
                  **overrides: dict[str, Any]) -> ComputeServer:
    """An agent named `host` of `compute_api`, fetching from `image_api`, not started yet."""
    root.mkdir(parents=True, exist_ok=True)
    default = {"host": host, "report_interval": 1}
    default.update(overrides.pop("DEFAULT", {}))
    return prepare_compute(root, image_api, DEFAULT=default,
                           compute_api={"url": compute_api.url, **overrides.pop("compute_api",
                                                                                {})},
                           **overrides)


@dataclass
class Cluster:
    api: ComputeApiServer
    agents: dict[str, ComputeServer] = field(default_factory=dict)

    def wait_registered(self, *hosts: str, timeout: float = 30) -> None:
        wanted = set(hosts or self.agents)
        wait_for(lambda: wanted <= set(self.api.hosts()), timeout,
                 f"hosts {sorted(wanted)} to register")

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.kill()
        self.api.kill()
        self.api.engine.dispose()


def start_cluster(root: Path, image_api: ApiServer, hosts: int = 3, database: str = "",
                  agent_overrides: dict[str, Any] | None = None,
                  **api_overrides: dict[str, Any]) -> Cluster:
    api = prepare_compute_api(root / "api", image_api, database, **api_overrides).start()
    cluster = Cluster(api)
    for n in range(1, hosts + 1):
        name = f"host{n}"
        cluster.agents[name] = prepare_agent(root / name, name, api, image_api,
                                             **dict(agent_overrides or {})).start()
    cluster.wait_registered()
    return cluster


def server_host(compute_api: ComputeApiServer, server_id: str) -> str | None:
    """The host of a server as an admin sees it (OS-EXT-SRV-ATTR:host)."""
    resp = requests.get(f"{compute_api.url}/v2.1/servers/{server_id}", timeout=10,
                        headers={"OpenStack-API-Version": "compute 2.79"})
    assert resp.status_code == 200, resp.text
    host: str | None = resp.json()["server"].get("OS-EXT-SRV-ATTR:host")
    return host


def guests(agent: ComputeServer) -> set[str]:
    """The fake driver's guests on an agent's host: instance directories with a power state."""
    return {path.parent.name for path in Path(agent.instances_path).glob("*/fake-power-state")}
