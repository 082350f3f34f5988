"""CNN vs ViT on the same split: test accuracy against training-set size, with and without augmentation.

The inductive-bias lesson of notebook 11 (d2l.ai, "Vision Transformers"; Dosovitskiy et al. 2021, sec. 4.3):
a CNN's convolutions assume locality and translation equivariance, so it learns from few images; a ViT has
to learn those from data, so it trails with little data and catches up with more data or with augmentation
(here: random shifts of up to ``shift`` pixels, which teach the ViT the translation invariance a CNN has).

Method: for each training-set size n and seed, one stratified subset of the training images
(``llmguide.images.stratified_subset``, the same for both models), one model of each kind built with that
seed and trained with the profile's settings (``llmguide.profiles.VISION_SETTINGS``, the same number of
optimizer steps at every n), scored on the full held-out test set (360 digits). Rows report the mean and
sample standard deviation over the seeds. Usage::

    python benchmarks/vit_digits.py                                  # digits, sizes 100 400 1293, shifts 0 1
    python benchmarks/vit_digits.py --sizes 50 100 200 400 800 1293 --seeds 0 1 2 --out runs/vit_curve.csv
    python benchmarks/vit_digits.py --vit-steps 500 --sizes 100     # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from llmguide.images import build_models, learning_curve, load_split, train_settings
from llmguide.runtime import setup

sys.path.insert(0, str(Path(__file__).parent))
from serve import machine  # noqa: E402  (the benchmarks' one description of the machine)


def summarise(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of test accuracy per (shift, n_train), one column per model."""
    stats = curve.groupby(["shift", "n_train", "model"])["test_acc"].agg(["mean", "std", "count"])
    cells = stats.apply(lambda r: f"{r['mean']:.3f}" + (f" ± {r['std']:.3f}" if r["count"] > 1 else ""), axis=1)
    return cells.unstack("model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1293])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--shifts", type=int, nargs="+", default=[0, 1], help="augmentation, pixels")
    parser.add_argument("--vit-steps", type=int, default=None, help="override the profile's ViT steps")
    parser.add_argument("--cnn-steps", type=int, default=None, help="override the profile's CNN steps")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/vit_digits.csv")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = setup(seed=0, profile=args.profile)
    print(machine(torch.get_num_threads()))
    print(f"vision benchmark: {rt}")
    split = load_split(args.profile)
    models, settings = build_models(args.profile), train_settings(args.profile)
    for name, steps in (("ViT", args.vit_steps), ("CNN", args.cnn_steps)):
        if steps:
            settings[name]["max_steps"] = steps
    for name, build in models.items():
        print(f"{name}: {sum(p.numel() for p in build().parameters()):,} parameters, {settings[name]}")
    sizes = [min(n, len(split.train)) for n in args.sizes]
    parts = []
    t0 = time.perf_counter()
    for shift in args.shifts:
        parts.append(learning_curve(models, split, sizes, settings, args.seeds, shift=shift, device=str(rt.device)))
        print(parts[-1].to_string(index=False), flush=True)
    curve = pd.concat(parts, ignore_index=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out, index=False)
    print(f"\ntest accuracy on {len(split.test)} held-out images (mean ± std over seeds {args.seeds}), "
          f"{time.perf_counter() - t0:.0f} s in all; rows in {out}")
    print(summarise(curve).to_string())


if __name__ == "__main__":
    main()
