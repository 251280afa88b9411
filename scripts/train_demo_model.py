"""Train the ``demo`` encoder: a small CLIP from scratch on synthetic shapes scenes.

Reproduce the shipped model (about 15 minutes on 2 CPU cores):

    uv run python scripts/train_demo_model.py

Steps: a random CLIP (ViT 64x64 / patch 8, width 128, 4 layers per tower) with a
tokenizer over the scene vocabulary is saved like a downloaded checkpoint; training
and validation scenes come from :mod:`mmsim.synthetic` (training split: the held-out
colour-shape combinations never appear); ``Matcher.fit`` trains it with the CLIP loss
and keeps the epoch with the best validation text->image hit rate@1; the result is
written in half precision into the ``mmsim-openai-clip`` package, where the ``demo``
encoder loads it.
"""

from __future__ import annotations

import argparse
import json
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
    "warmup_steps": 100,
    "schedule": "cosine",
    "monitor": "text_to_image/hit_rate@1",
}


def _portable(value: object) -> str:
    """Paths inside the working folder are recorded relative to it (no machine paths)."""
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(Path.cwd()):
        return str(value.relative_to(Path.cwd()))
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("build/demo-training"))
    parser.add_argument("--out", type=Path, default=Path(DEMO_CHECKPOINT))
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work_dir

    save_demo_init(work / "init", seed=args.seed)
    train = synthetic.write_dataset(
        work / "train", args.train_images, seed=args.seed + 1, split="train"
    )
    val = synthetic.write_dataset(work / "val", 500, seed=args.seed + 2, split="train", unique=True)

    matcher = Matcher("openai_clip", checkpoint=str(work / "init"), batch_size=256)
    result = matcher.fit(
        train,
        validation=val,
        output_dir=work / "fit",
        epochs=args.epochs,
        seed=args.seed,
        **TRAINING,
    )

    checkpoint = result.checkpoints["model"]
    CLIPModel.from_pretrained(checkpoint).half().save_pretrained(args.out)
    CLIPProcessor.from_pretrained(checkpoint).save_pretrained(args.out)
    record = {
        "command": "uv run python scripts/train_demo_model.py",
        "arguments": {k: _portable(v) for k, v in vars(args).items()},
        "architecture": DEMO_ARCHITECTURE,
        "training": TRAINING,
        "best_epoch": result.best_epoch,
        "validation": result.best,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"best_epoch": result.best_epoch, **result.best}, indent=2))


if __name__ == "__main__":
    main()
