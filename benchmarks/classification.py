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

Times are wall-clock seconds measured in this one run, side by side (on a shared machine only their
ratios mean something). Usage::

    python benchmarks/classification.py --profile cpu                                 # ~16 min on 2 CPU cores
    python benchmarks/classification.py --pretrained data/review-gpt --max-train 1000  # the shipped LM: ~5 min
    python benchmarks/classification.py --profile gpu --out runs/bench_gpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from llmguide.baselines import run_tfidf_baseline
from llmguide.classify import HUB_MODEL, run_finetune
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.pretrain import REVIEW_LM_SETTINGS, run_pretrain
from llmguide.runtime import setup

# Pre-training settings on top of the profile's (llmguide.profiles.PRETRAIN_SETTINGS): on CPU the recipe of the shipped data/review-gpt.
PRETRAIN = {"cpu": REVIEW_LM_SETTINGS, "gpu": {}}


def row(name: str, report, seconds: float, note: str = "") -> dict:
    return {"model": name, "accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4),
            "seconds": round(seconds, 1), "note": note}


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

    t0 = time.perf_counter()
    steps = {"max_steps": args.finetune_steps} if args.finetune_steps else None
    _, report = run_finetune(pretrained, out / "scratch", profile, overrides=steps, scratch=True)
    rows.append(row("2. GPT from scratch (labelled data only)", report, time.perf_counter() - t0))
    print(rows[-1], flush=True)

    t0 = time.perf_counter()
    _, report = run_finetune(pretrained, out / "pretrained", profile, overrides=steps)
    finetune_s = time.perf_counter() - t0
    rows.append(row("3. GPT pre-trained on reviews, then fine-tuned", report, pretrain_s + finetune_s,
                    f"pre-training {pretrain_s:.0f} s + fine-tuning {finetune_s:.0f} s"))
    print(rows[-1], flush=True)

    if args.max_train:
        n = args.max_train
        t0 = time.perf_counter()
        _, report = run_finetune(pretrained, out / f"scratch_{n}", profile, overrides=steps, scratch=True, max_train=n)
        rows.append(row(f"2. GPT from scratch, {n:,} labels", report, time.perf_counter() - t0))
        print(rows[-1], flush=True)
        t0 = time.perf_counter()
        _, report = run_finetune(pretrained, out / f"pretrained_{n}", profile, overrides=steps, max_train=n)
        seconds = time.perf_counter() - t0
        rows.append(row(f"3. GPT pre-trained, then fine-tuned, {n:,} labels", report, pretrain_s + seconds,
                        f"pre-training {pretrain_s:.0f} s + fine-tuning {seconds:.0f} s"))
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
    lines += [f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['seconds']:.0f} | {r['note']} |"
              for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    gap = rows[2]["accuracy"] - rows[1]["accuracy"]
    print(f"\npre-trained - from scratch: {100 * gap:+.1f} accuracy points; "
          f"pre-trained - TF-IDF: {100 * (rows[2]['accuracy'] - rows[0]['accuracy']):+.1f} points")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"runtime": str(rt), "rows": rows}, indent=2, ensure_ascii=False),
                                      encoding="utf-8")
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    print(f"saved {out / 'results.md'} and results.json")


if __name__ == "__main__":
    main()
