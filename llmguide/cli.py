"""The ``llmguide`` command line, the one place where arguments are parsed: every subcommand's options and
the small function that runs it.

The layers (the README's module map): the *library* (datasets, models, the training loop, evaluation,
the model folder) knows nothing of argparse; a *recipe* (:mod:`llmguide.pretrain`, :mod:`llmguide.finetune`,
:mod:`llmguide.quickstart`) wires the library for one job; this module parses a command's arguments and
calls one recipe or library function. Errors a user can fix (bad values, missing files or packages) print
one line and exit with status 2, without a traceback.

Why one module of ~450 lines: it is the one place arguments are parsed, by design (a command's options are
found here and nowhere else); each command is a short section of an add-arguments and a command function.

    python -m llmguide pretrain ...            # the same as `llmguide pretrain ...`; torchrun starts it so
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from llmguide import __version__
from llmguide.atomic import atomic_write, check_output_file
from llmguide.classify import TRAINABLE, read_labelled_csv
from llmguide.data import REVIEW_LABELS, SPLITS, load_reviews
from llmguide.finetune import run_finetune
from llmguide.folder import WEIGHTS, check_folder, read_meta
from llmguide.inference import (
    FORMATS,
    MODEL_FILES,
    evaluate_classifier,
    evaluate_language_model,
    load_classifier,
    read_texts,
    write_predictions,
)
from llmguide.model import GPTConfig
from llmguide.pretrain import ALIASES, DATA_OPTIONS, TOKENIZERS, option_types, run_pretrain
from llmguide.profiles import MODEL_SIZES, PRETRAIN_SETTINGS, PROFILES
from llmguide.quantize import quantize_folder
from llmguide.quickstart import run_quickstart
from llmguide.serve import ServeConfig, check_bind, create_app, load_models, set_threads
from llmguide.tagger import run_segment
from llmguide.train import TrainConfig, is_main_process

Command = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- quickstart
def add_quickstart_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``llmguide quickstart``."""
    parser.add_argument("--out", default="runs/quickstart", help="folder for what it makes (default: %(default)s)")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="sizes to use (default: $LLMGUIDE_PROFILE, else gpu if CUDA is available, else cpu)")
    return parser


def quickstart_command(args: argparse.Namespace) -> int:
    """``llmguide quickstart``: the whole pipeline headless on small sizes."""
    run_quickstart(out=args.out, profile=args.profile)
    return 0


