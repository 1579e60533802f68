"""The tags a playbook declares (app.ansible.tags), read from small playbooks written here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.ansible import tags
from app.errors import Misconfigured, ValidationFailed


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


LAYOUT = {
    "site.yml": """
- name: Import the other playbook
  ansible.builtin.import_playbook: other.yml
  tags: [from_import]

- name: A play
  hosts: all
  tags: play_tag
  roles:
    - plain_role
    - role: tagged_role
      tags: [role_entry, "a,b"]
  pre_tasks:
    - name: Pre
      ansible.builtin.debug: {msg: pre}
      tags: pre
  tasks:
    - name: A block
      tags: block_tag
      block:
        - name: In the block
          ansible.builtin.debug: {msg: x}
          tags: in_block
      rescue:
        - name: In the rescue
          ansible.builtin.debug: {msg: x}
          tags: [in_rescue]
      always:
        - name: In always
          ansible.builtin.debug: {msg: x}
          tags: in_always
    - name: Include a role's other file
      ansible.builtin.include_role:
        name: plain_role
        tasks_from: extra
    - name: Import a role
      import_role:
        name: imported_role
        apply:
          tags: [applied]
    - name: Include tasks
      ansible.builtin.include_tasks: tasks/more.yml
    - name: Import tasks by file
      ansible.builtin.import_tasks:
        file: tasks/other.yaml
    - name: Templated
      ansible.builtin.debug: {msg: x}
      tags: ["{{ some_var }}", kept]
    - name: Templated include
      ansible.builtin.include_tasks: "{{ where }}.yml"
    - name: Special
      ansible.builtin.debug: {msg: x}
      tags: [always, 7]
""",
    "other.yml": """
- name: Other
  hosts: all
  tasks:
    - name: Unsafe text is data
      ansible.builtin.debug:
        msg: !unsafe "{{ not templated }}"
      tags: other_task
""",
    "roles/plain_role/tasks/main.yml": """
- name: Main
  ansible.builtin.debug: {msg: x}
  tags: [plain_main]
- name: Nested include, relative to the role's tasks
  ansible.builtin.include_tasks: nested.yml
""",
    "roles/plain_role/tasks/nested.yml": """
- name: Nested
  ansible.builtin.debug: {msg: x}
  tags: nested
""",
    "roles/plain_role/tasks/extra.yml": """
- name: Extra
  ansible.builtin.debug: {msg: x}
  tags: extra
- name: Sibling role
  ansible.builtin.include_role:
    name: sibling_role
""",
    "roles/plain_role/handlers/main.yml": """
- name: A handler
  ansible.builtin.debug: {msg: x}
  tags: handler_tag
""",
    "roles/tagged_role/tasks/main.yml": """
- name: Tagged role task
  ansible.builtin.debug: {msg: x}
  tags: tagged_task
""",
    "roles/tagged_role/meta/main.yml": """
dependencies:
  - role: dependency_role
""",
    "roles/dependency_role/tasks/main.yml": """
- name: Dependency
  ansible.builtin.debug: {msg: x}
  tags: dependency
""",
    "roles/imported_role/tasks/main.yml": """
- name: Imported
  ansible.builtin.debug: {msg: x}
  tags: imported
""",
    "roles/sibling_role/tasks/main.yml": """
- name: Sibling
  ansible.builtin.debug: {msg: x}
  tags: sibling
""",
    "tasks/more.yml": """
- name: More
  ansible.builtin.debug: {msg: x}
  tags: more
- name: Include beside this file
  ansible.builtin.include_tasks: deeper.yml
- name: A role from a tasks file outside roles/ (found beside the playbook)
  ansible.builtin.import_role:
    name: from_tasks_role
""",
    "roles/from_tasks_role/tasks/main.yml": """
- name: From a tasks file
  ansible.builtin.debug: {msg: x}
  tags: from_tasks
""",
    "tasks/deeper.yml": """
- name: Deeper
  ansible.builtin.debug: {msg: x}
  tags: deeper
""",
    "tasks/other.yaml": """
- name: Other file
  ansible.builtin.debug: {msg: x}
  tags: other_file
