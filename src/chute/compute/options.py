"""chute-compute options, with Nova's names and defaults where the meaning is the same."""

from __future__ import annotations

from chute import log
from chute.auth.options import OPTIONS as AUTH_OPTIONS
from chute.auth.options import SECTIONS as AUTH_SECTIONS
from chute.config import Opt, Schema

SCHEMA: Schema = {
    "DEFAULT": [
        Opt("bind_host", "str", "127.0.0.1", "Address to listen on."),
        Opt("bind_port", "int", 8774, "Port to listen on.", min=0),
        Opt("instances_path", "str", "/var/lib/chute/instances",
            "Instance disks live in <instances_path>/<uuid>/; the image cache in _base/."),
        Opt("force_raw_images", "bool", False,
            "Convert qcow2 bases to raw in the cache (as Nova's option)."),
        Opt("compute_driver", "str", "fake",
            "Virt driver: fake (disks only, no guest) or libvirt (guests run by libvirtd).",
            choices=("fake", "libvirt")),
        Opt("shutdown_timeout", "int", 60,
            "Seconds a guest has to shut down cleanly on os-stop before it is powered off.",
            min=0),
        Opt("sync_power_state_interval", "int", 600,
            "Seconds between syncs of power states with the hypervisor (0: never; libvirt "
            "events report most changes at once).", min=0),
        Opt("cpu_allocation_ratio", "float", 4.0,
            "Virtual CPUs per host CPU that guests may have in total.", min=0.0),
        Opt("ram_allocation_ratio", "float", 1.0,
            "Guest memory per byte of host memory that guests may have in total.", min=0.0),
        Opt("state_connection", "str", "",
            "SQLAlchemy URL of the agent's own state "
            "(default: <instances_path>/chute-compute.sqlite)."),
        Opt("default_availability_zone", "str", "nova",
            "This host's availability zone (as Nova's option: the zone of a host in no "
            "aggregate); a boot asking for another zone is refused."),
        Opt("force_config_drive", "bool", False,
            "Give every server a config drive (as Nova's option); without it a server gets "
            "one when it asks (config_drive) or has user_data, a key_name or an adminPass."),
        Opt("network_mode", "str", "user",
            "How guests reach a network: user (QEMU user-mode networking, a private network "
            "per guest with slirp's address 10.0.2.15) or bridge (a tap on flat_network_bridge "
            "with an address from fixed_range).", choices=("user", "bridge")),
        Opt("network_label", "str", "private",
            "The network's name: the key of a server's `addresses`."),
        Opt("flat_network_bridge", "str", "",
            "network_mode = bridge: the existing Linux bridge guests' taps join "
            "(nova-network's option)."),
        Opt("fixed_range", "str", "",
            "network_mode = bridge: the IPv4 CIDR guests' fixed addresses come from "
            "(nova-network's option)."),
        Opt("gateway", "str", "",
            "network_mode = bridge: the guests' default gateway (nova-network's option; "
            "default: the first address of fixed_range, never given to a guest)."),
        Opt("flat_network_dns", "list", [],
            "network_mode = bridge: DNS servers written into the guests' network_data.json "
            "(nova-network's option)."),
        Opt("host", "str", "",
            "This host's name in the compute API's host registry (Nova's option; default: "
            "the hostname). Agent mode only."),
        Opt("report_interval", "int", 10,
            "Seconds between an agent's heartbeats to the compute API (Nova's option).", min=1),
        *AUTH_OPTIONS,
        *log.OPTIONS,
    ],
    **AUTH_SECTIONS,
    "compute_api": [
        Opt("url", "str", "",
            "The chute-compute-api this host is an agent of (its load balancer). Unset: "
            "chute-compute is a standalone single-host service with its own servers API."),
        Opt("agent_url", "str", "",
            "Where the compute API reaches this agent's internal endpoints (default: "
            "http://bind_host:bind_port)."),
    ],
    "fake": [
        Opt("spawn_seconds", "float", 0.0,
            "compute_driver = fake: seconds a pretend guest takes to spawn (a slow build, "
            "for tests of what happens meanwhile).", min=0.0),
    ],
    "glance": [
        Opt("api_servers", "list", ["http://127.0.0.1:9292"],
            "Image service endpoints, tried in order on connection errors."),
        Opt("allowed_direct_url_schemes", "list", [],
            "Location schemes that may be read directly (e.g. file)."),
        Opt("num_retries", "int", 3, "Extra attempts for an HTTP download.", min=0),
        Opt("service_token", "str", "",
            "This host's own token, sent as X-Auth-Token to the image service: with "
            "auth_strategy = tokens there, a token of the tokens file with the service role "
            "(which may read images and the service-only locations endpoint)."),
        Opt("verify_digest", "str", "auto",
            "Digest checked on fetch: auto (os_glance_blake3_blocks when the image has it, else "
            "os_hash_value, else checksum), or os_hash_value to always use the multihash.",
            choices=("auto", "os_hash_value")),
    ],
    "quota": [
        Opt("instances", "int", 10, "Servers a project may have (-1: unlimited).", min=-1),
        Opt("cores", "int", 20, "Virtual CPUs a project's servers may have in total "
            "(-1: unlimited).", min=-1),
        Opt("ram", "int", 51200, "MiB of RAM a project's servers may have in total "
            "(-1: unlimited).", min=-1),
    ],
    "image_file_url": [
        Opt("filesystems", "list", [], "Names of [image_file_url:NAME] sections to use."),
    ],
    "image_file_url:*": [
        Opt("id", "str", "", "Filesystem id, as in the image service's metadata file."),
        Opt("mountpoint", "str", "", "Where this host mounts that filesystem."),
    ],
    "image_cache": [
        Opt("remove_unused_base_images", "bool", True, "Remove bases no instance uses."),
        Opt("remove_unused_original_minimum_age_seconds", "int", 86400,
            "Only remove unused bases older than this.", min=0),
        Opt("manager_interval", "int", 2400, "Seconds between cache cleanups (0: never).",
            min=0),
    ],
    "wsgi": [
        Opt("client_socket_timeout", "int", 120,
            "Seconds a client may take to send a request head, or stay silent, before its "
            "connection is dropped (Nova's option; the front end enforces it).", min=1),
    ],
    "libvirt": [
        Opt("images_type", "str", "qcow2", "Instance disk: qcow2 overlay or raw copy.",
            choices=("qcow2", "raw")),
        Opt("virt_type", "str", "kvm", "Guests run under kvm or qemu (TCG emulation).",
            choices=("kvm", "qemu")),
        Opt("connection_uri", "str", "qemu:///system", "The libvirtd to run guests with."),
        Opt("allow_virt_type_fallback", "bool", False,
            "With virt_type = kvm on a host where KVM cannot run a guest, use qemu instead "
            "of refusing to start."),
        Opt("wait_soft_reboot_seconds", "int", 120,
            "Seconds a guest has to shut down on a SOFT reboot before it is rebooted hard.",
            min=0),
    ],
}
