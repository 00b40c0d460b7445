"""Run every benchmark script in this folder (all but this one), one after the other.

Each ``benchmarks/<name>.py`` that has an ``if __name__ == "__main__":`` block
is a script runnable alone; files without one are helpers and are skipped.
Each runs in its own process with this Python; its output is printed under a
header, and the exit code is non-zero if any benchmark failed.  ``make bench``
calls this.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return [
        p
        for p in sorted(HERE.glob("*.py"))
        if p.name != Path(__file__).name and not p.name.startswith("_") and "__main__" in p.read_text()
    ]


def main() -> int:
    failed = []
    for script in scripts():
        print(f"== {script.name}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)
        print(
            f"-- {script.name}: {time.perf_counter() - started:.1f} s, exit {done.returncode}\n", flush=True
        )
        if done.returncode:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
