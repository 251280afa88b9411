"""The sound of a clip (:class:`ClipSound`): the source's first audio stream over the
clip's span, so a moment saved from footage is heard as it was recorded.

Its packets are copied as they are where the clip's container takes the codec (AAC,
MP3, Opus, AC-3, FLAC, PCM in MP4 and Matroska), else they are decoded and encoded as
AAC (mu-law telephone sound in an MP4, say). Audio has no key frames to wait for: the
sound starts with the first packet at or after the clip's start, at most a packet's
length after it (1,024 samples: 21 ms at 48 kHz). Damaged audio packets are left out,
not fatal: the picture is what was asked for.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from mmsim.files import is_disk_full
from mmsim.inputs.video.container import Clock

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
_EARLY = 1e-6  # seconds: a packet this much before the start still counts as at it


class ClipSound:
    """The first audio stream of ``container`` on its way into ``out``: create it before
    anything is muxed (the output's header lists its streams), then :meth:`write` the
    span once the picture is written. A source without sound (or with a codec FFmpeg
    cannot read or copy) gives a clip without sound, as before."""

    def __init__(self, av: Any, container: Any, out: Any, clock: Clock) -> None:
        self.av, self.container, self.out = av, container, out
        # the picture's times count from the video stream's start; the sound's packets
        # are timed from the file's, so the video's start is added to line them up
        self.offset = float(clock.origin * clock.base)
        self.source: Any = None
        self.stream: Any = None
        self.copying = False
        audio = container.streams.audio
        context = audio[0].codec_context if audio else None
        if context is None:
            return
        self.source = audio[0]
        if context.name in out.supported_codecs:
            self.stream, self.copying = out.add_stream_from_template(self.source), True
        elif context.sample_rate:
            rate = min(_AAC_RATES, key=lambda r: abs(r - context.sample_rate))
            self.stream = out.add_stream("aac", rate=rate)
            channels = context.layout.nb_channels if context.layout else 1
            self.stream.layout = "mono" if channels == 1 else "stereo"
        else:
            self.source = None

    def write(self, start: float, end: float) -> None:
        """Write the sound heard from ``start`` to ``end`` (seconds on the video's clock),
        timed from ``start`` (the clip's time 0)."""
        if self.source is None or end <= start:
            return
        start, end = start + self.offset, end + self.offset
        try:
            self.container.seek(
                round(start / self.source.time_base), stream=self.source, backward=True
            )
        except self.av.FFmpegError:
            return  # a source that cannot be sought: its picture is still the clip
        try:
            if self.copying:
                self.copy(start, end)
            else:
                self.encode(start, end)
        except self.av.FFmpegError as exc:
            # packets the muxer refuses (timestamps a damaged file gets wrong) end the
            # sound there: the picture, already written, is what was asked for; a full
            # disk is the clip's failure
            if is_disk_full(exc):
                raise

    def packets(self, end: float) -> Any:
        """The source's audio packets from here until one starts at ``end``; a read
        error ends them (the picture was read, the sound is what could be)."""
        base = self.source.time_base
        demuxed = self.container.demux(self.source)
        while True:
            try:
                packet = next(demuxed)
            except (StopIteration, self.av.FFmpegError):
                return
            if packet.pts is None:
                continue
            if packet.pts * base >= end - _EARLY:
                return
            yield packet

    def copy(self, start: float, end: float) -> None:
        """Remux the packets starting in ``[start, end)``, shifted to the clip's time."""
        base = self.source.time_base
        shift = round(start / base)
        for packet in self.packets(end):
            if packet.pts < shift - _EARLY / base:
                continue
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts = max(packet.dts - shift, 0)
            packet.stream = self.stream
            self.out.mux(packet)

    def encode(self, start: float, end: float) -> None:
        """Decode the sound starting in ``[start, end)`` and encode it as AAC; PyAV's
        encoder resamples it to AAC's format and frame size."""
        for packet in self.packets(end):
            try:
                frames = packet.decode()
            except self.av.FFmpegError:
                continue  # damaged sound is left out
            for frame in frames:
                if frame.time is None or frame.time < start - _EARLY:
                    continue
                frame.pts = round((frame.time - start) * frame.sample_rate)
                frame.time_base = Fraction(1, frame.sample_rate)
                self.out.mux(self.stream.encode(frame))
        self.out.mux(self.stream.encode(None))
