"""Embedding throughput: mmsim end to end vs. the bare model loop, same model, same run.

For each backbone plugin (random weights at ViT-B size, saved and loaded like a real
checkpoint):

- image: mmsim embeds JPEG files from disk (decode + preprocess + model) against the
  library's own image forward over tensors preprocessed before timing starts;
- text: mmsim against the library's own text forward on its standard padding (77
  tokens for CLIP-style models, as open_clip's ``encode_text`` and most CLIP code run;
  the fixed 64 for SigLIP). For causal towers mmsim trims the padding (exact); for
  open_clip the untrimmed mmsim path (``trim_text=False``) is measured too.

Runs alternate (bare, mmsim, bare, mmsim, ...) and the best of each is kept, so both
sides see the same machine state.

    uv run python bench/bench_embedding.py                        # every backbone, fp32
    uv run python bench/bench_embedding.py --backbone openai_clip --images 128
    uv run python bench/bench_embedding.py --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmsim import Matcher

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


@dataclass
class Case:
    """One backbone: the mmsim matcher(s) and the library's own forward passes."""

    matcher: Matcher
    image_forward: Callable[[torch.Tensor], object]
    text_forward: Callable[[list[str]], object]  # tokenises with the library's padding
    untrimmed: Matcher | None = None


def openai_clip(tmp: Path, dtype: str) -> Case:
    from transformers import AutoTokenizer, CLIPModel

    from mmsim_openai_clip.testing import save_random_clip

    checkpoint = save_random_clip(tmp / "clip-vit-b32")  # transformers' default = ViT-B/32
    model = CLIPModel.from_pretrained(checkpoint).to(getattr(torch, dtype)).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return Case(
        Matcher(checkpoint=str(checkpoint), dtype=dtype, progress=False),
        lambda pixels: model.get_image_features(pixel_values=pixels),
        lambda texts: model.get_text_features(
            **tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")
        ),
    )


def open_clip(tmp: Path, dtype: str) -> Case:
    import open_clip as oc

    from mmsim_open_clip.testing import save_local_dir

    folder = save_local_dir(tmp / "open-clip-vit-b32", oc.get_model_config("ViT-B-32"))
    spec = {"name": "open_clip", "checkpoint": str(folder)}
    matcher = Matcher(spec, dtype=dtype, progress=False)
    model, tokenizer = matcher.text_tower.model, matcher.text_tower.tokenizer
    return Case(
        matcher,
        lambda pixels: model.encode_image(pixels),
        lambda texts: model.encode_text(tokenizer(texts)),
        untrimmed=Matcher({**spec, "trim_text": False}, dtype=dtype, progress=False),
    )


def siglip(tmp: Path, dtype: str) -> Case:
    from transformers import AutoTokenizer, SiglipModel

    from mmsim_siglip.testing import save_random_siglip

    checkpoint = save_random_siglip(tmp / "siglip-b16", config={})  # default = ViT-B/16, 224
    model = SiglipModel.from_pretrained(checkpoint).to(getattr(torch, dtype)).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    length = model.config.text_config.max_position_embeddings
    return Case(
        Matcher("siglip", checkpoint=str(checkpoint), dtype=dtype, progress=False),
        lambda pixels: model.get_image_features(pixel_values=pixels),
        lambda texts: model.get_text_features(
            **tokenizer(
                texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
            )
        ),
    )


BACKBONES = {"openai_clip": openai_clip, "open_clip": open_clip, "siglip": siglip}


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


def best_of(runs: int, *fns: Callable[[], object]) -> list[float]:
    """Best wall time of each function, the functions run in turn ``runs`` times."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, record in zip(fns, times, strict=True):
            start = time.perf_counter()
            with torch.inference_mode():
                fn()
            record.append(time.perf_counter() - start)
    return [min(t) for t in times]


def measure(case: Case, paths: list[str], texts: list[str], bs: int, runs: int) -> dict:
    tower = case.matcher.image_tower
    dtype = tower.runtime.dtype
    pixels = [
        tower.preprocess([Image.open(p).convert("RGB") for p in paths[i : i + bs]])
        for i in range(0, len(paths), bs)
    ]
    pixels = [b["pixel_values"] if isinstance(b, dict) else b for b in pixels]
    pixels = [b.to(dtype) for b in pixels]
    chunks = [texts[i : i + bs] for i in range(0, len(texts), bs)]

    def bare_images() -> None:
        for batch in pixels:
            case.image_forward(batch)

    def bare_texts() -> None:
        for chunk in chunks:
            case.text_forward(chunk)

    case.matcher.extract_embedding(paths[:bs] + texts[:bs])  # warm-up
    img_bare, img_ours = best_of(runs, bare_images, lambda: case.matcher.extract_embedding(paths))
    text_fns = [bare_texts, lambda: case.matcher.extract_embedding(texts)]
    if case.untrimmed is not None:
        text_fns.append(lambda: case.untrimmed.extract_embedding(texts))
    text_times = best_of(runs, *text_fns)
    result = {
        "image_bare_per_s": len(paths) / img_bare,
        "image_mmsim_per_s": len(paths) / img_ours,
        "image_ratio": img_bare / img_ours,
        "text_bare_per_s": len(texts) / text_times[0],
        "text_mmsim_per_s": len(texts) / text_times[1],
        "text_ratio": text_times[0] / text_times[1],
    }
    if case.untrimmed is not None:
        result["text_mmsim_untrimmed_per_s"] = len(texts) / text_times[2]
        result["text_trim_speedup"] = text_times[2] / text_times[1]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=[*BACKBONES, "all"], default="all")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--output", type=Path, default=Path("bench/results/embedding.json"))
    args = parser.parse_args()
    names = list(BACKBONES) if args.backbone == "all" else [args.backbone]
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.texts)]
    report = {
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "images": args.images,
        "texts": args.texts,
    }
    print(
        f"dtype={args.dtype} threads={report['threads']} batch={args.batch_size} "
        f"images={args.images} (640x480 JPEG) texts={args.texts} (<= 9 CLIP tokens)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        paths = write_jpegs(tmp_path, args.images)
        for name in names:
            case = BACKBONES[name](tmp_path, args.dtype)
            r = report[name] = measure(case, paths, texts, args.batch_size, args.runs)
            del case
            line = (
                f"{name:<12} image: bare {r['image_bare_per_s']:6.1f}/s  mmsim "
                f"{r['image_mmsim_per_s']:6.1f}/s  ratio {r['image_ratio']:.2f} | text: bare "
                f"{r['text_bare_per_s']:6.0f}/s  mmsim {r['text_mmsim_per_s']:6.0f}/s  "
                f"ratio {r['text_ratio']:.2f}"
            )
            if "text_trim_speedup" in r:
                line += (
                    f"  (untrimmed mmsim {r['text_mmsim_untrimmed_per_s']:.0f}/s, "
                    f"trim x{r['text_trim_speedup']:.1f})"
                )
            print(line, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
