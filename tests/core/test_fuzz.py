"""No input may produce a 500: schemathesis generates valid and invalid requests for every route
in the app's own OpenAPI description, with an admin token, against the real daemon on a loopback
port (the streams need a real server: they never end by themselves) and the real database. Every
parameter of every route also gets the values that broke routes before (HOSTILE below).

A failure lists each request that got a 5xx (as curl), and where in clusterm's code each
unhandled error came from. `pytest -s` also prints how every route answered, by status.

Every route is tried, the ones that make clusterm reach out too (jobs run Ansible, verbosity and
the proxy call Kubernetes components, the drift check runs Ansible against a master). An address
the fuzzer makes up can be anyone's, so nothing generated may leave this machine:

- every playbook setting points at fuzz_playbooks/: `hosts: localhost`, `connection: local`
  (also as the task's own variable, which outranks inventory variables) and one `debug` task
  (local.yml) or one `pause` (wait.yml, for discover jobs: the job routes and its stream then
  have a running job to act on), so no inventory host is ever contacted; and Ansible's ssh is
  /bin/false;
- generated bodies never carry an `ansible_*` variable: extra vars outrank even the task's own;
- every component's port is that of a small `/debug/flags/v` server on 127.0.0.1, and httpx in
  this process (the daemon's verbosity client) refuses any host that is not a loopback IP
  literal, before any name lookup or connection. Node addresses are generated too, so this
  guard is what keeps the proxy on this machine; the test also checks that clusterm only ever
  asked for the address of a node it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import ipaddress
import json
import logging
import re
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.result import Ok

from app.config import load_settings
from app.nodes.schemas import NodeCreate
from tests.core.live import end_jobs, serve
from tests.jobs.conftest import wait_finished

FUZZ_PLAYBOOKS = Path(__file__).parent / "fuzz_playbooks"
PLAYBOOK_SETTINGS = (
    "commission_playbook",
    "decommission_playbook",
    "cleanup_playbook",
    "update_playbook",
    "maintenance_playbook",
    "cluster_nodes_playbook",
)
COMPONENTS = (
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
    "kubelet",
    "kube-proxy",
)
SEED_ADDRESS = "127.0.0.1"
AWAY_ADDRESS = "0.0.0.0"  # noqa: S104 (an address to refuse, not one to bind)

# Examples per operation and generation mode. Routes that run Ansible or wait for a job are
# given fewer: each of their examples can cost seconds of the shared machine.
EXAMPLES = 30
# Operations that act on the running job: a discover (which waits) runs while they are tried,
# and is canceled after them.
ON_A_JOB = {
    "GET /info/job/{which}",
    "GET /info/job/active/stream",
    "POST /info/job/active/cancel",
}
SUBMITS_A_JOB = {
    f"POST /{kind}/nodes"
    for kind in ("commission", "decommission", "update", "discover", "cleanup")
}
SLOW = {
    "POST /drift/check": 3,
    "POST /info/job/active/cancel": 3,
    "GET /info/job/active/stream": 4,
    "GET /info/timeline/stream": 6,
}
# Routes that answer with a component's or Ansible's failure: 502/504 there is the answer
# (the component cannot be reached), not clusterm failing.
OUTBOUND = re.compile(r"^/proxy/|^/verbosity|^/drift/check$")


# --- a Kubernetes component's /debug/flags/v, on loopback ---------------------------------------


class FlagsServer(http.server.ThreadingHTTPServer):
    """Answers `PUT /debug/flags/v` as a Kubernetes component does, and counts the PUTs."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FlagsHandler)
        self._lock = threading.Lock()
        self.puts = 0

    def count_put(self) -> None:
        with self._lock:  # the fan-out sends to several "nodes" at once
            self.puts += 1


