"""The OpenAPI document tells the truth: schemathesis (pinned in the dev group) runs every
check against the real ``mmsim serve`` on 127.0.0.1 over a small calibrated index.

Its generated requests cover every route: valid ones must be answered 2xx (or 404 for
an item id the index does not hold), invalid ones refused with a 4xx, every status,
content type and body as the document declares, 405 with ``Allow`` for an undeclared
method. Bounded (``--max-examples``) and deterministic (``--generation-deterministic``)
so a run is the same every time; the hooks in ``schemathesis_hooks.py`` make positive
cases obey the rules JSON Schema cannot state (they are in the routes' descriptions).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import cli_env
from mmsim.synthetic.dataset import write_dataset
from tests.paths import REPO
from tests.serve.helpers import serving

# a text over its limit is refused with 413 (max_query_chars, max_where_chars): a
# rejection like 422, which schemathesis's default list of rejections leaves out
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429"]
"""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    table = write_dataset(root / "data", 40, seed=3, split="all", two_object_share=0.3)
    index = Index.build(
        table, Matcher("demo", progress=False), root / "idx", column="image", progress=False
    )
    index.calibrate(root / "data" / "pairs.csv", threshold="platt", holdout=0.0)
    return root


def test_every_schemathesis_check_passes_against_the_running_service(scenes, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency: uv sync installs it"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    ids = ",".join(str(i) for i in Index.open(scenes / "idx").ids()[:5])
    with serving(scenes / "idx", "read_only=false", "access_log=off") as (_, url):
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as answer:
            document = json.load(answer)
        operations = sum(len(methods) for methods in document["paths"].values())
        with urllib.request.urlopen(f"{url}/api/search?top_k=1", timeout=10) as answer:
            as_of = str(json.load(answer)["as_of"])  # a first page's commit
        result = subprocess.run(
            [
                st,
                "--config-file",
                str(config),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--generation-deterministic",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-color",
            ],
            cwd=tmp_path,  # schemathesis keeps its state in the working folder
            env=cli_env(
                [REPO],
                SCHEMATHESIS_HOOKS="tests.serve.schemathesis_hooks",
                CONTRACT_ITEM_IDS=ids,
                CONTRACT_AS_OF=as_of,
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert f"Tested: {operations}" in result.stdout, result.stdout  # every route, every method
