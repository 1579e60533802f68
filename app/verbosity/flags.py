"""Parsing what users send: a verbosity value (Kubernetes' rules, Kubernetes' words) and a ttl.

A bad value is answered exactly as a Kubernetes component answers it: 400, `text/plain`, the Go
parse error as the body (see docs/contracts.md#flags-endpoint). Scripts that handle a component's
refusal handle clusterm's the same way, and a bad value is refused here, before anything is
forwarded. Where clusterm's answers differ on purpose (a trailing newline, leading zeros, a long or
non-ASCII value): docs/contracts.md#flags-endpoint-where-clusterm-differs.
"""

from __future__ import annotations

import re

from app.config import MAX_LEVEL
from app.errors import Invalid

SUCCESS = "successfully set klog.logging.verbosity to {}\n"
UNSUPPORTED_METHOD = "unsupported http method\n"
_QUOTED_MAX = 64  # a huge body is not echoed back whole
_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
TTL_MAX_CHARS = 32
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)


class BadFlagValue(Exception):
    """The value is not a verbosity level; `text` is the 400 body a component would send."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text + "\n"


def _go_quote(raw: bytes) -> str:
    # strconv.Quote's output for ASCII: quotes, backslashes and control characters escaped. (Go
    # prints valid non-ASCII UTF-8 as is; here every non-ASCII byte is \xNN.)
    out = []
    for byte in raw[:_QUOTED_MAX]:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    suffix = "..." if len(raw) > _QUOTED_MAX else ""
    return '"' + "".join(out) + suffix + '"'


def parse_level(raw: bytes) -> int:
    """The level in a request body: digits only, 0 to 2147483647, one trailing newline allowed.

    The newline is tolerated because `echo 4 | curl -T -` sends one; Kubernetes would refuse it,
    so clusterm forwards the bare number.
    """
    value = raw[:-1] if raw.endswith(b"\n") else raw
    if not value or not value.isdigit() or not value.isascii():
        raise BadFlagValue(f"strconv.ParseUint: parsing {_go_quote(value)}: invalid syntax")
    # Leading zeros are what ParseUint accepts ("007" is 7). They are dropped before int(), which
    # refuses more than 4,300 digits with an error of its own; the length check keeps it cheap.
    digits = value.lstrip(b"0") or b"0"
    if len(digits) > 10 or int(digits) > MAX_LEVEL:
        raise BadFlagValue(f"strconv.ParseUint: parsing {_go_quote(value)}: value out of range")
    return int(digits)


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def parse_ttl(text: str | None, *, default_s: int, max_s: int, field: str = "ttl") -> int:
    """Seconds until the revert; 0 means no revert. None takes the configured default.

    Durations as Go and Kubernetes write them: `90s`, `15m`, `1h30m`; a bare number is seconds.
    """
    if text is None:
        return default_s
    text = text.strip()
    if len(text) > TTL_MAX_CHARS:
        # Checked before any digit is converted: a number of thousands of digits is refused
        # by Python's int() (and would be longer than any maximum anyway).
        raise Invalid(
            f"{field}: {text[:32]!r}... is {len(text)} characters long; a duration is at most "
            f"{TTL_MAX_CHARS} (write it as 90s, 15m or 1h30m)",
            field=field,
        )
    match = _DURATION_RE.fullmatch(text) if text else None
    if text.isascii() and text.isdigit():
        seconds = int(text)
    elif match and any(match.groups()):
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise Invalid(
            f"{field}: {text[:32]!r} is not a duration; write it as 90s, 15m or 1h30m "
            "(0 for no automatic revert)",
            field=field,
        )
    if seconds > max_s:
        raise Invalid(
            f"{field}: {format_duration(seconds)} is longer than the maximum "
            f"{format_duration(max_s)} (setting verbosity_max_ttl_s)",
            field=field,
        )
    return seconds
