"""Zero-shot classification: class names and prompt templates become a classifier.

The open_clip recipe: each class is the mean of its prompts' normalised text
embeddings (e.g. "a photo of a {}.", "a drawing of a {}."), re-normalised; images are
scored against every class with the model's logit scale and a softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.embedding.encoding import unit_rows
from mmsim.embedding.results import ErrorPolicy
from mmsim.errors import ConfigError
from mmsim.plugin.towers import logit_params
from mmsim.spec.assembly import Assembly

DEFAULT_TEMPLATES = ("a photo of a {}.",)
_DEFAULT_SCALE = 100.0


@dataclass
class ZeroShotResult:
    """Per-image class probabilities, predictions and, given labels, accuracy."""

    class_names: list[str]
    probabilities: np.ndarray  # (N, C), rows sum to 1
    indices: list[int]  # input positions the rows belong to (skipped images are left out)
    accuracy: float | None = None

    @property
    def predictions(self) -> list[str]:
        return [self.class_names[i] for i in self.probabilities.argmax(axis=1)]


def class_embeddings(
    assembly: Assembly, class_names: Sequence[str], templates: Sequence[str]
) -> np.ndarray:
    """(C, D): mean of each class's normalised prompt embeddings, re-normalised."""
    if not class_names:
        raise ConfigError("zero-shot classification needs at least one class name")
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise ConfigError(
            f"every template needs a '{{}}' for the class name; got {bad or templates}"
        )
    prompts = [t.format(name) for name in class_names for t in templates]
    emb = assembly.embeddings(prompts, modality="text")
    per_class = emb.reshape(len(class_names), len(templates), -1).mean(axis=1)
    return unit_rows(per_class)


def classify(
    assembly: Assembly,
    images: Sequence[Any],
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    labels: Sequence[str] | None = None,
    on_error: ErrorPolicy | str | None = None,
) -> ZeroShotResult:
    """Classify ``images`` (the implementation of :meth:`mmsim.Matcher.classify`);
    images skipped with ``on_error="skip"`` have no row."""
    classes = class_embeddings(assembly, list(class_names), list(templates))
    result = assembly.embed(list(images), modality="image", policy=on_error)
    embeddings, kept = result.embeddings, result.indices
    scale, _ = logit_params(assembly.tower("image"), assembly.tower("text"))
    logits = ((scale or _DEFAULT_SCALE) * embeddings @ classes.T).astype(np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    out = ZeroShotResult(list(class_names), exp / exp.sum(axis=1, keepdims=True), kept)
    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        unknown = sorted({str(labels[i]) for i in kept} - set(class_names))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the class names {list(class_names)}")
        hits = [p == str(labels[i]) for p, i in zip(out.predictions, kept, strict=True)]
        out.accuracy = float(np.mean(hits)) if hits else float("nan")
    return out
