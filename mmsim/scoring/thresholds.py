"""Thresholding strategies: how a similarity score becomes a decision and a probability.

There is no universal threshold for CLIP-style scores (it depends on the model and on
the kind of query), so a strategy is a registered component, chosen by config, and the
fittable ones learn from labelled pairs (:meth:`ThresholdStrategy.fit`). What they
learn is plain numbers (:meth:`state`), saved with the matcher as JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from mmsim.errors import ConfigError
from mmsim.plugin.schemas import ThresholdConfig
from mmsim.plugin.towers import Tower, logit_params
from mmsim.scoring.calibration import (
    best_f1_threshold,
    fit_isotonic,
    fit_logistic,
    isotonic_predict,
    sigmoid,
    threshold_for_fpr,
    threshold_for_precision,
)
from mmsim.scoring.schemas import (
    FixedThresholdConfig,
    IsotonicConfig,
    NativeConfig,
)
from mmsim.scoring.similarity import ModelLogit, SimilarityStrategy


class NotFittedError(ConfigError):
    """A strategy that must learn from labelled pairs was used before ``calibrate``."""


class ThresholdStrategy(ABC):
    """Maps scores to P(match) (:meth:`proba`) and to 0/1 decisions (:meth:`decide`)."""

    fittable: ClassVar[bool] = False

    def __init__(self, config: ThresholdConfig) -> None:
        self.config = config

    def bind(  # noqa: B027 - most strategies need nothing from the towers
        self, image: Tower | None, text: Tower | None, similarity: SimilarityStrategy
    ) -> None:
        """Read what the strategy needs from the towers and the similarity in use."""

    @abstractmethod
    def proba(self, scores: np.ndarray) -> np.ndarray:
        """P(match) for each score, shape (N,)."""

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """1 where a pair is judged a match; by default P(match) >= 0.5."""
        return (self.proba(scores) >= 0.5).astype(np.int64)

    @property
    def threshold(self) -> float | None:
        """The score at which decisions flip from 0 to 1, where there is a single one."""
        return None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> None:
        raise ConfigError(
            f"threshold '{self.config.name}' has nothing to fit; choose a fittable one "
            "(platt, isotonic, best_f1, target_fpr, target_precision, native)"
        )

    def state(self) -> dict[str, Any]:
        """What :meth:`fit` learned, as JSON-serialisable values."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ConfigError(f"threshold '{self.config.name}' has no fitted state to load")


# -- fixed ------------------------------------------------------------------------------
_DEFAULT_SHARPNESS = 100.0


class FixedThreshold(ThresholdStrategy):
    """A pair matches when its score is at least ``value``."""

    config: FixedThresholdConfig

    def __init__(self, config: FixedThresholdConfig) -> None:
        super().__init__(config)
        self.sharpness = config.sharpness or _DEFAULT_SHARPNESS

    def bind(self, image: Tower | None, text: Tower | None, similarity: SimilarityStrategy):
        if self.config.sharpness is None:
            scale, _ = logit_params(image, text)
            self.sharpness = scale or _DEFAULT_SHARPNESS

    def proba(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(self.sharpness * (np.asarray(scores, dtype=np.float64) - self.config.value))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores) >= self.config.value).astype(np.int64)

    @property
    def threshold(self) -> float:
        return self.config.value


# -- AutoGluon-compatible -----------------------------------------------------------------
class AutoGluonCompatible(ThresholdStrategy):
    """What AutoGluon's zero-shot matcher does, for users migrating: P = (cos + 1) / 2.

    A pair "matches" when cos >= 0, which for CLIP is nearly every pair, and the
    "probability" is a rescaled cosine, not a probability of anything. Not a default.
    """

    def proba(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float64) + 1.0) / 2.0

    @property
    def threshold(self) -> float:
        return 0.0


