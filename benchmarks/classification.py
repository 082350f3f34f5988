"""The sentiment results table: does pre-training pay off? All rows on the same split, test set held out.

1. TF-IDF over character 1-3-grams + logistic regression (``llmguide.baselines``);
2. our GPT trained from scratch on the labelled training reviews only;
3. the same GPT pre-trained on the review text first (``llmguide.pretrain.run_pretrain``, the reviews'
   training split, no labels), then fine-tuned exactly like row 2 (same sizes, tokenizer, steps, batch,
   learning rate and seed: only the initial weights differ);
4. with internet, a public Chinese GPT-2 from the Hugging Face hub, fine-tuned the same way (skipped
   offline, with a message).

With ``--max-train N`` rows 2 and 3 run again on only N labelled reviews (an evenly spaced subset; the
pre-training text stays the same): what pre-training saves is labels.

Rows 2 and 3 run once per fine-tuning seed (``--seeds``, default 0 1 2: the seed draws the head, the body
of the from-scratch GPT and the order of the batches) and report mean ± sample standard deviation, so a
gap between rows can be read against the spread of one row.

Times are wall-clock seconds measured in this one run, side by side (on a shared machine only their
ratios mean something). Usage::

    python benchmarks/classification.py --profile cpu                                 # ~16 min on 2 CPU cores
    python benchmarks/classification.py --pretrained data/review-gpt --max-train 1000  # the shipped LM: ~5 min
    python benchmarks/classification.py --profile gpu --out runs/bench_gpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd

from llmguide.baselines import run_tfidf_baseline
from llmguide.classify import HUB_MODEL
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.finetune import run_finetune
from llmguide.pretrain import REVIEW_LM_SETTINGS, run_pretrain
from llmguide.runtime import setup

# Pre-training settings on top of the profile's (llmguide.profiles.PRETRAIN_SETTINGS): on CPU the recipe of the shipped data/review-gpt.
PRETRAIN = {"cpu": REVIEW_LM_SETTINGS, "gpu": {}}


def row(name: str, report, seconds: float, note: str = "") -> dict:
    return {"model": name, "accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4),
            "seconds": round(seconds, 1), "note": note}


def seeded_row(name: str, pretrained, out: Path, profile: str, seeds: list[int], extra_s: float = 0.0,
               **kwargs) -> dict:
    """One fine-tuning row run once per seed: mean and sample sd of accuracy and macro-F1, mean seconds."""
    accs, f1s, secs = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        _, report = run_finetune(pretrained, out / f"seed{seed}", profile, seed=seed, **kwargs)
        secs.append(time.perf_counter() - t0)
        accs.append(report.accuracy)
        f1s.append(report.macro_f1)
        print(f"  {name}, seed {seed}: accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}", flush=True)
    sd = (lambda v: statistics.stdev(v)) if len(seeds) > 1 else (lambda v: 0.0)
    note = f"{len(seeds)} seeds; " + (f"pre-training {extra_s:.0f} s + fine-tuning" if extra_s else "fine-tuning")
    return {"model": name, "accuracy": round(statistics.mean(accs), 4), "accuracy_sd": round(sd(accs), 4),
            "macro_f1": round(statistics.mean(f1s), 4), "macro_f1_sd": round(sd(f1s), 4),
            "seconds": round(extra_s + statistics.mean(secs), 1), "per_seed_accuracy": [round(a, 4) for a in accs],
            "note": note + f" {statistics.mean(secs):.0f} s per seed"}


def _cell(r: dict, key: str) -> str:
    return f"{r[key]:.4f} ± {r[key + '_sd']:.4f}" if key + "_sd" in r else f"{r[key]:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("cpu", "gpu"), default=None)
    parser.add_argument("--out", default="runs/bench_classification")
    parser.add_argument("--pretrained", default=None, help="reuse this pre-trained model folder (skip row 3's "
                                                           "pre-training; its time is then not counted)")
    parser.add_argument("--hub-model", default=HUB_MODEL)
    parser.add_argument("--finetune-steps", type=int, default=None, help="override the profile's (smoke tests)")
    parser.add_argument("--max-train", type=int, default=None,
                        help="also run rows 2 and 3 on only this many labelled training reviews")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="fine-tuning seeds for rows 2 and 3 (default: %(default)s)")
    args = parser.parse_args()
    rt = setup(seed=0, profile=args.profile)
    profile, out = rt.profile.name, Path(args.out)
    print(f"classification benchmark: {rt}")
    rows = []

    reviews = load_reviews()
    train, test = reviews[reviews.split == "train"], reviews[reviews.split == "test"]
    t0 = time.perf_counter()
    _, report, _ = run_tfidf_baseline(train.text, train.label, test.text, test.label, REVIEW_LABELS)
    rows.append(row("1. TF-IDF char 1-3-grams + logistic regression", report, time.perf_counter() - t0))
    print(rows[-1], flush=True)

    pretrain_s = 0.0
    pretrained = args.pretrained
    if pretrained is not None:  # a folder made earlier: count the time its own run recorded
        history = Path(pretrained) / "history.csv"
        if history.is_file():
            pretrain_s = float(pd.read_csv(history).elapsed_s.iloc[-1])
    else:
        t0 = time.perf_counter()
        pretrained = run_pretrain("reviews", "char", profile=profile, overrides=PRETRAIN[profile], out_dir=out / "lm",
                                  progress=False)
        pretrain_s = time.perf_counter() - t0
        print(f"pre-training: {pretrain_s:.0f} s", flush=True)

    steps = {"max_steps": args.finetune_steps} if args.finetune_steps else None
    common = dict(profile=profile, seeds=args.seeds, overrides=steps)
    rows.append(seeded_row("2. GPT from scratch (labelled data only)", pretrained, out / "scratch", scratch=True,
                           **common))
    print(rows[-1], flush=True)
    rows.append(seeded_row("3. GPT pre-trained on reviews, then fine-tuned", pretrained, out / "pretrained",
                           extra_s=pretrain_s, **common))
    print(rows[-1], flush=True)

    if args.max_train:
        n = args.max_train
        rows.append(seeded_row(f"2. GPT from scratch, {n:,} labels", pretrained, out / f"scratch_{n}", scratch=True,
                               max_train=n, **common))
        print(rows[-1], flush=True)
        rows.append(seeded_row(f"3. GPT pre-trained, then fine-tuned, {n:,} labels", pretrained,
                               out / f"pretrained_{n}", extra_s=pretrain_s, max_train=n, **common))
        print(rows[-1], flush=True)

    from llmguide.download import hub_online

    if hub_online():
        t0 = time.perf_counter()
        _, report = run_finetune(args.hub_model, out / "hub", profile, overrides=steps, max_tokens=128)
        rows.append(row(f"4. {args.hub_model}, fine-tuned", report, time.perf_counter() - t0))
    else:
        print(f"row 4 skipped: the Hugging Face hub is not reachable (offline), so {args.hub_model} "
              "cannot be downloaded")

    lines = [f"| model ({profile} profile) | accuracy | macro-F1 | time (s) | note |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {_cell(r, 'accuracy')} | {_cell(r, 'macro_f1')} | {r['seconds']:.0f} | {r['note']} |"
              for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    gap = rows[2]["accuracy"] - rows[1]["accuracy"]
    spread = max(rows[1]["accuracy_sd"], rows[2]["accuracy_sd"])
    print(f"\npre-trained - from scratch: {100 * gap:+.1f} accuracy points (largest seed sd {100 * spread:.1f}); "
          f"pre-trained - TF-IDF: {100 * (rows[2]['accuracy'] - rows[0]['accuracy']):+.1f} points")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"runtime": str(rt), "rows": rows}, indent=2, ensure_ascii=False),
                                      encoding="utf-8")
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    print(f"saved {out / 'results.md'} and results.json")


if __name__ == "__main__":
    main()
