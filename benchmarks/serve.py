"""Serving throughput and latency: real servers in subprocesses on 127.0.0.1, driven by bounded async clients.

Three setups serve the same classifier (one review per request, closed loop: each client sends its next
request when the previous one is answered):

* (a) ``llmguide serve`` with dynamic batching (``--max-batch 32 --max-wait-ms 5``);
* (b) ``llmguide serve --max-batch 1``: the same server, one text per forward pass;
* (c) the server a user would otherwise write: FastAPI calling ``transformers.pipeline("text-classification")``
  on the same classifier exported to Hugging Face (``GPT.to_hf()`` body + the ``score`` head in a
  ``GPT2ForSequenceClassification``).

Then streaming on (a)'s language model: time to the first streamed token, and tokens/s with 1 vs 8
concurrent generations. Targets at 32 clients: (a) >= 3x (b) and >= 2x (c) in req/s, zero errors.

    python benchmarks/serve.py                          # shipped review LM + a head on it, ~3 min
    python benchmarks/serve.py --classifier runs/quickstart/classifier --seconds 20

Without ``--classifier`` the classifier is data/review-gpt with a seeded untrained head: the work per
request (4 layers x 128 wide over the review's characters) is that of a fine-tuned one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import torch

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch starts its threads)
from llmguide.classify import classifier_from_pretrained, end_token_id, save_classifier
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.inference import load_classifier
from llmguide.pretrain import load_model_folder, review_lm_dir
from llmguide.serve import ServerProcess, start_server

PEER = textwrap.dedent('''
    """The peer: FastAPI + transformers.pipeline, as the transformers docs show it."""
    import sys
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import pipeline
    import torch
    import uvicorn

    torch.set_num_threads(int(sys.argv[3]))
    pipe = pipeline("text-classification", model=sys.argv[1], device=-1)
    app = FastAPI()

    class Texts(BaseModel):
        texts: list[str]

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/classify")
    def classify(req: Texts):
        # the classifier was fine-tuned with a newline after every text: append it, as our server does
        out = pipe([t + "\\n" for t in req.texts], truncation=True, top_k=None, add_special_tokens=False)
        return {"results": [{"label": max(r, key=lambda d: d["score"])["label"],
                             "probabilities": {d["label"]: d["score"] for d in r}} for r in out]}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
''')


def machine(threads: int) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    simd = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu} ({simd}), {os.cpu_count()} cores, torch {torch.__version__}, {threads} torch thread(s) "
            f"per server, Python {platform.python_version()}; load average {load} (1, 5, 15 min)")


def make_classifier(out: Path) -> Path:
    lm, tok, _ = load_model_folder(review_lm_dir())
    torch.manual_seed(0)
    clf = classifier_from_pretrained(lm, len(REVIEW_LABELS), seed=0).eval()
    with torch.no_grad():
        clf.score.weight.mul_(50)  # an untrained head gives ~0.5 everywhere: spread it, so labels can be compared
    return save_classifier(clf, tok, list(REVIEW_LABELS), out, {"block_size": 128, "end_id": end_token_id(tok)})


def export_hf(folder: Path, out: Path) -> Path:
    """The classifier as a Hugging Face folder: GPT.to_hf() gives the body, the score head is copied."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    clf = load_classifier(folder, device="cpu")
    body = clf.model.gpt.to_hf().eval()
    config = GPT2Config(**{**body.config.to_dict(), "num_labels": len(clf.labels),
                           "pad_token_id": clf.tokenizer.pad_id,
                           "id2label": dict(enumerate(clf.labels)), "label2id": {n: i for i, n in enumerate(clf.labels)}})
    hf = GPT2ForSequenceClassification(config).eval()
    hf.transformer.load_state_dict(body.transformer.state_dict())
    hf.score.weight.data.copy_(clf.model.score.weight.data)
    hf.save_pretrained(out)
    clf.tokenizer.as_hf(model_max_length=clf.block_size).save_pretrained(out)
    return out


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """``clients`` concurrent loops, each sending one text per request for ``seconds``; latencies of the answers."""
    latencies, errors = [], 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def loop(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/classify", json={"texts": [texts[i % len(texts)]]})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(loop(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"req/s": len(latencies) / elapsed, "p50": q[49] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3,
            "errors": errors, "n": len(latencies)}