# -- the model's own probability ----------------------------------------------------------
class NativeProbability(ThresholdStrategy):
    fittable = True

    def __init__(self, config: NativeConfig) -> None:
        super().__init__(config)
        self.scale: float | None = None
        self.bias: float | None = None
        self.fitted_bias: float | None = None
        self.identity = False

    def bind(self, image: Tower | None, text: Tower | None, similarity: SimilarityStrategy):
        self.identity = isinstance(similarity, ModelLogit)  # scores are logits already
        self.scale, self.bias = logit_params(image, text)
        if not self.identity and self.scale is None:
            raise ConfigError("threshold 'native' needs towers that carry a logit scale")

    def _logits(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.identity:
            return s
        bias = self.fitted_bias if self.fitted_bias is not None else self.bias
        if bias is None:
            raise NotFittedError(
                "this model has no native pair probability (no logit bias, as in CLIP); "
                "fit the bias on labelled pairs with matcher.calibrate(...) or `mmsim "
                "calibrate`, or use threshold=platt / isotonic"
            )
        return self.scale * s + bias

    def proba(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(self._logits(scores))

    @property
    def threshold(self) -> float | None:
        if self.identity:
            return 0.0
        bias = self.fitted_bias if self.fitted_bias is not None else self.bias
        return None if bias is None else -bias / self.scale

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> None:
        if self.identity or self.bias is not None:
            raise ConfigError(
                "this model has its own logit bias, so 'native' has nothing to fit; use "
                "platt or isotonic to recalibrate it on your data"
            )
        _, self.fitted_bias = fit_logistic(scores, labels, slope=self.scale)

    def state(self) -> dict[str, Any]:
        return {} if self.fitted_bias is None else {"bias": self.fitted_bias}

    def load_state(self, state: dict[str, Any]) -> None:
        self.fitted_bias = state.get("bias")


# -- calibrated ---------------------------------------------------------------------------
class Platt(ThresholdStrategy):
    fittable = True

    def __init__(self, config: ThresholdConfig) -> None:
        super().__init__(config)
        self.a: float | None = None
        self.b: float | None = None

    def _require(self) -> tuple[float, float]:
        if self.a is None or self.b is None:
            raise NotFittedError(
                f"threshold '{self.config.name}' must be fitted on labelled pairs first: "
                "matcher.calibrate(data, label=...) or `mmsim calibrate`"
            )
        return self.a, self.b

    def proba(self, scores: np.ndarray) -> np.ndarray:
        a, b = self._require()
        return sigmoid(a * np.asarray(scores, dtype=np.float64) + b)

    @property
    def threshold(self) -> float | None:
        return None if self.a is None or not self.a else -self.b / self.a

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.a, self.b = fit_logistic(scores, labels)

    def state(self) -> dict[str, Any]:
        return {} if self.a is None else {"a": self.a, "b": self.b}

    def load_state(self, state: dict[str, Any]) -> None:
        self.a, self.b = state.get("a"), state.get("b")


class Isotonic(ThresholdStrategy):
    fittable = True

    def __init__(self, config: IsotonicConfig) -> None:
        super().__init__(config)
        self.knots: tuple[np.ndarray, np.ndarray] | None = None

    def proba(self, scores: np.ndarray) -> np.ndarray:
        if self.knots is None:
            raise NotFittedError(
                "threshold 'isotonic' must be fitted on labelled pairs first: "
                "matcher.calibrate(data, label=...) or `mmsim calibrate`"
            )
        return isotonic_predict(*self.knots, scores)

    @property
    def threshold(self) -> float | None:
        """Where the interpolated P(match) first reaches 0.5 (None if it never does)."""
        if self.knots is None:
            return None
        x, y = self.knots
        above = np.nonzero(y >= 0.5)[0]
        if not len(above):
            return None
        k = int(above[0])
        if k == 0:
            return float(x[0])  # flat below the first knot: every lower score matches too
        return float(x[k - 1] + (0.5 - y[k - 1]) * (x[k] - x[k - 1]) / (y[k] - y[k - 1]))

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.knots = fit_isotonic(scores, labels)

    def state(self) -> dict[str, Any]:
        if self.knots is None:
            return {}
        return {"x": self.knots[0].tolist(), "y": self.knots[1].tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.knots = (np.array(state["x"]), np.array(state["y"])) if state else None


# -- chosen operating points ----------------------------------------------------------------
class _OperatingPoint(Platt):
    """Decides with a threshold chosen on the fitted pairs; P(match) from a Platt fit."""

    def __init__(self, config: ThresholdConfig) -> None:
        super().__init__(config)
        self.cut: float | None = None

    @abstractmethod
    def choose(self, scores: np.ndarray, labels: np.ndarray) -> float:
        """The score threshold this operating point picks on labelled pairs."""

    def decide(self, scores: np.ndarray) -> np.ndarray:
        self._require()
        return (np.asarray(scores) >= self.cut).astype(np.int64)

    @property
    def threshold(self) -> float | None:
        return self.cut

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> None:
        super().fit(scores, labels)
        self.cut = self.choose(scores, labels)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "threshold": self.cut} if self.cut is not None else {}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.cut = state.get("threshold")


class BestF1(_OperatingPoint):
    def choose(self, scores: np.ndarray, labels: np.ndarray) -> float:
        return best_f1_threshold(scores, labels)


class TargetFpr(_OperatingPoint):
    def choose(self, scores: np.ndarray, labels: np.ndarray) -> float:
        return threshold_for_fpr(scores, labels, self.config.fpr)


class TargetPrecision(_OperatingPoint):
    def choose(self, scores: np.ndarray, labels: np.ndarray) -> float:
        return threshold_for_precision(scores, labels, self.config.precision)
