"""The wheels a user installs: built from the workspace as a release builds them, checked
file by file, then installed with plain pip into a fresh virtual environment, where the
quick start (``mmsim demo``, ``mmsim index build``, ``mmsim search index=``, ``mmsim
serve``) runs from an empty folder.

The rest of the suite runs the workspace's sources; only this test sees what a wheel
leaves out (package data, configs, entry points) or what its metadata gets wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from mmsim.plugin.testing import heavy_imports, probing_imports
from tests.paths import REPO

pytestmark = pytest.mark.wheels

# Each wheel: its import package, its source folder, and the plugins it registers.
PACKAGES = {
    "mmsim": ("mmsim", REPO / "mmsim", {}),
    "mmsim_openai_clip": (
        "mmsim_openai_clip",
        REPO / "plugins/mmsim-openai-clip/src/mmsim_openai_clip",
        {"openai_clip": "mmsim_openai_clip.plugin"},
    ),
    "mmsim_open_clip": (
        "mmsim_open_clip",
        REPO / "plugins/mmsim-open-clip/src/mmsim_open_clip",
        {"open_clip": "mmsim_open_clip.plugin"},
    ),
    "mmsim_siglip": (
        "mmsim_siglip",
        REPO / "plugins/mmsim-siglip/src/mmsim_siglip",
        {"siglip": "mmsim_siglip.plugin"},
    ),
    "mmsim_onnx": (
        "mmsim_onnx",
        REPO / "plugins/mmsim-onnx/src/mmsim_onnx",
        {"onnx": "mmsim_onnx.plugin"},
    ),
    "mmsim_ray": (
        "mmsim_ray",
        REPO / "plugins/mmsim-ray/src/mmsim_ray",
        {"ray": "mmsim_ray.plugin"},
    ),
}
# Files the commands cannot run without, named so that a wheel missing them fails here
# even if their source folder is gone too.
REQUIRED = {
    "mmsim": [
        "mmsim/conf/search.yaml",
        "mmsim/conf/serve.yaml",
        "mmsim/conf/demo.yaml",
        "mmsim/serve/static/index.html",
        "mmsim/serve/static/app.js",
        "mmsim/serve/static/style.css",
        "mmsim/demo/page.css",
    ],
    "mmsim_openai_clip": [
        "mmsim_openai_clip/demo_model/config.json",
        "mmsim_openai_clip/demo_model/model.safetensors",
        "mmsim_openai_clip/demo_model/tokenizer.json",
        "mmsim_openai_clip/demo_model/onnx/manifest.json",
        "mmsim_openai_clip/demo_model/onnx/image.onnx",
        "mmsim_openai_clip/demo_model/onnx/text.onnx",
    ],
}
QUERY = "a red circle"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every workspace package built as a release builds it: sdist, then the wheel from
    the sdist, with ``--no-sources`` (the published metadata, no workspace paths)."""
    out = tmp_path_factory.mktemp("dist")
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv builds the wheels (scripts/test.sh installs it)"
    subprocess.run(
        [uv, "build", "--all-packages", "--no-sources", "--out-dir", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert sorted(built) == sorted(PACKAGES)
    return built


def _tracked(source: Path) -> list[str]:
    """The files git tracks under ``source``, relative to it: what a wheel must carry
    (an ignored or stray file in the checkout is not part of the package)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "."],
        cwd=source,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [name for name in listed.split("\0") if name]


def _constraints(python: Path, env: dict[str, str], folder: Path) -> Path:
    """A pip constraints file holding the project environment's versions (what the suite
    ran with), so pip installs the same releases, and torch: a build pip finds without a
    download where there is one (a wheel in its configured find-links: this machine kind
    keeps a CPU build on disk), else the project environment's."""
    report = folder / "torch.json"
    local = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            "--ignore-installed",
            "--report",
            str(report),
            "torch",
        ],
        env=env,
        capture_output=True,
        timeout=120,
    )
    if local.returncode == 0:
        torch = json.loads(report.read_text())["install"][0]["metadata"]["version"]
    else:
        torch = metadata.version("torch")
    versions = {d.metadata["Name"].lower(): d.version for d in metadata.distributions()}
    chosen = ("mmsim", "torch")  # the wheels built here; torch (and torchvision) above
    pins = [f"{n}=={v}" for n, v in sorted(versions.items()) if not n.startswith(chosen)]
    path = folder / "constraints.txt"
    path.write_text("\n".join([*pins, f"torch=={torch}", ""]))
    return path


