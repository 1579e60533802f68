"""Where the cluster's Node list comes from: `kubectl get nodes` on a commissioned master, run
through the same Ansible layer, inventory and environment (app.ansible.env) as the jobs."""

from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path

from app.ansible import inventory, process
from app.ansible.env import ansible_env
from app.ansible.spec import Priority, RunSpec, RunStatus
from app.config import Settings
from app.errors import UpstreamError


def list_cluster_nodes(
    *,
    settings: Settings,
    master: inventory.Host,
    work_dir: Path,
    should_cancel: Callable[[], bool] = lambda: False,
) -> dict[str, str]:
    """The cluster's Nodes as name -> UID; raise UpstreamError when the master cannot tell."""
    shutil.rmtree(work_dir, ignore_errors=True)  # a fresh private data dir every time
    result_file = work_dir / "nodes.json"
    inv = inventory.write_inventory(
        work_dir / "inventory.yml", inventory.node_inventory(targets=[], cluster_masters=[master])
    )
    output: deque[str] = deque(maxlen=20)  # enough to explain a failure, bounded
    spec = RunSpec(
        private_data_dir=work_dir / "run",
        playbook=(settings.playbook_dir / settings.cluster_nodes_playbook).absolute(),
        inventory=inv,
        extra_vars={**settings.extra_vars, "clusterm_result_file": str(result_file)},
        env=ansible_env(settings),
        timeout_s=settings.drift_timeout_s,
        priority=Priority(settings.job_priority),
    )
    result = process.run_playbook(spec, on_output=output.append, should_cancel=should_cancel)
    if result.status != RunStatus.SUCCESSFUL or not result_file.is_file():
        tail = " | ".join(line.strip() for line in output if line.strip())[-600:]
        raise UpstreamError(
            f"could not read the Node list from master {master.name} ({result.status.value}, "
            f"rc {result.rc}): {tail or 'no output'}",
            master=master.name,
        )
    try:
        items = json.loads(result_file.read_text())["items"]
        return {str(i["metadata"]["name"]): str(i["metadata"].get("uid", "")) for i in items}
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(
            f"master {master.name} answered a Node list clusterm cannot read: {exc}",
            master=master.name,
        ) from None
