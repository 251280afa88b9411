"""``mmsim <command> key=value ...``: each command is a Hydra app over ``conf/<command>.yaml``.

Multirun sweeps work as in any Hydra app: ``mmsim embed -m encoder=a,b inputs=[...]``
(each job writes its relative ``output`` inside its own sweep folder).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import hydra
from omegaconf import DictConfig

from mmsim.errors import MmsimError

USAGE = """usage: mmsim <command> [key=value ...] [-m] [--cfg job] [--help]

commands:
  embed     embed images and/or texts into an .npz file
  search    rank images or texts for a text or image query (JSON)
  match     score image-text pairs from a CSV or Parquet file
  calibrate fit a threshold on labelled pairs; save the matcher and a report
  evaluate  retrieval metrics (recall@k, MRR, nDCG, mAP) and pair metrics
  classify  zero-shot classification of images by class names and prompts
  fit       fine-tune the towers on image-caption pairs (CLIP or SigLIP loss)
  demo      the whole workflow offline on generated scenes, with an HTML page
  synthetic write captioned shapes scenes (PNG + captions.csv + pairs.csv)
  plugins   list installed plugins and what they registered
  index     build|update|info|optimize|duplicates: a persistent collection index
  serve     an HTTP search service and web page over an index
  export    write the towers as ONNX graphs (fp32 or int8) for the onnx encoder

`mmsim <command> --cfg job` prints the composed config; `mmsim <command> --help` lists
the config groups and their options.
"""


def _commands() -> dict[str, Callable[[DictConfig], None]]:
    from mmsim.cli import (
        calibrate,
        classify,
        demo,
        embed,
        evaluate,
        export,
        fit,
        match,
        plugins,
        search,
        serve,
        synthetic,
    )

    return {
        "embed": embed.run,
        "search": search.run,
        "match": match.run,
        "calibrate": calibrate.run,
        "evaluate": evaluate.run,
        "classify": classify.run,
        "fit": fit.run,
        "demo": demo.run,
        "synthetic": synthetic.run,
        "plugins": plugins.run,
        "serve": serve.run,
        "export": export.run,
    }


def _guarded(command: str, task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Print mmsim's own errors as one clear line instead of a traceback."""

    def run(cfg: DictConfig) -> None:
        if not cfg.get("runtime", {}).get("progress", True):
            # before any plugin imports transformers: its weight-loading bars go quiet too
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            task(cfg)
        except (MmsimError, FileNotFoundError, KeyError, ValueError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"mmsim {command}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def _index_command(rest: list[str]) -> tuple[str, list[str], Callable[[DictConfig], None]]:
    """``index <sub> [DIR] key=value ...`` -> (config name, overrides, task). A bare first
    argument is the index folder (``output=`` for ``build``)."""
    from mmsim.cli import index

    usage = (
        "usage: mmsim index <build|update|info|optimize|duplicates> [DIR] [key=value ...]\n"
        + "".join(f"  {name:<10} {text}\n" for name, text in index.SUBCOMMANDS.items())
    )
    if not rest or rest[0] in ("-h", "--help") or rest[0] not in index.COMMANDS:
        print(usage, file=sys.stderr if rest and rest[0] not in ("-h", "--help") else sys.stdout)
        raise SystemExit(0 if rest and rest[0] in ("-h", "--help") else 2)
    sub, rest = rest[0], rest[1:]
    if rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"{'output' if sub == 'build' else 'index'}={rest[0]}", *rest[1:]]
    if sub == "duplicates":  # `threshold` is also the matcher's config group
        rest = [f"min_similarity={a[10:]}" if a.startswith("threshold=") else a for a in rest]
    return f"index_{sub}", rest, index.COMMANDS[sub]


def _quoted(key: str, arg: str) -> str:
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
    commands = _commands()
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if args[0] == "--version":
        from mmsim import __version__

        print(f"mmsim {__version__}")
        return
    command, rest = args[0], args[1:]
    if command == "index":
        command, rest, task = _index_command(rest)
        commands[command] = task
    elif command == "search":
        rest = [_quoted("where", a) for a in rest if a != "--html"] + (
            ["format=html"] if "--html" in rest else []
        )
    if command not in commands:
        print(f"mmsim: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    from mmsim.config import conf_dir, prepare

    prepare()
    sys.argv = [f"mmsim-{command}", *rest]
    app = hydra.main(version_base=None, config_path=str(conf_dir()), config_name=command)
    app(_guarded(command, commands[command]))()
