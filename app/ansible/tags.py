"""The tags a playbook declares, read from its YAML, and a job request's tags checked against them.

A job request may name `tags` and `skip_tags` (ansible-playbook's --tags and --skip-tags). Each
must be a tag the kind's playbook declares somewhere: on a play, a role entry, a task or a block,
in the playbook or in what it brings in (import_playbook, the roles of a play and their meta
dependencies, include_role / import_role with their tasks_from, include_tasks / import_tasks,
block / rescue / always). A tag written as a template (`{{ ... }}`) is not known before the run,
so it is not declared. The playbooks are read as data (no template is evaluated, no file run).

Ansible's special tags are refused in both lists: `always` (the node's name check, the verified
join and the cordon/drain around a change carry it, and `--skip-tags always` would drop them),
`never`, and the keywords `all`, `tagged` and `untagged`, which select by whether a task is
tagged rather than by name and would reach the same steps.

What was read is kept per playbook with the size and modification time of every file it took
(missing ones too), and read again when any of them changed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.errors import Misconfigured, ValidationFailed

TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TAGS_MAX = 20
SPECIAL = ("always", "never", "all", "tagged", "untagged")
# Guards against a playbook that includes itself (directly or through a cycle of files).
DEPTH_MAX = 32

_INCLUDE_ROLE = {"include_role", "import_role"}
_INCLUDE_TASKS = {"include_tasks", "import_tasks", "include"}
_IMPORT_PLAYBOOK = {"import_playbook", "include_playbook"}
_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
_BLOCK_LISTS = ("block", "rescue", "always")


def _action(task: dict[str, Any], names: set[str]) -> tuple[str, Any] | None:
    """The task's module among `names` (short, ansible.builtin. or ansible.legacy.), with its
    arguments."""
    for key, value in task.items():
        if not isinstance(key, str):
            continue
        short = key.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        if short in names:
            return short, value
    return None


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads Ansible's own tags (`!unsafe`, `!vault`) as their plain values."""


def _plain(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _plain)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a requested tag (its form only), or None."""
    if not TAG_RE.match(name):
        return f"{name[:80]!r} is not a tag name: 1 to 64 letters, digits, '_' or '-'"
    if name.startswith("-"):
        # ansible-playbook would take `--tags -x` for an option.
        return f"{name!r} starts with '-': a tag name cannot"
    return None


def _templated(text: str) -> bool:
    return "{{" in text or "{%" in text


def tag_names(value: Any) -> set[str]:
    """The names a `tags:` keyword gives: a list, or a string of comma-separated names."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        return set()
    names = set()
    for item in items:
        if isinstance(item, int | float) and not isinstance(item, bool):
            item = str(item)
        if isinstance(item, str) and not _templated(item):
            for part in item.split(","):
                if part.strip():
                    names.add(part.strip())
    return names


