"""Train the ``demo`` encoder: a small CLIP from scratch on synthetic shapes scenes.

Reproduce the shipped model (about 90 minutes on 2 CPU cores):

    uv run python scripts/train_demo_model.py

Steps: a random CLIP (ViT 64x64 / patch 8, width 128, 4 layers per tower) with a
tokenizer over the scene vocabulary is saved like a downloaded checkpoint. Training
scenes come from :mod:`mmsim.synthetic` (training split: neither the test's nor the
validation's held-out colour-shape combinations appear), every scene distinct
(continuous positions, sizes, rotations). A curriculum: first plain scenes (canonical
colours, upright, filled, light grey), then the varied training renderer (sampled
colours, outlines, aliased and anti-aliased edges, flat/noisy/gradient/textured
backgrounds) with ``fit``'s augmentation (random resized crops at sub-pixel offsets,
JPEG re-encoding). ``Matcher.fit`` trains with the CLIP loss (a batch of 256 random
scenes holds many same-colour, different-shape negatives) and keeps the epoch with the
best text->image hit rate@1 on validation scenes of the validation split's own
held-out combinations. The result is written in half precision into the
``mmsim-openai-clip`` package, where the ``demo`` encoder loads it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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
}
EASY = {**TRAINING, "warmup_steps": 100}
VARIED = {
    **TRAINING,
    "lr": 7e-4,
    "warmup_steps": 200,
    "augment": {"crop_scale": [0.8, 1.0], "crop_ratio": [0.85, 1.18], "jpeg_p": 0.3},
}


def _portable(value: object) -> str:
    """Paths inside the working folder are recorded relative to it (no machine paths)."""
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(Path.cwd()):
        return str(value.relative_to(Path.cwd()))
    return str(value)


def _scenes(n: int, seed: int, renderer: synthetic.Renderer) -> tuple[list, list[str]]:
    scenes = synthetic.generate(n, seed=seed, split="train", renderer=renderer)
    return [s.image for s in scenes], [s.caption for s in scenes]


def _progress(stage: str):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("build/demo-training"))
    parser.add_argument("--out", type=Path, default=Path(DEMO_CHECKPOINT))
    parser.add_argument("--easy-scenes", type=int, default=40000)
    parser.add_argument("--varied-scenes", type=int, default=150000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work_dir

    save_demo_init(work / "init", seed=args.seed)
    val = synthetic.generate(1000, seed=args.seed + 2, split="validation", unique=True)
    validation = ([s.image for s in val], [s.caption for s in val])

    easy = Matcher("openai_clip", checkpoint=str(work / "init"), batch_size=256, progress=False)
    first = easy.fit(
        _scenes(args.easy_scenes, args.seed + 1, "canonical"),
        validation=validation,
        output_dir=work / "easy",
        epochs=1,
        seed=args.seed,
        on_epoch=_progress("plain"),
        **EASY,
    )
    matcher = Matcher(
        "openai_clip", checkpoint=str(first.checkpoints["model"]), batch_size=256, progress=False
    )
    result = matcher.fit(
        _scenes(args.varied_scenes, args.seed + 3, "training"),
        validation=validation,
        output_dir=work / "varied",
        epochs=args.epochs,
        seed=args.seed,
        on_epoch=_progress("varied"),
        **VARIED,
    )

    checkpoint = result.checkpoints["model"]
    CLIPModel.from_pretrained(checkpoint).half().save_pretrained(args.out)
    CLIPProcessor.from_pretrained(checkpoint).save_pretrained(args.out)
    record = {
        "command": "uv run python scripts/train_demo_model.py",
        "arguments": {k: _portable(v) for k, v in vars(args).items()},
        "architecture": DEMO_ARCHITECTURE,
        "training": {"plain": EASY, "varied": VARIED},
        "validation_scenes": len(val),
        "best_epoch": result.best_epoch,
        "validation": result.best,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"best_epoch": result.best_epoch, **result.best}, indent=2))


if __name__ == "__main__":
    main()
