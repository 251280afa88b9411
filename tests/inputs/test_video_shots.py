"""Shot detection on real generated footage with known cuts, and the sampling modes that
use it."""

from __future__ import annotations

import pytest

from mmsim.inputs.video import Sampling, detect_shots, probe, read_frames, sample_times
from mmsim.inputs.video.sampling import SHOT_SETTLE
from tests.videos import shot_clip

FPS = 24


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """24 shots of a shaking, grainy camera (pans, a crossing, a fade, a light ramp, a
    flash), 19 joined by hard cuts and 4 by dissolves, and the 19 cut times."""
    path = tmp_path_factory.mktemp("shots") / "shots.mp4"
    cuts = shot_clip(path, shots=24, fps=FPS)
    return path, probe(path), cuts


def within_a_frame(a: float, b: float) -> bool:
    return abs(a - b) <= 1 / FPS + 1e-6


def test_cuts_are_found_within_a_frame_and_motion_is_no_cut(footage):
    """The issue's figure: at least 0.95 of the cuts within a frame, under 5% false
    (here: all 19, and no flash, dissolve, fade or pan taken for a cut)."""
    path, info, cuts = footage
    assert len(cuts) == 19
    found = detect_shots(path, info)
    hits = [c for c in cuts if any(within_a_frame(c, f) for f in found)]
    false = [f for f in found if not any(within_a_frame(c, f) for c in cuts)]
    assert len(hits) >= 0.95 * len(cuts)
    assert len(false) < 0.05 * len(found)


def test_a_range_finds_the_cuts_inside_it(footage):
    path, info, cuts = footage
    start, end = cuts[5], cuts[12] + 0.1  # a cut right at the start is found too
    found = detect_shots(path, info, start, end)
    assert len(found) == 8 and all(
        within_a_frame(a, b) for a, b in zip(found, cuts[5:13], strict=True)
    )


def test_shot_sampling_takes_the_first_frame_and_one_after_each_cut(tmp_path):
    path = tmp_path / "few.mp4"
    cuts = shot_clip(path, shots=6, fps=FPS, seed=1)
    info = probe(path)
    times = sample_times(path, info, Sampling(mode="shots"))
    assert times[0] == 0.0 and len(times) == len(cuts) + 1
    for time, cut in zip(times[1:], cuts, strict=True):
        assert cut < time <= cut + SHOT_SETTLE + 1 / FPS
    both = sample_times(path, info, Sampling(every=1, mode="both"))
    assert set(times) <= set(both) and {0.0, 1.0, 2.0, 3.0} <= set(both)
    assert both == sorted(both)
    capped = sample_times(path, info, Sampling(every=1, mode="both", max_frames=5))
    assert len(capped) == 5 and set(capped) <= set(both)
    frames = list(read_frames(path, times))
    assert len(frames) == len(times)  # one frame per shot, none shared
