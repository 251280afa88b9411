"""Real, small video files for the tests, written through PyAV (FFmpeg's encoders).

Everything a video test needs is made here, so every test reads a file a real encoder
and muxer wrote: H.264 in MP4, VP9 in WebM, a rotated phone clip, variable frame rate,
non-square pixels, and the damaged files of the bad-input tests. Keep them tiny (64x48
to 320x240, a few seconds): they are written again in every test session.
"""

from __future__ import annotations

import colorsys
import re
import struct
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

# one distinct colour per second of a colour clip (far apart after YUV 4:2:0 rounding)
COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 30, 30),
    (30, 200, 50),
    (40, 60, 220),
    (230, 210, 40),
    (200, 40, 200),
    (40, 200, 200),
    (240, 240, 240),
    (20, 20, 20),
)
FramesLike = Iterable[tuple[int, int, int] | np.ndarray | Image.Image]


def as_array(frame: Any, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 array (height, width, 3) from a colour, an array or a PIL image."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray):
        return frame.astype(np.uint8)
    width, height = size
    return np.full((height, width, 3), frame, dtype=np.uint8)


def write_video(
    path: str | Path,
    frames: FramesLike,
    fps: int = 10,
    codec: str = "libx264",
    *,
    size: tuple[int, int] = (64, 48),
    times: Sequence[float] | None = None,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
    gop: int | None = None,
    audio: bool = False,
    loudness: Sequence[float] | None = None,
    audio_codec: str = "aac",
    video_start: float = 0.0,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (colours filling ``size``, arrays or PIL images) to ``path``.

    ``times``: each frame's presentation time in seconds (variable frame rate; default
    ``i / fps``); ``rotation``: clockwise degrees a player turns the frames (the display
    matrix phones write); ``sample_aspect_ratio``: non-square pixels; ``gop``: frames
    between key frames; ``audio``: add a silent AAC track; ``loudness``: instead, a 440 Hz
    tone whose amplitude is ``loudness[k]`` in second ``k``, encoded by ``audio_codec``
    (a clip's sound can be told apart second by second); ``video_start``: seconds into
    the file the picture starts (the sound starts at 0); ``options``: the encoder's
    (``{"x264-params": "open-gop=1"}``).
    """
    target = Path(path)
    out = av.open(str(target), mode="w", format=container_format)
    try:
        stream = out.add_stream(codec, rate=fps)
        arrays = [as_array(frame, size) for frame in frames]
        height, width = arrays[0].shape[:2] if arrays else (size[1], size[0])
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", **(options or {})}
        elif options:
            stream.options = options
        if gop is not None:
            stream.codec_context.gop_size = gop
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if rotation:
            stream.set_display_rotation(-rotation)  # FFmpeg's angle is counter-clockwise
        sound = out.add_stream(audio_codec, rate=8000) if audio or loudness else None
        for i, array in enumerate(arrays):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if times is not None:
                frame.pts = round(times[i] * 1000)
                frame.time_base = Fraction(1, 1000)
                following = times[i + 1] if i + 1 < len(times) else times[i] + 1 / fps
                frame.duration = round((following - times[i]) * 1000)
            else:
                frame.pts = i + round(video_start * fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            write_sound(out, sound, len(arrays) / fps, loudness)
    finally:
        out.close()
    return target


def write_sound(
    out: Any, stream: Any, seconds: float, loudness: Sequence[float] | None = None
) -> None:
    """``seconds`` of sound on an audio ``stream`` of ``out``: silence, or a 440 Hz tone
    of amplitude ``loudness[k]`` in second ``k``."""
    rate, levels = stream.rate, np.asarray(loudness or [0.0])
    for start in range(0, max(1, int(seconds * rate)), 1024):
        at = np.arange(start, start + 1024)
        level = levels[np.minimum(at // rate, len(levels) - 1)]
        wave = (level * np.sin(2 * np.pi * 440 * at / rate)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")  # PyAV converts
        frame.sample_rate = rate
        frame.pts = start
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def colour_clip(
    path: str | Path,
    seconds: int = 4,
    fps: int = 10,
    codec: str = "libx264",
    *,
    size: tuple[int, int] = (64, 48),
    gop: int | None = None,
    **sound: Any,
) -> list[tuple[int, int, int]]:
    """A clip whose second ``k`` is filled with ``COLOURS[k]``; returns the colours.
    ``sound``: :func:`write_video`'s ``loudness``, ``audio_codec`` and ``video_start``."""
    colours = [COLOURS[k % len(COLOURS)] for k in range(seconds)]
    frames = [c for c in colours for _ in range(fps)]
    write_video(path, frames, fps, codec, size=size, gop=gop, **sound)
    return colours


def mean_colour(image: Image.Image) -> tuple[int, int, int]:
    """The mean RGB colour of ``image`` (what a colour clip's frame is compared by)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    return tuple(round(float(v)) for v in array.reshape(-1, 3).mean(axis=0))  # type: ignore[return-value]


def near(colour: Sequence[int], expected: Sequence[int], tolerance: int = 12) -> bool:
    """Whether two RGB colours differ by at most ``tolerance`` in every channel."""
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(colour, expected, strict=True))


def phone_clip(path: str | Path, frames: int = 10, fps: int = 10, rotation: int = 90) -> np.ndarray:
    """A clip filmed as phones store it: the upright 48x64 picture (red top half, blue
    bottom half, a white strip down the left: no turn or mirror image of it looks the
    same) stored turned ``rotation`` degrees counter-clockwise, with a display matrix
    that turns it back clockwise. Returns the upright picture a player shows."""
    upright = np.zeros((64, 48, 3), dtype=np.uint8)
    upright[:32] = COLOURS[0]
    upright[32:] = COLOURS[2]
    upright[:, :8] = COLOURS[6]
    stored = np.ascontiguousarray(np.rot90(upright, rotation // 90))
    write_video(path, [stored] * frames, fps, rotation=rotation)
    return upright


def audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An MP4 holding only an AAC track (silence)."""
    out = av.open(str(path), mode="w")
    try:
        write_sound(out, out.add_stream("aac", rate=8000), seconds)
    finally:
        out.close()
    return Path(path)


def zero_frames(path: str | Path, container_format: str = "avi", codec: str = "mjpeg") -> Path:
    """A video stream with no frames in it (a recording stopped at once): the header is
    written, no packet is."""
    out = av.open(str(path), mode="w", format=container_format)
    try:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        out.start_encoding()
    finally:
        out.close()
    return Path(path)


def unknown_codec(path: str | Path) -> Path:
    """An MP4 whose video is in a codec FFmpeg does not know: an H.264 clip whose sample
    entry FourCC (``avc1``) is renamed ``zzzz``, as a demuxer sees a codec it lacks (no
    encoder in PyAV's wheel writes a codec its decoders cannot read)."""
    target = Path(path)
    colour_clip(target, seconds=1)
    data = target.read_bytes()
    assert data.count(b"avc1") >= 1
    target.write_bytes(data.replace(b"avc1", b"zzzz"))
    return target


def sixteen_k(path: str | Path, width: int = 15360, height: int = 8640) -> Path:
    """An H.264 MP4 whose headers say its frames are 15360x8640 (16K): a one-second
    64x48 colour clip whose sequence parameter set (in the ``avcC`` box, where FFmpeg
    reads the size from) and ``avc1``/``tkhd`` boxes are rewritten to 16K. The file is
    what a real 16K file looks like until its first frame is decoded, at 2 kB instead of
    the ~600 MB and seconds a real 16K frame costs to encode; a reader that decoded
    before checking the size would spend ~3 s and ~400 MB on it."""
    target = Path(path)
    colour_clip(target, seconds=1)
    data = bytearray(target.read_bytes())
    boxes = mp4_boxes(
        data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avc1", b"avcC"]
    )
    avc1, avcc = boxes[-2], boxes[-1]
    (length,) = struct.unpack_from(">H", data, avcc + 14)  # the first SPS (avcC: 8 + 6)
    old = bytes(data[avcc + 16 : avcc + 16 + length])
    new = resized_sps(old, width, height)
    data[avcc + 14 : avcc + 16 + length] = struct.pack(">H", len(new)) + new
    for box in boxes:  # each box holding the SPS grows with it (moov is last: no offsets move)
        (size,) = struct.unpack_from(">I", data, box)
        struct.pack_into(">I", data, box, size + len(new) - len(old))
    struct.pack_into(">HH", data, avc1 + 32, width, height)  # VisualSampleEntry's size
    tkhd = mp4_boxes(data, [b"moov", b"trak", b"tkhd"])[-1]
    (size,) = struct.unpack_from(">I", data, tkhd)
    struct.pack_into(">II", data, tkhd + size - 8, width << 16, height << 16)  # 16.16 fixed
    target.write_bytes(bytes(data))
    return target


# where a box's children start, from the box's start (sample description and sample entry
# headers come before their children)
_MP4_CHILDREN = {b"stsd": 16, b"avc1": 86}


def mp4_boxes(data: bytes | bytearray, path: Sequence[bytes]) -> list[int]:
    """The offsets of the first boxes along ``path`` (``[b"moov", b"trak", ...]``)."""
    found: list[int] = []
    position, end = 0, len(data)
    for kind in path:
        while position < end:
            size, name = struct.unpack_from(">I4s", data, position)
            if name == kind:
                found.append(position)
                position, end = position + _MP4_CHILDREN.get(name, 8), position + size
                break
            position += size
        else:
            raise ValueError(f"no {kind!r} box along {path}")
    return found


# H.264 profiles whose SPS has chroma format, bit depth and scaling matrix fields
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def resized_sps(nal: bytes, width: int, height: int) -> bytes:
    """An H.264 SPS NAL unit (as libx264 writes it: no scaling matrices, no cropping,
    progressive) saying ``width`` x ``height`` (multiples of 16). The size fields are
    Exp-Golomb codes whose lengths change, so the bits after them are shifted, and the
    emulation prevention bytes are removed and put back around the edit."""
    rbsp = re.sub(b"\x00\x00\x03", b"\x00\x00", nal[1:])
    bits = "".join(f"{byte:08b}" for byte in rbsp)

    def skip_ue(i: int) -> tuple[int, int]:
        zeros = bits.index("1", i) - i
        return int(bits[i + zeros : i + 2 * zeros + 1], 2) - 1, i + 2 * zeros + 1

    def ue(value: int) -> str:
        code = f"{value + 1:b}"
        return "0" * (len(code) - 1) + code

    _, i = skip_ue(24)  # after profile, constraint flags, level: seq_parameter_set_id
    if rbsp[0] in _HIGH_PROFILES:
        chroma, i = skip_ue(i)
        i += chroma == 3  # separate_colour_plane_flag
        _, i = skip_ue(i)  # bit depths
        _, i = skip_ue(i)
        assert bits[i + 1] == "0", "an SPS with scaling matrices"
        i += 2
    _, i = skip_ue(i)  # log2_max_frame_num_minus4
    poc_type, i = skip_ue(i)
    assert poc_type in (0, 2), "an SPS with picture order count type 1"
    if poc_type == 0:
        _, i = skip_ue(i)
    _, i = skip_ue(i)  # max_num_ref_frames
    start = i + 1  # after gaps_in_frame_num_value_allowed_flag
    _, i = skip_ue(start)
    _, i = skip_ue(i)
    assert bits[i] == "1" and bits[i + 2] == "0", "an interlaced or cropped SPS"
    edited = (bits[:start] + ue(width // 16 - 1) + ue(height // 16 - 1) + bits[i:]).rstrip("0")
    edited += "0" * (-len(edited) % 8)  # the stop bit is kept; zeros to a whole byte
    raw = bytes(int(edited[k : k + 8], 2) for k in range(0, len(edited), 8))
    return nal[:1] + re.sub(b"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", raw)


def truncated(path: str | Path, keep: float = 0.5, codec: str = "libx264") -> Path:
    """A 4-second colour clip cut after ``keep`` of its bytes (a copy that stopped)."""
    target = Path(path)
    colour_clip(target, seconds=4, codec=codec, gop=10)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def corrupt_middle(path: str | Path, start: float, end: float, seed: int = 0) -> list[tuple]:
    """A 4-second H.264 colour clip (a key frame a second) whose packets shown in
    ``[start, end)`` are overwritten with random bytes in place (the MP4's index still
    points at them): what a bad sector or a broken download leaves. Returns the colours."""
    target = Path(path)
    colours = colour_clip(target, seconds=4, gop=10)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        spans = [
            (packet.pos, packet.size)
            for packet in container.demux(stream)
            if packet.size and start <= float(packet.pts * stream.time_base) < end
        ]
    data = bytearray(target.read_bytes())
    noise = np.random.default_rng(seed)
    for position, size in spans:
        data[position : position + size] = noise.integers(0, 256, size, dtype=np.uint8).tobytes()
    target.write_bytes(bytes(data))
    return colours


def backwards(path: str | Path, fps: int = 10) -> list[tuple]:
    """Two 2-second MPEG-TS recordings joined byte for byte (as ``cat a.ts b.ts`` or a
    camera that restarts its clock does): the timestamps jump back to the start at 2 s.
    Returns the colours of its four seconds as played."""
    target = Path(path)
    parts = [target.with_suffix(f".part{i}.ts") for i in range(2)]
    write_video(parts[0], [COLOURS[0]] * fps + [COLOURS[1]] * fps, fps)
    write_video(parts[1], [COLOURS[2]] * fps + [COLOURS[3]] * fps, fps)
    target.write_bytes(b"".join(part.read_bytes() for part in parts))
    for part in parts:
        part.unlink()
    return list(COLOURS[:4])


def shot_clip(
    path: str | Path,
    shots: int = 24,
    fps: int = 24,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
) -> list[float]:
    """Shots of textured scenes filmed by a moving, shaking camera with sensor grain,
    joined by hard cuts and by dissolves; returns the cut times (the first frame of each
    shot after a hard cut). Everything a detector must not call a cut is in it: slow and
    fast pans (every frame changes), an object crossing, a fade up from black, a light
    ramping up, a two-frame flash mid-shot, and every fifth join a half-second dissolve.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    frames: list[np.ndarray] = []
    cuts: list[float] = []
    for shot in range(shots):
        scene = textured_scene(rng, width * 3, height * 2)
        length = int(rng.integers(14, 26))
        speed = rng.uniform(1, 3) * (4 if shot % 6 == 1 else 1) * rng.choice([-1, 1])
        colour = np.asarray(colorsys.hsv_to_rgb(rng.random(), 1.0, 1.0), np.float32)
        pictures = []
        for i in range(length):
            x = int(np.clip(width + speed * i + rng.normal(0, 1), 0, 2 * width))
            y = int(np.clip(height / 2 + rng.normal(0, 1), 0, height))
            image = scene[y : y + height, x : x + width].copy()
            kind = shot % 6
            if kind == 2:  # an object crossing
                left = int(i * (width + 20) / length) - 20
                image[20:40, max(0, left) : max(0, left + 20)] = colour
            elif kind == 3:  # a fade up from black
                image *= min(1.0, (i + 1) / 10)
            elif kind == 4 and length // 2 <= i <= length // 2 + 1:  # a flash
                image = image * 0.3 + 0.8
            elif kind == 5:  # a light ramping up
                image *= 0.6 + 0.4 * i / length
            grain = rng.standard_normal(image.shape, dtype=np.float32) * 0.02
            pictures.append(image + grain)
        if shot and shot % 5 == 0:  # a dissolve over the last frames of the shot before
            blend = len(frames) - 12
            for k in range(12):
                weight = (k + 1) / 13
                frames[blend + k] = (1 - weight) * frames[blend + k] + weight * pictures[k]
            pictures = pictures[12:]
        elif shot:
            cuts.append(len(frames) / fps)
        frames.extend(pictures)
    write_video(path, [(np.clip(f, 0, 1) * 255).astype(np.uint8) for f in frames], fps)
    return cuts


def textured_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float RGB picture (0-1) of blobs of related colours over a fine texture: a scene
    a camera pans over, whose frames differ from their neighbours' everywhere."""
    ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    hue = rng.random()
    base = colorsys.hsv_to_rgb(hue, rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.9))
    texture = np.outer(np.sin(ys / rng.uniform(3, 9)), np.sin(xs / rng.uniform(3, 9)))
    image = np.asarray(base, np.float32) * (0.55 + 0.15 * texture[..., None])
    for _ in range(6):
        x, y, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(8, 30)
        tint = (hue + rng.uniform(-0.15, 0.15)) % 1.0
        colour = colorsys.hsv_to_rgb(tint, rng.uniform(0.3, 1), rng.uniform(0.3, 1))
        across = np.exp(-((xs - x) ** 2) / (2 * radius**2))  # a Gaussian is separable
        down = np.exp(-((ys - y) ** 2) / (2 * radius**2))
        weight = np.outer(down, across)[..., None]
        image = image * (1 - weight) + np.asarray(colour, np.float32) * weight
    return image / image.max()
