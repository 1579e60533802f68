"""Settings: environment, config file (TOML, YAML), flags, and a clear message for a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    s = load_settings()
    assert s.port == 9007
    assert s.host == "127.0.0.1"
    assert s.data_dir == tmp_path / "clusterm"
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'clusterm' / 'clusterm.db'}"


def test_precedence_flag_over_env_over_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9100\nhost = "::1"\nlog_format = "json"\n')
    assert load_settings(toml).port == 9100
    monkeypatch.setenv("CLUSTERM_PORT", "9200")
    s = load_settings(toml)
    assert (s.port, s.host, s.log_format) == (9200, "::1", "json")
    assert load_settings(toml, port=9300).port == 9300


def test_yaml_file_and_env_named_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    yml = tmp_path / "c.yaml"
    yml.write_text(f"data_dir: {tmp_path / 'd'}\nlog_level: debug\n")
    monkeypatch.setenv("CLUSTERM_CONFIG", str(yml))
    s = load_settings()
    assert s.data_dir == tmp_path / "d"
    assert s.log_level == "debug"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("port = 70000\n", "invalid setting port"),
        ('port = "many"\n', "invalid setting port"),
        ('colour = "blue"\n', "invalid setting colour"),
        ('log_format = "xml"\n', "invalid setting log_format"),
        ("port = \n", "is not valid"),
        ("[[x]]\n[x\n", "is not valid"),
    ],
)
def test_bad_file_names_the_setting(tmp_path: Path, content: str, words: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(SettingsError, match=words):
        load_settings(f)


def test_bad_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERM_PORT", "nope")
    with pytest.raises(SettingsError, match="CLUSTERM_PORT"):
        load_settings()


def test_missing_or_unknown_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "absent.toml")
    (tmp_path / "c.ini").write_text("port=1\n")
    with pytest.raises(SettingsError, match=r"\.toml, \.yaml or \.yml"):
        load_settings(tmp_path / "c.ini")
    (tmp_path / "c.yaml").write_text("- a list\n")
    with pytest.raises(SettingsError, match="table of settings"):
        load_settings(tmp_path / "c.yaml")
