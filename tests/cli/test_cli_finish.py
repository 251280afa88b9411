"""The command line as a finished tool: portable runs, one set of column names, clear
mistakes, real help, quick start-up, quiet output, each item embedded once."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.cli import COMMANDS, INDEX_COMMANDS, THRESHOLD_OPTION, hydra_quoted
from mmsim.cli import options as cli_options
from mmsim.config import compose, conf_dir
from mmsim.plugin.testing import MMSIM, cli_env, run_cli, write_images
from tests.paths import REPO


def test_a_moved_run_folder_keeps_working(tmp_path, image_paths):
    run = tmp_path / "run"
    toy = Matcher({"name": "toy", "seed": 3}, progress=False)  # weights no default gives
    toy.assembly.sources["image"].trainable.save(run / "checkpoint")  # as a fit saves them
    matcher = Matcher(
        "toy",
        checkpoint=str(run / "checkpoint"),
        query="image",
        response="caption",
        threshold={"name": "fixed", "value": 0.1},
        progress=False,
    )
    matcher.save(run)
    saved = json.loads((run / "matcher.json").read_text())
    assert saved["image_encoder"]["checkpoint"] == "./checkpoint"  # relative to the run folder
    data = {"image": [str(p) for p in image_paths[:3]], "caption": ["a", "b", "c"]}
    before = matcher.predict_proba(data)
    moved = tmp_path / "elsewhere" / "shared-run"
    moved.parent.mkdir()
    shutil.move(str(run), str(moved))
    shutil.make_archive(str(tmp_path / "zipped"), "zip", moved)
    unpacked = tmp_path / "unpacked"
    shutil.unpack_archive(str(tmp_path / "zipped.zip"), unpacked)
    for folder in (moved, unpacked):
        np.testing.assert_allclose(Matcher.load(folder).predict_proba(data), before, atol=1e-6)


def test_a_shipped_model_is_saved_by_its_encoder_name(tmp_path):
    Matcher("demo", progress=False).save(tmp_path)
    saved = json.loads((tmp_path / "matcher.json").read_text())
    assert saved["image_encoder"]["name"] == "demo" and "checkpoint" not in saved["image_encoder"]
    assert Matcher.load(tmp_path).embedding_dim == Matcher("demo").embedding_dim


def test_one_set_of_column_names_everywhere():
    for command in ("match", "calibrate", "evaluate", "demo"):
        columns = compose(command).columns
        assert (columns.query, columns.response) == ("image", "caption"), command
    assert (
        compose("fit").fit.text_column == "caption" and compose("fit").fit.image_column == "image"
    )


def test_match_uses_the_saved_matchers_column_names(tmp_path):
    images = write_images(tmp_path / "img", 3)
    rows = ["photo,text,label"] + [f"{p},caption {i},{i % 2}" for i, p in enumerate(images)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    common = ("encoder=toy", "runtime.progress=false")
    out = run_cli(
        "calibrate",
        *common,
        "pairs=pairs.csv",
        "columns.query=photo",
        "columns.response=text",
        "threshold=platt",
        "holdout=0",
        "output_dir=saved",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    matched = run_cli("match", "matcher=saved", "pairs=pairs.csv", cwd=tmp_path)
    assert matched.returncode == 0, matched.stderr
    assert "scored 3 of 3 pairs" in matched.stdout


def _examples() -> list[tuple[str, str]]:
    """Every `mmsim ...` example in the configs and docs, with where it is written."""
    found = []
    for path in sorted(conf_dir().glob("*.yaml")):
        comments = "\n".join(line[1:] for line in path.read_text().splitlines() if line[:1] == "#")
        for line in re.sub(r"\\\n\s*", " ", comments).splitlines():
            if line.startswith("   mmsim "):
                found.append((path.name, line.split("  (")[0].strip()))
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", path.read_text(), re.S)
        text = re.sub(r"\\\n\s*", " ", "\n".join(blocks))
        for line in text.splitlines():
            line = line.strip().removeprefix("uv run ").removeprefix("$ ")
            if re.match(r"mmsim [a-z]+ ", line) and "=" in line:
                found.append((path.name, line.split("  #")[0].strip()))
    return found


@pytest.mark.parametrize(("where", "example"), _examples())
def test_every_documented_example_has_valid_options(where, example):
    import shlex

    words = shlex.split(example)[1:]
    command = words[0]
    assert command in COMMANDS, f"{where}: unknown command in {example!r}"
    rest = [w for w in words[1:] if not w.startswith("-")]
    config = command
    if command == "index":
        sub, rest = rest[0], rest[1:]
        assert sub in INDEX_COMMANDS, f"{where}: {example!r}"
        config = f"index_{sub}"
        if rest and "=" not in rest[0]:
            rest = [f"{'output' if sub == 'build' else 'index'}={rest[0]}", *rest[1:]]
        if sub in THRESHOLD_OPTION:
            rest = [r.replace("threshold=", f"{THRESHOLD_OPTION[sub]}=", 1) for r in rest]
    if "-m" in words:  # a sweep: check the first value of each swept option
        rest = [r.split(",")[0] if "=" in r and "[" not in r else r for r in rest]
    if command == "search":
        rest = [hydra_quoted("where", r) for r in rest]
    cli_options.check(config, [r for r in rest if "=" in r], command, require=False)


def test_mistakes_get_one_line_with_the_closest_option(tmp_path):
    cases = {
        ("serch",): "unknown command 'serch'. Did you mean 'search'?",
        ("search", "qeury=x"): "unknown option 'qeury'. Did you mean 'query'?",
        ("search", "query=x", "+topk=3"): "unknown option 'topk'. Did you mean 'top_k'?",
        ("search",): "missing option query",
        (
            "search",
            "query=x",
            "encoder=opnai_clip",
        ): "no encoder named 'opnai_clip'. Did you mean 'openai_clip'?",
        ("search", "query=x", "encoder.chekpoint=y"): "Did you mean 'encoder.checkpoint'?",
        # an option of the chosen component, not of the default one
        ("search", "query=x", "encoder=toy", "encoder.sed=3"): "Did you mean 'encoder.seed'?",
        ("index", "build", "idx", "source=x", "engine=ray", "engine.actor=2"): (
            "unknown option 'engine.actor'. Did you mean 'engine.actors'?"
        ),
        ("index", "updat"): "unknown subcommand 'updat'. Did you mean 'update'?",
    }
    for args, expected in cases.items():
        out = run_cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and expected in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and "+qeury" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    quiet = subprocess.run(
        [*MMSIM, "search", "encoder=demo", "query=x", "corpus=nope.npz"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    loud = subprocess.run(
        [*MMSIM, "search", "encoder=demo", "query=x", "corpus=nope.npz", "--debug"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "corpus file not found: nope.npz" in quiet.stderr
    assert "Traceback" in loud.stderr


def test_help_explains_each_option_and_shows_examples(tmp_path):
    out = run_cli("search", "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("mmsim search: rank a corpus")
    assert re.search(r"query\s+a text or an image path/URL \(or item:ID in an index\)", out.stdout)
    assert re.search(r"negative\s+parts to move away from", out.stdout)
    assert re.search(r"top_k\s+results per query \[default: 5\]", out.stdout)
    assert "openai_clip (default)" in out.stdout
    assert len(re.findall(r"^  mmsim search ", out.stdout, re.M)) >= 2
    index_help = run_cli("index", "build", "--help", cwd=tmp_path).stdout
    assert "source" in index_help and "(required)" in index_help


@pytest.mark.parametrize("args", [["plugins"], ["search", "qeury=x"], ["index", "info"]])
def test_checking_options_imports_no_torch(args, tmp_path):
    code = (
        "import sys\nfrom mmsim.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        "print('heavy:', sorted(m for m in ('torch', 'transformers', 'open_clip', 'faiss') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "heavy: []" in out.stdout, out.stdout + out.stderr


def test_pairs_embed_each_distinct_item_once(image_paths, monkeypatch):
    matcher = Matcher(
        "toy",
        query="image",
        response="caption",
        progress=False,
    )
    seen = {"image": 0, "text": 0}
    for kind, tower in (("image", matcher.image_tower), ("text", matcher.text_tower)):
        original = tower.encode

        def counting(inputs, _original=original, _kind=kind):
            out = _original(inputs)
            seen[_kind] += out.shape[0]
            return out

        monkeypatch.setattr(tower, "encode", counting)
    images = [str(p) for p in image_paths[:2]] * 3
    data = {"image": images, "caption": ["a dog", "a cat", "a dog", "a car", "a cat", "a dog"]}
    decisions, proba = matcher.predict(data, return_proba=True)
    assert seen == {"image": 2, "text": 3}  # 6 pairs: 2 distinct images, 3 distinct captions
    np.testing.assert_array_equal(decisions, matcher.predict(data))
    np.testing.assert_allclose(proba, matcher.predict_proba(data))
    np.testing.assert_allclose(proba[0], proba[2])  # the same pair twice, the same answer


def test_output_is_quiet_and_rounded_unless_asked(tmp_path, tiny_clip_dir):
    write_images(tmp_path / "photos", 3)
    args = [  # a transformers backbone: what it prints is what verbose=false silences
        *MMSIM,
        "search",
        f"encoder.checkpoint={tiny_clip_dir}",
        "query=a red car",
        "images_dir=photos",
        "top_k=2",
        "output=hits.json",
    ]
    quiet = subprocess.run(
        args, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    shown = json.loads(quiet.stdout)[0]["hits"][0]["score"]
    kept = json.loads((tmp_path / "hits.json").read_text())[0]["hits"][0]["score"]
    assert shown == round(kept, 4) and len(str(kept)) > 8
    assert (tmp_path / "hits.json").read_text().endswith("]\n")
    loud = subprocess.run(
        [*args, "verbose=true"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loud.returncode == 0 and "Loading weights" in loud.stderr


def test_an_embeddings_file_is_searched_with_its_own_encoder_and_one_modality(tmp_path):
    write_images(tmp_path / "photos", 2)
    base = ("encoder=toy",)
    made = run_cli(
        "embed",
        *base,
        "images_dir=photos",
        "inputs=[a dog,a cat]",
        "output=mixed.npz",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    mixed = run_cli("search", *base, "query=a dog", "corpus=mixed.npz", cwd=tmp_path)
    assert mixed.returncode == 2 and "mixes 2 images, 2 texts" in mixed.stderr
    texts = run_cli(
        "search", *base, "query=a dog", "corpus=mixed.npz", "modality=text", cwd=tmp_path
    )
    assert texts.returncode == 0 and {h["item"] for h in json.loads(texts.stdout)[0]["hits"]} == {
        "a dog",
        "a cat",
    }
    wrong = run_cli(
        "search",
        "encoder=toy",
        "encoder.seed=5",  # the same encoder with other weights
        "query=a dog",
        "corpus=mixed.npz",
        "modality=text",
        cwd=tmp_path,
    )
    assert wrong.returncode == 2 and "different models cannot be compared" in wrong.stderr
