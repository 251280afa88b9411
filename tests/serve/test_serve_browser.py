"""The web page in a real browser (Debian's chromium via playwright) against the real
server on 127.0.0.1: type a query, see the grid, upload an image, see results."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import MMSIM, cli_env, write_collection
from tests.paths import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    write_collection(root / "photos")
    matcher = Matcher("toy", progress=False)
    Index.build(root / "photos", matcher, root / "idx", progress=False)
    port = free_port()
    process = subprocess.Popen(
        [*MMSIM, "serve", f"index={root / 'idx'}", f"port={port}"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # bounded wait for the server to come up
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()) from None
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("mmsim serve did not answer within 90 s")
    yield url, root
    process.terminate()
    process.wait(timeout=20)


def test_page_searches_by_text_and_by_uploaded_image(server):
    from playwright.sync_api import sync_playwright

    url, root = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('summary').textContent.includes('8 items')")
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