def _entry_points(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in wheel.read(info).decode().splitlines():
        if line.startswith("["):
            group = line.strip("[]")
            groups[group] = {}
        elif "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            groups[group][name] = target
    return groups


def test_wheels_carry_every_package_file_entry_point_and_no_workspace_path(wheels):
    for dist, (package, source, plugins) in PACKAGES.items():
        with zipfile.ZipFile(wheels[dist]) as wheel:
            names = set(wheel.namelist())
            metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
            entry_points = _entry_points(wheel)
        shipped = {f"{package}/{path}" for path in _tracked(source)}
        assert shipped, f"git lists no file under {source}"
        assert shipped - names == set(), f"{dist}: files of {source} missing from the wheel"
        assert set(REQUIRED.get(dist, [])) <= names, f"{dist}: package data missing"
        version = wheels[dist].name.split("-")[1]  # {dist}-{version}-{tags}.whl
        outside = {
            n for n in names if not n.startswith((f"{package}/", f"{dist}-{version}.dist-info/"))
        }
        assert outside == set(), f"{dist}: files outside its package: {sorted(outside)}"
        requires = [
            line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist:")
        ]
        assert not [r for r in requires if " @ " in r or "file:" in r], requires
        assert entry_points.get("mmsim", {}) == plugins, f"{dist}: entry points {entry_points}"
    with zipfile.ZipFile(wheels["mmsim"]) as wheel:
        names = set(wheel.namelist())
        assert _entry_points(wheel)["console_scripts"] == {"mmsim": "mmsim.cli:main"}
    conf = REPO / "conf"  # the Hydra configs sit at the top of the repository
    configs = {f"mmsim/conf/{p.relative_to(conf).as_posix()}" for p in conf.rglob("*.yaml")}
    assert configs - names == set(), "Hydra configs missing from the mmsim wheel"


def _env(venv: Path) -> dict[str, str]:
    """A user's shell with only the new environment active: nothing of the workspace's
    (its virtual environment, PYTHONPATH, MMSIM_* settings), the model hub offline."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MMSIM_", "UV_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        HF_HUB_OFFLINE="1",
        MMSIM_CACHE=str(venv.parent / "cache"),
    )
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _quick(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run an mmsim command started by ``probing_imports``: it must succeed without
    importing torch or transformers (the demo's graphs run on onnxruntime)."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command[3:]}:\n{result.stdout}\n{result.stderr}"
    assert heavy_imports(result.stderr) == [], f"{command[3:]} imported them:\n{result.stderr}"
    return result.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def _serve_and_search(mmsim: Path, index: Path, cwd: Path, env: dict[str, str]) -> dict:
    """``mmsim serve`` in its own process: wait (bounded) until it answers, search once
    over HTTP on 127.0.0.1, fetch the page, then stop it with SIGTERM."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = cwd.parent / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(mmsim), "serve", f"index={index}", f"port={port}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if _get(f"{url}/api/health")[0] == 200:
                    break
            except OSError:
                assert process.poll() is None, f"mmsim serve exited:\n{log.read_text()}"
                time.sleep(0.2)
        else:
            pytest.fail("mmsim serve did not answer within 120 s")
        query = urllib.parse.urlencode({"q": QUERY, "top_k": 3})
        status, kind, body = _get(f"{url}/api/search?{query}")
        assert (status, kind) == (200, "application/json")
        page = _get(f"{url}/")
        script = _get(f"{url}/static/app.js")
        assert page[0] == script[0] == 200 and b"<html" in page[2] and script[2]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code in (0, -signal.SIGTERM), log.read_text()  # uvicorn re-raises it
    return json.loads(body)


def test_wheels_install_with_pip_and_the_quick_start_runs_from_an_empty_folder(wheels, tmp_path):
    venv, home = tmp_path / "venv", tmp_path / "empty"
    home.mkdir()
    # uv makes the environment (python -m venv needs Debian's python3-venv on a system
    # Python) and seeds it with pip, which then installs everything as a user's would
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv makes the environment (scripts/test.sh installs it)"
    made = subprocess.run(
        [uv, "venv", "--seed", "--python", sys.executable, str(venv)],
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    env = _env(venv)
    python, mmsim = venv / "bin" / "python", venv / "bin" / "mmsim"
    constraints = _constraints(python, env, tmp_path)
    # The wheels by path (PyPI's "mmsim" is another project), the plugins the demo
    # encoder needs through the core's extras; --no-compile: modules compile on import.
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--disable-pip-version-check",
            "--constraint",
            str(constraints),
            "--find-links",
            str(wheels["mmsim"].parent),
            f"{wheels['mmsim']}[serve,openai-clip,onnx]",
            str(wheels["mmsim_openai_clip"]),
            str(wheels["mmsim_onnx"]),
        ],
        cwd=home,
        env=env,
        timeout=900,
    )
    where = _run([str(python), "-c", "import mmsim; print(mmsim.__file__)"], home, env)
    assert Path(where.strip()).is_relative_to(venv), where

    demo = _quick([*probing_imports(python), "demo"], home, env)
    images = sorted((home / "demo_output" / "images").glob("*.png"))
    assert len(images) == 24 and (home / "demo_output" / "index.html").is_file()
    assert "Text -> image search" in demo and "✓" in demo
    assert "(onnx:" in demo.splitlines()[0]  # with the onnx plugin: the shipped graphs
    build = ["index", "build", "source=demo_output/images", "output=idx", "encoder=demo"]
    _run([str(mmsim), *build], home, env)
    search = [*probing_imports(python), "search", "index=idx", f"query={QUERY}"]
    found = json.loads(_quick(search, home, env))
    served = _serve_and_search(mmsim, home / "idx", home, env)
    paths = {hit["path"] for hit in found[0]["hits"]} | {hit["path"] for hit in served["hits"]}
    assert len(found[0]["hits"]) == 5 and len(served["hits"]) == 3
    assert {Path(p).parent for p in paths} == {home / "demo_output" / "images"}
    assert [h["response_id"] for h in served["hits"]] == [
        h["response_id"] for h in found[0]["hits"][:3]
    ]
