"""Training-step speed: llmguide's GPT vs Hugging Face ``GPT2LMHeadModel`` at the same config and weights,
and model FLOPs utilisation (MFU) against this machine's measured matmul peak.

One step = forward, cross-entropy loss, backward, AdamW update. Both models start from the same weights
(HF's copy comes from ``GPT.to_hf()``) and run interleaved, step block by step block, so a busy machine
slows them alike; the table shows medians and the ratio.

MFU (Chowdhery et al. 2022, PaLM, appendix B): a step over one token costs about
6·N + 12·n_layer·n_embd·T FLOPs (N = parameters in matmuls, counting the LM head; the second term is
attention's q·k and weights·v); MFU = achieved model FLOPs/s divided by the peak the hardware reaches on a
big matmul, measured here rather than read off a datasheet.

Peak memory is that of one training step above the weights already in memory
(:func:`llmguide.profiling.peak_bytes`: exact on CUDA, a lower bound on CPU). The table covers each preset
asked for, by default both profiles' presets ("cpu" and "gpu") side by side.

    python benchmarks/train_step.py                        # both presets, on the CPU
    python benchmarks/train_step.py --profile cpu           # only the CPU preset
    python benchmarks/train_step.py --device cuda --batch 64 --amp bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from llmguide.model import GPT, GPTConfig
from llmguide.profiling import peak_bytes


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 5) -> float:
    """The best FLOPs/s of an (n, n) @ (n, n) matmul over a few repeats: 2·n³ FLOPs each."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(3):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 3)
    return 2 * n**3 / best


def flops_per_token(model: GPT, T: int) -> float:
    c = model.config
    n_matmul = model.num_params() - model.transformer.wpe.weight.numel()  # wte counts: it is also the LM head
    return 6 * n_matmul + 12 * c.n_layer * c.n_embd * T


def make_steps(ours: GPT, hf: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: torch.dtype | None):
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    autocast = (lambda: torch.autocast(x.device.type, dtype=amp)) if amp else None

    def run(model, opt, loss_fn):
        if autocast:
            with autocast():
                loss = loss_fn()
        else:
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    # HF shifts labels itself (position t predicts labels[t+1]); ours takes the shifted targets directly
    labels = torch.cat([x[:, :1], y], dim=1)[:, :-1]
    return {
        "llmguide GPT": lambda: run(ours, opt_ours, lambda: ours(x, y)[1]),
        "HF GPT2LMHeadModel": lambda: run(hf, opt_hf, lambda: hf(input_ids=x, labels=labels).loss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", "--preset", dest="preset", nargs="+", default=["cpu", "gpu"],
                    help="model sizes (llmguide.profiles.MODEL_SIZES; default: cpu gpu)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default=None, choices=[None, "bf16"], help="autocast dtype (GPU)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = torch.bfloat16 if args.amp == "bf16" else None

    peak = matmul_peak(device, amp or torch.float32)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, AdamW, "
          f"{args.rounds} rounds x {args.steps} steps (medians), dtype {amp or torch.float32}")
    print(f"measured matmul peak {peak / 1e9:.1f} GFLOP/s\n")
    hdr = (f"{'preset':<7} | {'model':<20} | {'ms/step':>8} | {'tokens/s':>9} | {'MFU':>6} | {'peak MiB':>8} | vs HF")
    print(hdr + "\n" + "-" * len(hdr))
    for preset in args.preset:
        bench_preset(preset, args, device, amp, peak)


def bench_preset(preset: str, args: argparse.Namespace, device: torch.device, amp, peak: float) -> None:
    torch.manual_seed(0)
    config = GPTConfig.from_preset(preset, vocab_size=args.vocab, dropout=0.0)
    ours = GPT(config).to(device).train()
    hf = ours.to_hf("sdpa").train()
    T = config.block_size
    x = torch.randint(0, args.vocab, (args.batch, T), device=device)
    y = torch.randint(0, args.vocab, (args.batch, T), device=device)
    steps = make_steps(ours, hf, x, y, amp)
    for fn in steps.values():  # warm-up (also creates the optimizer state, so it is not counted as peak)
        fn()
    memory = {name: peak_bytes(fn, device) for name, fn in steps.items()}

    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)

    fpt = flops_per_token(ours, T)
    hf_tps = args.batch * T / statistics.median(times["HF GPT2LMHeadModel"])
    for name, ts in times.items():
        step = statistics.median(ts)
        tps = args.batch * T / step
        print(f"{preset:<7} | {name:<20} | {step * 1e3:>8.1f} | {tps:>9.0f} | {tps * fpt / peak:>6.1%} | "
              f"{memory[name] / 2**20:>8.1f} | {tps / hf_tps:.2f}x")
    print(f"{'':<7}   ({config.n_layer} layers, {config.n_embd} wide, block {T}, {ours.num_params() / 1e6:.2f} M "
          f"parameters, {fpt / 1e6:.2f} MFLOP per token)")


if __name__ == "__main__":
    main()
