"""YAML for Ansible in which everything clusterm writes is data, never a template.

Ansible evaluates `{{ ... }}` and `{% ... %}` in any string it trusts, and it trusts what an
inventory file or an extra-vars file holds. Node names, addresses, node vars, globals and a
request's extra vars all come through the API, so an address like `{{ lookup('pipe', ...) }}`
would run a command on the daemon's host. ansible-core's `!unsafe` tag marks a string as data:
it is passed on as it is, at every depth, however a playbook uses it. Every string and every
mapping key written here carries it, but for strings that unquoted YAML would read as another
type, which cannot hold a template either (see `_represent_str`); numbers, booleans and nulls
cannot hold one.

The playbooks, their roles' defaults and their own `group_vars` stay the place for templates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

UNSAFE_TAG = "!unsafe"
_STR = "tag:yaml.org,2002:str"

_Base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _UnsafeDumper(_Base):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        # A value shared by two hosts is written twice: Ansible reads anchors, but a reader of
        # the file should not have to follow them.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if dumper.resolve(yaml.ScalarNode, value, (True, False)) != _STR:  # type: ignore[no-untyped-call]
        # A string YAML would read as another type unquoted ("", "null", "yes", "1", a date):
        # ansible-core reads it so even tagged `!unsafe` (docs/contracts.md#unsafe-scalars).
        # Quoted and untagged it stays a string; such strings match narrow patterns (words,
        # numbers, dates) that hold no template syntax, so there is nothing to mark as data.
        return dumper.represent_scalar(_STR, value, style="'")
    # Everything else is data to Ansible, however a playbook uses it.
    return dumper.represent_scalar(UNSAFE_TAG, str(value), style="'")


# For str itself (the safe dumper's own representer would win otherwise) and its subclasses.
_UnsafeDumper.add_representer(str, _represent_str)
_UnsafeDumper.add_multi_representer(str, _represent_str)


def dump(data: Any) -> str:
    """`data` as YAML, every string and mapping key that could hold a template tagged `!unsafe`."""
    return yaml.dump(data, Dumper=_UnsafeDumper, sort_keys=False, allow_unicode=True, width=4096)


def write(path: Path, data: Any) -> Path:
    """Write `dump(data)` to `path`, readable by the daemon's user only (it may hold secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # an older file of that name keeps its mode otherwise
        out.write(dump(data))
    return path