# ---------------------------------------------------------------- pretrain
def add_pretrain_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``llmguide pretrain``'s options to ``parser``: corpus, tokenizer, profile, out, resume, and one
    ``--key=value`` option per setting (see :func:`parse_overrides`)."""
    parser.add_argument("--corpus", default="reviews",
                        help="reviews, shakespeare, or a path to a UTF-8 text file (default: %(default)s)")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="char", help="(default: %(default)s)")
    parser.add_argument("--profile", "--preset", dest="profile", choices=PROFILES, default=None,
                        help="model and training sizes (default: $LLMGUIDE_PROFILE, else gpu with CUDA, else cpu); "
                             "--preset is its old name")
    parser.add_argument("--out", default="runs/lm", help="the model folder to write (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --out that already holds a model or checkpoints (refused without it)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    group = parser.add_argument_group("settings", "override any of them as --key=value, e.g. --max_steps=200")
    for key, kind in option_types().items():
        names = [f"--{key}"] + [f"--{a}" for a, k in ALIASES.items() if k == key]
        group.add_argument(*names, dest=f"set_{key}", default=None, metavar=_type_name(kind), help=_help(key))
    return parser


def _help(key: str) -> str:
    if key in DATA_OPTIONS:
        return f"{DATA_OPTIONS[key][2]} (default: {DATA_OPTIONS[key][1]})"
    table = MODEL_SIZES if key in {f.name for f in fields(GPTConfig)} else PRETRAIN_SETTINGS
    if any(key in table[p] for p in PROFILES):
        default = ", ".join(f"{p} {table[p].get(key)}" for p in PROFILES)
    else:
        default = next(f.default for f in fields(TrainConfig) + fields(GPTConfig) if f.name == key)
    return f"(default: {default})"


def _type_name(kind: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in (typing.get_args(kind) or (kind,))]
    return "|".join(n.replace("NoneType", "none") for n in names).upper()


def pretrain_command(args: argparse.Namespace) -> int:
    """Run :func:`run_pretrain` from parsed arguments; prints the results and where the model was saved."""
    overrides = {k.removeprefix("set_"): v for k, v in vars(args).items() if k.startswith("set_") and v is not None}
    try:
        folder = run_pretrain(args.corpus, args.tokenizer, args.profile, overrides, args.out, args.resume,
                              args.progress, overwrite=args.overwrite)
        if is_main_process():
            results = read_meta(folder)["results"]
            line = f"steps {results['steps']}, train loss {results['train_loss']:.3f}"
            if results.get("val_loss") is not None:
                line += f", val loss {results['val_loss']:.3f} (perplexity {results['val_perplexity']:.1f})"
            print(line)
            print(f"saved the model to {folder}")
    finally:
        if torch.distributed.is_initialized():  # started by torchrun: leave cleanly
            torch.distributed.destroy_process_group()
    return 0


# ---------------------------------------------------------------- finetune
def add_finetune_arguments(parser: Any) -> Any:
    """The arguments of ``llmguide finetune``."""
    parser.add_argument("pretrained", metavar="PRETRAINED",
                        help="a model folder from `llmguide pretrain`, or a Hugging Face GPT-2 name (online)")
    parser.add_argument("--out", default="runs/classifier", help="the classifier folder to write (default: %(default)s)")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default=None,
                        help="fine-tuning sizes (default: $LLMGUIDE_PROFILE, else gpu with CUDA, else cpu)")
    parser.add_argument("--train", dest="train_file", metavar="CSV",
                        help="labelled data with 'text' and 'label' columns (default: the review corpus)")
    parser.add_argument("--val", dest="val_file", metavar="CSV", help="validation data (default: 10%% of --train)")
    parser.add_argument("--test", dest="test_file", metavar="CSV", help="test data to report on")
    parser.add_argument("--trainable", choices=TRAINABLE, default="all",
                        help="train all weights or only the new head (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: by profile)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: by profile)")
    parser.add_argument("--batch-size", type=int, default=None, help="(default: by profile)")
    parser.add_argument("--max-train", type=int, default=None, help="use only this many training examples")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --out that already holds a model (refused without it)")
    parser.add_argument("--allow-rare-labels", dest="allow_rare", action="store_true",
                        help="train on classes with fewer than 5 examples in --train (refused without it: often a typo)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser


def finetune_command(args: Any) -> int:
    """``llmguide finetune``: fine-tune, print the test report, and say where the classifier was saved."""
    overrides = {k: v for k, v in (("max_steps", args.steps), ("learning_rate", args.lr),
                                   ("batch_size", args.batch_size)) if v is not None}
    if "learning_rate" in overrides:
        overrides["min_lr"] = overrides["learning_rate"] / 10
    folder, report = run_finetune(args.pretrained, args.out, args.profile, args.train_file, args.val_file,
                                  args.test_file, args.trainable, overrides, args.max_train,
                                  progress=args.progress, seed=args.seed, overwrite=args.overwrite,
                                  allow_rare=args.allow_rare)
    print(f"{read_meta(folder)['evaluated_on']} set:")
    print(report)
    print(f"saved the classifier to {folder}; try: llmguide predict {folder} \"这个东西很好用\"")
    return 0


# ---------------------------------------------------------------- predict and evaluate
def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``llmguide predict``."""
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a classifier folder (from `llmguide finetune`)")
    parser.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify (or use --input)")
    parser.add_argument("--input", metavar="FILE", help="a .txt file (one text per line) or a .csv with a 'text' column")
    parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv (columns text,label,probability) or json (JSON lines) (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    return parser


def predict_command(args: argparse.Namespace) -> int:
    """``llmguide predict``: label texts from the arguments or a file; CSV or JSON lines to stdout or a file."""
    if args.texts and args.input:
        raise ValueError("give texts as arguments or --input FILE, not both")
    if args.output:
        check_output_file(args.output)  # before any work
    texts = read_texts(args.input) if args.input else list(args.texts)
    if not texts:
        raise ValueError("no texts to classify: pass them as arguments or with --input FILE")
    classifier = load_classifier(args.model_dir, device=args.device)
    df = classifier.predict(texts, batch_size=args.batch_size)
    if df.attrs["n_truncated"]:
        print(f"note: {df.attrs['n_truncated']} of {len(texts)} texts are longer than the model's context "
              f"({classifier.block_size} tokens); their first {classifier.block_size} tokens were used",
              file=sys.stderr)
    if args.output:
        def write(path: Path) -> None:
            with open(path, "w", encoding="utf-8", newline="") as out:
                write_predictions(df, out, args.format)

        atomic_write(args.output, write)  # a complete file or the previous one
        print(f"wrote {len(df)} predictions to {args.output}", file=sys.stderr)
    else:
        write_predictions(df, sys.stdout, args.format)
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``llmguide evaluate``."""
    parser.add_argument("model_dir", metavar="MODEL_DIR",
                        help="a classifier folder (accuracy, F1, ...) or a language-model folder (perplexity)")
    parser.add_argument("--data", default="test",
                        help="'test' or 'validation' (the review corpus split), or a file: a classifier takes a "
                             ".csv with 'text' and 'label' columns, a language model a .txt or a .csv with a "
                             "'text' column (default: %(default)s)")
    parser.add_argument("--output", metavar="FILE", help="also save the report as JSON")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    return parser


def _labelled_data(data: str, labels: Sequence[str]) -> tuple[list[str], list[Any]]:
    if data in SPLITS:
        if set(labels) != set(REVIEW_LABELS):
            raise ValueError(f"the model's labels {list(labels)} are not the review corpus's {list(REVIEW_LABELS)}: "
                             "pass --data FILE.csv with 'text' and 'label' columns")
        df = load_reviews(data)
        return df.text.tolist(), df.label_name.tolist()
    path = Path(data)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--data {data!r}: use 'test', 'validation' or a .csv file with 'text' and 'label' columns")
    df = read_labelled_csv(path)  # the same reading and column checks as fine-tuning's data files
    if df.empty:
        raise ValueError(f"{path} holds no rows: nothing to evaluate")
    as_ids = [int(x) if x.strip().isdigit() and x not in labels else x for x in df["label"]]
    return df.text.tolist(), as_ids



def evaluate_command(args: argparse.Namespace) -> int:
    """``llmguide evaluate``: print (and optionally save) the report of a classifier or a language model."""
    if args.output:
        check_output_file(args.output)  # before the evaluation runs
    folder = check_folder(args.model_dir, MODEL_FILES)
    if read_meta(folder)["kind"] == "gpt-classifier":
        classifier = load_classifier(folder, device=args.device)
        texts, labels = _labelled_data(args.data, classifier.labels)
        report = evaluate_classifier(classifier, texts, labels, args.batch_size)
    else:
        report = evaluate_language_model(folder, args.data, args.batch_size, args.device)
    print(f"{folder} on {args.data}:")
    print(report)
    if args.output:
        report.save(args.output)
        print(f"saved the report to {args.output}")
    return 0


# ---------------------------------------------------------------- serve
def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``llmguide serve``."""
    d = ServeConfig()
    parser.add_argument("--classifier", metavar="DIR", help="a classifier folder (e.g. runs/quickstart/classifier)")
    parser.add_argument("--lm", metavar="DIR", help="a language-model folder (e.g. runs/quickstart/lm, data/review-gpt)")
    parser.add_argument("--host", default=d.host, help="address to bind (default: %(default)s; any other needs --api-key)")
    parser.add_argument("--port", type=int, default=d.port, help="(default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=d.max_batch, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                        help="how long a batch waits to fill (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=d.max_queue,
                        help="waiting requests per model before 503 (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=d.max_tokens,
                        help="cap on a completion's max_tokens (default: %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="(default: %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("LLMGUIDE_API_KEY"),
                        help="require 'Authorization: Bearer KEY' (default: $LLMGUIDE_API_KEY)")
    parser.add_argument("--cors-origin", dest="cors_origins", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN to call the API (repeatable; default: none)")
    parser.add_argument("--log-file", metavar="FILE", help="opt-in: log classified texts and user feedback as JSONL")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per process (default: torch's choice; 1 on a shared machine)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    return parser


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """A :class:`ServeConfig` from parsed ``llmguide serve`` arguments."""
    names = {f for f in ServeConfig.__dataclass_fields__}
    return ServeConfig(**{k: v for k, v in vars(args).items() if k in names})



def serve_command(args: argparse.Namespace) -> int:
    """``llmguide serve``: load the folders (a failure is one line and exit 2), then run uvicorn until stopped."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError("llmguide serve needs FastAPI and uvicorn: pip install 'llmguide[serve]'") from None
    config = config_from_args(args)
    check_bind(config.host, config.api_key)
    for name, value in (("--max-batch", config.max_batch), ("--max-queue", config.max_queue),
                        ("--max-tokens", config.max_tokens), ("--workers", config.workers),
                        ("--threads", config.threads or 1)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    set_threads(config.threads)
    models = load_models(config)
    url = f"http://{config.host}:{config.port}/"
    print(f"llmguide serve: {', '.join(f'{m.name} ({m.kind})' for m in models)} on {url} "
          f"(demo page at {url}, API schema at {url}openapi.json)", file=sys.stderr, flush=True)
    if config.workers > 1:
        os.environ["LLMGUIDE_SERVE_CONFIG"] = json.dumps(asdict(config))
        uvicorn.run("llmguide.serve:_app_from_env", factory=True, host=config.host, port=config.port,
                    workers=config.workers, log_level="warning",
                    timeout_worker_healthcheck=300)  # each worker loads the models first: slow on a busy machine
    else:
        uvicorn.run(create_app(config, models), host=config.host, port=config.port, log_level="warning")
    return 0


# ---------------------------------------------------------------- segment
def add_segment_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``llmguide segment``."""
    parser.add_argument("model_dir", help="a word-segmenter folder, e.g. data/pd-seg-bert")
    parser.add_argument("text", nargs="*", help="Chinese text to segment, one line per argument")
    parser.add_argument("--input", default=None, help="a UTF-8 text file to segment, one text a line")
    parser.add_argument("--output", default=None, help="write the result to this file (default: standard output)")
    return parser


def segment_command(args: argparse.Namespace) -> int:
    """``llmguide segment``: one output line per input line, words separated by two spaces (SIGHAN format)."""
    lines = run_segment(args.model_dir, args.text, args.input, args.output)
    if args.output is None:
        print("\n".join(lines))
    return 0


# ---- quantize
def add_quantize_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("model_dir", help="the model folder to quantize (a classifier or a language model)")
    parser.add_argument("--out", required=True, help="the quantized model folder to write")
    parser.add_argument("--scheme", choices=("int8", "int4"), default="int8",
                        help="int8: per-channel weights x per-token activations (fast on CPU); int4: group-wise "
                             "weights, dequantized per call (smaller, not faster) (default: %(default)s)")
    parser.add_argument("--group-size", type=int, default=32, help="int4: weights per scale (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out that already holds a model")
    return parser


def quantize_command(args: argparse.Namespace) -> int:
    """``llmguide quantize``: write an int8/int4 copy of a model folder that predict, evaluate and serve load."""
    folder = quantize_folder(args.model_dir, args.out, args.scheme, args.group_size, overwrite=args.overwrite)
    sizes = [(Path(f) / WEIGHTS).stat().st_size / 1e6 for f in (args.model_dir, folder)]
    print(f"wrote the {args.scheme} model folder {folder}: weights {sizes[0]:.1f} MB -> {sizes[1]:.1f} MB; "
          f"it loads like the original (llmguide predict {folder} ..., llmguide serve)")
    return 0


# ---------------------------------------------------------------- the parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what is wrong, and where help is), no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# name, help, add-arguments, command: one row per subcommand.
COMMANDS: tuple[tuple[str, str, Callable[[Any], Any], Command], ...] = (
    ("quickstart", "run the whole pipeline headless on small sizes and save the results",
     add_quickstart_arguments, quickstart_command),
    ("pretrain", "pre-train a GPT language model and save a model folder", add_pretrain_arguments, pretrain_command),
    ("finetune", "fine-tune a pre-trained model folder into a text classifier", add_finetune_arguments,
     finetune_command),
    ("evaluate", "evaluate a classifier (accuracy, F1, confusion matrix) or a language model (perplexity)",
     add_evaluate_arguments, evaluate_command),
    ("predict", "label texts with a saved classifier: CSV text,label,probability or JSON lines",
     add_predict_arguments, predict_command),
    ("serve", "serve a classifier and/or a language model over HTTP: API, web demo, metrics",
     add_serve_arguments, serve_command),
    ("segment", "cut Chinese text into words with a saved segmenter (SIGHAN format: two spaces between words)",
     add_segment_arguments, segment_command),
    ("quantize", "write an int8 (or int4) copy of a model folder; predict, evaluate and serve load it",
     add_quantize_arguments, quantize_command),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-parser per row of :data:`COMMANDS`."""
    parser = _Parser(
        prog="llmguide",
        description="A hands-on, tested guide to how large language models work.",
    )
    parser.add_argument("--version", action="version", version=f"llmguide {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_text, add_arguments, command in COMMANDS:
        stage = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(stage)
        stage.set_defaults(func=command)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"llmguide: warning: {message}\n"  # no source line: a user reads what to do, not where it came from


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmguide`` console script; returns the exit status.

    Errors a user can fix are one line on stderr and exit status 2: ``ValueError`` (bad values, damaged or
    mismatched files), ``FileNotFoundError``, ``ImportError`` (a missing extra), ``RuntimeError`` (a locked
    output folder, a diverged run) and any other ``OSError`` (no permission, disk full).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return func(args)
    except (ValueError, ImportError, RuntimeError, OSError) as err:
        print(f"llmguide {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llmguide {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning  # main() called from Python (tests) leaves the process as it was


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__  # multi-line messages of other libraries, joined
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.filename and \
            str(err.filename) not in text:
        text += f": {err.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
