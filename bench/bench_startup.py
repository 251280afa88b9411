"""Start-up: time from process start to the first line of output.

    uv run python bench/bench_startup.py

For `mmsim plugins`, a config error (a misspelled option) and `mmsim search
encoder=demo` over 10 image files; median of 5 runs each, against `python -c pass` (the
interpreter alone) and `python -c "import torch"` (what any torch command pays).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmsim.synthetic import write_dataset

MMSIM = str(Path(sys.executable).parent / "mmsim")


def first_line(args: list[str], cwd: Path, runs: int = 5) -> float:
    """Median seconds until the process writes its first byte (stdout or stderr)."""
    times = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        process.stdout.read(1)
        times.append(time.perf_counter() - start)
        process.communicate(timeout=300)
    return statistics.median(times)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-startup-"))
    try:
        write_dataset(work / "photos", 10, seed=0)
        rows = [
            ("python -c pass", [sys.executable, "-c", "print()"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch; print()"]),
            ("mmsim plugins", [MMSIM, "plugins"]),
            ("config error: mmsim search qeury=x", [MMSIM, "search", "qeury=x"]),
            ("mmsim search --help", [MMSIM, "search", "--help"]),
            (
                "mmsim search encoder=demo, 10 images",
                [MMSIM, "search", "encoder=demo", "query=a red circle", "images_dir=photos"],
            ),
        ]
        print(f"{'command':<40} first output (median of 5)")
        for name, args in rows:
            print(f"{name:<40} {first_line(args, work):6.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
