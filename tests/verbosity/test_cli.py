"""`clusterctl verbosity set|get|reset` against the real app and emulated kubelets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from clusterctl.main import run
from tests.verbosity.conftest import TOKEN, register
from tests.verbosity.emulator import Emulator, free_port

Ctl = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str, role: str = "operator") -> tuple[int, str, str]:
        code = run(["--token", tokens[role], *argv], http=client)
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def nodes(admin: TestClient, emulators: Callable[..., Emulator]) -> Emulator:
    emulator = emulators()
    for name in ("w1", "w2"):
        register(admin, name, {"kubelet": emulator.add(name, token=TOKEN).port})
    emulator.start()
    register(admin, "w3", {"kubelet": free_port()})
    return emulator


def table(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_set_prints_one_row_per_node_and_exits_0(ctl: Ctl, nodes: Emulator) -> None:
    code, out, err = ctl(
        "verbosity", "set", "kubelet", "4", "--node", "w1", "-n", "w2", "--ttl", "15m"
    )
    assert code == 0, err
    rows = table(out)
    assert out.splitlines()[0].split()[:4] == ["NODE", "COMPONENT", "RESULT", "STATUS"]
    assert rows["w1"][:6] == ["w1", "kubelet", "ok", "200", "2", "4"]
    assert "successfully set klog.logging.verbosity to 4" in out
    assert "reverts at" in err
    assert nodes.by_name["w2"].level == 4


def test_a_failed_target_makes_the_exit_code_non_zero(ctl: Ctl, nodes: Emulator) -> None:
    code, out, err = ctl("verbosity", "set", "kubelet", "3", "--all")
    assert code == 1
    rows = table(out)
    assert rows["w3"][2:4] == ["FAILED", "502"]
    assert rows["w1"][2] == "ok"
    assert "1 of 3 targets failed" in err
    # None succeeded (502 from clusterm): still one row per node, still exit 1.
    code, out, err = ctl("verbosity", "set", "kubelet", "3", "--node", "w3")
    assert code == 1
    assert table(out)["w3"][2] == "FAILED"


def test_get_and_reset(ctl: Ctl, nodes: Emulator) -> None:
    assert ctl("verbosity", "set", "kubelet", "5", "-n", "w1", "-n", "w2")[0] == 0
    code, out, _ = ctl("verbosity", "get", role="viewer")
    assert code == 0
    rows = table(out)
    assert rows["w1"][:5] == ["w1", "kubelet", "5", "2", "operator"]
    code, out, _ = ctl("verbosity", "get", "--json", role="viewer")
    assert {r["node"]: r["level"] for r in json.loads(out)} == {"w1": 5, "w2": 5}
    code, out, err = ctl("verbosity", "reset", "kubelet", "--node", "w1")
    assert code == 0, err
    assert table(out)["w1"][5] == "2"
    assert nodes.by_name["w1"].level == 2
    code, out, err = ctl("verbosity", "reset", "kubelet", "--all", "--json")
    assert code == 0, err
    assert [r["node"] for r in json.loads(out)["results"]] == ["w2"]
    assert nodes.by_name["w2"].level == 2


def test_usage_and_refusals(ctl: Ctl, nodes: Emulator) -> None:
    code, _, err = ctl("verbosity", "set", "kubelet", "4")
    assert code == 2
    assert "exactly one of --node, --all, --group" in err
    code, _, err = ctl("verbosity", "set", "kubelet", "4", "-n", "nope")
    assert code == 1
    assert "no node named 'nope'" in err
    code, _, err = ctl("verbosity", "set", "kubelet", "4", "--all", role="viewer")
    assert code == 1
    assert "operator" in err
    assert nodes.total_requests == 0
