"""Fine-tuning a matcher's towers on image-text pairs: the engine of :meth:`Matcher.fit`.

The loop runs the towers' own ``preprocess`` / ``tokenize`` / ``encode`` (the code
paths inference uses), so what is trained is exactly what is later searched with. The
plugins hand over which parameters belong to which tower and how to save the model in
its native format (:class:`mmsim.plugin.trainable.Trainable`); everything else is
here and in :mod:`mmsim.training.parameters`: data, freezing, optimiser and schedule,
losses, validation, best-checkpoint keeping, logs.

A fit ends with a new spec: the encoders point at the saved checkpoint(s) and the
threshold starts unfitted (scores change with the weights). It is saved beside the
checkpoints as ``matcher.json``; the matcher that asked for the fit is rebuilt from it.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmsim.embedding.loader import prefetched
from mmsim.embedding.results import ErrorPolicy, TruncationWarning
from mmsim.errors import ConfigError
from mmsim.files import reporting_full_disk
from mmsim.inputs.pairs import Pairs, read_pairs
from mmsim.retrieval.evaluation import aligned_retrieval
from mmsim.spec.assembly import Assembly
from mmsim.spec.document import save_spec
from mmsim.spec.matcher_spec import MatcherSpec
from mmsim.training.augment import Augmenter
from mmsim.training.log import MetricsLog
from mmsim.training.losses import clip_loss, positives_matrix, siglip_loss, with_negatives
from mmsim.training.options import FitConfig
from mmsim.training.parameters import (
    check_options,
    logit_parameters,
    lr_factor,
    optimizer_for,
    owners_of,
    select_parameters,
)

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: a hotter softmax only destabilises training
# what a fit that ran out of space leaves: a fit does not resume
_FIT_AGAIN = "it trains again from the start"


@dataclass
class FitResult:
    """What :meth:`Matcher.fit` did.

    ``checkpoints``: the saved native checkpoint folder(s), by tower (one folder when
    both towers are one model). ``history``: one row per validation (epoch 0 is the
    model before training). ``best_epoch`` / ``best``: the kept epoch and its metrics.
    ``spec``: the fine-tuned matcher (saved as ``output_dir/matcher.json``).
    ``epochs``: with ``save_epochs``, every trained epoch's checkpoint folder(s) (keyed
    like ``checkpoints``) by epoch.
    """

    output_dir: Path
    checkpoints: dict[str, Path]
    best_epoch: int
    best: dict[str, float]
    spec: MatcherSpec
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    epochs: dict[int, dict[str, Path]] = field(default_factory=dict)


def _split(pairs: Pairs, share: float, rng: np.random.Generator) -> tuple[Pairs, Pairs | None]:
    """Hold out ``share`` of the distinct images with all their captions."""
    if share == 0.0:
        return pairs, None
    keys = pairs.image_keys
    distinct = list(dict.fromkeys(keys))
    held = {
        distinct[i] for i in rng.permutation(len(distinct))[: max(1, round(share * len(distinct)))]
    }
    val = [i for i, k in enumerate(keys) if k in held]
    train = [i for i, k in enumerate(keys) if k not in held]
    if len(train) < 2:
        raise ValueError(f"validation_split={share} leaves fewer than 2 training pairs")
    return pairs.subset(train), pairs.subset(val)


def validate(assembly: Assembly, pairs: Pairs, cutoffs: list[int]) -> dict[str, float]:
    """Retrieval metrics both ways, flattened to ``direction/metric`` plus ``mean_hit_rate``."""
    report, _ = aligned_retrieval(
        assembly,
        pairs.images,
        pairs.captions,
        [True] * len(pairs),
        cutoffs,
        keys=(pairs.image_keys, pairs.captions),
        names=("image_to_text", "text_to_image"),
        progress=False,
    )
    flat = {f"{d}/{k}": float(v) for d, metrics in report.items() for k, v in metrics.items()}
    hits = [v for k, v in flat.items() if "/hit_rate@" in k]
    flat["mean_hit_rate"] = float(np.mean(hits))
    return flat


class _Run:
    """One fit: state shared by the loop, validation and checkpointing."""

    def __init__(
        self,
        assembly: Assembly,
        options: FitConfig,
        output_dir: Path,
        log: MetricsLog,
        steps_per_epoch: int,
    ) -> None:
        self.assembly = assembly
        self.options = options
        self.output_dir = output_dir
        self.log = log
        self.total_steps = steps_per_epoch * options.epochs
        self.step_count = 0
        self.started = time.perf_counter()
        self.losses: list[float] = []
        self.skipped: set[int] = set()
        self.truncated: set[int] = set()
        self.owners = owners_of(assembly, options.freeze)
        trained = select_parameters(self.owners, options)
        device = assembly.runtime.device
        self.scale, self.bias = logit_parameters(self.owners, options.loss, device)
        self.params = list(
            {id(p): p for p in [*trained, self.scale, self.bias] if p is not None}.values()
        )
        self.optimizer = optimizer_for(self.params, options)
        self.models = list({id(o.model): o.model for o in self.owners.values()}.values())
        self.best_state: list[torch.Tensor] | None = None
        self.best_epoch = options.epochs  # without validation, the last epoch is kept
        self.saved: tuple[int, dict[str, Path]] | None = None
        self.encoders = {side: assembly.spec.encoder(side) for side in ("image", "text")}
        self.augmenter = (
            Augmenter(options.augment, options.seed) if options.augment.enabled else None
        )

    # -- training ------------------------------------------------------------------------
    def train_epoch(self, epoch: int, pairs: Pairs, rng: np.random.Generator) -> None:
        """One pass over ``pairs`` in a fresh random order, images decoded ahead."""
        options, runtime = self.options, self.assembly.spec.runtime
        self.train_mode(True)
        keys = pairs.image_keys
        order = rng.permutation(len(pairs))
        batches = [
            order[i : i + options.batch_size].tolist()
            for i in range(0, len(pairs), options.batch_size)
        ]
        bar = tqdm(
            total=len(batches),
            desc=f"epoch {epoch}/{options.epochs}",
            unit="step",
            disable=not runtime.progress,
        )
        augment = self.augmenter
        transform = None if augment is None else (lambda image, i: augment(image, epoch, i))
        images = self.assembly.tower("image")
        for batch in prefetched(images, pairs.images, range(len(pairs)), batches, transform):
            if batch.failures:
                if runtime.on_error is ErrorPolicy.RAISE:
                    raise batch.failures[0].error()
                self.skipped.update(f.index for f in batch.failures)
            factor = lr_factor(
                self.step_count, options.warmup_steps, self.total_steps, options.schedule
            )
            for group in self.optimizer.param_groups:
                group["lr"] = options.lr * factor
            self.step_count += 1
            bar.update(1)
            if len(batch.positions) < 2:  # bad images left too little for a contrastive step
                continue
            captions = [pairs.captions[i] for i in batch.positions]
            negatives = (
                [] if pairs.negatives is None else [pairs.negatives[i] for i in batch.positions]
            )
            loss, cut = self.step(
                batch.inputs,
                captions,
                [keys[i] for i in batch.positions],
                [text for text in negatives if text],
            )
            self.truncated.update(batch.positions[t] for t in cut)
            self.losses.append(loss)
            self._log_step(epoch, loss)
            bar.set_postfix(loss=f"{loss:.4f}")
        bar.close()

    def _log_step(self, epoch: int, loss: float) -> None:
        row = {
            "epoch": epoch,
            "step": self.step_count,
            "loss": loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "logit_scale": float(self.scale.detach().exp()),
        }
        if self.bias is not None:
            row["logit_bias"] = float(self.bias.detach())
        row["seconds"] = round(time.perf_counter() - self.started, 3)
        self.log.write("step", row)

    def step(
        self, inputs: Any, captions: list[str], keys: list[Any], negatives: list[str]
    ) -> tuple[float, list[int]]:
        """One optimiser step; ``negatives`` are hard-negative texts for this batch."""
        image_tower, text_tower = self.assembly.tower("image"), self.assembly.tower("text")
        tokens = text_tower.tokenize(captions + negatives)
        device = self.assembly.runtime.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.options.amp):
            image = F.normalize(image_tower.encode(inputs).float(), dim=-1)
            text = F.normalize(text_tower.encode(tokens).float(), dim=-1)
        positives = positives_matrix(keys, captions)
        if negatives:
            positives = with_negatives(positives, captions, negatives)
        positives = positives.to(device)
        scale = self.scale.exp()
        if self.options.loss == "clip":
            loss = clip_loss(image, text, scale, positives)
        else:
            loss = siglip_loss(image, text, scale, self.bias, positives)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()}; lower lr (now {self.options.lr})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.options.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.options.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            self.scale.clamp_(0.0, MAX_LOGIT_SCALE)
        return float(loss.detach()), [t for t in tokens.truncated if t < len(captions)]

    def check(self, epoch: int, pairs: Pairs, history: list[dict[str, Any]]) -> dict[str, float]:
        """Validation metrics of the current weights, appended to ``history`` and the log."""
        self.train_mode(False)
        metrics = validate(self.assembly, pairs, self.options.cutoffs)
        history.append({"epoch": epoch, **metrics})
        self.log.write("epoch", history[-1])
        return metrics

    # -- best checkpoint -----------------------------------------------------------------
    def remember(self, epoch: int) -> None:
        self.best_epoch = epoch
        self.best_state = [p.detach().clone() for p in self.params]

    def restore(self) -> None:
        if self.best_state is not None:
            with torch.no_grad():
                for p, saved in zip(self.params, self.best_state, strict=True):
                    p.copy_(saved)

    def save(self) -> dict[str, Path]:
        """Native checkpoint(s) of the model(s), and the encoder options that load them.

        One ``checkpoint`` folder when both towers are one model, else an
        ``image_checkpoint`` and a ``text_checkpoint``, so the output is self-contained.
        """
        if self.saved is not None and self.saved[0] == self.best_epoch:
            return self.saved[1]  # this epoch's weights are on disk already
        folders, options = self._write(self.output_dir)
        for side in self.owners:
            self.encoders[side] = self.assembly.spec.encoder(side).with_options(**options[side])
        self.saved = (self.best_epoch, folders)
        return folders

    def save_epoch(self, epoch: int) -> dict[str, Path]:
        """The current weights as ``output_dir/epoch-N/`` (``save_epochs``), laid out
        like the kept checkpoint, for choosing an epoch by a measure fit cannot take."""
        return self._write(self.output_dir / f"epoch-{epoch}")[0]

    def _write(self, root: Path) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
        """Write the trained model(s) under ``root``: the folders by ``model`` (one model)
        or by tower, and each tower's encoder options that load them."""
        shared = self.owners.get("image") is self.owners.get("text")
        folders: dict[str, Path] = {}
        options: dict[str, dict[str, Any]] = {}
        for side, owner in self.owners.items():  # a frozen tower that cannot train stays as is
            if shared and side == "text":
                options[side] = options["image"]
                continue
            folder = root / ("checkpoint" if shared else f"{side}_checkpoint")
            if folder.exists():
                shutil.rmtree(folder)
            try:
                options[side] = owner.save(folder)
            except BaseException:  # (a full disk) half a checkpoint loads as nothing
                shutil.rmtree(folder, ignore_errors=True)
                raise
            folders[side] = folder
        return ({"model": folders["image"]} if shared else folders), options

    def spec(self) -> MatcherSpec:
        """The fine-tuned matcher: encoders loading the saved checkpoints, threshold
        unfitted."""
        spec = self.assembly.spec
        return spec.replace(
            image_encoder=self.encoders["image"],
            text_encoder=self.encoders["text"],
            threshold_state={},
        )

    def train_mode(self, on: bool) -> None:
        for model in self.models:
            model.train(on)


