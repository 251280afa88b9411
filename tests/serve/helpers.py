"""Running ``mmsim serve`` in a process of its own and talking HTTP to it (loopback,
bounded waits): shared by the browser, contract and operations tests."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from mmsim.plugin.testing import MMSIM, cli_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """GET ``url``: its JSON, or its text."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
        kind = response.headers.get("content-type", "")
        return json.loads(body) if kind.startswith("application/json") else body.decode()


@contextmanager
def serving(
    index: Path,
    *options: str,
    stderr: int | IO[bytes] | None = None,
    until: str = "/api/health/ready",
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``mmsim serve`` over ``index`` (and ``key=value`` options); yields the process and
    its URL once ``until`` answers (bounded wait), and stops it afterwards. Its stderr (the
    default access log) goes to a temporary file, read back if it fails to start: a
    pipe nobody reads would stop the service once it filled."""
    port = free_port()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [*MMSIM, "serve", f"index={index}", f"port={port}", *options],
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=errors if stderr is None else stderr,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                fetch(f"{url}{until}", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait(timeout=30)
                    errors.seek(0)
                    raise RuntimeError(errors.read().decode()[-3000:]) from None
                time.sleep(0.2)
        try:
            yield process, url
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
