"""Export a matcher's towers to ONNX and check them against torch before writing.

Each tower's ``export_onnx()`` (see :mod:`mmsim.plugin.exportable`) gives the module and
its inputs; ``torch.onnx.export(dynamo=True)`` writes the graph with dynamic batch (and
sequence, where the tower allows it) axes. The graph is run in onnxruntime on sample
inputs of another batch size and length than it was traced with and compared with the
tower's own ``encode``; a graph whose embeddings disagree (cosine below ``min_cosine``)
is refused and nothing is written. Everything is built in a temporary folder beside
``directory`` and moved into place at the end, so a failed export leaves no half folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsim.plugin import (
    ExportError,
    Tower,
    TowerExport,
    is_disk_full,
    logit_params,
    reporting_full_disk,
    write_atomic,
)
from mmsim.plugin.exporters import (
    MATCHER_FILE,
    Report,
    matcher_document,
    sample_images,
    sample_texts,
)
from mmsim_onnx.manifest import FILE, OUTPUT, write_manifest
from mmsim_onnx.plugin import OnnxExportConfig

QUANTIZE = (None, "none", "int8")


class OnnxExporter:
    """The ``onnx`` exporter (registered by this plugin): :func:`export` with its options."""

    def __init__(self, config: OnnxExportConfig) -> None:
        self.config = config

    def export(self, matcher: Any, directory: Path, report: Report) -> Path:
        quantize = self.config.quantize
        return export(
            matcher,
            directory,
            quantize=None if quantize in (None, "none") else quantize,
            opset=self.config.opset,
            min_cosine=self.config.min_cosine,
            report=report,
        )


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def _prepare(tower: Tower, items: list[Any]) -> Any:
    """What the tower's ``encode`` takes for sample items (pixels, or a TextBatch)."""
    return tower.preprocess(items) if tower.modality == "image" else tower.tokenize(items)


def _inputs(tower: Tower, items: list[Any]) -> Any:
    """The tower's own model inputs for sample items, as ``TowerExport.feeds`` takes them."""
    prepared = _prepare(tower, items)
    return prepared if tower.modality == "image" else prepared.inputs


def _numpy(feeds: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in feeds.items()}


def _export_graph(spec: TowerExport, feeds: dict[str, torch.Tensor], path: Path, opset: int):
    dims = tuple(
        {axis: torch.export.Dim.DYNAMIC for axis in spec.dynamic.get(name, {})} for name in feeds
    )
    program = torch.onnx.export(
        spec.module.eval(),
        tuple(feeds.values()),
        dynamo=True,
        input_names=list(feeds),
        output_names=[OUTPUT],
        dynamic_shapes=(dims,),
        opset_version=opset,
        verbose=False,
    )
    program.save(str(path))


def _session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return session.run([OUTPUT], feeds)[0]


def _check(tower: Tower, spec: TowerExport, path: Path, batches: list[list[Any]], min_cos: float):
    """Compare the graph with the tower's ``encode`` on each sample batch; refuse on
    disagreement. Returns the agreement measured, the graph feeds and its embeddings."""
    session = _session(path)
    worst, diff, feeds, outs = 1.0, 0.0, [], []
    for items in batches:
        prepared = _prepare(tower, items)
        with torch.inference_mode():
            expected = tower.encode(prepared).float().cpu().numpy()
        inputs = prepared if tower.modality == "image" else prepared.inputs
        feeds.append(_numpy(spec.feeds(inputs)))
        got = _run(session, feeds[-1])
        outs.append(got)
        worst = min(worst, float(_row_cosine(got, expected).min()))
        diff = max(diff, float(np.abs(got - expected).max()))
    if not worst >= min_cos:
        raise ExportError(
            f"the exported {tower.modality} tower of '{tower.name}' disagrees with torch on "
            f"sample inputs (min cosine {worst:.6f} < {min_cos}, max abs diff {diff:.2e}); "
            "nothing was written"
        )
    check = {"min_cosine": worst, "max_abs_diff": diff, "batches": [len(b) for b in batches]}
    return check, feeds, outs