class _FlagsHandler(http.server.BaseHTTPRequestHandler):
    server: FlagsServer

    def do_PUT(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if raw.isdigit() and int(raw) <= 2147483647:
            status, text = 200, f"successfully set klog.logging.verbosity to {raw.decode()}"
        else:
            status, text = 400, f"strconv.ParseUint: parsing {raw[:64]!r}: invalid syntax"
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.count_put()

    def log_message(self, format: str, *args: Any) -> None:  # the test's output stays readable
        pass


@pytest.fixture
def flags_server() -> Iterator[FlagsServer]:
    server = FlagsServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


# --- the guard on every outgoing HTTP request of this process ------------------------------------


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: even looking it up could leave the machine


@dataclass
class OutboundGuard:
    """Refuses any httpx request to a host that is not a loopback IP, and records every host
    asked for. Installed on AsyncClient.send and, should a client bypass that, on both
    transports."""

    asked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    past_send: list[str] = field(default_factory=list)  # reached a transport without send

    def check(self, request: httpx.Request, *, record: bool = True) -> None:
        host = request.url.host
        if record:
            self.asked.append(host)
        if not _loopback(host):
            self.refused.append(str(request.url))
            raise httpx.ConnectError(
                f"the fuzz test refuses {host!r}: only loopback addresses may be contacted",
                request=request,
            )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        guard = self
        send = httpx.AsyncClient.send
        async_transport = httpx.AsyncHTTPTransport.handle_async_request
        sync_transport = httpx.HTTPTransport.handle_request

        async def guarded_send(
            client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
        ) -> httpx.Response:
            guard.check(request)
            return await send(client, request, **kwargs)

        async def guarded_async(
            transport: httpx.AsyncHTTPTransport, request: httpx.Request
        ) -> httpx.Response:
            if not _loopback(request.url.host):
                guard.past_send.append(str(request.url))
            guard.check(request, record=False)
            return await async_transport(transport, request)

        def guarded_sync(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            guard.check(request, record=False)  # this test's own client: 127.0.0.1
            return sync_transport(transport, request)

        monkeypatch.setattr(httpx.AsyncClient, "send", guarded_send)
        monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", guarded_async)
        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", guarded_sync)


def _guard_refuses_before_connecting(guard: OutboundGuard) -> None:
    # 0.0.0.0 is this machine on Linux, so even a broken guard would send nothing away; a working
    # one refuses it (it is no loopback literal) before any connection is attempted.
    async def probe() -> None:
        async with httpx.AsyncClient() as client:
            await client.put("http://0.0.0.0:9/debug/flags/v", content=b"1")

    with pytest.raises(httpx.ConnectError, match="the fuzz test refuses"):
        asyncio.run(probe())
    guard.asked.clear()
    guard.refused.clear()


# --- the daemon ----------------------------------------------------------------------------------


@pytest.fixture
def logging_restored() -> Iterator[None]:
    # PUT /debug/flags/v changes the process's log levels; put them back for the next tests.
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in loggers]
    yield
    for lg, level in levels:
        lg.setLevel(level)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> OutboundGuard:
    installed = OutboundGuard()
    installed.install(monkeypatch)
    _guard_refuses_before_connecting(installed)
    return installed


@pytest.fixture
def daemon(
    tmp_path: Path,
    db_url: str,
    flags_server: FlagsServer,
    guard: OutboundGuard,
    logging_restored: None,
) -> Iterator[httpx.Client]:
    port = flags_server.server_address[1]
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        playbook_dir=FUZZ_PLAYBOOKS,
        **dict.fromkeys(PLAYBOOK_SETTINGS, "local.yml"),
        discover_playbook="wait.yml",  # runs until it is canceled, or for job_timeout_s
        job_timeout_s=20,
        drift_interval_s=0,  # checks run when the fuzzer asks, not in the background
        ansible_env={"ANSIBLE_SSH_EXECUTABLE": "/bin/false"},
        verbosity_components={name: {"scheme": "http", "port": port} for name in COMPONENTS},
        verbosity_timeout_s=2,
        timeline_stream_ping_s=0.5,
        timeline_stream_poll_s=0.2,
    )
    with serve(settings) as client:
        yield client


def _seed(http: httpx.Client, flags_server: FlagsServer, guard: OutboundGuard) -> None:
    """Commissioned nodes and a raised level: something real for the proxy, the verbosity routes
    and the drift check to act on, through the same local playbook.

    One node's address is not loopback, as a generated one may be: the guard must refuse it on
    clusterm's own path. It is 0.0.0.0, which Linux connects to this machine, so even a guard
    that failed would send nothing away.
    """
    nodes = [
        {"name": "fuzz-master", "address": SEED_ADDRESS, "host_group": "master"},
        {"name": "fuzz-worker", "address": SEED_ADDRESS, "host_group": "worker"},
        {"name": "fuzz-away", "address": AWAY_ADDRESS, "host_group": "worker"},
    ]
    assert http.post("/nodes", json=nodes).status_code == 201
    names = [n["name"] for n in nodes]
    accepted = http.post("/commission/nodes", json={"nodes": names})
    assert accepted.status_code == 202, accepted.text
    assert wait_finished(http, accepted.json()["id"])["status"] == "successful"
    raised = http.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 3})
    assert raised.status_code == 207, raised.text
    results = {r["node"]: r for r in raised.json()["results"]}
    assert results["fuzz-master"]["ok"]
    assert results["fuzz-worker"]["ok"]
    assert not results["fuzz-away"]["ok"]
    assert "the fuzz test refuses" in results["fuzz-away"]["message"]
    assert flags_server.puts == 2
    assert [httpx.URL(url).host for url in guard.refused] == [AWAY_ADDRESS]
    guard.refused.clear()


