"""Read an Ansible inventory (INI, YAML or TOML) into node objects, with Ansible's own parsers.

Only Ansible's `yaml`, `toml` and `ini` inventory plugins are used, each of which reads the file as
data. Ansible's other ways of reading an inventory are left out on purpose: the `script` plugin
runs an executable file and takes its output, and `auto` loads whatever plugin a YAML file names.
So an executable file is read as text like any other, and never run.

Node vars are stored as literal text and never templated by clusterm, so a var holding a Jinja
template (`{{ ... }}`, `{% ... %}`) would reach the playbooks as those characters, not as what
the template meant in the inventory. Such a var is refused unless the user says it is literal.

Imported only by `clusterctl node import`: ansible-core is heavy and no other command needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


# Tried in this order, as Ansible does: the first that accepts the file and parses it wins.
_DATA_PLUGINS = ("yaml", "toml", "ini")
_TEMPLATE_MARKS = ("{{", "{%")


class InventoryError(Exception):
    pass


def _data_plugins() -> list[Any]:
    import ansible.plugins.inventory
    from ansible.plugins.loader import inventory_loader

    # A plugin of the same name on Ansible's plugin path would be imported in place of the
    # builtin one: take Ansible's own files only.
    builtin = os.path.dirname(os.path.abspath(ansible.plugins.inventory.__file__))
    plugins = []
    for name in _DATA_PLUGINS:
        found = inventory_loader.find_plugin(name)
        if found is None or os.path.dirname(os.path.abspath(found)) != builtin:
            raise InventoryError(
                f"Ansible's {name!r} inventory plugin is shadowed by {found}; "
                "remove it from the Ansible plugin path to import inventories"
            )
        plugins.append(inventory_loader.get(name))
    return plugins


def _parse(path: Path) -> Any:
    """Ansible's inventory data for `path`, read by the first data plugin that accepts it."""
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    source = str(path.resolve())
    failures = []
    for plugin in _data_plugins():
        try:
            wanted = plugin.verify_file(source)
        except AnsibleError:
            wanted = False
        if not wanted:
            continue
        inventory = InventoryData()
        try:
            plugin.parse(inventory, DataLoader(), source, cache=False)
        except AnsibleError as exc:
            failures.append(f"as {plugin._load_name}: {exc.message}")
            continue
        inventory.reconcile_inventory()
        return inventory
    reasons = "; ".join(failures) or "no parser accepts this file"
    if os.access(path, os.X_OK):
        reasons += "; an executable file is read as text too, never run as an inventory script"
    raise InventoryError(f"{path}: not an INI, YAML or TOML inventory ({reasons})")


def read_inventory(path: Path, *, literal: bool = False) -> list[dict[str, Any]]:
    inventory = _parse(path)
    if not inventory.hosts:
        raise InventoryError(
            f"{path}: no host found; is it an Ansible inventory (INI, YAML or TOML)?"
        )

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
        if not literal:
            _refuse_templates(path, host.name, node["vars"])
        port = merged.get("ansible_port") or merged.get("ansible_ssh_port")
        if port is not None:
            node["ssh_port"] = int(port)
        if merged.get("ansible_user"):
            node["ssh_user"] = str(merged["ansible_user"])
        nodes.append(node)
    return nodes


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _refuse_templates(path: Path, host: str, variables: dict[str, Any]) -> None:
    for key, value in variables.items():
        if any(mark in text for text in _strings(value) for mark in _TEMPLATE_MARKS):
            raise InventoryError(
                f"{path}: host {host!r} var {key!r} holds a Jinja template ('{{{{' or '{{%'). "
                "clusterm stores node vars as literal text and never templates them, so the "
                "playbooks would get those characters, not the template's value. Replace it with "
                "the value it stands for, or give --literal to store it as literal text"
            )


def _plain(value: Any) -> Any:
    """Ansible wraps strings in its own types; JSON wants plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)
