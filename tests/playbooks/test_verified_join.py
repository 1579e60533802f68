"""The verified join (docs/contracts.md#vanishing-node) over real SSH: a simulated cloud node
controller deletes freshly joined Nodes, and the commission playbook retries within its bounds and
says what happened."""

from __future__ import annotations

from app.ansible.taskresults import task_result
from app.jobs.results import ResultsRecorder
from app.jobs.vocabulary import FailureReason, Status
from tests.hosts.fixture import SshHosts
from tests.playbooks.conftest import FAST_JOIN, run_playbook

RETRIES = FAST_JOIN["clusterm_join_retries"]


def test_verified_join_retries_vanishing_nodes_and_refuses_name_mismatches(
    ssh_hosts: SshHosts,
) -> None:
    fqdns = {"node4": "ip-10-0-0-7.ec2.internal", "node5": "ip-10-0-0-8.ec2.internal"}
    master, _flaky, lost, misnamed, overridden = ssh_hosts.start(5, fqdns=fqdns)
    overridden.extra_vars["clusterm_allow_name_mismatch"] = True  # no cloud provider there
    ssh_hosts.cluster.vanish("node2", joins=RETRIES - 1, after=0.5)  # K < retries
    ssh_hosts.cluster.vanish("node3", joins=RETRIES, after=0.5)  # K >= retries
    ssh_hosts.cluster.refuse_joins("node5", times=1)  # kubeadm join itself fails, once

    run = run_playbook(
        ssh_hosts,
        "commission.yml",
        ssh_hosts.inventory(ssh_hosts.hosts.values()),
        clusterm_join_backoff=1,  # a real wait between attempts
    )

    assert run.outcome() == {
        "node1": "ok",
        "node2": "ok",
        "node3": "failed",
        "node4": "failed",
        "node5": "ok",
    }, run.stdout[-3000:]
    attempts = run.reports("join_attempt")
    # node2: K vanishes, then attempt K+1 sticks. Every attempt is numbered, in order.
    assert [a["attempt"] for a in attempts["node2"]] == list(range(1, RETRIES + 1))
    assert [a["outcome"] for a in attempts["node2"]] == ["vanished"] * (RETRIES - 1) + ["joined"]
    assert attempts["node2"][0]["reason"] == "NodeVanishedAfterJoin"
    summary = attempts["node2"][0]["summary"]
    assert summary.startswith(f"attempt 1 of {RETRIES}: the Node vanished ")
    assert summary.endswith(" s after registering; resetting and retrying")
    assert (
        "because it's not present according to cloud provider"
        in (attempts["node2"][0]["evidence"]["event"])
    )
    # node3: every attempt vanished; the node fails with the reason and the control plane's word.
    assert [a["outcome"] for a in attempts["node3"]] == ["vanished"] * RETRIES
    assert attempts["node3"][-1]["summary"].endswith("; no attempts left")
    message = run.failure("node3")
    assert message.startswith(f"NodeVanishedAfterJoin: node3 did not join after {RETRIES} attempt")
    assert (
        'control plane: "Deleting Node node3 because it\'s not present according to cloud provider"'
        in message
    )
    (result,) = run.reports("join_result")["node3"]
    assert result["reason"] == "NodeVanishedAfterJoin"
    assert result["attempts"] == RETRIES
    # node4: its name is not its FQDN: refused before anything was installed or joined.
    message = run.failure("node4")
    assert message.startswith(
        "NodeNameMismatch: the node name node4 differs from the host's FQDN "
        "ip-10-0-0-7.ec2.internal"
    )
    assert "clusterm_allow_name_mismatch" in message
    assert "node4" not in attempts
    assert ssh_hosts.cluster.joins("node4") == 0
    assert not (misnamed.root / "var/lib/fakehost/host.json").exists()
    # node5: the same mismatch, with the operator's override: joined, at the second attempt.
    failed, joined = attempts["node5"]
    assert joined["outcome"] == "joined"
    assert failed["outcome"] == "join_failed"
    assert failed["reason"] == "JoinFailed"
    assert failed["evidence"]["rc"] == 1
    assert "timed out waiting for the condition" in failed["evidence"]["stderr_tail"]
    assert failed["summary"] == (
        f"attempt 1 of {RETRIES}: kubeadm join exited with code 1; resetting and retrying"
    )
    # What the timeline's HostFailed says of node3 and node4 (app.jobs.results), from these
    # very events as the runner's process turns them into task results.
    recorder = ResultsRecorder(job_id=1, all_tasks=True)
    recorder.add(r for e in run.events if (r := task_result(e)) is not None)
    recap = {h: {"failed": 1} for h in ("node3", "node4")}
    why = recorder.failures(status=Status.FAILED, hosts=recap, running={}, names=recap)
    assert why["node3"].reason == FailureReason.NODE_VANISHED_AFTER_JOIN
    assert why["node3"].task == "Fail the node after the last attempt"
    assert why["node3"].message is not None
    assert why["node3"].message.startswith(f"node3 did not join after {RETRIES} attempt")
    assert why["node4"].reason == FailureReason.NODE_NAME_MISMATCH
    assert (
        why["node4"]
        .note()
        .startswith(
            "NodeNameMismatch in task 'Refuse a node name that differs from the FQDN': the node "
            "name node4 differs"
        )
    )
    # The control plane agrees.
    assert set(ssh_hosts.cluster.nodes()) == {"node1", "node2", "node5"}
    assert ssh_hosts.cluster.joins("node2") == RETRIES
    assert ssh_hosts.cluster.joins("node3") == RETRIES

    # The cleanup playbook (run by clusterm after a failed commission) leaves node3 ready to retry.
    run = run_playbook(ssh_hosts, "cleanup.yml", ssh_hosts.inventory([lost], masters=[master]))
    assert run.outcome()["node3"] == "ok", run.stdout[-3000:]
    assert not (lost.root / "etc/kubernetes").exists()
    assert "node3" not in ssh_hosts.cluster.nodes()
