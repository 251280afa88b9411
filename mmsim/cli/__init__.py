"""``mmsim <command> key=value ...``: each command is a Hydra app over ``conf/<command>.yaml``.

Before a command runs, its options are checked against its composed config without
importing torch or any backbone library (:mod:`mmsim.cli.options`), so a mistake gets
one line, at once. Library progress bars and logs stay quiet unless ``verbose=true``;
errors are one line unless ``--debug`` (or ``HYDRA_FULL_ERROR=1``) asks for the
traceback. Multirun sweeps work as in any Hydra app: ``mmsim embed -m encoder=a,b``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

# command -> (module with run(cfg), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "embed": ("mmsim.cli.embed", "embed images and/or texts into an .npz file"),
    "search": (
        "mmsim.cli.search",
        "rank images or texts (a folder, a file or an index) for queries",
    ),
    "match": ("mmsim.cli.match", "score image-text pairs from a CSV or Parquet file"),
    "calibrate": (
        "mmsim.cli.calibrate",
        "fit a threshold on labelled pairs; save the matcher and a report",
    ),
    "evaluate": (
        "mmsim.cli.evaluate",
        "retrieval metrics (recall@k, MRR, nDCG, mAP) and pair metrics",
    ),
    "classify": (
        "mmsim.cli.classify",
        "zero-shot classification of images by class names and prompts",
    ),
    "fit": ("mmsim.cli.fit", "fine-tune the towers on image-caption pairs (CLIP or SigLIP loss)"),
    "demo": ("mmsim.cli.demo", "the whole workflow offline on generated scenes, with an HTML page"),
    "synthetic": (
        "mmsim.cli.synthetic",
        "write captioned shapes scenes (PNG + captions.csv + pairs.csv)",
    ),
    "plugins": ("mmsim.cli.plugins", "list installed plugins and what they registered"),
    "index": (
        "mmsim.cli.index",
        "build|update|info|optimize|duplicates: a persistent collection index",
    ),
    "serve": ("mmsim.cli.serve", "an HTTP search service and web page over an index"),
    "export": (
        "mmsim.cli.export",
        "write the towers as ONNX graphs (fp32 or int8) for the onnx encoder",
    ),
    "clip": ("mmsim.cli.clip", "write the moment of a video frame hit as a video file"),
}
INDEX_COMMANDS = {
    "build": "embed a folder or table into a new index (or resume a killed build)",
    "update": "embed new and changed items, drop deleted ones, keep renamed ones",
    "info": "counts, model, size on disk, skipped items, ANN state",
    "optimize": "compact the shards and build the ANN structure, tuned to a target recall",
    "duplicates": "groups of near-duplicate items, as JSON or an HTML page",
    "calibrate": "fit the index's matcher's threshold on labelled pairs (matches_only=true)",
}
# after a full disk in a write that no command wraps (so not written with write_atomic)
_UNWRAPPED = "a file it was writing may be incomplete"
# index subcommands whose `threshold=` is not the matcher's threshold group but this option
THRESHOLD_OPTION = {"duplicates": "min_similarity", "calibrate": "strategy"}
USAGE = (
    "usage: mmsim <command> [key=value ...] [-m] [--cfg job] [--help] [--debug]\n\ncommands:\n"
    + "".join(f"  {name:<10}{text}\n" for name, (_, text) in COMMANDS.items())
    + "\n`mmsim <command> --help` lists the command's options with what each one does;\n"
    "`mmsim <command> --cfg job` prints the composed config.\n"
)


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def _quiet_libraries(verbose: bool) -> None:
    """Library progress bars and logs off (before any plugin imports transformers), and
    warnings as one line without the source line Python prints by default."""
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.formatwarning = lambda message, category, *_: f"warning: {message}\n"


def _guarded(command: str, task: Callable[[DictConfig], None], debug: bool) -> Callable:
    """Print mmsim's own errors as one clear line instead of a traceback; a full disk
    too, even from a write no command names (it becomes a DiskFullError here)."""
    from mmsim.errors import MmsimError
    from mmsim.files import disk_full_error, is_disk_full

    def run(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except (MmsimError, FileNotFoundError, KeyError, ValueError, ImportError) as exc:
            if debug:
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            _fail(f"mmsim {command}: error: {message}")
        except Exception as exc:
            if debug or not is_disk_full(exc):
                raise
            named = getattr(exc, "filename", None)
            if named:
                what = f"the output of mmsim {command}"
                _fail(f"mmsim {command}: error: {disk_full_error(exc, named, what, _UNWRAPPED)}")
            words = " ".join(str(exc).split()) or type(exc).__name__
            _fail(  # no file named: which file system is not known here
                f"mmsim {command}: error: a write ran out of space ({words}). Free space on "
                f"the file system it writes to and run the same command again: {_UNWRAPPED}"
            )

    return run


def _index_command(rest: list[str]) -> tuple[str, str, list[str]]:
    """``index <sub> [DIR] key=value ...`` -> (command label, config name, overrides).
    A bare first argument is the index folder (``output=`` for ``build``)."""
    usage = (
        "usage: mmsim index <build|update|info|optimize|duplicates> [DIR] [key=value ...]\n"
        + "".join(f"  {name:<11}{text}\n" for name, text in INDEX_COMMANDS.items())
    )
    if not rest or rest[0] in ("-h", "--help"):
        print(usage)
        raise SystemExit(0)
    sub, rest = rest[0], rest[1:]
    if sub not in INDEX_COMMANDS:
        close = difflib.get_close_matches(sub, list(INDEX_COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        _fail(f"mmsim index: unknown subcommand '{sub}'.{hint}\n\n{usage}")
    if rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"{'output' if sub == 'build' else 'index'}={rest[0]}", *rest[1:]]
    if sub in THRESHOLD_OPTION:  # `threshold` is also the matcher's config group
        option = THRESHOLD_OPTION[sub]
        rest = [f"{option}={a[10:]}" if a.startswith("threshold=") else a for a in rest]
    return f"index {sub}", f"index_{sub}", rest


def hydra_quoted(key: str, arg: str) -> str:
    """``key=any text`` as a Hydra quoted value, so an SQL filter such as
    ``where=folder = 'beach'`` needs no extra shell quoting."""
    if not arg.startswith(f"{key}="):
        return arg
    value = arg[len(key) + 1 :]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return arg  # already a Hydra quoted string
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    if args[0] == "--version":
        from mmsim import __version__

        print(f"mmsim {__version__}")
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        _fail(f"mmsim: unknown command '{command}'.{hint}\n\n{USAGE}")
    debug = "--debug" in rest or os.environ.get("HYDRA_FULL_ERROR") == "1"
    rest = [a for a in rest if a != "--debug"]
    module, config_name, label = COMMANDS[command][0], command, command
    if command == "index":
        label, config_name, rest = _index_command(rest)
    elif command == "clip" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"index={rest[0]}", *rest[1:]]  # mmsim clip idx/ id=...
    elif command == "search":
        rest = [hydra_quoted("where", a) for a in rest if a != "--html"] + (
            ["format=html"] if "--html" in rest else []
        )
    _quiet_libraries(verbose=any(a in ("verbose=true", "verbose=True") for a in rest))
    from mmsim.config import conf_dir, prepare

    prepare()
    flags = [a for a in rest if a.startswith("-")]
    overrides = [a for a in rest if not a.startswith("-")]
    if not {"-m", "--multirun", "--hydra-help", "--info"} & set(flags):
        from mmsim.cli import options

        wants_help = bool({"-h", "--help"} & set(flags))
        try:
            cfg = options.check(config_name, overrides, label, require=not wants_help)
        except options.OptionError as exc:
            _fail(f"mmsim {label}: {exc}")
        if wants_help:
            from mmsim.cli.help import render

            print(render(label, config_name, cfg))
            return
    implementation = importlib.import_module(module)  # the heavy imports start here
    run = implementation.COMMANDS[label.split()[1]] if command == "index" else implementation.run
    import hydra

    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [f"mmsim-{command}", *rest]
    app = hydra.main(version_base=None, config_path=str(conf_dir()), config_name=config_name)
    app(_guarded(label, run, debug))()
