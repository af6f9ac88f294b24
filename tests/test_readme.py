"""The README's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 5


def test_readme_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("readme")
    monkeypatch.setitem(sys.modules, "readme", module)  # msgspec resolves annotations through it
    for index, block in enumerate(python_blocks()):
        try:
            exec(compile(block, f"README.md block {index}", "exec"), module.__dict__)  # our own docs
        except Exception as exc:
            raise AssertionError(f"README python block {index} failed:\n{block}") from exc
