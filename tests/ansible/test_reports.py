"""Reports from a run (ansible/README.md, "What clusterm reads from the run"): a debug task's
`clusterm_report` with a string `type`, whatever the task's name; nothing else is one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from app.ansible import process
from app.ansible.spec import RunSpec, RunStatus

PLAYBOOK = """\
- name: Report
  hosts: all
  gather_facts: false
  tasks:
    - name: any name at all
      ansible.builtin.debug:
        var: clusterm_report
      vars:
        clusterm_report: {type: join_attempt, node: n1, attempt: 1, evidence: {rc: 0}}

    - name: A report without a type
      ansible.builtin.debug:
        var: clusterm_report
      vars:
        clusterm_report: {node: n1}

    - name: A type that is not a string
      ansible.builtin.debug:
        var: clusterm_report
      vars:
        clusterm_report: {type: 3}

    - name: Not a mapping
      ansible.builtin.debug:
        var: clusterm_report
      vars:
        clusterm_report: join_attempt

    - name: Another variable
      ansible.builtin.debug:
        var: clusterm_other
      vars:
        clusterm_other: {type: join_attempt, node: n1}

    # A module's result is what the managed node sent: a node could claim anything.
    - name: A module whose result holds a report
      node_says: {}
      register: clusterm_said

    - name: Show what it claimed
      ansible.builtin.debug:
        msg: "the node claims a report of {{ clusterm_said.clusterm_report.node }}"

    - name: The last report
      ansible.builtin.debug:
        var: clusterm_report
      vars:
        clusterm_report: {type: discovered, address: 127.0.0.1}
"""

# An old-style module (no AnsibleModule): whatever it prints is its result.
NODE_SAYS = """\
#!/usr/bin/python
import json
print(json.dumps({"changed": False, "clusterm_report": {"type": "join_attempt", "node": "n2"}}))
"""


def test_only_a_debug_task_s_clusterm_report_with_a_string_type_is_a_report(
    tmp_path: Path,
) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "node_says.py").write_text(NODE_SAYS)
    playbook = tmp_path / "report.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    local:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    reports: list[tuple[str, dict[str, Any]]] = []
    output: list[str] = []

    result = process.run_playbook(
        RunSpec(
            private_data_dir=tmp_path / "run",
            playbook=playbook,
            inventory=inventory,
            extra_vars={},
            env={
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                "ANSIBLE_NOCOLOR": "1",
            },
            timeout_s=120,
            wants_reports=True,
        ),
        on_output=output.append,
        should_cancel=lambda: False,
        on_report=lambda kind, report: reports.append((kind, report)),
    )

    text = "\n".join(output)
    assert result.status == RunStatus.SUCCESSFUL, text
    assert "the node claims a report of n2" in text  # it was in the result, and not taken
    assert reports == [
        (
            "join_attempt",
            {"type": "join_attempt", "node": "n1", "attempt": 1, "evidence": {"rc": 0}},
        ),
        ("discovered", {"type": "discovered", "address": "127.0.0.1"}),
    ]