def _top_k_overlap(queries: np.ndarray, a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean share of the top-k responses for each query that two embeddings agree on."""

    def top(responses: np.ndarray) -> np.ndarray:
        scores = queries @ responses.T
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _quantize(tmp: Path, towers: dict[str, dict[str, Any]], report: Callable[[str], None]):
    """Dynamic int8 quantisation of each graph, with its accuracy against fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    emb: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for modality, entry in towers.items():
        fp32, int8 = tmp / entry["graph"], tmp / f"{modality}.int8.onnx"
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        session = _session(int8)
        quantised = np.concatenate([_run(session, f) for f in entry.pop("_feeds")])
        emb[modality] = (_normalised(np.concatenate(entry.pop("_fp32"))), _normalised(quantised))
        for extra in tmp.glob(f"{entry['graph']}*"):  # the fp32 graph and any weights file
            extra.unlink()
        entry["graph"] = int8.name
    result: dict[str, Any] = {"method": "onnxruntime quantize_dynamic, QInt8 weights"}
    for modality, (fp, q) in emb.items():
        result[f"{modality}_min_cosine"] = float(_row_cosine(fp, q).min())
    k = min(10, min(len(fp) for fp, _ in emb.values()) - 1)
    for query, response in (("text", "image"), ("image", "text")):
        if query in emb and response in emb:  # cross-modal: queries from the fp32 tower
            result[f"{query}_to_{response}_top{k}_overlap"] = _top_k_overlap(
                emb[query][0], emb[response][0], emb[response][1], k
            )
    if len(emb) == 1:
        ((fp, q),) = emb.values()
        result[f"self_top{k}_overlap"] = _top_k_overlap(fp, fp, q, k)
    report(
        "int8 accuracy against fp32 on sample inputs: "
        + ", ".join(
            f"{key} {value:.4f}" for key, value in result.items() if isinstance(value, float)
        )
    )
    return result


def _source(matcher: Any) -> dict[str, Any]:
    from mmsim import __version__

    towers, spec = matcher.towers, matcher.spec
    return {
        "mmsim": __version__,
        "image_encoder": spec.image_encoder.as_dict(),
        "text_encoder": spec.text_encoder.as_dict(),
        "image_tower": towers["image"].name if "image" in towers else None,
        "text_tower": towers["text"].name if "text" in towers else None,
    }


def _place(tmp: Path, target: Path) -> None:
    """Move the finished export into place, replacing an earlier export only."""
    if target.exists():
        if not target.is_dir() or (any(target.iterdir()) and not (target / FILE).is_file()):
            raise ExportError(
                f"output '{target}' exists and is not an mmsim ONNX export; choose another "
                "output folder or remove it"
            )
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def export(
    matcher: Any,
    directory: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 18,
    min_cosine: float = 0.9999,
    report: Callable[[str], None] = print,
) -> Path:
    """Write ``matcher``'s towers as ONNX graphs to ``directory`` with a manifest.

    ``quantize="int8"``: dynamic int8 quantisation of the checked fp32 graphs; its
    accuracy against fp32 (min cosine, top-10 overlap) is reported and recorded.
    Also writes ``matcher.json`` (the ``onnx`` encoder over this folder with the
    matcher's similarity and fitted threshold), so ``Matcher.load(directory)`` works.
    """
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be one of none, int8; got {quantize!r}")
    if matcher.spec.runtime.dtype != "float32":
        raise ExportError(
            f"export needs a matcher built with dtype=float32, not "
            f"{matcher.spec.runtime.dtype}; int8 is available as quantize=int8"
        )
    target = Path(directory).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ExportError(f"output '{directory}' is a file, not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    then = "an export already there is left as it was"
    with reporting_full_disk(f"the export {target}", target, then=then):
        return _export(matcher, target, quantize, opset, min_cosine, report)


def _export(
    matcher: Any,
    target: Path,
    quantize: str | None,
    opset: int,
    min_cosine: float,
    report: Callable[[str], None],
) -> Path:
    """:func:`export` itself: everything is written in a temporary folder beside
    ``target``, moved into place at the end and removed if anything fails."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
    try:
        towers: dict[str, dict[str, Any]] = {}
        samples = {"image": sample_images(), "text": sample_texts()}
        for tower in matcher.towers.values():
            towers[tower.modality] = _export_tower(tower, tmp, opset, samples, min_cosine)
            check = towers[tower.modality]["check"]
            report(
                f"{tower.modality} tower: exported; against torch min cosine "
                f"{check['min_cosine']:.7f}, max abs diff {check['max_abs_diff']:.2e}"
            )
        quantization = _quantize(tmp, towers, report) if quantize == "int8" else None
        for entry in towers.values():
            entry.pop("_feeds", None)
            entry.pop("_fp32", None)
        _write_matcher(matcher.spec, tmp, target)
        scale, bias = logit_params(matcher.towers.get("image"), matcher.towers.get("text"))
        write_manifest(
            tmp,
            {
                "opset": opset,
                "precision": "int8" if quantization else "fp32",
                "source": _source(matcher),
                "embedding_dim": matcher.embedding_dim,
                "logit_scale": scale,
                "logit_bias": bias,
                "space": matcher.assembly.space,
                "similarity": matcher.spec.similarity.as_dict(),
                "threshold": matcher.spec.threshold.as_dict(),
                "threshold_state": matcher.threshold.state(),
                "towers": towers,
                "quantization": quantization,
            },
        )
        _place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _export_tower(
    tower: Tower, tmp: Path, opset: int, samples: dict[str, list[Any]], min_cos: float
) -> dict[str, Any]:
    spec: TowerExport = tower.export_onnx()  # towers without the capability refuse
    spec.check(tower.modality, tower.name)
    items = samples[tower.modality]
    trace = items[:3] if tower.modality == "image" else items[-6:-3]
    feeds = spec.feeds(_inputs(tower, trace))
    path = tmp / f"{tower.modality}.onnx"
    try:
        _export_graph(spec, feeds, path, opset)
    except Exception as exc:
        if is_disk_full(exc):  # reported as a full disk by export(), not as a bad graph
            raise
        raise ExportError(
            f"torch.onnx.export failed for the {tower.modality} tower of '{tower.name}': {exc}"
        ) from exc
    batches = [items[: len(items) // 2], items[len(items) // 2 :]]
    check, sample_feeds, fp32 = _check(tower, spec, path, batches, min_cos)
    for name, data in spec.files.items():
        write_atomic(tmp / name, data)
    key = "preprocess" if tower.modality == "image" else "tokenizer"
    return {
        "graph": path.name,
        "inputs": [
            {
                "name": name,
                "dtype": str(t.dtype).removeprefix("torch."),
                "shape": [spec.dynamic.get(name, {}).get(i, n) for i, n in enumerate(t.shape)],
            }
            for name, t in feeds.items()
        ],
        "output": OUTPUT,
        key: spec.spec,
        "check": check,
        "_feeds": sample_feeds,
        "_fp32": fp32,
    }


def _write_matcher(spec: Any, tmp: Path, target: Path) -> None:
    """``matcher.json`` of the export: the ``onnx`` encoder over the export folder itself
    (stored as ``./.``, so the folder can be moved), the similarity and fitted threshold,
    on the CPU in float32 (what onnxruntime runs)."""
    document = matcher_document(
        spec.with_runtime(device="cpu", dtype="float32"),
        target,
        encoder={"name": "onnx", "checkpoint": "./."},
    )
    write_atomic(tmp / MATCHER_FILE, json.dumps(document, indent=2) + "\n")
