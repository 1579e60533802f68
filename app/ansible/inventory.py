"""The inventory of one job, generated from the node table (never a file users keep in sync).

Groups: `targets` is exactly the job's hosts (the playbooks act on it); `masters` and `workers`
sort them by host group, and `masters` also holds the cluster's commissioned masters, first, so
a playbook can reach the existing control plane (to join, or to drain) without touching them.
The contract with the playbooks is in ansible/README.md.

Everything in it came through the API (names, addresses, users, node vars), so it is written as
data that Ansible never templates (app.ansible.unsafe), in a file only the daemon's user can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.ansible import unsafe
from app.nodes.models import Node


@dataclass(frozen=True)
class Address:
    """A discover target: an address with the SSH port and user to try."""

    host: str
    port: int
    user: str


def _host_vars(node: Node) -> dict[str, Any]:
    # The node's own vars come last: a user who sets ansible_connection or ansible_host there
    # means it.
    return {
        "ansible_host": node.address,
        "ansible_port": node.ssh_port,
        "ansible_user": node.ssh_user,
        **node.vars,
    }


def node_inventory(
    *, targets: Sequence[Node], cluster_masters: Sequence[Node] = ()
) -> dict[str, Any]:
    hosts = {n.name: _host_vars(n) for n in [*targets, *cluster_masters]}
    job_masters = [n.name for n in targets if n.host_group == "master"]
    masters = [n.name for n in cluster_masters if n.name not in job_masters] + job_masters
    workers = [n.name for n in targets if n.host_group == "worker"]
    return _inventory(hosts, targets=[n.name for n in targets], masters=masters, workers=workers)


def address_inventory(addresses: Sequence[Address]) -> dict[str, Any]:
    hosts = {
        a.host: {"ansible_host": a.host, "ansible_port": a.port, "ansible_user": a.user}
        for a in addresses
    }
    return _inventory(hosts, targets=list(hosts), masters=[], workers=[])


def _inventory(
    hosts: dict[str, dict[str, Any]], *, targets: list[str], masters: list[str], workers: list[str]
) -> dict[str, Any]:
    def group(names: list[str]) -> dict[str, Any]:
        return {"hosts": dict.fromkeys(names)}

    return {
        "all": {
            "hosts": hosts,
            "children": {
                "targets": group(targets),
                "masters": group(masters),
                "workers": group(workers),
            },
        }
    }


def write_inventory(path: Path, inventory: dict[str, Any]) -> Path:
    return unsafe.write(path, inventory)
