"""A short run of the load benchmark (bench/bench_load.py, locust) as a test: concurrent
users mixing text and image searches, similar items and thumbnails against a real
``mmsim serve`` get no errors. Bounded: 8 users for 8 seconds over a small index."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import REPO


def test_concurrent_users_of_every_kind_get_no_errors(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_load.py"),
            "--items=2000",
            "--users=8",
            "--seconds=8",
            "--workers=1",
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["workers=1"]
    assert set(rows) == {"all", "text search", "image search", "similar items", "thumbnail"}
    assert all(row["requests"] > 0 for row in rows.values()), rows
    assert rows["all"]["errors"] == 0, done.stdout
