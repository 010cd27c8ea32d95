"""README.md stays a short front door and every page's relative links resolve.

Checked on README.md and every Markdown file under docs/: relative links point
at files that exist (and at headings that exist, for `#anchor` links into
Markdown), and no page carries a commit hash or a machine path, which belong in
git history, not in documentation.
"""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
README_MAX_LINES = 220

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# 7-40 hex characters with at least one digit and one letter, as a whole word: an abbreviated or full
# commit hash (plain numbers such as 2048 and words such as "defaced" do not match).
COMMIT_HASH = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])")
MACHINE_PATH = re.compile(r"(?<![\w.~])/(tmp|home|work|Users|root)(/|\b)")


def documentation_pages():
    pages = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    return [page for page in pages if os.path.isfile(page)]


def page_id(page):
    return os.path.relpath(page, ROOT)


def prose_lines(text):
    """Yields (line number, line) outside fenced code blocks."""
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


def links(text):
    for number, line in prose_lines(text):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    seen = {}
    result = set()
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(page):
    with open(page, encoding="utf-8") as stream:
        text = stream.read()
    problems = []
    for number, target in links(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # a URL (scheme:...), not a relative link
            continue
        path_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path_part)) if path_part else page
        where = f"{page_id(page)}:{number}: {target}"
        if not resolved.startswith(ROOT + os.sep) and resolved != ROOT:
            problems.append(f"{where} (leaves the repository)")
        elif not os.path.exists(resolved):
            problems.append(f"{where} (no such file)")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            problems.append(f"{where} (no heading with anchor #{anchor})")
    return problems


def test_docs_folder_has_pages():
    assert len(documentation_pages()) > 1, "docs/ holds no Markdown pages"


@pytest.mark.parametrize("page", documentation_pages(), ids=page_id)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_readme_is_a_short_front_door():
    with open(README, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert lines[:4] == ["# kfine", "", "```", "make demo"] and lines[4:6] == ["make test", "```"], (
        "README.md must open with the block holding `make demo` and `make test`"
    )


@pytest.mark.parametrize("page", documentation_pages(), ids=page_id)
def test_no_commit_hashes_or_machine_paths(page):
    with open(page, encoding="utf-8") as stream:
        text = stream.read()
    found = [
        f"{page_id(page)}:{number}: {match.group(0)}"
        for number, line in enumerate(text.splitlines(), start=1)
        for pattern in (COMMIT_HASH, MACHINE_PATH)
        for match in pattern.finditer(line)
    ]
    assert found == []


def test_checks_catch_what_they_are_meant_to(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## The `kg` format, v2\n\n[ok](#the-kg-format-v2) [bad](#nope) [gone](missing.md)\n"
                    "```\n[in code](ignored.md)\n```\n", encoding="utf-8")
    assert anchors(str(page)) == {"title", "the-kg-format-v2"}
    targets = [target for _, target in links(page.read_text(encoding="utf-8"))]
    assert targets == ["#the-kg-format-v2", "#nope", "missing.md"]
    assert COMMIT_HASH.search("until commit `0865cc8` the model") and COMMIT_HASH.search("at 35ab43b,")
    assert not COMMIT_HASH.search("2048 tokens, decade, fingerprint-free, 1e-4")
    assert MACHINE_PATH.search("--out /tmp/p4/bench4") and not MACHINE_PATH.search("gs://B/tmp or ./tmp/x")
