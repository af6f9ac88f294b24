"""The getting-started page, as written, from the wheel in a fresh virtual environment.

A new user has neither this repository's `src/` nor its dev tools: the page's
`pip install` must find glasswork as the built wheel and take everything else
from a wheelhouse downloaded for it (no index while the page runs), and its
files, commands and tests must then work exactly as the page shows them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doc_blocks import ROOT

pytestmark = pytest.mark.slow

PAGE = ROOT / "docs" / "getting-started.md"


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_getting_started_page_passes_from_the_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        wheelhouse,
        ROOT,
    )
    (wheel,) = wheelhouse.glob("glasswork-*.whl")
    # What the page installs, downloaded now: the page itself then runs with no index.
    run(sys.executable, "-m", "pip", "download", "--quiet", "-d", wheelhouse, f"{wheel}[sqs]", "pytest")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    assert "glasswork" not in run(python, "-m", "pip", "list", "--format=freeze").lower()

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))
    }
    env |= {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    out = run(python, ROOT / "tests" / "doc_blocks.py", PAGE, "--workdir", tmp_path / "work", env=env)
    assert "blocks ran" in out

    # It really was the wheel: installed in the venv, with its console script and its pytest plugin.
    origin = run(python, "-c", "import glasswork; print(glasswork.__file__)", env=env, cwd=tmp_path)
    assert origin.startswith(str(venv / "lib")), origin
    assert (venv / "bin" / "glasswork").exists()
    freeze = run(python, "-m", "pip", "list", "--format=freeze", env=env).lower()
    assert "glasswork==0.1.0" in freeze
    assert "boto3==" in freeze
