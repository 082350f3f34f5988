"""The word-segmentation table: BERT, BiLSTM, GPT (left context only) and jieba on the held-out documents of
the People's Daily corpus, word P/R/F1 as the SIGHAN bakeoff scores it, with sizes and times.

The three neural rows are the shipped folders ``data/pd-seg-{bert,lstm,gpt}`` (made by
``tools/train_segmenter.py``, one recipe in ``llmguide.tagger.SEGMENTER_RECIPES``); their training time is
read from each folder's config.json. The rows are scored twice: on the corpus text, and on the same text
written half-width (``1998年`` for ``１９９８年``: text unlike the corpus). Usage::

    python benchmarks/segmentation.py                 # ~1-3 min on 2 CPU cores
    python benchmarks/segmentation.py --max-lines 300 # quicker, a fixed evenly spaced subset
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from llmguide.data import data_dir
from llmguide.tagger import segmentation_table

FOLDERS = [data_dir() / f"pd-seg-{name}" for name in ("bert", "bert-scratch", "lstm", "gpt")]


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
               platform.processor())
    simd = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in set(info.split()))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu} ({simd}), {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
            f"thread(s), Python {platform.python_version()}; load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-lines", type=int, default=None, help="score this many test lines (default: all)")
    args = parser.parse_args()
    print(machine())
    folders = [f for f in FOLDERS if f.is_dir()]
    table = segmentation_table(folders, max_lines=args.max_lines)
    half = segmentation_table(folders, max_lines=args.max_lines, half_width=True)
    table["f1_half_width"] = half["f1"].to_numpy()
    table["size_mb"] = [round(sum(p.stat().st_size for p in Path(f).iterdir()) / 1e6, 2) for f in folders] + [None]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
