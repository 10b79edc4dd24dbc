"""chute-compute-api options, with Nova's names and defaults where the meaning is the same."""

from __future__ import annotations

from chute import log
from chute.auth.options import OPTIONS as AUTH_OPTIONS
from chute.auth.options import SECTIONS as AUTH_SECTIONS
from chute.compute.options import SCHEMA as COMPUTE_SCHEMA
from chute.compute.scheduler import SECTIONS as SCHEDULER_SECTIONS
from chute.config import Opt, Schema

SCHEMA: Schema = {
    "DEFAULT": [
        Opt("bind_host", "str", "127.0.0.1", "Address to listen on."),
        Opt("bind_port", "int", 8774, "Port to listen on.", min=0),
        Opt("osapi_compute_workers", "int", 2,
            "Worker processes serving the API (Nova's option); any number of nodes may "
            "share one database behind a load balancer.", min=1),
        Opt("service_down_time", "int", 60,
            "Seconds without a heartbeat after which a host is down: it gets no new servers "
            "and its builds are rescheduled (Nova's option).", min=1),
        Opt("force_config_drive", "bool", False,
            "Give every server a config drive (as Nova's option)."),
        *AUTH_OPTIONS,
        *log.OPTIONS,
    ],
    **AUTH_SECTIONS,
    "database": [
        Opt("connection", "str", "",
            "SQLAlchemy URL of the compute database (Nova's option): sqlite:///PATH on one "
            "machine, postgresql://... for several API nodes. Required."),
    ],
    "scheduler": [
        Opt("max_attempts", "int", 3,
            "Hosts a build is tried on before the server goes to ERROR (Nova's option).",
            min=1),
    ],
    "glance": [
        Opt("api_servers", "list", ["http://127.0.0.1:9292"],
            "Image service endpoints, tried in order on connection errors."),
        Opt("num_retries", "int", 3, "Extra attempts on another endpoint.", min=0),
        Opt("service_token", "str", "",
            "This service's own token (service role): sent to the image service and to the "
            "agents' internal endpoints."),
    ],
    "quota": COMPUTE_SCHEMA["quota"],  # Nova's quotas, counted where servers are recorded
    "wsgi": [
        Opt("client_socket_timeout", "int", 120,
            "Seconds a client may take to send a request head, or stay silent, before its "
            "connection is dropped (Nova's option; the front end enforces it).", min=1),
    ],
    **SCHEDULER_SECTIONS,
}
