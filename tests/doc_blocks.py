"""Run the code blocks of a Markdown page as a reader would, top to bottom.

Used by tests/test_docs.py for README.md and every page under docs/, and run as a
script by tests/test_getting_started_wheel.py with the Python of a fresh venv
(`python doc_blocks.py PAGE --workdir DIR`), so it needs nothing but the stdlib.

What each fenced block does, in page order, in one working directory per page:

- ```python title="path/name.py"```: the file a reader creates; written to that path.
- ```python```: executed, every block of a page in one namespace (a module named
  after the page, put in `sys.modules` so msgspec can resolve annotations).
- ```bash```: run with `bash -euo pipefail`, the running Python's `bin` first on
  PATH, so `glasswork` and `pip` are that environment's.
- ```console```: lines starting with `$ ` are commands; the lines after each, up to
  the next command, are its expected output (stdout then stderr), compared exactly
  after stripping trailing spaces; a line `...` stands for any number of lines,
  and `...` within a line for any text (timings, generated ids).
- ```text```, ```json```, ```yaml```, ```toml```: shown, not run (output, diagrams,
  configuration). Any other language is an error, so nothing slips through unrun.
- A block preceded by `<!-- not run: REASON -->` is skipped; REASON must be given.

Snippet lines of pymdownx.snippets (`--8<-- "path"` and `--8<-- "path:section"`, the
section between `--8<-- [start:section]` and `--8<-- [end:section]` markers) are
expanded first, as `mkdocs build` does, so an included file is run too.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = frozenset({"python", "bash", "console"})
SHOWN = frozenset({"text", "json", "yaml", "toml"})
BASH_TIMEOUT_SECONDS = 120

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`\n]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
_SNIPPET = re.compile(r'^(?P<indent> *)-{1,}8<-{1,} +"(?P<target>[^"]+)"[ \t]*$', re.M)
_SECTION_MARK = re.compile(r"^.*-{1,}8<-{1,} \[(?:start|end):[\w-]+\].*\n?", re.M)


class DocsError(AssertionError):
    """A page's block failed, or the page breaks the conventions above."""


@dataclass(frozen=True, slots=True)
class Block:
    lang: str
    code: str
    title: str | None
    skip: str | None
    line: int

    def where(self, page: str) -> str:
        return f"{page}:{self.line}"


def expand_snippets(text: str, base: Path = ROOT, depth: int = 0) -> str:
    """Inline `--8<--` snippet lines the way pymdownx.snippets does (base_path = the repo)."""
    if depth > 4:
        raise DocsError("snippets nested more than 4 deep")

    def include(match: re.Match[str]) -> str:
        target = match["target"]
        path, _, section = target.partition(":")
        file = base / path
        if not file.is_file():
            raise DocsError(f"snippet {target!r}: no file {file}")
        body = file.read_text()
        if section:
            found = re.search(
                rf"^[^\n]*-+8<-+ \[start:{re.escape(section)}\][^\n]*\n"
                rf"(?P<body>.*?)^[^\n]*-+8<-+ \[end:{re.escape(section)}\]",
                body,
                flags=re.S | re.M,
            )
            if found is None:
                raise DocsError(f"snippet {target!r}: no section {section!r} in {path}")
            body = found["body"]
        body = expand_snippets(_SECTION_MARK.sub("", body), base, depth + 1)
        indent = match["indent"]
        return "\n".join(indent + line if line else line for line in body.rstrip("\n").split("\n"))

    return _SNIPPET.sub(include, text)


def blocks(text: str) -> list[Block]:
    """Every fenced block of an expanded page, with its language, title and skip reason."""
    found: list[Block] = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip()
        lang, _, rest = info.partition(" ")
        title_match = re.search(r'title="([^"]+)"', rest)
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip_match = _SKIP.search(before)
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["code"].split("\n"))
        line = text.count("\n", 0, match.start()) + 1
        found.append(
            Block(
                lang=lang,
                code=code,
                title=title_match[1] if title_match else None,
                skip=skip_match["reason"] if skip_match else None,
                line=line,
            )
        )
    return found