def _start_a_running_job(http: httpx.Client) -> None:
    end_jobs(http)
    accepted = http.post("/discover/nodes", json={"addrs": [SEED_ADDRESS]})
    assert accepted.status_code == 202, accepted.text


# --- what the fuzzer sends -----------------------------------------------------------------------

# Rules the validators enforce that the API description does not state. Given to the generator,
# valid examples get past validation into the services, the jobs and the fan-out (an invalid
# name never reaches them); invalid ones still break each rule. Names are often the seeded nodes'
# and otherwise short, so the generator reuses them: a node it registers is one it later
# commissions, patches or deletes.
NAME = r"^(fuzz-master|fuzz-worker|[a-z0-9]([a-z0-9-]{0,2}[a-z0-9])?)$"
ADDRESS = (
    r"^(127\.0\.0\.[0-9]|([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f:]{2,39}(%[a-z0-9]{1,20})?"
    r"|[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,5})?)$"
)
VAR_NAME = {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,15}$"}
STRING_RULES: dict[str, dict[str, Any]] = {
    "name": {"pattern": NAME},
    "node": {"pattern": NAME},
    "nodes": {"pattern": NAME},
    "address": {"pattern": ADDRESS},
    "addrs": {"pattern": ADDRESS},
    "ssh_user": {"pattern": r"^[a-z_][a-z0-9_-]{0,31}$"},
    "component": {"enum": list(COMPONENTS)},
    "ttl": {"pattern": r"^[0-9]{1,5}[smh]?$"},
    "since": {"format": "date-time"},
    "until": {"format": "date-time"},
}
OBJECT_RULES: dict[str, dict[str, Any]] = {
    "vars": {"propertyNames": VAR_NAME},
    "extra_vars": {"propertyNames": VAR_NAME},
    "labels": {
        "propertyNames": {"pattern": r"^[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?$"},
        "additionalProperties": {"type": "string", "pattern": r"^[A-Za-z0-9]{0,12}$"},
    },
}
LEVEL_BODY = {"content": {"text/plain": {"schema": {"type": "string", "pattern": r"^[0-9]{1,2}$"}}}}


def _refine(schema: dict[str, Any], kind: str, rule: dict[str, Any]) -> None:
    """Add `rule` to every `kind` ("string" or "object") schema within `schema`."""
    if schema.get("type") == kind or (kind == "string" and "const" in schema):
        schema.update(rule)
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        _refine(alternative, kind, rule)
    if isinstance(schema.get("items"), dict):
        _refine(schema["items"], kind, rule)


def _apply(name: str, schema: dict[str, Any]) -> None:
    if name in STRING_RULES:
        _refine(schema, "string", STRING_RULES[name])
    if name in OBJECT_RULES:
        _refine(schema, "object", OBJECT_RULES[name])


def _state_hidden_rules(schema: dict[str, Any]) -> dict[str, Any]:
    node_create = NodeCreate.model_json_schema()
    schema["components"]["schemas"]["NodeCreate"] = node_create
    for model in schema["components"]["schemas"].values():
        for name, prop in model.get("properties", {}).items():
            _apply(name, prop)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                _apply(parameter["name"], parameter["schema"])
            if (method, path) == ("post", "/nodes"):
                one = {"$ref": "#/components/schemas/NodeCreate"}
                many = {"type": "array", "items": one, "minItems": 1, "maxItems": 3}
                body = operation["requestBody"]["content"]["application/json"]
                body["schema"] = {"anyOf": [one, many]}
            if method == "put" and path.endswith("/debug/flags/v"):
                operation["requestBody"] = LEVEL_BODY  # the level, as Kubernetes takes it
    return schema


