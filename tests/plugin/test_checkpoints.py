"""Checkpoint resolution: local first, cache next, network last and never hanging."""

from __future__ import annotations

import socket

import pytest

from mmsim.errors import CheckpointNotFoundError
from mmsim.plugin.checkpoints import is_local_reference, load_checkpoint


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket closes


class Loader:
    """Records how it was called; the cache holds only what ``cached`` names."""

    def __init__(self, cached: set[str] = frozenset(), online: bool = True):
        self.calls: list[tuple[str, bool]] = []
        self.cached, self.online = cached, online

    def __call__(self, reference: str, local_only: bool) -> str:
        self.calls.append((reference, local_only))
        if reference in self.cached or (not local_only and self.online):
            return f"model:{reference}"
        raise OSError(f"{reference} not found")


@pytest.fixture(autouse=True)
def _no_offline_env(monkeypatch):
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("reference", "local"),
    [
        ("openai/clip-vit-base-patch32", False),
        ("clip", False),
        ("/models/clip", True),
        ("./clip", True),
        ("~/clip", True),
        ("models/clip/v1", True),
    ],
)
def test_reference_kinds(reference, local):
    assert is_local_reference(reference) is local


def test_cached_hub_id_never_touches_the_network():
    loader = Loader(cached={"org/model"})
    assert (
        load_checkpoint("org/model", loader, what="x", endpoint="http://127.0.0.1:9")
        == "model:org/model"
    )
    assert loader.calls == [("org/model", True)]


def test_unreachable_hub_fails_at_once_without_retrying():
    loader = Loader()
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(
        CheckpointNotFoundError, match=r"'org/model' .* hub is not reachable.*hf download org/model"
    ):
        load_checkpoint("org/model", loader, what="x", endpoint=endpoint)
    assert loader.calls == [("org/model", True)]  # the download was never attempted


def test_download_when_missing_from_cache_and_hub_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        loader = Loader()
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        assert (
            load_checkpoint("org/model", loader, what="x", endpoint=endpoint) == "model:org/model"
        )
    assert loader.calls == [("org/model", True), ("org/model", False)]


def test_offline_switches(monkeypatch):
    loader = Loader()
    with pytest.raises(CheckpointNotFoundError, match="downloads are switched off"):
        load_checkpoint("org/model", loader, what="x", local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError, match="downloads are switched off"):
        load_checkpoint("org/model", loader, what="x")
    assert all(local for _, local in loader.calls)


def test_local_directory_is_loaded_locally(tmp_path):
    loader = Loader(cached={str(tmp_path)})
    assert load_checkpoint(str(tmp_path), loader, what="x") == f"model:{tmp_path}"
    assert loader.calls == [(str(tmp_path), True)]
    broken = Loader()
    with pytest.raises(CheckpointNotFoundError, match=r"directory .* could not be loaded"):
        load_checkpoint(str(tmp_path), broken, what="x")
