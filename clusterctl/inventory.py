"""Read an Ansible inventory (INI or YAML) into node objects, with Ansible's own parser.

Imported only by `clusterctl node import`: ansible-core is heavy and no other command needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MASTER_GROUPS = {
    "masters",
    "master",
    "service-master",
    "kube_control_plane",
    "kube-master",
    "control_plane",
    "control-plane",
}
# Connection variables that become node fields, and inventory bookkeeping that is not a var.
_CONNECTION = {
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_host",
    "ansible_ssh_port",
}
_MAGIC = {
    "inventory_file",
    "inventory_dir",
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
}


class InventoryError(Exception):
    pass


def read_inventory(path: Path) -> list[dict[str, Any]]:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    try:
        inventory = InventoryManager(loader=DataLoader(), sources=[str(path)])
    except AnsibleError as exc:
        raise InventoryError(f"{path}: {exc}") from None
    if not inventory._sources or not inventory.hosts:
        raise InventoryError(f"{path}: no host found; is it an Ansible inventory (INI or YAML)?")

    nodes = []
    for host in sorted(inventory.hosts.values(), key=lambda h: h.name):
        merged: dict[str, Any] = {}
        for group in sorted(host.get_groups(), key=lambda g: g.depth):
            merged.update(group.get_vars())
        merged.update(host.get_vars())
        groups = {g.name for g in host.get_groups()}
        node: dict[str, Any] = {
            "name": host.name,
            "address": str(
                merged.get("ansible_host") or merged.get("ansible_ssh_host") or host.name
            ),
            "host_group": "master" if groups & MASTER_GROUPS else "worker",
            "vars": {k: _plain(v) for k, v in merged.items() if k not in _CONNECTION | _MAGIC},
        }
        port = merged.get("ansible_port") or merged.get("ansible_ssh_port")
        if port is not None:
            node["ssh_port"] = int(port)
        if merged.get("ansible_user"):
            node["ssh_user"] = str(merged["ansible_user"])
        nodes.append(node)
    return nodes


def _plain(value: Any) -> Any:
    """Ansible wraps strings in its own types; JSON wants plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)