def _defang(value: Any, *, key: str = "") -> Any:
    """The value with every `ansible_*` key renamed: such a variable could choose where Ansible
    connects (an extra var outranks the playbook's own `connection: local`)."""
    if isinstance(value, dict):
        return {
            (f"fuzz_{k}" if isinstance(k, str) and k.startswith("ansible_") else k): _defang(
                v, key=str(k)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_defang(v) for v in value]
    if isinstance(value, str) and key == "extra_vars":
        # extra_vars may also come as a JSON string (the original clusterm's form).
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return json.dumps(_defang(parsed))
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _host_forms(text: str) -> set[str]:
    """The ways a string sent as an address can show up as a URL's host."""
    text = unquote(text)  # an IPv6 zone id travels as %25 in a URL
    forms = {text.lower(), text.strip("[]").lower()}
    with contextlib.suppress(httpx.InvalidURL, UnicodeError, ValueError):
        forms.add(httpx.URL(scheme="http", host=text.strip("[]"), path="/").host)
    with contextlib.suppress(ValueError):
        forms.add(ipaddress.ip_address(text.strip("[]")).compressed)
    return forms


# Values that broke routes before, tried in every path, query and header parameter of every
# operation besides what the generator makes up (it rarely makes these): a NUL byte (PostgreSQL
# refuses it in text), a number longer than int() converts, and times whose conversion to UTC
# leaves the calendar.
HOSTILE = ("a\x00b", "9" * 5000, "9999-12-31T23:00:00-14:00", "0001-01-01T00:30:00+14:00")
# What the other parameters and the body hold meanwhile: values that pass, so the hostile one is
# what the route has to deal with.
PASSING = {"name": "fuzz-master", "node": "fuzz-master", "component": "kubelet", "which": "last"}
PASSING_BODY = {
    "PATCH /nodes/{name}": {"ssh_port": 22},
    "PUT /nodes/{name}/maintenance": {"enabled": False},
}


def _hostile_cases(operation: Any) -> Iterator[schemathesis.Case[Any]]:
    path = {p.name: PASSING.get(p.name, 1) for p in operation.path_parameters}
    body: dict[str, Any] = {}
    if operation.label in PASSING_BODY:
        body = {"body": PASSING_BODY[operation.label], "media_type": "application/json"}
    elif operation.label.endswith("/debug/flags/v") and operation.method.upper() == "PUT":
        body = {"body": "3", "media_type": "text/plain"}
    for parameter in operation.iter_parameters():
        if parameter.name == "Authorization":
            continue
        for value in HOSTILE:
            where = parameter.location.value
            if where == "path":
                yield operation.Case(path_parameters={**path, parameter.name: value}, **body)
            elif where == "query":
                yield operation.Case(path_parameters=path, query={parameter.name: value}, **body)
            elif where == "header" and "\x00" not in value:  # h11 will not send a NUL header
                yield operation.Case(path_parameters=path, headers={parameter.name: value}, **body)


@dataclass
class Outcome:
    status: int
    retry_after: str | None
    text: str


def _request(case: schemathesis.Case[Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "params": case.query or None,
        "headers": {k: str(v) for k, v in (case.headers or {}).items()},
    }
    request["headers"].pop("Authorization", None)  # the client's admin token goes instead
    # A connection of its own: after a 500 uvicorn closes the connection, and the next request
    # on it would fail for that one's reason.
    request["headers"]["Connection"] = "close"
    if case.body is not NOT_SET:
        if "json" in (case.media_type or "json") and not isinstance(case.body, bytes):
            request["json"] = _defang(case.body)
        else:
            raw = case.body
            request["content"] = raw if isinstance(raw, bytes) else str(raw).encode()
            request["headers"]["Content-Type"] = str(case.media_type or "application/json")
    return request


def _path(case: schemathesis.Case[Any]) -> str:
    # Each parameter percent-encoded whole, as a client must: a "/", "?" or NUL in a name is
    # part of the name, not of the URL's structure.
    values = {k: quote(str(v), safe="") for k, v in (case.path_parameters or {}).items()}
    path: str = case.operation.path.format(**values)
    return path


def _send(http: httpx.Client, case: schemathesis.Case[Any], request: dict[str, Any]) -> Outcome:
    if case.operation.path.endswith("/stream"):
        # A stream that answers 200 goes on for ever: its first bytes are the answer.
        with http.stream(case.method, _path(case), **request) as response:
            text = "" if response.status_code == 200 else response.read().decode(errors="replace")
            return Outcome(response.status_code, response.headers.get("Retry-After"), text)
    response = http.request(case.method, _path(case), **request)
    return Outcome(response.status_code, response.headers.get("Retry-After"), response.text)


def _is_failure(case: schemathesis.Case[Any], outcome: Outcome) -> bool:
    if outcome.status < 500:
        return False
    if outcome.status == 503 and outcome.retry_after:
        return False  # busy or full, and saying when to come back
    return not (outcome.status in (502, 504) and OUTBOUND.search(case.operation.path))


class _Tracebacks(logging.Handler):
    """Where each of the daemon's unhandled errors came from: clusterm's own frames, innermost
    last, and the error, so a failure names the line to fix."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.name != "clusterm.errors":
            return
        error = record.exc_info[1]
        frames = [
            f"{frame.filename[frame.filename.rindex('/app/') + 1 :]}:{frame.lineno} {frame.name}"
            for frame in traceback.extract_tb(record.exc_info[2])
            if "/app/" in frame.filename
        ]
        cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        self.records.append(f"{record.getMessage()}: {cause}\n    at " + " < ".join(frames[::-1]))


def test_no_request_gets_a_500(
    daemon: httpx.Client, flags_server: FlagsServer, guard: OutboundGuard
) -> None:
    http = daemon
    _seed(http, flags_server, guard)
    schema = schemathesis.openapi.from_dict(_state_hidden_rules(http.get("/openapi.json").json()))
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an operation it cannot use: {result.err()}"
        operations.append(result.ok())
    labels = {op.label for op in operations}
    assert {"POST /discover/nodes", "PUT /proxy/{component}/{node}/debug/flags/v"} <= labels
    assert {"GET /info/timeline/stream", "GET /info/job/active/stream"} <= labels

    failures: list[str] = []
    seen: dict[str, Counter[int]] = {}
    given_addresses = {SEED_ADDRESS, AWAY_ADDRESS}
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)

    def call(case: schemathesis.Case[Any]) -> None:
        request = _request(case)
        for text in _strings(request.get("json")):
            given_addresses.update(_host_forms(text))
        try:
            outcome = _send(http, case, request)
        except (httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
            # httpx will not send it (a header h11 refuses, a body JSON cannot encode): nothing
            # reached the daemon.
            return
        except httpx.TransportError as exc:  # the daemon broke off or never answered
            outcome = Outcome(599, None, f"{type(exc).__name__}: {exc}")
        seen.setdefault(case.operation.label, Counter())[outcome.status] += 1
        if _is_failure(case, outcome):
            failures.append(
                f"{outcome.status} for {case.operation.label}: {case.as_curl_command()}\n"
                f"    {outcome.text[:300]}"
            )

    try:
        # Every operation gets its own examples, valid and invalid, so none is left untried.
        for operation in operations:
            if operation.label in ON_A_JOB:
                _start_a_running_job(http)
            elif operation.label in SUBMITS_A_JOB:
                end_jobs(http)  # one job at a time: its valid examples get a chance to start one
            for case in _hostile_cases(operation):
                call(case)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run = settings(
                    max_examples=SLOW.get(operation.label, EXAMPLES),
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(given(case=operation.as_strategy(generation_mode=mode))(call))
                try:
                    run()
                except Unsatisfiable:
                    # An operation with no input at all has no invalid variant to generate.
                    assert mode == GenerationMode.NEGATIVE, operation.label
            if operation.label in ON_A_JOB or operation.label == "POST /discover/nodes":
                end_jobs(http)  # a discover waits: let the next routes run jobs
        end_jobs(http)
    finally:
        logging.getLogger().removeHandler(tracebacks)

    # What was tried, for whoever reads the output (`pytest -s`): every operation, by status.
    for label, statuses in sorted(seen.items()):
        print(f"{label}: {dict(sorted(statuses.items()))}")
    print(
        f"component requests: {len(guard.asked)} asked, {len(guard.refused)} refused off loopback"
    )
    logged = "\n".join(dict.fromkeys(tracebacks.records))  # each place once
    assert failures == [], "\n".join(failures) + "\n\nthe daemon logged:\n" + logged
    # Nothing was sent off this machine, and clusterm only asked for a node's own address.
    assert guard.past_send == []
    asked_elsewhere = {h for h in guard.asked if not (_host_forms(h) & given_addresses)}
    assert asked_elsewhere == set(), f"clusterm tried hosts no node has: {asked_elsewhere}"
    assert flags_server.puts >= 2
