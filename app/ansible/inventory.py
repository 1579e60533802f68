"""The inventory of one run, generated from the node table (never a file users keep in sync).

Groups: `targets` is exactly the job's hosts (the playbooks act on it); `masters` and `workers`
sort them by host group, and `masters` also holds the cluster's commissioned masters, first, so
a playbook can reach the existing control plane (to join, or to drain) without touching them.
Each node label is a group too (`label_zone_b` for zone=b), so a playbook can target a zone.
The contract with the playbooks is in ansible/README.md.

Everything in it came through the API (names, addresses, users, node vars), so it is written as
data that Ansible never templates (app.ansible.unsafe), in a file only the daemon's user can read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.ansible import unsafe

# The host groups a Host may be in, as the playbooks name their groups.
MASTER = "master"
WORKER = "worker"


@dataclass(frozen=True, slots=True)
class Host:
    """A node as Ansible sees it; the nodes domain makes one of each node it hands out."""

    name: str
    address: str
    ssh_port: int
    ssh_user: str
    host_group: str  # MASTER or WORKER
    vars: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """A discover target: an address with the SSH port and user to try."""

    host: str
    port: int
    user: str


def _host_vars(host: Host) -> dict[str, Any]:
    # The node's own vars come last: a user who sets ansible_connection or ansible_host there
    # means it.
    return {
        "ansible_host": host.address,
        "ansible_port": host.ssh_port,
        "ansible_user": host.ssh_user,
        **host.vars,
    }


_NOT_IN_GROUP_NAME = re.compile(r"[^a-z0-9_]")


def label_group(key: str, value: str) -> str:
    """The group of the nodes labelled key=value: Ansible warns about (and a pattern cannot
    hold) other characters in a group name, so they become `_` (zone=b -> label_zone_b)."""
    return _NOT_IN_GROUP_NAME.sub("_", f"label_{key}_{value}".lower())


def node_inventory(
    *, targets: Sequence[Host], cluster_masters: Sequence[Host] = ()
) -> dict[str, Any]:
    hosts = {h.name: _host_vars(h) for h in [*targets, *cluster_masters]}
    job_masters = [h.name for h in targets if h.host_group == MASTER]
    masters = [h.name for h in cluster_masters if h.name not in job_masters] + job_masters
    workers = [h.name for h in targets if h.host_group == WORKER]
    labels: dict[str, list[str]] = {}
    for host in [*targets, *cluster_masters]:
        for key, value in host.labels.items():
            members = labels.setdefault(label_group(key, value), [])
            if host.name not in members:
                members.append(host.name)
    return _inventory(
        hosts,
        targets=[n.name for n in targets],
        masters=masters,
        workers=workers,
        labels=labels,
    )


def address_inventory(addresses: Sequence[Address]) -> dict[str, Any]:
    hosts = {
        a.host: {"ansible_host": a.host, "ansible_port": a.port, "ansible_user": a.user}
        for a in addresses
    }
    return _inventory(hosts, targets=list(hosts), masters=[], workers=[])


def _inventory(
    hosts: dict[str, dict[str, Any]],
    *,
    targets: list[str],
    masters: list[str],
    workers: list[str],
    labels: Mapping[str, list[str]] | None = None,
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
                **{name: group(names) for name, names in sorted((labels or {}).items())},
            },
        }
    }


def write_inventory(path: Path, inventory: dict[str, Any]) -> Path:
    return unsafe.write(path, inventory)
