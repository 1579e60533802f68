"""The settings as a support bundle shows them: every credential, and every file holding one,
redacted.

The rule, applied to every setting and, inside nested settings (`verbosity_components`), to every
field at any depth:

- a setting whose name's last word (a trailing `file` aside) is `token`, `password`,
  `passphrase`, `secret` or `key` is redacted: it is a credential (`*_token`) or names a file
  that holds one (`tls_key_file`, `ssh_private_key_file`, `admin_token_file`, a component's
  `token_file` and `client_key_file`). Certificates and CA files are public, and are kept;
- a URL keeps its scheme, host, port, path and user, never its password nor any query value
  (a driver may take `?password=` or `?sslkey=` there): `database_url`;
- maps of values handed to Ansible keep their keys, never their values: `extra_vars`,
  `ansible_env` (a become password, a proxy URL with a password, a vault file).

Redacting by name also covers a credential setting added later, as long as it is named as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.config import Settings

REDACTED = "<redacted>"
CREDENTIAL_WORDS = frozenset({"token", "password", "passphrase", "secret", "key"})
VALUES_HIDDEN = frozenset({"extra_vars", "ansible_env"})
URLS = frozenset({"database_url"})


def is_credential(name: str) -> bool:
    words = [w for w in name.lower().split("_") if w]
    if words and words[-1] == "file":
        words.pop()
    return bool(words) and words[-1] in CREDENTIAL_WORDS


def redact_url(url: str) -> str:
    """The URL without its password and query values; an unreadable one is redacted whole."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return REDACTED
    query = dict.fromkeys(parsed.query, REDACTED)
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("***", REDACTED) if parsed.password is not None else shown


def _redact(name: str, value: Any) -> Any:
    if value is None:
        return None
    if is_credential(name):
        return REDACTED
    if name in URLS and isinstance(value, str):
        return redact_url(value)
    if name in VALUES_HIDDEN and isinstance(value, Mapping):
        return dict.fromkeys(value, REDACTED)
    if isinstance(value, Mapping):
        return {key: _redact(str(key), inner) for key, inner in value.items()}
    return value


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """Every setting, as JSON values, with the rule of the module docstring applied."""
    dumped = settings.model_dump(mode="json")
    return {name: _redact(name, value) for name, value in dumped.items()}
