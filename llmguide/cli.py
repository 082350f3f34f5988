"""The ``llmguide`` command line: ``quickstart``, ``pretrain``, ``finetune``, ``evaluate``, ``predict``, ``serve``.

Every subcommand is a small function that takes the parsed arguments. Errors a user can fix (bad
values, missing files or packages) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from llmguide import __version__
from llmguide.classify import add_finetune_arguments, finetune_command
from llmguide.inference import (
    add_evaluate_arguments,
    add_predict_arguments,
    evaluate_command,
    predict_command,
)
from llmguide.pretrain import add_pretrain_arguments, pretrain_command
from llmguide.quickstart import run_quickstart
from llmguide.serve import add_serve_arguments, serve_command

Command = Callable[[argparse.Namespace], int]


def _quickstart(args: argparse.Namespace) -> int:
    run_quickstart(out=args.out, profile=args.profile)
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what is wrong, and where help is), no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-parser per command."""
    parser = _Parser(
        prog="llmguide",
        description="A hands-on, tested guide to how large language models work.",
    )
    parser.add_argument("--version", action="version", version=f"llmguide {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    quick = sub.add_parser("quickstart", help="run the whole pipeline headless on small sizes and save the results")
    quick.add_argument("--out", default="runs/quickstart", help="folder for what it makes (default: %(default)s)")
    quick.add_argument("--profile", choices=("cpu", "gpu"), default=None,
                       help="sizes to use (default: $LLMGUIDE_PROFILE, else gpu if CUDA is available, else cpu)")
    quick.set_defaults(func=_quickstart)

    # Each stage's module owns its options and its command function; the CLI only collects them.
    stages = (
        ("pretrain", "pre-train a GPT language model and save a model folder", add_pretrain_arguments, pretrain_command),
        ("finetune", "fine-tune a pre-trained model folder into a text classifier", add_finetune_arguments,
         finetune_command),
        ("evaluate", "evaluate a classifier (accuracy, F1, confusion matrix) or a language model (perplexity)",
         add_evaluate_arguments, evaluate_command),
        ("predict", "label texts with a saved classifier: CSV text,label,probability or JSON lines",
         add_predict_arguments, predict_command),
        ("serve", "serve a classifier and/or a language model over HTTP: API, web demo, metrics",
         add_serve_arguments, serve_command),
    )
    for name, help_text, add_arguments, command in stages:
        stage = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(stage)
        stage.set_defaults(func=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmguide`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        print(f"llmguide {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llmguide {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
