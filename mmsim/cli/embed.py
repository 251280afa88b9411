"""``mmsim embed``: items -> ``output`` (.npz: embeddings, items, modalities) + .meta.json."""

from __future__ import annotations

import io
import json

import numpy as np
from omegaconf import DictConfig

from mmsim.cli.common import as_list, build_matcher, output_path
from mmsim.embedding.pipeline import EmbeddingResult
from mmsim.files import write_together
from mmsim.inputs.detect import detect_modality
from mmsim.inputs.folders import image_files
from mmsim.inputs.tables import read_lines
from mmsim.spec.document import encoder_identity


def gather_items(cfg: DictConfig) -> list[str]:
    items = as_list(cfg.inputs)
    if cfg.input_list:
        items += read_lines(cfg.input_list)
    if cfg.images_dir:
        items += image_files(cfg.images_dir)
    if not items:
        raise ValueError("nothing to embed: give inputs=[...], input_list=FILE or images_dir=DIR")
    return items


def run(cfg: DictConfig) -> None:
    items = gather_items(cfg)
    matcher = build_matcher(cfg)
    result = matcher.extract_embedding(items, modality=cfg.modality)
    if not isinstance(result, EmbeddingResult):  # on_error=raise: every item was embedded
        result = EmbeddingResult(result, list(range(len(items))))
    kept = [items[i] for i in result.indices]
    modalities = [cfg.modality or detect_modality(item) for item in kept]
    out = output_path(cfg.output)
    if out.suffix != ".npz":  # np.savez adds it; the file written must be the one named
        out = out.with_name(out.name + ".npz")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        embeddings=result.embeddings,
        items=np.array(kept, dtype=str),
        modalities=np.array(modalities, dtype=str),
        indices=np.array(result.indices, dtype=np.int64),
        encoder=np.array(json.dumps(encoder_identity(matcher.spec), sort_keys=True)),
    )
    meta = {
        "encoder": encoder_identity(matcher.spec),
        "embedding_dim": int(result.embeddings.shape[1]),
        "count": len(kept),
        "images": modalities.count("image"),
        "texts": modalities.count("text"),
        "skipped": [
            {"index": s.index, "item": str(s.item), "reason": s.reason} for s in result.skipped
        ],
    }
    meta_path = out.with_suffix(".meta.json")
    write_together(  # the embeddings and their metadata: both new, or both as they were
        {out: buffer.getvalue(), meta_path: json.dumps(meta, indent=2) + "\n"},
        what=f"the embeddings {out}",
    )
    print(
        f"embedded {len(kept)} items ({meta['images']} images, {meta['texts']} texts) into "
        f"{meta['embedding_dim']} dims -> {out}"
        + (f"; skipped {len(result.skipped)}, see {meta_path}" if result.skipped else "")
    )
