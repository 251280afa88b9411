"""Embedding throughput: mmsim end to end vs. the bare model loop, same model, same run.

Image: mmsim embeds JPEG files from disk (decode + preprocess + model) against a bare
``CLIPModel.get_image_features`` loop over tensors preprocessed before timing starts.
Text: mmsim (batches padded to their longest caption) against the bare
``get_text_features`` loop padded to 77 tokens, as open_clip and most CLIP code do.

The model is the ViT-B/32 CLIP architecture with random weights, saved and loaded
exactly like a real checkpoint. Runs alternate (bare, mmsim, bare, mmsim, ...) and the
best of each is kept, so that both sides see the same machine state.

    uv run python bench/bench_embedding.py            # fp32
    uv run python bench/bench_embedding.py --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from mmsim import Matcher
from mmsim_openai_clip.testing import save_random_clip

CAPTIONS = [
    "a dog on the beach",
    "a red car parked on a street",
    "two people riding bicycles",
    "a plate of pasta with tomato sauce",
    "a cat sleeping on a sofa",
    "a mountain lake at sunrise",
    "a man is riding a horse",
    "children playing football in a park",
]
FLOP_PER_IMAGE = 8.8e9  # ViT-B/32 image tower, forward pass


def write_jpegs(folder: Path, count: int, seed: int = 0) -> list[str]:
    """Photo-sized JPEGs (640x480) with smooth structure plus noise, like real photos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    paths = []
    for i in range(count):
        base = np.stack([np.sin(xx / (20 + i) + c) * np.cos(yy / (30 + c)) for c in range(3)], -1)
        pixels = ((base + 1) * 110 + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        path = folder / f"photo{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def best_of(runs: int, bare, ours) -> tuple[float, float]:
    bare_times, our_times = [], []
    for _ in range(runs):
        for fn, times in ((bare, bare_times), (ours, our_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return min(bare_times), min(our_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--output", type=Path, default=Path("bench/results/embedding.json"))
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    bs = args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        checkpoint = save_random_clip(tmp_path / "clip-vit-b32")  # default config = ViT-B/32
        paths = write_jpegs(tmp_path, args.images)
        texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.texts)]

        matcher = Matcher(
            checkpoint=str(checkpoint), dtype=args.dtype, batch_size=bs, progress=False
        )
        model = CLIPModel.from_pretrained(checkpoint).to(dtype).eval()
        processor = AutoImageProcessor.from_pretrained(checkpoint)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        pixels = [
            processor(
                images=[Image.open(p).convert("RGB") for p in paths[i : i + bs]],
                return_tensors="pt",
            )["pixel_values"].to(dtype)
            for i in range(0, len(paths), bs)
        ]
        tokens77 = [
            tokenizer(texts[i : i + bs], padding="max_length", max_length=77, return_tensors="pt")
            for i in range(0, len(texts), bs)
        ]

        def bare_images() -> None:
            with torch.inference_mode():
                for batch in pixels:
                    model.get_image_features(pixel_values=batch)

        def bare_texts() -> None:
            with torch.inference_mode():
                for batch in tokens77:
                    model.get_text_features(**batch)

        matcher.extract_embedding(paths[:bs])  # warm-up both paths
        bare_images()
        img_bare, img_ours = best_of(
            args.runs, bare_images, lambda: matcher.extract_embedding(paths)
        )
        txt_bare, txt_ours = best_of(
            args.runs, bare_texts, lambda: matcher.extract_embedding(texts)
        )
        padded_width = max(len(x) for x in tokenizer(CAPTIONS)["input_ids"])

    result = {
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "images": args.images,
        "texts": args.texts,
        "batch_size": bs,
        "image_bare_per_s": args.images / img_bare,
        "image_mmsim_per_s": args.images / img_ours,
        "image_ratio_mmsim_vs_bare": img_bare / img_ours,
        "image_bare_gflops": args.images * FLOP_PER_IMAGE / img_bare / 1e9,
        "text_pad77_per_s": args.texts / txt_bare,
        "text_mmsim_per_s": args.texts / txt_ours,
        "text_ratio_mmsim_vs_pad77": txt_bare / txt_ours,
        "caption_tokens_max": padded_width,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"dtype={args.dtype} threads={result['threads']} batch={bs}")
    print(
        f"image: bare loop {result['image_bare_per_s']:.1f} img/s "
        f"({result['image_bare_gflops']:.0f} GFLOP/s), mmsim end-to-end from JPEG "
        f"{result['image_mmsim_per_s']:.1f} img/s "
        f"-> ratio {result['image_ratio_mmsim_vs_bare']:.2f}"
    )
    print(
        f"text:  pad-to-77 loop {result['text_pad77_per_s']:.0f} texts/s, mmsim "
        f"{result['text_mmsim_per_s']:.0f} texts/s (captions <= {padded_width} tokens) -> "
        f"ratio {result['text_ratio_mmsim_vs_pad77']:.2f}"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
