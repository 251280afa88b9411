"""Start-up: time from process start to the first line of output, and to the end.

    uv run python bench/bench_startup.py

For `mmsim plugins`, a config error (a misspelled option), `mmsim search encoder=demo`
over 24 image files (its shipped ONNX graphs, and the same weights on torch with
`encoder.backend=torch`) and `mmsim demo` (first printed result); median of 5 runs
each, against `python -c pass` (the interpreter alone) and `python -c "import torch"`
(what any torch command pays). Each command runs once more with a check that says
whether torch or transformers were imported: the ONNX rows must load neither.
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

from mmsim.plugin.testing import heavy_imports, probing_imports
from mmsim.synthetic import write_dataset

MMSIM = str(Path(sys.executable).parent / "mmsim")


def timed(args: list[str], cwd: Path, runs: int = 5) -> tuple[float, float]:
    """Median seconds until the process writes its first byte (stdout or stderr), and
    until it exits."""
    first, total = [], []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        process.stdout.read(1)
        first.append(time.perf_counter() - start)
        process.communicate(timeout=300)
        total.append(time.perf_counter() - start)
    return statistics.median(first), statistics.median(total)


def loaded(args: list[str], cwd: Path) -> str:
    """Which of torch and transformers an mmsim command imported ('-': neither)."""
    done = subprocess.run(
        [*probing_imports(), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,  # a config error exits 1, and is measured all the same
    )
    return ",".join(heavy_imports(done.stderr)) or "-"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-startup-"))
    try:
        write_dataset(work / "photos", 24, seed=0)
        search = [MMSIM, "search", "encoder=demo", "query=a red circle", "images_dir=photos"]
        rows = [
            ("python -c pass", [sys.executable, "-c", "print()"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch; print()"]),
            ("mmsim plugins", [MMSIM, "plugins"]),
            ("config error: mmsim search qeury=x", [MMSIM, "search", "qeury=x"]),
            ("mmsim search --help", [MMSIM, "search", "--help"]),
            ("mmsim search encoder=demo, 24 images", search),
            ("  the same, encoder.backend=torch", [*search, "encoder.backend=torch"]),
            ("mmsim demo (first result)", [MMSIM, "demo", "output_dir=demo"]),
            (
                "  the same, encoder.backend=torch",
                [MMSIM, "demo", "output_dir=demo", "encoder.backend=torch"],
            ),
        ]
        print(f"{'command':<40} {'first output':>12} {'exit':>8}  imported (median of 5)")
        for name, args in rows:
            first, total = timed(args, work)
            heavy = loaded(args, work) if args[0] == MMSIM else ""
            print(f"{name:<40} {first:10.2f} s {total:6.2f} s  {heavy}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
