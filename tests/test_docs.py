"""The documentation points only at things that exist: every relative link of the project's
Markdown pages (README.md, ARCHITECTURE.md, ... and docs/*.md) reaches a file, every #anchor a
heading of its page, and every test a page cites by name is defined in the file it links to."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/*.md")])

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A citation: a link to a test module, then the tests it names, e.g.
# ([tests](../tests/eventstore/test_store.py) `test_a`, `test_b`)
CITATION = re.compile(
    r"\[[^\]]*\]\(([^)\s#]*tests/[^)\s#]+\.py)\)"  # the link to the module
    r"((?:[\s,]*(?:and\s+)?`test_\w+`)+)"  # the names after it
)
TEST_NAME = re.compile(r"`(test_\w+)`")
FENCE = re.compile(r"^(```|~~~)")


def prose(page: Path) -> str:
    """The page without its fenced code blocks, where brackets are code, not links."""
    kept, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (lower case, punctuation dropped, spaces
    to hyphens, a repeated one numbered)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def defines(source: str, test: str) -> bool:
    """Whether the module's source defines that test function."""
    return re.search(rf"^\s*(async\s+)?def {test}\(", source, re.MULTILINE) is not None


def found_in(test: str) -> str:
    """Where a test cited in the wrong file is defined, to make the fix obvious."""
    modules = [
        str(module.relative_to(ROOT))
        for module in sorted((ROOT / "tests").rglob("test_*.py"))
        if defines(module.read_text(encoding="utf-8"), test)
    ]
    return f" (defined in {', '.join(modules)})" if modules else " (defined nowhere)"


def name(page: Path) -> str:
    """The page's path from the project's root, as the tests' ids show it."""
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_relative_link_reaches_a_file_and_its_anchor_a_heading(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{name(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_cited_test_is_defined_in_the_file_it_links_to(page):
    text = prose(page)
    missing, cited = [], 0
    for target, names in CITATION.findall(text):
        module = (page.parent / target).resolve()
        source = module.read_text(encoding="utf-8") if module.exists() else ""
        for test in TEST_NAME.findall(names):
            cited += 1
            if not defines(source, test):
                missing.append(f"{target} `{test}`{found_in(test)}")
    assert not missing, f"{name(page)}: " + "; ".join(missing)
    # A test named without the link to its file cannot be checked: every name is cited.
    assert len(TEST_NAME.findall(text)) == cited, f"{name(page)}: a test named without its file"
