"""The repository explains itself: every link into docs/ leads to a heading that exists, and no
comment or document sends a reader to something the repository does not hold."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a reader of the code and the docs may be sent to; everything is read as text.
SOURCES = ("app", "clusterctl", "migrations", "benchmarks", "tests", "ansible", "docs")
SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".sh", ".j2"}
LINK = re.compile(r"docs/([a-z_]+\.md)#([a-z0-9-]+)|\]\(([a-z_]+\.md)#([a-z0-9-]+)\)")
# Notes that name a place outside the repository: a planning page, a ticket, a scratch file.
OUTSIDE = re.compile(r"REFERENCE\.md|\bthe issue\b|\(issue\b|\bissue \d|\.\./shared/|/tmp/\w")


def texts() -> list[tuple[Path, str]]:
    found = [(ROOT / "README.md", (ROOT / "README.md").read_text())]
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                found.append((path, path.read_text(errors="replace")))
    return found


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub makes of a document's headings."""
    slugs = set()
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


def test_every_link_to_a_docs_anchor_leads_to_a_heading() -> None:
    broken = []
    links = 0
    for path, text in texts():
        for match in LINK.finditer(text):
            name, anchor = (match[1], match[2]) if match[1] else (match[3], match[4])
            doc = ROOT / "docs" / name
            links += 1
            if not doc.is_file() or anchor not in anchors(doc):
                broken.append(f"{path.relative_to(ROOT)}: docs/{name}#{anchor}")
    assert links >= 20, "the code points at docs/contracts.md; the pattern no longer finds it"
    assert broken == []


def test_nothing_points_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    outside = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match[0]}"
        for path, text in texts()
        if path != this
        for match in OUTSIDE.finditer(text)
    ]
    assert outside == []


# A relative link or picture in a Markdown file: [text](target) or ![alt](target).
RELATIVE = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s#]+)(?:#[^)]*)?\)")


def test_every_relative_link_and_picture_in_the_docs_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = [
        f"{doc.relative_to(ROOT)}: {match[1]}"
        for doc in docs
        for match in RELATIVE.finditer(doc.read_text())
        if not (doc.parent / match[1]).exists()
    ]
    pictures = [m[1] for m in RELATIVE.finditer((ROOT / "README.md").read_text()) if ".png" in m[1]]
    assert len(pictures) >= 9, "the README shows each console page: the pattern misses them"
    assert missing == []
