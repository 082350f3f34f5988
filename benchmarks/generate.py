"""Generation speed: llmguide with a KV cache, llmguide without, and Hugging Face ``generate``, same weights.

All three run greedy decoding on the same random GPT (the CPU preset by default; HF's copy comes from
``GPT.to_hf()``), side by side and interleaved round by round, so a busy machine slows them alike; the
table shows medians over the rounds and the ratios. The outputs are checked to be the same tokens.

    python benchmarks/generate.py                      # CPU preset, batch 1 and 8, 256 new tokens
    python benchmarks/generate.py --profile gpu --device cuda --rounds 5

``block_size`` is raised to prompt + new tokens: with learned positions neither model can go past it
(llmguide would switch to recomputing the window, HF would fail).

On a small shared machine, add ``--threads 1``: decoding one token is a chain of tiny ops, and waking a
second OpenMP thread for each of them costs more than it saves when the cores are busy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from llmguide.generate import generate
from llmguide.model import GPT, GPTConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", "--preset", dest="preset", default="cpu",
                    help="model sizes: cpu, gpu or gpt2 (llmguide.profiles.MODEL_SIZES)")
    ap.add_argument("--vocab", type=int, default=4096, help="a character-level Chinese vocabulary is ~4-5k")
    ap.add_argument("--prompt", type=int, default=16, help="prompt length in tokens")
    ap.add_argument("--new", type=int, default=256, help="new tokens per row")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    config = GPTConfig.from_preset(args.preset, vocab_size=args.vocab, block_size=args.prompt + args.new)
    ours = GPT(config).to(device).eval()
    hf = ours.to_hf("sdpa").eval()
    print(f"config {config}\ndevice {device}, torch threads {torch.get_num_threads()}, "
          f"prompt {args.prompt} + {args.new} new tokens, greedy, {args.rounds} rounds (medians)\n")

    rows = []
    for B in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(0, args.vocab, (B, args.prompt), device=device)
        methods = {
            "llmguide, KV cache": lambda ids=ids: generate(ours, ids, args.new, temperature=0),
            "llmguide, no cache": lambda ids=ids: generate(ours, ids, args.new, temperature=0, use_cache=False),
            "HF generate": lambda ids=ids: hf.generate(ids, max_new_tokens=args.new, min_new_tokens=args.new,
                                                       do_sample=False, pad_token_id=0),
        }
        # warm-up (allocators, lazy initialisation)
        generate(ours, ids, 8, temperature=0)
        hf.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        times: dict[str, list[float]] = {name: [] for name in methods}
        outs = {}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                t, outs[name] = timed(fn, device)
                times[name].append(t)
        ref = outs["HF generate"]
        same = all(torch.equal(o, ref) for o in outs.values())
        tps = {name: B * args.new / statistics.median(ts) for name, ts in times.items()}
        rows.append((B, tps, same))
        print(f"batch {B}: " + ", ".join(f"{k} {v:.0f} tokens/s" for k, v in tps.items()), flush=True)

    hdr = f"{'batch':>5} | {'llmguide cache':>15} | {'llmguide no cache':>17} | {'HF generate':>12} | " \
          f"{'cache / HF':>10} | {'cache / no cache':>16} | same tokens"
    print("tokens/s (median)\n" + hdr + "\n" + "-" * len(hdr))
    for B, tps, same in rows:
        c, n, h = tps["llmguide, KV cache"], tps["llmguide, no cache"], tps["HF generate"]
        print(f"{B:>5} | {c:>15.0f} | {n:>17.0f} | {h:>12.0f} | {c / h:>9.2f}x | {c / n:>15.2f}x | {same}")


if __name__ == "__main__":
    main()