@dataclass
class _Reading:
    """One read of a playbook: the tags found and every file looked at (for the cache)."""

    tags: set[str]
    files: dict[Path, tuple[int, int] | None]
    # The directories of the playbooks read: Ansible finds roles in their roles/ too.
    roots: list[Path]

    def load(self, path: Path) -> Any:
        path = Path(os.path.normpath(path))
        stamp = _stamp(path)
        self.files[path] = stamp
        if stamp is None:
            return None
        try:
            with path.open(encoding="utf-8") as handle:
                return yaml.load(handle, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise Misconfigured(
                f"clusterm could not read the tags of {path}: {type(exc).__name__}: {exc}; fix "
                "the playbook (ansible-playbook --syntax-check shows where)",
                setting="playbook_dir",
            ) from None

    # --- playbooks ---------------------------------------------------------------------------

    def playbook(self, path: Path, depth: int) -> None:
        if depth > DEPTH_MAX:
            return
        plays = self.load(path)
        if not isinstance(plays, list):
            return
        if path.parent not in self.roots:
            self.roots.append(path.parent)
        for play in plays:
            if not isinstance(play, dict):
                continue
            imported = _action(play, _IMPORT_PLAYBOOK)
            if imported is not None:
                self.tags |= tag_names(play.get("tags"))
                target = imported[1]
                if isinstance(target, dict):
                    target = target.get("file")
                if isinstance(target, str) and not _templated(target):
                    self.playbook(path.parent / target, depth + 1)
                continue
            self.tags |= tag_names(play.get("tags"))
            for entry in play.get("roles") or []:
                self.role_entry(entry, path.parent, depth)
            for key in _TASK_LISTS:
                self.tasks(play.get(key), base=path.parent, role_dir=None, depth=depth)

    # --- roles -------------------------------------------------------------------------------

    def role_entry(self, entry: Any, base: Path, depth: int) -> None:
        name: Any
        if isinstance(entry, str):
            name = entry
        elif isinstance(entry, dict):
            name = entry.get("role") or entry.get("name")
            self.tags |= tag_names(entry.get("tags"))
        else:
            return
        if isinstance(name, str) and not _templated(name):
            self.role(name, base, "main", depth)

    def role(self, name: str, base: Path, tasks_from: str, depth: int) -> None:
        if depth > DEPTH_MAX:
            return
        role_dir = _find_role(name, [base, *self.roots])
        if role_dir is None:
            return
        playbook_dir = _playbook_dir(role_dir)
        self.tasks(
            self.load(_yaml_file(role_dir / "tasks", tasks_from)),
            base=role_dir / "tasks",
            role_dir=role_dir,
            depth=depth + 1,
        )
        self.tasks(
            self.load(_yaml_file(role_dir / "handlers", "main")),
            base=role_dir / "handlers",
            role_dir=role_dir,
            depth=depth + 1,
        )
        meta = self.load(_yaml_file(role_dir / "meta", "main"))
        if isinstance(meta, dict):
            for dependency in meta.get("dependencies") or []:
                self.role_entry(dependency, playbook_dir, depth + 1)

    # --- tasks -------------------------------------------------------------------------------

    def tasks(self, tasks: Any, *, base: Path, role_dir: Path | None, depth: int) -> None:
        if depth > DEPTH_MAX or not isinstance(tasks, list):
            return
        for task in tasks:
            if not isinstance(task, dict):
                continue
            self.tags |= tag_names(task.get("tags"))
            for key in _BLOCK_LISTS:
                if isinstance(task.get(key), list):
                    self.tasks(task[key], base=base, role_dir=role_dir, depth=depth)
            role = _action(task, _INCLUDE_ROLE)
            if role is not None and isinstance(role[1], dict):
                args = role[1]
                self.tags |= _applied(args)
                name, tasks_from = args.get("name"), args.get("tasks_from") or "main"
                if (
                    isinstance(name, str)
                    and isinstance(tasks_from, str)
                    and not _templated(name + tasks_from)
                ):
                    root = _playbook_dir(role_dir) if role_dir is not None else base
                    self.role(name, root, tasks_from, depth + 1)
            included = _action(task, _INCLUDE_TASKS)
            if included is not None:
                target = included[1]
                if isinstance(target, dict):
                    self.tags |= _applied(target)
                    target = target.get("file") or target.get("_raw_params")
                if isinstance(target, str) and not _templated(target):
                    path = _task_file(target.strip(), base=base, role_dir=role_dir)
                    self.tasks(
                        self.load(path), base=path.parent, role_dir=role_dir, depth=depth + 1
                    )


def _yaml_file(directory: Path, name: str) -> Path:
    """A role's `tasks_from: x` is x.yml, x.yaml or x itself, as Ansible looks for it."""
    for candidate in (directory / f"{name}.yml", directory / f"{name}.yaml", directory / name):
        if candidate.is_file():
            return candidate
    return directory / f"{name}.yml"


def _task_file(target: str, *, base: Path, role_dir: Path | None) -> Path:
    """Where Ansible finds an included task file: next to the including file, else in the
    role's tasks/ (a role's include of `x.yml` from a nested file), else beside the playbook."""
    candidates = [base / target]
    if role_dir is not None:
        candidates += [role_dir / "tasks" / target, role_dir / target]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def _applied(args: dict[Any, Any]) -> set[str]:
    """The tags an include gives what it includes (`apply: {tags: ...}`)."""
    apply = args.get("apply")
    return tag_names(apply.get("tags")) if isinstance(apply, dict) else set()


def _find_role(name: str, bases: Sequence[Path]) -> Path | None:
    for base in bases:
        for candidate in (base / "roles" / name, base / name):
            if (candidate / "tasks").is_dir() or (candidate / "meta").is_dir():
                return candidate
    return None


def _playbook_dir(role_dir: Path) -> Path:
    """The directory whose roles/ holds this role (where its siblings are found)."""
    return role_dir.parent.parent if role_dir.parent.name == "roles" else role_dir.parent


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


_cache: dict[Path, tuple[dict[Path, tuple[int, int] | None], frozenset[str]]] = {}
_cache_lock = threading.Lock()


def declared_tags(playbook: Path) -> frozenset[str]:
    """Every tag `playbook` declares (special ones too), from its files or from the cache."""
    playbook = Path(os.path.normpath(playbook.absolute()))
    with _cache_lock:
        cached = _cache.get(playbook)
    if cached is not None:
        files, tags = cached
        if all(_stamp(path) == stamp for path, stamp in files.items()):
            return tags
    reading = _Reading(tags=set(), files={}, roots=[])
    reading.playbook(playbook, 0)
    tags = frozenset(reading.tags)
    with _cache_lock:
        _cache[playbook] = (reading.files, tags)
    return tags


@dataclass(frozen=True)
class _Problem:
    field: str
    reason: str


def _describe(declared: frozenset[str]) -> str:
    names = sorted(declared - set(SPECIAL))
    return ", ".join(names) if names else "none"


def check_tags(*, playbook: Path, kind: str, tags: Sequence[str], skip_tags: Sequence[str]) -> None:
    """Refuse (422) a request's tags that are not declared tags of `playbook`, or special ones.

    The names' form and number are checked first (the request's schema does it too), so that no
    odd name reaches the playbook's command line. Nothing is read when both lists are empty."""
    problems: list[_Problem] = []
    for field, names in (("tags", tags), ("skip_tags", skip_tags)):
        if len(names) > TAGS_MAX:
            problems.append(
                _Problem(field, f"at most {TAGS_MAX} tags; give fewer ({len(names)} given)")
            )
            continue
        for index, name in enumerate(names):
            problem = name_problem(name)
            if problem is not None:
                problems.append(_Problem(f"{field}[{index}]", problem))
    declared: frozenset[str] | None = None
    if not problems and (tags or skip_tags):
        declared = declared_tags(playbook)
        problems = _undeclared(declared, kind=kind, playbook=playbook, tags=tags, skip=skip_tags)
    if problems:
        fields = [{"field": p.field, "reason": p.reason} for p in problems]
        message = "; ".join(f"{p.field}: {p.reason}" for p in problems[:5])
        if len(problems) > 5:
            message += f"; and {len(problems) - 5} more"
        extra = {} if declared is None else {"declared_tags": sorted(declared - set(SPECIAL))}
        raise ValidationFailed(message, fields=fields, **extra)


def _undeclared(
    declared: frozenset[str],
    *,
    kind: str,
    playbook: Path,
    tags: Sequence[str],
    skip: Sequence[str],
) -> list[_Problem]:
    problems = []
    for field, names in (("tags", tags), ("skip_tags", skip)):
        for index, name in enumerate(names):
            if name in SPECIAL:
                problems.append(
                    _Problem(
                        f"{field}[{index}]",
                        f"{name!r} is one of Ansible's special tags ({', '.join(SPECIAL)}), "
                        "which clusterm refuses: the node's name check, the join's "
                        "verification and the cordon/drain around a change run whatever the "
                        "tags, and cannot be skipped. Name the steps to run or skip; the "
                        f"{kind} playbook declares: {_describe(declared)}",
                    )
                )
            elif name not in declared:
                problems.append(
                    _Problem(
                        f"{field}[{index}]",
                        f"{name!r} is not a tag of the {kind} playbook ({playbook.name}); it "
                        f"declares: {_describe(declared)}",
                    )
                )
    both = sorted(set(tags) & set(skip))
    if both and not problems:
        problems.append(
            _Problem(
                "skip_tags", f"{', '.join(both)} given in both tags and skip_tags; give each once"
            )
        )
    return problems
