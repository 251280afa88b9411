"""The Matcher: an image tower and a text tower, a similarity and a thresholding strategy.

Any registered image tower can be paired with any registered text tower that shares
its embedding space; by default both come from the same encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmsim.embedding import (
    EmbeddingResult,
    SkippedItem,
    embed_images,
    embed_texts,
    text_failures,
    validate_on_error,
)
from mmsim.errors import ConfigError, ItemError, describe_item
from mmsim.inputs import (
    PathLikeTextWarning,
    as_item_list,
    column,
    column_names,
    detect_modality,
    is_columnar,
    looks_like_missing_path,
)
from mmsim.plugins import get_registry
from mmsim.registry import Kind
from mmsim.report import CalibrationReport
from mmsim.schemas import FitConfig
from mmsim.similarity import SimilarityStrategy
from mmsim.thresholds import ThresholdStrategy
from mmsim.towers import ImageTower, Modality, Runtime, TextTower, Towers, check_compatible
from mmsim.validation import choice, positive_int

if TYPE_CHECKING:
    from mmsim.finetune import FitResult

ComponentSpec = str | Mapping[str, Any]
MODALITIES: tuple[Modality, ...] = ("image", "text")


def _distinct(items: list[Any]) -> tuple[list[int], torch.Tensor]:
    """(position of the first occurrence of each distinct item, for each item the index
    of its distinct item). Paths and texts are compared by value; other items (arrays,
    PIL images) by identity."""
    first: dict[Any, int] = {}
    distinct: list[int] = []
    where = []
    for i, item in enumerate(items):
        key = (type(item).__name__, str(item)) if isinstance(item, (str, Path)) else id(item)
        if key not in first:
            first[key] = len(distinct)
            distinct.append(i)
        where.append(first[key])
    return distinct, torch.tensor(where, dtype=torch.long)


class SkippedPairsWarning(UserWarning):
    """Some pairs could not be scored with ``on_error="skip"``; they are NaN / -1."""


def _spec_to_options(spec: ComponentSpec, kind: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``{"name": ..., **options}`` -> (name, options)."""
    if isinstance(spec, str):
        return spec, {}
    if hasattr(spec, "items"):
        options = _plain(spec)
        name = options.pop("name", None)
        if not name:
            raise ConfigError(f"{kind} options {options} need a 'name'")
        return str(name), options
    raise ConfigError(f"{kind} must be a name or a mapping with a 'name', got {spec!r}")