async def streams(url: str, concurrent: int, max_tokens: int) -> dict:
    """``concurrent`` greedy streams at once: time to the first streamed text, and tokens/s."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def one(k: int) -> tuple[float, int]:
            body = {"prompt": ["这家店的", "房间很", "质量", "物流"][k % 4], "max_tokens": max_tokens,
                    "temperature": 0, "stream": True}
            t0, first, tokens = time.perf_counter(), None, 0
            async with http.stream("POST", "/v1/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        if chunk["choices"][0]["text"] and first is None:
                            first = time.perf_counter() - t0
                        tokens = chunk.get("usage", {}).get("completion_tokens", tokens)
            return first, tokens

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(k) for k in range(concurrent)))
        wall = time.perf_counter() - t0
    return {"ttft_ms": statistics.median(r[0] for r in results) * 1e3,
            "tokens/s": sum(r[1] for r in results) / wall, "tokens": sum(r[1] for r in results)}


def measure(servers: dict[str, ServerProcess], texts: list[str], clients: list[int], seconds: float,
            rounds: int) -> dict[str, list[dict]]:
    """Every setup at every client count, interleaved round by round (a busy machine slows them alike);
    the median round of each."""
    for server in servers.values():  # warm-up: first batches, thread pools, connections
        asyncio.run(closed_loop(server.url, texts, max(clients), 2.0))
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(rounds):
        for c in clients:
            for name, server in servers.items():
                runs.setdefault((name, c), []).append(asyncio.run(closed_loop(server.url, texts, c, seconds)))
    rows: dict[str, list[dict]] = {}
    for (name, c), results in runs.items():
        median = sorted(results, key=lambda r: r["req/s"])[len(results) // 2]
        errors = sum(r["errors"] for r in results)  # every round's errors count
        rows.setdefault(name, []).append({"clients": c, **median, "errors": errors})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", help="a classifier folder (default: the shipped LM with a seeded head)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows the median")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens per streamed generation")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in every server (default 1: on a busy machine a second OpenMP thread costs more "
                    "than it gives)")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    texts = load_reviews("test").text.tolist()[:500]
    print(f"machine: {machine(args.threads)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.classifier) if args.classifier else make_classifier(Path(tmp) / "classifier")
        hf_dir = export_hf(folder, Path(tmp) / "hf")
        (Path(tmp) / "peer.py").write_text(PEER, encoding="utf-8")
        threads = ("--threads", str(args.threads))
        with (start_server(folder, review_lm_dir(), "--max-batch", "32", "--max-wait-ms", "5", *threads) as a,
              start_server(folder, None, "--max-batch", "1", "--max-wait-ms", "0", *threads) as b,
              ServerProcess([sys.executable, str(Path(tmp) / "peer.py"), str(hf_dir), "{port}", str(args.threads)]) as c):
            check = httpx.post(c.url + "/v1/classify", json={"texts": texts[:50]}, timeout=60).json()
            ours = load_classifier(folder, device="cpu").predict(texts[:50])
            agree = sum(r["label"] == lab for r, lab in zip(check["results"], ours.label, strict=True))
            rows = measure({"(a) llmguide serve, batching": a, "(b) llmguide serve --max-batch 1": b,
                            "(c) FastAPI + transformers.pipeline": c}, texts, clients, args.seconds, args.rounds)
            gen = {n: asyncio.run(streams(a.url, n, args.max_tokens)) for n in (1, 8, 1, 8)}
    print(f"(c) gives the same label as llmguide on {agree}/50 test reviews (the pipeline cuts long reviews after "
          "the appended newline, llmguide keeps it)\n")
    print("| setup | clients | req/s | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|")
    for name, results in rows.items():
        for r in results:
            print(f"| {name} | {r['clients']} | {r['req/s']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                  f"{r['p99']:.1f} | {r['errors']} |")
    top = {name: next(r for r in results if r["clients"] == max(clients)) for name, results in rows.items()}
    a, b, c = (top[k]["req/s"] for k in top)
    print(f"\nat {max(clients)} clients: (a)/(b) = {a / b:.2f}x (target >= 3), (a)/(c) = {a / c:.2f}x (target >= 2), "
          f"errors {sum(r['errors'] for r in top.values())} (target 0)")
    print("\n| concurrent generations | time to first token (median) ms | tokens/s (all streams) |\n|---|---|---|")
    for n, g in gen.items():
        print(f"| {n} | {g['ttft_ms']:.0f} | {g['tokens/s']:.0f} |")
    print(f"({args.max_tokens} greedy tokens per stream, review LM: 4 layers, 128 wide, block 128)")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
