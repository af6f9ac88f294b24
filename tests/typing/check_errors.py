"""Run mypy on a file and check that exactly the lines marked `# E:` are errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def main() -> int:
    mypy, target = sys.argv[1], sys.argv[2]
    lines = Path(target).read_text().splitlines()
    expected = {n for n, line in enumerate(lines, start=1) if "# E:" in line}
    run = subprocess.run(
        [mypy, "--strict", "--no-incremental", "--no-error-summary", target],
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {
        int(m.group(1)) for m in re.finditer(rf"^{re.escape(target)}:(\d+): error:", run.stdout, re.M)
    }
    missing = sorted(expected - reported)
    unexpected = sorted(reported - expected)
    for n in missing:
        print(f"{target}:{n}: expected a type error, mypy accepted: {lines[n - 1].strip()}")
    for n in unexpected:
        print(f"{target}:{n}: unexpected type error:\n{run.stdout}")
    return 1 if missing or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
