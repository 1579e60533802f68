"""The role boundary of a job, crossed as an attacker would: what an operator may send (declared,
typed extra vars only), and that nothing any role sends is ever evaluated by Ansible's templating.

Real Ansible runs the jobs (a local-connection playbook, tests/jobs/playbooks/boundary.yml); each
template sent holds `lookup('pipe', 'touch MARKER')`, so a template Ansible evaluated, or a
connection override that took effect, leaves a file behind.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml
from fastapi.testclient import TestClient

from app.ansible import inventory, unsafe
from app.config import Settings, SettingsError, load_settings
from app.operator_vars import KNOBS
from tests.jobs.conftest import (
    LOCAL_VARS,
    PLAYBOOKS,
    job_processes,
    job_settings,
    local_node,
    register,
    states,
    wait_finished,
    wait_lines,
)

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def template(marker: Path) -> str:
    return f"{{{{ lookup('pipe', 'touch {marker}') }}}}"


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path, db_url: str, markers: Path) -> Settings:
    return job_settings(
        data_dir,
        db_url,
        commission_playbook="boundary.yml",
        update_playbook="boundary.yml",
        discover_playbook="boundary.yml",
        extra_vars={"settings_probe": template(markers / "settings")},
        operator_extra_vars={
            "sleep_s": {"type": "int", "min": 0, "max": 600},
            "batch_note": {"type": "str", "max_length": 8},
            "dry_run": {"type": "bool"},
        },
    )


def timeline(client: TestClient, reason: str) -> list[dict[str, Any]]:
    items = client.get("/info/timeline", params={"limit": 500}).json()["items"]
    return [e for e in items if e["reason"] == reason]


def log_text(client: TestClient) -> str:
    text: str = client.get("/info/job/last", params={"format": "text", "color": "false"}).text
    return text


# --- what an operator may send ------------------------------------------------------------------


ADMIN_ONLY_ATTEMPTS = [
    # a connection override: the playbook would run on the daemon's host
    {"ansible_connection": "local"},
    {"ansible_host": "10.0.0.9"},
    # what runs and where things go
    {"clusterm_env": {"X": "y"}},
    {"clusterm_kubectl": "sh -c id"},
    {"clusterm_node_root": "/etc"},
    {"clusterm_first_master": "w1"},
    {"clusterm_k8s_apt_repo": "http://evil.example/"},
    {"clusterm_cni_manifest_url": "http://evil.example/cni.yml"},
    {"clusterm_allow_name_mismatch": True},
    # a name the playbooks register themselves, and one nobody declared
    {"clusterm_join_command": {"stdout_lines": ["sh -c id"]}},
    {"whatever": 1},
]


@pytest.mark.parametrize("extra_vars", ADMIN_ONLY_ATTEMPTS, ids=lambda v: next(iter(v)))
def test_an_operator_sending_an_admin_only_var_gets_a_403_and_nothing_happens(
    admin: TestClient, as_role: Any, markers: Path, extra_vars: dict[str, Any]
) -> None:
    # A local node: were the request accepted, its job would run here and now.
    register(admin, local_node("m1", "master"))
    (name,) = extra_vars
    attempt = {**extra_vars, "probe": template(markers / "operator")}

    for path, body in [
        ("/commission/nodes", {"nodes": ["m1"]}),
        ("/update/nodes", {"nodes": ["m1"]}),
        ("/decommission/nodes", {"nodes": ["m1"]}),
        ("/discover/nodes", {"addrs": ["127.0.0.1"]}),
    ]:
        response = admin.post(
            path, json={**body, "extra_vars": attempt}, headers=as_role("operator")
        )
        assert response.status_code == 403, (path, response.text)
        refusal = response.json()
        assert refusal["variables"] == sorted([name, "probe"])
        assert refusal["required_role"] == "admin"
        assert name in refusal["message"]
        assert "admin role" in refusal["message"]

    assert admin.get("/jobs").json() == []
    assert states(admin) == {"m1": "registered"}
    events = admin.get("/info/timeline").json()["items"]
    reasons = {e["reason"] for e in events}
    assert not reasons & {"JobAccepted", "JobStarted", "StateChanged"}
    assert list(markers.iterdir()) == []
    # The attempt is on the audit trail: one event for the minute, the next three counted.
    refusals = [e for e in events if e["action"] == "authorize" and e["actor"] == "operator"]
    assert len(refusals) == 1, refusals
    assert refusals[0]["audit"] is True
    assert name in refusals[0]["note"]


WRONG_VALUES = [
    ("clusterm_join_poll", "1; touch x", "an integer from 1 to 300"),
    ("clusterm_join_poll", True, "an integer from 1 to 300"),
    ("clusterm_join_poll", 2.5, "an integer from 1 to 300"),
    ("clusterm_join_poll", 0, "an integer from 1 to 300"),
    ("clusterm_join_retries", 21, "an integer from 1 to 20"),
    ("clusterm_drain_timeout", -1, "an integer from 1 to 14400"),
    ("clusterm_join_timeout", None, "an integer from 1 to 3600"),
    ("clusterm_join_backoff", [1], "an integer from 0 to 3600"),
    ("batch_note", "123456789", "a string of at most 8 characters"),
    ("batch_note", 12, "a string of at most 8 characters"),
    ("dry_run", "true", "true or false"),
]


def test_an_operator_value_of_the_wrong_type_is_a_422_naming_the_var_and_its_type(
    admin: TestClient, as_role: Any
) -> None:
    register(admin, local_node("m1", "master"))
    for name, value, expected in WRONG_VALUES:
        for path, body in [
            ("/commission/nodes", {"nodes": ["m1"]}),
            ("/discover/nodes", {"addrs": ["127.0.0.1"]}),
        ]:
            response = admin.post(
                path, json={**body, "extra_vars": {name: value}}, headers=as_role("operator")
            )
            assert response.status_code == 422, (name, value, response.text)
            error = response.json()
            assert error["variable"] == name
            assert f"extra var {name} must be {expected}" in error["message"]
            if error["type"] == "int":
                low, high = re.findall(r"\d+", expected)
                assert (error["min"], error["max"]) == (int(low), int(high))
            # A value is never echoed back into an error (it may be a secret).
            if isinstance(value, str):
                assert f"got a string of {len(value)} characters" in error["message"]
    assert admin.get("/jobs").json() == []


def test_an_operator_may_send_the_declared_vars_and_the_timeline_records_their_names(
    admin: TestClient, as_role: Any, markers: Path
) -> None:
    register(admin, local_node("m1", "master"), local_node("w1"))
    knobs = {name: spec.min or 1 for name, spec in KNOBS.items()}
    declared = {"batch_note": "12345678", "dry_run": False, "sleep_s": 0}
    response = admin.post(
        "/commission/nodes",
        json={"nodes": ["m1"], "extra_vars": {**knobs, **declared}},
        headers=as_role("operator"),
    )
    assert response.status_code == 202, response.text
    assert wait_finished(admin, response.json()["id"])["status"] == "successful"
    (accepted,) = timeline(admin, "JobAccepted")
    assert accepted["actor"] == "operator"
    assert accepted["details"] == {"extra_vars": sorted({**knobs, **declared})}
    assert "12345678" not in json.dumps(accepted)

    # An admin may send anything; the timeline records the names the same way, never a value.
    response = admin.post(
        "/commission/nodes",
        json={"nodes": ["w1"], "extra_vars": {"ansible_become_password": "hunter2", "x": 1}},
    )
    assert response.status_code == 202, response.text
    wait_finished(admin, response.json()["id"])
    events = timeline(admin, "JobAccepted")
    assert events[0]["details"] == {"extra_vars": ["ansible_become_password", "x"]}
    assert "hunter2" not in json.dumps(events)
    assert list(markers.iterdir()) == []


def test_the_settings_refuse_to_declare_an_admin_only_var(tmp_path: Path) -> None:
    for name in ("ansible_connection", "clusterm_env", "clusterm_k8s_minor", "clusterm_kubectl",
                 "clusterm_join_command", "item", "hostvars", "bad name"):  # fmt: skip
        with pytest.raises(SettingsError, match="operator_extra_vars"):
            load_settings(data_dir=tmp_path, operator_extra_vars={name: {"type": "bool"}})
    for spec in ({"type": "int"}, {"type": "int", "min": 5, "max": 1}, {"type": "bool", "max": 3},
                 {"type": "str", "max_length": 0}, {"type": "list"}):  # fmt: skip
        with pytest.raises(SettingsError, match="operator_extra_vars"):
            load_settings(data_dir=tmp_path, operator_extra_vars={"my_var": spec})
    # A knob's bounds may be widened by the admin who runs clusterm.
    widened = {"clusterm_drain_timeout": {"type": "int", "min": 1, "max": 86_400}}
    assert load_settings(data_dir=tmp_path, operator_extra_vars=widened).operator_extra_vars


# --- nothing is a template ----------------------------------------------------------------------


def test_no_template_from_any_source_is_evaluated(
    admin: TestClient, markers: Path, data_dir: Path
) -> None:
    """Node vars, globals, the settings' and an admin's extra vars, at any depth, as keys."""
    node = local_node("m1", "master")
    node["vars"] |= {"node_probe": template(markers / "node")}
    register(admin, node)
    put = admin.put("/globals", json={"extra_vars": {"global_probe": template(markers / "global")}})
    assert put.status_code == 200
    request_vars = {
        "probe": template(markers / "extra"),
        "key_probe": {template(markers / "key"): "x", "k": [{"deep": template(markers / "deep")}]},
        "clusterm_env": {"PROBE": template(markers / "env")},
    }
    response = admin.post("/commission/nodes", json={"nodes": ["m1"], "extra_vars": request_vars})
    assert response.status_code == 202, response.text
    job = wait_finished(admin, response.json()["id"])
    text = log_text(admin)
    assert job["status"] == "successful", text

    assert list(markers.iterdir()) == []
    # The job saw each value as the literal text that was sent.
    for source in ("extra", "node", "global", "settings"):
        assert f"{source}={template(markers / source)}" in text.replace("\n", " ")
    assert f"keys={template(markers / 'key')},k" in text
    shell = " ".join(template(markers / name) for name in ("extra", "node", "env"))
    assert f"shell={shell}" in text

    # The files behind it: private, and every string tagged.
    run_dir = data_dir / "jobs" / str(job["id"]) / "main"
    for path in (run_dir / "inventory" / "hosts.yml", run_dir / "env" / "extravars"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert untagged_strings(path.read_text()) == []


def test_an_untagged_file_would_run_the_template(markers: Path, tmp_path: Path) -> None:
    """The control for the test above: the same playbook, the same values in plain YAML, and
    Ansible runs the lookups. Tagged, it does not."""
    values = {"probe": template(markers / "plain"), "clusterm_env": {}}
    hosts = {"all": {"children": {"targets": {"hosts": {"h": {**LOCAL_VARS}}}}}}

    def run(name: str, dump: Any) -> None:
        private = tmp_path / name
        (private / "env").mkdir(parents=True)
        (private / "env" / "extravars").write_text(dump(values))
        (private / "hosts.yml").write_text(dump(hosts))
        result = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(PLAYBOOKS / "boundary.yml"),
            inventory=str(private / "hosts.yml"),
            envvars={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
            quiet=True,
            cancel_callback=lambda: False,
        )
        assert result.status == "successful"

    run("plain", yaml.safe_dump)
    assert [p.name for p in markers.iterdir()] == ["plain"]
    (markers / "plain").unlink()
    run("tagged", unsafe.dump)
    assert list(markers.iterdir()) == []


def test_tagged_values_reach_a_playbook_as_the_same_strings(tmp_path: Path) -> None:
    """Tagging must not change a value: ansible-core types a tagged scalar as YAML would an
    unquoted one (`!unsafe ''` is null, which broke `| length` in the shipped playbooks), so
    strings that look like other types must still arrive as the same strings."""
    values = {
        "empty": "",
        "null_word": "null",
        "yes_word": "yes",
        "digits": "1",
        "a_float": "1.5",
        "a_date": "2001-12-14",
        "text": "x",
        "braces": "{{ not evaluated }}",
    }
    playbook = tmp_path / "types.yml"
    checks = [f"{name} is string and {name} == {value!r}" for name, value in values.items()]
    checks[-1] = "braces is string and braces | length == 19"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.assert": {"that": [*checks, "empty | length == 0"]}}
                    ],
                }
            ]
        )
    )
    private = tmp_path / "run"
    (private / "env").mkdir(parents=True)
    unsafe.write(private / "env" / "extravars", values)
    hosts = unsafe.write(private / "hosts.yml", {"all": {"hosts": {"h": {**LOCAL_VARS}}}})
    result = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(playbook),
        inventory=str(hosts),
        envvars={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        quiet=True,
        cancel_callback=lambda: False,
    )
    assert result.status == "successful", [e.get("stdout") for e in result.events]


def test_the_extra_vars_are_not_on_the_command_line(admin: TestClient, data_dir: Path) -> None:
    """Any local user reads a command line in `ps`: the values must not be there."""
    register(admin, local_node("m1", "master"))
    secret = "s3cret-in-an-extra-var"
    body = {"nodes": ["m1"], "extra_vars": {"probe": secret, "sleep_s": 30}, "cleanup": False}
    job = admin.post("/commission/nodes", json=body).json()
    wait_lines(admin, "TASK [Wait]")
    job_dir = data_dir / "jobs" / str(job["id"])
    pids = job_processes(job_dir)
    assert pids
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert secret not in cmdline
        assert "sleep_s" not in cmdline
    assert admin.post("/info/job/active/cancel").json()["status"] == "canceled"


def test_inventory_strings_are_tagged_whatever_their_source() -> None:
    """Discover's addresses and users, and every host var, are data in the generated inventory."""
    addresses = [inventory.Address(host="fe80::1%eth0", port=22, user="root")]
    text = unsafe.dump(inventory.address_inventory(addresses))
    assert untagged_strings(text) == []
    assert "!unsafe 'fe80::1%eth0'" in text


