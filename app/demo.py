"""`clusterm serve --demo`: a sandbox cluster on this machine, so a newcomer sees a real job.

Three nodes (one master, two workers) are registered on 127.0.0.1 with the local connection. The
shipped playbooks run for real, but every command that would change this machine (apt-get,
systemctl, kubeadm, kubectl...) resolves to the DEMO ONLY simulations in `ansible/demo/bin`, and
every file they write lands under the demo directory (`clusterm_node_root`). Then a commission of
all three starts, and the log says how to watch it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from app.config import Settings
from app.db import Database
from app.errors import ClustermError
from app.jobs.vocabulary import Kind
from app.jobs.worker import JobManager
from app.nodes import service as nodes
from app.nodes.schemas import NodeCreate
from app.nodes.vocabulary import HostGroup, State

log = logging.getLogger("clusterm.demo")

DEMO_NODES = (
    ("demo-master", HostGroup.MASTER),
    ("demo-worker-1", HostGroup.WORKER),
    ("demo-worker-2", HostGroup.WORKER),
)
DEMO_ACTOR = "demo"
# The states a commission may start from (see app/nodes/lifecycle.py).
_COMMISSIONABLE = (State.REGISTERED, State.FAILED, State.DECOMMISSIONED)
# Short waits: the playbooks' verified join watches a node for 90 s on a real cluster; the
# simulated one needs seconds.
DEMO_VARS: dict[str, Any] = {
    "clusterm_k8s_apt_repo": "",
    "clusterm_cni_manifest_url": "",  # no pod network to download
    "clusterm_join_stability_window": 2,
    "clusterm_join_poll": 1,
    "clusterm_join_backoff": 1,
    "clusterm_join_register_timeout": 10,
}


def demo_bin_dir(settings: Settings) -> Path:
    return settings.playbook_dir / "demo" / "bin"


def demo_node(settings: Settings, name: str, group: HostGroup) -> NodeCreate:
    base = settings.data_dir / "demo"
    root = base / "nodes" / name
    root.mkdir(parents=True, exist_ok=True)
    (base / "cluster").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{demo_bin_dir(settings)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FAKEHOST_ROOT": str(root),
        "FAKEHOST_FQDN": name,
        "FAKEK8S_STATE": str(base / "cluster"),
    }
    return NodeCreate(
        name=name,
        address="127.0.0.1",
        host_group=group,
        labels={"clusterm.io/demo": "true"},
        vars={
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "clusterm_node_root": str(root),
            "clusterm_env": env,
            **DEMO_VARS,
        },
    )


def start_demo(*, db: Database, jobs: JobManager, settings: Settings) -> int | None:
    """Register the demo nodes (those not there yet) and commission the ones not yet in the
    cluster; return the job's id, or None when there is nothing to do."""
    if not demo_bin_dir(settings).is_dir():
        log.error(
            "no demo: %s is missing (playbook_dir must be clusterm's ansible/)",
            demo_bin_dir(settings),
        )
        return None
    with db.write() as session:
        known = {n.name: n.state for n in nodes.list_nodes(session=session)}
        new = [demo_node(settings, name, group) for name, group in DEMO_NODES if name not in known]
        if new:
            nodes.register_nodes(session=session, nodes=new, actor=DEMO_ACTOR)
    names = [name for name, _ in DEMO_NODES if known.get(name, State.REGISTERED) in _COMMISSIONABLE]
    if not names:
        log.info("demo: the demo nodes are already in the cluster")
        return None
    try:
        job = jobs.submit(
            kind=Kind.COMMISSION, names=names, host_group=None, extra_vars={}, actor=DEMO_ACTOR
        )
    except ClustermError as exc:
        log.warning("demo: could not start the commission: %s", exc.message)
        return None
    token_hint = f"CLUSTERM_DATA_DIR={settings.data_dir}"
    url = f"http://{settings.host}:{settings.port}"
    log.info(
        "demo: commissioning %s (job %s). Watch it: %s clusterctl --url %s job get active "
        '--follow   or   curl -H "Authorization: Bearer $(cat %s)" '
        "'%s/info/job/active?format=text'   or in a browser %s/ui/ (sign in with the token in %s)",
        ", ".join(names),
        job.id,
        token_hint,
        url,
        settings.admin_token_file,
        url,
        url,
        settings.admin_token_file,
    )
    return job.id
