"""Fixed addresses: what network a server is on, which address and MAC it has, and how the
guest learns them (the config drive's `network_data.json`, Nova's format).

Two modes, as nova-network's flat networking offered one per host:

- `user` (the all-in-one's default): each guest has its own QEMU user-mode network (slirp,
  libvirt `<interface type='user'>`). slirp is a private network per guest, so every guest has
  slirp's one guest address, 10.0.2.15/24 (gateway 10.0.2.2, DNS 10.0.2.3): that is what
  `addresses` shows, because it is what the guest has. Nothing to allocate but a MAC.
- `bridge` (real hosts): the guest's NIC is a tap on an existing Linux bridge
  (`flat_network_bridge`), with an address from `fixed_range` written into its config drive as
  a static configuration (Nova's `flat_injected`: no DHCP server is needed on the bridge).

Allocation is atomic in the state database: the address and MAC are columns of the instance
under unique indexes (compute/db.py), so of two builds that pick the same free address one
insert loses and picks again; deleting the server's row releases them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any, Protocol

from chute.compute.instance import Port
from chute.compute.settings import NetworkSettings
from chute.errors import ChuteError

LOG = logging.getLogger(__name__)

SLIRP_GUEST = IPv4Address("10.0.2.15")  # what QEMU's user-mode DHCP gives its one guest
MAC_PREFIX = "fa:16:3e"  # Nova's (and Neutron's) base MAC: an OpenStack guest's NIC
# Nova's create_unique_mac_address_attempts is 5; here an attempt also loses when another
# build took the same free address first, so a storm of builds gets more.
ATTEMPTS = 100
NO_ADDRESS = "No fixed IP addresses available for network: {}"  # Nova's NoMoreFixedIps


class PortStore(Protocol):
    """The state database, as allocation uses it (compute/db.py)."""

    def assign_port(self, instance_id: str, port: Port) -> bool: ...

    def used_addresses(self, bridge: str) -> set[str]: ...


class Network:
    def __init__(self, settings: NetworkSettings, store: PortStore) -> None:
        self.settings = settings
        self.store = store

    def allocate(self, instance_id: str) -> Port:
        """A port for the instance, recorded in the state database; ChuteError (the build's
        fault) when fixed_range has no free address left."""
        for _attempt in range(ATTEMPTS):
            port = Port(network=self.settings.label, address=str(self._free_address()),
                        mac=random_mac(), bridge=self.settings.bridge)
            if self.store.assign_port(instance_id, port):
                LOG.info("Instance %s: address %s, MAC %s on %s", instance_id, port.address,
                         port.mac, port.bridge or "user-mode network")
                return port
        raise ChuteError(f"could not allocate an address or MAC for instance {instance_id}")

    def _free_address(self) -> IPv4Address:
        if self.settings.bridge is None:
            return SLIRP_GUEST
        used = self.store.used_addresses(self.settings.bridge)
        for candidate in self._candidates():
            if str(candidate) not in used:
                return candidate
        raise ChuteError(NO_ADDRESS.format(self.settings.label))

    def _candidates(self) -> Iterator[IPv4Address]:
        reserved = {self.settings.gateway, *self.settings.dns}
        return (host for host in self.settings.fixed_range.hosts() if host not in reserved)

    def network_data(self, port: Port) -> dict[str, Any]:
        """Nova's network_data.json (nova/virt/netutils.py get_network_metadata) for one
        port with a static IPv4 address."""
        fixed = self.settings.fixed_range
        link = f"tap{port.mac.replace(':', '')[-8:]}"
        dns = [{"type": "dns", "address": str(a)} for a in self.settings.dns]
        return {
            "links": [{"id": link, "vif_id": link, "type": "bridge" if port.bridge else "phy",
                       "mtu": 1500, "ethernet_mac_address": port.mac}],
            "networks": [{
                "id": "network0", "type": "ipv4", "link": link, "network_id": port.network,
                "ip_address": port.address, "netmask": str(fixed.netmask),
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                            "gateway": str(self.settings.gateway)}],
                "services": dns}],
            "services": dns,
        }


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))
