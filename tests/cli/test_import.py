"""`clusterctl node import` reads an inventory as data: an executable file is never run, TOML is
read as well as INI and YAML, and a var holding a template is refused unless --literal."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest
from fastapi.testclient import TestClient

from clusterctl.main import run


class Ctl(Protocol):
    """clusterctl run in-process against the app: (exit code, stdout, stderr)."""

    def __call__(self, *argv: str) -> tuple[int, str, str]: ...


CLUSTERCTL = str(Path(sys.executable).parent / "clusterctl")


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str) -> tuple[int, str, str]:
        code = run(["--token", tokens["admin"], *argv], http=client)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def inventory_script(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An executable inventory as Ansible's script plugin would run it: it creates a marker
    when run, and prints a valid inventory with one host."""
    marker = tmp_path / "ran.marker"
    script = tmp_path / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "print(json.dumps({'all': {'hosts': ['w1']}, '_meta': {'hostvars': {'w1': {}}}}))\n"
    )
    script.chmod(0o755)
    # The script works: run by hand it creates the marker, so its absence below means something.
    probe = subprocess.run([str(script), "--list"], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0
    assert "w1" in probe.stdout
    marker.unlink()
    return script, marker


@pytest.mark.parametrize("name", ["inventory.py", "hosts", "hosts.ini", "hosts.yml"])
def test_an_executable_inventory_is_never_run(
    ctl: Ctl, admin: TestClient, tmp_path: Path, name: str
) -> None:
    script, marker = inventory_script(tmp_path, name)
    for dry_run in (["--dry-run"], []):
        code, out, err = ctl("node", "import", str(script), *dry_run)
        assert not marker.exists(), "the inventory file was executed"
        assert code == 2
        assert out == ""
        assert "not an INI, YAML or TOML inventory" in err
        assert "never run" in err
    assert admin.get("/info/nodes").json() == []


def test_the_installed_command_does_not_run_an_executable_inventory(tmp_path: Path) -> None:
    script, marker = inventory_script(tmp_path, "inventory")
    r = subprocess.run(
        [CLUSTERCTL, "--url", "http://127.0.0.1:9", "node", "import", str(script), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert not marker.exists()
    assert r.returncode == 2
    assert "never run" in r.stderr


def test_an_executable_ini_file_is_read_as_data(ctl: Ctl, tmp_path: Path) -> None:
    """Files on some mounts are all executable: the mode does not change how a file is read."""
    inventory = tmp_path / "hosts"
    inventory.write_text("[masters]\nm1 ansible_host=10.0.0.1\n")
    inventory.chmod(inventory.stat().st_mode | stat.S_IXUSR)
    code, out, err = ctl("node", "import", str(inventory), "--json")
    assert code == 0, err
    assert [(n["name"], n["host_group"]) for n in json.loads(out)] == [("m1", "master")]


TOML = """\
[masters.hosts.m1]
ansible_host = "10.0.0.1"
ansible_user = "ubuntu"

[workers.hosts.w1]
ansible_host = "10.0.0.2"
ansible_port = 2222

[workers.vars]
pod_cidr = "10.244.0.0/16"
"""


def test_import_toml(ctl: Ctl, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(TOML)
    code, out, err = ctl("node", "import", str(inventory), "--json")
    assert code == 0, err
    nodes = {n["name"]: n for n in json.loads(out)}
    assert nodes["m1"]["host_group"] == "master"
    assert nodes["m1"]["ssh_user"] == "ubuntu"
    assert nodes["w1"]["ssh_port"] == 2222
    assert nodes["w1"]["vars"] == {"pod_cidr": "10.244.0.0/16"}


TEMPLATED = {
    "ini": "[workers]\nw1 ansible_host=10.0.0.2 shell=\"{{ lookup('pipe', 'id') }}\"\n",
    "yml": "all:\n  hosts:\n    w1:\n      ansible_host: 10.0.0.2\n"
    "      opts: {args: ['{% if true %}x{% endif %}']}\n",
}


@pytest.mark.parametrize("suffix", ["ini", "yml"])
def test_a_templated_var_is_refused_unless_literal(
    ctl: Ctl, admin: TestClient, tmp_path: Path, suffix: str
) -> None:
    inventory = tmp_path / f"hosts.{suffix}"
    inventory.write_text(TEMPLATED[suffix])
    for dry_run in (["--dry-run"], []):
        code, _, err = ctl("node", "import", str(inventory), *dry_run)
        assert code == 2
        assert "host 'w1' var" in err
        assert "Jinja template" in err
        assert "literal text and never templates them" in err
        assert "--literal" in err
    assert admin.get("/info/nodes").json() == []

    code, _, err = ctl("node", "import", str(inventory), "--literal", "--json")
    assert code == 0, err
    stored = admin.get("/info/node/w1").json()["vars"]
    if suffix == "ini":
        assert stored == {"shell": "{{ lookup('pipe', 'id') }}"}  # as written, not templated
    else:
        assert stored == {"opts": {"args": ["{% if true %}x{% endif %}"]}}
