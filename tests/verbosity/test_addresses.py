"""The proxy connects to the node's address and the component's port, and nowhere else, even for
rows stored before addresses were strict; a bad row costs its own target only."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from app.config import Settings, load_settings
from app.db import Database
from app.nodes.models import Node
from app.nodes.schemas import check_address
from app.verbosity.forward import Forwarder, Profile
from app.verbosity.registry import Registry, Target
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, register
from tests.verbosity.emulator import Emulator, Trap, free_port
from tests.verbosity.test_reverts import events, known


@pytest.fixture
def trap() -> Iterator[Trap]:
    made = Trap()
    yield made
    made.close()


def smuggling(port: int) -> str:
    """An address `ipaddress` accepts (the zone id may hold anything) whose URL, once printed and
    parsed again, points at 127.0.0.1:`port`."""
    return f"::1%]@127.0.0.1:{port}#"


def store_address(db: Database, name: str, address: str) -> None:
    """What a row stored before the strict rule looks like (the API refuses it now)."""
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name == name).values(address=address))


def test_a_reparsed_url_would_have_gone_elsewhere(trap: Trap) -> None:
    # Why the URL is never handed over as text: httpx prints this host as it is, and a parser
    # reads the text back as user info, another host and another port.
    url = httpx.URL(scheme="https", host=smuggling(trap.port), port=10250, path="/debug/flags/v")
    assert url.port == 10250
    again = httpx.URL(str(url))
    assert (again.host, again.port) == ("127.0.0.1", trap.port)


def test_the_forwarder_sends_the_url_object_and_never_its_text(
    settings: Settings, trap: Trap
) -> None:
    # Below the registry's own address check: a Target carrying such a URL still cannot reach
    # the trap, because httpx is given the object, whose host is the whole odd string.
    url = httpx.URL(scheme="http", host=smuggling(trap.port), port=free_port(), path="/x")
    target = Target("kube-proxy", "n1", url, 2, "kube-proxy")

    async def send() -> Any:
        forwarder = Forwarder(registry=Registry(settings), timeout_s=2, max_connections=1)
        try:
            client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
            async with client:
                return await forwarder.put(target, 4, Profile(client, TOKEN))
        finally:
            await forwarder.aclose()

    outcome = asyncio.run(send())
    assert not outcome.ok
    assert outcome.status == 502
    assert trap.received == []


def test_a_stored_address_that_would_move_the_request_sends_nothing(
    admin: TestClient, db: Database, emulators: Callable[..., Emulator], trap: Trap
) -> None:
    emulator = emulators()
    good = emulator.add("n1", token=TOKEN)
    bad = emulator.add("n2", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": good.port})
    register(admin, "n2", {"kubelet": bad.port})
    store_address(db, "n2", smuggling(trap.port))

    r = admin.put("/proxy/kubelet/n2/debug/flags/v", content=b"4")
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert "node 'n2' has the address" in message
    assert "zone id" in message
    assert "PATCH /nodes/n2" in message
    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 4})
    assert r.status_code == 207, r.text
    assert [(x["node"], x["status"]) for x in r.json()["results"]] == [("n1", 200), ("n2", 422)]
    assert trap.received == []
    assert bad.requests == []
    assert good.level == 4


def test_a_zone_id_address_reaches_the_node_on_the_components_port(
    admin: TestClient, db: Database, emulators: Callable[..., Emulator], trap: Trap
) -> None:
    plain = emulators(ca=None)
    proxy = plain.add("n1", host="::1")
    plain.start()
    tls = emulators()  # its certificate names ::1, not the zone id
    kubelet = tls.add("n1", host="::1", token=TOKEN)
    tls.start()
    index = socket.if_nametoindex("lo")
    ports = {"kube-proxy": proxy.port, "kubelet": kubelet.port}
    register(admin, "n1", ports, address=f"::1%{index}")
    r = admin.put("/proxy/kube-proxy/n1/debug/flags/v", content=b"5")
    assert r.status_code == 200, r.text
    assert proxy.level == 5
    r = admin.put("/proxy/kubelet/n1/debug/flags/v", content=b"6")
    assert r.status_code == 200, r.text
    assert kubelet.level == 6
    assert trap.received == []


def test_bad_rows_cost_their_own_target_only(
    admin: TestClient, db: Database, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    endpoints = {name: emulator.add(name, token=TOKEN) for name in ("n1", "n2", "n3", "n4")}
    emulator.start()
    for name, endpoint in endpoints.items():
        register(admin, name, {"kubelet": endpoint.port})
    body = {"component": "kubelet", "nodes": ["n1", "n2", "n3", "n4"], "level": 5, "ttl": "2s"}
    assert admin.post("/verbosity", json=body).status_code == 200
    # Rows the API would refuse now: an address with a template for a zone id, vars that are
    # not even an object, and a zone id httpx cannot put in a URL (that one made every
    # `GET /verbosity` a 500 before).
    store_address(db, "n2", "::1%{{ lookup('pipe','id') }}")
    store_address(db, "n4", "::1%\x01")
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name == "n3").values(vars=["not", "a", "map"]))

    rows = admin.get("/verbosity")
    assert rows.status_code == 200, rows.text
    assert {k["node"]: k["level"] for k in rows.json()} == {"n1": 5, "n2": 5, "n3": 5, "n4": 5}
    assert admin.get("/verbosity", params={"node": "n2"}).status_code == 200

    # The revert worker runs the good revert and keeps retrying the bad one.
    wait_until(
        lambda: endpoints["n1"].level == 2, timeout_s=10, what="n1's component back at level 2"
    )
    wait_until(
        lambda: known(admin)["n2"]["revert_attempts"] >= 1,
        timeout_s=10,
        what="a revert attempt on n2",
    )
    assert "has the address" in known(admin)["n2"]["last_error"]
    assert endpoints["n2"].level == 5
    # n3's vars hold no port override any more: the default port is tried, not the emulator.
    wait_until(
        lambda: known(admin)["n3"]["revert_attempts"] >= 1,
        timeout_s=10,
        what="a revert attempt on n3",
    )
    wait_until(
        lambda: known(admin)["n4"]["revert_attempts"] >= 1,
        timeout_s=10,
        what="a revert attempt on n4",
    )
    assert "zone id" in known(admin)["n4"]["last_error"]
    assert admin.patch("/nodes/n2", json={"address": "127.0.0.1"}).status_code == 200
    wait_until(
        lambda: endpoints["n2"].level == 2, timeout_s=15, what="n2's component back at level 2"
    )
    wait_until(
        lambda: known(admin)["n2"]["reverts_at"] is None,
        timeout_s=10,
        what="n2's revert recorded as done",
    )
    retried = [e for e in events(admin, reason="VerbosityReverted") if e["node"] == "n2"]
    assert [e["result"] for e in retried][-1] == "retrying"  # newest first
    assert retried[0]["result"] == "succeeded"


ZONE = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
    min_size=1,
    max_size=15,
)
ADDRESSES = (
    st.ip_addresses(v=4).map(str)
    | st.ip_addresses(v=6).map(str)
    | st.tuples(st.ip_addresses(v=6).map(str), ZONE).map("%".join)
    | st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{1,8}){0,3}", fullmatch=True)
)
REGISTRY = Registry(load_settings(data_dir="/nonexistent"))


@given(address=ADDRESSES, port=st.integers(1, 65535))
def test_every_accepted_address_makes_a_url_to_itself_even_as_text(address: str, port: int) -> None:
    address = check_address(address)
    node = Node(
        name="n1",
        address=address,
        host_group="worker",
        state="commissioned",
        vars={"clusterm_verbosity": {"kubelet": {"port": port}}},
    )
    target = REGISTRY.target(REGISTRY.get("kubelet"), node, apiserver=None)
    assert target.problem is None
    assert target.url is not None
    for url in (target.url, httpx.URL(str(target.url))):
        assert (url.host, url.port, url.path) == (address, port, "/debug/flags/v")
