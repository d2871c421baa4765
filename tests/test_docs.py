"""The docs a comment points at are in the repository, and the sections it names exist (docs/README.md)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not the repository's: ignored by git, or made by tools.
SKIPPED_DIRS = {".git", ".venv", "node_modules", "var", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SKIPPED_PATHS = {Path("benchmarks/out")}
# Pointers at design notes that only lived outside the repository; spelt in pieces so this file does not match.
OUTSIDE = ["DESIGN" + " §", "DESIGN" + ".md", "STYLE" + ".md", "STYLE" + " §", "../" + "shared"]
DOC_LINK = re.compile(r"docs/([a-z-]+\.md)#([a-z0-9-]+)")
LINK_IN_DOCS = re.compile(r"\]\(([a-z-]+\.md)#([a-z0-9-]+)\)")  # a link from one page of docs/ to another


def repository_files():
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if set(relative.parts) & SKIPPED_DIRS or any(relative.is_relative_to(p) for p in SKIPPED_PATHS):
            continue
        if path.is_file():
            try:
                yield relative, path.read_text()
            except UnicodeDecodeError:
                continue  # binary


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_nothing_points_at_design_notes_outside_the_repository():
    found = [
        f"{relative}:{number}: {line.strip()}"
        for relative, text in repository_files()
        for number, line in enumerate(text.splitlines(), 1)
        if any(pointer in line for pointer in OUTSIDE)
    ]
    assert found == [], "point these at a page of docs/ instead:\n" + "\n".join(found)


def test_every_docs_section_a_file_names_exists():
    pages = {page.name: anchors(page.read_text()) for page in (ROOT / "docs").glob("*.md")}
    broken = [
        f"{relative}: docs/{page}#{anchor}"
        for relative, text in repository_files()
        for page, anchor in DOC_LINK.findall(text)
        if anchor not in pages.get(page, set())
    ]
    broken += [
        f"docs/{page.name}: {target}#{anchor}"
        for page in (ROOT / "docs").glob("*.md")
        for target, anchor in LINK_IN_DOCS.findall(page.read_text())
        if anchor not in pages.get(target, set())
    ]
    assert broken == [], "no such page or section:\n" + "\n".join(broken)
