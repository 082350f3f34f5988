"""Re-create data/zh-bert: the small Chinese BERT pre-trained with MLM on news + training reviews.

    nice -n 10 python tools/make_zh_bert.py [OUT_DIR] [MAX_SECONDS]   # 2,400 steps: ~10 min on one CPU core
"""

import sys

import torch

from llmguide.mlm import make_zh_bert

if __name__ == "__main__":
    torch.set_num_threads(1)  # on a shared two-core machine one thread wastes less time waiting
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/zh-bert"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else None
    print(make_zh_bert(out, progress=False, max_seconds=seconds))
