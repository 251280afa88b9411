"""Fine-tuning throughput: ``Matcher.fit`` vs. a bare training loop, same model, same run.

The model is the demo architecture (CLIP, ViT 64x64 / patch 8, width 128, 4 layers per
tower) with random weights, trained on synthetic scenes written as PNG files:

- mmsim: ``Matcher.fit`` end to end from the files (decode + preprocess in the loader
  thread, tokenisation, both towers, CLIP loss with multi-positive targets, AdamW,
  schedule, logging), timed by its own step log from the first to the last step;
- bare: CLIPModel's forward and CLIP's loss with AdamW over pixel tensors and padded
  token ids prepared before timing starts: the floor any training loop has to pay.

Both see the same batches in the same order. Runs alternate and the best of each is
kept, so both sides see the same machine state.

    uv run python bench/bench_fit.py                   # 2048 pairs, batches of 256
    uv run python bench/bench_fit.py --pairs 1024 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmsim import Matcher, synthetic
from mmsim.inputs.pairs import read_pairs
from mmsim_openai_clip.scratch import save_demo_init


def bare_loop(checkpoint: Path, pairs_csv: Path, batches: list[list[int]]) -> float:
    """Seconds for the batches with tensors prepared up front."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    from mmsim.inputs.images import load_image

    model = CLIPModel.from_pretrained(checkpoint).train()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    pairs = read_pairs(pairs_csv)
    pixels = processor(images=[load_image(p) for p in pairs.images], return_tensors="pt")[
        "pixel_values"
    ]
    tokens = tokenizer(pairs.captions, padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    started = time.perf_counter()
    for batch in batches:
        index = torch.tensor(batch)
        image = F.normalize(
            model.get_image_features(pixel_values=pixels[index]).pooler_output, dim=-1
        )
        text = model.get_text_features(
            input_ids=tokens["input_ids"][index], attention_mask=tokens["attention_mask"][index]
        ).pooler_output
        logits = model.logit_scale.exp() * image @ F.normalize(text, dim=-1).T
        target = torch.arange(len(batch))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def mmsim_fit(checkpoint: Path, pairs_csv: Path, out: Path, batch_size: int) -> float:
    """Seconds from the first to the last logged step of one epoch of ``Matcher.fit``."""
    matcher = Matcher("openai_clip", checkpoint=str(checkpoint), progress=False)
    matcher.fit(pairs_csv, output_dir=out, epochs=1, batch_size=batch_size, lr=1e-3)
    steps = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    return steps[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = save_demo_init(root / "init", synthetic.VOCABULARY)
        pairs_csv = synthetic.write_dataset(root / "data", args.pairs, seed=1)
        # the same order Matcher.fit draws with seed 0
        order = np.random.default_rng(0).permutation(args.pairs)
        batches = [
            order[i : i + args.batch_size].tolist() for i in range(0, args.pairs, args.batch_size)
        ]
        bare, ours = math.inf, math.inf
        for repeat in range(args.repeats):
            bare = min(bare, bare_loop(checkpoint, pairs_csv, batches))
            ours = min(
                ours, mmsim_fit(checkpoint, pairs_csv, root / f"run{repeat}", args.batch_size)
            )
        # the step log's clock starts before the first batch, so the first step is in it too
        print(
            json.dumps(
                {
                    "pairs": args.pairs,
                    "batch_size": args.batch_size,
                    "bare_pairs_per_s": round(args.pairs / bare, 1),
                    "mmsim_pairs_per_s": round(args.pairs / ours, 1),
                    "mmsim_vs_bare": round(bare / ours, 3),
                    "threads": torch.get_num_threads(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
