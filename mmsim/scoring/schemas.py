"""The option schemas of the core's similarity and thresholding strategies.

They live apart from the strategies so that registering the strategies (which every
command does first, to validate its options) needs neither torch nor the strategies'
code; the strategies import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmsim.plugin.schemas import SimilarityConfig, ThresholdConfig


@dataclass
class CosineConfig(SimilarityConfig):
    name: str = "cosine"


@dataclass
class DotConfig(SimilarityConfig):
    name: str = "dot"


@dataclass
class LogitConfig(SimilarityConfig):
    """``scale`` / ``bias`` override the towers' own values when set."""

    name: str = "logit"
    scale: float | None = None
    bias: float | None = None


@dataclass
class FixedThresholdConfig(ThresholdConfig):
    """``value`` is the score at which a pair counts as a match.

    ``sharpness`` is the slope of the logistic that turns the distance from the
    threshold into a probability; left unset, it is the model's own logit scale (CLIP's
    is 100), or 100 for towers without one. The probability is not calibrated: fit a
    calibrated strategy on labelled pairs for that.
    """

    name: str = "fixed"
    value: float = 0.25
    sharpness: float | None = None


@dataclass
class AutoGluonConfig(ThresholdConfig):
    name: str = "autogluon"


@dataclass
class NativeConfig(ThresholdConfig):
    """SigLIP's own pair probability, sigmoid(scale * cos + bias).

    For models without a logit bias (CLIP), the scale is the model's and the bias is
    learned from labelled pairs by ``calibrate``: CLIP was trained with a softmax over a
    batch, which gives no absolute probability of its own.
    """

    name: str = "native"


@dataclass
class PlattConfig(ThresholdConfig):
    """Logistic calibration P(match) = sigmoid(a * score + b), fitted on labelled pairs."""

    name: str = "platt"


@dataclass
class IsotonicConfig(ThresholdConfig):
    """Isotonic calibration: the best non-decreasing step function P(match | score)."""

    name: str = "isotonic"


@dataclass
class BestF1Config(ThresholdConfig):
    """The threshold with the best F1 on the fitted pairs."""

    name: str = "best_f1"


@dataclass
class TargetFprConfig(ThresholdConfig):
    """The lowest threshold whose false-positive rate on the fitted pairs is <= ``fpr``."""

    name: str = "target_fpr"
    fpr: float = 0.05


@dataclass
class TargetPrecisionConfig(ThresholdConfig):
    """The lowest threshold whose precision on the fitted pairs is >= ``precision``."""

    name: str = "target_precision"
    precision: float = 0.9
