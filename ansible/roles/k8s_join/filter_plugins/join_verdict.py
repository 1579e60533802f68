"""The verdict on one join attempt of the verified join (tasks/attempt.yml).

`clusterm_join_verdict` turns what an attempt registered (kubeadm join's result, the check from a
master, the control plane's DeletingNode events) into the attempt's report: its outcome, the
timeline's reason, a sentence saying what happened, and the evidence. Outcomes:

- joined: the Node appeared and kept its UID for the stability window (verification exit 0);
- vanished (NodeVanishedAfterJoin): it registered, then went (exit 3) or came back under a new UID
  (exit 4, deleted and re-created in between); or it never showed (exit 2) while the control plane
  recorded deleting it during this attempt: registered and deleted between two looks;
- not_registered (JoinFailed): kubeadm join succeeded, the Node never appeared, and nothing
  deleted it;
- join_failed (JoinFailed): kubeadm join failed (exit 124: `timeout` stopped it).

kubeadm may print the join token, the CA certificate hash or the certificate key: `secret_re` (the
role's `clusterm_kubeadm_secret_re`) is cut out of its stderr before the report holds any of it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

STDERR_TAIL_CHARS = 600
VERIFY_JOINED, VERIFY_NEVER_SEEN, VERIFY_RECREATED = 0, 2, 4
TIMEOUT_RC = 124  # the exit code of `timeout` when it stops kubeadm join
REASONS = {"joined": "", "vanished": "NodeVanishedAfterJoin"}  # any other outcome: JoinFailed


def _rc(result: Mapping[str, Any] | None) -> int | None:
    """A registered command's exit code; None when the task was skipped or has none."""
    if not isinstance(result, Mapping) or result.get("skipped"):
        return None
    rc = result.get("rc")
    return int(rc) if isinstance(rc, int | float | str) and str(rc).lstrip("-").isdigit() else None


def deleting_events(events: Mapping[str, Any] | None, since_iso: str) -> list[dict[str, Any]]:
    """The DeletingNode events of `kubectl get events -o json` last seen at or after `since_iso`.

    Timestamps are RFC 3339 in UTC with whole seconds (`2024-05-01T10:00:00Z`), as Kubernetes
    writes them, so they compare as strings. No answer (skipped, failed, not JSON) is no event:
    the question was for the evidence, and the outcome must not hang on it."""
    if _rc(events) != 0 or not isinstance(events, Mapping):
        return []
    try:
        document = json.loads(str(events.get("stdout") or "{}"))
    except ValueError:
        return []
    items = document.get("items") if isinstance(document, dict) else None
    return [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
        and isinstance(item.get("lastTimestamp"), str)
        and item["lastTimestamp"] >= since_iso
    ]


def seconds_from_delta(delta: object) -> float | None:
    """Ansible's command `delta` ("0:00:14.203456") in seconds, to a tenth; None without one."""
    if not isinstance(delta, str):
        return None
    try:
        hours, minutes, seconds = delta.split(":")
        return round(float(hours) * 3600 + float(minutes) * 60 + float(seconds), 1)
    except ValueError:
        return None


def join_verdict(
    join: Mapping[str, Any],
    *,
    verify: Mapping[str, Any] | None = None,
    events: Mapping[str, Any] | None = None,
    node: str,
    attempt: int,
    retries: int,
    started: float,
    started_iso: str,
    stability_window: object,
    register_timeout: object,
    join_timeout: object,
    secret_re: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The attempt's report: {node, attempt, of, outcome, reason, duration_s, seconds_registered,
    detail, evidence: {rc, stderr_tail, event}, summary} (ansible/README.md)."""
    attempt, retries = int(attempt), int(retries)
    join_rc = _rc(join)
    verify_rc = _rc(verify)
    found = deleting_events(events, started_iso)
    event = str(found[-1].get("message") or "") if found else ""
    # The watch starts as the Node registers: its duration is about how long the Node lived.
    watched = seconds_from_delta(verify.get("delta")) if isinstance(verify, Mapping) else None

    if join_rc != 0:
        outcome = "join_failed"
    elif verify_rc == VERIFY_JOINED:
        outcome = "joined"
    elif verify_rc == VERIFY_NEVER_SEEN and not found:
        outcome = "not_registered"
    else:
        outcome = "vanished"

    if outcome == "joined":
        detail = f"joined; the Node stayed with the same UID for {stability_window} s"
    elif outcome == "vanished":
        if watched is not None and verify_rc != VERIFY_NEVER_SEEN:
            detail = f"the Node vanished {watched} s after registering"
        else:
            detail = "the Node registered and was deleted before a master could see it"
        if verify_rc == VERIFY_RECREATED:
            detail += " (re-created with a new UID)"
    elif outcome == "not_registered":
        detail = f"kubeadm join succeeded but the Node did not appear within {register_timeout} s"
    elif join_rc == TIMEOUT_RC:
        detail = f"kubeadm join timed out after {join_timeout} s"
    else:
        detail = f"kubeadm join exited with code {join_rc}"

    stderr_tail = ""
    if outcome == "join_failed":
        stderr = str(join.get("stderr") or "")
        stderr_tail = re.sub(secret_re, "[hidden]", stderr)[-STDERR_TAIL_CHARS:]

    if outcome == "joined":
        next_step = ""
    elif attempt < retries:
        next_step = "; resetting and retrying"
    else:
        next_step = "; no attempts left"

    finished = time.time() if now is None else now
    return {
        "node": node,
        "attempt": attempt,
        "of": retries,
        "outcome": outcome,
        "reason": REASONS.get(outcome, "JoinFailed"),
        "duration_s": round(finished - float(started), 1),
        "seconds_registered": watched if outcome in ("joined", "vanished") else None,
        "detail": detail,
        "evidence": {"rc": join_rc, "stderr_tail": stderr_tail, "event": event},
        "summary": f"attempt {attempt} of {retries}: {detail}{next_step}",
    }


class FilterModule:
    """Ansible's entry point for the role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"clusterm_join_verdict": join_verdict}
