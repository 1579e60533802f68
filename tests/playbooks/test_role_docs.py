"""ansible/README.md documents every role variable exactly as the roles' argument specs declare it
(name, type, default, meaning), and every default as the role's defaults/main.yml sets it, so the
three cannot drift apart. The playbooks' own variables (group_vars/all.yml) have their table too.

`python -m tests.playbooks.test_role_docs` prints the tables from the specs, to paste in the README
after changing a spec.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.playbooks.conftest import PLAYBOOK_DIR

README = PLAYBOOK_DIR / "README.md"
ROLES = PLAYBOOK_DIR / "roles"
GROUP_VARS = PLAYBOOK_DIR / "group_vars" / "all.yml"
PLAYBOOK_TABLE = "group_vars/all.yml"
HEADER = "| variable | type | default | meaning |"


def roles() -> list[str]:
    return sorted(p.parent.parent.name for p in ROLES.glob("*/meta/argument_specs.yml"))


def spec_options(role: str) -> dict[str, dict[str, Any]]:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return dict(specs["argument_specs"]["main"]["options"])


def role_defaults(role: str) -> dict[str, Any]:
    path = ROLES / role / "defaults" / "main.yml"
    return dict(yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def render(value: Any) -> str:
    """A default as the README writes it: the YAML a user would write, in a code span."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value if value else '""'
    elif isinstance(value, list):
        text = "[" + ", ".join(render(v).strip("`") for v in value) + "]"
    elif isinstance(value, dict):
        text = "{}" if not value else yaml.safe_dump(value, default_flow_style=True).strip()
    else:
        text = str(value)
    return f"`{text}`"


def cell(text: str) -> str:
    """Markdown table cells cannot hold a bare `|` (not even in a code span)."""
    return text.replace("|", "\\|")


def spec_type(option: dict[str, Any]) -> str:
    kind = str(option.get("type", "str"))
    return f"list of {option['elements']}" if kind == "list" and "elements" in option else kind


def description(option: dict[str, Any]) -> str:
    text = option.get("description", "")
    return " ".join(" ".join(text) if isinstance(text, list) else str(text).split())


def role_table(role: str) -> str:
    rows = [HEADER, "|---|---|---|---|"]
    for name, option in spec_options(role).items():
        default = render(option["default"]) if "default" in option else "(none)"
        rows.append(
            f"| `{name}` | {spec_type(option)} | {cell(default)} | {cell(description(option))} |"
        )
    return "\n".join(rows)


def tables(readme: str) -> dict[str, dict[str, tuple[str, str, str]]]:
    """Each `#### <title>` followed by a variable table: title -> name -> (type, default,
    meaning), as the README's text has them (pipes still escaped)."""
    found: dict[str, dict[str, tuple[str, str, str]]] = {}
    title = None
    for line in readme.splitlines():
        if line.startswith("#"):
            match = re.fullmatch(r"#### (?:Role `(\w+)`|Playbooks: `(group_vars/all\.yml)`)", line)
            title = (match.group(1) or match.group(2)) if match else None
        elif title and line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 4, f"a row of {title} does not have 4 cells: {line}"
            name = cells[0].strip("`")
            assert name not in found.setdefault(title, {}), f"{name} twice in {title}"
            found[title][name] = (cells[1], cells[2], cells[3])
    return found


@pytest.fixture(scope="module")
def documented() -> dict[str, dict[str, tuple[str, str, str]]]:
    return tables(README.read_text())


@pytest.mark.parametrize("role", roles())
def test_every_option_of_a_role_is_documented_as_its_spec_says(
    role: str, documented: dict[str, dict[str, tuple[str, str, str]]]
) -> None:
    assert role in documented, (
        f"README.md has no table `#### Role \\`{role}\\``:\n{role_table(role)}"
    )
    options = spec_options(role)
    table = documented[role]
    assert list(table) == list(options), (
        f"{role}: README.md documents {sorted(set(table) - set(options))} that the spec lacks "
        f"and lacks {sorted(set(options) - set(table))}; the table from the spec:\n"
        + role_table(role)
    )
    for name, option in options.items():
        want = (
            spec_type(option),
            cell(render(option["default"])),
            cell(description(option)),
        )
        assert table[name] == want, f"{role}: {name} in README.md differs from the spec"


@pytest.mark.parametrize("role", roles())
def test_a_role_spec_and_its_defaults_agree(role: str) -> None:
    """Every option has a default in the spec, the same in defaults/main.yml, and the role sets
    no default that is not an option."""
    options, defaults = spec_options(role), role_defaults(role)
    assert set(defaults) == set(options), (
        f"{role}: defaults without a spec: {sorted(set(defaults) - set(options))}; "
        f"options without a default: {sorted(set(options) - set(defaults))}"
    )
    for name, option in options.items():
        assert "description" in option, f"{role}: {name}"
        assert "type" in option, f"{role}: {name}"
        assert option.get("default") == defaults[name], f"{role}: {name}"


@pytest.mark.parametrize("role", roles())
def test_another_entry_point_declares_its_options_as_main_does(role: str) -> None:
    """`tasks_from: probe.yml` reads some of the role's options: the same ones, documented once."""
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    main = specs["argument_specs"]["main"]["options"]
    for entry, spec in specs["argument_specs"].items():
        assert (ROLES / role / "tasks" / f"{entry}.yml").is_file(), f"{role}: no tasks/{entry}.yml"
        for name, option in spec.get("options", {}).items():
            assert option == main.get(name), f"{role}: {name} of entry point {entry}"


def test_every_role_has_its_defaults_and_argument_specs() -> None:
    for role_dir in sorted(ROLES.iterdir()):
        assert (role_dir / "meta" / "argument_specs.yml").is_file(), role_dir.name
        assert (role_dir / "defaults" / "main.yml").is_file(), role_dir.name


def test_a_variable_both_a_role_and_the_playbooks_default_has_one_value() -> None:
    """group_vars/all.yml ranks above role defaults: a different value there would silently
    replace the role's."""
    playbooks = yaml.safe_load(GROUP_VARS.read_text())
    for role in roles():
        for name, value in role_defaults(role).items():
            if name in playbooks:
                assert playbooks[name] == value, f"{name}: group_vars/all.yml and {role} differ"


def test_the_playbooks_variables_are_documented(
    documented: dict[str, dict[str, tuple[str, str, str]]],
) -> None:
    playbooks = yaml.safe_load(GROUP_VARS.read_text())
    table = documented.get(PLAYBOOK_TABLE, {})
    assert list(table) == list(playbooks)
    for name, value in playbooks.items():
        assert table[name][1] == cell(render(value)), name


def test_no_documented_variable_is_missing_from_the_specs(
    documented: dict[str, dict[str, tuple[str, str, str]]],
) -> None:
    known = {name for role in roles() for name in spec_options(role)}
    known |= set(yaml.safe_load(GROUP_VARS.read_text()))
    for title, table in documented.items():
        assert set(table) <= known, f"{title}: {sorted(set(table) - known)} are in no spec"


if __name__ == "__main__":
    for role in roles():
        print(f"#### Role `{role}`\n\n{role_table(role)}\n")
