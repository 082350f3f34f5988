"""Character-level Shakespeare: our training engine against nanoGPT's published shakespeare-char baseline.

nanoGPT's README (karpathy/nanoGPT, "quick start") reports, for a character-level GPT on tiny-shakespeare:

* CPU ("MacBook"): ``--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
  --lr_decay_iters=2000 --dropout=0.0`` on top of ``config/train_shakespeare_char.py`` (learning rate
  1e-3 -> 1e-4, warmup 100, beta2 0.99): validation loss about **1.88** after about **3 minutes**;
* GPU (one A100): 6 layers, 6 heads, 384 wide, block 256, batch 64, dropout 0.2, 5000 iterations:
  validation loss **1.4697** after about **3 minutes**.

This script trains the same recipe with ``llmguide.train`` and prints validation loss against
wall-clock training time (evaluations excluded), so the two can be compared at equal time. The CPU
recipe also has a variant tuned for short runs (``ours``: a higher learning rate, which small models
tolerate) run side by side. Differences to keep in mind: without internet the corpus is the complete
works from the ``shakespeare`` package (about 5 M characters, 84 distinct) instead of tiny-shakespeare
(1.1 M, 65), so losses are close but not identical; wall-clock time depends on the machine (and on
whatever else runs on it).

    python benchmarks/shakespeare_char.py                  # CPU recipe (nanoGPT's and ours), ~3 min each
    python benchmarks/shakespeare_char.py --profile gpu    # GPU recipe
    python benchmarks/shakespeare_char.py --max-seconds 180 --recipes nanogpt
"""

from __future__ import annotations

# ruff: noqa: I001  (llmguide is imported before torch on purpose: it sets the OpenMP wait policy)

import argparse
import os
import sys
import time

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch

from llmguide.data import load_shakespeare
from llmguide.lmdata import text_lm_data
from llmguide.model import GPT, GPTConfig
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig, train

NANOGPT_TRAIN = dict(learning_rate=1e-3, min_lr=1e-4, warmup_steps=100, beta2=0.99, weight_decay=0.1, clip_norm=1.0)
RECIPES = {
    "cpu": {
        "model": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0),
        "nanogpt": dict(NANOGPT_TRAIN, batch_size=12, max_steps=2000, eval_interval=250, eval_steps=20),
        "ours": dict(NANOGPT_TRAIN, learning_rate=3e-3, min_lr=3e-4, warmup_steps=50, batch_size=12,
                     max_steps=2000, eval_interval=250, eval_steps=20),
        "published": (1.88, "about 3 min (nanoGPT README, CPU of a MacBook)"),
    },
    "gpu": {
        "model": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),
        "nanogpt": dict(NANOGPT_TRAIN, batch_size=64, max_steps=5000, eval_interval=250, eval_steps=200),
        "ours": dict(NANOGPT_TRAIN, batch_size=64, max_steps=5000, eval_interval=250, eval_steps=200),
        "published": (1.4697, "about 3 min (nanoGPT README, one A100)"),
    },
}


def run(name: str, data, model_sizes: dict, settings: dict, max_seconds: float | None, precision: str) -> list[dict]:
    """Train one recipe; returns the evaluation rows (step, seconds, train and validation loss)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=data.tokenizer.vocab_size, **model_sizes))
    stop = (lambda row: row["elapsed_s"] >= max_seconds) if max_seconds else None
    config = TrainConfig(**settings, log_interval=50, precision=precision, progress=sys.stderr.isatty())
    history = train(model, data.train, data.val, config, callback=stop)
    rows = history.dropna(subset=["val_loss"])
    # the training loss at an evaluation: the mean of the steps since the previous one (less noisy)
    smooth = history.train_loss.rolling(config.eval_interval, min_periods=1).mean()
    return [{"recipe": name, "step": int(r.step), "seconds": r.elapsed_s, "train_loss": smooth[i],
             "val_loss": r.val_loss, "tokens_per_s": history.tokens_per_s.median()} for i, r in rows.iterrows()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--recipes", nargs="+", choices=("nanogpt", "ours"), default=["nanogpt", "ours"])
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop a recipe once its training time passes this (checked at each log)")
    parser.add_argument("--steps", type=int, default=None, help="override max_steps (and the LR decay length)")
    parser.add_argument("--source", choices=("auto", "package", "download"), default="auto",
                        help="Shakespeare corpus: the package's complete works, or tiny-shakespeare (download)")
    args = parser.parse_args(argv)

    recipe = RECIPES[args.profile]
    text = load_shakespeare(args.source)
    tokenizer = CharTokenizer.train([text])
    data = text_lm_data(text, tokenizer, block_size=recipe["model"]["block_size"], source="shakespeare")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "auto" if args.profile == "gpu" else "fp32"
    print(f"corpus: {len(text):,} characters, {tokenizer.vocab_size - 4} distinct (+4 special ids); "
          f"train {data.train.n_tokens:,} / val {data.val.n_tokens:,} tokens; device {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"model: {recipe['model']}")
    rows = []
    for name in args.recipes:
        settings = dict(recipe[name])
        if args.steps:
            settings["max_steps"] = args.steps
        print(f"\n== {name}: {settings}", flush=True)
        t0 = time.perf_counter()
        rows += run(name, data, recipe["model"], settings, args.max_seconds, precision)
        print(f"   wall-clock {time.perf_counter() - t0:.0f} s including evaluations", flush=True)

    print(f"\n{'recipe':<9}{'step':>6}{'train s':>9}{'train loss':>12}{'val loss':>10}{'tokens/s':>10}")
    for r in rows:
        print(f"{r['recipe']:<9}{r['step']:>6}{r['seconds']:>9.0f}{r['train_loss']:>12.3f}{r['val_loss']:>10.3f}"
              f"{r['tokens_per_s']:>10.0f}")
    published, when = recipe["published"]
    print(f"\nnanoGPT published: validation loss {published} after {when}.")
    for name in args.recipes:
        mine = [r for r in rows if r["recipe"] == name]
        at_180 = [r for r in mine if r["seconds"] <= 180]
        best = min(mine, key=lambda r: r["val_loss"])
        line = f"{name}: best val loss {best['val_loss']:.3f} at step {best['step']} ({best['seconds']:.0f} s)"
        if at_180:
            line += f"; within 180 s of training: {min(r['val_loss'] for r in at_180):.3f}"
        print(line)


if __name__ == "__main__":
    main()