""",
}


def test_every_way_a_playbook_declares_a_tag_is_read(tmp_path: Path) -> None:
    write(tmp_path, LAYOUT)
    found = tags.declared_tags(tmp_path / "site.yml")
    assert found == {
        "from_import",
        "other_task",
        "play_tag",
        "role_entry",
        "a",
        "b",
        "pre",
        "block_tag",
        "in_block",
        "in_rescue",
        "in_always",
        "plain_main",
        "nested",
        "extra",
        "sibling",
        "handler_tag",
        "tagged_task",
        "dependency",
        "applied",
        "imported",
        "more",
        "deeper",
        "from_tasks",
        "other_file",
        "kept",
        "always",
        "7",
    }


def test_a_playbook_that_imports_itself_is_read_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "loop.yml": "- ansible.builtin.import_playbook: loop.yml\n  tags: looped\n",
            "tasks/a.yml": "- ansible.builtin.include_tasks: a.yml\n  tags: a\n",
            "inc.yml": "- hosts: all\n  tasks:\n    - include_tasks: tasks/a.yml\n",
        },
    )
    assert tags.declared_tags(tmp_path / "loop.yml") == {"looped"}
    assert tags.declared_tags(tmp_path / "inc.yml") == {"a"}


def test_the_tags_are_read_again_when_any_file_changes(tmp_path: Path) -> None:
    write(tmp_path, LAYOUT)
    playbook = tmp_path / "site.yml"
    assert "nested" in tags.declared_tags(playbook)
    nested = tmp_path / "roles/plain_role/tasks/nested.yml"
    nested.write_text(nested.read_text().replace("tags: nested", "tags: renamed_tag"))
    # The same size and modification time would hide the change: make the time differ.
    stat = nested.stat()
    os.utime(nested, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    found = tags.declared_tags(playbook)
    assert "renamed_tag" in found
    assert "nested" not in found


def test_a_file_that_appears_later_is_read(tmp_path: Path) -> None:
    write(tmp_path, {"p.yml": "- hosts: all\n  tasks:\n    - include_tasks: later.yml\n"})
    assert tags.declared_tags(tmp_path / "p.yml") == frozenset()
    write(tmp_path, {"later.yml": "- debug: {msg: x}\n  tags: late\n"})
    assert tags.declared_tags(tmp_path / "p.yml") == {"late"}


def test_a_broken_playbook_is_a_misconfiguration_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"bad.yml": "- hosts: all\n  tasks: [\n"})
    with pytest.raises(Misconfigured, match=r"bad\.yml"):
        tags.declared_tags(tmp_path / "bad.yml")


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    write(tmp_path, LAYOUT)
    return tmp_path / "site.yml"


def refusal(playbook: Path, tags_: list[str], skip: list[str]) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        tags.check_tags(playbook=playbook, kind="update", tags=tags_, skip_tags=skip)
    return caught.value


def test_declared_tags_pass(playbook: Path) -> None:
    tags.check_tags(playbook=playbook, kind="update", tags=["more", "a"], skip_tags=["deeper"])
    tags.check_tags(playbook=playbook.parent / "missing.yml", kind="u", tags=[], skip_tags=[])


def test_an_unknown_tag_is_refused_listing_the_declared_ones(playbook: Path) -> None:
    error = refusal(playbook, ["more", "nope"], [])
    assert error.details["fields"] == [
        {"field": "tags[1]", "reason": error.details["fields"][0]["reason"]}
    ]
    assert "'nope' is not a tag of the update playbook (site.yml)" in error.message
    assert "deeper" in error.message
    assert "always" not in error.details["declared_tags"]
    assert "deeper" in error.details["declared_tags"]


@pytest.mark.parametrize("special", tags.SPECIAL)
def test_special_tags_are_refused_in_both_lists(playbook: Path, special: str) -> None:
    for tags_, skip, field in (([special], [], "tags[0]"), ([], ["more", special], "skip_tags[1]")):
        error = refusal(playbook, tags_, skip)
        assert error.details["fields"][0]["field"] == field
        assert "name check" in error.message
        assert "cannot be skipped" in error.message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a,b", "is not a tag name"),
        ("", "is not a tag name"),
        ("x" * 65, "is not a tag name"),
        ("-x", "starts with '-'"),
        ("a b", "is not a tag name"),
        ("{{ x }}", "is not a tag name"),
    ],
)
def test_names_of_the_wrong_form_are_refused_before_any_file_is_read(
    tmp_path: Path, name: str, why: str
) -> None:
    error = refusal(tmp_path / "missing.yml", [], [name])
    assert why in error.message
    assert error.details["fields"][0]["field"] == "skip_tags[0]"


def test_too_many_tags_are_refused(playbook: Path) -> None:
    error = refusal(playbook, ["more"] * (tags.TAGS_MAX + 1), [])
    assert error.details["fields"] == [
        {"field": "tags", "reason": f"at most 20 tags; give fewer ({tags.TAGS_MAX + 1} given)"}
    ]


def test_a_tag_in_both_lists_is_refused(playbook: Path) -> None:
    error = refusal(playbook, ["more"], ["more"])
    assert "given in both" in error.message
