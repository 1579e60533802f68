"""Value and ttl parsing, and the settings that describe components."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import SettingsError, load_settings
from app.errors import Invalid
from app.verbosity.flags import BadFlagValue, parse_level, parse_ttl
from tests.verbosity.emulator import glog_setter


@given(st.binary(max_size=16) | st.integers(0, 2**40).map(lambda n: str(n).encode()))
def test_clusterm_refuses_exactly_what_a_component_refuses(raw: bytes) -> None:
    level, text = glog_setter(raw)
    if level is None:
        with pytest.raises(BadFlagValue) as refused:
            parse_level(raw + b"\n" if raw.endswith(b"\n") else raw)
        if not raw.endswith(b"\n"):
            assert refused.value.text == text + "\n"
    else:
        assert parse_level(raw) == level
        assert parse_level(raw + b"\n") == level  # the one newline clusterm tolerates


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(None, 900), ("0", 0), ("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("24h", 86400)],
)
def test_ttl_forms(text: str | None, seconds: int) -> None:
    assert parse_ttl(text, default_s=900, max_s=86400) == seconds


@pytest.mark.parametrize("text", ["", "m", "15 m", "1d", "-5s", "1.5h", "25h", "\u00b2", "\u0661m"])
def test_bad_ttls(text: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_ttl(text, default_s=900, max_s=86400)
    assert refused.value.message.startswith("ttl: ")


@pytest.mark.parametrize(
    ("components", "words"),
    [
        ({"kube-proxy": {"via_apiserver": True}}, "via_apiserver is only for the kubelet"),
        ({"kubelet": {"client_cert_file": "/c.pem"}}, "give both"),
        ({"kubelet": {"path": "http://169.254.169.254/"}}, "absolute URL path"),
        ({"kubelet": {"port": 0}}, "greater than or equal to 1"),
        ({"etcd": {"port": 2379}}, "verbosity_components.etcd"),
        ({"kubelet": {"host": "10.0.0.1"}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_component_settings_are_refused_at_start(
    components: dict[str, dict[str, object]], words: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(data_dir="/nonexistent", verbosity_components=components)
    assert words in str(refused.value)


def test_a_level_of_thousands_of_leading_zeros_is_read_as_go_reads_it() -> None:
    # Python's int() refuses more than 4,300 digits; Go's ParseUint takes the zeros as they are.
    assert parse_level(b"0" * 5000 + b"7") == 7
    with pytest.raises(BadFlagValue) as refused:
        parse_level(b"0" * 5000 + b"1" * 11)
    assert refused.value.text.endswith(": value out of range\n")
