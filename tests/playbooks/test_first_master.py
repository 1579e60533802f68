"""`clusterm_first_master` is the first master of the cluster as clusterm lists them (oldest
commission first), whatever their names: the playbooks keep the inventory's order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.ansible import inventory
from tests.playbooks.conftest import PLAYBOOK_DIR

ANSIBLE = str(Path(sys.executable).parent / "ansible")


def host(name: str, group: str) -> inventory.Host:
    return inventory.Host(
        name=name,
        address="127.0.0.1",
        ssh_port=22,
        ssh_user="nobody",
        host_group=group,
        vars={"ansible_connection": "local"},
    )


def test_the_first_master_is_the_first_the_inventory_lists(tmp_path: Path) -> None:
    # Neither name order nor its reverse, and enough of them that a set's order would show.
    masters = ["m-c", "m-f", "m-a", "m-e", "m-b", "m-d"]
    inv = inventory.node_inventory(
        targets=[host("w1", "worker"), host("m-new", "master")],
        cluster_masters=[host(name, "master") for name in masters],
    )
    path = inventory.write_inventory(tmp_path / "hosts.yml", inv)
    shown = "{{ clusterm_first_master }} {{ clusterm_existing_masters | join(',') }}"
    command = [ANSIBLE, "w1", "-i", str(path), "--playbook-dir", str(PLAYBOOK_DIR)]
    out = subprocess.run(
        [*command, "-m", "debug", "-a", json.dumps({"msg": shown})],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert f'"msg": "m-c {",".join(masters)}"' in out, out
