"""chute: get VM images onto hypervisor hosts, through the shared filesystem when there is one."""

__version__ = "0.1.0"
