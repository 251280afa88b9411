"""Moments of videos over HTTP: the real ``mmsim serve`` on 127.0.0.1 over a real index
of real video files (tests/videos.py): frame hits and groups, thumbnails cut from the
video, the video file in byte ranges, clips, the rules on which files are served, and
the page's player in a real browser (Debian's chromium via playwright): search, click a
moment, the video plays from it with its segment marked and stops at its end."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mmsim import Matcher
from mmsim.index import Index
from mmsim.inputs.video import probe
from mmsim.plugin.testing import write_images
from mmsim.serve.engine import CLIPS_AT_ONCE
from tests.paths import REPO
from tests.serve.helpers import serving
from tests.videos import COLOURS, colour_clip, mean_colour, near, write_video

SECONDS = 6  # of the colour clip: second k is filled with COLOURS[k]
MAX_CLIP = 4  # max_clip_seconds of the service
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
VIDEO = "document.getElementById('video')"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``mmsim serve`` over a folder of a 6 s H.264 colour clip (a keyframe every second),
    a 3 s VP9 one in WebM, a 6 s still (one colour: one segment, longer than a clip may
    be) and two photos, indexed with a frame every second."""
    root = tmp_path_factory.mktemp("video-serve")
    footage = root / "footage"
    (footage / "clips").mkdir(parents=True)
    colour_clip(footage / "clips" / "colours.mp4", seconds=SECONDS, gop=10)
    colour_clip(footage / "clips" / "colours.webm", seconds=3, codec="libvpx-vp9")
    write_video(footage / "clips" / "still.mp4", [COLOURS[6]] * 10 * SECONDS, gop=10)
    write_images(footage / "photos", 2)
    matcher = Matcher("toy", progress=False)
    Index.build(footage, matcher, root / "idx", progress=False, video={"every": 1.0}).close()
    index = root / "idx"
    options = ("access_log=off", f"max_clip_seconds={MAX_CLIP}")
    with serving(index, *options) as (_, url), httpx.Client(base_url=url, timeout=60) as client:
        yield client, root / "footage"


def frames(client: httpx.Client, name: str) -> list[dict]:
    """The frame hits of the video ``name``, in time order (a browse of its frames)."""
    page = client.get("/api/search", params={"top_k": 100}).json()
    hits = [h for h in page["hits"] if h.get("video") and h["path"].endswith(name)]
    return sorted(hits, key=lambda h: h["video"]["time"])


def error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    message = response.json()["error"]
    assert all(w in message for w in words), message


def test_frames_are_moments_with_their_time_and_group_into_segments(served):
    client, _ = served
    moments = frames(client, "colours.mp4")
    assert [h["video"]["time"] for h in moments] == [float(k) for k in range(SECONDS)]
    first = moments[2]["video"]
    assert first["timecode"] == "00:00:02.000" and first["frame"] == 20
    assert first["key"] == "clips/colours.mp4" and "start" not in first
    item = client.get(f"/api/items/{moments[2]['response_id']}").json()
    assert item["video"] == {
        "key": "clips/colours.mp4",
        "time": 2.0,
        "timecode": "00:00:02.000",
        "frame": 20,
    }

    plain = client.get("/api/search", params={"q": "a red car", "top_k": 100}).json()
    grouped = client.get(
        "/api/search", params={"q": "a red car", "top_k": 100, "group": "segments"}
    )
    assert grouped.status_code == 200, grouped.text
    assert (plain["group"], grouped.json()["group"]) == ("frames", "segments")
    segments = [h for h in grouped.json()["hits"] if h.get("video")]
    assert 2 <= len(segments) <= len([h for h in plain["hits"] if h.get("video")])
    for hit in segments:
        v = hit["video"]
        assert v["start"] <= v["time"] < v["end"] and v["frames"] >= 1
        assert v["start_timecode"].startswith("00:00:0") and v["end_timecode"]
    spans = {h["video"]["key"]: 0.0 for h in segments}
    for hit in segments:  # the segments of one video do not overlap; all of it is found
        spans[hit["video"]["key"]] += hit["video"]["end"] - hit["video"]["start"]
    expected = {"clips/colours.mp4": SECONDS, "clips/colours.webm": 3, "clips/still.mp4": 6}
    assert spans == pytest.approx(expected)
    photos = [h for h in grouped.json()["hits"] if not h.get("video")]
    assert len(photos) == 2 and all("video" not in h for h in photos)

    per_video = client.post("/api/search", json={"query": "a red car", "group": "videos"})
    assert per_video.json()["group"] == "videos"
    keys = [h["video"]["key"] for h in per_video.json()["hits"] if h.get("video")]
    assert sorted(keys) == ["clips/colours.mp4", "clips/colours.webm", "clips/still.mp4"]
    similar = client.get(
        "/api/search/similar", params={"id": moments[0]["response_id"], "group": "videos"}
    )
    assert len([h for h in similar.json()["hits"] if h.get("video")]) == 3
    error(client.get("/api/search", params={"q": "x", "group": "scenes"}), 422, "group", "segments")