def _plain(node: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


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
        num_threads: if set, ``torch.set_num_threads`` for CPU inference.
    """

    def __init__(
        self,
        encoder: ComponentSpec = "openai_clip",
        checkpoint: str | None = None,
        query: str | None = None,
        response: str | None = None,
        *,
        image_encoder: ComponentSpec | None = None,
        text_encoder: ComponentSpec | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        similarity: ComponentSpec = "cosine",
        threshold: ComponentSpec = "fixed",
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        progress: bool = True,
        on_error: str = "raise",
        num_threads: int | None = None,
    ) -> None:
        positive_int("batch_size", batch_size)
        self.query = query
        self.response = response
        self.batch_size = batch_size
        self.progress = progress
        self.on_error = validate_on_error(on_error)
        if num_threads:
            torch.set_num_threads(num_threads)
        self.runtime = Runtime.create(device, dtype)

        name, options = _spec_to_options(encoder, "encoder")
        options.update(encoder_options or {})
        if checkpoint is not None:
            options["checkpoint"] = checkpoint
        main_spec = {"name": name, **options}
        self.configs: dict[str, dict[str, Any]] = {}  # validated options, as saved
        self.tower_sources: dict[Modality, Towers] = {}  # what each tower's encoder built
        built: dict[str, Any] = {}
        self._image_tower: ImageTower | None = self._tower(
            image_encoder or main_spec, "image", built
        )
        self._text_tower: TextTower | None = self._tower(text_encoder or main_spec, "text", built)
        if self._image_tower is None and self._text_tower is None:
            raise ConfigError("the chosen encoders provide neither an image nor a text tower")
        if self._image_tower is not None and self._text_tower is not None:
            check_compatible(self._image_tower, self._text_tower)
        self.similarity: SimilarityStrategy = self._strategy("similarity", similarity)
        self.threshold: ThresholdStrategy = self._strategy("threshold", threshold)

    # -- construction ---------------------------------------------------------------
    def _tower(self, spec: ComponentSpec, modality: Modality, built: dict[str, Any]) -> Any:
        name, options = _spec_to_options(spec, f"{modality}_encoder")
        component = get_registry().get("encoder", name)
        config = component.make_config(options)
        self.configs[f"{modality}_encoder"] = asdict(config)
        key = repr(config)  # the same encoder options build the towers once
        if key not in built:
            built[key] = component.factory(config, self.runtime)
        self.tower_sources[modality] = built[key]
        tower = getattr(built[key], modality)
        if tower is not None and config.space is not None:  # the user's declaration wins
            tower.space = config.space
        return tower

    def _strategy(self, kind: Kind, spec: ComponentSpec) -> Any:
        name, options = _spec_to_options(spec, kind)
        component = get_registry().get(kind, name)
        config = component.make_config(options)
        self.configs[kind] = asdict(config)
        strategy = component.factory(config)
        if kind == "threshold":  # thresholds may depend on what the scores are
            strategy.bind(self._image_tower, self._text_tower, self.similarity)
        else:
            strategy.bind(self._image_tower, self._text_tower)
        return strategy

    @classmethod
    def from_config(cls, cfg: Any) -> Matcher:
        """Build from a composed Hydra config (see :func:`mmsim.config.compose`).

        Reads the ``encoder``, optional ``image_encoder`` / ``text_encoder``,
        ``similarity``, ``threshold`` and ``runtime`` nodes, and the pair column names
        from ``columns.query`` / ``columns.response``.
        """
        runtime = cfg.get("runtime") or {}
        columns = cfg.get("columns") or {}
        return cls(
            encoder=cfg.encoder,
            query=columns.get("query"),
            response=columns.get("response"),
            image_encoder=cfg.get("image_encoder"),
            text_encoder=cfg.get("text_encoder"),
            similarity=cfg.get("similarity") or "cosine",
            threshold=cfg.get("threshold") or "fixed",
            device=runtime.get("device", "cpu"),
            dtype=runtime.get("dtype", "float32"),
            batch_size=runtime.get("batch_size", 32),
            progress=runtime.get("progress", True),
            on_error=runtime.get("on_error", "raise"),
            num_threads=runtime.get("num_threads"),
        )

    # -- properties -------------------------------------------------------------------
    @property
    def image_tower(self) -> ImageTower:
        if self._image_tower is None:
            raise ConfigError("this matcher has no image tower (its encoder provides none)")
        return self._image_tower

    @property
    def text_tower(self) -> TextTower:
        if self._text_tower is None:
            raise ConfigError("this matcher has no text tower (its encoder provides none)")
        return self._text_tower

    @property
    def embedding_dim(self) -> int:
        tower = self._image_tower or self._text_tower
        assert tower is not None
        return tower.embedding_dim

    def __repr__(self) -> str:
        return (
            f"Matcher(image={self._image_tower!r}, text={self._text_tower!r}, "
            f"similarity={self.similarity.config.name!r}, threshold={self.threshold.config.name!r})"
        )

    # -- embeddings -------------------------------------------------------------------
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
        :class:`~mmsim.embedding.EmbeddingResult` (embeddings, kept indices, skipped
        items with reasons) is returned instead.
        """
        on_error = validate_on_error(on_error or self.on_error)
        if modality is not None:
            choice("modality", modality, MODALITIES)
        if batch_size is not None:
            positive_int("batch_size", batch_size)
        if is_columnar(data):
            columns = column_names(data)
            if signature is not None:
                columns = [self._signature_column(signature)]
            results = {
                name: self.extract_embedding(
                    column(data, name),
                    modality=modality,
                    as_tensor=as_tensor,
                    batch_size=batch_size,
                    progress=progress,
                    on_error=on_error,
                )
                for name in columns
            }
            return results[columns[0]] if len(columns) == 1 else results
        items = as_item_list(data)
        embeddings, kept, skipped = self._embed(
            items,
            modality,
            on_error,
            batch_size or self.batch_size,
            self.progress if progress is None else progress,
        )
        out = embeddings if as_tensor else embeddings.numpy()
        if on_error == "skip":
            return EmbeddingResult(out, kept, skipped)
        return out

    def _signature_column(self, signature: str) -> str:
        name = {"query": self.query, "response": self.response}.get(signature)
        if name is None:
            raise ConfigError(
                f"signature={signature!r} needs the matcher's {signature!r} column name; "
                "pass query=... and response=... when creating the Matcher"
            )
        return name

    def _embed(
        self,
        items: list[Any],
        modality: Modality | None,
        on_error: str,
        batch_size: int,
        progress: bool,
    ) -> tuple[torch.Tensor, list[int], list[SkippedItem]]:
        """Embed mixed items; every per-item failure goes through the same raise/skip rule.

        In raise mode the failure raised is the first one in input order, whichever
        stage finds it: detection, tokenising (checked before any model work) or
        image loading (images after a known failure are not loaded).
        """
        groups, skipped = self._detect(items, modality)
        out = torch.empty((len(items), self.embedding_dim), dtype=torch.float32)
        ok = torch.zeros(len(items), dtype=torch.bool)
        known: list[SkippedItem] = list(skipped)
        if on_error == "raise" and groups["text"]:
            known += text_failures(
                self.text_tower, [items[i] for i in groups["text"]], groups["text"], batch_size
            )
        first = min(known, key=lambda s: s.index) if on_error == "raise" and known else None
        if groups["image"]:
            positions = [i for i in groups["image"] if first is None or i < first.index]
            emb, kept, bad = embed_images(
                self.image_tower,
                [items[i] for i in positions],
                positions,
                batch_size=batch_size,
                on_error=on_error,
                progress=progress,
                encode=first is None,
            )
            skipped.extend(bad)
            if kept:
                out[kept] = emb
                ok[kept] = True
        if first is not None:
            raise first.error()
        if groups["text"]:
            positions = groups["text"]
            emb, kept, bad = embed_texts(
                self.text_tower,
                [items[i] for i in positions],
                positions,
                batch_size=batch_size,
                progress=progress,
            )
            skipped.extend(bad)
            if kept:
                out[kept] = emb
                ok[kept] = True
        kept_all = ok.nonzero().flatten().tolist()
        skipped.sort(key=lambda s: s.index)
        return out[kept_all] if len(kept_all) < len(items) else out, kept_all, skipped

    def _detect(
        self, items: list[Any], modality: Modality | None
    ) -> tuple[dict[Modality, list[int]], list[SkippedItem]]:
        """Positions of the image and text items, and items of no usable modality.

        Auto-detected texts that look like a mistyped path get one
        :class:`~mmsim.inputs.PathLikeTextWarning` for the call.
        """
        groups: dict[Modality, list[int]] = {"image": [], "text": []}
        failures: list[SkippedItem] = []
        path_like: list[int] = []
        for i, item in enumerate(items):
            try:
                kind = modality or detect_modality(item, i)
            except ItemError as exc:
                failures.append(SkippedItem(i, item, exc.reason))
                continue
            if kind == "text" and modality is None and looks_like_missing_path(item):
                path_like.append(i)
            groups[kind].append(i)
        if path_like:
            shown = ", ".join(f"{i} ({describe_item(items[i])})" for i in path_like[:5])
            warnings.warn(
                f"{len(path_like)} item(s) embedded as texts look like paths to files that do "
                f"not exist: {shown}{' ...' if len(path_like) > 5 else ''}; check the path, "
                "or pass modality='text' if they are meant as texts",
                PathLikeTextWarning,
                stacklevel=4,
            )
        return groups, failures

    # -- pair matching ----------------------------------------------------------------
    def score_pairs(self, data: Any, *, on_error: str | None = None) -> np.ndarray:
        """Similarity score of each (query, response) row of a dict / DataFrame.

        With ``on_error="skip"``, rows whose query or response could not be used score
        NaN and a :class:`SkippedPairsWarning` names them and says why.
        """
        if self.query is None or self.response is None:
            raise ConfigError(
                "pair matching needs the column names: Matcher(..., query='image', "
                "response='text') (any names your data uses)"
            )
        if not is_columnar(data):
            raise TypeError("pair matching expects a dict of columns or a DataFrame")
        on_error = validate_on_error(on_error or self.on_error)
        queries, responses = column(data, self.query), column(data, self.response)
        if len(queries) != len(responses):
            raise ValueError(
                f"columns '{self.query}' and '{self.response}' differ in length: "
                f"{len(queries)} vs {len(responses)}"
            )
        sides = []
        problems: list[str] = []
        for name, items in ((self.query, queries), (self.response, responses)):
            # each distinct item (an image in many pairs, a repeated caption) is embedded once
            distinct, where = _distinct(items)
            try:
                emb, kept, bad = self._embed(
                    [items[i] for i in distinct], None, on_error, self.batch_size, self.progress
                )
            except ItemError as exc:
                row = distinct[exc.index]
                raise ItemError(row, exc.item, f"column '{name}': {exc.reason}") from None
            unique = torch.full((len(distinct), self.embedding_dim), float("nan"))
            unique[kept] = emb
            sides.append(unique[where])
            failed = {s.index: s.reason for s in bad}
            problems += [
                f"row {row} column '{name}': {failed[u]}"
                for row, u in enumerate(where.tolist())
                if u in failed
            ]
        if problems:
            warnings.warn(
                f"{len(problems)} item(s) could not be used; their rows score NaN: "
                + "; ".join(problems[:20])
                + (" ..." if len(problems) > 20 else ""),
                SkippedPairsWarning,
                stacklevel=2,
            )
        return self.similarity.pairwise(sides[0], sides[1]).numpy().astype(np.float64)

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

    # -- fitting and persistence -------------------------------------------------------
    def calibrate(
        self,
        data: Any,
        label: str = "label",
        *,
        holdout: float = 0.0,
        seed: int = 0,
        bins: int = 10,
        on_error: str | None = None,
    ) -> CalibrationReport:
        """Fit the thresholding strategy on labelled pairs and report how well it does.

        ``data`` holds the query and response columns and ``label`` (1 = match, 0 = not).
        With ``holdout`` in (0, 1), that fraction of pairs (stratified by label, chosen
        with ``seed``) is kept out of the fit and the report is computed on it.
        """
        from mmsim.fitting import calibrate

        return calibrate(
            self, data, label, holdout=holdout, seed=seed, bins=bins, on_error=on_error
        )

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
        ``(images, captions)`` lists (see :mod:`mmsim.pairs`). ``options`` are the fields
        of :class:`mmsim.schemas.FitConfig`: ``loss`` (``clip`` / ``siglip``), ``epochs``,
        ``batch_size``, ``lr``, ``warmup_steps``, ``schedule``, ``freeze``,
        ``trainable_blocks``, ``validation_split``, ``monitor``, ``seed``, ...

        Writes to ``output_dir``: the best epoch's model in its plugin's native format
        (``checkpoint/``), the metrics log, and this matcher (``matcher.json``) pointing
        at it. Afterwards this matcher holds the best weights; a thresholding strategy
        fitted before is reset (scores change with the weights: calibrate again).
        ``on_epoch(row, is_best)`` is called after each validated epoch.
        """
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        from mmsim.finetune import fit

        try:
            node = OmegaConf.merge(OmegaConf.structured(FitConfig), options)
            config: FitConfig = OmegaConf.to_object(node)  # type: ignore[assignment]
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid fit options: {exc}") from None
        return fit(
            self,
            data,
            validation=validation,
            output_dir=output_dir,
            options=config,
            on_epoch=on_epoch,
        )

    def after_training(self, logit_scale: float | None, logit_bias: float | None) -> None:
        """Take up new weights: towers carry the trained scale and bias, the strategies
        are bound again, and the thresholding strategy starts unfitted."""
        for tower in (self._image_tower, self._text_tower):
            if tower is not None:
                if logit_scale is not None:
                    tower.logit_scale = logit_scale
                if logit_bias is not None:
                    tower.logit_bias = logit_bias
        self.similarity.bind(self._image_tower, self._text_tower)
        self.threshold = self._strategy("threshold", self.configs["threshold"])

    def save(self, directory: str | Path) -> Path:
        """Write the matcher (encoders, strategies, fitted parameters, columns) as JSON."""
        from mmsim.persistence import save_matcher

        return save_matcher(self, directory)

    def export_onnx(
        self, directory: str | Path, *, quantize: str | None = None, **options: Any
    ) -> Path:
        """Export the towers as ONNX graphs for the ``onnx`` encoder (onnxruntime).

        Each graph is checked against this matcher's towers on sample inputs and refused
        if it disagrees; ``quantize="int8"`` adds dynamic int8 quantisation and reports
        its accuracy. The folder then loads as ``Matcher("onnx", checkpoint=directory)``
        or, with this matcher's similarity and threshold, ``Matcher.load(directory)``.
        Needs the ``export`` extra (onnx, onnxscript, onnxruntime); see docs/export.md.
        """
        from mmsim.export import export_matcher

        return export_matcher(self, directory, quantize=quantize, **options)

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> Matcher:
        """Rebuild a matcher saved with :meth:`save`.

        ``overrides`` (``device``, ``dtype``, ``batch_size``, ``query``, ...) replace the
        saved values. Loading touches the network only if the saved checkpoint does.
        """
        from mmsim.persistence import load_matcher

        return load_matcher(cls, directory, **overrides)

    # -- evaluation and zero-shot classification ----------------------------------------
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
        from mmsim.evaluation import evaluate

        return evaluate(
            self,
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
    ) -> Any:
        """Zero-shot classification of images into ``class_names`` (see :mod:`mmsim.zeroshot`)."""
        from mmsim.zeroshot import classify

        return classify(self, as_item_list(images), class_names, templates, labels, on_error)