def untagged_strings(text: str) -> list[str]:
    """The strings of a YAML document that are not tagged `!unsafe`, keys included, leaving
    out those YAML would read as another type unquoted ("", "null", "1"...): Ansible reads these
    so even tagged, and they cannot hold a template."""
    found: list[str] = []
    resolver = yaml.resolver.Resolver()

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            plain_tag = resolver.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
            if node.tag == "tag:yaml.org,2002:str" and plain_tag == node.tag:
                found.append(node.value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    document = yaml.compose(text, Loader=yaml.SafeLoader)
    assert document is not None, "an empty document"
    walk(document)
    return found


def test_a_discover_of_long_addresses_fits_the_job_row(admin: TestClient) -> None:
    """Ten 253-character names overflow job.desc (1,024 characters): the description shortens."""
    label = "a" * 63
    names = [f"{label}.{label}.{label}.h{i:03d}{'b' * 57}" for i in range(40)]
    assert all(len(n) == 253 for n in names)
    response = admin.post("/discover/nodes", json={"addrs": names})
    assert response.status_code == 202, response.text
    job = response.json()
    assert len(job["desc"]) <= 1024
    assert job["desc"].startswith(f"discover addresses {names[0]}")
    assert job["desc"].endswith(" more")
    assert job["nodes"] == names
    admin.post("/info/job/active/cancel")
