"""The Matcher: the public face of a spec and the towers and strategies built from it.

A Matcher holds one :class:`~mmsim.spec.assembly.Assembly` (a
:class:`~mmsim.spec.matcher_spec.MatcherSpec` with its live towers and strategies)
and delegates every call: embedding to :mod:`mmsim.embedding`, pair scoring and
threshold fitting to :mod:`mmsim.scoring`, evaluation and zero-shot classification to
:mod:`mmsim.retrieval`, fine-tuning to :mod:`mmsim.training`, saving to
:mod:`mmsim.spec.document`, exporting to a registered exporter. Calibrating or
fine-tuning gives the matcher a new spec (and assembly); nothing else changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsim.embedding.results import EmbeddingResult, ErrorPolicy
from mmsim.errors import ConfigError, choice, positive_int
from mmsim.files import reporting_full_disk
from mmsim.inputs.detect import (
    MODALITIES,
    Modality,
    as_item_list,
    column,
    column_names,
    is_columnar,
)
from mmsim.plugin.towers import ImageTower, TextTower, Tower
from mmsim.retrieval.evaluation import evaluate
from mmsim.retrieval.zeroshot import ZeroShotResult, classify
from mmsim.scoring.fitting import check_labels, fit_threshold, parse_labels, require_fittable
from mmsim.scoring.pairs import score_pairs
from mmsim.scoring.report import CalibrationReport
from mmsim.scoring.similarity import SimilarityStrategy
from mmsim.scoring.thresholds import ThresholdStrategy
from mmsim.spec.assembly import Assembly
from mmsim.spec.document import read_spec, save_spec
from mmsim.spec.matcher_spec import Choice, ComponentSpec, MatcherSpec

if TYPE_CHECKING:
    from mmsim.training.trainer import FitResult


class Matcher:
    """Embeds images and texts, searches, and says whether image-text pairs match.

    Args:
        encoder: registered encoder name (see ``mmsim plugins``), or a mapping with
            ``name`` and the encoder's options.
        checkpoint: the checkpoint reference for ``encoder`` (hub id, local directory,
            ...); overrides the encoder's default.
        query, response: column names used by :meth:`predict` / :meth:`predict_proba`.
        image_encoder, text_encoder: take that tower from another encoder (name or
            mapping); default: ``encoder``.
        encoder_options: extra options for ``encoder``, validated against its schema.
        similarity, threshold: strategy names or mappings with ``name`` and options.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        dtype: compute dtype of the towers; returned embeddings are always float32.
        batch_size, progress, on_error: defaults for :meth:`extract_embedding`.
        num_threads: if set, the CPU threads of inference (torch's, onnxruntime's).

    The arguments become a :class:`~mmsim.spec.matcher_spec.MatcherSpec`
    (:attr:`spec`); :meth:`from_spec` builds a matcher from one directly.
    """

    def __init__(
        self,
        encoder: Choice = "openai_clip",
        checkpoint: str | None = None,
        query: str | None = None,
        response: str | None = None,
        *,
        image_encoder: Choice | None = None,
        text_encoder: Choice | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        similarity: Choice = "cosine",
        threshold: Choice = "fixed",
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        progress: bool = True,
        on_error: str = "raise",
        num_threads: int | None = None,
    ) -> None:
        spec = MatcherSpec.create(
            encoder,
            checkpoint,
            query,
            response,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            encoder_options=encoder_options,
            similarity=similarity,
            threshold=threshold,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            progress=progress,
            on_error=on_error,
            num_threads=num_threads,
        )
        self._assembly = Assembly.build(spec)

    @classmethod
    def from_spec(cls, spec: MatcherSpec) -> Matcher:
        """The matcher ``spec`` describes (its towers built, its strategies bound)."""
        return cls._over(Assembly.build(spec))

    @classmethod
    def _over(cls, assembly: Assembly) -> Matcher:
        """A matcher over an assembly already built (nothing is built again)."""
        matcher = cls.__new__(cls)
        matcher._assembly = assembly
        return matcher

    @classmethod
    def from_config(cls, cfg: Any) -> Matcher:
        """Build from a composed Hydra config (see :func:`mmsim.config.compose` and
        :meth:`MatcherSpec.from_config <mmsim.spec.matcher_spec.MatcherSpec.from_config>`)."""
        return cls.from_spec(MatcherSpec.from_config(cfg))

    def set_runtime(self, **changes: Any) -> None:
        """Run with other runtime settings (``num_threads``, ``batch_size``, ``device``,
        ... as :class:`Matcher` takes them). Towers built for another device, dtype or
        thread count are built again: onnxruntime fixes a session's threads when it
        creates it."""
        self._become(self.spec.with_runtime(**changes))

    def _become(self, spec: MatcherSpec, *, rebuild: bool = False) -> None:
        """Take ``spec`` (towers reused where unchanged, or all rebuilt)."""
        self._assembly = Assembly.build(spec) if rebuild else self._assembly.with_spec(spec)

    # -- what it is made of ---------------------------------------------------------------
    @property
    def spec(self) -> MatcherSpec:
        """The typed, immutable spec of this matcher."""
        return self._assembly.spec

    @property
    def assembly(self) -> Assembly:
        """The live towers and bound strategies built from :attr:`spec`."""
        return self._assembly

    @property
    def towers(self) -> dict[Modality, Tower]:
        """The towers this matcher has, by modality (an encoder may provide only one)."""
        found = {"image": self._assembly.image, "text": self._assembly.text}
        return {m: t for m, t in found.items() if t is not None}  # type: ignore[misc]

    @property
    def image_tower(self) -> ImageTower:
        return self._assembly.tower("image")  # type: ignore[return-value]

    @property
    def text_tower(self) -> TextTower:
        return self._assembly.tower("text")  # type: ignore[return-value]

    @property
    def embedding_dim(self) -> int:
        return self._assembly.dim

    @property
    def similarity(self) -> SimilarityStrategy:
        return self._assembly.similarity

    @property
    def threshold(self) -> ThresholdStrategy:
        return self._assembly.threshold

    @property
    def query(self) -> str | None:
        return self.spec.columns.query

    @query.setter
    def query(self, name: str | None) -> None:
        self._become(self.spec.with_columns(name, self.spec.columns.response))

    @property
    def response(self) -> str | None:
        return self.spec.columns.response

    @response.setter
    def response(self, name: str | None) -> None:
        self._become(self.spec.with_columns(self.spec.columns.query, name))

    def __repr__(self) -> str:
        return (
            f"Matcher(image={self._assembly.image!r}, text={self._assembly.text!r}, "
            f"similarity={self.spec.similarity.name!r}, threshold={self.spec.threshold.name!r})"
        )

    # -- embeddings -------------------------------------------------------------------------
    def extract_embedding(
        self,
        data: Any,
        *,
        modality: Modality | None = None,
        signature: str | None = None,
        as_tensor: bool = False,
        batch_size: int | None = None,
        progress: bool | None = None,
        on_error: str | None = None,
    ) -> Any:
        """Embed images and/or texts.

        ``data`` is one item, a list of items (image paths, URLs, PIL images, bytes,
        arrays, strings; each item's modality detected on its own, so lists may mix), or
        a dict / DataFrame of columns. ``modality`` forces one modality for every item.
        ``signature="query"`` / ``"response"`` embeds that column of columnar data.

        Returns float32, L2-normalised (N, D) rows in input order, as numpy (or a CPU
        tensor with ``as_tensor=True``); columnar data with several columns gives a dict
        of those. With ``on_error="skip"`` bad items are left out and an
        :class:`~mmsim.embedding.results.EmbeddingResult` (embeddings, kept indices,
        skipped items with reasons) is returned instead.
        """
        policy = ErrorPolicy.of(on_error or self.spec.runtime.on_error)
        if modality is not None:
            choice("modality", modality, MODALITIES)
        if batch_size is not None:
            positive_int("batch_size", batch_size)
        if is_columnar(data):
            names = [self._signature_column(signature)] if signature else column_names(data)
            results = {
                name: self.extract_embedding(
                    column(data, name),
                    modality=modality,
                    as_tensor=as_tensor,
                    batch_size=batch_size,
                    progress=progress,
                    on_error=policy,
                )
                for name in names
            }
            return results[names[0]] if len(names) == 1 else results
        result = self._assembly.embed(
            as_item_list(data),
            modality=modality,
            policy=policy,
            batch_size=batch_size,
            progress=progress,
        )
        out = _as_tensor(result.embeddings) if as_tensor else result.embeddings
        if policy is ErrorPolicy.SKIP:
            return EmbeddingResult(out, result.indices, result.skipped)
        return out

    def _signature_column(self, signature: str) -> str:
        name = {"query": self.query, "response": self.response}.get(signature)
        if name is None:
            raise ConfigError(
                f"signature={signature!r} needs the matcher's {signature!r} column name; "
                "pass query=... and response=... when creating the Matcher"
            )
        return name

    # -- pair matching ------------------------------------------------------------------------
    def score_pairs(self, data: Any, *, on_error: str | None = None) -> np.ndarray:
        """Similarity score of each (query, response) row of a dict / DataFrame.

        With ``on_error="skip"``, rows whose query or response could not be used score
        NaN and a :class:`~mmsim.scoring.pairs.SkippedPairsWarning` names them and says
        why. Each distinct item of a column is embedded once.
        """
        policy = ErrorPolicy.of(on_error or self.spec.runtime.on_error)
        return score_pairs(
            lambda items: self._assembly.embed(items, policy=policy),
            self.similarity,
            self.embedding_dim,
            (self.query, self.response),
            data,
        )

    def predict_proba(self, data: Any, *, on_error: str | None = None) -> np.ndarray:
        """(N, 2) float array; column 1 is P(match), column 0 is 1 - P(match).

        Rows skipped with ``on_error="skip"`` are NaN.
        """
        p = self.threshold.proba(self.score_pairs(data, on_error=on_error))
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, data: Any, *, on_error: str | None = None, return_proba: bool = False) -> Any:
        """(N,) int array: 1 for a match, 0 for no match, -1 for rows skipped on error.

        ``return_proba=True`` returns ``(decisions, proba)`` from the same single pass,
        ``proba`` as :meth:`predict_proba` gives it: embed once, get both.
        """
        scores = self.score_pairs(data, on_error=on_error)
        decisions = self.threshold.decide(np.nan_to_num(scores, nan=-np.inf))
        decisions[np.isnan(scores)] = -1
        if not return_proba:
            return decisions
        p = self.threshold.proba(scores)
        return decisions, np.stack([1.0 - p, p], axis=1)

    # -- fitting ------------------------------------------------------------------------------
    def calibrate(
        self,
        data: Any,
        label: str = "label",
        *,
        holdout: float = 0.0,
        seed: int = 0,
        bins: int = 10,
        on_error: str | None = None,
        threshold: str | Mapping[str, Any] | None = None,
    ) -> CalibrationReport:
        """Fit the thresholding strategy on labelled pairs and report how well it does.

        ``data`` holds the query and response columns and ``label`` (1 = match, 0 = not).
        With ``holdout`` in (0, 1), that fraction of pairs (stratified by label, chosen
        with ``seed``) is kept out of the fit and the report is computed on it. The
        matcher then holds a new spec whose threshold state is what was learned.
        ``threshold`` (a name, or a mapping with ``name`` and options) fits that
        strategy instead of the spec's, and the matcher switches to it.
        """
        kind = None if threshold is None else ComponentSpec.create("threshold", threshold)
        strategy = self._assembly.fresh_threshold(kind)
        require_fittable(strategy)
        labels = parse_labels(column(data, label), label)
        pairs = len(column(data, self.query)) if self.query is not None else len(labels)
        check_labels(labels, label, pairs, self.query)
        scores = self.score_pairs(data, on_error=on_error)
        report = fit_threshold(
            strategy,
            self.spec.similarity.name,
            scores,
            labels,
            holdout=holdout,
            seed=seed,
            bins=bins,
        )
        spec = self.spec if kind is None else self.spec.replace(threshold=kind)
        self._become(spec.with_threshold_state(strategy.state()))
        return report

    def fit(
        self,
        data: Any,
        *,
        output_dir: str | Path,
        validation: Any = None,
        on_epoch: Callable[[dict[str, Any], bool], None] | None = None,
        **options: Any,
    ) -> FitResult:
        """Fine-tune the towers contrastively on image-caption pairs.

        ``data`` / ``validation``: a dict or DataFrame with an image and a caption column,
        a CSV/Parquet file, a folder (``captions.csv`` or ``<image>.txt`` captions), or
        ``(images, captions)`` lists (see :mod:`mmsim.inputs.pairs`). ``options`` are the
        fields of :class:`mmsim.training.options.FitConfig`: ``loss`` (``clip`` /
        ``siglip``), ``epochs``, ``batch_size``, ``lr``, ``warmup_steps``, ``schedule``,
        ``freeze``, ``trainable_blocks``, ``validation_split``, ``monitor``, ``seed``, ...

        Writes to ``output_dir``: the best epoch's model in its plugin's native format
        (``checkpoint/``), the metrics log, and the fine-tuned matcher (``matcher.json``)
        pointing at it. This matcher then holds that spec, built from the saved
        checkpoint; a thresholding strategy fitted before starts unfitted again (scores
        change with the weights: calibrate again). ``on_epoch(row, is_best)`` is called
        after each validated epoch.
        """
        # imported here, as torch is: only training needs them
        from mmsim.training.options import fit_options
        from mmsim.training.trainer import fit as run_fit

        result = run_fit(
            self._assembly.native(),
            data,
            validation=validation,
            output_dir=output_dir,
            options=fit_options(options),
            on_epoch=on_epoch,
        )
        self._become(result.spec, rebuild=True)
        return result

    # -- persistence and export ----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the matcher (encoders, strategies, fitted parameters, columns) as JSON;
        on a full disk a DiskFullError, and a matcher saved there before is kept."""
        then = "a matcher saved there before is left as it was"
        with reporting_full_disk(f"the matcher {directory}", directory, then=then):
            return save_spec(self.spec, directory)

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> Matcher:
        """Rebuild a matcher saved with :meth:`save`.

        ``overrides`` (``device``, ``dtype``, ``batch_size``, ``query``, ...) replace the
        saved values. Loading touches the network only if the saved checkpoint does.
        """
        spec = read_spec(directory, **overrides)
        try:
            return cls.from_spec(spec)
        except ConfigError as exc:
            raise ConfigError(f"saved matcher {Path(directory) / 'matcher.json'}: {exc}") from exc

    def export(self, directory: str | Path, exporter: str = "onnx", **options: Any) -> Path:
        """Write the towers with a registered exporter (``mmsim plugins`` lists them) to
        ``directory``, a folder the exporter's encoder loads again."""
        # imported here: the exporters' helpers (sample scenes) are not worth loading
        # for every matcher that never exports
        from mmsim.plugin.exporters import export

        native = Matcher._over(self._assembly.native())  # the towers in their training framework
        return export(native, directory, exporter, **options)

    def export_onnx(
        self, directory: str | Path, *, quantize: str | None = None, **options: Any
    ) -> Path:
        """Export the towers as ONNX graphs for onnxruntime (the ``onnx`` exporter).

        Each graph is checked against this matcher's towers on sample inputs and refused
        if it disagrees; ``quantize="int8"`` adds dynamic int8 quantisation and reports
        its accuracy. The folder then loads as ``Matcher("onnx", checkpoint=directory)``
        or, with this matcher's similarity and threshold, ``Matcher.load(directory)``.
        Needs the ``onnx`` plugin with its ``export`` extra; see docs/export.md.
        """
        return self.export(directory, "onnx", quantize=quantize, **options)

    # -- evaluation and zero-shot classification -------------------------------------------------
    def evaluate(
        self,
        data: Any = None,
        *,
        label: str | None = None,
        qrels: Any = None,
        queries: Mapping[Any, Any] | None = None,
        responses: Mapping[Any, Any] | None = None,
        cutoffs: tuple[int, ...] = (1, 5, 10),
        qrels_columns: tuple[str, str, str] = ("query", "response", "relevance"),
    ) -> dict[str, Any]:
        """Retrieval metrics (recall@k, hit rate@k, MRR, nDCG@k, mAP) and pair metrics.

        Either aligned pairs — ``data`` with the matcher's query and response columns,
        each row a relevant pair, searched in both directions (with ``label``, only rows
        labelled 1 are relevant, and pair-classification metrics of the thresholding
        strategy are added) — or AutoGluon-style judgements: ``qrels`` rows of (query
        id, response id, relevance) with ``queries`` / ``responses`` mapping ids to items.
        """
        return evaluate(
            self._assembly,
            data,
            label=label,
            qrels=qrels,
            queries=queries,
            responses=responses,
            cutoffs=cutoffs,
            qrels_columns=qrels_columns,
        )

    def classify(
        self,
        images: Any,
        class_names: list[str],
        templates: tuple[str, ...] | list[str] = ("a photo of a {}.",),
        *,
        labels: list[str] | None = None,
        on_error: str | None = None,
    ) -> ZeroShotResult:
        """Zero-shot classification of images into ``class_names`` (see
        :mod:`mmsim.retrieval.zeroshot`)."""
        return classify(
            self._assembly, as_item_list(images), class_names, templates, labels, on_error
        )


def _as_tensor(embeddings: np.ndarray) -> Any:
    """Embeddings as a CPU tensor (``as_tensor=True``); torch is imported only for it."""
    import torch

    return torch.from_numpy(embeddings)
