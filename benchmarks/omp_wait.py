"""Is CPU training slower inside a Jupyter kernel, and does the OpenMP wait policy fix it?

Runs the same small training workload (a 2-layer transformer encoder, AdamW, 30 steps) sixteen ways,
side by side in one run: a plain Python process and a Jupyter kernel, each with OMP_WAIT_POLICY unset
(GNU OpenMP's default: idle threads spin for a while, then sleep), ACTIVE (spin), PASSIVE (sleep at
once) and unset with ``import llmguide`` first (what the package picks: PASSIVE in a kernel only), on an
idle machine and with one core kept busy by another process (a Jupyter server, a browser, a second job:
the normal state of a laptop or a shared CI runner).

    python benchmarks/omp_wait.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap

WORKLOAD = textwrap.dedent(
    """
    import time, torch
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, num_layers=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(8, 32, 64)
    for step in range(35):
        if step == 5:
            t0 = time.perf_counter()
        loss = model(x).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    print(f"RESULT {(time.perf_counter() - t0) / 30 * 1000:.2f}")
    """
)


POLICIES = ("default", "ACTIVE", "PASSIVE", "import llmguide")


def _env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy in ("ACTIVE", "PASSIVE"):
        env["OMP_WAIT_POLICY"] = policy
    return env


def _code(policy: str) -> str:
    # "import llmguide": the policy unset, and llmguide imported first, as a notebook or script does; it picks
    # PASSIVE inside a kernel only.
    return ("import llmguide\n" + WORKLOAD) if policy == "import llmguide" else WORKLOAD


def run_script(policy: str) -> float:
    env = _env(policy)
    out = subprocess.run([sys.executable, "-c", _code(policy)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split("RESULT")[1])


def run_kernel(policy: str) -> float:
    from jupyter_client.manager import start_new_kernel

    env = _env(policy)
    km, kc = start_new_kernel(kernel_name="python3", env=env, stderr=subprocess.DEVNULL)
    chunks: list[str] = []
    try:
        kc.execute_interactive(_code(policy), timeout=600,
                               output_hook=lambda m: chunks.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return float("".join(chunks).split("RESULT")[1])


def main() -> None:
    rows = []
    for load in ("idle", "one core busy"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            for policy in POLICIES:
                # Median of three runs each: single runs on a busy machine are noisy.
                rows.append((load, "script", policy, statistics.median(run_script(policy) for _ in range(3))))
                rows.append((load, "jupyter kernel", policy,
                             statistics.median(run_kernel(policy) for _ in range(3))))
        finally:
            if busy is not None:
                busy.kill()
    base = rows[0][3]
    print(f"{'machine':<15}{'where':<16}{'OMP_WAIT_POLICY':<18}{'ms/step':>9}{'vs idle script default':>24}")
    for load, where, policy, ms in rows:
        print(f"{load:<15}{where:<16}{policy:<18}{ms:>9.1f}{ms / base:>22.2f}x")


if __name__ == "__main__":
    main()
