"""The user documentation stays true to the code and to the repository.

- docs/verdicts.md names every phase, verdict, decision, reading, condition type and reason the
  operator can write: the enums are imported, so a new value without its explanation fails here;
- no Markdown or Python file points outside the repository (design notes that a clone does not have);
- every relative link in docs/*.md and README.md resolves to a file or directory in the repository,
  and every ``#anchor`` to a heading of the page it names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import pytest

from ferrocanary.model.decisions import Decision, Reading
from ferrocanary.model.reasons import ConditionType, Reason
from ferrocanary.policy.state import Phase, Verdict

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
VERDICTS = DOCS / "verdicts.md"
PAGES = (
    "install.md",
    "metrics-contract.md",
    "statistics.md",
    "verdicts.md",
    "architecture.md",
    "troubleshooting.md",
)
# Built from parts so that this file does not match its own search.
OUTSIDE = "shared" + "/"
# Not the project's own files: environments, build output, generated reports (and tests' fixtures).
SKIPPED_DIRS = {"target", "node_modules", "reports", "__pycache__"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.mark.parametrize("enum", [Phase, Verdict, Decision, Reading, ConditionType, Reason])
def test_verdicts_page_explains_every_value(enum: type[StrEnum]) -> None:
    text = VERDICTS.read_text()
    missing = [value for value in _values(enum) if f"`{value}`" not in text]
    assert not missing, f"docs/verdicts.md does not explain {enum.__name__} values: {missing}"


def _is_fixture(directory: Path) -> bool:
    parts = directory.relative_to(ROOT).parts
    return len(parts) > 1 and parts[0] == "tests" and "data" in parts


def _project_files(*suffixes: str) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(ROOT):
        here = Path(directory)
        subdirs[:] = [
            d
            for d in subdirs
            if not d.startswith(".") and d not in SKIPPED_DIRS and not _is_fixture(here / d)
        ]
        yield from (here / f for f in files if Path(f).suffix in suffixes)


def test_no_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in _project_files(".md", ".py"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if OUTSIDE in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "files refer to notes outside the repository:\n" + "\n".join(offenders)


def test_every_page_exists_and_the_readme_links_to_it() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        assert (DOCS / page).is_file(), f"docs/{page} is missing"
        assert f"(docs/{page}" in readme, f"README.md does not link to docs/{page}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, flags=re.MULTILINE)}


def _links(page: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for match in LINK.finditer(text):
        target = match.group(1)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # skip https:, mailto:, ...
            yield target


def _linking_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", _linking_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        path_part, _, anchor = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.exists() or ROOT not in (target, *target.parents):
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)
