"""A drift check runs ansible-playbook in the environment a job's runs get."""

from __future__ import annotations

import sys
from pathlib import Path

from app.ansible import inventory
from app.config import load_settings
from app.drift.source import list_cluster_nodes

PLAYBOOKS = Path(__file__).parent / "playbooks"


def test_a_check_sees_the_ansible_env_setting(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'clusterm.db'}",
        playbook_dir=PLAYBOOKS,
        cluster_nodes_playbook="env_nodes.yml",
        ansible_env={"CLUSTERM_TEST_NODE_NAME": "named-by-ansible-env"},
    )
    master = inventory.Host(
        name="m1",
        address="127.0.0.1",
        ssh_port=22,
        ssh_user="root",
        host_group=inventory.MASTER,
        vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
    )
    present = list_cluster_nodes(settings=settings, master=master, work_dir=tmp_path / "drift")
    assert present == {"named-by-ansible-env": "u1"}
