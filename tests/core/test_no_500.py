"""Inputs found to answer 500, each now a 4xx whose message names what was wrong, on SQLite and
PostgreSQL; nothing already stored is lost. Against the real daemon on a loopback port, because
some of them go to the streams.

Each test sends every variant of one kind of input and lists all the answers that are wrong, so
one run shows every route still affected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import load_settings
from tests.conftest import node_body
from tests.core.live import end_jobs, serve
from tests.jobs.conftest import wait_finished

FUZZ_PLAYBOOKS = Path(__file__).parent / "fuzz_playbooks"
PLAYBOOKS = ("decommission", "update", "cleanup", "discover", "cluster_nodes")
DIGITS = "9" * 5000  # past Python's 4,300-digit limit on int(), and any column's range
NUL_NAME = "a\x00b"


@pytest.fixture
def live(tmp_path: Path, db_url: str) -> Iterator[httpx.Client]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        # Jobs stay on this machine: `hosts: localhost`, local connection. A commission waits
        # until it is canceled, for the job stream's tests.
        playbook_dir=FUZZ_PLAYBOOKS,
        commission_playbook="wait.yml",
        **{f"{kind}_playbook": "local.yml" for kind in PLAYBOOKS},
        ansible_env={"ANSIBLE_SSH_EXECUTABLE": "/bin/false"},
        job_timeout_s=120,
        drift_interval_s=0,
    )
    with serve(settings, timeout_s=30) as http:
        assert (
            http.post(
                "/nodes", json=node_body("n1", host_group="master", vars={"kept": 1})
            ).status_code
            == 201
        )
        yield http


@dataclass
class Try:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None  # JSON, or bytes sent as they are (JSON that json.dumps would not write)
    headers: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # the message must say one of these (case does not matter)

    def label(self) -> str:
        query = f"?{'&'.join(f'{k}=…' for k in self.params)}" if self.params else ""
        headers = f" with {', '.join(self.headers)}" if self.headers else ""
        return f"{self.method} {self.path[:60]}{query}{headers}"


def send(http: httpx.Client, attempt: Try) -> tuple[int, str]:
    # A connection of its own: after a 500 uvicorn closes the connection, and the next request
    # on it would fail for that one's reason.
    headers = {**attempt.headers, "Connection": "close"}
    request: dict[str, Any] = {"params": attempt.params, "headers": headers}
    if isinstance(attempt.body, bytes):
        request["content"] = attempt.body
        headers["Content-Type"] = "application/json"
    elif attempt.body is not None:
        request["json"] = attempt.body
    # Streamed, so that a stream that starts (200) is seen as such instead of read for ever.
    try:
        with http.stream(attempt.method, attempt.path, **request) as response:
            if response.status_code == 200 and attempt.path.endswith("/stream"):
                return 200, "(a stream started)"
            return response.status_code, response.read().decode(errors="replace")
    except httpx.TransportError as exc:  # the daemon broke the connection off
        return 599, f"no answer: {type(exc).__name__}: {exc}"


def wrong_answers(http: httpx.Client, attempts: list[Try]) -> list[str]:
    """Every attempt not answered by a 4xx whose message names what was wrong."""
    wrong = []
    for attempt in attempts:
        status, text = send(http, attempt)
        if status == 202:
            end_jobs(http)  # a job accepted in error must not make the next attempt's 409
        try:
            message = str(json.loads(text).get("message", ""))
        except (ValueError, AttributeError):
            message = text
        if not 400 <= status < 500:
            wrong.append(f"{attempt.label()}: {status} {text[:200]}")
        elif attempt.names and not any(n.lower() in message.lower() for n in attempt.names):
            wrong.append(f"{attempt.label()}: {status} without {attempt.names}: {message[:200]}")
    return wrong


def assert_all_refused(http: httpx.Client, attempts: list[Try]) -> None:
    wrong = wrong_answers(http, attempts)
    assert not wrong, f"{len(wrong)} of {len(attempts)} answered wrongly:\n" + "\n".join(wrong)


def nested(depth: int) -> str:
    """JSON text of objects `depth` deep (written by hand: json.dumps recurses)."""
    return '{"deeper": ' * depth + "1" + "}" * depth


def test_times_beyond_the_calendar(live: httpx.Client) -> None:
    # Valid ISO 8601 times whose UTC conversion falls outside years 1-9999.
    times = ["9999-12-31T23:00:00-14:00", "0001-01-01T00:30:00+14:00"]
    attempts = [
        Try("GET", path, params={param: value}, names=(param,))
        for path in ("/info/timeline", "/info/node/n1/history")
        for param in ("since", "until")
        for value in times
    ]
    attempts += [Try("GET", "/jobs", params={"since": value}, names=("since",)) for value in times]
    assert_all_refused(live, attempts)


def test_numbers_of_thousands_of_digits(live: httpx.Client) -> None:
    level = {"component": "kubelet", "nodes": ["n1"], "level": 3}
    attempts = [
        Try("PUT", "/debug/flags/v", params={"ttl": DIGITS}, body=b"3", names=("ttl",)),
        Try("PUT", "/debug/flags/v", params={"ttl": "9" * 32}, body=b"3", names=("ttl",)),
        Try("PUT", "/proxy/kubelet/n1/debug/flags/v", {"ttl": DIGITS}, b"3", names=("ttl",)),
        Try("POST", "/verbosity", body={**level, "ttl": DIGITS}, names=("ttl",)),
        Try("POST", "/verbosity", body={**level, "ttl": "9" * 31 + "h"}, names=("ttl",)),
        Try("POST", "/verbosity", body={**level, "level": int(DIGITS[:4000])}, names=("level",)),
        Try("GET", "/info/timeline", params={"after_id": DIGITS}, names=("after_id",)),
        Try("GET", "/info/timeline", params={"before_id": DIGITS}, names=("before_id",)),
        Try("GET", "/info/timeline", params={"job": DIGITS}, names=("job",)),
        Try("GET", "/info/job/last", params={"since": DIGITS}, names=("since",)),
        Try("GET", f"/jobs/{DIGITS}", names=("job_id",)),
        Try("GET", "/jobs", params={"before_id": DIGITS}, names=("before_id",)),
        Try("GET", "/jobs", params={"since": DIGITS}, names=("since",)),
        Try("GET", "/jobs", params={"since": "9" * 31 + "d"}, names=("since",)),
        Try("GET", "/jobs", params={"node": DIGITS}, names=("node",)),
        Try("GET", f"/jobs/{DIGITS}/log", names=("job_id",)),
        Try("GET", "/jobs/1/log", params={"since": DIGITS}, names=("since",)),
        Try("GET", f"/jobs/{DIGITS}/log/stream", names=("job_id",)),
        Try("GET", "/jobs/1/log/stream", headers={"Last-Event-ID": DIGITS}, names=("last",)),
        Try("GET", "/info/timeline/stream", params={"after_id": DIGITS}, names=("after_id",)),
        Try("GET", "/info/timeline/stream", headers={"Last-Event-ID": DIGITS}, names=("last",)),
    ]
    assert_all_refused(live, attempts)


def test_last_event_id_of_thousands_of_digits_on_the_job_stream(live: httpx.Client) -> None:
    accepted = live.post("/commission/nodes", json={"nodes": ["n1"]})
    assert accepted.status_code == 202, accepted.text
    assert live.get("/info/job/active").status_code == 200  # it waits until canceled
    attempts = [
        Try("GET", "/info/job/active/stream", headers={"Last-Event-ID": DIGITS}, names=("last",)),
        Try("GET", "/info/job/active/stream", params={"since": DIGITS}, names=("since",)),
    ]
    try:
        assert_all_refused(live, attempts)
    finally:
        live.post("/info/job/active/cancel")
    assert wait_finished(live, accepted.json()["id"])["status"] == "canceled"


def test_vars_nested_hundreds_deep(live: httpx.Client) -> None:
    attempts = []
    for depth in (300, 5000):  # refused by clusterm's limit; by the JSON parser's
        deep = f'{{"x": {nested(depth)}}}'
        bodies = {
            ("POST", "/nodes"): f'{{"name": "deep", "address": "127.0.0.1", "vars": {deep}}}',
            ("PATCH", "/nodes/n1"): f'{{"vars": {deep}}}',
            ("PUT", "/globals"): f'{{"extra_vars": {deep}}}',
            ("POST", "/commission/nodes"): f'{{"nodes": ["n1"], "extra_vars": {deep}}}',
            ("POST", "/discover/nodes"): f'{{"addrs": ["127.0.0.1"], "extra_vars": {deep}}}',
        }
        attempts += [
            Try(method, path, body=body.encode(), names=("nest", "deep"))
            for (method, path), body in bodies.items()
        ]
    assert_all_refused(live, attempts)
    # Nothing stored, and the nodes still read back.
    nodes = live.get("/info/nodes")
    assert nodes.status_code == 200
    assert [(n["name"], n["vars"]) for n in nodes.json()] == [("n1", {"kept": 1})]
    assert live.get("/globals").json()["extra_vars"] == {}
    assert live.get("/jobs").json() == []


def test_numbers_json_has_no_word_for(live: httpx.Client) -> None:
    # Python's JSON reader takes NaN and Infinity; JSON (and PostgreSQL's jsonb) does not.
    attempts = []
    for word in ("NaN", "Infinity", "-Infinity"):
        bad = f'{{"bad_number": {word}}}'
        node = f'{{"name": "nan", "address": "127.0.0.1", "vars": {bad}}}'
        attempts += [
            Try("POST", "/nodes", body=node.encode(), names=("bad_number",)),
            Try("PATCH", "/nodes/n1", body=f'{{"vars": {bad}}}'.encode(), names=("bad_number",)),
            Try("PUT", "/globals", body=f'{{"extra_vars": {bad}}}'.encode(), names=("bad_number",)),
            Try(
                "POST",
                "/commission/nodes",
                body=f'{{"nodes": ["n1"], "extra_vars": {bad}}}'.encode(),
                names=("bad_number",),
            ),
            Try(
                "POST",
                "/nodes",
                body=f'{{"name": "nan", "address": "127.0.0.1", "ssh_port": {word}}}'.encode(),
                names=("ssh_port",),
            ),
        ]
    assert_all_refused(live, attempts)
    assert [n["name"] for n in live.get("/info/nodes").json()] == ["n1"]
    assert live.get("/info/node/n1").json()["vars"] == {"kept": 1}


def test_text_that_is_not_unicode(live: httpx.Client) -> None:
    # JSON can escape half of a UTF-16 surrogate pair; Python reads it into a str that no UTF-8
    # encoder takes. Stored, it made every later read of the nodes or the globals a 500.
    attempts = []
    for number, text in enumerate(('"\\ud800"', '"a\\udfffb"')):
        bad = f'{{"bad_text": {text}}}'
        deep = f'{{"bad_text": {{"inner": [{text}]}}}}'
        node = f'{{"name": "sur{number}", "address": "127.0.0.1", "vars": {bad}}}'
        attempts += [
            Try("POST", "/nodes", body=node.encode(), names=("bad_text",)),
            Try("PATCH", "/nodes/n1", body=f'{{"vars": {deep}}}'.encode(), names=("bad_text",)),
            Try("PUT", "/globals", body=f'{{"extra_vars": {bad}}}'.encode(), names=("bad_text",)),
            Try(
                "POST",
                "/commission/nodes",
                body=f'{{"nodes": ["n1"], "extra_vars": {bad}}}'.encode(),
                names=("bad_text",),
            ),
            Try(
                "POST",
                "/discover/nodes",
                body=f'{{"addrs": ["127.0.0.1"], "extra_vars": {bad}}}'.encode(),
                names=("bad_text",),
            ),
        ]
    assert_all_refused(live, attempts)
    # Whatever was stored still reads back.
    assert live.get("/info/nodes").status_code == 200
    assert live.get("/globals").status_code == 200
    assert live.get("/info/node/n1").json()["vars"] == {"kept": 1}


def test_a_nul_byte_in_a_node_name_on_every_route(live: httpx.Client) -> None:
    # PostgreSQL refuses NUL in text: a name holding one must be refused before the database.
    in_path = quote(NUL_NAME)
    names = ("node", "name")
    level = {"component": "kubelet", "level": 3}
    attempts = [
        Try("GET", f"/info/node/{in_path}", names=names),
        Try("PATCH", f"/nodes/{in_path}", body={"ssh_port": 2222}, names=names),
        Try("DELETE", f"/nodes/{in_path}", names=names),
        Try("PUT", f"/nodes/{in_path}/maintenance", body={"enabled": True}, names=names),
        Try("GET", f"/info/node/{in_path}/history", names=names),
        Try("GET", "/info/timeline", params={"node": NUL_NAME}, names=names),
        Try("GET", "/info/timeline/stream", params={"node": NUL_NAME}, names=names),
        Try("POST", "/nodes", body=node_body(NUL_NAME), names=names),
        Try("POST", "/nodes", body=[node_body("ok"), node_body(NUL_NAME)], names=names),
        Try("POST", "/commission/nodes", body={"nodes": [NUL_NAME]}, names=names),
        Try("POST", "/decommission/nodes", body={"nodes": [NUL_NAME]}, names=names),
        Try("POST", "/update/nodes", body={"nodes": [NUL_NAME]}, names=names),
        Try("POST", "/discover/nodes", body={"addrs": [NUL_NAME]}, names=("addrs",)),
        Try("POST", "/verbosity", body={**level, "nodes": [NUL_NAME]}, names=names),
        Try("PUT", f"/proxy/kubelet/{in_path}/debug/flags/v", body=b"3", names=names),
        Try("DELETE", f"/verbosity/kubelet/{in_path}", names=names),
        Try("DELETE", "/verbosity", params={"node": NUL_NAME}, names=names),
        Try("GET", "/verbosity", params={"node": NUL_NAME}, names=names),
        # The node's other text too: the same refusal, and nothing stored.
        Try("POST", "/nodes", body=node_body("nul", ssh_user="a\x00"), names=("ssh_user",)),
        Try("POST", "/nodes", body=node_body("nul", labels={"k": "a\x00"}), names=("label",)),
        Try("POST", "/nodes", body=node_body("nul", vars={"k": "a\x00"}), names=("vars",)),
        Try("POST", "/nodes", body=node_body("nul", vars={"a\x00": 1}), names=("vars",)),
        Try("PUT", "/globals", body={"extra_vars": {"k": "a\x00"}}, names=("extra_vars",)),
    ]
    assert_all_refused(live, attempts)
    assert [n["name"] for n in live.get("/info/nodes").json()] == ["n1"]


def test_a_discover_whose_description_is_longer_than_job_desc(live: httpx.Client) -> None:
    # 1,000 DNS names of 253 characters: the request is valid, its description is not short.
    label = "a" * 63
    addrs = [f"h{i:03d}{label[4:]}.{label}.{label}.{'b' * 61}" for i in range(1000)]
    assert all(len(a) == 253 for a in addrs)
    response = live.post("/discover/nodes", json={"addrs": addrs})
    assert response.status_code == 202, response.text[:500]
    job = wait_finished(live, response.json()["id"])
    assert job["nodes"] == addrs
    assert len(job["desc"]) <= 1024
    assert job["desc"].startswith("discover")
    assert live.get("/jobs").json()[0]["id"] == job["id"]


def test_a_content_length_of_thousands_of_digits(admin: TestClient) -> None:
    # uvicorn refuses such a header itself; behind any other ASGI server the app must too.
    headers = {"Content-Length": DIGITS, "Content-Type": "application/json"}
    response = admin.post("/nodes", content=b"{}", headers=headers)
    assert response.status_code == 413, response.text
    assert "max_body_bytes" in response.json()["message"]
