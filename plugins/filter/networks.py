"""Address ranges in variables (djchat_trusted_proxies, djchat_admin_allowed_addresses): checked
with Python's ipaddress, so the role needs no netaddr on the controller."""

from __future__ import annotations

import ipaddress


def djchat_invalid_networks(values):
    """The entries of `values` that are not an IPv4/IPv6 address or network in CIDR form with
    no host bits set (10.0.0.1/8 is refused: 10.0.0.0/8 is what nginx would use)."""
    if not isinstance(values, list):
        return [values]
    invalid = []
    for value in values:
        try:
            ipaddress.ip_network(str(value), strict=True)
        except ValueError:
            invalid.append(value)
    return invalid


class FilterModule:
    def filters(self):
        return {"djchat_invalid_networks": djchat_invalid_networks}
