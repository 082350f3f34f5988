"""The BERT sentiment table: BERT vs the GPT of the same size, TF-IDF and a BiLSTM, on notebook 05's split.

Every fine-tuned row uses the same labelled data (the 13,891 training reviews, validated on the validation
split, scored on the 1,736 held-out test reviews) and the same fine-tuning: ``llmguide.mlm.SENTIMENT_SETTINGS``
(the CPU fine-tuning settings with 150 steps of 32, seed 0), which is how ``data/review-classifier`` was
made from ``data/review-gpt``. Rows:

1. TF-IDF character 1-3-grams + logistic regression (``llmguide.baselines``);
2. a BiLSTM classifier (``llmguide.rnn.LSTMClassifier``: 128-wide embeddings, 128 units per direction,
   max-pooled), from scratch;
3. BERT of the GPT's size from scratch (random init), fine-tuned the same way: what pre-training adds;
4. the GPT pre-trained on the training reviews (``data/review-gpt``) and fine-tuned: ``data/review-classifier``
   is scored here (it is that run);
5. BERT pre-trained with MLM (``data/zh-bert``) and fine-tuned: written to ``--out``/zh-bert-sentiment.

Times are wall-clock seconds of this run on this machine (on a shared machine only ratios mean anything).
``--rows`` runs some rows only (e.g. in parallel processes); each row is saved as ``row<N>.json`` in ``--out``
and the table printed and written to ``results.json`` is every row found there. Usage::

    nice -n 10 python benchmarks/bert_sentiment.py --out runs/bert_sentiment   # ~30 min on two busy CPU cores
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from llmguide.baselines import run_tfidf_baseline
from llmguide.classify import iter_batches, review_datasets
from llmguide.data import REVIEW_LABELS, data_dir, load_reviews
from llmguide.evaluate import evaluate
from llmguide.folder import load_folder
from llmguide.mlm import finetune_sentiment, load_zh_bert, make_zh_bert_sentiment
from llmguide.rnn import LSTMClassifier, LSTMConfig


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bert_sentiment")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, nargs="*", default=[1, 2, 3, 4, 5], choices=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)

    def add(name: str, report, seconds: float, note: str) -> None:
        row = {"model": name, "accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4),
               "seconds": round(seconds, 1), "note": note, "machine": machine()}
        print(row, flush=True)
        (out / f"row{name[0]}.json").write_text(json.dumps(row, indent=2, ensure_ascii=False), encoding="utf-8")

    for n in args.rows:
        ROWS[n](add, out)
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("row*.json"))]
    (out / "results.json").write_text(json.dumps({"rows": rows}, indent=2, ensure_ascii=False), encoding="utf-8")
    print(pd.DataFrame(rows).drop(columns=["machine"]).to_string(index=False))


def row_tfidf(add, out: Path) -> None:
    reviews = load_reviews()
    train, test = reviews[reviews.split == "train"], reviews[reviews.split == "test"]
    t0 = time.perf_counter()
    _, report, _ = run_tfidf_baseline(train.text, train.label, test.text, test.label, REVIEW_LABELS)
    add("1. TF-IDF char 1-3-grams + logistic regression", report, time.perf_counter() - t0, "all 13,891 reviews")


def row_lstm(add, out: Path) -> None:
    _, tokenizer, _ = load_zh_bert()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    lstm = LSTMClassifier(LSTMConfig(vocab_size=tokenizer.vocab_size, n_embd=128, n_hidden=128, dropout=0.0), 2)
    _, report = finetune_sentiment(lstm, tokenizer, {"seed": 0})
    add("2. BiLSTM from scratch", report, time.perf_counter() - t0, "150 steps of 32, zh-bert's characters")


def row_bert_scratch(add, out: Path) -> None:
    t0 = time.perf_counter()
    _, report = make_zh_bert_sentiment(out / "bert-scratch", seed=0, from_scratch=True)
    add("3. BERT from scratch", report, time.perf_counter() - t0, "same size and fine-tuning as row 5")


def row_gpt(add, out: Path) -> None:
    t0 = time.perf_counter()
    gpt, gpt_tok, meta = load_folder(data_dir() / "review-classifier", kind="gpt-classifier")
    test_ds = review_datasets(gpt_tok, gpt.gpt.config.block_size, end_id=meta["end_id"], warn=False)["test"]
    report = evaluate(gpt, iter_batches(test_ds, 64), REVIEW_LABELS)
    add("4. GPT pre-trained (data/review-gpt) + fine-tuned", report, time.perf_counter() - t0,
        "data/review-classifier scored (its fine-tuning: the same 150 steps)")


def row_bert(add, out: Path) -> None:
    t0 = time.perf_counter()
    _, report = make_zh_bert_sentiment(out / "zh-bert-sentiment", seed=0)
    add("5. BERT pre-trained (data/zh-bert, MLM) + fine-tuned", report, time.perf_counter() - t0, "150 steps of 32")



ROWS = {1: row_tfidf, 2: row_lstm, 3: row_bert_scratch, 4: row_gpt, 5: row_bert}

if __name__ == "__main__":
    main()