def fit(
    assembly: Assembly,
    data: Any,
    *,
    validation: Any,
    output_dir: str | Path,
    options: FitConfig,
    on_epoch: Callable[[dict[str, Any], bool], None] | None = None,
) -> FitResult:
    """Implementation of :meth:`mmsim.Matcher.fit`; ``on_epoch(row, is_best)`` hears of
    each validated epoch (the command line prints a line per epoch with it). A full disk
    while writing the checkpoints, the log or the spec is a DiskFullError naming them."""
    out = Path(output_dir).expanduser()
    with reporting_full_disk(f"the fit output {out}", out, then=_FIT_AGAIN):
        return _fit(assembly, data, validation, out, options, on_epoch)


def _fit(
    assembly: Assembly,
    data: Any,
    validation: Any,
    out: Path,
    options: FitConfig,
    on_epoch: Callable[[dict[str, Any], bool], None] | None,
) -> FitResult:
    """:func:`fit` itself.

    Trains the weights of ``assembly``'s models in place (they are the plugin's, handed
    over as a Trainable for that), keeps the best epoch's, and returns the new spec.
    """
    check_options(options, assembly)
    if validation is not None and options.validation_split:
        raise ConfigError("fit: give validation pairs or a validation_split, not both")
    if options.patience is not None and validation is None and not options.validation_split:
        raise ConfigError(
            f"fit: patience={options.patience} stops on the validation metric, but this fit"
            " has no validation: give validation= or validation_split="
        )
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    pairs = read_pairs(data, options.image_column, options.text_column, options.negative_column)
    val = (
        read_pairs(validation, options.image_column, options.text_column)
        if validation is not None
        else None
    )
    if val is None:
        pairs, val = _split(pairs, options.validation_split, rng)
    if len(pairs) < 2:
        raise ValueError(f"fit needs at least 2 training pairs, got {len(pairs)}")
    log = MetricsLog(out, options.log_format)
    run = _Run(assembly, options, out, log, math.ceil(len(pairs) / options.batch_size))
    history: list[dict[str, Any]] = []
    best: dict[str, float] = {}
    try:
        if val is not None:
            best = run.check(0, val, history)
            if options.monitor not in best:
                raise ConfigError(
                    f"monitor='{options.monitor}' is not a validation metric; choose one of "
                    f"{sorted(best)}"
                )
            run.remember(0)
        epochs: dict[int, dict[str, Path]] = {}
        stale = 0  # validated epochs since the monitored metric last improved
        for epoch in range(1, options.epochs + 1):
            run.train_epoch(epoch, pairs, rng)
            if epoch == 1:
                _report_first_epoch(run.truncated, run.skipped, assembly)
            if options.save_epochs:
                epochs[epoch] = run.save_epoch(epoch)
            if val is not None:
                metrics = run.check(epoch, val, history)
                improved = metrics[options.monitor] > best[options.monitor]
                if improved:
                    best = metrics
                    run.remember(epoch)
                    run.save()  # now, so a run that dies later keeps its best model
                if on_epoch is not None:
                    on_epoch({**history[-1], "loss": run.losses[-1]}, improved)
                stale = 0 if improved else stale + 1
                if options.patience is not None and stale >= options.patience:
                    break
    finally:
        log.close()
        run.train_mode(False)
        for owner in run.owners.values():
            owner.model.requires_grad_(False)
    run.restore()
    checkpoints = run.save()
    spec = run.spec()
    save_spec(spec, out)
    return FitResult(
        out,
        checkpoints,
        run.best_epoch,
        best,
        spec,
        history,
        run.losses,
        sorted(run.skipped),
        epochs,
    )


def _report_first_epoch(truncated: set[int], skipped: set[int], assembly: Assembly) -> None:
    if truncated:
        warnings.warn(
            f"{len(truncated)} training captions exceed the text tower's limit of "
            f"{assembly.tower('text').max_length} tokens and are trained truncated "
            f"(pairs {sorted(truncated)[:10]}{' ...' if len(truncated) > 10 else ''})",
            TruncationWarning,
            stacklevel=4,
        )
    if skipped:
        warnings.warn(
            f"{len(skipped)} pairs were skipped because their image could not be used "
            f"(pairs {sorted(skipped)[:10]}{' ...' if len(skipped) > 10 else ''})",
            UserWarning,
            stacklevel=4,
        )
