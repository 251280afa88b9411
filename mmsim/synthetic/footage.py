"""Demo footage: short H.264 videos of the shapes world, with hard cuts and their truth.

A clip is a run of scenes. Each scene shows one or two shapes of the world
(:func:`~mmsim.synthetic.world.sample_layout`) that drift, grow or shrink and spin
through full turns (:mod:`~mmsim.synthetic.motion`) while its caption stays true; at a
cut the next scene starts on the very next frame with other colour-shape combinations,
another background and other drawing choices. Captions are distinct across the footage
where the split still has new ones, so a caption names one true scene. The truth
(``truth.json``: each scene's frames, times, caption and shapes, each cut's frame and
time) is exact by construction, since the writer numbers the frames itself: frame
``n`` has presentation time ``n / fps``.

Frames are drawn by the world's renderers (:func:`~mmsim.synthetic.dataset.draw`), the
scene in the centre square of the frame (what a model that crops the centre sees), the
background running on to the frame's edges. Larger frames are drawn at ``draw_side``
pixels (:data:`DRAW_SIDE` by default) and scaled up: the shapes are smooth polygons, so
little is lost but time (drawing a 720p frame at full size takes longer than encoding
it). Each scene's renderer choices (background, colours, outline) come from
one seed, so they hold for every frame of the scene. Everything is deterministic per
seed: the same options give the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsim.errors import ConfigError, choice, positive_int
from mmsim.files import reporting_full_disk, write_atomic
from mmsim.inputs.video.errors import load_av
from mmsim.synthetic.dataset import RENDERERS, Renderer, draw
from mmsim.synthetic.motion import Motion, sample_motion
from mmsim.synthetic.world import SPLITS, Layout, Split, sample_layout

DRAW_SIDE = 384
"""Frames whose longer side is larger are drawn at this side and scaled up (default)."""
MAX_SIDE = 8192
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
"""libx264 speed presets (faster: larger files; the decoder's work is much the same)."""
TRUTH = "truth.json"


@dataclass(frozen=True)
class FootageScene:
    """Frames ``[start_frame, end_frame)`` of a clip: one motion, drawn with one
    renderer seed (``style``)."""

    start_frame: int
    end_frame: int
    motion: Motion
    style: int

    @property
    def caption(self) -> str:
        return self.motion.layout.caption


@dataclass(frozen=True)
class Clip:
    """One video's plan: its size, frame rate, frames and scenes (drawn on demand)."""

    name: str
    width: int
    height: int
    fps: float
    frames: int
    scenes: tuple[FootageScene, ...]
    renderer: Renderer = "training"
    draw_side: int = DRAW_SIDE

    def scene_of(self, n: int) -> FootageScene:
        """The scene frame ``n`` belongs to."""
        if not 0 <= n < self.frames:
            raise IndexError(f"frame {n} is outside {self.name} (frames 0 to {self.frames - 1})")
        return next(s for s in self.scenes if s.start_frame <= n < s.end_frame)

    def layout(self, n: int) -> Layout:
        """What frame ``n`` shows, before drawing."""
        scene = self.scene_of(n)
        return scene.motion.at((n - scene.start_frame) / self.fps)

    def frame(self, n: int) -> Image.Image:
        """Frame ``n`` as an RGB image of the clip's size."""
        side = max(self.width, self.height)
        squeeze = min(self.width, self.height) / side  # the scene's square within the canvas
        layout = self.layout(n)
        placed = tuple(
            replace(
                o,
                x=0.5 + (o.x - 0.5) * squeeze,
                y=0.5 + (o.y - 0.5) * squeeze,
                extent=o.extent * squeeze,
            )
            for o in layout.objects
        )
        drawn = min(side, self.draw_side)
        rng = np.random.default_rng(self.scene_of(n).style)
        image = draw(replace(layout, objects=placed), self.renderer, drawn, rng)
        left, top = (side - self.width) // 2, (side - self.height) // 2
        box = (left, top, left + self.width, top + self.height)
        if drawn == side:
            return image.crop(box)
        scale = drawn / side  # the frame's part of the drawing, scaled up to the frame
        return image.resize(
            (self.width, self.height), Image.Resampling.BILINEAR, box=[v * scale for v in box]
        )

    def truth(self) -> dict[str, Any]:
        """What the clip shows when: scenes (frames, seconds, caption, shapes) and cuts."""
        scenes = []
        for scene in self.scenes:
            layout = scene.motion.layout
            scenes.append(
                {
                    "start": _seconds(scene.start_frame, self.fps),
                    "end": _seconds(scene.end_frame, self.fps),
                    "start_frame": scene.start_frame,
                    "end_frame": scene.end_frame,
                    "caption": layout.caption,
                    "relation": layout.relation,
                    "objects": [
                        {
                            "colour": o.colour,
                            "shape": o.shape,
                            "size": o.size,
                            "position": o.position,
                        }
                        for o in layout.objects
                    ],
                }
            )
        cuts = [
            {"frame": s.start_frame, "time": _seconds(s.start_frame, self.fps)}
            for s in self.scenes[1:]
        ]
        return {
            "video": self.name,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frames,
            "duration": _seconds(self.frames, self.fps),
            "scenes": scenes,
            "cuts": cuts,
        }


def _seconds(frame: int, fps: float) -> float:
    return round(frame / fps, 6)


def parse_size(value: object) -> tuple[int, int]:
    """``"320x240"``, ``(320, 240)`` or ``[320, 240]`` as (width, height): even numbers
    (H.264 in yuv420p halves the colour planes) from 16 to 8192."""
    parts: Sequence[object]
    if isinstance(value, str):
        parts = value.lower().split("x")
    elif isinstance(value, Sequence):
        parts = value
    else:
        parts = ()
    try:
        width, height = (int(str(p).strip()) for p in parts)
    except ValueError:
        width = height = -1
    if not all(16 <= v <= MAX_SIDE and v % 2 == 0 for v in (width, height)):
        raise ConfigError(
            f"size must be WIDTHxHEIGHT in even pixels from 16 to {MAX_SIDE} (e.g. 320x240; "
            f"H.264 halves the colour planes); got {value!r}"
        )
    return width, height


def plan_footage(
    count: int = 3,
    *,
    duration: float = 12.0,
    fps: float = 10.0,
    size: object = (320, 240),
    seed: int = 0,
    split: Split = "all",
    renderer: Renderer = "training",
    two_object_share: float = 0.5,
    scene_seconds: tuple[float, float] = (2.0, 5.0),
    draw_side: int = DRAW_SIDE,
) -> list[Clip]:
    """Plans for ``count`` clips of ``duration`` seconds (nothing drawn yet). Scenes last
    ``scene_seconds`` (a tail shorter than the shortest scene joins the last one);
    ``draw_side``: the side larger frames are drawn at before scaling up."""
    positive_int("count", count)
    positive_int("draw_side", draw_side)
    width, height = parse_size(size)
    choice("split", split, SPLITS)
    choice("renderer", renderer, RENDERERS)
    if not isinstance(fps, (int, float)) or not 0 < fps <= 240:
        raise ConfigError(
            f"fps must be a number of frames per second above 0, at most 240; got {fps!r}"
        )
    if not isinstance(duration, (int, float)) or round(duration * fps) < 1:
        raise ConfigError(
            f"duration must be seconds holding at least one frame at fps {fps}; got {duration!r}"
        )
    shortest, longest = (float(s) for s in scene_seconds)
    if not 0 < shortest <= longest:
        raise ConfigError(
            "scene_seconds must be [shortest, longest] with 0 < shortest <= longest; "
            f"got {list(scene_seconds)}"
        )
    if not 0.0 <= two_object_share <= 1.0:
        raise ConfigError(f"two_object_share must be from 0 to 1; got {two_object_share!r}")
    rng = np.random.default_rng(seed)
    total = round(duration * fps)
    least = max(1, round(shortest * fps))
    seen: set[tuple] = set()
    clips = []
    for i in range(count):
        scenes: list[FootageScene] = []
        start = 0
        while start < total:
            end = min(total, start + max(1, round(rng.uniform(shortest, longest) * fps)))
            if total - end < least:
                end = total
            shown = (
                {(o.colour, o.shape) for o in scenes[-1].motion.layout.objects} if scenes else set()
            )
            layout = _next_layout(rng, split, two_object_share, renderer, shown, seen)
            seen.add(layout.key)
            motion = sample_motion(rng, layout, (end - start) / fps)
            scenes.append(FootageScene(start, end, motion, int(rng.integers(2**31))))
            start = end
        clips.append(
            Clip(
                f"clip_{i:03d}.mp4",
                width,
                height,
                float(fps),
                total,
                tuple(scenes),
                renderer,
                draw_side,
            )
        )
    return clips


def _next_layout(
    rng: np.random.Generator,
    split: Split,
    share: float,
    renderer: Renderer,
    shown: set[tuple[str, str]],
    seen: set[tuple],
) -> Layout:
    """A scene showing none of the colour-shape combinations of the one before (a cut
    changes the shapes, not only the background), with a meaning new to the footage
    while the split has new ones."""
    repeat = None
    for _ in range(500):
        layout = sample_layout(rng, split, two_object_share=share, varied=renderer != "canonical")
        if {(o.colour, o.shape) for o in layout.objects} & shown:
            continue
        if layout.key not in seen:
            return layout
        repeat = repeat or layout
    if repeat is None:
        raise RuntimeError(f"no scene of split {split!r} differs from one showing {sorted(shown)}")
    return repeat


def write_video(clip: Clip, path: str | Path, *, preset: str = "veryfast") -> Path:
    """Encode ``clip`` as H.264 in MP4 at ``path`` (whole or not at all: written beside
    and renamed); frame ``n`` gets presentation time ``n / fps``."""
    choice("preset", preset, PRESETS)
    av = load_av()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".mp4")
    os.close(handle)
    temp = Path(name)
    try:
        with reporting_full_disk(f"video {target}", target, exact=True):
            with av.open(str(temp), "w", format="mp4") as container:
                stream = container.add_stream(
                    "libx264", rate=Fraction(clip.fps).limit_denominator(1001)
                )
                stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
                # one thread: the same seed writes the same bytes (x264's threads, slice
                # or frame, gave files of other sizes from run to run under load)
                stream.options = {"preset": preset, "threads": "1"}
                for n in range(clip.frames):
                    frame = av.VideoFrame.from_image(clip.frame(n))
                    frame.pts = n
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
            with temp.open("rb+") as written:
                os.fsync(written.fileno())
            os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def write_footage(
    folder: str | Path,
    count: int = 3,
    *,
    duration: float = 12.0,
    fps: float = 10.0,
    size: object = (320, 240),
    seed: int = 0,
    split: Split = "all",
    renderer: Renderer = "training",
    two_object_share: float = 0.5,
    scene_seconds: tuple[float, float] = (2.0, 5.0),
    draw_side: int = DRAW_SIDE,
    preset: str = "veryfast",
) -> Path:
    """Write ``count`` clips (``clip_000.mp4``, ...) and ``truth.json`` into ``folder``;
    returns the truth's path. Options as :func:`plan_footage`; ``preset``: libx264's
    speed preset."""
    choice("preset", preset, PRESETS)
    clips = plan_footage(
        count,
        duration=duration,
        fps=fps,
        size=size,
        seed=seed,
        split=split,
        renderer=renderer,
        two_object_share=two_object_share,
        scene_seconds=scene_seconds,
        draw_side=draw_side,
    )
    out = Path(folder)
    for clip in clips:
        write_video(clip, out / clip.name, preset=preset)
    truth = {
        "seed": seed,
        "split": split,
        "renderer": renderer,
        "scene_seconds": [float(s) for s in scene_seconds],
        "clips": [clip.truth() for clip in clips],
    }
    return write_atomic(out / TRUTH, json.dumps(truth, indent=2) + "\n")
