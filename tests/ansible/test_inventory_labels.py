"""Node labels are inventory groups (`label_zone_b` for zone=b), so a playbook can target them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.ansible import inventory
from tests.playbooks.local_sandbox import Sandbox, write_playbook


def host(name: str, group: str = inventory.WORKER, **labels: str) -> inventory.Host:
    return inventory.Host(
        name=name,
        address="127.0.0.1",
        ssh_port=22,
        ssh_user="root",
        host_group=group,
        labels=labels,
    )


def children(inv: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(group["hosts"]) for name, group in inv["all"]["children"].items()}


@pytest.mark.parametrize(
    ("key", "value", "group"),
    [
        ("zone", "b", "label_zone_b"),
        ("Zone", "B", "label_zone_b"),
        (
            "topology.kubernetes.io/zone",
            "eu-west-1b",
            "label_topology_kubernetes_io_zone_eu_west_1b",
        ),
        ("disk", "", "label_disk_"),
        ("team", "Ops Å", "label_team_ops__"),
    ],
)
def test_a_label_group_name_is_lowercase_with_only_letters_digits_and_underscores(
    key: str, value: str, group: str
) -> None:
    assert inventory.label_group(key, value) == group


def test_each_label_is_a_group_of_the_nodes_that_carry_it() -> None:
    inv = inventory.node_inventory(
        targets=[host("w1", zone="a"), host("w2", zone="b", disk="ssd"), host("w3")],
        cluster_masters=[host("m1", inventory.MASTER, zone="b")],
    )

    assert children(inv) == {
        "targets": ["w1", "w2", "w3"],
        "masters": ["m1"],
        "workers": ["w1", "w2", "w3"],
        "label_disk_ssd": ["w2"],
        "label_zone_a": ["w1"],
        # A cluster master with the label is in its group (not in `targets`: a playbook that
        # must not touch it writes `targets:&label_zone_b`).
        "label_zone_b": ["w2", "m1"],
    }


def test_labels_that_come_out_the_same_share_their_group() -> None:
    inv = inventory.node_inventory(targets=[host("w1", zone="eu-1"), host("w2", Zone="EU_1")])
    assert children(inv)["label_zone_eu_1"] == ["w1", "w2"]


def test_a_label_cannot_replace_a_group_of_the_contract() -> None:
    # Whatever the label, its group starts with `label_`: never `targets`, `masters`...
    inv = inventory.node_inventory(targets=[host("w1", **{"": "targets"})])
    assert children(inv)["targets"] == ["w1"]
    assert children(inv)["label__targets"] == ["w1"]


TOUCH = """
- name: Only the nodes of zone b
  hosts: targets:&label_zone_b
  gather_facts: false
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        dest: "{{ clusterm_node_root }}/touched"
        content: "{{ inventory_hostname }}\\n"
        mode: "0644"
"""


def test_a_playbook_that_targets_a_label_group_reaches_only_those_nodes(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox")
    nodes = [
        sandbox.host("a1", labels={"zone": "a"}),
        sandbox.host("b1", labels={"zone": "b"}),
        sandbox.host("none"),
    ]
    # A master of the cluster in zone b: in the group, but not a target of this job.
    master = sandbox.host("m1", inventory.MASTER, labels={"zone": "b"})
    playbook = write_playbook(tmp_path / "mine", "zone.yml", TOUCH)

    run = sandbox.run(playbook, sandbox.inventory(nodes, cluster_masters=[master]))

    assert run.outcome() == {"b1": "ok"}, run.stdout
    assert (sandbox.root("b1") / "touched").read_text() == "b1\n"
    for name in ("a1", "none", "m1"):
        assert not (sandbox.root(name) / "touched").exists()