def test_a_frames_thumbnail_is_cut_from_the_video_at_its_time_and_kept(served):
    client, footage = served
    video = footage / "clips" / "colours.mp4"
    moments = frames(client, "colours.mp4")
    for hit in moments:
        answer = client.get(f"/api/items/{hit['response_id']}/thumbnail")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        colour = mean_colour(Image.open(answer))
        assert near(colour, COLOURS[int(hit["video"]["time"])], 16), (hit["video"], colour)
    # kept in memory: the video cut short (same mtime) still gives the thumbnail already
    # cut; a size not asked for yet must be cut, and no longer can be
    first = f"/api/items/{moments[3]['response_id']}/thumbnail"
    saved, stat = video.read_bytes(), video.stat()
    kept = client.get(first).content
    try:
        video.write_bytes(saved[:200])
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert client.get(first).content == kept
        error(client.get(first, params={"size": 64}), 404, "can no longer be read")
        # a new file (a new mtime) is cut again: the same item, the new content
        later = [COLOURS[k + 1] for k in range(SECONDS) for _ in range(10)]
        write_video(video, later, gop=10)  # second k now shows the colour of k + 1
        shifted = mean_colour(Image.open(client.get(first)))
        assert near(shifted, COLOURS[4], 16) and client.get(first).content != kept
    finally:
        video.write_bytes(saved)
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_the_video_is_served_in_byte_ranges_with_its_media_type(served):
    client, footage = served
    hit = frames(client, "colours.mp4")[1]
    url = f"/api/items/{hit['response_id']}/video"
    data = (footage / "clips" / "colours.mp4").read_bytes()
    size = len(data)

    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    for asked, (start, end) in {
        "bytes=0-99": (0, 100),  # the first bytes (a player reads the header)
        "bytes=1000-1999": (1000, 2000),  # a middle range (a seek)
        "bytes=-500": (size - 500, size),  # the last bytes (an MP4's index at the end)
        f"bytes={size - 10}-": (size - 10, size),  # from an offset to the end
    }.items():
        part = client.get(url, headers={"Range": asked})
        assert part.status_code == 206, (asked, part.text)
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}", asked
        assert part.content == data[start:end], asked
    several = client.get(url, headers={"Range": "bytes=0-9,20-29"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges")
    assert data[:10] in several.content and data[20:30] in several.content
    tag = whole.headers["etag"]  # a range of the same file, else the whole new one
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": tag}).status_code == 206
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'}).status_code == 200
    past = client.get(url, headers={"Range": f"bytes={size}-"})
    error(past, 416, "past the end", str(size))
    assert past.headers["content-range"] == f"bytes */{size}"
    error(client.get(url, headers={"Range": "bytes=50-10"}), 400, "not a byte range")
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert client.head(url, headers={"Range": "bytes=0-9"}).status_code == 206

    webm = frames(client, "colours.webm")[0]
    answer = client.get(f"/api/items/{webm['response_id']}/video", headers={"Range": "bytes=0-3"})
    assert answer.headers["content-type"] == "video/webm"
    assert answer.content == b"\x1a\x45\xdf\xa3"  # the EBML header's id
    photo = next(
        h
        for h in client.get("/api/search", params={"top_k": 100}).json()["hits"]
        if not h.get("video")
    )
    error(client.get(f"/api/items/{photo['response_id']}/video"), 404, "not a frame of a video")
    error(client.get(f"/api/items/{photo['response_id']}/clip"), 404, "not a frame of a video")


def test_a_video_that_is_now_a_link_out_of_the_collection_is_refused(served, tmp_path):
    client, footage = served
    hit = frames(client, "colours.webm")[0]
    video = footage / "clips" / "colours.webm"
    outside = tmp_path / "elsewhere.webm"
    shutil.copy(video, outside)
    video.rename(tmp_path / "kept.webm")
    video.symlink_to(outside)
    try:
        for route in ("video", "thumbnail", "clip"):
            error(
                client.get(f"/api/items/{hit['response_id']}/{route}"),
                403,
                "link out of the collection",
            )
        video.unlink()
        error(client.get(f"/api/items/{hit['response_id']}/video"), 404, "no longer there")
    finally:
        video.unlink(missing_ok=True)
        (tmp_path / "kept.webm").rename(video)


def test_a_full_temporary_folder_is_507_too_many_clips_503_no_pyav_501(
    served, monkeypatch, small_disk
):
    """One app in this process (its temporary folder, its imports and its clip slots
    are the test's to change): a clip that finds no room is 507 naming the folder, not a
    video gone (404), and leaves nothing; while as many clips as it takes are being cut,
    another is 503 with Retry-After; without PyAV, what needs a decoder is 501 naming
    the extra."""
    from fastapi.testclient import TestClient

    from mmsim.plugin.testing import fill_disk
    from mmsim.serve import ServeConfig, create_app

    client, footage = served
    hit = frames(client, "colours.mp4")[0]["response_id"]
    app = create_app(footage.parent / "idx", ServeConfig(access_log="off"))
    with TestClient(app) as local:
        monkeypatch.setattr(tempfile, "tempdir", str(small_disk))
        fill_disk(small_disk)
        full = local.get(f"/api/items/{hit}/clip", params={"start": 0, "end": 3})
        error(full, 507, f"cannot write a clip in the temporary folder {small_disk}")
        assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]
        monkeypatch.undo()  # (the temporary folder as it was)
        slots = app.state.engine.clip_slots
        taken = [slots.acquire(blocking=False) for _ in range(CLIPS_AT_ONCE)]
        busy = local.get(f"/api/items/{hit}/clip", params={"start": 0, "end": 1})
        error(busy, 503, f"already cutting {CLIPS_AT_ONCE} clips", "try again")
        assert all(taken) and busy.headers["retry-after"] == "5"
        slots.release()  # one slot free: a clip is cut, and its slot freed again
        assert local.get(f"/api/items/{hit}/clip", params={"start": 0, "end": 1}).is_success
        assert slots.acquire(blocking=False)  # (both back with the test)
        for _ in range(CLIPS_AT_ONCE):
            slots.release()
        monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails, as without the extra
        for route in ("thumbnail?size=32", "clip"):
            error(local.get(f"/api/items/{hit}/{route}"), 501, 'pip install "mmsim[video]"')
        assert local.get(f"/api/items/{hit}/video").status_code == 200  # (nothing to decode)


def test_a_clip_is_the_segment_as_mp4_within_the_limit(served, tmp_path):
    client, _ = served
    hit = frames(client, "colours.mp4")[2]
    url = f"/api/items/{hit['response_id']}/clip"
    before = set(Path(tempfile.gettempdir()).glob("mmsim-clip-*"))

    answer = client.get(url, params={"start": 2, "end": 5})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["content-disposition"] == 'attachment; filename="colours_2.0-5.0s.mp4"'
    assert answer.headers["content-length"] == str(len(answer.content))
    saved = tmp_path / "clip.mp4"
    saved.write_bytes(answer.content)
    assert probe(saved).duration == pytest.approx(3.0, abs=0.15)
    from mmsim.inputs.video import frame_at

    assert near(mean_colour(frame_at(saved, 0.0)), COLOURS[2], 16)
    assert near(mean_colour(frame_at(saved, 2.5)), COLOURS[4], 16)

    # without times: the segment the frame's neighbours that look like it make
    grown = client.get(url)
    assert grown.status_code == 200 and grown.content[4:8] == b"ftyp"
    past_end = client.get(url, params={"start": 4, "end": 9})  # cut at the video's end
    assert past_end.status_code == 200
    assert past_end.headers["content-disposition"].endswith('_4.0-6.0s.mp4"')
    # a segment longer than a clip may be: the part of it around the frame
    still = frames(client, "still.mp4")[3]
    kept = client.get(f"/api/items/{still['response_id']}/clip")
    assert kept.status_code == 200, kept.text
    assert kept.headers["content-disposition"].endswith(f'_{3 - MAX_CLIP / 2:.1f}-5.0s.mp4"')
    assert set(Path(tempfile.gettempdir()).glob("mmsim-clip-*")) == before  # nothing left

    error(
        client.get(url, params={"start": 3, "end": 3}), 422, "end (3 s) must be after start (3 s)"
    )
    error(client.get(url, params={"start": 0, "end": 5}), 422, "longer than max_clip_seconds (4 s)")
    error(client.get(url, params={"start": 7, "end": 8}), 422, "start (7 s) is past the end", "6 s")
    error(client.get(url, params={"start": -1, "end": 2}), 422, "start")
    error(client.get(url, params={"start": "nan", "end": 2}), 422, "start")


def api(page, path: str) -> dict:
    """What the JSON API answers, fetched from inside the page."""
    return page.evaluate(f"fetch({path!r}).then(r => r.json())")


def video_state(page) -> dict:
    return page.evaluate(
        f"({{time: {VIDEO}.currentTime, paused: {VIDEO}.paused, duration: {VIDEO}.duration}})"
    )


def test_the_page_plays_a_moment_from_its_time_with_its_segment_marked(served):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(str(served[0].base_url))
        page.wait_for_function("document.getElementById('summary').textContent.includes('videos')")
        assert page.is_visible("#group-choice")
        page.select_option("#group", "segments")
        page.fill("#query", "a red car")
        page.click("#search-form button")
        page.wait_for_selector(".card .moment .timecode")
        found = api(page, "api/search?q=a%20red%20car&top_k=20&group=segments")
        segment = next(h for h in found["hits"] if h.get("video"))
        v = segment["video"]
        card = page.locator(f".card[data-id='{segment['response_id']}']")
        clock = f"0:{int(v['start']):02d}–0:{int(v['end']):02d}"  # (whole seconds here)
        assert card.locator(".timecode").inner_text() == clock
        title = f"play from {v['start_timecode']}–{v['end_timecode']} (best at {v['timecode']})"
        assert card.locator(".moment").get_attribute("title") == title
        page.wait_for_function(
            "[...document.querySelectorAll('.card img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )

        card.locator(".moment").click()  # plays from the segment's start ...
        page.wait_for_function(
            f"{VIDEO}.readyState >= 1 && !document.getElementById('timeline').hidden"
        )
        started = video_state(page)
        assert v["start"] - 0.05 <= started["time"] <= v["start"] + 0.5, (started, v)
        page.wait_for_function(f"!{VIDEO}.paused && {VIDEO}.currentTime > {v['start'] + 0.15}")
        # ... with the segment marked over the video's duration
        line = page.locator("#timeline").bounding_box()
        bar = page.locator("#segment").bounding_box()
        duration = started["duration"]
        assert (bar["x"] - line["x"]) / line["width"] == pytest.approx(
            v["start"] / duration, abs=0.02
        )
        width = (v["end"] - v["start"]) / duration
        assert bar["width"] / line["width"] == pytest.approx(width, abs=0.02)
        mark = page.locator("#moment-mark").bounding_box()
        assert (mark["x"] + 1 - line["x"]) / line["width"] == pytest.approx(
            v["time"] / duration, abs=0.02
        )
        page.screenshot(path=str(ARTIFACTS / "serve-video-player.png"), full_page=True)
        # ... and stops at its end (played twice as fast: the test waits less)
        page.evaluate(f"{VIDEO}.playbackRate = 2")
        page.wait_for_function(f"{VIDEO}.paused", timeout=15_000)
        assert video_state(page)["time"] == pytest.approx(v["end"], abs=0.2)
        href = page.get_attribute("#save-clip", "href")
        assert href == f"api/items/{segment['response_id']}/clip?start={v['start']}&end={v['end']}"
        saved = page.evaluate(
            f"fetch({href!r}).then(async r => "
            "[r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength])"
        )
        assert saved[0] == 200 and saved[1] == "video/mp4" and saved[2] > 1000
        # a segment longer than the service cuts: the clip is the part around its best
        # frame (the limit read from the OpenAPI document), not a refusal
        still = next(h for h in found["hits"] if h.get("video") and "still" in h["path"])
        page.locator(f".card[data-id='{still['response_id']}'] .moment").click()
        w = still["video"]
        first = min(max(w["time"] - MAX_CLIP / 2, w["start"]), w["end"] - MAX_CLIP)
        assert w["end"] - w["start"] > MAX_CLIP
        assert page.get_attribute("#save-clip", "href") == (
            f"api/items/{still['response_id']}/clip?start={first:g}&end={first + MAX_CLIP:g}"
        )

        # a single frame: plays from its time, on past it
        page.select_option("#group", "frames")
        page.click("#search-form button")
        page.wait_for_function("document.querySelectorAll('.card .moment').length >= 9")
        hits = api(page, "api/search?q=a%20red%20car&top_k=20")["hits"]
        later = next(h for h in hits if h.get("video") and h["video"]["time"] >= 2)
        page.locator(f".card[data-id='{later['response_id']}'] .moment").click()
        t = later["video"]["time"]
        page.wait_for_function(
            f"{VIDEO}.readyState >= 1 && Math.abs({VIDEO}.currentTime - {t}) < 0.5"
        )
        page.wait_for_function(f"!{VIDEO}.paused && {VIDEO}.currentTime > {t + 0.15}")
        assert page.is_hidden("#segment")
        assert later["video"]["timecode"] in page.inner_text("#player-info")
        # from the keyboard: Escape closes the player, Enter on the moment opens it again
        page.focus("#video")
        page.keyboard.press("Escape")
        assert page.is_hidden("#player")
        moment = f".card[data-id='{later['response_id']}'] .moment"
        assert page.evaluate(f"document.activeElement === document.querySelector({moment!r})")
        page.keyboard.press("Enter")
        assert page.is_visible("#player")
        browser.close()