def check_conventions(page: str, found: list[Block]) -> None:
    for block in found:
        if block.lang not in RUN | SHOWN:
            raise DocsError(
                f"{block.where(page)}: a ```{block.lang or '(no language)'} block; use one of "
                f"{sorted(RUN | SHOWN)}"
            )
        if block.skip == "":
            raise DocsError(f"{block.where(page)}: `<!-- not run: -->` needs a reason")
        if block.title is not None and block.lang != "python":
            raise DocsError(f"{block.where(page)}: only python blocks may carry a file title")


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PIP_NO_INDEX", "1")  # a page's `pip install` takes what is installed or PIP_FIND_LINKS
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def _run_shell(command: str, workdir: Path, where: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=workdir,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=BASH_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DocsError(f"{where}: still running after {BASH_TIMEOUT_SECONDS} s:\n{command}") from exc


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and _line_matches(expected[0], actual[0]) and _matches(expected[1:], actual[1:])


def _line_matches(expected: str, actual: str) -> bool:
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def _console(block: Block, workdir: Path, where: str) -> None:
    steps: list[tuple[str, list[str]]] = []
    for line in block.code.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
        else:
            raise DocsError(f"{where}: a console block must start with a `$ ` command")
    for command, expected in steps:
        result = _run_shell(command, workdir, where)
        actual = [
            line.rstrip()
            for line in (result.stdout + result.stderr).rstrip("\n").split("\n")
            if result.stdout + result.stderr
        ]
        while expected and expected[-1] == "":
            expected.pop()
        if not _matches(expected, actual):
            raise DocsError(
                f"{where}: `$ {command}` (exit {result.returncode}) printed:\n"
                + "\n".join(actual)
                + "\n--- the page says:\n"
                + "\n".join(expected)
            )


def run_page(path: Path, workdir: Path, *, name: str | None = None) -> int:
    """Run every block of the page at `path` in `workdir`; return how many ran."""
    page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    found = blocks(expand_snippets(path.read_text()))
    check_conventions(page, found)
    module_name = name or "docs_" + re.sub(r"\W", "_", path.stem)
    module = types.ModuleType(module_name)
    module.__file__ = str(workdir / f"{module_name}.py")
    saved_modules = set(sys.modules)
    saved_path = list(sys.path)
    saved_cwd = Path.cwd()
    sys.modules[module_name] = module
    sys.path.insert(0, str(workdir))
    os.chdir(workdir)
    ran = 0
    try:
        for block in found:
            where = block.where(page)
            if block.skip is not None or block.lang in SHOWN:
                continue
            ran += 1
            if block.title is not None:
                target = workdir / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
            elif block.lang == "python":
                try:
                    exec(compile(block.code, where, "exec"), module.__dict__)  # our own docs
                except Exception as exc:
                    raise DocsError(f"{where}: python block failed:\n{block.code}") from exc
            elif block.lang == "bash":
                result = _run_shell(block.code, workdir, where)
                if result.returncode != 0:
                    raise DocsError(
                        f"{where}: bash block exited {result.returncode}:\n{block.code}\n"
                        f"--- stdout:\n{result.stdout}--- stderr:\n{result.stderr}"
                    )
            else:
                _console(block, workdir, where)
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for added in set(sys.modules) - saved_modules:
            if added == module_name or _loaded_from(sys.modules[added], workdir):
                del sys.modules[added]
    return ran


def _loaded_from(module: types.ModuleType, workdir: Path) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and Path(file).resolve().is_relative_to(workdir.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Markdown page's code blocks.")
    parser.add_argument("page", type=Path)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        ran = run_page(args.page.resolve(), args.workdir.resolve())
    except DocsError as exc:
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.page}: {ran} blocks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
