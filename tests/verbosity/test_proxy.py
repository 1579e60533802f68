"""`PUT /proxy/{component}/{node}/debug/flags/v`: curl's route to one component on one node,
against emulated components over real TLS on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.verbosity.conftest import TOKEN, Pki, register
from tests.verbosity.emulator import Emulator, free_port

KUBELET = "/proxy/kubelet/n1/debug/flags/v"


@pytest.fixture
def kubelet(admin: TestClient, emulators: Callable[..., Emulator]) -> Emulator:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    return emulator


def test_success_passes_the_components_answer_on_unchanged(
    admin: TestClient, kubelet: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == 200, r.text
    assert r.content == b"successfully set klog.logging.verbosity to 4\n"
    assert r.headers["content-type"] == "text/plain"
    endpoint = kubelet.by_name["n1"]
    assert endpoint.level == 4
    assert endpoint.requests[0].authorization == f"Bearer {TOKEN}"
    assert endpoint.requests[0].body == b"4"
    known = admin.get("/verbosity").json()
    assert [(k["node"], k["component"], k["level"], k["set_by"]) for k in known] == [
        ("n1", "kubelet", 4, "admin")
    ]
    # A trailing newline (echo 4 | curl -T -) is tolerated; the component gets the bare number.
    r = admin.put(KUBELET, content=b"3\n")
    assert r.status_code == 200
    assert endpoint.requests[-1].body == b"3"
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"abc", 'strconv.ParseUint: parsing "abc": invalid syntax\n'),
        (b"-1", 'strconv.ParseUint: parsing "-1": invalid syntax\n'),
        (b"99999999999", 'strconv.ParseUint: parsing "99999999999": value out of range\n'),
        (b"2147483648", 'strconv.ParseUint: parsing "2147483648": value out of range\n'),
        (b"", 'strconv.ParseUint: parsing "": invalid syntax\n'),
        (b"4\n\n", 'strconv.ParseUint: parsing "4\\n": invalid syntax\n'),
        (b" 4", 'strconv.ParseUint: parsing " 4": invalid syntax\n'),
        (b"9" * 100_000, None),
    ],
)
def test_bad_values_are_refused_before_forwarding(
    admin: TestClient, kubelet: Emulator, body: bytes, text: str | None
) -> None:
    r = admin.put(KUBELET, content=body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain"
    if text is None:
        assert r.text.startswith('strconv.ParseUint: parsing "999')
        assert r.text.endswith('...": value out of range\n')
        assert len(r.content) < 200  # a huge value is not echoed back whole
    else:
        assert r.text == text
    assert kubelet.total_requests == 0


def test_the_largest_value_is_accepted(admin: TestClient, kubelet: Emulator) -> None:
    r = admin.put(KUBELET, content=b"2147483647", params={"ttl": "0"})
    assert r.status_code == 200
    assert kubelet.by_name["n1"].level == 2147483647


def test_a_body_over_the_request_cap_is_413(admin: TestClient, kubelet: Emulator) -> None:
    r = admin.put(KUBELET, content=b"1" * (2 * 1024 * 1024))
    assert r.status_code == 413
    assert kubelet.total_requests == 0


def test_unknown_node_or_component_is_404_and_nothing_is_sent(
    admin: TestClient, kubelet: Emulator
) -> None:
    for path in (
        "/proxy/kubelet/n9/debug/flags/v",
        "/proxy/etcd/n1/debug/flags/v",
        "/proxy/kubelet/127.0.0.1:6443/debug/flags/v",
    ):
        r = admin.put(path, content=b"4")
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] in ("NotFound", "NodeNotFound", "ComponentNotFound"), r.text
    # A path that tries to escape the route matches no route at all.
    assert admin.put("/proxy/kubelet/n1/../../secrets", content=b"4").status_code == 404
    assert kubelet.total_requests == 0


def test_other_methods_are_406_as_kubernetes_answers(admin: TestClient, kubelet: Emulator) -> None:
    for method in ("GET", "POST", "DELETE", "PATCH"):
        r = admin.request(method, KUBELET, content=b"4")
        assert r.status_code == 406
        assert r.content == b"unsupported http method\n"
        assert r.headers["content-type"] == "text/plain"
    assert kubelet.total_requests == 0


def test_changing_needs_the_operator_role(
    client: TestClient, kubelet: Emulator, as_role: Callable[[str], dict[str, str]]
) -> None:
    r = client.put(KUBELET, content=b"4", headers=as_role("viewer"))
    assert r.status_code == 403
    r = client.put(KUBELET, content=b"4", headers=as_role("operator"))
    assert r.status_code == 200
    assert client.get("/verbosity", headers=as_role("operator")).json()[0]["set_by"] == "operator"


def refusal(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    assert body["error"] == "ComponentRefused"
    assert body["component_status"] == r.status_code
    return body


@pytest.mark.parametrize(
    ("mode", "status", "explains", "component_body"),
    [
        ("disabled", 405, "kubelet debug flags handler is disabled", "flags endpoint is disabled."),
        ("disabled404", 404, "kubelet debug flags handler is disabled", "404 page not found"),
        ("forbidden", 403, "the token lacks update on nodes/proxy", "Forbidden (user="),
    ],
)
def test_component_refusals_are_passed_on_with_an_explanation(
    admin: TestClient,
    emulators: Callable[..., Emulator],
    mode: str,
    status: int,
    explains: str,
    component_body: str,
) -> None:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN, mode=mode)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == status
    body = refusal(r)
    assert explains in body["message"]
    assert body["component_body"].startswith(component_body)
    assert endpoint.level == 2
    assert admin.get("/verbosity").json() == []


def test_wrong_token_is_401_explained(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    endpoint = emulator.add("n1", token="another-token")
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == 401
    body = refusal(r)
    assert "refused clusterm's credentials" in body["message"]
    assert "token_file" in body["message"]
    assert TOKEN not in r.text


def test_unreachable_node_is_502(admin: TestClient) -> None:
    register(admin, "n1", {"kubelet": free_port()})
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == 502
    assert r.json()["error"] == "UpstreamError"
    assert "cannot connect to kubelet on n1" in r.json()["message"]


def test_slow_node_is_504(admin: TestClient, emulators: Callable[..., Emulator]) -> None:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN, delay_s=5.0)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == 504
    assert r.json()["error"] == "UpstreamTimeout"
    assert "did not answer within 2.0s" in r.json()["message"]


def test_untrusted_certificate_is_502(
    admin: TestClient, emulators: Callable[..., Emulator], pki: Pki
) -> None:
    emulator = emulators(ca=pki.other_ca)
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    r = admin.put(KUBELET, content=b"4")
    assert r.status_code == 502
    message = r.json()["message"]
    assert "TLS with kubelet on n1" in message
    assert "certificate verify failed" in message
    assert "ca_file" in message
    # The TLS handshake failed, so the token was never sent.
    assert endpoint.requests == []


def test_a_node_var_may_change_the_port_but_not_the_host(
    admin: TestClient, kubelet: Emulator
) -> None:
    variables = {"clusterm_verbosity": {"kubelet": {"port": 10250, "host": "169.254.169.254"}}}
    register(admin, "n2", vars=variables)
    r = admin.put("/proxy/kubelet/n2/debug/flags/v", content=b"4")
    assert r.status_code == 422
    assert "only port and baseline_level may be set per node" in r.json()["message"]
    for bad in ({"kubelet": {"port": "10250"}}, {"kubelt": {"port": 1}}, "kubelet:10250"):
        assert (
            admin.patch("/nodes/n2", json={"vars": {"clusterm_verbosity": bad}}).status_code == 200
        )
        r = admin.put("/proxy/kubelet/n2/debug/flags/v", content=b"4")
        assert r.status_code == 422, bad
    assert kubelet.total_requests == 0


def test_kube_proxy_is_plain_http_without_a_token(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators(ca=None)
    endpoint = emulator.add("n1")
    emulator.start()
    register(admin, "n1", {"kube-proxy": endpoint.port})
    r = admin.put("/proxy/kube-proxy/n1/debug/flags/v", content=b"5")
    assert r.status_code == 200
    assert r.text == "successfully set klog.logging.verbosity to 5\n"
    assert endpoint.requests[0].authorization is None


@pytest.mark.parametrize(
    "settings_overrides",
    [{"verbosity_components": {"kubelet": {"via_apiserver": True}}}],
)
def test_kubelet_through_the_apiserver(
    admin: TestClient, emulators: Callable[..., Emulator], pki: Pki, settings_overrides: object
) -> None:
    emulator = emulators()
    apiserver = emulator.add("m1", token=TOKEN, relay=True)
    kubelet = emulator.add("w1")
    emulator.start()
    register(admin, "m1", {"kube-apiserver": apiserver.port}, group="master")
    register(admin, "w1")
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4")
    assert r.status_code == 200, r.text
    assert kubelet.level == 4
    assert apiserver.requests[0].path == "/api/v1/nodes/w1/proxy/debug/flags/v"
    assert apiserver.requests[0].authorization == f"Bearer {TOKEN}"


def test_a_name_no_node_can_have_is_404_on_every_route(
    admin: TestClient, kubelet: Emulator
) -> None:
    for name in ("%00", "N1", "a..b"):
        assert admin.put(f"/proxy/kubelet/{name}/debug/flags/v", content=b"4").status_code == 404
        assert admin.delete(f"/verbosity/kubelet/{name}").status_code == 404
        assert admin.get("/verbosity", params={"node": name}).status_code == 404
        assert admin.delete("/verbosity", params={"node": name}).status_code == 404
    assert kubelet.total_requests == 0


def test_a_database_too_busy_after_the_put_says_the_change_was_sent(
    admin: TestClient, kubelet: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from app.verbosity import store

    def busy(**_: Any) -> None:
        # The lock another process holds past the busy timeout, at the one moment that matters:
        # after the component changed, before clusterm recorded it.
        raise OperationalError(
            "UPDATE verbosity_level", {}, sqlite3.OperationalError("database is locked")
        )

    monkeypatch.setattr(store, "record_change", busy)
    r = admin.put(KUBELET, content=b"6", params={"ttl": "10m"})
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["error"] == "DatabaseBusy"
    assert "was sent to the components" in body["message"]
    assert "nothing was changed" not in body["message"]
    assert kubelet.by_name["n1"].level == 6
    # What was written before sending stands: the level and its revert.
    (known,) = admin.get("/verbosity").json()
    assert (known["level"], known["revert_to"]) == (6, 2)
    assert known["reverts_at"] is not None
