"""The web page in a real browser (Debian's chromium via playwright) against the real
server on 127.0.0.1: type a query, see the grid, upload an image, see results."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import write_collection
from tests.paths import REPO
from tests.serve.helpers import serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    write_collection(root / "photos")
    matcher = Matcher("toy", progress=False)
    Index.build(root / "photos", matcher, root / "idx", progress=False)
    with serving(root / "idx") as (_, url):
        yield url, root


def test_page_searches_by_text_and_by_uploaded_image(server):
    from playwright.sync_api import sync_playwright

    url, root = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('summary').textContent.includes('8 items')")
        # the inputs take the API's limits from its OpenAPI document
        assert page.get_attribute("#top-k", "max") == "200"
        assert page.eval_on_selector("#query", "q => q.maxLength") == 1000
        assert page.eval_on_selector("#where", "q => q.maxLength") == 500
        page.fill("#query", "   ")  # only spaces: the API would refuse it, so the page does
        assert not page.eval_on_selector("#query", "q => q.checkValidity()")
        page.fill("#query", "a red car")
        page.fill("#top-k", "6")
        page.click("#search-form button")
        page.wait_for_selector(".card >> nth=5")
        assert page.locator(".card").count() == 6
        assert "results for" in page.inner_text("#status")
        page.wait_for_function(
            "[...document.querySelectorAll('.card img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        page.screenshot(path=str(ARTIFACTS / "serve-text-search.png"), full_page=True)

        page.fill("#where", "folder = 'city'")
        page.set_input_files("#image-file", str(root / "photos" / "city" / "c2.png"))
        page.wait_for_function("document.getElementById('status').textContent.includes('c2.png')")
        assert page.locator(".card .name").first.inner_text() == "c2.png"
        assert all("folder: city" in t for t in page.locator(".card .path").all_inner_texts())
        page.locator(".card button").first.click()  # more like this
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('items like')"
        )
        assert page.locator(".card").count() == 4  # the filter keeps the city images

        page.set_input_files("#match-file", str(root / "photos" / "beach" / "img0.jpg"))
        page.fill("#match-caption", "a red car")
        page.click("#match-form button")
        page.wait_for_function(
            "document.getElementById('match-result').textContent.includes('P(match)')"
        )
        page.screenshot(path=str(ARTIFACTS / "serve-image-search.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 800})
        phone.goto(url + "/")
        phone.fill("#query", "a photo")
        phone.click("#search-form button")
        phone.wait_for_selector(".card")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        phone.screenshot(path=str(ARTIFACTS / "serve-phone.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "serve-text-search.png").stat().st_size > 10_000


def test_chromium_is_installed():
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).is_file()


def test_page_shows_a_failed_load_and_stops_waiting(tmp_path):
    from playwright.sync_api import sync_playwright

    write_collection(tmp_path / "photos")
    Index.build(tmp_path / "photos", Matcher("toy", progress=False), tmp_path / "idx")
    for saved in (tmp_path / "idx" / "matcher").iterdir():  # the model cannot be loaded
        if saved.is_file():
            saved.write_text("{ not a matcher")
    with (
        serving(tmp_path / "idx", "access_log=off", until="/api/health/live") as (_, url),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "health" in r.url else None)
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('status').textContent.includes('failed')")
        assert page.get_attribute("#status", "class") == "error"
        seen = len(asked)
        page.wait_for_timeout(1500)  # the page polled every 500 ms while loading
        assert len(asked) == seen, asked
        browser.close()


@pytest.fixture(scope="module")
def scenes_server(tmp_path_factory):
    """``mmsim serve`` over a calibrated index of 60 demo-world scenes."""
    from mmsim.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("steer")
    table = write_dataset(root / "data", 60, seed=9, split="all", two_object_share=0.3)
    index = Index.build(table, Matcher("demo", progress=False), root / "idx", column="image")
    index.calibrate(root / "data" / "pairs.csv", threshold="platt", holdout=0.0)
    caption = index.items([4])[4]["metadata"]["caption"]
    with serving(root / "idx") as (_, url):
        yield url, caption


def api(page, path: str) -> dict:
    """What the JSON API answers, fetched from inside the page."""
    return page.evaluate(f"fetch({path!r}).then(r => r.json())")


def card_ids(page) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")]


def test_page_steers_search_negative_mode_pager_matches_more_like(scenes_server):
    from playwright.sync_api import sync_playwright

    url, caption = scenes_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('summary').textContent.includes('60')")
        status = "document.getElementById('status').textContent"
        # a negative part, paged
        page.fill("#query", "a red circle")
        page.fill("#negative", "a triangle")
        page.fill("#top-k", "6")
        page.click("#search-form button")
        page.wait_for_function(f"{status}.includes('but not')")
        first = api(page, "api/search?q=a%20red%20circle&negative=a%20triangle&top_k=6")
        assert card_ids(page) == [h["response_id"] for h in first["hits"]]
        assert "1–6 of 60" in page.inner_text("#status")
        assert page.inner_text("#page-info") == "page 1 of 10" and page.is_disabled("#prev")
        page.click("#next")
        page.wait_for_function(f"{status}.includes('7–12 of 60')")
        second = api(page, first["next"])
        assert card_ids(page) == [h["response_id"] for h in second["hits"]]
        page.click("#prev")
        page.wait_for_function(f"{status}.includes('1–6 of 60')")
        assert card_ids(page) == [h["response_id"] for h in first["hits"]]
        # the mode switch: meaning + words, then words only
        page.fill("#negative", "")
        page.select_option("#mode", "hybrid")
        page.click("#search-form button")
        page.wait_for_function("document.querySelectorAll('.card .found').length === 6")
        page.select_option("#mode", "keyword")
        page.fill("#query", "all_00004")
        page.click("#search-form button")
        page.wait_for_function(f"{status}.includes('1–1 of 1')")
        assert page.locator(".card .name").all_inner_texts() == ["all_00004.png"]
        # matches only: the calibrated threshold decides
        page.select_option("#mode", "vector")
        page.fill("#query", caption)
        assert page.is_enabled("#matches-only")
        page.check("#matches-only")
        page.click("#search-form button")
        page.wait_for_function(f"{status}.includes('results for')")
        matches = api(page, f"api/search?q={caption}&matches_only=true&top_k=6")
        assert matches["total"] > 0 and card_ids(page) == [
            h["response_id"] for h in matches["hits"]
        ]
        assert page.locator(".card .p-match.match").count() == len(matches["hits"])
        assert page.is_hidden("#pager") == (matches["next_offset"] is None)
        assert page.is_hidden("#selection")  # nothing selected yet
        page.screenshot(path=str(ARTIFACTS / "serve-steered-search.png"), full_page=True)
        # more like the selected results
        page.uncheck("#matches-only")
        page.click("#search-form button")
        page.wait_for_function("document.querySelectorAll('.card').length === 6")
        chosen = card_ids(page)[1:3]
        for box in page.locator(".card input.select").all()[1:3]:
            box.check()
        page.click("#more-like-selected")
        page.wait_for_function(f"{status}.includes('items like #{chosen[0]}, #{chosen[1]}')")
        like = api(page, f"api/search?q=item:{chosen[0]}&q=item:{chosen[1]}&top_k=6")
        assert card_ids(page) == [h["response_id"] for h in like["hits"]]
        browser.close()
