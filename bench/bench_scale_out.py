"""Scale-out benchmark: items/s of ``engine=ray`` with 1 and 2 actors against the local
engine, on the same image files, on this machine.

    uv run python bench/bench_scale_out.py                 # 1200 scenes, commit_every=128
    uv run python bench/bench_scale_out.py --files 4000 --commit-every 256

Ratios come from one run. Each engine builds the whole set and, separately, one
chunk (``commit_every`` files): the one-chunk build is the fixed cost (for Ray: a fresh
actor pool whose processes start, import torch and build the matcher from
matcher.json), and (N - chunk) / (T_all - T_chunk) the marginal rate a long build
sees. The local Ray cluster is started once, before any timing, with every core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this venv as is

from mmsim import Matcher
from mmsim.index import Index
from mmsim.synthetic import write_dataset


def build(root: Path, out: Path, matcher: Matcher, engine: Any, commit_every: int) -> float:
    """Seconds for a whole build into a new folder."""
    start = time.perf_counter()
    Index.build(root, matcher, out, commit_every=commit_every, progress=False, engine=engine)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1200)
    parser.add_argument("--commit-every", type=int, default=128)
    parser.add_argument("--encoder", default="demo")
    args = parser.parse_args()

    import ray

    from mmsim_ray import EngineOptions, RayEngine

    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-scale-"))
    try:
        write_dataset(work / "scenes", args.files, seed=0)
        root = work / "scenes"
        matcher = Matcher(args.encoder, progress=False)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        print(f"cores: {os.cpu_count()}, files: {args.files}, commit_every: {args.commit_every}")
        first = work / "first"
        first.mkdir()
        for path in sorted(root.glob("*.png"))[: args.commit_every]:
            shutil.copy(path, first / path.name)
        engines: dict[str, Any] = {"local": lambda out: None}
        for actors in (1, 2):
            engines[f"ray, {actors} actor(s)"] = lambda out, a=actors: RayEngine(
                EngineOptions(actors=a)
            )
        print(
            "| engine | wall s, all | wall s, one chunk | items/s end to end | items/s marginal |"
        )
        print("| --- | --- | --- | --- | --- |")
        rates = {}
        for name, make in engines.items():
            slug = name.replace(" ", "").replace(",", "-").replace("(s)", "")
            whole = build(root, work / slug, matcher, make(work / slug), args.commit_every)
            one = build(
                first, work / f"{slug}-1", matcher, make(work / f"{slug}-1"), args.commit_every
            )
            rates[name] = (args.files - args.commit_every) / (whole - one)
            print(
                f"| {name} | {whole:.1f} | {one:.1f} | {args.files / whole:.0f} | "
                f"{rates[name]:.0f} ({rates[name] / rates['local']:.2f}x local) |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
