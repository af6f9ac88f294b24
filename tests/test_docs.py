"""Every code block of README.md and of the documentation site runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doc_blocks import ROOT, DocsError, blocks, expand_snippets, run_page

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_the_readme_and_the_guide_have_runnable_examples() -> None:
    runnable = {
        page.name: sum(
            b.lang in {"python", "bash", "console"} and b.skip is None
            for b in blocks(expand_snippets(page.read_text()))
        )
        for page in PAGES
    }
    assert runnable["README.md"] >= 4
    assert sum(runnable.values()) >= 60, runnable


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_a_failing_python_block_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(DocsError, match=r"page.md:3: python block failed"):
        run_page(page(tmp_path, "# t\n\n```python\nassert 1 == 2\n```\n"), tmp_path)


def test_blocks_share_a_namespace_and_files_are_written(tmp_path: Path) -> None:
    text = (
        '```python title="pkg/mod.py"\nVALUE = 41\n```\n\n'
        "```python\nfrom pkg.mod import VALUE\nanswer = VALUE + 1\n```\n\n"
        "```python\nassert answer == 42\n```\n\n"
        "```bash\ntest -f pkg/mod.py\n```\n"
    )
    assert run_page(page(tmp_path, text), tmp_path) == 4


def test_a_console_block_compares_output(tmp_path: Path) -> None:
    good = "```console\n$ printf 'a\\nb\\nc 0.25s\\n'\na\n...\nc ...s\n$ true\n```\n"
    assert run_page(page(tmp_path, good), tmp_path) == 1
    with pytest.raises(DocsError, match="the page says"):
        run_page(page(tmp_path, "```console\n$ echo one\ntwo\n```\n"), tmp_path)


def test_a_failing_bash_block_and_unknown_languages_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DocsError, match="exited 3"):
        run_page(page(tmp_path, "```bash\nexit 3\n```\n"), tmp_path)
    with pytest.raises(DocsError, match="```sh block"):
        run_page(page(tmp_path, "```sh\nls\n```\n"), tmp_path)
    with pytest.raises(DocsError, match="needs a reason"):
        run_page(page(tmp_path, "<!-- not run: -->\n```bash\nexit 1\n```\n"), tmp_path)
    skipped = "<!-- not run: needs AWS credentials -->\n```bash\nexit 1\n```\n"
    assert run_page(page(tmp_path, skipped), tmp_path) == 0


def test_snippets_are_expanded_before_running(tmp_path: Path) -> None:
    (tmp_path / "inc.md").write_text(
        "x\n<!-- --8<-- [start:part] -->\n```python\nincluded = True\n```\n<!-- --8<-- [end:part] -->\n"
    )
    text = '--8<-- "inc.md:part"\n\n```python\nassert included\n```\n'
    found = blocks(expand_snippets(text, base=tmp_path))
    assert [b.code for b in found] == ["included = True\n", "assert included\n"]
    with pytest.raises(DocsError, match="no section 'nope'"):
        expand_snippets('--8<-- "inc.md:nope"\n', base=tmp_path)


def test_the_readme_headline_figures_are_the_measured_ones() -> None:
    """Each ratio in the README's headline table is one the performance page reports."""
    readme = (ROOT / "README.md").read_text()
    headline = readme[readme.index("[start:headline-figures]") : readme.index("[end:headline-figures]")]
    measured = (ROOT / "docs" / "performance.md").read_text()
    ratios = re.findall(r"\b\d+(?:\.\d+)?x\b", headline)
    assert len(ratios) >= 10
    missing = [ratio for ratio in ratios if not re.search(rf"(?<![\d.]){re.escape(ratio)}", measured)]
    assert missing == []
    assert "| 0 |" in measured  # jobs lost, per fault row
