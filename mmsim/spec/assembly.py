"""The towers and strategies a spec describes, built and bound together.

This is the one place where a :class:`~mmsim.spec.matcher_spec.MatcherSpec` turns into
live objects: each distinct encoder is built once (the same options for both towers
give one model), the two towers are checked for a shared embedding space, and the
strategies are built and bound to the towers, the threshold with what it learned. An
Assembly is never changed after it is built: a calibrated or fine-tuned matcher is a
new spec, assembled again (:meth:`Assembly.with_spec` keeps the towers whose encoder
and runtime did not change, so a new threshold costs no model load).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.embedding.batch import ItemBatch
from mmsim.embedding.pipeline import EmbeddingTowers, embed
from mmsim.embedding.results import EmbeddingResult, ErrorPolicy
from mmsim.errors import ConfigError
from mmsim.inputs.detect import MODALITIES, Modality
from mmsim.plugin.loading import get_registry
from mmsim.plugin.towers import ImageTower, Runtime, TextTower, Towers, check_compatible
from mmsim.scoring.similarity import SimilarityStrategy
from mmsim.scoring.thresholds import ThresholdStrategy
from mmsim.spec.matcher_spec import ComponentSpec, MatcherSpec, thaw


@dataclass(frozen=True)
class Assembly:
    """A spec's live parts. ``sources`` holds, per modality, everything that side's
    encoder built (its :class:`~mmsim.plugin.towers.Towers`, with the fine-tuning
    capability where the plugin hands one over)."""

    spec: MatcherSpec
    runtime: Runtime
    sources: Mapping[Modality, Towers]
    image: ImageTower | None
    text: TextTower | None
    similarity: SimilarityStrategy
    threshold: ThresholdStrategy

    @classmethod
    def build(cls, spec: MatcherSpec, *, reuse: Assembly | None = None) -> Assembly:
        """Build the towers (or take them from ``reuse`` where its encoder and runtime
        are the same) and the strategies of ``spec``."""
        # the thread count is part of the runtime: towers built for another are built
        # again (onnxruntime fixes a session's threads when it creates the session)
        runtime = Runtime.create(spec.runtime.device, spec.runtime.dtype, spec.runtime.num_threads)
        built: dict[ComponentSpec, Towers] = {}
        if reuse is not None and reuse.runtime == runtime:
            for side in MODALITIES:
                built.setdefault(reuse.spec.encoder(side), reuse.sources[side])
        sources: dict[Modality, Towers] = {}
        for side in MODALITIES:
            encoder = spec.encoder(side)
            if encoder not in built:
                factory = get_registry().get("encoder", encoder.name).factory
                built[encoder] = factory(encoder.config(), runtime)
            sources[side] = built[encoder]
        torch = sys.modules.get("torch")  # loaded by towers that run on it, and only then
        if spec.runtime.num_threads and torch is not None:
            torch.set_num_threads(spec.runtime.num_threads)
        image, text = sources["image"].image, sources["text"].text
        if image is None and text is None:
            raise ConfigError("the chosen encoders provide neither an image nor a text tower")
        if image is not None and text is not None:
            spaces = (
                spec.image_encoder.options.get("space"),
                spec.text_encoder.options.get("space"),
            )
            check_compatible(image, text, spaces)
        similarity = _similarity(spec.similarity, image, text)
        threshold = _threshold(spec.threshold, image, text, similarity, spec.threshold_state)
        return cls(spec, runtime, sources, image, text, similarity, threshold)

    def with_spec(self, spec: MatcherSpec) -> Assembly:
        """The assembly of a new spec, reusing the towers that did not change."""
        return Assembly.build(spec, reuse=self)

    def native(self) -> Assembly:
        """This assembly with its towers in the model's training framework, which
        fine-tuning and export need: encoders that run the model another way by
        default (the ``demo`` encoder's shipped ONNX graphs) are built again with their
        schema's ``native_options``; the assembly itself where none does."""
        changes = {}
        for side in MODALITIES:
            encoder = self.spec.encoder(side)
            wanted = getattr(encoder.config(), "native_options", {})
            if any(encoder.options.get(k) != v for k, v in wanted.items()):
                changes[f"{side}_encoder"] = encoder.with_options(**wanted)
        return self.with_spec(self.spec.replace(**changes)) if changes else self

    # -- towers -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        tower = self.image or self.text
        assert tower is not None
        return tower.embedding_dim

    @property
    def space(self) -> str | None:
        """The embedding space the towers live in: what the user declared for an
        encoder (its ``space`` option), else what the towers declare, else None."""
        for side, tower in (("image", self.image), ("text", self.text)):
            declared = self.spec.encoder(side).options.get("space")
            if declared or (tower is not None and tower.space):
                return declared or tower.space  # type: ignore[union-attr]
        return None

    def towers(self) -> EmbeddingTowers:
        return EmbeddingTowers(self.image, self.text, self.dim)

    def tower(self, modality: Modality) -> ImageTower | TextTower:
        """The tower of ``modality``; a ConfigError when the encoder provides none."""
        return self.towers().require(modality)

    # -- work ---------------------------------------------------------------------------
    def embed(
        self,
        items: list[Any],
        *,
        modality: Modality | None = None,
        policy: ErrorPolicy | str | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> EmbeddingResult:
        """Embed ``items`` through the pipeline; unset options take the spec's runtime."""
        runtime = self.spec.runtime
        return embed(
            self.towers(),
            ItemBatch.detect(items, modality),
            policy=ErrorPolicy.of(policy or runtime.on_error),
            batch_size=batch_size or runtime.batch_size,
            progress=runtime.progress if progress is None else progress,
        )

    def embeddings(self, items: list[Any], **options: Any) -> np.ndarray:
        """Raise-mode embeddings of ``items`` (float32 rows in input order)."""
        return self.embed(items, policy=ErrorPolicy.RAISE, **options).embeddings

    def fresh_threshold(self, kind: ComponentSpec | None = None) -> ThresholdStrategy:
        """An unfitted thresholding strategy of the spec's kind (or ``kind``), bound to
        these towers: what calibration fits (this assembly's own is never changed)."""
        chosen = kind or self.spec.threshold
        return _threshold(chosen, self.image, self.text, self.similarity, {})


def _similarity(
    spec: ComponentSpec, image: ImageTower | None, text: TextTower | None
) -> SimilarityStrategy:
    strategy = get_registry().get("similarity", spec.name).factory(spec.config())
    strategy.bind(image, text)
    return strategy


def _threshold(
    spec: ComponentSpec,
    image: ImageTower | None,
    text: TextTower | None,
    similarity: SimilarityStrategy,
    state: Mapping[str, Any],
) -> ThresholdStrategy:
    strategy = get_registry().get("threshold", spec.name).factory(spec.config())
    strategy.bind(image, text, similarity)  # thresholds may depend on what the scores are
    if state:
        strategy.load_state(thaw(state))
    return strategy
