"""No tag skips the name check or the verified join: whatever a request's `tags`/`skip_tags`
select, a node whose name is not its FQDN is refused, and a node that joins is verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ansible import inventory
from tests.playbooks.conftest import PLAYBOOK_DIR
from tests.playbooks.local_sandbox import FAST, NO_CNI, Commissioned, Sandbox

COMMISSION = PLAYBOOK_DIR / "commission.yml"
EVERY_TAG = "prepare,swap,kernel,packages,containerd,control_plane,cni"


@pytest.mark.parametrize(
    "selection", [{"tags": "packages"}, {"tags": "cni"}, {"skip_tags": EVERY_TAG}]
)
def test_no_tag_skips_the_name_check(tmp_path: Path, selection: dict[str, str]) -> None:
    sandbox = Sandbox(tmp_path)
    node = sandbox.host("w1.example", fqdn="ip-10-0-0-7.internal")

    run = sandbox.run(
        COMMISSION,
        sandbox.inventory([node]),
        tags=selection.get("tags", ""),
        skip_tags=selection.get("skip_tags", ""),
        **FAST | NO_CNI,
    )

    assert run.outcome() == {"w1.example": "failed"}, run.stdout[-3000:]
    assert run.failure("w1.example").startswith("NodeNameMismatch: ")


def test_no_tag_skips_the_verified_join(commissioned: Commissioned, tmp_path: Path) -> None:
    # A running cluster, commissioned once for several tests (tests/playbooks/conftest.py).
    sandbox = commissioned.copy(
        tmp_path / "sandbox", ("m1", inventory.MASTER), ("w1", inventory.WORKER)
    )
    master = sandbox.host("m1", inventory.MASTER)
    worker = sandbox.host("w2")

    # Everything but the join skipped, on a fresh worker: the join still runs, is judged, and
    # fails for what it is (kubeadm's preflight finds nothing installed).
    run = sandbox.run(
        COMMISSION,
        sandbox.inventory([worker], [master]),
        skip_tags=EVERY_TAG,
        **FAST | NO_CNI | {"clusterm_join_retries": 1},
    )

    assert run.outcome() == {"w2": "failed"}, run.stdout[-3000:]
    [attempt] = run.reports("join_attempt")["w2"]
    assert attempt["outcome"] == "join_failed"
    assert "preflight" in attempt["evidence"]["stderr_tail"]
    assert run.failure("w2").startswith("JoinFailed: ")
