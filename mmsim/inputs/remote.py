"""Reading image references that are not local files: http(s) and fsspec URLs.

Remote reads wait on the network, not on the CPU, so the loader runs them in an I/O
thread pool (:data:`IO_WORKERS` at a time) while the model works; each read has a
timeout, retries for transient failures (connection errors, timeouts, HTTP 429/5xx)
and a size cap, so a slow or broken host costs its own items and nothing else.

http(s) is read with the standard library. Any other ``scheme://`` URL (``s3://``,
``gs://``, ``hf://``, ``memory://``, ``file://``, ...) goes through fsspec when it and
the protocol's package are installed (``pip install 'mmsim[remote]'`` plus e.g.
``s3fs``); without them the error names the package to install.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

from mmsim.errors import MissingDependencyError

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")
TIMEOUT_S = 20.0
RETRIES = 2  # further attempts after the first, for transient failures only
RETRY_BACKOFF_S = 0.25
MAX_BYTES = 64 * 2**20
IO_WORKERS = 32
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_url(text: str) -> bool:
    """True for ``scheme://...`` with no whitespace (surrounding whitespace ignored)."""
    return bool(URL_PATTERN.match(text.strip()))


def scheme(url: str) -> str:
    return url.strip().split("://", 1)[0].lower()


class _Transient(OSError):
    """A failure worth retrying (the host may answer next time)."""


def read_bytes(
    url: str,
    *,
    timeout: float | None = None,
    max_bytes: int | None = None,
    retries: int | None = None,
) -> bytes:
    """The bytes at ``url``, or an ``OSError`` that names the URL and the reason.

    Unset limits take the module's :data:`TIMEOUT_S`, :data:`MAX_BYTES` and
    :data:`RETRIES` at call time, so a program can change them in one place.
    """
    url = url.strip()
    timeout = TIMEOUT_S if timeout is None else timeout
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    retries = RETRIES if retries is None else retries
    read = _read_http if scheme(url) in ("http", "https") else _read_fsspec
    for attempt in range(retries + 1):
        try:
            data = read(url, timeout, max_bytes)
        except _Transient as exc:
            if attempt == retries:
                tries = f"{retries + 1} attempt" + ("s" if retries else "")
                raise OSError(f"could not read {url} ({tries}): {exc}") from None
            time.sleep(RETRY_BACKOFF_S * 2**attempt)
            continue
        if len(data) > max_bytes:
            raise _too_large(url, max_bytes)
        return data
    raise AssertionError("unreachable")  # pragma: no cover


def _too_large(url: str, max_bytes: int) -> OSError:
    return OSError(
        f"{url} is larger than the {max_bytes / 2**20:g} MiB limit for one image "
        "(mmsim.inputs.remote.MAX_BYTES)"
    )


def _read_http(url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "mmsim"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _too_large(url, max_bytes)
            return response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
        if exc.code in _TRANSIENT_HTTP:
            raise _Transient(reason) from None
        raise OSError(f"could not download {url}: {reason}") from None
    except (TimeoutError, ConnectionError, urllib.error.URLError) as exc:
        raise _Transient(getattr(exc, "reason", None) or exc) from None


def _read_fsspec(url: str, timeout: float, max_bytes: int) -> bytes:
    protocol = scheme(url)
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError(
            f"reading {protocol}:// URLs needs fsspec: pip install 'mmsim[remote]'"
        ) from None
    try:
        filesystem, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec knows the protocol; its package is missing
        raise MissingDependencyError(
            f"reading {protocol}:// URLs needs another package: {exc}"
        ) from None
    except ValueError as exc:
        raise OSError(f"unknown URL protocol {protocol}:// ({exc})") from None
    try:
        with filesystem.open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise OSError(f"could not read {url}: {type(exc).__name__}: {exc}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise _Transient(exc) from None
