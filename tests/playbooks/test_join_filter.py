"""The verified join's verdict on one attempt (roles/k8s_join/filter_plugins/join_verdict.py), for
every outcome and edge, on the registered results the role's tasks hand it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.playbooks.conftest import PLAYBOOK_DIR

ROLE = PLAYBOOK_DIR / "roles" / "k8s_join"


def _load(path: Path) -> ModuleType:
    # Ansible loads the role's filter plugins by path, not as a package: so do the tests.
    spec = importlib.util.spec_from_file_location("join_verdict", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plugin = _load(ROLE / "filter_plugins" / "join_verdict.py")
SECRET_RE = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())[
    "clusterm_kubeadm_secret_re"
]
STARTED = 1_700_000_000.0
STARTED_ISO = "2023-11-14T22:13:20Z"
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "fedcba9876543210" * 4


def skipped() -> dict[str, Any]:
    return {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def command(
    rc: int, stdout: str = "", stderr: str = "", delta: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"changed": False, "rc": rc, "stdout": stdout, "stderr": stderr}
    if delta is not None:
        result["delta"] = delta
    return result


def deleting(
    *timestamps: str, message: str = "Deleting Node n1 because it's gone"
) -> dict[str, Any]:
    items = [
        {"reason": "DeletingNode", "message": f"{message} ({at})", "lastTimestamp": at}
        for at in timestamps
    ]
    return command(0, json.dumps({"kind": "EventList", "items": items}))


def verdict(
    join: dict[str, Any],
    verify: dict[str, Any] | None = None,
    events: dict[str, Any] | None = None,
    *,
    attempt: int = 1,
    retries: int = 3,
) -> dict[str, Any]:
    result: dict[str, Any] = plugin.join_verdict(
        join,
        verify=skipped() if verify is None else verify,
        events=skipped() if events is None else events,
        node="n1",
        attempt=attempt,
        retries=retries,
        started=STARTED,
        started_iso=STARTED_ISO,
        stability_window=90,
        register_timeout=60,
        join_timeout=300,
        secret_re=SECRET_RE,
        now=STARTED + 12.34,
    )
    return result


def test_joined_when_the_node_kept_its_uid_for_the_window() -> None:
    result = verdict(command(0), command(0, "stable", delta="0:01:30.412000"))
    assert result == {
        "node": "n1",
        "attempt": 1,
        "of": 3,
        "outcome": "joined",
        "reason": "",
        "duration_s": 12.3,
        "seconds_registered": 90.4,
        "detail": "joined; the Node stayed with the same UID for 90 s",
        "evidence": {"rc": 0, "stderr_tail": "", "event": ""},
        "summary": "attempt 1 of 3: joined; the Node stayed with the same UID for 90 s",
    }


def test_vanished_when_the_node_went_and_the_control_plane_says_why() -> None:
    events = deleting("2023-11-14T22:13:19Z", "2023-11-14T22:13:25Z", "2023-11-14T22:13:31Z")
    result = verdict(command(0), command(3, delta="0:00:14.25"), events)
    assert result["outcome"] == "vanished"
    assert result["reason"] == "NodeVanishedAfterJoin"
    assert result["seconds_registered"] == 14.2  # Python rounds half to even, as Jinja's round
    assert result["detail"] == "the Node vanished 14.2 s after registering"
    # The last event since the attempt started; one from before it is not this attempt's.
    assert result["evidence"] == {
        "rc": 0,
        "stderr_tail": "",
        "event": "Deleting Node n1 because it's gone (2023-11-14T22:13:31Z)",
    }
    assert result["summary"] == (
        "attempt 1 of 3: the Node vanished 14.2 s after registering; resetting and retrying"
    )


def test_vanished_and_re_created_under_a_new_uid() -> None:
    result = verdict(command(0), command(4, delta="0:00:03.000001"), command(0, '{"items": []}'))
    assert result["outcome"] == "vanished"
    assert result["detail"] == (
        "the Node vanished 3.0 s after registering (re-created with a new UID)"
    )
    assert result["evidence"]["event"] == ""


def test_vanished_before_a_master_could_see_it_when_an_event_says_it_was_deleted() -> None:
    events = deleting("2023-11-14T22:13:20Z")  # the very second the attempt started: this one's
    result = verdict(command(0), command(2, delta="0:01:00.1"), events, attempt=3, retries=3)
    assert result["outcome"] == "vanished"
    assert result["reason"] == "NodeVanishedAfterJoin"
    assert result["detail"] == "the Node registered and was deleted before a master could see it"
    assert result["seconds_registered"] == 60.1
    assert result["summary"].endswith("; no attempts left")


def test_not_registered_when_the_node_never_showed_and_nothing_deleted_it() -> None:
    events = deleting("2023-11-14T22:13:19Z")  # an earlier attempt's deletion only
    result = verdict(command(0), command(2, delta="0:01:00.0"), events)
    assert result["outcome"] == "not_registered"
    assert result["reason"] == "JoinFailed"
    assert result["detail"] == "kubeadm join succeeded but the Node did not appear within 60 s"
    assert result["seconds_registered"] is None
    assert result["evidence"] == {"rc": 0, "stderr_tail": "", "event": ""}


def test_join_failed_with_kubeadm_s_exit_code_and_its_stderr_without_secrets() -> None:
    stderr = (
        f"kubeadm join 10.0.0.1:6443 --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH} "
        f"--certificate-key {CERT_KEY}\nerror execution phase kubelet-start: timed out waiting"
    )
    result = verdict(command(1, stderr=stderr), attempt=2, retries=2)
    assert result["outcome"] == "join_failed"
    assert result["reason"] == "JoinFailed"
    assert result["detail"] == "kubeadm join exited with code 1"
    assert result["seconds_registered"] is None
    tail = result["evidence"]["stderr_tail"]
    for secret in (TOKEN, CA_HASH[len("sha256:") :], CERT_KEY):
        assert secret not in tail
    assert tail == (
        "kubeadm join 10.0.0.1:6443 --token [hidden] --discovery-token-ca-cert-hash [hidden] "
        "--certificate-key [hidden]\nerror execution phase kubelet-start: timed out waiting"
    )
    assert result["evidence"]["rc"] == 1
    assert result["summary"] == "attempt 2 of 2: kubeadm join exited with code 1; no attempts left"


def test_join_failed_keeps_the_last_600_characters_of_stderr() -> None:
    stderr = "x" * 1000 + "the end"
    tail = verdict(command(1, stderr=stderr))["evidence"]["stderr_tail"]
    assert len(tail) == 600
    assert tail.endswith("the end")


def test_join_timed_out_is_exit_124() -> None:
    result = verdict(command(124, stderr="[preflight] Running pre-flight checks"))
    assert result["outcome"] == "join_failed"
    assert result["detail"] == "kubeadm join timed out after 300 s"
    assert result["evidence"]["rc"] == 124


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(None, id="not asked (skipped)"),
        pytest.param(command(1, stderr="the server is unavailable"), id="kubectl failed"),
        pytest.param(command(0, "<html>502 Bad Gateway</html>"), id="not JSON"),
        pytest.param(command(0, '["items"]'), id="JSON, not an object"),
        pytest.param(command(0, '{"items": [{"message": "no time"}, 3]}'), id="odd items"),
        pytest.param(command(0, ""), id="empty"),
    ],
)
def test_no_usable_answer_about_events_is_no_event(events: dict[str, Any] | None) -> None:
    # The Node never showed and nothing says it was deleted: not registered, not a crash.
    result = verdict(command(0), command(2, delta="0:01:00.0"), events)
    assert result["outcome"] == "not_registered"
    assert result["evidence"]["event"] == ""
    # Gone after it was seen: vanished, whatever the events said.
    result = verdict(command(0), command(3, delta="0:00:05.0"), events)
    assert result["outcome"] == "vanished"
    assert result["evidence"]["event"] == ""


def test_a_check_without_a_duration_says_the_node_was_deleted_unseen() -> None:
    # No `delta` in the registered result (a check that never ran its command).
    result = verdict(command(0), {"rc": 3, "stdout": "gone"})
    assert result["outcome"] == "vanished"
    assert result["seconds_registered"] is None
    assert result["detail"] == "the Node registered and was deleted before a master could see it"


def test_values_as_ansible_passes_them() -> None:
    # Extra vars and facts may arrive as strings; the report's numbers are numbers all the same.
    result = plugin.join_verdict(
        command(0),
        verify=command(0, delta="0:00:02.0"),
        events=skipped(),
        node="n1",
        attempt="2",
        retries="5",
        started="1700000000.5",
        started_iso=STARTED_ISO,
        stability_window="2",
        register_timeout="5",
        join_timeout="20",
        secret_re=SECRET_RE,
        now=1_700_000_003.0,
    )
    assert (result["attempt"], result["of"], result["duration_s"]) == (2, 5, 2.5)
    assert result["summary"] == "attempt 2 of 5: joined; the Node stayed with the same UID for 2 s"


def test_the_plugin_offers_the_filter_the_role_uses() -> None:
    filters = plugin.FilterModule().filters()
    assert filters["clusterm_join_verdict"] is plugin.join_verdict
    assert "clusterm_join_verdict(" in (ROLE / "tasks" / "attempt.yml").read_text()
