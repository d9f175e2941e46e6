"""Every relative link of README.md and docs/*.md resolves inside the repository (file and #anchor), and no page
points at something a clone does not have (a design file kept elsewhere, an absolute path of one machine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
OUTSIDE = re.compile(r"DESIGN\.md|/work/|/home/|seed-test-plan\.md")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: inline markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(CODE_SPAN.sub(lambda m: "x" * len(m.group(0)) if "](" not in m.group(0)
                                                 else m.group(0), line)):
            found.append((number, match.group(1)))
    return found


def test_the_docs_folder_has_every_page() -> None:
    names = {p.name for p in PAGES}
    for page in ("getting-started.md", "staging.md", "chat-users.md", "probes.md", "sla.md", "scenarios.md",
                 "reference-backend.md", "benchmarks.md", "development.md", "protocol.md", "report-schema.md",
                 "options.md"):
        assert page in names, f"docs/{page} is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}:{number}: ({target})"
        if not dest.is_relative_to(REPO):
            broken.append(f"{where} points outside the repository")
        elif not dest.exists():
            broken.append(f"{where}: no file {dest.relative_to(REPO)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_points_outside_the_repository(page: Path) -> None:
    hits = [f"{page.relative_to(REPO)}:{n}: {line.strip()}"
            for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "a page cites a file a clone does not have:\n" + "\n".join(hits)


def test_readme_is_a_landing_page() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move the detail into docs/"
    linked = {Path(target.partition("#")[0]).name for _, target in links(REPO / "README.md")}
    missing = [p.name for p in PAGES if p.parent.name == "docs" and p.name not in linked]
    assert not missing, f"README.md does not link to {missing}"


def test_slug_follows_github() -> None:
    assert slug("Profiles (`config/*.toml`)") == "profiles-configtoml"
    assert slug("What the probes do to staging's data stores") == "what-the-probes-do-to-stagings-data-stores"
    assert slug("Attribution: which tier made it slow") == "attribution-which-tier-made-it-slow"


def test_report_schema_page_names_every_field_of_the_example_report() -> None:
    import json

    example = json.loads((REPO / "tests" / "fixtures" / "sla_report_example.json").read_text(encoding="utf-8"))
    page = (REPO / "docs" / "report-schema.md").read_text(encoding="utf-8")
    missing = [key for key in example if f'"{key}"' not in page]
    assert not missing, f"docs/report-schema.md does not describe {missing} (see sla_checks/report.py's schema)"
