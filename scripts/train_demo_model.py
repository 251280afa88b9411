"""Train the ``demo`` encoder: a small CLIP from scratch on synthetic shapes scenes.

Reproduce the shipped model (about 2 hours on 2 CPU cores; a stopped run resumes
at the stage it was in):

    uv run python scripts/train_demo_model.py

A random CLIP (ViT 64x64 / patch 8, width 128, 4 layers per tower) with a tokenizer
over the scene vocabulary is saved like a downloaded checkpoint, then trained with
``Matcher.fit`` in the stages of :data:`STAGES`: plain scenes (canonical colours,
upright, filled, light grey), then scenes of the varied training renderer (sampled
colours, outlines, aliased and anti-aliased edges, flat/noisy/gradient/textured
backgrounds) with ``fit``'s augmentation (random resized crops at sub-pixel offsets,
JPEG re-encoding), then a longer pass over fresh varied scenes with the schedule
restarted at a lower peak learning rate.
Every scene is distinct (continuous positions, sizes, tilts) and comes from the
training split of :mod:`mmsim.synthetic` (neither the test's nor the validation's
held-out colour-shape combinations), with a hard-negative caption (mostly its shape
swapped) as ``negative_column``. Each stage keeps the epoch with the best
text->image hit rate@1 on validation scenes showing the validation split's own
held-out combinations. The result is written in half precision into the
``mmsim-openai-clip`` package, where the ``demo`` encoder loads it, with
``training.json``, the record of the run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transformers import CLIPModel, CLIPProcessor

from mmsim import Matcher, synthetic
from mmsim_openai_clip.plugin import DEMO_CHECKPOINT
from mmsim_openai_clip.scratch import DEMO_ARCHITECTURE, save_demo_init

TRAINING = {
    "loss": "clip",
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.1,
    "schedule": "cosine",
    "monitor": "text_to_image/hit_rate@1",
    "negative_column": "negative",
}
AUGMENT = {"crop_scale": [0.8, 1.0], "crop_ratio": [0.85, 1.18], "jpeg_p": 0.3}


def _portable(value: object) -> str:
    """Paths inside the working folder are recorded relative to it (no machine paths)."""
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(Path.cwd()):
        return str(value.relative_to(Path.cwd()))
    return str(value)


def _scenes(n: int, seed: int, renderer: synthetic.Renderer) -> dict[str, list]:
    """Training pairs in memory, each with its hard-negative caption."""
    scenes = synthetic.generate(n, seed=seed, split="train", renderer=renderer)
    return {
        "image": [s.image for s in scenes],
        "caption": [s.caption for s in scenes],
        "negative": [s.negative for s in scenes],
    }


def _progress(stage: str) -> Callable[[dict, bool], None]:
    started = time.perf_counter()

    def report(row: dict, best: bool) -> None:
        minutes = (time.perf_counter() - started) / 60
        hit = row["text_to_image/hit_rate@1"]
        mark = " *" if best else ""
        print(
            f"{stage} epoch {row['epoch']}: loss {row['loss']:.3f} val t2i@1 {hit:.3f}"
            f" ({minutes:.1f} min){mark}",
            flush=True,
        )

    return report


@dataclass(frozen=True)
class Stage:
    """One ``fit`` of the curriculum, started from the previous stage's best weights."""

    name: str
    renderer: synthetic.Renderer
    scenes: int
    seed_offset: int
    epochs: int
    options: dict[str, Any]


STAGES = (
    Stage("easy", "canonical", 40000, 1, 2, {**TRAINING, "warmup_steps": 100}),
    Stage(
        "varied",
        "training",
        120000,
        3,
        6,
        {**TRAINING, "lr": 7e-4, "warmup_steps": 200, "augment": AUGMENT},
    ),
    Stage(
        "fresh",
        "training",
        120000,
        4,
        8,
        {**TRAINING, "lr": 5e-4, "warmup_steps": 200, "augment": AUGMENT},
    ),
)
"""The curriculum: plain scenes, then varied ones with augmentation, then a longer
pass over scenes the model has never seen, restarting the schedule at a lower peak
learning rate (shape accuracy was still rising when the first varied schedule ran
out)."""


def _best_in_log(folder: Path, monitor: str) -> dict[str, Any]:
    """The kept epoch of a finished stage, from its metrics log (the first best, as
    ``fit`` keeps it; epoch 0 is the starting point)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
    epochs = [row for row in rows if row["kind"] == "epoch"]
    best = max(epochs, key=lambda row: (row[monitor], -row["epoch"]))
    return {k: v for k, v in best.items() if k != "kind"}


def _run(stage: Stage, start: Path, validation: tuple, work: Path, seed: int) -> tuple[Path, dict]:
    """Fit one stage, or take its result if a previous run of the recipe finished it
    (``fit`` writes ``matcher.json`` last), so a stopped recipe resumes where it was."""
    out = work / stage.name
    if (out / "matcher.json").is_file() and (out / "checkpoint").is_dir():
        print(f"{stage.name}: finished before, kept ({out})", flush=True)
        return out / "checkpoint", _best_in_log(out, stage.options["monitor"])
    matcher = Matcher("openai_clip", checkpoint=str(start), batch_size=256, progress=False)
    result = matcher.fit(
        _scenes(stage.scenes, seed + stage.seed_offset, stage.renderer),
        validation=validation,
        output_dir=out,
        epochs=stage.epochs,
        seed=seed,
        on_epoch=_progress(stage.name),
        **stage.options,
    )
    return result.checkpoints["model"], {"epoch": result.best_epoch, **result.best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("build/demo-training"))
    parser.add_argument("--out", type=Path, default=Path(DEMO_CHECKPOINT))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work_dir

    init = work / "init"
    if not (init / "model.safetensors").is_file():
        save_demo_init(init, synthetic.VOCABULARY, seed=args.seed)
    val = synthetic.generate(1000, seed=args.seed + 2, split="validation", unique=True)
    validation = ([s.image for s in val], [s.caption for s in val])
    checkpoint, kept = init, {}
    for stage in STAGES:
        checkpoint, kept[stage.name] = _run(stage, checkpoint, validation, work, args.seed)

    CLIPModel.from_pretrained(checkpoint).half().save_pretrained(args.out)
    CLIPProcessor.from_pretrained(checkpoint).save_pretrained(args.out)
    record = {
        "command": "uv run python scripts/train_demo_model.py",
        "arguments": {k: _portable(v) for k, v in vars(args).items()},
        "architecture": DEMO_ARCHITECTURE,
        "stages": [{**asdict(stage), "kept": kept[stage.name]} for stage in STAGES],
        "validation_scenes": len(val),
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(kept[STAGES[-1].name], indent=2))


if __name__ == "__main__":
    main()
